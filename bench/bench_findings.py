"""What the findings add to a warm ``aksnap analyze`` (whole processes, before and after, in one
run; prints figures, not a test).

    python bench/bench_findings.py /work/bundles/htc1m.aksnap            # before = merge-base with main
    python bench/bench_findings.py B --before 6da6fe1 --runs 7
    python bench/bench_findings.py B --watch-session SESSION_ID          # + the watch's per-reconcile cost

"Before" is the code of a git revision (default: where this branch left main), "after" the
working tree; both are materialised the same way (the folders copied into one import tree
``aksnap/...`` as pyproject's package-dir maps them) and run by this interpreter with that tree
first on sys.path, so the two differ by their code only. The index cache of the bundle is
warmed first (one untimed run of each), then the runs alternate before/after. Wall time is
``time.perf_counter`` around each process, CPU the children's user+system time
(``getrusage``). Also timed: ``aksnap findings B`` alone, and ``findings.build`` in one process
once the graph is built (what analyze adds when it shares its critical paths).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: pyproject's package-dir: import name -> folder
PACKAGES = {"aksnap": "core", "aksnap/exporter": "exporter", "aksnap/analyzer": "analyzer",
            "aksnap/queries": "queries", "aksnap/fixtures": "fixtures", "aksnap/cli": "cli"}


def materialise(rev: str | None, into: Path) -> Path:
    """The package of ``rev`` (None: the working tree) as an import tree under ``into``."""
    src = ROOT
    if rev is not None:
        src = into / "src"
        src.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *PACKAGES.values()],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    pkg = into / "pkg"
    for name, folder in PACKAGES.items():  # "aksnap" first: the others go inside it
        shutil.copytree(src / folder, pkg / name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def command(pkg: Path, *argv: str) -> list[str]:
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import aksnap.cli as c; "
            "sys.argv[0] = 'aksnap'; c.main()")
    return [sys.executable, "-c", code, str(pkg), *argv]


def timed(argv: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv[-3:])} failed: {r.stderr.strip()[:400]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def in_process(pkg: Path, bundle: str, session: str | None) -> str:
    """findings.build once the graph is built (and, with a session, the watch's analysis)."""
    code = f"""
import sys, time
sys.path.insert(0, {str(pkg)!r})
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer import critical_path, findings, live
snap = Snapshot.open({bundle!r})
snap.graph
ids = snap.session_ids()
paths = critical_path.compute(snap, ids)
t = time.perf_counter(); findings.build(snap, paths=paths, path_ids=ids)
shared = time.perf_counter() - t
snap = Snapshot.open({bundle!r}); snap.graph
t = time.perf_counter(); findings.build(snap)
alone = time.perf_counter() - t
out = f"findings.build, graph built: {{shared:.3f}} s with analyze's critical paths, {{alone:.3f}} s computing them"
sess = {session!r}
if sess:
    t = time.perf_counter(); live._analysis(snap, sess, None, 5)
    a = time.perf_counter() - t
    t = time.perf_counter(); live._findings(snap, sess)
    f = time.perf_counter() - t
    out += f"; watch per reconcile (graph built): analysis {{a:.3f}} s, findings {{f:.3f}} s"
print(out)
"""
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--before", help="git revision before the findings (default: merge-base "
                                     "of HEAD and main)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--watch-session", help="also time the watch's analysis of this session")
    args = ap.parse_args()
    rev = args.before or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
                                        check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-findings-") as tmp:
        old = materialise(rev, Path(tmp) / "before")
        new = materialise(None, Path(tmp) / "after")
        runs = {"before: analyze": command(old, "analyze", args.bundle),
                "after: analyze": command(new, "analyze", args.bundle),
                "after: findings": command(new, "findings", args.bundle)}
        for argv in runs.values():  # warm the index cache and the page cache
            timed(argv)
        got: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
        for _ in range(args.runs):
            for k, argv in runs.items():
                got[k].append(timed(argv))
        load = os.getloadavg()
        print(f"bundle {args.bundle}; before = {rev[:12]}, after = working tree; {args.runs} runs "
              f"each, alternating; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        print(f"{'':18} {'wall min':>9} {'wall med':>9} {'cpu min':>9} {'cpu med':>9}")
        for k, v in got.items():
            w, c = [x[0] for x in v], [x[1] for x in v]
            print(f"{k:18} {min(w):9.2f} {statistics.median(w):9.2f} {min(c):9.2f} "
                  f"{statistics.median(c):9.2f}")
        b, a = got["before: analyze"], got["after: analyze"]
        print(f"added by the findings: wall {min(x[0] for x in a) - min(x[0] for x in b):+.2f} s "
              f"(min), {statistics.median(x[0] for x in a) - statistics.median(x[0] for x in b):+.2f} s "
              f"(median); cpu {min(x[1] for x in a) - min(x[1] for x in b):+.2f} s (min), "
              f"{statistics.median(x[1] for x in a) - statistics.median(x[1] for x in b):+.2f} s (median)")
        print(in_process(new, args.bundle, args.watch_session))


if __name__ == "__main__":
    main()
