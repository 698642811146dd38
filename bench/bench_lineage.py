"""The analyzer's rows of the scale issue, through the CLI, as whole processes.

    python bench/bench_lineage.py --bundle BIG            # a bundle you already exported
    python bench/bench_lineage.py --tasks 1000000         # simulate htcmock (seed 11), export, measure
    OTHER/bin/python bench/bench_lineage.py --bundle BIG  # the same rows with another install
                                                          # (main's, for before / after)

Each row is one `aksnap ...` process, timed from the outside (wall clock) with its own peak
memory (``os.wait4``'s ru_maxrss of that child only):

- `aksnap lineage BIG ROOT` with no index cache (the open builds it), then warm (twice);
- `aksnap analyze BIG` warm;
- `aksnap sql BIG "select 1"` (start-up cost).

ROOT is the session's final result: the output of the task the client submitted, which
after ownership moves is produced at the top of the tree, so its lineage is the whole session.
The checksums are verified on every run (the default); a warm row may skip the SHA-256 when
the verification record of an earlier row vouches for the unchanged files (docs/analyzer.md).
The children write their bytecode under the bench's own directory (``PYTHONPYCACHEPREFIX``,
``PYTHONDONTWRITEBYTECODE`` dropped), as an installed package has it: compiling the project's
modules at every start (0.3 s) is not what a user pays. ``--skip-analyze`` leaves out the
analyze row (about a minute of CPU at 10M tasks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AKSNAP = [sys.executable, "-m", "aksnap"]


def run(cmd: list[str], env: dict) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one whole process (its CPU seconds, user and
    system, in ``run.cpu``: on a loaded machine they say more than the wall clock)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    run.cpu = usage.ru_utime + usage.ru_stime
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed ({p.returncode}): {err.strip()[-300:]}")
    return wall, usage.ru_maxrss * 1024, out


def export_big(tasks: int, seed: int, out: Path) -> None:
    sim = subprocess.Popen([*AKSNAP, "simulate", "--scenario", "htcmock", "--tasks", str(tasks),
                            "--seed", str(seed), "--port", "0", "--fixed-epoch"],
                           stdout=subprocess.PIPE, text=True)
    try:
        ep = sim.stdout.readline().strip()
        subprocess.run([*AKSNAP, "export", "--endpoint", ep, "--all", "--out", str(out),
                        "--quiet", "--overwrite"], check=True)
    finally:
        sim.kill()
        sim.wait()


def root_result(bundle: Path, env: dict) -> str:
    q = ("SELECT r.result_id FROM tasks t, unnest(t.expected_output_ids) AS u(result_id) "
         "JOIN results r USING (result_id) WHERE len(t.parent_task_ids) = 1 "
         "AND t.task_id = t.initial_task_id ORDER BY t.created_at, t.task_id LIMIT 1")
    _, _, out = run([*AKSNAP, "sql", str(bundle), q, "-o", "csv"], env)
    return out.strip().splitlines()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, help="an exported bundle (default: export one)")
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--skip-analyze", action="store_true", help="leave out the analyze row")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aksnap-bench-lineage-"))
    try:
        bundle = a.bundle
        if bundle is None:
            bundle = work / "big"
            t = time.perf_counter()
            export_big(a.tasks, a.seed, bundle)
            print(f"exported htcmock {a.tasks} (seed {a.seed}) in {time.perf_counter() - t:.1f} s")
        env = {**os.environ, "AKSNAP_CACHE_DIR": str(work / "cache"),
               "PYTHONPYCACHEPREFIX": str(work / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        root = root_result(bundle, env)
        rows = []
        shutil.rmtree(work / "cache", ignore_errors=True)
        tasks = json.loads((bundle / "manifest.json").read_text())["tables"]["tasks"]["rows"]
        # the bars of the scale issues: at 1M (issue 8) and at 10M (issue 21)
        cold, warm, analyze, sql = (("<= 40 s, <= 4 GiB", "<= 5 s, <= 3 GiB", "<= 10 s, <= 4 GiB",
                                     "<= 1 s") if tasks > 5_000_000 else
                                    ("<= 5 s, <= 1 GiB", "<= 1.5 s", "<= 3 s", ""))
        for label, cmd, bar in (
                ("lineage ROOT, no index cache", ["lineage", str(bundle), root], cold),
                ("lineage ROOT, cache warm", ["lineage", str(bundle), root], warm),
                ("lineage ROOT, cache warm (again)", ["lineage", str(bundle), root], warm),
                ("analyze, cache warm", ["analyze", str(bundle)], analyze),
                ('sql "select 1"', ["sql", str(bundle), "select 1"], sql)):
            if a.skip_analyze and cmd[0] == "analyze":
                continue
            wall, rss, _ = run([*AKSNAP, *cmd], env)
            rows.append((label, wall, run.cpu, rss, bar))
            # each row as soon as it is measured: a 10M run takes minutes, and a later failure
            # must not lose the rows before it
            print(f"  {label}: {wall:.2f} s wall, {run.cpu:.2f} s CPU, {rss / 2**30:.2f} GiB",
                  file=sys.stderr, flush=True)
        load = os.getloadavg()
        print(f"\nbundle {bundle} ({sum(f.stat().st_size for f in bundle.iterdir()) / 2**20:.0f} MiB),"
              f" root result {root}")
        print(f"{'measure (whole process)':36}  {'wall s':>7}  {'CPU s':>6}  {'peak RSS':>9}  bar")
        for label, wall, cpu, rss, bar in rows:
            print(f"{label:36}  {wall:7.2f}  {cpu:6.2f}  {rss / 2**30:7.2f} G  {bar}")
        print(f"\nload {load[0]:.1f} {load[1]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
