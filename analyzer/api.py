"""The analyzer's Python API: everything a command does, a notebook (or ``aksnap demo``) can do.

Each analysis is one module turning a :class:`Snapshot` into plain data (``build``) and
rendering it separately (``render``: table, csv or json)::

    from aksnap.analyzer import api
    snap = api.open_snapshot("run.aksnap")
    print(api.render_overview(api.overview(snap)))
    print(api.render_lineage(api.lineage(snap, result_id)))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import blockers as _blockers
from . import check as _check
from . import critical_path as _critical_path
from . import lineage as _lineage
from . import overview as _overview
from . import task_view as _task
from .snapshot import AnalysisError, Snapshot

__all__ = [
    "Snapshot", "AnalysisError", "Report", "open_snapshot",
    "overview", "render_overview", "lineage", "render_lineage", "lineage_dot", "lineage_summary",
    "root_causes", "render_root_causes", "blockers", "render_blockers", "critical_path",
    "render_critical_path", "task", "render_task", "check", "render_check",
]


class Report(dict):
    """Plain data (a dict, JSON-ready) that also knows how to render itself:
    ``report.render("table"|"json"|"csv")``."""

    def __init__(self, data: dict[str, Any], renderer):
        super().__init__(data)
        self._renderer = renderer

    def render(self, fmt: str = "table") -> str:
        return self._renderer(dict(self), fmt)


def open_snapshot(path, verify: bool = True) -> Snapshot:
    return Snapshot.open(path, verify=verify)


def _snap(snap_or_path) -> Snapshot:
    """Every function takes an open Snapshot, or a bundle path (opened and verified)."""
    return snap_or_path if isinstance(snap_or_path, Snapshot) else Snapshot.open(snap_or_path)


def overview(snap: Snapshot, session_id: str | None = None) -> dict[str, Any]:
    return Report(_overview.build(_snap(snap), session_id), _overview.render)


def render_overview(data: dict[str, Any], fmt: str = "table") -> str:
    return _overview.render(data, fmt)


def lineage(snap: Snapshot, result_id: str,
            frontier_limit: int | None = _lineage.FRONTIER_SHOWN) -> dict[str, Any]:
    """Lineage of a result; ``frontier_limit`` frontier nodes described (None: all), all counted."""
    return Report(_lineage.build(_snap(snap), result_id, frontier_limit), _lineage.render)


def render_lineage(data: dict[str, Any], fmt: str = "table") -> str:
    return _lineage.render(data, fmt)


def lineage_summary(data: dict[str, Any]) -> str:
    """One sentence: the result's status, how complete its inputs are, what holds it."""
    return _lineage.summary_line(data)


def lineage_dot(snap: Snapshot, result_id: str) -> str:
    return _lineage.to_dot(_snap(snap), result_id)


def root_causes(snap: Snapshot, result_id: str | None = None,
                session_id: str | None = None) -> list[dict[str, Any]]:
    """Where failures started: failed/timed-out/cancelled tasks and aborted/deleted results with
    no failed input, upstream of ``result_id`` (or in a session, or in the whole bundle), each
    with how many failed nodes downstream it explains; the largest first."""
    snap = _snap(snap)
    g = snap.graph
    if result_id is not None:
        return _lineage.build(snap, result_id)["root_causes"]
    snap.require_session(session_id)
    mask = g.session_nodes(session_id)
    origins = g.origins(mask=mask)
    return _lineage.root_cause_rows(snap, origins, np.flatnonzero(mask))


def render_root_causes(rows: list[dict[str, Any]], fmt: str = "table") -> str:
    from .common import render_table

    rows = [{**r, "path": " -> ".join(r.get("path", []))} for r in rows]
    return render_table(rows, fmt, columns=["kind", "id", "status", "explains", "attempt", "message"]
                       + (["path"] if any(r["path"] for r in rows) else []))


def blockers(snap: Snapshot, session_id: str | None = None, limit: int | None = 20) -> dict[str, Any]:
    return Report(_blockers.build(_snap(snap), session_id, limit), _blockers.render)


def render_blockers(data: dict[str, Any], fmt: str = "table") -> str:
    return _blockers.render(data, fmt)


def critical_path(snap: Snapshot, session_id: str | None = None, all_steps: bool = False) -> dict[str, Any]:
    """The critical path of each session (over more than 20 sessions: a summary); a long chain
    lists its first, last and longest steps unless ``all_steps``."""
    return Report(_critical_path.build(_snap(snap), session_id, all_steps), _critical_path.render)


def render_critical_path(data: dict[str, Any], fmt: str = "table") -> str:
    return _critical_path.render(data, fmt)


def task(snap: Snapshot, task_id: str, limit: int | None = _task.LIMIT) -> dict[str, Any]:
    """One task in full; ``limit`` inputs and outputs listed (None: all), all of them counted."""
    return Report(_task.build(_snap(snap), task_id, limit), _task.render)


def render_task(data: dict[str, Any], fmt: str = "table") -> str:
    return _task.render(data, fmt)


def check(snap: Snapshot, session_id: str | None = None) -> dict[str, Any]:
    return Report(_check.build(_snap(snap), session_id), _check.render)


def render_check(data: dict[str, Any], fmt: str = "table") -> str:
    return _check.render(data, fmt)
