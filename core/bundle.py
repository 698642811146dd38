"""The bundle format: defined once, here, and imported by both the exporter and the analyzer.

A bundle is a directory::

    manifest.json        written last; its presence is what makes the directory a bundle
    sessions.parquet
    tasks.parquet
    results.parquet
    partitions.parquet

Every Parquet file carries ``aksnap.format_version`` (and ``aksnap.table``) in its key-value
metadata. ``docs/bundle-format.md`` documents every column. The reader refuses a bundle whose
format version differs from :data:`FORMAT_VERSION`, naming both versions; it never migrates
silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

FORMAT_NAME = "armonik-snapshot-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
META_VERSION_KEY = b"aksnap.format_version"
META_TABLE_KEY = b"aksnap.table"

TS = pa.timestamp("us", tz="UTC")
DUR = pa.duration("us")
STR_LIST = pa.list_(pa.field("item", pa.string()))
STR_MAP = pa.map_(pa.string(), pa.string())

# Task statuses, result statuses, session statuses: stored as ArmoniK's names without the enum
# prefix (TASK_STATUS_COMPLETED -> "COMPLETED").
TASK_STATUSES = (
    "UNSPECIFIED", "CREATING", "SUBMITTED", "DISPATCHED", "COMPLETED", "ERROR", "TIMEOUT",
    "CANCELLING", "CANCELLED", "PROCESSING", "PROCESSED", "RETRIED", "PENDING", "PAUSED",
)
TASK_FINAL_STATUSES = ("COMPLETED", "CANCELLED", "ERROR", "RETRIED", "TIMEOUT", "PROCESSED")
RESULT_STATUSES = ("UNSPECIFIED", "CREATED", "COMPLETED", "ABORTED", "NOTFOUND", "DELETED")
SESSION_STATUSES = ("UNSPECIFIED", "RUNNING", "CANCELLED", "PAUSED", "CLOSED", "PURGED", "DELETED")

TASK_OPTIONS_STRUCT = pa.struct([
    pa.field("max_duration", DUR),
    pa.field("max_retries", pa.int32()),
    pa.field("priority", pa.int32()),
    pa.field("partition_id", pa.string()),
    pa.field("application_name", pa.string()),
    pa.field("application_version", pa.string()),
    pa.field("application_namespace", pa.string()),
    pa.field("application_service", pa.string()),
    pa.field("engine_type", pa.string()),
    pa.field("options", STR_MAP),
])

SESSIONS_SCHEMA = pa.schema([
    pa.field("session_id", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("client_submission", pa.bool_()),
    pa.field("worker_submission", pa.bool_()),
    pa.field("partition_ids", STR_LIST),
    pa.field("options", TASK_OPTIONS_STRUCT),
    pa.field("created_at", TS),
    pa.field("cancelled_at", TS),
    pa.field("closed_at", TS),
    pa.field("purged_at", TS),
    pa.field("deleted_at", TS),
    pa.field("duration", DUR),
])

TASKS_SCHEMA = pa.schema([
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("session_id", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("status_message", pa.string()),
    pa.field("owner_pod_id", pa.string()),
    pa.field("pod_hostname", pa.string()),
    pa.field("initial_task_id", pa.string()),
    pa.field("created_by", pa.string()),
    pa.field("payload_id", pa.string()),
    pa.field("parent_task_ids", STR_LIST),
    pa.field("data_dependencies", STR_LIST),
    pa.field("expected_output_ids", STR_LIST),
    pa.field("retry_of_ids", STR_LIST),
    pa.field("output_success", pa.bool_()),
    pa.field("output_error", pa.string()),
    # Task options, flattened: the analyses group by partition far more than anything else.
    pa.field("partition_id", pa.string()),
    pa.field("priority", pa.int32()),
    pa.field("max_retries", pa.int32()),
    pa.field("max_duration", DUR),
    pa.field("application_name", pa.string()),
    pa.field("application_version", pa.string()),
    pa.field("application_namespace", pa.string()),
    pa.field("application_service", pa.string()),
    pa.field("engine_type", pa.string()),
    pa.field("options", STR_MAP),
    pa.field("created_at", TS),
    pa.field("submitted_at", TS),
    pa.field("received_at", TS),
    pa.field("acquired_at", TS),
    pa.field("fetched_at", TS),
    pa.field("started_at", TS),
    pa.field("processed_at", TS),
    pa.field("ended_at", TS),
    pa.field("pod_ttl", TS),
    pa.field("creation_to_end_duration", DUR),
    pa.field("processing_to_end_duration", DUR),
    pa.field("received_to_end_duration", DUR),
])

RESULTS_SCHEMA = pa.schema([
    pa.field("result_id", pa.string(), nullable=False),
    pa.field("session_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("owner_task_id", pa.string()),
    pa.field("created_by", pa.string()),
    pa.field("created_at", TS),
    pa.field("completed_at", TS),
    pa.field("size", pa.int64()),
    pa.field("opaque_id", pa.binary()),
    pa.field("manual_deletion", pa.bool_()),
])

PARTITIONS_SCHEMA = pa.schema([
    pa.field("partition_id", pa.string(), nullable=False),
    pa.field("parent_partition_ids", STR_LIST),
    pa.field("pod_reserved", pa.int64()),
    pa.field("pod_max", pa.int64()),
    pa.field("priority", pa.int64()),
    pa.field("preemption_percentage", pa.int64()),
    pa.field("pod_configuration", STR_MAP),
])

SCHEMAS: dict[str, pa.Schema] = {
    "sessions": SESSIONS_SCHEMA,
    "tasks": TASKS_SCHEMA,
    "results": RESULTS_SCHEMA,
    "partitions": PARTITIONS_SCHEMA,
}
TABLES = tuple(SCHEMAS)

# Columns worth dictionary-encoding in Parquet: few distinct values. Ids (random GUIDs) are
# not: dictionary pages for them cost write time and then fall back to plain anyway.
DICTIONARY_COLUMNS: dict[str, list[str]] = {
    "sessions": ["status"],
    "tasks": ["session_id", "status", "status_message", "owner_pod_id", "pod_hostname",
              "output_error", "partition_id", "application_name", "application_version",
              "application_namespace", "application_service", "engine_type"],
    "results": ["session_id", "status", "name"],
    "partitions": [],
}


class BundleError(Exception):
    """A bundle is missing, unreadable, of another format version, or fails its checksums."""


def schema_with_metadata(table: str) -> pa.Schema:
    """The table's schema carrying the format version in its key-value metadata."""
    return SCHEMAS[table].with_metadata({
        META_VERSION_KEY: str(FORMAT_VERSION).encode(),
        META_TABLE_KEY: table.encode(),
    })


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class BundleWriter:
    """Writes a bundle atomically.

    Tables stream into a hidden temporary sibling of ``out`` in row groups; :meth:`commit`
    closes them, writes the manifest last and renames the directory into place. Until then
    nothing at ``out`` claims to be a bundle, and :meth:`abort` (or leaving the ``with`` block
    on an exception) removes the temporary directory.
    """

    def __init__(self, out: str | os.PathLike, overwrite: bool = False,
                 row_group_size: int = 128 * 1024, compression: str = "zstd"):
        self.out = Path(out).absolute()
        if self.out.exists() and not overwrite:
            raise BundleError(f"{self.out} already exists; pass --overwrite to replace it")
        if self.out.exists() and not self.out.is_dir():
            raise BundleError(f"{self.out} exists and is not a directory; choose another --out")
        parent = self.out.parent
        if not parent.is_dir():
            raise BundleError(f"the parent directory {parent} does not exist")
        self.overwrite = overwrite
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=parent))
        self.row_group_size = row_group_size
        self.compression = compression
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._rows: dict[str, int] = {t: 0 for t in TABLES}
        self._done = False

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._done:
            self.abort()

    def _writer(self, table: str) -> pq.ParquetWriter:
        w = self._writers.get(table)
        if w is None:
            w = pq.ParquetWriter(self.tmp / f"{table}.parquet", schema_with_metadata(table),
                                 compression=self.compression,
                                 use_dictionary=DICTIONARY_COLUMNS[table] or False)
            self._writers[table] = w
        return w

    def write(self, table: str, data: pa.Table | pa.RecordBatch) -> None:
        """Append rows to ``table``; ``data`` must carry exactly the table's columns."""
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        schema = SCHEMAS[table]
        if data.schema.names != schema.names:
            data = data.select(schema.names)
        data = data.cast(schema)
        if data.num_rows == 0:
            self._writer(table)
            return
        self._writer(table).write_table(data, row_group_size=self.row_group_size)
        self._rows[table] += data.num_rows

    @property
    def rows(self) -> dict[str, int]:
        return dict(self._rows)

    def commit(self, manifest_fields: dict[str, Any]) -> Path:
        """Close every table, write the manifest last, and move the bundle into place."""
        for table in TABLES:
            self._writer(table)  # every table exists, even when empty
        for w in self._writers.values():
            w.close()
        files = {}
        for table in TABLES:
            p = self.tmp / f"{table}.parquet"
            files[table] = {
                "file": p.name,
                "rows": self._rows[table],
                "bytes": p.stat().st_size,
                "sha256": sha256_file(p),
            }
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "written_at": utc_now_iso(),
            **manifest_fields,
            "tables": files,
        }
        with open(self.tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        if self.out.exists():
            # Move the old bundle aside first so a crash never leaves neither.
            trash = self.out.with_name(f".{self.out.name}.old-{uuid.uuid4().hex[:8]}")
            self.out.rename(trash)
            self.tmp.rename(self.out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            self.tmp.rename(self.out)
        self._done = True
        return self.out

    def abort(self) -> None:
        for w in self._writers.values():
            try:
                w.close()
            except Exception:
                pass
        self._writers.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_bundle(out: str | os.PathLike, tables: dict[str, pa.Table],
                 manifest_fields: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write whole tables as a bundle in one call (tests, fixtures, golden bundles)."""
    with BundleWriter(out, overwrite=overwrite) as w:
        for name in TABLES:
            w.write(name, tables.get(name, SCHEMAS[name].empty_table()))
        return w.commit(manifest_fields or {})


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a bundle's manifest: it exists, it is ours, its format version is ours."""
    root = Path(path)
    if not root.exists():
        raise BundleError(f"no bundle at {root}: the path does not exist")
    if not root.is_dir():
        raise BundleError(f"{root} is not a bundle directory (a bundle is a folder with {MANIFEST})")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{root} is not a complete bundle: it has no {MANIFEST} "
                          "(an export that did not finish never writes one)")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"{mpath} is not readable JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise BundleError(f"{mpath} is not an armonik-snapshot manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"{root} has bundle format version {version}, but this aksnap reads "
                          f"format version {FORMAT_VERSION}; use the aksnap release that wrote it")
    return manifest


def verify_bundle(path: str | os.PathLike, manifest: dict[str, Any] | None = None) -> list[str]:
    """Check every table's presence, SHA-256 and embedded format version.

    Returns the problems found, as sentences (empty when the bundle is intact).
    """
    root = Path(path)
    manifest = manifest or read_manifest(root)
    problems = []
    for table in TABLES:
        entry = manifest.get("tables", {}).get(table)
        if entry is None:
            problems.append(f"the manifest lists no {table} table")
            continue
        p = root / entry["file"]
        if not p.is_file():
            problems.append(f"{p.name} is missing")
            continue
        digest = sha256_file(p)
        if digest != entry.get("sha256"):
            problems.append(f"{p.name} fails its checksum (manifest {entry.get('sha256')}, "
                            f"file {digest}): it changed after the export")
            continue
        meta = pq.read_schema(p).metadata or {}
        v = meta.get(META_VERSION_KEY)
        if v is None or v.decode() != str(FORMAT_VERSION):
            problems.append(f"{p.name} has format version {v.decode() if v else 'none'} in its "
                            f"metadata, expected {FORMAT_VERSION}")
    return problems


def strip_enum_prefix(names: Iterable[str], prefix: str) -> list[str]:
    n = len(prefix)
    return [s[n:] if s.startswith(prefix) else s for s in names]
