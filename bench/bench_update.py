"""``aksnap export --update`` versus a full export, in one run, as whole CLI processes.

    python bench/bench_update.py                  # 1,000,000 tasks (2,000,000 results)
    python bench/bench_update.py --tasks 100000   # smaller

What runs, each in its own process:

1. the simulated control plane: ``synthetic_cluster`` (one session, N tasks, two results
   each) settled so that ``--open`` (default 1 %) of the tasks are still PROCESSING, their
   outputs CREATED, an hour after the session was submitted; it serves over loopback gRPC and takes one command on stdin, ``advance``:
   every open task completes (its output too) and ``--new`` (default 0.5 %) new PENDING tasks
   are submitted (each with a payload and an output), so about 1.5 % of the rows change;
2. ``aksnap export --session S --out parent`` (the capture to refresh);
3. after ``advance``: ``aksnap export --update parent --out updated`` and ``aksnap export
   --session S --out full``, each timed as a whole process (start-up included), in that order
   and then once more in the other order (the figures are the better of two);
4. the two bundles compared table by table, sorted by id (they must be equal).

Prints one table: per way of exporting, seconds, CPU seconds (the exporter's process, and the
server's meanwhile: the cluster's cost), task and result rows fetched
(the update's figure from its manifest, the full export's is every row) and their share.
Not a test: the figures depend on the machine (and on what else it runs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

SERVER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from aksnap.fixtures.server import SimulatedControlPlane, synthetic_cluster

    n, open_share, new_share = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    cluster = synthetic_cluster(n, n_sessions=1, seed=0)
    session = cluster.sessions.column("session_id")[0].as_py()

    # The cluster's clock, running with the wall clock: the session was submitted an hour ago
    # (synthetic_cluster creates its tasks within seconds of each other).
    offset = time.time() - (cluster.start_time + cluster.end_time + 3600)
    def clock():
        return time.time() - offset

    def complete(mask):
        # tasks in `mask` that are PROCESSING become COMPLETED now, their outputs too
        t = cluster.tasks
        m = pc.and_(pa.array(mask), pc.equal(t.column("status"), "TASK_STATUS_PROCESSING"))
        now = pa.scalar(int(clock() * 1e6), pa.timestamp("us", tz="UTC"))
        def put(tbl, name, arr):
            i = tbl.schema.get_field_index(name)
            return tbl.set_column(i, tbl.schema.field(i), arr)
        t = put(t, "status", pc.if_else(m, "TASK_STATUS_COMPLETED", t.column("status")))
        for c in ("processed_at", "ended_at"):
            t = put(t, c, pc.if_else(m, now, t.column(c)))
        r = cluster.results
        rm = pa.concat_arrays([pa.array(np.zeros(n, bool)), m.combine_chunks()
                               if isinstance(m, pa.ChunkedArray) else m])
        r = put(r, "status", pc.if_else(rm, "RESULT_STATUS_COMPLETED", r.column("status")))
        r = put(r, "completed_at", pc.if_else(rm, now, r.column("completed_at")))
        cluster.tasks, cluster.results = t.combine_chunks(), r.combine_chunks()
        cluster.version += 1
        return int(pc.sum(m).as_py() or 0)

    rng = np.random.default_rng(1)
    running = pc.equal(cluster.tasks.column("status"), "TASK_STATUS_PROCESSING")
    keep_open = rng.random(n) < open_share * n / max(1, pc.sum(running).as_py())
    complete(~keep_open)                      # settle: only `open_share` still running
    # The outputs of tasks in ERROR were aborted (synthetic_cluster leaves them CREATED).
    failed = pc.equal(cluster.tasks.column("status"), "TASK_STATUS_ERROR").combine_chunks()
    rm = pa.concat_arrays([pa.array(np.zeros(n, bool)), failed])
    i = cluster.results.schema.get_field_index("status")
    cluster.results = cluster.results.set_column(i, cluster.results.schema.field(i), pc.if_else(
        rm, "RESULT_STATUS_ABORTED", cluster.results.column("status"))).combine_chunks()
    cp = SimulatedControlPlane(cluster)
    ep = cp.start()
    still = int(pc.sum(pc.equal(cluster.tasks.column("status"), "TASK_STATUS_PROCESSING")).as_py())
    print(ep, session, still, flush=True)
    for line in sys.stdin:
        if line.strip() == "advance":
            done = complete(np.ones(n, bool))
            cluster.inject_tasks(session, int(n * new_share), clock() - cluster.start_time)
            cp.clear_caches()
            print(done, flush=True)
    cp.stop()
""")


SERVER_PID = 0


def server_cpu() -> float:
    """CPU seconds the simulated control plane has used so far (Linux /proc)."""
    with open(f"/proc/{SERVER_PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cli(*args: str) -> tuple[float, float, dict, float]:
    """Run ``aksnap ARGS -q -o json`` as a process: (wall seconds, CPU seconds, summary, the
    server's CPU seconds meanwhile)."""
    srv = server_cpu()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "aksnap", *args, "-q", "-o", "json"],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"aksnap {' '.join(args)} failed: {r.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(r.stdout), server_cpu() - srv


def same_content(a: str, b: str) -> bool:
    import pyarrow.parquet as pq

    keys = {"sessions": "session_id", "tasks": "task_id", "results": "result_id",
            "partitions": "partition_id"}
    for table, key in keys.items():
        ta = pq.read_table(os.path.join(a, f"{table}.parquet")).sort_by(key)
        tb = pq.read_table(os.path.join(b, f"{table}.parquet")).sort_by(key)
        if not ta.equals(tb):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--open", type=float, default=0.01, help="share of tasks still running")
    ap.add_argument("--new", type=float, default=0.005, help="share of tasks submitted since")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="aksnap-bench-update-")
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.tasks), str(args.open),
                               str(args.new)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    global SERVER_PID
    SERVER_PID = server.pid
    try:
        ep, session, still = server.stdout.readline().split()
        parent = os.path.join(tmp, "parent")
        wall_p, cpu_p, s_p, srv_p = cli("export", "--endpoint", ep, "--session", session, "--out", parent)
        server.stdin.write("advance\n")
        server.stdin.flush()
        changed = int(server.stdout.readline())
        runs: dict[str, list[tuple[float, float, dict, float]]] = {"update": [], "full": []}
        for order in (("update", "full"), ("full", "update")):
            for way in order:
                out = os.path.join(tmp, way)
                shutil.rmtree(out, ignore_errors=True)
                if way == "update":
                    runs[way].append(cli("export", "--update", parent, "--out", out))
                else:
                    runs[way].append(cli("export", "--endpoint", ep, "--session", session,
                                         "--out", out))
        equal = same_content(os.path.join(tmp, "update"), os.path.join(tmp, "full"))
    finally:
        server.stdin.close()
        server.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)

    full = min(runs["full"], key=lambda r: r[0])
    upd = min(runs["update"], key=lambda r: r[0])
    held = full[2]["rows"]["tasks"] + full[2]["rows"]["results"]
    fetched = sum(upd[2]["update"]["rows_fetched"].values())
    print(f"{args.tasks:,} tasks, {args.tasks * 2:,} results; {int(still):,} tasks open in the "
          f"parent, {changed:,} completed since and {int(args.tasks * args.new):,} submitted "
          f"since (their results too)")
    print(f"{'run':<24}{'seconds':>9}{'cpu s':>8}{'server cpu s':>14}{'rows fetched':>15}"
          f"{'share':>8}")
    print(f"{'full export (parent)':<24}{wall_p:>9.2f}{cpu_p:>8.2f}{srv_p:>14.2f}"
          f"{s_p['rows']['tasks'] + s_p['rows']['results']:>15,}{'100 %':>8}")
    print(f"{'full export (now)':<24}{full[0]:>9.2f}{full[1]:>8.2f}{full[3]:>14.2f}{held:>15,}"
          f"{'100 %':>8}")
    print(f"{'export --update':<24}{upd[0]:>9.2f}{upd[1]:>8.2f}{upd[3]:>14.2f}{fetched:>15,}"
          f"{100 * fetched / held:>7.2f}%")
    print(f"update equals the full export (every table, sorted by id): {equal}")
    print(f"update: {upd[2]['update']['refetched_by_id']} asked for by id, "
          f"{upd[2]['update']['rows_kept']} kept; all runs (s): "
          f"update {[round(r[0], 2) for r in runs['update']]}, "
          f"full {[round(r[0], 2) for r in runs['full']]}")


if __name__ == "__main__":
    main()
