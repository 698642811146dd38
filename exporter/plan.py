"""The plan: which units to scan, per table (tasks, results) and session.

A session of at most ``SHARD_PAGES`` pages is one unit. A bigger one is split into 16 shards
by the first hex digit of the id (``STARTS_WITH``), each with its own count (the progress
bars' totals), plus a residual unit when some ids start with no lowercase hex digit.
"""

from __future__ import annotations

from concurrent.futures import Executor

from aksnap.exporter.client import RawClient
from aksnap.exporter.decode import ID_COLUMN, decode_page
from aksnap.exporter.requests import ASC, DESC, HEX, hex_filters, list_request, row_filters
from aksnap.exporter.scan import AUTO_FIRST_PAGE, Unit
from aksnap.exporter.selection import count

# A session with more rows than this many pages is split into 16 id shards (+ residual).
SHARD_PAGES = 4
TABLES = ("tasks", "results")


def plan_units(pool: Executor, client: RawClient, sessions: list[str],
               page_size: int | None) -> list[Unit]:
    """Every unit of the export, biggest first (the tail of the run is then made of small
    ones); the count queries run on ``pool``."""
    plans = [pool.submit(plan_session, client, table, s, page_size)
             for table in TABLES for s in sessions]
    units = [u for f in plans for u in f.result()]
    units.sort(key=lambda u: -u.expected)
    return units


def plan_session(client: RawClient, table: str, session_id: str,
                 page_size: int | None) -> list[Unit]:
    """One table of one session: a single unit, or 16 shards (and a residual unit)."""
    total = count(client, table, row_filters(table, session_id))
    if total <= SHARD_PAGES * (page_size or AUTO_FIRST_PAGE):
        return [Unit(table, session_id, row_filters(table, session_id), None, total)]
    units = [Unit(table, session_id, row_filters(table, session_id, h), h,
                  count(client, table, row_filters(table, session_id, h))) for h in HEX]
    if has_residual(client, table, session_id):
        units.append(Unit(table, session_id, row_filters(table, session_id), "residual",
                          0, residual=True))
    return units


def has_residual(client: RawClient, table: str, session_id: str) -> bool:
    """Whether the session has ids that start with no lowercase hex digit (in no shard).

    ArmoniK has no NOT STARTS_WITH, so this compares counts: the session's, the 16-shard
    union's (one OR filter), the session's again. When the session did not change in
    between, the gap is exact. A session that keeps growing (a live one) makes the gap
    meaningless; then the smallest and largest ids (sorted by id) are checked instead,
    which finds ids sorting before "0" or after "f" but not, say, upper-case ones.
    """
    for _ in range(3):
        before = count(client, table, row_filters(table, session_id))
        covered = count(client, table, hex_filters(table, session_id))
        after = count(client, table, row_filters(table, session_id))
        if before == after:
            return after > covered
    edges = (_edge_id(client, table, session_id, False), _edge_id(client, table, session_id, True))
    return any(e and e[0] not in HEX for e in edges)


def _edge_id(client: RawClient, table: str, session_id: str, descending: bool) -> str | None:
    """The session's smallest (or largest) id in this table."""
    req = list_request(table, row_filters(table, session_id), 0, 1)
    req.sort.direction = DESC if descending else ASC
    rows = decode_page(table, client.call(table, req)).rows
    return rows.column(ID_COLUMN[table])[0].as_py() if rows.num_rows else None
