"""The SQL sandbox's cost, through the CLI, as whole processes, beside the unsandboxed path.

    python bench/bench_sql.py --bundle BIG            # a bundle you already exported
    python bench/bench_sql.py --tasks 1000000         # simulate htcmock (seed 11), export, measure

`aksnap sql` and `aksnap query` run sandboxed: the tables reach DuckDB as Arrow datasets, so
DuckDB holds no path it could write (docs/analyzer.md, "SQL sandbox"). `--allow-external`
reads the same views through DuckDB's own Parquet reader. Each query runs both ways, in
alternation (sandbox, native, sandbox, native ...), ``--repeat`` times; the table gives the
median wall time, user CPU and peak RSS of each, and the ratio sandbox / native.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_lineage import AKSNAP, export_big  # noqa: E402 - the same export as the lineage rows

QUERIES = (
    ("select 1", "select 1"),
    ("status counts", "select status, count(*) from tasks group by all"),
    ("data dependencies (unnest)", "select count(*) from task_dependencies"),
    ("tasks x results join", "select count(*) from tasks t join results r on r.owner_task_id = t.task_id"),
    ("phase p90 per partition", "select partition_id, quantile_cont(processing, 0.9) from task_phases group by all"),
)


def run(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(wall seconds, user CPU seconds, peak RSS bytes) of one whole process."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed: {err.strip()[-300:]}")
    return wall, usage.ru_utime, usage.ru_maxrss * 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, help="an exported bundle (default: export one)")
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aksnap-bench-sql-"))
    try:
        bundle = a.bundle
        if bundle is None:
            bundle = work / "big"
            export_big(a.tasks, a.seed, bundle)
        env = {**os.environ, "AKSNAP_CACHE_DIR": str(work / "cache")}
        run([*AKSNAP, "sql", str(bundle), "select 1"], env)  # the vocabulary check, once
        print(f"bundle {bundle} ({sum(f.stat().st_size for f in bundle.iterdir()) / 2**20:.0f} MiB)")
        print(f"{'query (whole process, median)':30} {'sandbox s':>9} {'native s':>9} {'ratio':>6} "
              f"{'cpu ratio':>9} {'sandbox RSS':>11} {'native RSS':>10}")
        for label, q in QUERIES:
            got: dict[str, list] = {"sandbox": [], "native": []}
            for _ in range(a.repeat):
                for mode, extra in (("sandbox", []), ("native", ["--allow-external"])):
                    got[mode].append(run([*AKSNAP, "sql", str(bundle), q, "-o", "csv", *extra], env))
            s, n = ([statistics.median(x[i] for x in got[m]) for i in range(3)]
                    for m in ("sandbox", "native"))
            print(f"{label:30} {s[0]:9.2f} {n[0]:9.2f} {s[0] / n[0]:6.2f} {s[1] / n[1]:9.2f} "
                  f"{s[2] / 2**20:9.0f} M {n[2] / 2**20:8.0f} M")
        load = os.getloadavg()
        print(f"\nload {load[0]:.1f} {load[1]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
