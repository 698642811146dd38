"""`aksnap whatif` against the simulator it models, and its speed on a 1M-task bundle.

    python bench/bench_whatif.py                         # validation + speed (BIG below)
    python bench/bench_whatif.py --big /work/bundles/htc1m.aksnap
    python bench/bench_whatif.py --no-speed              # validation only

Validation: for each scenario that takes a pod count (htcmock, fanout, many), at two sizes,
the simulated control plane runs the same seeded workload with P/2, P and 2P pods, and each
run is exported over real gRPC. The P bundle is then replayed:

- ``--policy recorded`` on its recorded pods: the calibration (makespan and final result,
  against the P run itself; bar 5 %);
- ``--pods P/2`` and ``--pods 2P`` (fifo, ArmoniK's queue): against the simulator's own P/2
  and 2P runs (bar 10 %).

Speed: whole ``aksnap whatif`` processes on BIG (wall clock and the child's own peak RSS, from
``os.wait4``), index cache warm (one untimed run first): default (fifo at the recorded
capacity, plus the calibration replay), critical-path, lazy, and --curve (four capacities).
Bars: one replay <= 10 s and <= 2 GiB; the capacity table <= 30 s.
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
SIZES = {"htcmock": ((2000, 8), (20000, 32)), "fanout": ((2000, 8), (20000, 32)),
         "many": ((2000, 8), (20000, 32))}


def export(name: str, seed: int, tasks: int, pods: int, out: Path):
    from aksnap.exporter import export as ex
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    kw = {"sessions": 20} if name == "many" else {}
    sc = build_scenario(name, seed=seed, tasks=tasks, pods=pods, **kw)
    with SimulatedControlPlane(sc) as cp:
        ex(cp.start("127.0.0.1", 0), out, all_sessions=True)
    return sc.truth


def whatif(path: Path, **kw) -> dict:
    from aksnap.analyzer import whatif as w
    from aksnap.analyzer.snapshot import Snapshot

    with Snapshot.open(path) as snap:
        return w.build(snap, **kw)


def pct(pred, real) -> float:
    return 100.0 * (pred - real) / real


def validate(work: Path, seed: int) -> list[dict]:
    rows = []
    for name, sizes in SIZES.items():
        for tasks, p in sizes:
            runs = {}
            for pods in (p // 2, p, 2 * p):
                out = work / f"{name}-{tasks}-{pods}"
                truth = export(name, seed, tasks, pods, out)
                runs[pods] = (out, truth)
            base, truth = runs[p]
            target = truth.get("final_result")
            cal = whatif(base, policy="recorded", targets=[target] if target else None)
            row = {"scenario": name, "tasks": tasks, "P": p,
                   "recorded_s": cal["summary"]["recorded_s"],
                   "calibration_pct": cal["calibration"]["makespan_error_pct"],
                   "target_pct": None}
            if target:
                t = cal["targets"][0]
                row["target_pct"] = round(pct(t["predicted_s"], t["recorded_s"]), 3)
            for pods, key in ((p // 2, "half"), (2 * p, "double")):
                real = whatif(runs[pods][0])["summary"]["recorded_s"]
                pred = whatif(base, pods=pods)["summary"]["predicted_s"]
                row[f"{key}_real_s"], row[f"{key}_pred_s"] = real, pred
                row[f"{key}_pct"] = round(pct(pred, real), 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


CPU: dict[str, float] = {}


def timed(cmd: list[str], env: dict) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes of that child only, stdout); its CPU seconds (user +
    system, less sensitive to a loaded machine than the wall clock) in CPU["last"]."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed: {err.strip()[-300:]}")
    CPU["last"] = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss * 1024, out


def speed(big: Path, work: Path) -> list[tuple]:
    env = {**os.environ, "AKSNAP_CACHE_DIR": str(work / "cache")}
    # a mid-tree result as the lazy target: the output of a task at depth 2 of the tree
    _, _, out = timed([*AKSNAP, "sql", str(big),
                       "SELECT expected_output_ids[1] AS r FROM tasks WHERE len(parent_task_ids) = 3 "
                       "AND task_id = initial_task_id ORDER BY created_at, task_id LIMIT 1",
                       "-o", "csv"], env)
    target = out.strip().splitlines()[1]
    timed([*AKSNAP, "whatif", str(big), "-o", "json"], env)  # warms the index cache
    rows = []
    for label, args, bar in (
            ("whatif --no-calibration (fifo, recorded pods)", ["--no-calibration"],
             "<= 10 s, <= 2 GiB"),
            ("whatif --pods 2N --no-calibration", ["--pods", "0", "--no-calibration"],
             "<= 10 s, <= 2 GiB"),
            ("whatif --policy recorded (is the calibration)", ["--policy", "recorded"],
             "<= 10 s, <= 2 GiB"),
            ("whatif --policy critical-path --no-calibration",
             ["--policy", "critical-path", "--no-calibration"], "<= 10 s, <= 2 GiB"),
            ("whatif --policy lazy --target R --no-calibration",
             ["--policy", "lazy", "--target", target, "--no-calibration"], "<= 10 s, <= 2 GiB"),
            ("whatif (default: fifo + calibration replay)", [], "(two replays)"),
            ("whatif --policy critical-path", ["--policy", "critical-path"], "(two replays)"),
            ("whatif --curve --no-calibration (4 capacities)", ["--curve", "--no-calibration"],
             "<= 30 s")):
        if args[:2] == ["--pods", "0"]:
            d = json.loads(timed([*AKSNAP, "whatif", str(big), "-o", "json"], env)[2])
            args = ["--pods", str(2 * max(d["summary"]["pods"].values()))] + args[2:]
        wall, rss, out = timed([*AKSNAP, "whatif", str(big), *args, "-o", "json"], env)
        d = json.loads(out)
        cal = (d["calibration"] or {}).get("makespan_error_pct")
        rows.append((label, wall, rss, bar, d["summary"]["predicted_s"], cal, d.get("lazy")))
        print(f"| {label} | {wall:.2f} s | {CPU['last']:.2f} s | {rss / 2**30:.2f} GiB | {bar} | "
              f"{d['summary']['predicted_s']} s |", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", type=Path, default=Path("/work/bundles/htc1m.aksnap"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-validate", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aksnap-bench-whatif-"))
    try:
        if not a.no_validate:
            rows = validate(work, a.seed)
            print("\n| scenario | tasks | P | recorded makespan | calibration (P) | final result (P) "
                  "| P/2: real, predicted, error | 2P: real, predicted, error |")
            print("|---|---|---|---|---|---|---|---|")
            for r in rows:
                tp = "" if r["target_pct"] is None else f"{r['target_pct']:+.2f} %"
                print(f"| {r['scenario']} | {r['tasks']} | {r['P']} | {r['recorded_s']:.1f} s "
                      f"| {r['calibration_pct']:+.2f} % | {tp} "
                      f"| {r['half_real_s']:.1f} s, {r['half_pred_s']:.1f} s, {r['half_pct']:+.2f} % "
                      f"| {r['double_real_s']:.1f} s, {r['double_pred_s']:.1f} s, "
                      f"{r['double_pct']:+.2f} % |")
        if not a.no_speed and a.big.exists():
            print(f"\nspeed on {a.big} (whole processes, index cache warm)\n")
            print("| command | wall | CPU (user + sys) | peak RSS | bar | predicted makespan |")
            print("|---|---|---|---|---|---|")
            speed(a.big, work)
            load = os.getloadavg()
            print(f"load {load[0]:.1f} {load[1]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
