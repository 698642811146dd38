"""``export()``: the exporter's Python API; the CLI is a thin shell over it.

Order of work: versions, the session selection (unknown ids fail before anything is written),
partitions, then a plan of units (one per table, session and id shard, sized by count
queries) run concurrently by ``jobs`` threads. A single writer thread streams rows into the
bundle in row groups through a bounded queue, so a slow disk slows the scan instead of
filling memory. The manifest is written last and the directory renamed into place
(:class:`aksnap.bundle.BundleWriter`).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from aksnap import __version__
from aksnap.bundle import SCHEMAS, BundleError, SESSION_STATUSES, TASK_FINAL_STATUSES, read_manifest, utc_now_iso
from aksnap.bundle_writer import BundleWriter, replaceable_problem
from aksnap.exporter.client import (
    Connection,
    ExportError,
    RawClient,
    RetryPolicy,
    SelectionError,
    TlsFiles,
    resolve_connection,
)
from aksnap.exporter.decode import (
    ID_COLUMN,
    decode_page,
    status_counts_from_raw,
    versions_from_raw,
)
from aksnap.exporter.requests import (
    ASC,
    DESC,
    HEX,
    all_partitions_filters,
    count_tasks_request,
    hex_filters,
    list_request,
    row_filters,
    session_filters,
    versions_request,
)
from aksnap.exporter.scan import AUTO_FIRST_PAGE, Unit, UnitReport, UnitScan

DEFAULT_PAGE_SIZE = None  # automatic: see scan.AUTO_*
DEFAULT_JOBS = 4
# A session with more rows than this many pages is split into 16 id shards (+ residual).
SHARD_PAGES = 4
ROW_GROUP_ROWS = {"tasks": 128 * 1024, "results": 256 * 1024, "sessions": 64 * 1024,
                  "partitions": 64 * 1024}
# The columns whose maximum is the cluster's own "now" as far as the data shows it.
LATEST_COLUMNS = {
    "tasks": ("created_at", "submitted_at", "received_at", "acquired_at", "fetched_at",
              "started_at", "processed_at", "ended_at"),
    "results": ("created_at", "completed_at"),
}
STATUS_NAMES = tuple(s for s in SESSION_STATUSES if s != "UNSPECIFIED")


class ExportInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the export (still a KeyboardInterrupt for Python callers);
    its message says truthfully which bundle is at ``out``."""


class Progress(Protocol):
    """What ``export`` reports while it runs (the CLI draws bars from it)."""

    def start(self, table: str, total: int) -> None: ...
    def advance(self, table: str, rows: int) -> None: ...
    def close(self) -> None: ...


@dataclass
class ExportSummary:
    path: Path
    rows: dict[str, int]
    bytes: int
    seconds: float
    snapshot: str                     # "final" or "live"
    sessions: list[str]
    warnings: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def rows_per_s(self) -> float:
        return sum(self.rows.values()) / self.seconds if self.seconds > 0 else 0.0

    @property
    def tasks_per_s(self) -> float:
        return self.rows.get("tasks", 0) / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "snapshot": self.snapshot, "rows": self.rows,
                "bytes": self.bytes, "seconds": round(self.seconds, 3),
                "rows_per_s": round(self.rows_per_s), "tasks_per_s": round(self.tasks_per_s),
                "sessions": self.sessions, "warnings": self.warnings}


def _utc(dt: datetime | str | None, what: str) -> datetime | None:
    if dt is None:
        return None
    if isinstance(dt, str):
        try:
            dt = datetime.fromisoformat(dt)
        except ValueError:
            raise SelectionError(f"{what} {dt!r} is not an ISO date or date-time; use e.g. "
                                 "2025-01-31 or 2025-01-31T12:00:00Z") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _writer_error(e: BaseException) -> ExportError:
    if isinstance(e, BundleError):
        return ExportError(str(e))
    return ExportError(f"writing the bundle failed: {e}")


class _Writer:
    """The one thread that owns the BundleWriter; units hand it batches through a queue."""

    def __init__(self, bundle: BundleWriter, depth: int):
        self.bundle = bundle
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.buffers: dict[str, list[pa.RecordBatch]] = {t: [] for t in SCHEMAS}
        self.buffered: dict[str, int] = {t: 0 for t in SCHEMAS}
        self.error: BaseException | None = None
        # Per session: task rows, non-final task rows, result rows.
        self.session_tasks: dict[str, int] = {}
        self.session_open: dict[str, int] = {}
        self.session_results: dict[str, int] = {}
        self.latest: datetime | None = None  # the latest timestamp in any exported row
        self.thread = threading.Thread(target=self._run, name="aksnap-writer", daemon=True)
        self.thread.start()

    def put(self, table: str, batch: pa.RecordBatch) -> None:
        while True:
            if self.error is not None:
                raise _writer_error(self.error)
            try:
                self.q.put((table, batch), timeout=0.5)
                return
            except queue.Full:
                continue

    def _latest(self, batch: pa.RecordBatch, columns: Iterable[str]) -> None:
        for c in columns:
            m = pc.max(batch.column(c)).as_py()
            if m is not None and (self.latest is None or m > self.latest):
                self.latest = m

    def _count(self, table: str, batch: pa.RecordBatch) -> None:
        if table in LATEST_COLUMNS:
            self._latest(batch, LATEST_COLUMNS[table])
        if table == "tasks":
            sess = batch.column("session_id")
            for d in pc.value_counts(sess).to_pylist():
                self.session_tasks[d["values"]] = self.session_tasks.get(d["values"], 0) + d["counts"]
            open_ = pc.invert(pc.is_in(batch.column("status"),
                                       value_set=pa.array(TASK_FINAL_STATUSES)))
            if pc.any(open_).as_py():
                for d in pc.value_counts(sess.filter(open_)).to_pylist():
                    self.session_open[d["values"]] = self.session_open.get(d["values"], 0) + d["counts"]
        elif table == "results":
            for d in pc.value_counts(batch.column("session_id")).to_pylist():
                self.session_results[d["values"]] = self.session_results.get(d["values"], 0) + d["counts"]

    def _flush(self, table: str) -> None:
        if self.buffers[table]:
            self.bundle.write(table, pa.Table.from_batches(self.buffers[table]))
            self.buffers[table] = []
            self.buffered[table] = 0

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                break
            if self.error is not None:
                continue  # drain so producers never block on a dead writer
            table, batch = item
            try:
                self._count(table, batch)
                self.buffers[table].append(batch)
                self.buffered[table] += batch.num_rows
                if self.buffered[table] >= ROW_GROUP_ROWS[table]:
                    self._flush(table)
            except BaseException as e:  # noqa: BLE001 - reported to the producers
                self.error = e

    def finish(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise _writer_error(self.error)
        for t in SCHEMAS:
            self._flush(t)

    def stop(self) -> None:
        try:
            self.q.put_nowait(None)
        except queue.Full:
            self.error = self.error or ExportError("stopped")
            try:
                while True:
                    self.q.get_nowait()
            except queue.Empty:
                pass
            self.q.put(None)
        self.thread.join(timeout=10)


class _Exporter:
    def __init__(self, client: RawClient, page_size: int | None, jobs: int,
                 progress: Progress | None,
                 cancelled: threading.Event):
        self.client = client
        self.page_size = page_size
        self.jobs = jobs
        self.progress = progress
        self.cancelled = cancelled
        self.reports: list[UnitReport] = []

    def count(self, table: str, filters) -> int:
        raw = self.client.call(table, list_request(table, filters, 0, 0))
        return decode_page(table, raw).total

    def collect(self, table: str, filters, page_size: int = 1000) -> pa.Table:
        """Read a small table (sessions, partitions) whole."""
        batches: list[pa.RecordBatch] = []
        unit = Unit(table, None, filters)
        scan = UnitScan(self.client, unit, lambda t, b: batches.append(b), page_size,
                        cancelled=self.cancelled)
        self.reports.append(scan.run())
        schema = SCHEMAS[table]
        return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()

    def _edge_id(self, table: str, session_id: str, descending: bool) -> str | None:
        req = list_request(table, row_filters(table, session_id), 0, 1)
        req.sort.direction = DESC if descending else ASC
        rows = decode_page(table, self.client.call(table, req)).rows
        return rows.column(ID_COLUMN[table])[0].as_py() if rows.num_rows else None

    def has_residual(self, table: str, session_id: str) -> bool:
        """Whether the session has ids that start with no lowercase hex digit (in no shard).

        ArmoniK has no NOT STARTS_WITH, so this compares counts: the session's, the 16-shard
        union's (one OR filter), the session's again. When the session did not change in
        between, the gap is exact. A session that keeps growing (a live one) makes the gap
        meaningless; then the smallest and largest ids (sorted by id) are checked instead,
        which finds ids sorting before "0" or after "f" but not, say, upper-case ones.
        """
        for _ in range(3):
            before = self.count(table, row_filters(table, session_id))
            covered = self.count(table, hex_filters(table, session_id))
            after = self.count(table, row_filters(table, session_id))
            if before == after:
                return after > covered
        edges = (self._edge_id(table, session_id, False), self._edge_id(table, session_id, True))
        return any(e and e[0] not in HEX for e in edges)

    def plan(self, table: str, session_id: str) -> list[Unit]:
        total = self.count(table, row_filters(table, session_id))
        if total <= SHARD_PAGES * (self.page_size or AUTO_FIRST_PAGE):
            return [Unit(table, session_id, row_filters(table, session_id), None, total)]
        units = [Unit(table, session_id, row_filters(table, session_id, h), h,
                      self.count(table, row_filters(table, session_id, h))) for h in HEX]
        if self.has_residual(table, session_id):
            units.append(Unit(table, session_id, row_filters(table, session_id), "residual",
                              0, residual=True))
        return units


def export(endpoint: str | Connection | None, out: str | os.PathLike, *,
           sessions: Sequence[str] = (), all_sessions: bool = False, status: str | None = None,
           created_after: datetime | str | None = None, created_before: datetime | str | None = None,
           tls: TlsFiles | None = None, page_size: int | None = DEFAULT_PAGE_SIZE,
           jobs: int = DEFAULT_JOBS, overwrite: bool = False, progress: Progress | None = None,
           retry: RetryPolicy | None = None, max_receive: int | None = None,
           max_rescans: int = 2) -> ExportSummary:
    """Export the selected sessions' tasks, results, the sessions and the partitions to a bundle.

    ``endpoint`` is ``HOST:PORT`` (plaintext unless ``tls`` is given) or a resolved
    :class:`Connection`. The selection is ``sessions`` (ids), ``all_sessions``, or filters on
    the session ``status`` and creation date; filters combine with ids. Raises
    :class:`SelectionError` (nothing written) when an id is unknown or the selection is
    empty, :class:`ExportError` when the cluster cannot be read; in every failure the
    existing ``out`` is untouched and no partial directory remains.
    """
    started = time.perf_counter()
    started_at = utc_now_iso()
    sessions = list(dict.fromkeys(sessions))
    if status is not None:
        status = status.upper().removeprefix("SESSION_STATUS_")
        if status not in STATUS_NAMES:
            raise SelectionError(f"unknown session status {status!r}; use one of "
                                 f"{', '.join(STATUS_NAMES)}")
    created_after = _utc(created_after, "--created-after")
    created_before = _utc(created_before, "--created-before")
    if not (sessions or all_sessions or status or created_after or created_before):
        raise SelectionError("nothing selected; pass --session ID (repeatable), --all, or a "
                             "filter such as --status RUNNING")
    if all_sessions and sessions:
        raise SelectionError("--all and --session exclude each other; pass one of them")
    if page_size is not None and page_size < 1:
        raise SelectionError(f"--page-size must be at least 1, not {page_size}")
    if jobs < 1:
        raise SelectionError(f"--jobs must be at least 1, not {jobs}")
    out = Path(os.path.abspath(out))
    # Refuse a bad --out before touching the cluster (the writer checks again when it starts,
    # and its final rename is what actually guarantees nothing is lost).
    if os.path.lexists(out):
        why = (f"{out} already exists; pass --overwrite to replace it" if not overwrite
               else replaceable_problem(out))
        if why:
            raise SelectionError(why)
    if isinstance(endpoint, Connection):
        conn = endpoint
    else:
        # None: AK_ENDPOINT, then the AKCONFIG file, like armonik-cli.
        conn = resolve_connection(endpoint)
        if tls is not None:
            conn = Connection(conn.endpoint, tls)

    cancelled = threading.Event()
    kwargs = {"max_receive": max_receive} if max_receive else {}
    with RawClient(conn, retry=retry, cancelled=cancelled, **kwargs) as client:
        ex = _Exporter(client, page_size, jobs, progress, cancelled)
        versions = versions_from_raw(client.call("versions", versions_request()))

        # The selection, resolved once: the export covers exactly these sessions.
        chosen: list[str] = []
        session_tables = []
        for i in range(0, max(1, len(sessions)), 100):
            f = session_filters(sessions[i:i + 100], status, created_after, created_before)
            session_tables.append(ex.collect("sessions", f))
        sessions_table = pa.concat_tables(session_tables)
        ids = sessions_table.column("session_id").to_pylist()
        if sessions:
            found = set(ids)
            missing = [s for s in sessions if s not in found]
            if missing:
                any_ = set(s for s in missing
                           if ex.count("sessions", session_filters([s])) > 0)
                unknown = [s for s in missing if s not in any_]
                if unknown:
                    raise SelectionError(
                        f"unknown session id{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(unknown)} at {conn.endpoint}; list sessions with "
                        "`armonik session list` and check the id")
                raise SelectionError(
                    f"session{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                    "exist but do not match the --status/--created-* filters")
        chosen = list(dict.fromkeys(ids))
        if not chosen:
            raise SelectionError("no session matches the selection at "
                                 f"{conn.endpoint}; nothing to export")
        partitions_table = ex.collect("partitions", all_partitions_filters())

        bundle = BundleWriter(out, overwrite=overwrite, row_group_size=256 * 1024)
        try:
            path = _write(bundle, ex, client, conn, jobs, page_size, max_rescans, progress,
                          cancelled, chosen, ids, sessions_table, partitions_table, versions,
                          started_at, sessions, all_sessions, status, created_after,
                          created_before)
        except KeyboardInterrupt:
            bundle.abort()
            raise ExportInterrupted(bundle.interruption_sentence()) from None
        except BaseException:
            bundle.abort()
            raise
    manifest = read_manifest(path)
    seconds = time.perf_counter() - started
    return ExportSummary(
        path=path,
        rows={t: manifest.tables[t].rows for t in SCHEMAS},
        bytes=sum(manifest.tables[t].bytes for t in SCHEMAS),
        seconds=seconds,
        snapshot=manifest.snapshot,
        sessions=chosen,
        warnings=manifest.warnings,
        manifest=manifest.to_dict(),
    )


def _write(bundle, ex, client, conn, jobs, page_size, max_rescans, progress, cancelled, chosen,
           ids, sessions_table, partitions_table, versions, started_at, sessions, all_sessions,
           status, created_after, created_before) -> Path:
    bundle.write("sessions", sessions_table)
    bundle.write("partitions", partitions_table)
    writer = _Writer(bundle, depth=max(4, 2 * jobs))
    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="aksnap-scan") as pool:
            plans = [pool.submit(ex.plan, table, s)
                     for table in ("tasks", "results") for s in chosen]
            units = [u for f in plans for u in f.result()]
            if progress is not None:
                for table in ("tasks", "results"):
                    progress.start(table, sum(u.expected for u in units if u.table == table))
            on_rows = progress.advance if progress is not None else None
            # Biggest units first: the tail of the run is then made of small ones.
            units.sort(key=lambda u: -u.expected)
            row_bytes: dict[str, float] = {}
            futures = [pool.submit(UnitScan(client, u, writer.put, page_size,
                                            max_rescans, on_rows, cancelled,
                                            row_bytes).run)
                       for u in units]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for f in done:
                    if f.exception() is not None:
                        raise f.exception()
            except BaseException:
                cancelled.set()
                for f in futures:
                    f.cancel()
                raise
            ex.reports.extend(f.result() for f in futures)
        writer.finish()
    except BaseException:
        cancelled.set()
        writer.stop()
        raise
    finally:
        if progress is not None:
            progress.close()

    # The server's own per-status counts after the scan: a cross-check a reader can
    # compare with the rows (they differ only by tasks created or changed meanwhile).
    server_counts = {s: status_counts_from_raw(client.call("count_tasks",
                                                            count_tasks_request(s)))
                     for s in chosen}
    non_final = {s: writer.session_open.get(s, 0) for s in chosen}
    snapshot = "final" if not any(non_final.values()) else "live"
    warnings = []
    consistency: dict[str, Any] = {}
    for table in ("tasks", "results"):
        reps = [r for r in ex.reports if r.name.startswith(table + "/")]
        c = {
            "units": len(reps),
            "pages": sum(r.pages for r in reps),
            "reported_total": sum(r.reported_total for r in reps
                                  if not r.name.endswith("/residual")),
            "replaced_across_pages": sum(r.replaced for r in reps),
            "late_duplicates_dropped": sum(r.late_duplicates for r in reps),
            "rescans": sum(r.rescans for r in reps),
            "missing_vs_reported_total": sum(r.short for r in reps),
            "units_stopped_growing": sum(r.truncated for r in reps),
        }
        consistency[table] = c
        if c["units_stopped_growing"]:
            warnings.append(
                f"{c['units_stopped_growing']} {table} scans grew faster than they could "
                "be read and were stopped at 4 times their starting rows: rows may be "
                "missing, older ones included; export again when the sessions are "
                "calmer, or with a larger --page-size")
        elif c["missing_vs_reported_total"]:
            warnings.append(
                f"{c['missing_vs_reported_total']} {table} arrived while the export ran "
                f"and are not in the bundle (after {c['rescans']} rescans)")
    consistency["retries"] = client.stats.retries
    consistency["resource_exhausted"] = client.stats.resource_exhausted
    sess_status = dict(zip(ids, sessions_table.column("status").to_pylist()))
    finished_at = utc_now_iso()
    manifest_fields = {
        "snapshot": snapshot,
        "exported_at": started_at,
        "export_finished_at": finished_at,
        "latest_timestamp": writer.latest.isoformat() if writer.latest else None,
        "armonik_versions": versions,
        "source": conn.describe(),
        "selection": {
            "sessions": list(sessions),
            "all": bool(all_sessions),
            "status": status,
            "created_after": created_after.isoformat() if created_after else None,
            "created_before": created_before.isoformat() if created_before else None,
        },
        "sessions": [{"session_id": s, "status": sess_status.get(s),
                      "tasks": writer.session_tasks.get(s, 0),
                      "non_final_tasks": non_final[s],
                      "server_task_counts_at_end": server_counts[s],
                      "results": writer.session_results.get(s, 0)} for s in chosen],
        "exporter": {"tool": "aksnap", "version": __version__,
                     "page_size": page_size or "auto",
                     "jobs": jobs},
        "consistency": consistency,
        "warnings": warnings,
    }
    return bundle.commit(manifest_fields)
