"""How many events per second ``aksnap watch`` keeps up with, and at what CPU cost.

    python bench/bench_watch.py                          # htcmock 100,000 tasks, x40, 30 s
    python bench/bench_watch.py --tasks 20000 --speed 20 --seconds 15

What runs, each in its own process:

1. ``aksnap simulate --scenario htcmock --realtime --speed X`` (the simulated control plane,
   its clock running X times the wall clock from the session's start);
2. ``aksnap watch --session S -o json --interval I`` as a whole process, for ``--seconds``,
   then SIGINT; its last JSON line says how many events it received; its CPU time comes from
   ``/proc`` (and the server's likewise);
3. in this process, the watcher's own ceiling: the same event path (protobuf parse of each
   serialized ``EventSubscriptionResponse``, the follower's tuple, ``LiveState.apply``) over
   200,000 recorded events, with no server: events per second on one core.

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--speed", type=float, default=40.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=5.0)
    args = ap.parse_args()

    server = subprocess.Popen([sys.executable, "-m", "aksnap", "simulate", "--scenario",
                               "htcmock", "--tasks", str(args.tasks), "--seed", "1",
                               "--realtime", "--speed", str(args.speed)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ep = server.stdout.readline().strip()
        import grpc
        from armonik.client import ArmoniKSessions

        with grpc.insecure_channel(ep) as ch:
            session = ArmoniKSessions(ch).list_sessions()[1][0].session_id
        srv0 = cpu_of(server.pid)
        watcher = subprocess.Popen([sys.executable, "-m", "aksnap", "watch", "--endpoint", ep,
                                    "--session", session, "-o", "json", "--interval",
                                    str(args.interval)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.perf_counter()
        lines = []
        import threading

        reader = threading.Thread(target=lambda: lines.extend(watcher.stdout), daemon=True)
        reader.start()
        time.sleep(args.seconds)
        wall = time.perf_counter() - t0
        cpu = cpu_of(watcher.pid)
        srv = cpu_of(server.pid) - srv0
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    states = [json.loads(x) for x in lines if x.startswith("{")]
    if not states:
        raise SystemExit("the watch printed no state")
    last = states[-1]
    ev = last["events"]
    rate = ev["received"] / wall
    print(f"htcmock {args.tasks:,} tasks at x{args.speed:g}, watched {wall:.1f} s "
          f"(reconcile every {args.interval:g} s)")
    print(f"{'':<34}{'value':>14}")
    print(f"{'events received':<34}{ev['received']:>14,}")
    print(f"{'events/s received':<34}{rate:>14,.0f}")
    print(f"{'watch CPU (share of one core)':<34}{cpu / wall:>13.0%}")
    print(f"{'server CPU (share of one core)':<34}{srv / wall:>13.0%}")
    print(f"{'stream drops / subscriptions':<34}{ev['drops']:>7} / {ev['subscriptions']}")
    print(f"{'reconciles (last took, s)':<34}{last['reconciles']:>7} ({last['last_reconcile_s']})")
    print(f"{'tasks seen, % complete':<34}{last['tasks']:>7,} ({last['percent_complete']} %)")
    print(f"{'event path ceiling, one core':<34}{ceiling():>14,.0f} events/s (parse + apply, no gRPC)")


if __name__ == "__main__":
    main()
