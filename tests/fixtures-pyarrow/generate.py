"""Regenerate the bundles of tests/fixtures-pyarrow/: one small bundle per pyarrow version.

``aksnap check`` accounts for every byte of a bundle written by any supported pyarrow
(parquet-cpp-arrow >= 15), and bundles travel between machines with different pyarrows. Each
fixture is the same rows written through aksnap's own ``BundleWriter`` under one pyarrow:

    python tests/fixtures-pyarrow/generate.py                      # the running pyarrow
    python tests/fixtures-pyarrow/generate.py --python /venv-pa15/bin/python ...

Each ``--python`` is an interpreter of a venv with another pyarrow and the format floor's
dependencies (``pip install pyarrow==15.0.2 "numpy<2" pyyaml platformdirs rich typer``); it
runs only the format floor (``core/``, imported as ``aksnap`` through a symlink), never the
analyzer. The rows are built once by the running interpreter (every column shape, two row
groups, a dictionary that falls back to plain pages, a message too long for statistics),
then each interpreter reads them and writes its bundle to ``pyarrow-<version>/``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORE = HERE.parent.parent / "core"
ROW_GROUP = 2500  # tasks get two row groups

# Runs under the other interpreter: read the source bundle's row groups, write them again.
REWRITE = r"""
import sys, pyarrow as pa, pyarrow.parquet as pq
from aksnap.bundle import TABLES, read_manifest
from aksnap.bundle_writer import BundleWriter
src, out, rg = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = read_manifest(src)
with BundleWriter(out, row_group_size=rg) as w:
    for t in TABLES:
        w.write(t, pq.read_table(f"{src}/{t}.parquet"))
    w.commit(m)
print(pa.__version__)
"""


def source_rows(out: Path) -> Path:
    """The rows every fixture holds, written by the running pyarrow (any writer will do: each
    fixture re-reads them)."""
    from aksnap.analyzer.testing import make_bundle, result, task

    statuses = ["COMPLETED", "ERROR", "TIMEOUT", "PROCESSING", "CANCELLED", "RETRIED"]
    tasks = []
    for i in range(40):  # every shape a column takes
        st = statuses[i % len(statuses)]
        tasks.append(task(f"t{i:03d}", status=st, outputs=[f"r{i:03d}"],
                          deps=[f"r{i - 1:03d}"] if i % 3 else [],
                          message="" if st == "COMPLETED" else f"échec n°{i}",
                          times={"created": i, "started": i + 0.5,
                                 "ended": i + 1 if st != "PROCESSING" else None},
                          options={"k": f"v{i}"} if i % 2 else None, priority=i % 4,
                          session="s1" if i % 5 else "s2", owner_pod_id=f"pod-{i % 3}"))
    # a dictionary past the writer's 1 MiB limit in row group 0 (plain pages after it)
    # (the writer checks its dictionary's size every 1,024 rows), and a message longer than
    # the statistics' limit that is the column's largest value
    for i in range(2600):
        tasks.append(task(f"bulk{i:05d}", status="ERROR", session="s2", payload="bulk-payload",
                          times={"created": 50, "started": 51, "ended": 52 + i / 1000},
                          message="\u00fc" * 2500 if i == 3 else "",
                          output_error=f"error {i:05d} " + "e" * 800, priority=i % 7))
    results = [result(f"r{i:03d}", owner=f"t{i:03d}", session="s1" if i % 5 else "s2",
                      status="COMPLETED" if i % 4 else "ABORTED", completed=i + 1.0,
                      opaque_id=bytes([255 - i, i, 0]), size=i * 1000) for i in range(40)]
    sessions = [{"session_id": "s1", "status": "RUNNING", "partition_ids": ["default", "gpu"],
                 "options": {"max_retries": 2, "partition_id": "default",
                             "options": {"a": "1"}}},
                {"session_id": "s2", "status": "CLOSED", "partition_ids": [], "options": None}]
    partitions = [{"partition_id": "default", "parent_partition_ids": [], "pod_reserved": 1,
                   "pod_max": 10, "priority": 1, "preemption_percentage": 0,
                   "pod_configuration": {"cpu": "2"}},
                  {"partition_id": "gpu", "parent_partition_ids": ["default"], "pod_max": 2}]
    return make_bundle(out, tasks=tasks, results=results, sessions=sessions,
                       partitions=partitions)


def write_fixture(python: str, src: Path, dest_root: Path) -> Path:
    """``src`` rewritten by ``python``'s pyarrow into ``dest_root/pyarrow-<version>``."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "aksnap").symlink_to(CORE, target_is_directory=True)
        env = {**os.environ, "PYTHONPATH": tmp}
        out = Path(tmp) / "out"
        done = subprocess.run([python, "-c", REWRITE, str(src), str(out), str(ROW_GROUP)],
                              env=env, cwd=tmp, check=True, capture_output=True, text=True)
        version = done.stdout.strip().splitlines()[-1]
        dest = dest_root / f"pyarrow-{version}"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(out, dest)
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", action="append", default=[],
                   help="an interpreter with another pyarrow (repeat); default: this one")
    p.add_argument("--out", type=Path, default=HERE, help="where the fixtures go")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = source_rows(Path(tmp) / "src")
        for python in args.python or [sys.executable]:
            dest = write_fixture(python, src, args.out)
            size = sum(f.stat().st_size for f in dest.iterdir())
            print(f"{dest} ({size // 1024} KiB)")


if __name__ == "__main__":
    main()
