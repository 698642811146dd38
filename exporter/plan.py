"""The plan: which units to scan, per table (tasks, results) and session.

A session of at most ``SHARD_PAGES`` pages is one unit. A bigger one is split into 16 shards
by the first hex digit of the id (``STARTS_WITH``), each with its own count (the progress
bars' totals), plus a residual unit when some ids start with no lowercase hex digit.

Many sessions (a cluster with one session per client job) are planned in groups: up to
``GROUP_SESSIONS`` sessions in one OR filter, counted once; a group of at most
``GROUP_PAGES`` pages is one unit, a bigger one is halved (and counted again) until it is
small enough or a single session, which is planned as above. 10,000 sessions of 100 tasks
take about 80 counts and 80 units per table instead of 10,000 of each.
"""

from __future__ import annotations

from concurrent.futures import Executor

from aksnap.bundle import ID_COLUMN
from aksnap.exporter.client import RawClient
from aksnap.exporter.decode import decode_page
from aksnap.exporter.requests import (ASC, DESC, HEX, hex_filters, list_request, row_filters,
                                     sessions_filters)
from aksnap.exporter.scan import AUTO_FIRST_PAGE, Unit
from aksnap.exporter.selection import count

# A session with more rows than this many pages is split into 16 id shards (+ residual).
SHARD_PAGES = 4
TABLES = ("tasks", "results")
# A selection of more sessions than this is planned in groups of up to GROUP_SESSIONS (one OR
# filter each; a few KiB per request), each group one unit while it holds GROUP_PAGES pages.
ALONE_SESSIONS = 16
GROUP_SESSIONS = 128
GROUP_PAGES = 8


def session_groups(sessions: list[str]) -> list[list[str]]:
    """The sessions as the plan takes them: one by one for a small selection, else in groups."""
    if len(sessions) <= ALONE_SESSIONS:
        return [[s] for s in sessions]
    return [sessions[i:i + GROUP_SESSIONS] for i in range(0, len(sessions), GROUP_SESSIONS)]


def plan_units(pool: Executor, client: RawClient, sessions: list[str],
               page_size: int | None) -> list[Unit]:
    """Every unit of the export, biggest first (the tail of the run is then made of small
    ones); the count queries run on ``pool``."""
    plans = [pool.submit(plan_group, client, table, group, page_size)
             for table in TABLES for group in session_groups(sessions)]
    units = [u for f in plans for u in f.result()]
    units.sort(key=lambda u: -u.expected)
    return units


def plan_group(client: RawClient, table: str, group: list[str],
               page_size: int | None) -> list[Unit]:
    """One table of a group of sessions: one unit while it is small, else its halves."""
    if len(group) == 1:
        return plan_session(client, table, group[0], page_size)
    filters = sessions_filters(table, group)
    total = count(client, table, filters)
    if total <= GROUP_PAGES * (page_size or AUTO_FIRST_PAGE):
        return [Unit(table, None, filters, None, total, group=tuple(group))]
    half = len(group) // 2
    return (plan_group(client, table, group[:half], page_size)
            + plan_group(client, table, group[half:], page_size))


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
