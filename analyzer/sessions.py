"""``aksnap sessions``: the sessions a bundle (or a control plane) holds, to find an id.

One row per session, the most recently created first: its id, status, creation time, and its
tasks counted by status set (:data:`aksnap.columns.TASK_PARTITION`: success, failed, retried,
cancelled, open: every task is in exactly one, so they add up to ``tasks``) with the counts
by status for programs. ``build`` reads a bundle (one SQL query); the control plane's form
(``aksnap sessions --endpoint E``) is :func:`aksnap.exporter.listing.list_sessions`, which
returns the same data, rendered here.
"""

from __future__ import annotations

from typing import Any

from aksnap.columns import TASK_PARTITION, set_counts

from .common import Section, render_data, render_sections
from .registry import LIMIT_SESSIONS as LIMIT  # sessions listed by default (the most recent)


def row(session_id: str, status: str | None, created_at: Any,
        by_status: dict[str, int]) -> dict[str, Any]:
    """One session's row (shared with the control plane's form): the counts by status set,
    then by status (statuses with no task left out)."""
    by_status = {k: int(v) for k, v in sorted(by_status.items()) if v}
    sets = set_counts("tasks", by_status)
    return {"session_id": session_id, "status": status, "created_at": created_at,
            "tasks": sum(by_status.values()), **{k: sets[k] for k in TASK_PARTITION},
            "tasks_by_status": by_status}


def build(snap, limit: int | None = LIMIT) -> dict[str, Any]:
    """The bundle's sessions, newest first (``limit``: how many; None: all). A session known
    only from its tasks (not in the sessions table) has no status nor creation time."""
    rows = snap.sql(
        "WITH ids AS (SELECT session_id FROM sessions UNION SELECT session_id FROM tasks), "
        "counts AS (SELECT session_id, map_from_entries(list(struct_pack(k := status, v := n))) "
        "AS by_status FROM (SELECT session_id, status, count(*) AS n FROM tasks GROUP BY ALL) "
        "GROUP BY session_id) "
        "SELECT i.session_id, s.status, s.created_at, c.by_status, count(*) OVER () AS total "
        "FROM ids i LEFT JOIN sessions s USING (session_id) LEFT JOIN counts c USING (session_id) "
        "ORDER BY s.created_at DESC NULLS LAST, i.session_id "
        + ("LIMIT $n" if limit else ""), {"n": limit} if limit else None).to_pylist()
    total = rows[0]["total"] if rows else 0
    return {"source": str(snap.path), "total": int(total),
            "sessions": [row(r["session_id"], r["status"], r["created_at"],
                             dict(r["by_status"] or {})) for r in rows]}


COLUMNS = ["session_id", "status", "created_at", "tasks", *TASK_PARTITION]


def sections(data: dict[str, Any]) -> list[Section]:
    return [Section("sessions", data["sessions"], COLUMNS + ["tasks_by_status"],
                    table_columns=COLUMNS)]


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)


def _table(data: dict[str, Any]) -> str:
    shown, total = len(data["sessions"]), data["total"]
    head = [("source", data["source"]),
            ("sessions", f"{total}" + (f" (the {shown} created last; --limit 0 for every one)"
                                       if shown < total else ""))]
    if data.get("calls"):
        head.append(("calls", ", ".join(f"{n} {m}" for m, n in data["calls"].items())))
    return render_sections([("Sessions (the most recent first; tasks by status set)",
                             data["sessions"], COLUMNS)], head)
