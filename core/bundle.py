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

import errno
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aksnap import parquet_verify

# The status vocabularies, their named sets (failed, final, open, ...), and every column's
# facts (id kind, redaction rule, encoding, null policy, timestamp) are the column catalogue's,
# re-exported here: aksnap.columns, the one place they are spelled.
from aksnap.columns import (  # noqa: F401  (re-exported: the format's names)
    CATALOGUE,
    DICTIONARY_COLUMNS,
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


class BundleError(Exception):
    """A bundle is missing, unreadable, hostile, of another format version, or fails its
    checksums; or one cannot be written. The message is one sentence a user can act on."""


def schema_with_metadata(table: str) -> pa.Schema:
    """The table's schema carrying the format version in its key-value metadata."""
    return SCHEMAS[table].with_metadata({
        META_VERSION_KEY: str(FORMAT_VERSION).encode(),
        META_TABLE_KEY: table.encode(),
    })


def parquet_writer_options(table: str) -> dict[str, Any]:
    """How the bundle writer writes ``table``'s Parquet file (``pq.ParquetWriter`` options):
    defined here once, because ``aksnap check`` verifies every byte of a file against what
    the writer makes of it (:mod:`aksnap.parquet_verify`)."""
    return {"compression": "zstd", "use_dictionary": DICTIONARY_COLUMNS[table] or False,
            "write_page_checksum": True, "write_statistics": True, "write_page_index": False}


def _describe(value: Any) -> str:
    kind = {str: "a string", bool: "a boolean", float: "a number", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    shown = json.dumps(value) if not isinstance(value, (list, dict)) else kind
    return f"{shown[:40]} ({kind})" if shown != kind else kind


def _is_count(v: Any) -> bool:
    return type(v) is int and v >= 0  # bool is not a count


# -- the manifest ----------------------------------------------------------------------------

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
        "redaction": dict, "update": dict,
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
            if name in ("redaction", "update") and getattr(self, name) is None:
                continue  # only a redacted (an updated) bundle says so
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


# -- reading ---------------------------------------------------------------------------------

def _open_plain(path: Path, what: str, root: Path) -> int:
    """An fd on a plain file inside the bundle; a symlink, a directory, a device is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise BundleError(f"{root} is not a complete bundle: {what} is missing") from None
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():
            raise BundleError(f"{what} in {root} is a symbolic link; a bundle's files are plain "
                              "files inside it, so it is refused") from None
        raise BundleError(f"cannot read {what} in {root} ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleError(f"{what} in {root} is not a plain file; a bundle's files are plain "
                          "files inside it, so it is refused")
    return fd


def _check_root(root: Path) -> None:
    if not root.exists():
        raise BundleError(f"no bundle at {root}: the path does not exist")
    if not root.is_dir():
        raise BundleError(f"{root} is not a bundle directory (a bundle is a folder with {MANIFEST})")
    if TEMP_DIR.match(root.name):
        raise BundleError(f"{root} is the working directory of an unfinished (or replaced) "
                          "export, not a bundle; open the bundle it was meant to become")


def resolve_bundle(path: str | os.PathLike) -> Path:
    """The directory to read for ``path``: itself, or, for a packed file (``aksnap pack``),
    its members extracted once into the cache after every safety check (:mod:`aksnap.pack`)."""
    root = Path(path)
    if root.is_file():
        from aksnap import pack  # the packed form is built on this module

        if pack.is_packed(root):
            return pack.open_packed(root)
    return root


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check a bundle's manifest: present, a plain file, ours, of our format version,
    every required field well typed."""
    root = resolve_bundle(path)
    _check_root(root)
    fd = _open_plain(root / MANIFEST, MANIFEST, root)
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{root / MANIFEST} is larger than {MAX_MANIFEST_BYTES >> 20} MiB; "
                          "it is not a manifest aksnap wrote")
    return parse_manifest(data, str(root / MANIFEST))


def _fd_path(fd: int, fallback: Path) -> str:
    """A path that reopens exactly this fd's file (Linux), so a reader keeps reading the bundle
    it opened even if a new export replaces the directory meanwhile."""
    p = f"/proc/self/fd/{fd}"
    return p if os.path.exists(p) else str(fallback)


def schema_problem(table: str, schema: pa.Schema) -> str | None:
    """Why a file's schema is not the format's schema of ``table``, or None."""
    meta = schema.metadata or {}
    v = meta.get(META_VERSION_KEY)
    if v is None or v.decode(errors="replace") != str(FORMAT_VERSION):
        return (f"has format version {v.decode(errors='replace') if v else 'none'} in its "
                f"metadata, expected {FORMAT_VERSION}")
    t = meta.get(META_TABLE_KEY, b"").decode(errors="replace")
    if t != table:
        return f"holds the {t or 'unnamed'} table, not the {table} table"
    want = SCHEMAS[table]
    missing = [f.name for f in want if f.name not in schema.names]
    if missing:
        return f"has no column {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
    extra = [n for n in schema.names if n not in want.names]
    if extra:
        return f"has unknown column {', '.join(extra[:3])}"
    for f in want:
        got = schema.field(f.name).type
        if got != f.type and not (pa.types.is_dictionary(got) and got.value_type == f.type):
            return f"has column {f.name} of type {got}, expected {f.type}"
    return None


class OpenBundle:
    """A bundle opened for reading: the manifest read once, every table file held open.

    Readers go through :meth:`file` (a path that reopens the held file), so a bundle replaced
    by ``export --overwrite`` while it is being read keeps answering about the bundle that was
    opened. Opening checks everything that is cheap (paths, plain files, sizes, each file's
    schema, version and row count against the manifest); :meth:`checksum_problems` hashes the
    files, :meth:`content_problems` decodes every page.
    """

    def __init__(self, root: Path, manifest: Manifest, fds: dict[str, int]):
        self.root, self.manifest, self._fds = root, manifest, fds

    @classmethod
    def open(cls, path: str | os.PathLike) -> "OpenBundle":
        root = resolve_bundle(path)
        manifest = read_manifest(root)
        fds: dict[str, int] = {}
        try:
            for table in TABLES:
                fds[table] = _open_plain(root / manifest.tables[table].file,
                                         manifest.tables[table].file, root)
            b = cls(root, manifest, fds)
            problems = b.structure_problems()
        except BaseException:
            for fd in fds.values():
                os.close(fd)
            raise
        if problems:
            b.close()
            raise BundleError(f"{root} cannot be read: {problems[0]}"
                              + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                              + "; `aksnap check` lists every problem")
        return b

    def file(self, table: str) -> str:
        return _fd_path(self._fds[table], self.root / self.manifest.tables[table].file)

    def structure_problems(self, statistics: bool = True) -> list[str]:
        """Cheap checks, from the file system, the Parquet footers and the dictionary pages
        only: sizes, schemas, row counts, and (``statistics``) the statistics of
        dictionary-encoded columns (statuses, session ids...) against their dictionaries.
        Tables whose structure is wrong land in :attr:`unreadable`."""
        problems = []
        self.unreadable: set[str] = set()
        for table in TABLES:
            entry = self.manifest.tables[table]
            size = os.fstat(self._fds[table]).st_size
            if size != entry.bytes:
                problems.append(f"{entry.file} is {size} bytes but the manifest says "
                                f"{entry.bytes}: it changed after the export")
                self.unreadable.add(table)
                continue
            try:
                pf = pq.ParquetFile(self.file(table))
                schema, rows = pf.schema_arrow, pf.metadata.num_rows
            except (pa.ArrowException, OSError, ValueError) as e:  # ValueError: names not UTF-8
                problems.append(f"{entry.file} is not readable Parquet ({_first_line(e)}): "
                                "it is truncated or corrupt")
                self.unreadable.add(table)
                continue
            why = schema_problem(table, schema)
            if why:
                problems.append(f"{entry.file} {why}")
                self.unreadable.add(table)
            elif rows != entry.rows:
                problems.append(f"{entry.file} holds {rows} rows but the manifest says "
                                f"{entry.rows}")
                self.unreadable.add(table)
            elif statistics:
                # DuckDB skips row groups by these statistics: a wrong one is a wrong answer
                problems += parquet_verify.dictionary_statistics_problems(self._fds[table],
                                                                          entry.file)
        return problems

    def checksum_problems(self) -> list[str]:
        problems = []
        for table in TABLES:
            entry = self.manifest.tables[table]
            digest = sha256_fd(self._fds[table])
            if digest != entry.sha256:
                problems.append(f"{entry.file} fails its checksum (manifest {entry.sha256[:12]}..., "
                                f"file {digest[:12]}...): it changed after the export")
        return problems

    def content_problems(self, tables: tuple[str, ...] = TABLES) -> list[str]:
        """Every byte of every table file accounted for (:mod:`aksnap.parquet_verify`: the
        layout, the footer and each page header parsed and checked field by field against the
        writer's model and the decoded values, each page's CRC), and the columns the analyzer
        interprets: nulls where the format forbids them, statuses outside the vocabulary.
        Reads every byte: for ``aksnap check``."""
        problems = []
        for table in tables:
            entry = self.manifest.tables[table]
            model = parquet_verify.Model(schema_with_metadata(table), parquet_writer_options(table),
                                         tuple(DICTIONARY_COLUMNS[table]))
            problems += parquet_verify.verify_file(
                self._fds[table], self.file(table), model, entry.file,
                lambda i, rg: column_problems(table, rg, entry.file, row_group=i))
        return problems

    def identity(self) -> list[tuple[int, int, int, int]]:
        """(device, inode, size, mtime_ns) of every table file: who the files are, for caches."""
        out = []
        for table in TABLES:
            st = os.fstat(self._fds[table])
            out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        return out

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = {}

    def __del__(self) -> None:  # pragma: no cover - belt and braces for forgotten closes
        if getattr(self, "_fds", None):
            self.close()


def column_problems(table: str, data: pa.Table, what: str, row_group: int | None = None) -> list[str]:
    """Nulls where the format forbids them and unknown statuses, among ``data``'s columns."""
    problems = []
    where = f"{what}{f' (row group {row_group})' if row_group is not None else ''}"
    for c in NEVER_NULL.get(table, ()):
        if c in data.column_names and data.column(c).null_count:
            problems.append(f"{where} has {data.column(c).null_count} rows whose {c} is null; "
                            "the format never leaves it null, so the file was edited or not "
                            "written by aksnap")
    domain = STATUS_DOMAIN.get(table)
    if domain is not None and "status" in data.column_names:
        col = data.column("status")
        values = pc.unique(col.cast(pa.string()) if not pa.types.is_dictionary(col.type)
                           else pa.chunked_array([c.dictionary for c in col.chunks], pa.string())
                           if col.num_chunks else pa.array([], pa.string()))
        # compared as bytes: a corrupt page may hold bytes that are not UTF-8
        known = {s.encode() for s in domain}
        unknown = [v.decode("utf-8", "backslashreplace") for v in values.view(pa.binary()).to_pylist()
                   if v is not None and v not in known]
        if unknown:
            problems.append(f"{where} has status {unknown[0]!r}, which is not an ArmoniK "
                            f"{table[:-1]} status ({', '.join(domain)})")
    return problems


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else type(e).__name__


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


def verify_bundle(path: str | os.PathLike, thorough: bool = False) -> list[str]:
    """Every problem of the bundle at ``path``, as sentences (empty when it is intact):
    manifest, files, sizes, schemas, row counts, checksums; with ``thorough``, every byte of
    every table file (``docs/bundle-format.md``, "What `aksnap check` covers"). Never raises
    for a damaged bundle."""
    try:
        root = resolve_bundle(path)
        manifest = read_manifest(root)
        fds = {}
        try:
            for table in TABLES:
                fds[table] = _open_plain(root / manifest.tables[table].file,
                                         manifest.tables[table].file, root)
        except BundleError:
            for fd in fds.values():
                os.close(fd)
            raise
    except BundleError as e:
        return [str(e)]
    b = OpenBundle(root, manifest, fds)
    try:
        # thorough: the statistics are checked against the values, not only the dictionaries
        problems = b.structure_problems(statistics=not thorough)
        problems += b.checksum_problems()
        if thorough:  # every table that reads as the format's, whatever its checksum says
            problems += b.content_problems(tuple(t for t in TABLES if t not in b.unreadable))
        return problems
    finally:
        b.close()


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def __getattr__(name: str):
    # The writer lives in its own module; these names stay importable from here.
    if name in ("BundleWriter", "write_bundle"):
        from aksnap import bundle_writer

        return getattr(bundle_writer, name)
    raise AttributeError(name)
