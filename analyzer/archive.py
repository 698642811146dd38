"""Archives: many runs (bundles) in one Parquet dataset, laid out by table and run.

::

    ARCHIVE/
      archive.json                         {"format": "aksnap-archive", "version": 1}
      runs/run=<id>/part-0.parquet         one row per run (written last: a run is in the
                                           archive when its runs row is)
      labels/run=<id>/part-0.parquet       key, value: the --label pairs of the run
      tasks/run=<id>/part-0.parquet        the bundle's tasks.parquet, byte for byte
      results/run=<id>/part-0.parquet      ... results, sessions, partitions alike
      sessions/run=<id>/part-0.parquet
      partitions/run=<id>/part-0.parquet

Hive partitioning (``run=<id>`` directories), so DuckDB
(``read_parquet('ARCHIVE/tasks/*/*.parquet', hive_partitioning = true)``), pandas
(``pd.read_parquet('ARCHIVE/tasks')``), Spark (``spark.read.parquet('ARCHIVE/tasks')``) and
Trino (a Hive table partitioned by ``run``) read it without aksnap; ``docs/comparison.md``
shows each.

The run id is ``<exported_at as YYYYMMDDTHHMMSSZ>-<12 hex digits of the manifest's digest>``:
sortable by export time, and the same bundle always gets the same id, so adding it twice adds
it once. Each table file is copied while its SHA-256 is computed and compared with the
manifest (checksums verified on the way in: a damaged bundle is refused and nothing of it
stays). A run is staged in a hidden directory inside the archive, then each table's
``run=<id>`` directory is renamed into place, the runs row last; a crash leaves at most
directories no runs row names, which every reader here ignores and the next add of that
bundle replaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from aksnap.bundle import TABLES, BundleError
from aksnap.bundle_writer import fsync_dir

from .snapshot import AnalysisError, Snapshot, parse_time

ARCHIVE_FORMAT = "aksnap-archive"
ARCHIVE_VERSION = 1
MARKER = "archive.json"
PART = "part-0.parquet"
#: every dataset of an archive: the bundle's tables, then labels, then runs (written last)
DATASETS = (*TABLES, "labels", "runs")

RUNS_SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("exported_at", pa.timestamp("us", tz="UTC")),
    pa.field("snapshot_time", pa.timestamp("us", tz="UTC")),
    pa.field("added_at", pa.timestamp("us", tz="UTC")),
    pa.field("manifest_digest", pa.string()),
    pa.field("core_version", pa.string()),
    pa.field("api_version", pa.string()),
    pa.field("labels", pa.string()),            # the labels as a JSON object (also: labels/)
    pa.field("session_ids", pa.string()),       # comma-separated, in the bundle's order
    pa.field("sessions", pa.int64()),
    pa.field("tasks", pa.int64()),
    pa.field("results", pa.int64()),
    pa.field("source", pa.string()),            # the path it was added from
])
LABELS_SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False),
                           pa.field("value", pa.string(), nullable=False)])


def parse_labels(pairs: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs or ():
        k, sep, v = str(p).partition("=")
        if not sep or not k.strip():
            raise AnalysisError(f"--label {p!r} is not key=value; write e.g. --label env=nightly")
        out[k.strip()] = v.strip()
    return out


def manifest_digest(snap: Snapshot) -> str:
    """SHA-256 of the manifest's canonical JSON: names the export (its tables' checksums, its
    times, its selection), whatever file or packing it arrived in."""
    manifest = snap.manifest
    text = json.dumps(manifest.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_id_of(snap: Snapshot, digest: str) -> str:
    t = parse_time(snap.manifest.exported_at) or snap.snapshot_time
    stamp = t.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ") if t else "00000000T000000Z"
    return f"{stamp}-{digest[:12]}"


@dataclass
class Archive:
    root: Path

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, create: bool = False) -> "Archive":
        root = Path(path)
        marker = root / MARKER
        if marker.is_file():
            try:
                meta = json.loads(marker.read_text())
            except (OSError, ValueError) as e:
                raise AnalysisError(f"{marker} is not readable ({e}); is {root} an aksnap archive?") from None
            if not isinstance(meta, dict) or meta.get("format") != ARCHIVE_FORMAT:
                raise AnalysisError(f"{root} is not an aksnap archive ({MARKER} says otherwise)")
            if meta.get("version") != ARCHIVE_VERSION:
                raise AnalysisError(f"{root} is archive version {meta.get('version')!r}, but this "
                                    f"aksnap reads version {ARCHIVE_VERSION}")
            return cls(root)
        if not create:
            what = "does not exist" if not root.exists() else f"has no {MARKER}"
            raise AnalysisError(f"no archive at {root}: the path {what}; create one with "
                                f"`aksnap archive add {root} BUNDLE`")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise AnalysisError(f"{root} exists and is not an aksnap archive (no {MARKER}); "
                                "give a new or empty directory")
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = root / f".{MARKER}.{secrets.token_hex(4)}"
            tmp.write_text(json.dumps({"format": ARCHIVE_FORMAT, "version": ARCHIVE_VERSION}) + "\n")
            os.replace(tmp, marker)
        except OSError as e:
            raise AnalysisError(f"cannot create the archive {root} ({e.strerror}); check the path "
                                "and its permissions") from None
        return cls(root)

    def run_ids(self) -> list[str]:
        """The runs in the archive (those with a runs row), in id order (= export time)."""
        d = self.root / "runs"
        if not d.is_dir():
            return []
        return sorted(p.name[4:] for p in d.iterdir()
                      if p.name.startswith("run=") and (p / PART).is_file())

    def dataset_glob(self, table: str) -> str:
        return str(self.root / table / "run=*" / "*.parquet")

    # -- adding --------------------------------------------------------------------------------

    def add(self, bundle: str | os.PathLike, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """Add one bundle (or packed file); returns its row: run_id, status (added / already
        present), counts."""
        labels = dict(labels or {})
        snap = Snapshot.open(bundle, verify=False)  # the copy below verifies every byte
        try:
            digest = manifest_digest(snap)
            run_id = run_id_of(snap, digest)
            base = {"run_id": run_id, "bundle": str(bundle)}
            if run_id in self.run_ids():
                return {**base, "status": "already present", "labels": _labels_of(self, run_id),
                        "tasks": snap.manifest.tables["tasks"].rows}
            stage = self.root / f".staging-{run_id}-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                self._stage(snap, stage, run_id, digest, labels, str(bundle))
                self._commit(stage, run_id)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
            return {**base, "status": "added", "labels": labels,
                    "tasks": snap.manifest.tables["tasks"].rows}
        finally:
            snap.close()

    def _stage(self, snap: Snapshot, stage: Path, run_id: str, digest: str,
               labels: dict[str, str], source: str) -> None:
        part = f"run={run_id}"
        for table in TABLES:
            entry = snap.manifest.tables[table]
            out = stage / table / part
            out.mkdir(parents=True)
            got = _copy_hashing(snap.bundle.file(table), out / PART)
            if got != entry.sha256:
                raise BundleError(f"{snap.path}: {entry.file} fails its checksum (manifest "
                                  f"{entry.sha256[:12]}..., file {got[:12]}...); it changed after "
                                  "the export, so it was not added to the archive")
        (stage / "labels" / part).mkdir(parents=True)
        pq.write_table(pa.table({"key": list(labels), "value": list(labels.values())},
                                schema=LABELS_SCHEMA), stage / "labels" / part / PART)
        m = snap.manifest
        sessions = [s.get("session_id") for s in m.sessions if isinstance(s, dict)] or \
            snap.session_ids()
        row = {
            "run_id": run_id, "exported_at": parse_time(m.exported_at),
            "snapshot_time": snap.snapshot_time, "added_at": datetime.now(timezone.utc),
            "manifest_digest": digest,
            "core_version": str((m.armonik_versions or {}).get("core") or ""),
            "api_version": str((m.armonik_versions or {}).get("api") or ""),
            "labels": json.dumps(labels, sort_keys=True), "session_ids": ",".join(map(str, sessions)),
            "sessions": len(sessions), "tasks": m.tables["tasks"].rows,
            "results": m.tables["results"].rows, "source": source,
        }
        (stage / "runs" / part).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([row], schema=RUNS_SCHEMA), stage / "runs" / part / PART)

    def _commit(self, stage: Path, run_id: str) -> None:
        part = f"run={run_id}"
        for name in DATASETS:  # runs last: the run exists once its runs row does
            dst = self.root / name / part
            dst.parent.mkdir(exist_ok=True)
            if dst.exists():  # left by an add that died before its runs row: replace it
                shutil.rmtree(dst)
            try:
                os.rename(stage / name / part, dst)
            except OSError as e:
                if name == "runs" and dst.exists():
                    return  # another add of the same bundle won the race: it is in
                raise AnalysisError(f"cannot write run {run_id} into {self.root} "
                                    f"({e.strerror}); check the space and permissions") from None
        fsync_dir(self.root / "runs")

    # -- reading -------------------------------------------------------------------------------

    def connect(self, memory_limit: str | None = None, threads: int | None = None,
                datasets: Sequence[str] = DATASETS):
        """A DuckDB connection with one view per dataset asked for (hive partitioned: a ``run``
        column), restricted to the runs that have a runs row."""
        import duckdb

        if not self.run_ids():
            raise AnalysisError(f"the archive {self.root} holds no run yet; add bundles with "
                                f"`aksnap archive add {self.root} BUNDLE...`")
        config: dict[str, Any] = {}
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        con = duckdb.connect(config=config)
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        for name in dict.fromkeys(("runs", *datasets)):
            # the relation API takes the path as a value (no SQL built from it); run ids hold
            # letters and a dash, so hive partitioning keeps ``run`` a string. Every file of a
            # dataset has the format's one schema: no union_by_name (it reads every footer)
            con.read_parquet(self.dataset_glob(name), hive_partitioning=True).create_view(f"{name}_all")
        con.execute("CREATE VIEW runs AS SELECT * FROM runs_all")
        for name in datasets:
            if name != "runs":
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_all "
                            "WHERE run IN (SELECT run FROM runs_all)")
        return con

    def runs(self) -> list[dict[str, Any]]:
        if not self.run_ids():
            return []
        con = self.connect(datasets=("runs",))
        try:
            return con.sql("SELECT run_id, exported_at, core_version, api_version, labels, "
                           "sessions, tasks, results, manifest_digest, source FROM runs "
                           "ORDER BY exported_at, run_id").to_arrow_table().to_pylist()
        finally:
            con.close()


def _labels_of(archive: Archive, run_id: str) -> dict[str, str]:
    t = pq.read_table(archive.root / "labels" / f"run={run_id}" / PART)
    return dict(zip(t.column("key").to_pylist(), t.column("value").to_pylist()))


def _copy_hashing(src: str, dst: Path, chunk: int = 4 << 20) -> str:
    h = hashlib.sha256()
    with open(src, "rb") as f, open(dst, "wb") as out:
        while block := f.read(chunk):
            h.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest()


def add(archive: str | os.PathLike, bundles: Sequence[str | os.PathLike],
        labels: Iterable[str] | dict[str, str] = ()) -> list[dict[str, Any]]:
    """``aksnap archive add``: every bundle into the archive (created when new), one row each."""
    labels = labels if isinstance(labels, dict) else parse_labels(labels)
    if not bundles:
        raise AnalysisError("give at least one bundle to add")
    a = Archive.open(archive, create=True)
    return [a.add(b, labels) for b in bundles]


def runs(archive: str | os.PathLike) -> list[dict[str, Any]]:
    """``aksnap archive list``: the runs table."""
    return Archive.open(archive).runs()
