"""What a capture costs the control plane, by measurement (issue 23's bars).

    python bench/bench_budget.py --part cap                  # --max-rps 20, 20,000 tasks
    python bench/bench_budget.py --part big --tasks 1000000 --watch-s 120

Every step is a whole process; the simulated control plane (``aksnap simulate --stats FILE``)
counts the requests it receives per wall-clock second and writes its own CPU seconds
(``os.times``, every thread) to FILE every second; this script also reads its CPU from
``/proc/PID/stat``.

- ``cap``: ``aksnap export --max-rps 20 --jobs 4`` of a frozen htcmock session with small
  pages (many requests): the busiest second the *server* counted, and the bundle compared
  with an unlimited export of the same frozen instant (tasks and results, every column, in id
  order).
- ``big`` (one 1M-task htcmock server frozen mid-run, ``--at``; memory heavy, about 3.5 GiB):
  1. export at the defaults (10 requests/s, 2 in flight) and as before this work (no cap, 4
     jobs): server CPU-seconds per million tasks, calls, bytes, wall;
  2. ``aksnap watch`` (defaults) for ``--watch-s`` seconds after its first capture (first state
     line, and the subscription's replay sent): the server's CPU share of one core and its
     calls per minute; then the same with the watch as before this work (every reconcile a
     full one: ``TRUST_EVERY_S = 0``, no cap), for comparison.
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

ENV = {**os.environ, "GRPC_VERBOSITY": "NONE"}
ENV.pop("AKSNAP_MAX_RPS", None)  # the production default, unless a step says otherwise


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``aksnap simulate`` in a subprocess, its endpoint, its stats file."""

    def __init__(self, tmp: Path, scenario: str, tasks: int, at: float | None, seed: int = 11):
        self.stats = tmp / "server-stats.json"
        args = [sys.executable, "-m", "aksnap", "simulate", "--scenario", scenario, "--seed",
                str(seed), "--tasks", str(tasks), "--port", "0", "--stats", str(self.stats)]
        if at is not None:
            args += ["--at", str(at)]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=ENV)
        self.endpoint = self.proc.stdout.readline().strip()
        self.built_s = time.perf_counter() - t0
        if not self.endpoint:
            raise SystemExit("the simulator did not start")

    def cpu(self) -> float:
        return cpu_of(self.proc.pid)

    def read(self) -> dict:
        for _ in range(50):
            try:
                return json.loads(self.stats.read_text())
            except (OSError, ValueError):
                time.sleep(0.1)
        raise SystemExit("no stats from the simulator")

    def close(self) -> None:
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def export(ep: str, out: Path, *extra: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "aksnap", "export", "--endpoint", ep, "--all",
                        "--out", str(out), "-q", "-o", "json", *extra], capture_output=True,
                       text=True, env=ENV)
    if r.returncode != 0:
        raise SystemExit(f"export failed: {r.stderr}")
    return json.loads(r.stdout)


def per_second(stats: dict, since: float, until: float) -> dict[int, int]:
    return {int(k): v for k, v in stats["per_second"].items() if since <= int(k) <= until}


def same_rows(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    for table, key in (("tasks", "task_id"), ("results", "result_id")):
        x = pq.read_table(a / f"{table}.parquet").sort_by(key)
        y = pq.read_table(b / f"{table}.parquet").sort_by(key)
        if not x.equals(y):
            return False
    return True


def part_cap(tmp: Path, tasks: int) -> None:
    srv = Server(tmp, "htcmock", tasks, at=None)
    try:
        t0 = time.time()
        s = export(srv.endpoint, tmp / "capped", "--max-rps", "20", "--jobs", "4",
                   "--page-size", "256")
        t1 = time.time()
        time.sleep(1.5)  # the stats file is written every second
        seen = per_second(srv.read(), int(t0), int(t1))
        ref = export(srv.endpoint, tmp / "free", "--max-rps", "inf", "--jobs", "4")
        equal = same_rows(Path(s["path"]), Path(ref["path"]))
    finally:
        srv.close()
    cost = s["cost"]
    print(json.dumps({"part": "cap", "tasks": s["rows"]["tasks"], "requests": sum(seen.values()),
                      "seconds": len(seen), "server_busiest_second": max(seen.values()),
                      "client_busiest_second": cost["busiest_second"],
                      "wall_s": cost["wall_s"], "equal_to_unlimited_export": equal}))
    print(f"--max-rps 20: {sum(seen.values())} requests over {len(seen)} seconds, busiest "
          f"second as the server counted it: {max(seen.values())}; bundle equal to an "
          f"unlimited export of the same frozen instant: {equal}")


WATCH_OLD = """
import sys
import aksnap.cli.watch as w
w.TRUST_EVERY_S = 0.0  # every reconcile a full one: the watch before the budget work
from aksnap.cli import main
sys.argv = ["aksnap"] + sys.argv[1:]
main()
"""


def watch_window(srv: Server, session: str, watch_s: float, old: bool) -> dict:
    """A whole ``aksnap watch`` process: wait for its first state and the replay's end, then
    measure the server for ``watch_s`` seconds."""
    args = ["watch", "--endpoint", srv.endpoint, "--session", session, "-o", "json"]
    env = dict(ENV)
    if old:
        cmd = [sys.executable, "-c", WATCH_OLD, *args, "--max-rps", "inf", "--jobs", "4"]
    else:
        cmd = [sys.executable, "-m", "aksnap", *args]
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=env)
    try:
        first = json.loads(p.stdout.readline())
        first_s = time.time() - t0
        # the subscription's replay: wait until the server's CPU is quiet for 3 s (new) or
        # 20 s have passed (old: never quiet)
        quiet_since, last = time.time(), srv.cpu()
        deadline = time.time() + (600 if not old else 20)
        while time.time() < deadline:
            time.sleep(1.0)
            c = srv.cpu()
            if c - last > 0.2:
                quiet_since = time.time()
            last = c
            if time.time() - quiet_since >= 3:
                break
        settle_s = time.time() - t0
        c0, w0, r0 = srv.cpu(), time.time(), srv.read()
        time.sleep(watch_s)
        c1, w1, r1 = srv.cpu(), time.time(), srv.read()
    finally:
        p.send_signal(2)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    calls = r1["requests"] - r0["requests"]
    return {"watch": "before (full reconciles, no cap)" if old else "after (defaults)",
            "first_state_s": round(first_s, 1), "first_capture_and_replay_s": round(settle_s, 1),
            "first_rows": first.get("rows_fetched"),
            "window_s": round(w1 - w0, 1), "server_cpu_s": round(c1 - c0, 2),
            "server_core_share_pct": round(100 * (c1 - c0) / (w1 - w0), 2),
            "calls_per_min": round(calls / (w1 - w0) * 60, 1),
            "by_method": {k: v - r0["by_method"].get(k, 0) for k, v in r1["by_method"].items()
                          if v - r0["by_method"].get(k, 0)}}


def part_big(tmp: Path, tasks: int, at: float, watch_s: float, skip_old: bool,
             skip_watch: bool = False, idle_s: float = 15.0) -> None:
    srv = Server(tmp, "htcmock", tasks, at=at)
    print(f"server: {tasks:,} tasks at t={at} built in {srv.built_s:.0f} s", flush=True)
    try:
        # the server's CPU while nobody calls it (its gRPC threads, the stats file), per second
        c0, w0 = srv.cpu(), time.time()
        time.sleep(idle_s)
        idle = (srv.cpu() - c0) / (time.time() - w0)
        print(json.dumps({"server_idle_core_share_pct": round(100 * idle, 2)}), flush=True)
        rows = []
        runs = (("cold: the first export, no cap, 4 jobs", ("--max-rps", "inf", "--jobs", "4")),
                ("defaults (10 rps, 2 jobs)", ()),
                ("no cap, 4 jobs (before)", ("--max-rps", "inf", "--jobs", "4")),
                ("defaults again (10 rps, 2 jobs)", ()))
        for label, extra in runs:
            c0, w0 = srv.cpu(), time.time()
            s = export(srv.endpoint, tmp / f"b{len(rows)}", *extra)
            c1, w1 = srv.cpu(), time.time()
            shutil.rmtree(s["path"], ignore_errors=True)
            n = s["rows"]["tasks"]
            serving = (c1 - c0) - idle * (w1 - w0)
            rows.append({"export": label, "tasks": n, "results": s["rows"]["results"],
                         "wall_s": s["cost"]["wall_s"], "server_cpu_s": round(c1 - c0, 2),
                         "server_cpu_s_per_million_tasks": round((c1 - c0) / n * 1e6, 2),
                         "serving_cpu_s_per_million_tasks": round(serving / n * 1e6, 2),
                         "calls": sum(s["cost"]["calls"].values()),
                         "mib_received": round(s["cost"]["bytes_received"] / 2**20, 1),
                         "busiest_second": s["cost"]["busiest_second"],
                         "latency_ms": s["cost"]["latency_ms"]})
            print(json.dumps(rows[-1]), flush=True)
            session = s["sessions"][0]
        if skip_watch:
            return
        print(json.dumps(watch_window(srv, session, watch_s, old=False)), flush=True)
        if not skip_old:
            print(json.dumps(watch_window(srv, session, watch_s, old=True)), flush=True)
    finally:
        srv.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("cap", "big"), default="cap")
    p.add_argument("--tasks", type=int, default=None)
    p.add_argument("--at", type=float, default=200.0, help="big: the simulated second frozen")
    p.add_argument("--watch-s", type=float, default=120.0)
    p.add_argument("--skip-old", action="store_true")
    p.add_argument("--skip-watch", action="store_true")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aksnap-budget-") as tmp:
        if a.part == "cap":
            part_cap(Path(tmp), a.tasks or 20_000)
        else:
            part_big(Path(tmp), a.tasks or 1_000_000, a.at, a.watch_s, a.skip_old,
                     a.skip_watch)


if __name__ == "__main__":
    main()
