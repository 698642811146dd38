"""The analyzer's Python API: everything a command does, a notebook (or ``aksnap demo``) can do.

Each analysis is one module turning a :class:`Snapshot` into plain data (``build``) and
rendering it separately (``render``: table, json, yaml or csv), registered once in
:mod:`aksnap.analyzer.registry`; the functions below are thin wrappers of :func:`run`::

    from aksnap.analyzer import api
    snap = api.open_snapshot("run.aksnap")
    print(api.render_overview(api.overview(snap)))
    print(api.render_lineage(api.lineage(snap, result_id)))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import lineage as _lineage
from . import task_view as _task
from .registry import ANALYSES
from .snapshot import AnalysisError, Snapshot

__all__ = [
    "Snapshot", "AnalysisError", "Report", "open_snapshot", "run",
    "overview", "render_overview", "lineage", "render_lineage", "lineage_dot", "lineage_summary",
    "root_causes", "render_root_causes", "blockers", "render_blockers", "critical_path",
    "render_critical_path", "task", "render_task", "check", "render_check", "diff", "render_diff",
    "graph_file", "trace_file", "report_file",
]


class Report(dict):
    """Plain data (a dict, JSON-ready) that also knows how to render itself:
    ``report.render("table"|"json"|"yaml"|"csv", section=None)``."""

    def __init__(self, data: dict[str, Any], renderer):
        super().__init__(data)
        self._renderer = renderer

    def render(self, fmt: str = "table", section: str | None = None) -> str:
        return self._renderer(dict(self), fmt, section)


def open_snapshot(path, verify: bool = True) -> Snapshot:
    return Snapshot.open(path, verify=verify)


def _snap(snap_or_path) -> Snapshot:
    """Every function takes an open Snapshot, or a bundle path (opened and verified)."""
    return snap_or_path if isinstance(snap_or_path, Snapshot) else Snapshot.open(snap_or_path)


def run(name: str, *snaps, **kwargs: Any) -> "Report":
    """Any registered analysis by its command name (``aksnap.analyzer.registry.ANALYSES``), with
    its snapshots (one; two for ``diff``) and ``build`` keywords; ids may be given by a unique
    prefix, in any case, as on the CLI."""
    a = ANALYSES[name]
    return Report(a.build(*(_snap(s) for s in snaps), **kwargs), a.render)


def _render(name: str):
    def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
        return ANALYSES[name].render(data, fmt, section)
    render.__doc__ = f"Render the answer of ``{name}``: table, json, yaml or csv (``section``: one table)."
    return render


def overview(snap: Snapshot, session_id: str | None = None) -> dict[str, Any]:
    """``aksnap analyze``: every session (over more than 20: a summary)."""
    return run("analyze", snap, session_id=session_id)


def lineage(snap: Snapshot, result_id: str,
            frontier_limit: int | None = _lineage.FRONTIER_SHOWN) -> dict[str, Any]:
    """Lineage of a result; ``frontier_limit`` frontier nodes described (None: all), all counted."""
    return run("lineage", snap, result_id=result_id, frontier_limit=frontier_limit)


def lineage_summary(data: dict[str, Any]) -> str:
    """One sentence: the result's status, how complete its inputs are, what holds it."""
    return _lineage.summary_line(data)


def lineage_dot(snap: Snapshot, result_id: str) -> str:
    """The upstream of a result as Graphviz DOT text (what ``lineage --dot`` writes)."""
    snap = _snap(snap)
    return _lineage.to_dot(snap, snap.resolve_id("result", result_id))


def _read_paths(snap_or_path) -> tuple:
    """The path a file writer must never replace: the bundle or packed file given by path."""
    return () if isinstance(snap_or_path, Snapshot) else (snap_or_path,)


def graph_file(snap, out, fmt: str = "dot", session_id: str | None = None,
               result_id: str | None = None, max_nodes: int | None = -1,
               overwrite: bool = False) -> dict[str, Any]:
    """``aksnap graph``: write the task/data graph (the bundle, a session, or a result's
    upstream) to ``out`` as ``dot``, ``graphml`` or ``json``; ``max_nodes`` -1 is the format's
    default cap, 0 or None none. An existing file at ``out`` is replaced only with
    ``overwrite`` (else BundleError). Returns what was written (``note``: the cut, if any)."""
    from . import graphfile

    return graphfile.write(_snap(snap), out, fmt, session_id, result_id, max_nodes,
                           overwrite=overwrite, sources=_read_paths(snap))


def trace_file(snap, out, session_id: str | None = None, result_id: str | None = None,
               max_tasks: int | None = 200_000, overwrite: bool = False) -> dict[str, Any]:
    """``aksnap trace``: write the run as a Chrome/Perfetto JSON trace to ``out`` (one session,
    one result's upstream, or all; at most ``max_tasks`` tasks, 0 or None: all). An existing
    file at ``out`` is replaced only with ``overwrite`` (else BundleError). Returns what was
    written (``note``: how it was limited, if it was)."""
    from . import trace

    return trace.write(_snap(snap), out, session_id, result_id, max_tasks, overwrite=overwrite,
                       sources=_read_paths(snap))


def report_file(snap, out, session_id: str | None = None,
                result_id: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """``aksnap report``: write one self-contained HTML page of the bundle to ``out`` (one
    session, else the largest; ``result_id``'s lineage first). Returns path, bytes and the
    notes saying what the page aggregated. The page's data alone: ``report.build(snap)``.
    ``snap`` may also be the path of a series recorded by ``aksnap watch --record``: the page
    of its latest bundle plus its recorded states (``report.write_series``). An existing file
    at ``out`` is replaced only with ``overwrite`` (else BundleError)."""
    from . import report, series

    if not isinstance(snap, Snapshot) and series.series_members(snap) is not None:
        return report.write_series(snap, out, session_id, result_id, overwrite=overwrite)
    return report.write(_snap(snap), out, session_id, result_id, overwrite=overwrite,
                        sources=_read_paths(snap))


def root_causes(snap: Snapshot, result_id: str | None = None,
                session_id: str | None = None) -> list[dict[str, Any]]:
    """Where failures started: failed/timed-out/cancelled tasks and aborted/deleted results with
    no failed input, upstream of ``result_id`` (or in a session, or in the whole bundle), each
    with how many failed nodes downstream it explains; the largest first."""
    from .describe import root_cause_rows

    snap = _snap(snap)
    if result_id is not None:
        return lineage(snap, result_id)["root_causes"]
    session_id = snap.resolve_id("session", session_id)
    g = snap.graph
    snap.require_session(session_id)
    mask = g.session_nodes(session_id)
    return root_cause_rows(snap, g.origins(mask=mask), np.flatnonzero(mask))


def render_root_causes(rows: list[dict[str, Any]], fmt: str = "table") -> str:
    from .common import Section, render_data, render_table

    rows = [{**r, "path": " -> ".join(r.get("path", []))} for r in rows]
    columns = ["kind", "id", "status", "explains", "attempt", "message"] + (
        ["path"] if any(r["path"] for r in rows) else [])
    return render_data(rows, fmt, lambda d: [Section("root_causes", d, columns)],
                       lambda d: render_table(d, "table", columns=columns))


def blockers(snap: Snapshot, session_id: str | None = None, limit: int | None = 20) -> dict[str, Any]:
    """``aksnap blockers``: blocking nodes ranked by the incomplete results they hold up."""
    return run("blockers", snap, session_id=session_id, limit=limit)


def critical_path(snap: Snapshot, session_id: str | None = None, all_steps: bool = False) -> dict[str, Any]:
    """The critical path of each session (over more than 20 sessions: a summary); a long chain
    lists its first, last and longest steps unless ``all_steps``."""
    return run("critical-path", snap, session_id=session_id, all_steps=all_steps)


def task(snap: Snapshot, task_id: str, limit: int | None = _task.LIMIT) -> dict[str, Any]:
    """One task in full; ``limit`` inputs and outputs listed (None: all), all of them counted."""
    return run("task", snap, task_id=task_id, limit=limit)


def check(snap: Snapshot, session_id: str | None = None) -> dict[str, Any]:
    """``aksnap check``: integrity and anomalies (``total`` > 0: something was found)."""
    return run("check", snap, session_id=session_id)


def diff(a, b, session_a: str | None = None, session_b: str | None = None,
         thresholds: list[str] = (), fail_on: str | None = None) -> dict[str, Any]:
    """``aksnap diff``: two runs (snapshots or paths) side by side, each figure with a verdict
    (``thresholds``: ``["phase.processing.p90=10%"]``)."""
    return run("diff", a, b, session_a=session_a, session_b=session_b, thresholds=list(thresholds),
               fail_on=fail_on)


render_overview = _render("analyze")
render_lineage = _render("lineage")
render_blockers = _render("blockers")
render_critical_path = _render("critical-path")
render_task = _render("task")
render_check = _render("check")
render_diff = _render("diff")
