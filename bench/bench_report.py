"""`aksnap report` on a 1,000,000-task bundle: page size and first paint in headless Chromium
(prints one table).

    python bench/bench_report.py                                 # /work/bench-data/htc1m if present
    python bench/bench_report.py --bundle ./big.bundle --runs 5
    python bench/bench_report.py --tasks 1000000 --seed 11 --keep ./htc1m   # build it first
    python bench/bench_report.py --trace                         # also time `aksnap trace --max-tasks 0`

1. The bundle: ``--bundle DIR``, else ``/work/bench-data/htc1m`` when it exists, else built as
   ``bench/bench_scale.py`` does: ``aksnap simulate --scenario htcmock --tasks N --seed S
   --port 0`` as a subprocess (the first line of its stdout is the endpoint), then ``aksnap
   export --endpoint EP --all --out DIR --quiet --max-message-size 268435456``;
2. ``aksnap report BUNDLE --out page.html --no-verify`` as a whole process under
   ``/usr/bin/time`` (wall seconds, peak RSS);
3. the page opened ``--runs`` times in headless Chromium (the system ``chromium`` driven by
   Playwright for Python), each in a fresh page: ``first-contentful-paint`` from the Paint
   Timing API, the ``aksnap-drawn`` mark the page's script sets when everything is drawn, and
   the console errors and requests other than the file (both must be 0).

The issue's targets: a page of at most 20 MB that paints in at most 3 s. Not a test: figures
depend on the machine and on what else it runs (the load average is printed with the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_BUNDLE = Path("/work/bench-data/htc1m")
MAX_MESSAGE = 256 * 2**20


def _aksnap() -> list[str]:
    exe = shutil.which("aksnap")
    return [exe] if exe else [sys.executable, "-m", "aksnap"]


def _timed(cmd: list[str]) -> tuple[float, int, str]:
    """Run ``cmd`` under /usr/bin/time: (wall s, peak RSS KB, stdout)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name, *cmd],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            sys.exit(f"bench_report: {' '.join(cmd)} failed:\n{r.stderr}")
        rss = int(Path(tf.name).read_text().split()[-1])
    return wall, rss, r.stdout


def build_bundle(out: Path, tasks: int, seed: int) -> None:
    server = subprocess.Popen([*_aksnap(), "simulate", "--scenario", "htcmock", "--tasks",
                               str(tasks), "--seed", str(seed), "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        endpoint = server.stdout.readline().strip()
        if not endpoint:
            sys.exit("bench_report: the simulated control plane did not start")
        _timed([*_aksnap(), "export", "--endpoint", endpoint, "--all", "--out", str(out),
                "--quiet", "--max-message-size", str(MAX_MESSAGE)])
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def paint(page_path: Path, chromium: str, runs: int) -> list[dict]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(runs):
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            errors, requests = [], []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            t0 = time.perf_counter()
            page.goto(page_path.as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            load = time.perf_counter() - t0
            # the paint entry is recorded after the frame is presented: wait for it
            page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length",
                                   timeout=60_000)
            fcp = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
            drawn = page.evaluate("performance.getEntriesByName('aksnap-drawn')[0].startTime")
            out.append({"fcp_ms": fcp, "drawn_ms": drawn, "load_s": load, "errors": len(errors),
                        "other_requests": len([u for u in requests if u != page_path.as_uri()])})
            page.close()
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="an existing bundle (default: "
                    f"{DEFAULT_BUNDLE} if present, else one is built)")
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--keep", type=Path, help="build the bundle here and keep it")
    ap.add_argument("--runs", type=int, default=3, help="page loads in Chromium")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--trace", action="store_true", help="also time `aksnap trace --max-tasks 0`")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        bundle = args.bundle or (DEFAULT_BUNDLE if DEFAULT_BUNDLE.exists() and not args.keep else None)
        if bundle is None:
            bundle = args.keep or work / "bundle"
            print(f"building htcmock {args.tasks} tasks (seed {args.seed}) into {bundle} ...",
                  file=sys.stderr)
            build_bundle(bundle, args.tasks, args.seed)
        manifest = json.loads((bundle / "manifest.json").read_text())
        tasks = sum(s.get("tasks", 0) for s in manifest.get("sessions", []))
        page = work / "report.html"
        wall, rss, _ = _timed([*_aksnap(), "report", str(bundle), "--out", str(page),
                               "--no-verify", "-o", "json"])
        size = page.stat().st_size
        loads = paint(page, args.chromium, args.runs)
        rows = [("bundle", str(bundle)), ("tasks", f"{tasks:,}"),
                ("aksnap report wall (s)", f"{wall:.1f}"), ("aksnap report peak RSS (MB)", f"{rss / 1024:.0f}"),
                ("page size (MB)", f"{size / 2**20:.2f}  (target <= 20)"),
                ("first contentful paint (ms), median of runs",
                 f"{statistics.median(r['fcp_ms'] for r in loads):.0f}  (target <= 3000; runs: "
                 + ", ".join(f"{r['fcp_ms']:.0f}" for r in loads) + ")"),
                ("everything drawn (ms), median", f"{statistics.median(r['drawn_ms'] for r in loads):.0f}"),
                ("load until drawn, wall (s), median", f"{statistics.median(r['load_s'] for r in loads):.2f}"),
                ("console errors / other requests", f"{sum(r['errors'] for r in loads)} / "
                 f"{sum(r['other_requests'] for r in loads)}")]
        if args.trace:
            tpath = work / "trace.json"
            twall, trss, _ = _timed([*_aksnap(), "trace", str(bundle), "--out", str(tpath),
                                     "--no-verify", "--max-tasks", "0", "-o", "json"])
            rows += [("aksnap trace --max-tasks 0 wall (s)", f"{twall:.1f}"),
                     ("aksnap trace peak RSS (MB)", f"{trss / 1024:.0f}"),
                     ("trace size (MB)", f"{tpath.stat().st_size / 2**20:.0f}")]
        width = max(len(k) for k, _ in rows)
        print(f"load average {os.getloadavg()[0]:.2f} (2 cores shared)")
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
