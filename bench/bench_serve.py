"""What ``aksnap serve --endpoint`` costs on top of the watch it runs, and how soon a page shows
a reconcile.

    python bench/bench_serve.py                              # htcmock 200,000 tasks from t=260 s, x10, 90 s each
    python bench/bench_serve.py --tasks 20000 --at 0 --speed 5 --seconds 60

What runs, each in its own process, each against a fresh simulated control plane (``aksnap
simulate --scenario htcmock --realtime --at T --speed X``: the same run from the same instant):

1. ``aksnap watch --session S -o json --interval I`` for ``--seconds``: its CPU (the watch's
   own: reconciles, analyses, the event stream);
2. ``aksnap serve --endpoint E --session S --interval I --port 0`` for ``--seconds``, with a
   page open in headless Chromium (Playwright, Debian's chromium) the whole time: the server's
   CPU (the same watch engine, plus Starlette/uvicorn and the Server-Sent Events), and for
   each reconcile, how long after the server took it the page showed it (the page measures it
   itself when it draws: ``data-lag-ms``, the server's ``reconciled_at`` against the page's
   clock, same machine); the page's JavaScript heap and DOM size at the start and the end.

Targets (issue 22): a reconcile on the page within 1 s; the server adds at most 10 % CPU to
the watch's own; the browser's memory bounded.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> float:
    return os.getloadavg()[0]


class _Skip(Exception):
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--at", type=float, default=260.0, help="simulated second to start from")
    ap.add_argument("--speed", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--page-only", action="store_true", help="skip the watch alone: only the "
                    "server with a page open (for a long run of the page's memory, e.g. "
                    "--seconds 1800 --speed 0.15)")
    args = ap.parse_args()

    def simulate():
        server = subprocess.Popen([sys.executable, "-m", "aksnap", "simulate", "--scenario",
                                   "htcmock", "--tasks", str(args.tasks), "--seed", "1",
                                   "--at", str(args.at), "--realtime", "--speed", str(args.speed)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ep = server.stdout.readline().strip()
        import grpc
        from armonik.client import ArmoniKSessions

        with grpc.insecure_channel(ep) as ch:
            session = ArmoniKSessions(ch).list_sessions()[1][0].session_id
        return server, ep, session

    def stop(proc, sig=signal.SIGINT):
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()

    # 1. the watch alone
    w_wall, w_cpu, load_w = 1.0, float("nan"), float("nan")
    server, ep, session = simulate() if not args.page_only else (None, None, None)
    try:
        if args.page_only:
            raise _Skip
        t0 = time.perf_counter()
        watch = subprocess.Popen([sys.executable, "-m", "aksnap", "watch", "--endpoint", ep,
                                  "--session", session, "-o", "json", "--interval",
                                  str(args.interval)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        load0 = loadavg()
        time.sleep(args.seconds)
        w_wall, w_cpu = time.perf_counter() - t0, cpu_of(watch.pid)
        load_w = (load0 + loadavg()) / 2
        stop(watch)
    except _Skip:
        pass
    finally:
        if server is not None:
            stop(server)

    # 2. the server, a page open
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    server, ep, session = simulate()
    lags, reconciles = [], []
    try:
        t0 = time.perf_counter()
        srv = subprocess.Popen([sys.executable, "-m", "aksnap", "serve", "--endpoint", ep,
                                "--session", session, "--interval", str(args.interval),
                                "--port", "0"], stderr=subprocess.PIPE, text=True)
        url = re.search(r"at (http://\S+) ", srv.stderr.readline()).group(1)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium,
                                  args=["--no-sandbox", "--enable-precise-memory-info"])
            page = b.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", state="attached")
            mem = "() => [performance.memory.usedJSHeapSize, document.getElementsByTagName('*').length]"
            heap0 = None
            seen = "0"
            load0 = loadavg()
            samples, next_sample = [], t0 + 60
            while time.perf_counter() - t0 < args.seconds:
                if time.perf_counter() >= next_sample:  # the page's memory, once a minute
                    next_sample += 60
                    samples.append((round(time.perf_counter() - t0), *page.evaluate(mem)))
                now = page.get_attribute("body", "data-reconciles") or "0"
                if now != seen:
                    seen = now
                    lag = page.get_attribute("body", "data-lag-ms")
                    if lag is not None and now != "0":
                        lags.append(int(lag))
                        reconciles.append(int(now))
                    if heap0 is None and now != "0":
                        heap0 = page.evaluate(mem)
                time.sleep(0.2)
            s_wall, s_cpu = time.perf_counter() - t0, cpu_of(srv.pid)
            load_s = (load0 + loadavg()) / 2
            heap1 = page.evaluate(mem)
            states = int(page.get_attribute("body", "data-states") or 0)
            last = page.evaluate("async () => (await fetch('/api/state')).text()")
            b.close()
        stop(srv, signal.SIGTERM)
    finally:
        stop(server)

    w_share, s_share = w_cpu / w_wall, s_cpu / s_wall
    print(f"htcmock {args.tasks:,} tasks from t={args.at:g} s at x{args.speed:g}; "
          f"--interval {args.interval:g}; each run {args.seconds:g} s")
    print(f"aksnap watch alone: CPU {w_share:.0%} of a core (load average {load_w:.1f})")
    print(f"aksnap serve, one page open: CPU {s_share:.0%} of a core (load average {load_s:.1f}); "
          f"added: {s_share - w_share:+.0%} of a core, {(s_share - w_share) / w_share:+.0%} of "
          "the watch's own")
    if lags:
        print(f"reconcile to page: {len(lags)} reconciles ({reconciles[0]}..{reconciles[-1]}), "
              f"median {statistics.median(lags)} ms, max {max(lags)} ms (target 1,000 ms)")
    else:
        print("no reconcile reached the page within the run")
    # what the server does per state besides the watch: one JSON text (then one write per
    # page): measured in this process on the run's last state, times the states the page got
    import json

    from aksnap.cli.serve_app import state_text

    st = json.loads(last)
    n = 2000
    c0 = time.process_time()
    for _ in range(n):
        state_text(st)
    per = (time.process_time() - c0) / n
    print(f"states pushed to the page: {states} ({states / s_wall:.1f}/s); one state's JSON "
          f"({len(last):,} bytes) costs {per * 1e3:.3f} ms of CPU: {per * states / s_wall:.2%} of "
          f"a core, {per * states / s_wall / w_share:.1%} of the watch's own")
    if len(samples) > 1:
        print("page memory over the run (s, JS heap MB, DOM elements): " + ", ".join(
            f"{t} {h / 1e6:.1f} {n}" for t, h, n in samples))
    if heap0 and heap1:
        print(f"page: JS heap {heap0[0] / 1e6:.1f} MB -> {heap1[0] / 1e6:.1f} MB, DOM elements "
              f"{heap0[1]} -> {heap1[1]}; page errors {len(errors)}")


if __name__ == "__main__":
    main()
