"""The bundle format, defined once: its version, its four tables (schemas, status vocabularies,
the columns that are never null, how each file is encoded) and the typed manifest.

The lowest module of the format floor but the column catalogue (it imports only
:mod:`aksnap.columns` and :mod:`aksnap.errors`): the writer
(:mod:`aksnap.bundle_writer`), the packed-file reader (:mod:`aksnap.packed`) and the bundle
reader (:mod:`aksnap.bundle`, which re-exports every name defined here, the usual place to
import them from) are built on it. ``docs/bundle-format.md`` documents every column.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

# The status vocabularies, their named sets (failed, final, open, ...), and every column's
# facts (id kind, redaction rule, encoding, null policy, timestamp) are the column catalogue's,
# re-exported here: aksnap.columns, the one place they are spelled.
from aksnap.columns import (  # noqa: F401  (re-exported: the format's names)
    CATALOGUE,
    DICTIONARY_COLUMNS,
    GUID_COLUMNS,
    ID_COLUMN,
    NEVER_NULL,
    REQUIRED,
    RESULT_FINAL_STATUSES,
    RESULT_LOST_STATUSES,
    RESULT_OPEN_STATUSES,
    RESULT_STATUSES,
    RESULT_SUCCESS_STATUSES,
    RESULT_TIMESTAMPS,
    SESSION_STATUSES,
    STATUS_DOMAIN,
    STATUS_SETS,
    TASK_CANCELLED_STATUSES,
    TASK_FAILED_STATUSES,
    TASK_FINAL_STATUSES,
    TASK_IN_PROGRESS_STATUSES,
    TASK_LOST_STATUSES,
    TASK_OPEN_STATUSES,
    TASK_RETRIED_STATUSES,
    TASK_STATUSES,
    TASK_SUCCESS_STATUSES,
    TASK_TIMESTAMPS,
    TASK_WAITING_STATUSES,
    TIMESTAMP_COLUMNS,
    status_sets_table,
)
from aksnap.errors import BundleError

FORMAT_NAME = "armonik-snapshot-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
META_VERSION_KEY = b"aksnap.format_version"
META_TABLE_KEY = b"aksnap.table"

TS = pa.timestamp("us", tz="UTC")
DUR = pa.duration("us")
STR_LIST = pa.list_(pa.field("item", pa.string()))
STR_MAP = pa.map_(pa.string(), pa.string())

#: The timestamp at which a task entered its current status (for "in status for ...").
TASK_STATUS_ENTERED = {
    "CREATING": "created_at", "PENDING": "created_at", "PAUSED": "created_at",
    "SUBMITTED": "submitted_at", "DISPATCHED": "acquired_at", "PROCESSING": "started_at",
}
#: A task's life in phases (name, from, to); they tile created_at -> ended_at. The SQL view
#: ``task_phases`` (queries/_views.sql) has exactly these columns (tests/test_vocabulary.py).
TASK_PHASES = (
    ("waiting", "created_at", "submitted_at"),      # its inputs (data dependencies, payload)
    ("queued", "submitted_at", "acquired_at"),      # in the partition's queue, for an agent
    ("dispatch", "acquired_at", "fetched_at"),      # acquired by an agent, inputs downloaded
    ("fetching", "fetched_at", "started_at"),       # until the worker starts it (issue 4's name)
    ("processing", "started_at", "processed_at"),   # the worker runs it
    ("finishing", "processed_at", "ended_at"),      # outputs stored, status written
)
PHASE_NAMES = tuple(p[0] for p in TASK_PHASES)


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

MAX_MANIFEST_BYTES = 256 * 1024 * 1024  # 100k sessions' entries are ~20 MiB
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# The hidden siblings an export works in (see BundleWriter); never a bundle to read.
TEMP_DIR = re.compile(r"^\..+\.(partial|old)-[0-9a-z]+-\d+-[0-9a-z]+$")


def schema_with_metadata(table: str) -> pa.Schema:
    """The table's schema carrying the format version in its key-value metadata."""
    return SCHEMAS[table].with_metadata({
        META_VERSION_KEY: str(FORMAT_VERSION).encode(),
        META_TABLE_KEY: table.encode(),
    })


#: How the writer encodes the leaves of :data:`GUID_COLUMNS` (``aksnap check`` also accepts
#: PLAIN there: the bundles written before issue 21)
GUID_ENCODING = "DELTA_LENGTH_BYTE_ARRAY"


def leaf_paths(table: str) -> tuple[tuple[str, str], ...]:
    """(top-level column, Parquet leaf path) of every leaf of ``table``'s schema, in order
    (``parent_task_ids.list.element``): what per-column writer options name."""
    out = []

    def walk(top: str, path: str, t: pa.DataType) -> None:
        if pa.types.is_map(t):
            walk(top, f"{path}.key_value.key", t.key_type)
            walk(top, f"{path}.key_value.value", t.item_type)
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            walk(top, f"{path}.list.element", t.value_type)
        elif pa.types.is_struct(t):
            for i in range(t.num_fields):
                walk(top, f"{path}.{t.field(i).name}", t.field(i).type)
        else:
            out.append((top, path))

    for f in SCHEMAS[table]:
        walk(f.name, f.name, f.type)
    return tuple(out)


def parquet_writer_options(table: str) -> dict[str, Any]:
    """How the bundle writer writes ``table``'s Parquet file (``pq.ParquetWriter`` options):
    defined here once, because ``aksnap check`` verifies every byte of a file against what
    the writer makes of it (:mod:`aksnap.parquet_verify`). The random ids
    (:data:`GUID_COLUMNS`) have no statistics and are written as :data:`GUID_ENCODING`."""
    guid = set(GUID_COLUMNS[table])
    leaves = leaf_paths(table)
    options: dict[str, Any] = {
        "compression": "zstd", "use_dictionary": DICTIONARY_COLUMNS[table] or False,
        "write_page_checksum": True, "write_page_index": False,
        "write_statistics": [p for top, p in leaves if top not in guid] if guid else True}
    if guid:
        options["column_encoding"] = {p: GUID_ENCODING for top, p in leaves if top in guid}
    return options


def _describe(value: Any) -> str:
    kind = {str: "a string", bool: "a boolean", float: "a number", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    shown = json.dumps(value) if not isinstance(value, (list, dict)) else kind
    return f"{shown[:40]} ({kind})" if shown != kind else kind


def _is_count(v: Any) -> bool:
    return type(v) is int and v >= 0  # bool is not a count


# -- the manifest ----------------------------------------------------------------------------

#: The ArmoniK calls a capture makes, as the manifest's ``cost.calls`` names them (a closed
#: vocabulary: redaction keeps these words and refuses any other key).
COST_METHODS = ("ListVersions", "ListSessions", "ListPartitions", "ListTasksDetailed",
                "ListResults", "CountTasksByStatus", "GetEvents")
#: gRPC's status names, as ``cost.failed_calls`` names the failures.
GRPC_STATUS_NAMES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                     "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                     "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                     "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")

#: The manifest's ``cost`` record, field by field (``docs/bundle-format.md``), defined once:
#: every reader checks a bundle's record against it (:func:`check_cost`) and redaction keeps
#: exactly these fields (``core/redact.py``). A leaf is ``"count"`` (an integer >= 0),
#: ``"seconds"`` (a finite number >= 0, null allowed), ``"rate"`` (a number > 0, null: no
#: cap / never slowed), ``"jobs"`` (an integer >= 1); ``("map", VOCABULARY)`` is an object of
#: words of that vocabulary (``"method"``: :data:`COST_METHODS`, ``"grpc_status"``:
#: :data:`GRPC_STATUS_NAMES`, ``"table"``: the table names) -> counts.
COST_FIELDS: dict[str, Any] = {
    "calls": ("map", "method"), "failed_calls": ("map", "grpc_status"),
    "rows_received": ("map", "table"), "bytes_received": "count", "busiest_second": "count",
    "latency_ms": {k: "seconds" for k in ("p50", "p90", "p99", "max")},
    "wall_s": "seconds", "waited_for_budget_s": "seconds",
    "budget": {"max_rps": "rate", "jobs": "jobs"},
    "backpressure": {"episodes": "count", "slowest_rps": "rate"},
}


def check_cost(cost: dict, where: str = "the manifest") -> None:
    """A :class:`BundleError` naming the first field of a manifest's ``cost`` record that is
    not what the format says (:data:`COST_FIELDS`); fields it does not know are left to
    newer readers (redaction refuses them). A number that lies about its kind (a text, a
    negative count, NaN) would otherwise reach `aksnap summary` and the report as it is."""
    vocab = {"method": COST_METHODS, "grpc_status": GRPC_STATUS_NAMES, "table": TABLES}

    def bad(name: str, v: Any, expected: str) -> BundleError:
        return BundleError(f"{where} has cost.{name} {_describe(v)}, expected {expected}")

    def walk(spec: Any, value: Any, name: str) -> None:
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise bad(name, value, "an object")
            for k, sub in spec.items():
                if k in value:
                    walk(sub, value[k], f"{name}.{k}" if name else k)
        elif isinstance(spec, tuple):
            if not isinstance(value, dict):
                raise bad(name, value, "an object of names -> counts")
            for k, n in value.items():
                if k not in vocab[spec[1]]:
                    raise bad(f"{name} key", k, f"one of {', '.join(vocab[spec[1]])}")
                walk("count", n, f"{name}.{k}")
        elif spec == "count" and not _is_count(value):
            raise bad(name, value, "a non-negative integer")
        elif spec == "jobs" and not (_is_count(value) and value >= 1):
            raise bad(name, value, "an integer >= 1")
        elif spec in ("seconds", "rate") and value is not None and not (
                type(value) in (int, float) and math.isfinite(value)
                and (value > 0 if spec == "rate" else value >= 0)):
            raise bad(name, value, "a number > 0 or null" if spec == "rate"
                      else "a non-negative number or null")

    walk(COST_FIELDS, cost, "")


@dataclass(frozen=True)
class TableEntry:
    """One table of the manifest: its file (always ``<table>.parquet``), rows, bytes, SHA-256."""

    file: str
    rows: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


@dataclass
class Manifest:
    """``manifest.json``, typed: written by :class:`BundleWriter`, read by every reader.

    Unknown fields are kept in :attr:`extra` (and written back) but never interpreted; a
    missing or ill-typed required field is a :class:`BundleError` naming it.
    """

    tables: dict[str, TableEntry]
    format_version: int = FORMAT_VERSION
    written_at: str | None = None
    snapshot: str | None = None                 # "final" | "live"
    exported_at: str | None = None              # the snapshot's instant (exporter's clock)
    export_finished_at: str | None = None
    latest_timestamp: str | None = None         # latest timestamp in any row (cluster's clock)
    armonik_versions: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    exporter: dict[str, Any] = field(default_factory=dict)
    consistency: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Set only in a redacted bundle (aksnap redact, export --redact): what was redacted, how,
    # the key's fingerprint (docs/sharing.md). Absent from other manifests.
    redaction: dict[str, Any] | None = None
    # Set only in a bundle written by ``aksnap export --update``: its parent bundle (digest,
    # export times) and what was fetched again (docs/bundle-format.md). Absent otherwise.
    update: dict[str, Any] | None = None
    # What the capture cost the control plane (calls by method, rows and bytes received, the
    # busiest second, latency percentiles, wall time, the budget; docs/bundle-format.md).
    # Absent from bundles written before it was recorded.
    cost: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    #: ``sessions[i].server_counts``: the server's own counts by status for that session,
    #: taken after every row of the bundle was read: ``{"tasks": {STATUS: n}, "results":
    #: {STATUS: n}}`` (``Tasks.CountTasksByStatus``; ``Results.ListResults`` counted per
    #: status), statuses with no row left out. Optional: absent from older bundles, null for
    #: sessions read in groups (more than 16 selected); ``consistency.server_counts`` holds
    #: the selection's total in the same shape.
    SERVER_COUNTS = "server_counts"

    _OPTIONAL = {  # field -> the JSON types it may have (None always allowed)
        "written_at": str, "snapshot": str, "exported_at": str, "export_finished_at": str,
        "latest_timestamp": str, "armonik_versions": dict, "source": dict, "selection": dict,
        "sessions": list, "exporter": dict, "consistency": dict, "warnings": list,
        "redaction": dict, "update": dict, "cost": dict,
    }

    def server_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """Session id -> its recorded server counts (``SERVER_COUNTS``), for the sessions that
        have them (checked when the manifest was read)."""
        return {e["session_id"]: e[self.SERVER_COUNTS] for e in self.sessions
                if isinstance(e, dict) and isinstance(e.get(self.SERVER_COUNTS), dict)}

    @classmethod
    def _check_server_counts(cls, sessions: list, where: str) -> None:
        for i, e in enumerate(sessions):
            v = e.get(cls.SERVER_COUNTS) if isinstance(e, dict) else None
            if v is None:
                continue
            name = f"sessions[{i}].{cls.SERVER_COUNTS}"
            if not isinstance(v, dict) or set(v) != {"tasks", "results"}:
                raise BundleError(f"{where} has {name} {_describe(v)}, expected an object "
                                  "{\"tasks\": {STATUS: count}, \"results\": {STATUS: count}}")
            for table, counts in v.items():
                if not isinstance(counts, dict) or not all(
                        isinstance(k, str) and _is_count(n) for k, n in counts.items()):
                    raise BundleError(f"{where} has {name}.{table} {_describe(counts)}, "
                                      "expected an object of status name -> non-negative "
                                      "integer")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT_NAME, "format_version": self.format_version}
        for name in self._OPTIONAL:
            if name in ("redaction", "update", "cost") and getattr(self, name) is None:
                continue  # only a redacted (an updated, a costed) bundle says so
            out[name] = getattr(self, name)
        for k, v in self.extra.items():
            out.setdefault(k, v)
        out["tables"] = {t: e.as_dict() for t, e in self.tables.items()}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def digest(self) -> str:
        """SHA-256 of the manifest's canonical JSON: names the bundle's content (its tables'
        checksums, times, selection), whatever directory or packed file holds it."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_dict(cls, obj: Any, where: str = "the manifest") -> "Manifest":
        if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
            raise BundleError(f"{where} is not an armonik-snapshot manifest (no \"format\": "
                              f"\"{FORMAT_NAME}\")")
        version = obj.get("format_version")
        if type(version) is not int:
            raise BundleError(f"{where} has format_version {_describe(version)}, not an "
                              f"integer; this aksnap reads format version {FORMAT_VERSION} "
                              "(the manifest was edited or written by another tool)")
        if version != FORMAT_VERSION:
            raise BundleError(f"{where} is bundle format version {version}, but this aksnap "
                              f"reads format version {FORMAT_VERSION}; use the aksnap release "
                              "that wrote it")
        kwargs: dict[str, Any] = {"format_version": version}
        for name, typ in cls._OPTIONAL.items():
            v = obj.get(name)
            if v is not None and not isinstance(v, typ):
                raise BundleError(f"{where} has {name} {_describe(v)}, expected "
                                  f"{'a string' if typ is str else 'an object' if typ is dict else 'a list'}")
            if v is not None:
                kwargs[name] = v
        cls._check_server_counts(kwargs.get("sessions", []), where)
        if "cost" in kwargs:
            check_cost(kwargs["cost"], where)
        kwargs["tables"] = cls._tables(obj.get("tables"), where)
        known = {"format", "format_version", "tables", *cls._OPTIONAL}
        kwargs["extra"] = {k: v for k, v in obj.items() if k not in known}
        return cls(**kwargs)

    @staticmethod
    def _tables(raw: Any, where: str) -> dict[str, TableEntry]:
        if not isinstance(raw, dict):
            raise BundleError(f"{where} has tables {_describe(raw)}, expected an object with "
                              f"one entry per table ({', '.join(TABLES)})")
        out = {}
        for table in TABLES:
            e = raw.get(table)
            if e is None:
                raise BundleError(f"{where} lists no {table} table")
            if not isinstance(e, dict):
                raise BundleError(f"{where} has tables.{table} {_describe(e)}, expected an "
                                  "object with file, rows, bytes and sha256")
            expected = f"{table}.parquet"
            if e.get("file") != expected:
                raise BundleError(f"{where} names the {table} table's file "
                                  f"{_describe(e.get('file'))}; a bundle's {table} table is "
                                  f"the plain file {expected} inside the bundle, nothing else")
            for k in ("rows", "bytes"):
                if not _is_count(e.get(k)):
                    raise BundleError(f"{where} has tables.{table}.{k} {_describe(e.get(k))}, "
                                      "expected a non-negative integer")
            sha = e.get("sha256")
            if not isinstance(sha, str) or not _SHA256.match(sha):
                raise BundleError(f"{where} has tables.{table}.sha256 {_describe(sha)}, "
                                  "expected 64 lowercase hex digits")
            out[table] = TableEntry(expected, e["rows"], e["bytes"], sha)
        return out


def parse_manifest(data: bytes, where: str = "the manifest") -> Manifest:
    try:
        obj = json.loads(data)
    except RecursionError:
        raise BundleError(f"{where} is nested too deeply to be a manifest") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(f"{where} is not readable JSON ({e})") from None
    return Manifest.from_dict(obj, where)


def sha256_fd(fd: int, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    pos = 0
    while block := os.pread(fd, chunk, pos):
        h.update(block)
        pos += len(block)
    return h.hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
