"""`aksnap whatif` against the simulator it models, and its speed on a 1M-task bundle.

    python bench/bench_whatif.py                         # validation + speed (BIG below)
    python bench/bench_whatif.py --big /work/bundles/htc1m.aksnap
    python bench/bench_whatif.py --no-speed              # validation only
    python bench/bench_whatif.py --lazy-only             # the lazy validation only

Validation: for each scenario that takes a pod count (htcmock, fanout, many), at two sizes,
the simulated control plane runs the same seeded workload with P/2, P and 2P pods, and each
run is exported over real gRPC. The P bundle is then replayed:

- ``--policy recorded`` on its recorded pods: the calibration (makespan and final result,
  against the P run itself; bar 5 %);
- ``--pods P/2`` and ``--pods 2P`` (fifo, ArmoniK's queue): against the simulator's own P/2
  and 2P runs (bar 10 %).

Lazy: for htcmock and fanout at two sizes, the full run with P pods is exported; for a few
target results (deep in the graph, half-way, near the end) ``--policy lazy --target R`` on the
full bundle is compared with the simulator running the same seeded plan submitting only R's
upstream (``build_scenario(..., lazy_targets=[template])``: results are matched by the template
that owns them, ids differ between runs), with the same pods, exported too: R's time from the
first task's creation (error %), and the tasks and task-seconds not run.

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


def export(name: str, seed: int, tasks: int, pods: int, out: Path, scenario: bool = False,
           **kw):
    from aksnap.exporter import export as ex
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    if name == "many":
        kw.setdefault("sessions", 20)
    sc = build_scenario(name, seed=seed, tasks=tasks, pods=pods, **kw)
    with SimulatedControlPlane(sc) as cp:
        ex(cp.start("127.0.0.1", 0), out, all_sessions=True)
    return sc if scenario else sc.truth


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


LAZY_SIZES = {"htcmock": ((2000, 8), (20000, 32)), "fanout": ((2000, 8), (20000, 32))}


def lazy_targets(name: str, cl) -> list[tuple[str, list[int]]]:
    """(label, task rows) of the targets picked in a full run (a row: the task that owns the
    target result in the end). htcmock: the deepest leaf that ended first, the aggregation that
    ended half-way through the run, the top-level subtree's aggregation that ended last, and
    every 4th top-level subtree (about a quarter of the work: the pods are contended); fanout:
    the bag task that ended half-way, the one that ended last, every 8th bag task (at most
    200), and the reduce (everything)."""
    import numpy as np

    ended = cl.ts["ended"]
    reads = cl.dep_n > 0
    if name == "fanout":
        bag = np.flatnonzero(~reads)
        bag = bag[np.argsort(ended[bag], kind="stable")]
        some = np.sort(bag)[::8][:200]
        return [("bag task, ended half-way", [int(bag[len(bag) // 2])]),
                ("bag task, ended last", [int(bag[-1])]),
                (f"{len(some)} bag tasks (every 8th)", some.tolist()),
                ("the reduce (final result)", [int(np.flatnonzero(reads)[0])])]
    parent = cl.parent_idx
    depth = np.zeros(cl.n_tasks, dtype=np.int64)
    cur = parent.copy()
    while (cur >= 0).any():
        alive = cur >= 0
        depth[alive] += 1
        cur[alive] = parent[np.maximum(cur[alive], 0)]
    leaf = ~reads & (cl.child_n == 0)
    deep = np.flatnonzero(leaf & (depth == depth[leaf].max()))
    aggs = np.flatnonzero(reads)
    aggs_by_end = aggs[np.argsort(ended[aggs], kind="stable")]
    # a top-level subtree's output: its node's own (a leaf) or its aggregation's (depth 2)
    top = np.flatnonzero(((depth == 1) & leaf) | (reads & (depth == 2)))
    top_aggs = top[reads[top]]
    quarter = top[::4][:200]
    return [("deepest leaf, ended first", [int(deep[np.argmin(ended[deep])])]),
            ("aggregation, ended half-way", [int(aggs_by_end[len(aggs_by_end) // 2])]),
            ("top-level subtree, ended last", [int(top_aggs[np.argmax(ended[top_aggs])])]),
            (f"{len(quarter)} top-level subtrees (every 4th)", quarter.tolist())]


def validate_lazy(work: Path, seed: int) -> list[dict]:
    """For each target set: whatif --policy lazy --target R... on the full P-pod bundle, against
    the simulator running only their upstream (the plan pruned to it, same pods), exported
    too. Several targets: the time of the last one, and the worst error over them."""
    from aksnap.fixtures.scenarios import result_template

    rows = []
    for name, sizes in LAZY_SIZES.items():
        for tasks, p in sizes:
            base = work / f"lazy-{name}-{tasks}-{p}"
            full = export(name, seed, tasks, p, base, scenario=True)
            cl = full.cluster
            total_work = sum(r["work_s"] for r in whatif(base, calibrate=False)["partitions"])
            for label, trows in lazy_targets(name, cl):
                rids = [cl.result_id(cl.outputs(r)[0]) for r in trows]
                tk = [result_template(cl, rid) for rid in rids]
                out = work / f"lazy-{name}-{tasks}-{p}-{tk[0][0]}"
                lz = export(name, seed, tasks, p, out, scenario=True,
                            lazy_targets=sorted({t for t, _ in tk}))
                rids2 = [lz.truth["lazy_targets"][t][k] for t, k in tk]
                t0 = time.perf_counter()
                pred = whatif(base, policy="lazy", targets=rids, calibrate=False)
                secs = time.perf_counter() - t0
                real = whatif(out, targets=rids2, calibrate=False)
                pt = [t["predicted_s"] for t in pred["targets"]]
                rt = [t["recorded_s"] for t in real["targets"]]
                real_work = sum(r["work_s"] for r in real["partitions"])
                row_ = {"scenario": name, "tasks": tasks, "P": p, "target": label,
                        "full_s": max(t["recorded_s"] for t in pred["targets"]),
                        "lazy_real_s": max(rt), "lazy_pred_s": max(pt),
                        "error_pct": round(pct(max(pt), max(rt)), 3),
                        "worst_pct": round(max(abs(pct(a, b)) for a, b in zip(pt, rt)), 3),
                        "not_run_pred": pred["lazy"]["tasks_not_run"],
                        "not_run_real": cl.n_tasks - lz.truth["n_tasks"],
                        "task_s_not_run_pred": pred["lazy"]["task_seconds_not_run"],
                        "task_s_not_run_real": round(total_work - real_work, 3),
                        "replay_s": round(secs, 2)}
                rows.append(row_)
                print(json.dumps(row_), flush=True)
                shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(base, ignore_errors=True)
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


def speed(big: Path, work: Path, before: str | None = None) -> list[tuple]:
    """Each command timed with this code and, with ``before`` (a PYTHONPATH holding another
    ``aksnap`` package, e.g. main's), with that one right after it: the same machine load."""
    env = {**os.environ, "AKSNAP_CACHE_DIR": str(work / "cache")}
    envs = [("after", env)] + ([("before", {**env, "PYTHONPATH": before})] if before else [])
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
            ("whatif --policy critical-path, calibration not cached",
             ["--policy", "critical-path"], "<= 10 s"),
            ("whatif --curve --no-calibration (4 capacities)", ["--curve", "--no-calibration"],
             "<= 30 s")):
        if args[:2] == ["--pods", "0"]:
            d = json.loads(timed([*AKSNAP, "whatif", str(big), "-o", "json"], env)[2])
            args = ["--pods", str(2 * max(d["summary"]["pods"].values()))] + args[2:]
        for which, e in envs:
            if "not cached" in label:
                for f in (work / "cache").glob("whatif-calibration-*"):
                    f.unlink()
            wall, rss, out = timed([*AKSNAP, "whatif", str(big), *args, "-o", "json"], e)
            d = json.loads(out)
            cal = (d["calibration"] or {}).get("makespan_error_pct")
            rows.append((label, wall, rss, bar, d["summary"]["predicted_s"], cal, d.get("lazy")))
            load = os.getloadavg()[0]
            print(f"| {label} | {which} | {wall:.2f} s | {CPU['last']:.2f} s | {rss / 2**30:.2f} GiB "
                  f"| {bar} | {d['summary']['predicted_s']} s | {load:.1f} |", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", type=Path, default=Path("/work/bundles/htc1m.aksnap"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-validate", action="store_true")
    ap.add_argument("--no-lazy", action="store_true", help="skip the lazy validation")
    ap.add_argument("--before", help="a PYTHONPATH holding another aksnap package (e.g. main's "
                    "tree laid out as aksnap/): each speed command is also timed with it")
    ap.add_argument("--lazy-only", action="store_true", help="only the lazy validation")
    a = ap.parse_args()
    if a.lazy_only:
        a.no_validate = a.no_speed = True
    work = Path(tempfile.mkdtemp(prefix="aksnap-bench-whatif-"))
    try:
        if not a.no_lazy:
            rows = validate_lazy(work, a.seed)
            print("\n| scenario | tasks | P | target(s) | full run | lazy run: real, predicted, "
                  "error (worst target) | tasks not run: real, predicted | task-seconds not run: "
                  "real, predicted |")
            print("|---|---|---|---|---|---|---|---|")
            for r in rows:
                print(f"| {r['scenario']} | {r['tasks']} | {r['P']} | {r['target']} "
                      f"| {r['full_s']:.1f} s | {r['lazy_real_s']:.2f} s, {r['lazy_pred_s']:.2f} s, "
                      f"{r['error_pct']:+.2f} % ({r['worst_pct']:.2f} %) | {r['not_run_real']}, {r['not_run_pred']} "
                      f"| {r['task_s_not_run_real']:.1f} s, {r['task_s_not_run_pred']:.1f} s |")
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
            print("| command | code | wall | CPU (user + sys) | peak RSS | bar | predicted makespan "
                  "| load |")
            print("|---|---|---|---|---|---|---|---|")
            speed(a.big, work, a.before)
            load = os.getloadavg()
            print(f"load {load[0]:.1f} {load[1]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
