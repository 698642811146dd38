"""Offset paging that holds while the session changes under it.

ArmoniK pages are skip/limit over a query sorted by id, with ``total`` counted separately: not
a snapshot. A row inserted before the current offset shifts every later row by one, so the
next page repeats rows (and a deletion would skip rows). One :class:`UnitScan` reads one
*unit* (one table, one session, one id shard) page by page and:

- holds the last page back until the next one arrives; rows of the held page that the next
  page repeats are replaced by the newer copy (the latest, most advanced status wins);
- drops a row it already wrote if a larger shift brings it back (counted as a late duplicate);
- keeps rows inserted behind the cursor that happen to show up;
- after the last page, compares the rows it has with the ``total`` the server reported on its
  last page; when it has fewer, it rescans the unit, adding only ids it has not written (at
  most ``max_rescans`` times) -- if rows that existed when the unit began are missing, or
  if the unit is small. A big unit short only by rows created while it was read is a live
  session: a full second pass would race the next arrivals too, so the shortfall is reported
  in the manifest instead;
- stops a pass after ``GROWTH_LIMIT`` times the rows the unit had when the pass began, so a
  session that grows faster than it can be read cannot keep the export running forever;
- halves the page size when a response does not fit the receive limit (RESOURCE_EXHAUSTED),
  and proactively when a page comes close to it; it doubles back (up to where it began) when
  pages are light again and the offset is a multiple of the doubled size, so
  ``page = offset // page_size`` stays exact.

Size refusals name whose limit it was. The client's own receive limit: a single row that does
not fit it reopens the channel with a larger one (up to ``--max-message-size``, 256 MiB by
default). The control plane's send
limit (it says so in its status, with the size it refused and its limit): pages are sized to
it from then on in every unit, and the unit stops at once, with a sentence naming the server's
limit, when a single row is refused, or when the limit holds fewer than
``MIN_SERVER_PAGE_ROWS`` typical rows, or when a refused page is bigger than the limit times
its rows (one row alone is over it). A scan one row per call takes minutes to hours and fails
anyway at the first heavier row: a 1,000 byte limit took 66 s to fail on 60,000 tasks.

Memory per unit: two pages plus one 64-bit hash per row it has written (8 bytes a row: a
62,500-row shard holds 0.5 MB), whatever the session size; rows stream to the writer. The
hashes are only probed for rows at or below the largest id written (a shift past the held
page), which a calm session never sends.

Page sizes stay divisors of the offset (``page = offset // page_size`` must be exact, or a
resize would repeat or skip rows): automatic sizes are powers of two, and a resize of a
user's ``--page-size`` is taken down to a divisor of the offset.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aksnap.bundle import ID_COLUMN
from aksnap.exporter.client import ExportError, PageTooLarge, RawClient
from aksnap.exporter.decode import Page, decode_page
from aksnap.exporter.requests import HEX, list_request

# Keep a page below this share of the receive limit: a page's size varies with its rows'
# id lists, and the next page may carry heavier rows than the last one.
PAGE_BYTES_TARGET = 0.5
# A pass stops after reading this many times the rows its first page reported.
GROWTH_LIMIT = 4
# Automatic page size: the first units' pages, and the most rows a page may have (powers of
# two, so that halving and doubling back always land on a divisor of the offset): 16384 rows
# for the 2 MiB pages of a 4 MiB receive limit, as many more as the byte target of a larger
# one allows (65536 for the 8 MiB pages of an export's 16 MiB limit, client.PAGE_MAX_RECEIVE).
AUTO_FIRST_PAGE = 4096
AUTO_MAX_PAGE = 16384
AUTO_MAX_PAGE_BYTES = 2 * 1024 * 1024
# A unit this small (in pages) is rescanned whenever it comes out short.
SMALL_UNIT_PAGES = 8
# A server send limit that holds fewer rows than this per page cannot serve an export.
MIN_SERVER_PAGE_ROWS = 32


@dataclass
class Unit:
    """One scan: a table, a session, an id shard (``None``: the whole session)."""

    table: str
    session_id: str | None
    filters: object
    shard: str | None = None        # a hex digit, "residual", or None
    expected: int = 0               # rows the count query reported when planning
    residual: bool = False          # keep only ids that do not start with a hex digit
    group: tuple[str, ...] = ()     # the sessions of a group unit (many small sessions)

    @property
    def name(self) -> str:
        if self.group:
            return f"{self.table}/{self.group[0]}+{len(self.group) - 1}/{self.shard or '*'}"
        return f"{self.table}/{self.session_id}/{self.shard or '*'}"


@dataclass
class UnitReport:
    name: str
    rows: int = 0
    pages: int = 0
    reported_total: int = 0
    late_duplicates: int = 0        # rows that came back after being written (older copy kept)
    replaced: int = 0               # rows seen twice across a page boundary (newer copy kept)
    rescans: int = 0
    short: int = 0                  # reported total minus rows, after the last rescan (>0: missed)
    truncated: bool = False         # stopped at GROWTH_LIMIT: the unit grew faster than it was read


Sink = Callable[[str, pa.RecordBatch], None]

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_POW: np.ndarray = np.ones(1, np.uint64)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit reaches every output bit."""
    h = h ^ (h >> np.uint64(30))
    h = h * _M1
    h = h ^ (h >> np.uint64(27))
    h = h * _M2
    return h ^ (h >> np.uint64(31))


def id_hashes(ids: pa.Array) -> np.ndarray:
    """One 64-bit hash per id, read from the string array's buffers (no Python string per
    row). ArmoniK ids are 36-character GUIDs: their bytes fold into 64 bits exactly; other
    ids get a polynomial hash of their bytes. Two ids share a hash with odds of about n / 2**64
    per probe, which the dedup accepts (a false match would drop one row)."""
    n = len(ids)
    if n == 0:
        return np.empty(0, np.uint64)
    if ids.type != pa.string() and ids.type != pa.large_string():
        ids = ids.cast(pa.string())
    _, offs_buf, data_buf = ids.buffers()
    wide = ids.type == pa.large_string()
    offs = np.frombuffer(offs_buf, np.int64 if wide else np.int32,
                         count=ids.offset + n + 1)[ids.offset:].astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    start, end = int(offs[0]), int(offs[-1])
    lengths = np.diff(offs)
    if end - start == 36 * n and (lengths == 36).all():
        return _hash36(data[start:end].reshape(n, 36))
    out = np.empty(n, np.uint64)
    is36 = lengths == 36
    if is36.any():  # the same id hashes the same whatever page it comes in
        out[is36] = _hash36(data[offs[:-1][is36, None] + np.arange(36)])
    rest = ~is36
    if rest.any():
        out[rest] = _hash_bytes(data, offs[:-1][rest], lengths[rest])
    return out


def _hash36(rows: np.ndarray) -> np.ndarray:
    """(n, 36) bytes -> n hashes: a GUID's 36 characters folded into 64 bits."""
    words = np.ascontiguousarray(rows[:, :32]).view(np.uint64)   # (n, 4)
    tail = np.ascontiguousarray(rows[:, 32:]).view(np.uint32)[:, 0].astype(np.uint64)
    h = _mix(words[:, 0]) ^ words[:, 1]
    h = _mix(h) ^ words[:, 2]
    h = _mix(h) ^ words[:, 3]
    return _mix(_mix(h) ^ tail)


def _hash_bytes(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A polynomial hash of each id's bytes (ids of any length), vectorised."""
    global _POW
    longest = int(lengths.max()) if len(lengths) else 0
    if len(_POW) < longest:
        _POW = np.cumprod(np.full(max(longest, 64), 1099511628211, np.uint64), dtype=np.uint64)
    total = int(lengths.sum())
    ends = np.cumsum(lengths)
    firsts = ends - lengths
    pos = np.arange(total, dtype=np.int64) - np.repeat(firsts, lengths)
    idx = np.repeat(starts, lengths) + pos
    terms = (data[idx].astype(np.uint64) + np.uint64(1)) * _POW[pos]
    sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(terms, dtype=np.uint64)])
    return _mix((sums[ends] - sums[firsts]) ^ lengths.astype(np.uint64))


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def aligned(offset: int, size: int) -> int:
    """The largest page size at most ``size`` that divides ``offset``, so that
    ``page = offset // size`` starts exactly at ``offset`` (a power of two divides any offset
    a larger one divided)."""
    size = max(1, size)
    return math.gcd(offset, size) if offset else size


class UnitScan:
    def __init__(self, client: RawClient, unit: Unit, sink: Sink, page_size: int | None,
                 max_rescans: int = 2, on_rows: Callable[[str, int], None] | None = None,
                 cancelled: threading.Event | None = None):
        self.client = client
        self.unit = unit
        self.sink = sink
        self._auto = page_size is None
        self._user_page_size = page_size
        self._size_pages()
        self.max_rescans = max_rescans
        self.on_rows = on_rows or (lambda table, n: None)
        self.cancelled = cancelled or threading.Event()
        self.id_col = ID_COLUMN[unit.table]
        self.report = UnitReport(unit.name)
        self._written: list[np.ndarray] = []      # 64-bit hashes of the ids written, per page
        self._written_sorted: np.ndarray | None = None  # their sorted union, built on demand
        self._max_written: str | None = None
        self._last_id: str | None = None   # the last id read: names a row that cannot be read
        self._first_total = 0
        self._pages_per_pass = 0

    # -- paging

    def _size_pages(self) -> None:
        """The page size this unit starts with: called when it is built, and again when it
        starts to run, by which time the units that ran before it have measured the table's
        typical row (the plan builds every unit at once, before any page is read; sized then,
        every unit of a big session would start at AUTO_FIRST_PAGE)."""
        page_size = self._user_page_size
        if page_size is None:
            # Automatic: as many rows as fit the byte target for a typical row of this table
            # (the mean of the pages read so far; fewer calls for small rows such as results),
            # a safe default before that. Not the heaviest row: one aggregation task with
            # 181,346 inputs (7 MB) would leave every later unit at one row per call.
            est = self._typical_row()
            page_size = AUTO_FIRST_PAGE if not est else int(self._byte_target() // est)
            page_size = _pow2_floor(max(1, min(self._max_rows(), page_size)))
        self.page_size = max(1, page_size)
        self._start_page_size = self.page_size
        # A user's page size starts below the byte target too, when this table's rows are
        # known to be heavy (each unit would otherwise pay a refused page to find out).
        est = self._typical_row()
        while est and self.page_size > 1 and self.page_size * est > self._byte_target():
            self.page_size //= 2

    def _typical_row(self) -> float | None:
        """The mean size of this table's rows in the pages read so far (None before any)."""
        stats = self.client.stats
        rows = stats.table_rows.get(self.unit.table, 0)
        return stats.table_bytes.get(self.unit.table, 0) / rows if rows else None

    def _ceiling(self) -> int:
        """The largest page size to grow back to: the user's, or (automatic) what the byte
        target holds of typical rows."""
        if not self._auto:
            return self._start_page_size
        est = self._typical_row()
        fits = int(self._byte_target() // est) if est else AUTO_FIRST_PAGE
        return _pow2_floor(max(1, min(self._max_rows(), fits)))

    def _max_rows(self) -> int:
        """The most rows an automatic page may have: AUTO_MAX_PAGE for a byte target of
        AUTO_MAX_PAGE_BYTES, proportionally more for a larger one (a power of two)."""
        scale = max(1.0, self._byte_target() / AUTO_MAX_PAGE_BYTES)
        return _pow2_floor(int(AUTO_MAX_PAGE * scale))

    def _byte_target(self) -> float:
        """Bytes a page should stay under: a share of the smaller of the two limits known
        (aksnap's receive limit as configured, not as raised for a single heavy row)."""
        limit = min(self.client.max_receive, getattr(self.client, "page_receive",
                                                     self.client.max_receive))
        if self.client.server_limit:
            limit = min(limit, self.client.server_limit)
        return limit * PAGE_BYTES_TARGET

    def _which_row(self, offset: int, size: int | None) -> str:
        """'a single tasks row of session S, N bytes, the one after ID (row K of the scan)'."""
        words = [f"a single {self.unit.table} row"
                 + (f" of session {self.unit.session_id}" if self.unit.session_id else "")]
        if size:
            words.append(f"{size} bytes")
        if self._last_id is not None:
            words.append(f"the one after {self._last_id} (row {offset + 1} of the scan)")
        elif offset:
            words.append(f"row {offset + 1} of the scan")
        return ", ".join(words)

    def _too_large(self, e: PageTooLarge, offset: int, requested: int) -> None:
        """Decide after a size refusal: return to retry (smaller page, larger receive limit),
        raise ExportError when no page size can meet the limit."""
        ep = self.client.conn.endpoint
        if e.side == "client":
            if requested > 1:
                return
            if self.client.raise_receive_limit((e.size or self.client.max_receive) + 1):
                return
            raise ExportError(
                f"{self._which_row(offset, e.size)}, read from {ep}, is over aksnap's receive "
                f"limit even raised to its ceiling of {self.client.max_receive} bytes; raise "
                "the ceiling with --max-message-size BYTES (Python: max_receive_ceiling) and "
                "export again") from None
        limit = f"{e.limit} byte send limit" if e.limit else "send limit"
        fix = ("raise the control plane's maximum send message size (the server's limit, not "
               "aksnap's receive limit) and export again")
        if requested == 1:
            raise ExportError(
                f"the control plane at {ep} refuses to send {self._which_row(offset, e.size)}: "
                f"it is over the server's {limit}; {fix}") from None
        if not (e.size and e.limit):
            return  # a server that does not say its limit: halve down to one row
        if e.size > e.limit * requested:
            # The page held at most `requested` rows: one of them is over the limit on its own.
            raise ExportError(
                f"the control plane at {ep} refused a page of {e.size} bytes for at most "
                f"{requested} {self.unit.table} rows{f' after {self._last_id}' if self._last_id else ''}"
                f"{f' in session {self.unit.session_id}' if self.unit.session_id else ''}: "
                f"at least one of them is over the server's {limit} on its own; {fix}") from None
        stats = self.client.stats
        rows, nbytes = stats.table_rows.get(self.unit.table, 0), stats.table_bytes.get(self.unit.table, 0)
        if rows:
            per_row = nbytes / rows                     # a typical row, from the pages read
        elif self.unit.expected > offset:               # else the refused page, when the
            per_row = e.size / min(requested, self.unit.expected - offset)  # count is known
        else:
            return  # sessions and partitions: no count, and their ladder is short
        fits = int(e.limit // per_row)
        if fits < MIN_SERVER_PAGE_ROWS:
            raise ExportError(
                f"the control plane at {ep} refused a page of {requested} {self.unit.table} "
                f"rows ({e.size} bytes) over its {limit}: {self.unit.table} rows take about "
                f"{per_row:.0f} bytes, so a page could hold only {fits} of them (aksnap needs "
                f"{MIN_SERVER_PAGE_ROWS}): one call per few rows, for hours on a big session; "
                f"{fix}") from None

    def _fetch(self, offset: int) -> tuple[Page, int]:
        while True:
            size = self.page_size
            req = list_request(self.unit.table, self.unit.filters, offset // self.page_size,
                               self.page_size)
            try:
                page = decode_page(self.unit.table, self.client.call(self.unit.table, req))
            except PageTooLarge as e:
                self._too_large(e, offset, size)
                if e.side == "server" or size > 1:
                    new = max(1, self.page_size // 2)
                    # Start from what the server's limit can hold, not one halving at a time.
                    est = self._typical_row()
                    while est and new > 1 and new * est > self._byte_target():
                        new //= 2
                    self.page_size = aligned(offset, new)
                continue
            self.report.pages += 1
            self.client.cost.add_rows(self.unit.table, page.rows.num_rows)
            stats = self.client.stats  # unlocked: a lost update only blurs an average
            stats.table_rows[self.unit.table] = stats.table_rows.get(self.unit.table, 0) + page.rows.num_rows
            stats.table_bytes[self.unit.table] = stats.table_bytes.get(self.unit.table, 0) + page.nbytes
            target = self._byte_target()
            if page.nbytes > target and self.page_size > 1:
                # next pages: smaller, still a divisor of the next offset
                self.page_size = aligned(offset + page.rows.num_rows, self.page_size // 2)
            elif (size == self.page_size < self._ceiling() and page.rows.num_rows == size
                  and page.nbytes * 2 <= target and (offset + size) % (2 * size) == 0):
                # Light pages (again, after a heavy row): double (only at an offset that the
                # doubled size divides) so one heavy row does not leave the rest of the unit
                # crawling one row per call, and a unit that began before any row size was
                # known grows to the pages its rows allow.
                self.page_size *= 2
            return page, size

    # -- dedup bookkeeping

    def _written_set(self) -> np.ndarray:
        """The sorted hashes of every id written (rebuilt only after new pages were written)."""
        if len(self._written) != 1 or self._written_sorted is None:
            merged = np.concatenate(self._written) if self._written else np.empty(0, np.uint64)
            merged.sort()
            self._written = [merged]
            self._written_sorted = merged
        return self._written_sorted

    def _bounds(self, rows: pa.RecordBatch) -> tuple[str | None, str | None]:
        """The smallest and largest id of ``rows`` (None, None when empty): one pass over the
        ids per page, shared by the dedup, the supersede check and the emit (three scans of
        36-byte strings per page before)."""
        if rows.num_rows == 0:
            return None, None
        mm = pc.min_max(rows.column(self.id_col))
        return mm["min"].as_py(), mm["max"].as_py()

    def _emit(self, rows: pa.RecordBatch, top: str | None = None) -> None:
        """Write ``rows``; ``top`` is their largest id (computed here when not given)."""
        if rows.num_rows == 0:
            return
        ids = rows.column(self.id_col)
        self._written.append(id_hashes(ids))
        if len(self._written) >= 256:  # one array, not one per page (pages may be one row)
            self._written = [np.concatenate(self._written)]
        self._written_sorted = None
        if top is None:
            top = self._bounds(rows)[1]
        if top is not None and (self._max_written is None or top > self._max_written):
            self._max_written = top
        self.report.rows += rows.num_rows
        self.sink(self.unit.table, rows)
        self.on_rows(self.unit.table, rows.num_rows)

    def _drop_written(self, rows: pa.RecordBatch, count_as_late: bool,
                      lo: str | None = None) -> pa.RecordBatch:
        """Remove rows whose id was already written (cheap unless a shift went past the held
        page); ``lo`` is their smallest id (computed here when not given)."""
        if self._max_written is None or rows.num_rows == 0:
            return rows
        ids = rows.column(self.id_col)
        if lo is None:
            lo = self._bounds(rows)[0]
        if lo is None or lo > self._max_written:
            return rows  # the usual page: every id after the last one written
        behind = pc.less_equal(ids, self._max_written).to_numpy(zero_copy_only=False)
        behind &= ~ids.is_null().to_numpy(zero_copy_only=False)
        if not behind.any():
            return rows
        written = self._written_set()
        h = id_hashes(ids)
        at = np.minimum(np.searchsorted(written, h), max(len(written) - 1, 0))
        dup = behind & (written[at] == h) if len(written) else np.zeros(len(h), bool)
        n = int(dup.sum())
        if n:
            if count_as_late:
                self.report.late_duplicates += n
            rows = rows.filter(pa.array(~dup))
        return rows

    def _prepare(self, rows: pa.RecordBatch) -> pa.RecordBatch:
        if self.unit.residual and rows.num_rows:
            first = pc.utf8_slice_codeunits(rows.column(self.id_col), 0, 1)
            rows = rows.filter(pc.invert(pc.is_in(first, value_set=pa.array(list(HEX)))))
        # Within a page ids must be unique; a server bug must not become a duplicate row.
        return rows

    def _supersede(self, held: pa.RecordBatch, rows: pa.RecordBatch, hi: str | None = None,
                   lo: str | None = None) -> pa.RecordBatch:
        """``held`` without the rows that ``rows`` (the next page) repeats: the newer copy wins.
        ``hi`` is the largest id held, ``lo`` the smallest of ``rows`` (computed when not
        given)."""
        if held.num_rows == 0 or rows.num_rows == 0:
            return held
        old, new = held.column(self.id_col), rows.column(self.id_col)
        if lo is None:
            lo = self._bounds(rows)[0]
        if hi is None:
            hi = self._bounds(held)[1]
        if lo is not None and hi is not None and lo > hi:
            return held  # pages in id order, no shift: nothing repeated
        superseded = pc.is_in(old, value_set=new)
        n = pc.sum(superseded).as_py() or 0
        if n:
            self.report.replaced += n
            held = held.filter(pc.invert(superseded))
        return held

    # -- the scan

    def _pass(self, rescan: bool) -> int:
        offset = 0
        self._last_id = None
        held: pa.RecordBatch | None = None
        held_hi: str | None = None  # the largest id held
        total = 0
        limit: int | None = None
        while True:
            if self.cancelled.is_set():
                raise ExportError("the export was cancelled")
            page, requested = self._fetch(offset)
            if page.rows.num_rows:
                self._last_id = page.rows.column(self.id_col)[-1].as_py()
            total = page.total
            if limit is None:
                if not rescan:
                    self._first_total = total
                # A session that grows faster than it is read would keep a pass going forever:
                # stop after GROWTH_LIMIT times the rows it had; the rest is reported as missing.
                limit = GROWTH_LIMIT * max(total, requested) + requested
            got = page.rows.num_rows
            rows = self._prepare(page.rows)
            lo, hi = self._bounds(rows)
            kept = self._drop_written(rows, count_as_late=not rescan, lo=lo)
            if kept is not rows:
                rows, (lo, hi) = kept, self._bounds(kept)
            if held is not None:
                kept = self._supersede(held, rows, held_hi, lo)
                self._emit(kept, held_hi if kept is held else None)
            held, held_hi = rows, hi
            offset += got
            if got < requested or got == 0:
                break
            if offset >= limit:
                self.report.truncated = True
                break
        if held is not None:
            self._emit(held, held_hi)
        return total

    def _worth_rescanning(self, first_total: int, total: int) -> bool:
        """Rescan when rows that existed when the scan began are missing, or when a small unit
        is short. A big unit that is short only by rows created during the scan is a live
        session: rereading it would cost a full pass and race the next arrivals anyway."""
        if self.unit.residual or self.report.rescans >= self.max_rescans:
            return False  # a residual unit reads the whole session: its total says nothing
        if self.report.rows >= total or self.report.truncated:
            return False  # complete, or growing faster than it can be read: rereading won't help
        return self.report.rows < first_total or self._pages_per_pass <= SMALL_UNIT_PAGES

    def run(self) -> UnitReport:
        self._size_pages()  # what the units before this one learnt of the table's rows
        total = self._pass(rescan=False)
        first_total = self._first_total
        self._pages_per_pass = self.report.pages
        while self._worth_rescanning(first_total, total):
            self.report.rescans += 1
            total = self._pass(rescan=True)
        self.report.reported_total = total
        self.report.short = max(0, total - self.report.rows) if not self.unit.residual else 0
        self._written = []
        self._written_sorted = None
        return self.report
