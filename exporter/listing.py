"""What a control plane holds, asked the cheap way: its sessions (``aksnap sessions
--endpoint``), and an id given by its beginning, resolved against it (``export --session``,
``watch --session/--result``), as every command resolves one in a bundle.

The calls are bounded and said: :func:`list_sessions` makes one ``Sessions.ListSessions``
call for the sessions listed (the ``limit`` created last; every page of 1,000 with no limit)
and one ``Tasks.CountTasksByStatus`` per session listed, four at a time; a prefix is one
``ListSessions`` (or ``ListResults``) call of at most six rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aksnap.exporter.client import RawClient, RetryPolicy, SelectionError, TlsFiles, connection_of
from aksnap.exporter.decode import decode_page, status_counts_from_raw
from aksnap.exporter.requests import (count_tasks_request, list_request, newest_sessions_request,
                                     result_prefix_filters, session_prefix_filters)

#: sessions listed by default (the ones created last)
LIMIT = 50
#: sessions per ListSessions page when every session is listed
PAGE = 1000
#: candidates an ambiguous prefix names
SHOWN = 5


def list_sessions(endpoint=None, *, limit: int | None = LIMIT, tls: TlsFiles | None = None,
                  retry: RetryPolicy | None = None, budget=None) -> dict[str, Any]:
    """The sessions of the control plane at ``endpoint`` (``HOST:PORT``, the command's
    :class:`~aksnap.exporter.client.ConnectionOptions`, or None: ``AK_ENDPOINT``, ``AKCONFIG``,
    armonik-cli's file), the most recently created first: the ``limit`` created last (None:
    every one), each with its tasks counted by status. Returns the data ``aksnap sessions
    BUNDLE`` returns (:mod:`aksnap.analyzer.sessions`' rows, built with the same status
    sets), plus ``calls``: how many of each call it made. ``budget``: the load budget
    (:func:`~aksnap.exporter.budget.budget_of`; None: the default one), as export's."""
    from aksnap.exporter.budget import Throttle, budget_of

    from aksnap.columns import TASK_PARTITION, set_counts

    conn = connection_of(endpoint, tls)
    calls = {"Sessions.ListSessions": 0, "Tasks.CountTasksByStatus": 0}
    budget = budget if budget is not None else budget_of(None, None)
    jobs = budget.jobs
    with RawClient(conn, retry=retry, throttle=Throttle(budget, conn.endpoint)) as client:
        rows, total, page = [], None, 0
        while True:
            size = limit if limit else PAGE
            got = decode_page("sessions", client.call("sessions",
                                                      newest_sessions_request(page, size)))
            calls["Sessions.ListSessions"] += 1
            total = got.total
            rows += got.rows.select(["session_id", "status", "created_at"]).to_pylist()
            if limit or got.rows.num_rows < size or len(rows) >= total:
                break
            page += 1
        rows = rows[:limit] if limit else rows

        def counts(session_id: str) -> dict[str, int]:
            return status_counts_from_raw(client.call("count_tasks",
                                                      count_tasks_request(session_id)))

        with ThreadPoolExecutor(max_workers=max(1, jobs),
                                thread_name_prefix="aksnap-sessions") as pool:
            by_status = list(pool.map(counts, [r["session_id"] for r in rows]))
        calls["Tasks.CountTasksByStatus"] = len(rows)
    out = []
    for r, c in zip(rows, by_status):
        c = {k: int(v) for k, v in sorted(c.items()) if v}
        sets = set_counts("tasks", c)
        out.append({"session_id": r["session_id"], "status": r["status"],
                    "created_at": r["created_at"], "tasks": sum(c.values()),
                    **{k: sets[k] for k in TASK_PARTITION}, "tasks_by_status": c})
    return {"source": conn.endpoint, "total": int(total or 0), "sessions": out, "calls": calls}


def _by_prefix(client: RawClient, table: str, value: str, filters_of) -> tuple[list[str], int]:
    key = "session_id" if table == "sessions" else "result_id"
    for v in dict.fromkeys((value, value.lower())):  # ArmoniK's ids are lower-case GUIDs
        page = decode_page(table, client.call(table, list_request(table, filters_of(v), 0,
                                                                   SHOWN + 1)))
        if page.total:
            return page.rows.column(key).to_pylist(), int(page.total)
    return [], 0


def _resolve(client: RawClient, kind: str, value: str, ids: list[str], total: int) -> str:
    if value in ids:
        return value
    if total == 1:
        return ids[0]
    if total == 0:
        return value  # unknown: the caller says so, in its own words
    more = " ..." if total > len(ids[:SHOWN]) else ""
    hint = (f" (`aksnap sessions --endpoint {client.conn.endpoint}` lists them)"
            if kind == "session" else "")
    raise SelectionError(f"{kind} {value!r} is ambiguous at {client.conn.endpoint}: {total} "
                         f"{kind}s begin with it ({', '.join(ids[:SHOWN])}{more}); give more of "
                         f"the id{hint}")


def resolve_session_prefix(client: RawClient, value: str) -> str:
    """The session id ``value`` names at the server: itself, or the one id it begins (in any
    case); an ambiguous prefix is a :class:`SelectionError` naming candidates; an unknown
    value is returned as is. One ListSessions call of at most six rows (two for an upper-case
    value that matches nothing)."""
    return _resolve(client, "session", value,
                    *_by_prefix(client, "sessions", value, session_prefix_filters))


def resolve_result_prefix(client: RawClient, value: str) -> str:
    """The result id ``value`` names at the server, as :func:`resolve_session_prefix`."""
    return _resolve(client, "result", value,
                    *_by_prefix(client, "results", value, result_prefix_filters))


__all__ = ["list_sessions", "resolve_session_prefix", "resolve_result_prefix", "LIMIT"]
