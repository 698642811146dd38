"""Running the plan: units on ``jobs`` threads, rows through one writer thread.

Each unit (:class:`aksnap.exporter.scan.UnitScan`) hands its pages to :class:`RowWriter`
through a bounded queue, so a slow disk slows the scan instead of filling memory. The writer
thread owns the :class:`~aksnap.bundle_writer.BundleWriter`, gathers rows into row groups,
and keeps the tallies the manifest needs (rows and non-final tasks per session, the latest
timestamp in any row).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from aksnap.bundle import (RESULT_TIMESTAMPS, SCHEMAS, TASK_FINAL_STATUSES, TASK_TIMESTAMPS,
                           BundleError)
from aksnap.bundle_writer import BundleWriter
from aksnap.exporter.client import ExportError, RawClient
from aksnap.exporter.plan import TABLES, plan_units
from aksnap.exporter.scan import UnitReport, UnitScan

ROW_GROUP_ROWS = {"tasks": 128 * 1024, "results": 256 * 1024, "sessions": 64 * 1024,
                  "partitions": 64 * 1024}
# A row group is also written once its rows hold this many bytes in Arrow (32 MiB: about
# 47,000 htcmock tasks; the bundle grows by 0.1 % and the export's peak falls by 40 MiB), or
# once this many pages wait (a unit crawling one heavy row per call would otherwise buffer
# 128 Ki one-row batches: kilobytes of objects each).
ROW_GROUP_BYTES = 32 * 2**20
ROW_GROUP_PAGES = 512
# The pages waiting for the writer hold at most this many bytes of Arrow rows (beyond one page):
# with an export's 8 MiB pages, 2 x jobs pages would be 100 MiB more at the peak.
QUEUE_BYTES = 24 * 2**20
# The columns whose maximum is the cluster's own "now" as far as the data shows it.
LATEST_COLUMNS = {"tasks": TASK_TIMESTAMPS, "results": RESULT_TIMESTAMPS}


class Progress(Protocol):
    """What ``export`` reports while it runs (the CLI draws bars from it)."""

    def start(self, table: str, total: int) -> None: ...
    def advance(self, table: str, rows: int) -> None: ...
    def close(self) -> None: ...


@dataclass
class ScanContext:
    """What every step of a scan shares (instead of a dozen parameters)."""

    client: RawClient
    page_size: int | None           # None: automatic (scan.AUTO_*)
    jobs: int
    max_rescans: int
    cancelled: threading.Event
    progress: Progress | None = None


@dataclass
class Tallies:
    """Counted by the writer thread as rows go by: per session, task rows, non-final task
    rows and result rows; the latest timestamp in any exported row."""

    session_tasks: dict[str, int] = field(default_factory=dict)
    session_open: dict[str, int] = field(default_factory=dict)
    session_results: dict[str, int] = field(default_factory=dict)
    latest: datetime | None = None

    def add(self, table: str, batch: pa.RecordBatch | pa.Table) -> None:
        """Count a row group's rows (a whole group per call: a dozen compute calls per page
        cost more than the counting)."""
        for c in LATEST_COLUMNS.get(table, ()):
            m = pc.max(batch.column(c)).as_py()
            if m is not None and (self.latest is None or m > self.latest):
                self.latest = m
        if table == "tasks":
            sess = batch.column("session_id")
            _add_counts(self.session_tasks, sess)
            open_ = pc.invert(pc.is_in(batch.column("status"),
                                       value_set=pa.array(TASK_FINAL_STATUSES)))
            if pc.any(open_).as_py():
                _add_counts(self.session_open, sess.filter(open_))
        elif table == "results":
            _add_counts(self.session_results, batch.column("session_id"))


def _add_counts(into: dict[str, int], values: pa.Array) -> None:
    for d in pc.value_counts(values).to_pylist():
        into[d["values"]] = into.get(d["values"], 0) + d["counts"]


def _writer_error(e: BaseException) -> ExportError:
    if isinstance(e, BundleError):
        return ExportError(str(e))
    return ExportError(f"writing the bundle failed: {e}")


class RowWriter:
    """The one thread that owns the BundleWriter; units hand it batches through a queue."""

    def __init__(self, bundle: BundleWriter, depth: int):
        self.bundle = bundle
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self._room = threading.Condition()
        self.queued_bytes = 0
        self._closed = False  # the writer thread has ended: nobody takes pages any more
        self.buffers: dict[str, list[pa.RecordBatch]] = {t: [] for t in SCHEMAS}
        self.buffered: dict[str, int] = {t: 0 for t in SCHEMAS}
        self.buffered_bytes: dict[str, int] = {t: 0 for t in SCHEMAS}
        self.error: BaseException | None = None
        self.tallies = Tallies()
        self.thread = threading.Thread(target=self._run, name="aksnap-writer", daemon=True)
        self.thread.start()

    def put(self, table: str, batch: pa.RecordBatch) -> None:
        size = batch.get_total_buffer_size()
        with self._room:
            # one page always fits (a page alone may be larger than the bound)
            while self.queued_bytes and self.queued_bytes + size > QUEUE_BYTES:
                if self.error is not None or self._closed:
                    raise _writer_error(self.error or ExportError("the writer stopped"))
                self._room.wait(0.5)
            self.queued_bytes += size
        while True:
            if self.error is not None:
                self._taken(size)
                raise _writer_error(self.error)
            try:
                self.q.put((table, batch), timeout=0.5)
                return
            except queue.Full:
                continue

    def _taken(self, size: int) -> None:
        with self._room:
            self.queued_bytes -= size
            self._room.notify_all()

    def _flush(self, table: str) -> None:
        if self.buffers[table]:
            rows = pa.Table.from_batches(self.buffers[table])
            self.tallies.add(table, rows)
            self.bundle.write(table, rows)
            self.buffers[table] = []
            self.buffered[table] = 0
            self.buffered_bytes[table] = 0

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                with self._room:
                    self._closed = True
                    self._room.notify_all()
                break
            if self.error is not None:
                self._taken(item[1].get_total_buffer_size())
                continue  # drain so producers never block on a dead writer
            table, batch = item
            self._taken(batch.get_total_buffer_size())
            try:
                self.buffers[table].append(batch)
                self.buffered[table] += batch.num_rows
                self.buffered_bytes[table] += batch.nbytes
                if (self.buffered[table] >= ROW_GROUP_ROWS[table]
                        or self.buffered_bytes[table] >= ROW_GROUP_BYTES
                        or len(self.buffers[table]) >= ROW_GROUP_PAGES):
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


def scan_sessions(ctx: ScanContext, bundle: BundleWriter,
                  sessions: list[str]) -> tuple[Tallies, list[UnitReport]]:
    """Plan and scan the tasks and results of ``sessions`` into ``bundle``; the writer's
    tallies and one report per unit. On any failure (Ctrl-C included) every thread is
    cancelled before the exception goes on."""
    writer = RowWriter(bundle, depth=max(4, 2 * ctx.jobs))
    try:
        with ThreadPoolExecutor(max_workers=ctx.jobs, thread_name_prefix="aksnap-scan") as pool:
            units = plan_units(pool, ctx.client, sessions, ctx.page_size)
            if ctx.progress is not None:
                for table in TABLES:
                    ctx.progress.start(table, sum(u.expected for u in units if u.table == table))
            on_rows = ctx.progress.advance if ctx.progress is not None else None
            futures = [pool.submit(UnitScan(ctx.client, u, writer.put, ctx.page_size,
                                            ctx.max_rescans, on_rows, ctx.cancelled).run)
                       for u in units]
            reports = _wait_all(futures, ctx.cancelled)
        writer.finish()
    except BaseException:
        ctx.cancelled.set()
        writer.stop()
        raise
    finally:
        if ctx.progress is not None:
            ctx.progress.close()
    return writer.tallies, reports


def _wait_all(futures: list, cancelled: threading.Event) -> list[UnitReport]:
    """The units' reports, or the first unit's exception once the others are cancelled."""
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
    return [f.result() for f in futures]
