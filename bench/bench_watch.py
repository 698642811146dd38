"""How many events per second ``aksnap watch`` keeps up with, and at what CPU cost.

    python bench/bench_watch.py                  # htcmock 200,000 tasks from t=260 s, x10, 30 s
    python bench/bench_watch.py --tasks 20000 --at 0 --speed 20 --seconds 15

What runs, each in its own process:

1. ``aksnap simulate --scenario htcmock --realtime --at T --speed X`` (the simulated control
   plane, its clock running X times the wall clock from simulated second T: by default half
   way through a 200,000-task run, so the watch's subscription first receives the replay of
   about 178,000 tasks and 310,000 results, as fast as the server sends, then live updates);
2. the watch's event path alone in its own process (``EventFollower`` into ``LiveState.apply``,
   exactly what ``aksnap watch`` runs between reconciles) for ``--seconds``: events/s received
   and its CPU (``/proc``), with the server's CPU beside it;
3. then, against a fresh server (the same run from the same instant), ``aksnap watch
   --session S -o json --interval I`` as a whole process (reconciles and analyses included),
   for ``--seconds``, then SIGINT;
   its last JSON line says how many events it received;
4. in this process, the watcher's own ceiling: the same event path (protobuf parse of each
   serialized ``EventSubscriptionResponse``, the follower's tuple, ``LiveState.apply``) over
   200,000 recorded events, with no server: events per second on one core.

With ``--first-view``, only a whole ``aksnap watch -o json`` against a fresh server, for
``--seconds``: when each state line arrived (counted from the watch's start: the first one is
the first complete view), what each reconcile took and in which steps (export or update,
reading back, analyses), the rows it fetched and the events received by then::

    python bench/bench_watch.py --first-view --seconds 90
    python bench/bench_watch.py --first-view --tasks 1000000 --at 200 --speed 1 --seconds 240

The figure to read: events/s received by the watch while its CPU stays well under one core
(the server, written in Python, is the one that cannot send faster: gRPC Python sends each
event as its own message).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


FOLLOW = """
import sys, time, threading
from aksnap.analyzer.live import LiveState
from aksnap.exporter.client import resolve_connection
from aksnap.exporter.follow import EventFollower
ep, session, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
state = LiveState(session)
lock = threading.Lock()
def sink(batch):
    with lock:
        state.apply(batch)
f = EventFollower(resolve_connection(ep), session, sink)
t0 = time.perf_counter(); c0 = time.process_time()
f.start(); time.sleep(seconds); f.stop()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(f.stats.events, wall, cpu, state.tasks.n, f.stats.drops, flush=True)
"""


def ceiling(n: int = 200_000) -> float:
    """Events per second of the watcher's event path on one core, no gRPC."""
    import random

    from armonik.protogen.common import events_common_pb2 as ev

    from aksnap.analyzer.live import LiveState
    from aksnap.exporter.follow import _RESULT_STATUS, _TASK_STATUS

    rnd = random.Random(0)
    ids = [f"{rnd.getrandbits(128):032x}" for _ in range(n // 4)]
    raw = []
    for k in range(n):
        i = ids[k % len(ids)]
        if k % 3 == 0:
            m = ev.EventSubscriptionResponse(session_id="s", task_status_update=dict(
                task_id=i, status=rnd.choice([2, 3, 4, 9])))
        elif k % 3 == 1:
            m = ev.EventSubscriptionResponse(session_id="s", new_task=dict(
                task_id=i, payload_id=i, status=12, expected_output_keys=[i], parent_task_ids=["s"]))
        else:
            m = ev.EventSubscriptionResponse(session_id="s", result_status_update=dict(
                result_id=i, status=2))
        raw.append(m.SerializeToString())
    state = LiveState("s")
    parse = ev.EventSubscriptionResponse.FromString
    t0 = time.process_time()
    batch = []
    for b in raw:
        e = parse(b)
        kind = e.WhichOneof("update")
        if kind == "task_status_update":
            u = e.task_status_update
            batch.append(("task", u.task_id, _TASK_STATUS.get(u.status)))
        elif kind == "new_task":
            u = e.new_task
            batch.append(("task", u.task_id, _TASK_STATUS.get(u.status)))
        else:
            u = e.result_status_update
            batch.append(("result", u.result_id, _RESULT_STATUS.get(u.status)))
        if len(batch) >= 4096:
            state.apply(batch)
            batch = []
    state.apply(batch)
    return n / (time.process_time() - t0)


def timed_watch(serve, stop, args) -> tuple[list, float, float, float]:
    """``aksnap watch -o json`` as a whole process against a fresh server for ``--seconds``
    (or until it exits), then SIGINT: (when each stdout line arrived, counted from its start;
    wall seconds; its CPU seconds, nan if it had exited; the server's CPU seconds meanwhile)."""
    import threading

    server, ep, session = serve()
    arrivals: list = []
    try:
        srv0 = cpu_of(server.pid)
        t0 = time.perf_counter()
        watcher = subprocess.Popen([sys.executable, "-m", "aksnap", "watch", "--endpoint", ep,
                                    "--session", session, "-o", "json", "--interval",
                                    str(args.interval)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def read():
            for line in watcher.stdout:
                arrivals.append((time.perf_counter() - t0, line))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while time.perf_counter() - t0 < args.seconds and watcher.poll() is None:
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        cpu = cpu_of(watcher.pid) if watcher.poll() is None else float("nan")
        srv = cpu_of(server.pid) - srv0
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        stop(server)
    return arrivals, wall, cpu, srv


def first_view(serve, stop, args) -> None:
    """When each state line of a whole watch arrives (the first: the first complete view, a
    reconcile taken), what each reconcile took, and the CPU of the watch and the server."""
    arrivals, wall, cpu, srv = timed_watch(serve, stop, args)
    states = [(t, json.loads(x)) for t, x in arrivals if x.startswith("{")]
    clock = "frozen" if args.frozen else f"at x{args.speed:g}"
    print(f"htcmock {args.tasks:,} tasks from t={args.at:g} s {clock}; aksnap watch "
          f"--interval {args.interval:g} for {args.seconds:g} s")
    seen = set()
    print(f"{'state':>5} {'arrived s':>10} {'reconcile s':>12} {'rows fetched':>13} {'tasks':>9} "
          f"{'events':>10}  parts")
    for t, st in states:
        if st["reconciles"] in seen or not st["reconciles"]:
            continue
        seen.add(st["reconciles"])
        print(f"{st['reconciles']:>5} {t:>10.1f} {st['last_reconcile_s']:>12} "
              f"{st['rows_fetched'] or 0:>13,} {st['tasks']:>9,} {st['events']['received']:>10,}  "
              f"{st.get('last_reconcile_parts')}")
    if not states:
        print("no complete view within the run")
    print(f"watch CPU {cpu / wall:.0%} of a core, server CPU {srv / wall:.0%} of a core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--at", type=float, default=260.0, help="simulated second to start from")
    ap.add_argument("--speed", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--frozen", action="store_true", help="the server's clock stands still at "
                    "--at (each reconcile then refetches the same open rows: the reconcile's "
                    "own cost, without a busy server)")
    ap.add_argument("--first-view", action="store_true", help="only the whole watch: when the "
                    "first complete view and each reconcile arrive")
    args = ap.parse_args()

    def serve():
        server = subprocess.Popen([sys.executable, "-m", "aksnap", "simulate", "--scenario",
                                   "htcmock", "--tasks", str(args.tasks), "--seed", "1",
                                   "--at", str(args.at)]
                                  + ([] if args.frozen else ["--realtime", "--speed",
                                                             str(args.speed)]),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ep = server.stdout.readline().strip()
        import grpc
        from armonik.client import ArmoniKSessions

        with grpc.insecure_channel(ep) as ch:
            session = ArmoniKSessions(ch).list_sessions()[1][0].session_id
        return server, ep, session

    def stop(server):
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    if args.first_view:
        first_view(serve, stop, args)
        return
    # the event path alone (a fresh server: the same run from the same instant)
    server, ep, session = serve()
    try:
        srv0 = cpu_of(server.pid)
        out = subprocess.run([sys.executable, "-c", FOLLOW, ep, session, str(args.seconds)],
                             capture_output=True, text=True, timeout=args.seconds + 60)
        f_events, f_wall, f_cpu, f_tasks, f_drops = out.stdout.split()
        f_events, f_wall, f_cpu = int(f_events), float(f_wall), float(f_cpu)
        f_srv = cpu_of(server.pid) - srv0
    finally:
        stop(server)
    # the whole aksnap watch (another fresh server)
    arrivals, wall, cpu, srv = timed_watch(serve, stop, args)
    states = [json.loads(x) for _, x in arrivals if x.startswith("{")]
    if not states:
        raise SystemExit("the watch printed no state")
    last = states[-1]
    ev = last["events"]
    # the stream opens after the first reconcile: the rate is the watch's own, received since
    # its first subscription up to its last state line
    rate = ev["per_s"]
    print(f"htcmock {args.tasks:,} tasks from t={args.at:g} s at x{args.speed:g}; each run "
          f"{args.seconds:g} s")
    print(f"{'':<38}{'event path':>12}{'aksnap watch':>14}")
    print(f"{'events received':<38}{f_events:>12,}{ev['received']:>14,}")
    print(f"{'events/s received':<38}{f_events / f_wall:>12,.0f}{rate:>14,.0f}")
    print(f"{'its CPU (share of one core)':<38}{f_cpu / f_wall:>11.0%} {cpu / wall:>13.0%}")
    print(f"{'server CPU meanwhile (share of a core)':<38}{f_srv / f_wall:>11.0%} {srv / wall:>13.0%}")
    print(f"{'stream drops':<38}{f_drops:>12}{ev['drops']:>14}")
    print(f"aksnap watch: reconciles {last['reconciles']} (every {args.interval:g} s; last took "
          f"{last['last_reconcile_s']} s), {last['tasks']:,} tasks seen, "
          f"{last['percent_complete']} % complete")
    print(f"event path ceiling, one core, no gRPC: {ceiling():,.0f} events/s (parse + apply)")

if __name__ == "__main__":
    main()
