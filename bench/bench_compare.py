"""Benchmark of comparing runs: the issue's speed bars, each a whole `aksnap` process (not a test).

    python bench/bench_compare.py                  # diff of two 1M-task bundles, archive add of
                                                   # one, compare over 1,000 runs x 20,000 tasks
    python bench/bench_compare.py --small          # 100k-task bundles, 100 runs x 20,000 tasks
    python bench/bench_compare.py --keep /tmp/cmp  # keep (and reuse) the bundles and the archive

The two 1M-task bundles are bench_analyze.py's HtcMock-shaped bundles (seeds 7 and 8). The
archive's runs come from one seeded simulated run (the `htcmock-final` scenario, 20,000 tasks,
served by the simulated control plane and exported over gRPC), replayed night after night:
run i is the same workload exported i days later, every task's processing time drawn again
with 5% noise, and run 700 (of 1,000; 70 of 100 with --small) 60% slower. Each run is a bundle
of its own (its own manifest digest), added with `aksnap.analyzer.archive.add`. Every command
is timed as a fresh process with /usr/bin/time (wall, CPU, peak RSS); `diff` runs cold (no
index cache) and warm.
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

TS_COLUMNS = ("created_at", "submitted_at", "received_at", "acquired_at", "fetched_at",
              "started_at", "processed_at", "ended_at", "pod_ttl")


def timed(argv: list[str], env: dict[str, str]) -> dict:
    """Run one aksnap command as its own process: wall s, CPU s, peak RSS MiB, exit code."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", tf.name, *argv],
                           capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        user, sys_, rss = tf.read().split()[-3:]
    return {"wall": wall, "cpu": float(user) + float(sys_), "rss": int(rss) / 1024,
            "code": r.returncode, "stdout": r.stdout, "stderr": r.stderr}


def base_run(work: Path, tasks: int) -> Path:
    """The simulated run every night replays: htcmock-final, exported over real gRPC."""
    out = work / "base.aksnap"
    if (out / "manifest.json").exists():
        return out
    from aksnap.exporter import export
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario("htcmock-final", seed=11, tasks=tasks)
    with SimulatedControlPlane(sc) as cp:
        export(cp.start(), out, all_sessions=True)
    return out


def _us(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    arr = col.combine_chunks()
    return arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), \
        arr.is_valid().to_numpy(zero_copy_only=False)


def replay(base: Path, out: Path, day: int, slow: float, rng: np.random.Generator) -> Path:
    """Night ``day`` of the base run: every timestamp ``day`` days later, processing redrawn
    with 5% noise (x ``slow``), the times after processing moved with it."""
    import pyarrow.parquet as pq

    from aksnap.bundle import TABLES, read_manifest, write_bundle

    tables = {t: pq.read_table(base / f"{t}.parquet") for t in TABLES}
    shift = day * 86_400_000_000
    tasks = tables["tasks"]
    started, s_ok = _us(tasks["started_at"])
    processed, p_ok = _us(tasks["processed_at"])
    ran = s_ok & p_ok
    extra = np.where(ran, ((processed - started) * (rng.normal(1.0, 0.05, len(started)) * slow - 1))
                     .astype(np.int64), 0)
    for c in TS_COLUMNS:
        v, ok = _us(tasks[c])
        v = v + shift + (extra if c in ("processed_at", "ended_at") else 0)
        tasks = tasks.set_column(tasks.schema.get_field_index(c), c,
                                 pa.array(v, pa.int64(), mask=~ok).cast(tasks.schema.field(c).type))
    tables["tasks"] = tasks
    for t, cols in (("results", ("created_at", "completed_at")), ("sessions", ("created_at", "closed_at"))):
        tab = tables[t]
        for c in cols:
            v, ok = _us(tab[c])
            tab = tab.set_column(tab.schema.get_field_index(c), c,
                                 pa.array(v + shift, pa.int64(), mask=~ok).cast(tab.schema.field(c).type))
        tables[t] = tab
    m = read_manifest(base)
    exported = datetime.fromisoformat(m.exported_at) + timedelta(days=day)
    latest = (datetime.fromisoformat(m.latest_timestamp) + timedelta(days=day)).isoformat() \
        if m.latest_timestamp else None
    return write_bundle(out, tables, manifest_fields={
        "exported_at": exported.isoformat(), "latest_timestamp": latest,
        "armonik_versions": m.armonik_versions}, overwrite=True)


def build_archive(work: Path, runs: int, tasks: int, regressed: int) -> Path:
    from aksnap.analyzer import archive

    arc = work / "nightly.archive"
    have = len(archive.Archive.open(arc).run_ids()) if (arc / "archive.json").exists() else 0
    if have >= runs:
        return arc
    base = base_run(work, tasks)
    rng = np.random.default_rng(5)
    t0 = time.perf_counter()
    for day in range(have + 1, runs + 1):
        b = replay(base, work / "night.aksnap", day, 1.6 if day == regressed else 1.0, rng)
        archive.add(arc, [b], {"env": "nightly"})
        if day % 100 == 0:
            print(f"  {day} runs archived ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    shutil.rmtree(work / "night.aksnap", ignore_errors=True)
    return arc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--tasks", type=int, help="tasks of each diff bundle (default 1,000,000)")
    ap.add_argument("--runs", type=int, help="runs in the archive (default 1,000)")
    args = ap.parse_args()
    big = args.tasks or (100_000 if args.small else 1_000_000)
    runs = args.runs or (100 if args.small else 1000)
    per_run = 20_000
    regressed = int(runs * 0.7)
    work = args.keep or Path(tempfile.mkdtemp(prefix="aksnap-bench-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    env = {**os.environ, "AKSNAP_CACHE_DIR": str(cache)}
    aksnap = shutil.which("aksnap") or "aksnap"

    import bench_analyze

    bundles = []
    for name, seed in (("a", 7), ("b", 8)):
        b = work / f"{name}-{big}.aksnap"
        if not (b / "manifest.json").exists():
            print(f"generating {b.name} ...", file=sys.stderr)
            bench_analyze.generate(b, big, seed=seed)
        bundles.append(str(b))
    print(f"building the archive ({runs} runs x {per_run} tasks) ...", file=sys.stderr)
    t0 = time.perf_counter()
    arc = build_archive(work, runs, per_run, regressed)
    built = time.perf_counter() - t0

    rows = []
    shutil.rmtree(cache, ignore_errors=True)
    r = timed([aksnap, "diff", *bundles, "-o", "json"], env)
    rows.append(("diff, two %s-task bundles (cold: no index cache)" % f"{big:,}", r, "<= 5 s, <= 2 GiB"))
    r = timed([aksnap, "diff", *bundles, "-o", "json"], env)
    rows.append(("diff, the same (warm)", r, "<= 5 s, <= 2 GiB"))
    one = work / "one.archive"
    shutil.rmtree(one, ignore_errors=True)
    r = timed([aksnap, "archive", "add", str(one), bundles[0], "-o", "json"], env)
    rows.append((f"archive add, one {big:,}-task bundle", r, "<= 5 s"))
    r = timed([aksnap, "compare", str(arc), "-o", "json"], env)
    flagged = json.loads(r["stdout"])["regressed_runs"] if r["code"] in (0, 1) else []
    rows.append((f"compare, {runs:,} runs x {per_run:,} tasks ({runs * per_run:,} task rows)", r,
                 "<= 10 s, <= 4 GiB"))
    r2 = timed([aksnap, "compare", str(arc), "--last", "30", "--metric", "phase.processing",
                "-o", "json"], env)
    rows.append(("compare --last 30 --metric phase.processing", r2, ""))

    print(f"\narchive: {arc} ({runs} runs, built in {built:.0f} s; run {regressed} injected 60% slower)")
    print(f"compare flagged: {', '.join(flagged) or 'nothing'}\n")
    print("| command (whole process) | wall s | CPU s | peak RSS MiB | exit | bar |")
    print("|---|---|---|---|---|---|")
    for what, r, bar in rows:
        print(f"| {what} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['rss']:.0f} | {r['code']} | {bar} |")
        if r["code"] not in (0, 1):
            print(f"  stderr: {r['stderr'].strip()[:300]}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
