"""The analyzer's Python API: everything a command does, a notebook (or ``aksnap demo``) can do.

The functions are made from the registry (:data:`aksnap.analyzer.registry.COMMANDS`), one per
command, with the command's parameters under their ``build`` names and the command line's
defaults: its bundles first (an open :class:`Snapshot`, or a path, opened and verified as the
command does; a series recorded by ``aksnap watch --record`` where the command takes one),
then its arguments and options. A dict answer comes back as a :class:`Report` (plain data
that renders itself); ``render_<name>`` renders one too::

    from aksnap.analyzer import api
    snap = api.open_snapshot("run.aksnap")
    print(api.render_overview(api.overview(snap)))     # aksnap analyze
    print(api.lineage(snap, result_id).render("json"))  # aksnap lineage
    api.graph_file(snap, "g.graphml", session_id="6f1c")  # aksnap graph
    api.compare("nightly.archive", where=["env=nightly"], last=30)
    api.sql(snap, "SELECT count(*) FROM tasks")        # an Arrow table (the snapshot sandboxed)

The name is the command's (``-`` and spaces as ``_``), except ``analyze`` (``overview``) and
the file writers (``graph_file``, ``trace_file``, ``report_file``). ``api.run(name, ...)``
runs any command by its command name.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from . import lineage as _lineage
from .registry import COMMANDS, Command
from .snapshot import AnalysisError, Snapshot


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


def _answer(cmd: Command, inputs, kwargs: dict[str, Any]) -> Any:
    answer = cmd.execute(inputs, kwargs)
    return Report(answer.data, answer.impl.function("render")) if isinstance(answer.data, dict) \
        else answer.data


def run(name: str, *inputs, **kwargs: Any) -> Any:
    """Any registered command by its command name (``"lineage"``, ``"archive add"``), with its
    bundles (Snapshots or paths: one; two for ``diff``; none for ``compare``) and ``build``
    keywords, the module's defaults for those left out; ids may be given by a unique prefix,
    in any case, as on the CLI."""
    return _answer(COMMANDS[name], inputs, kwargs)


def _function(cmd: Command) -> Callable[..., Any]:
    """The API function of ``cmd``: its bundles, then its parameters by build name, with the
    command line's defaults (as ``build`` receives them)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    sig = inspect.Signature(
        [inspect.Parameter(b, kind) for b in cmd.bundles]
        + [inspect.Parameter(p.name, kind, default=p.api_default(),
                             annotation=p.annotation if p.to_build is None else inspect.Parameter.empty)
           for p in cmd.params if p.name is not None])

    def function(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        return _answer(cmd, [values.pop(b) for b in cmd.bundles], values)

    function.__signature__ = sig
    function.__name__ = function.__qualname__ = cmd.api_name
    function.__doc__ = (f"``aksnap {cmd.name}`` as a function: its bundles (Snapshots or paths), "
                        "then its arguments and options by their build names.\n\n"
                        + inspect.cleandoc(cmd.help))
    return function


def _renderer(cmd: Command) -> Callable[..., str]:
    def render(data: Any, fmt: str = "table", section: str | None = None) -> str:
        return cmd.render(data, fmt, section)
    render.__name__ = render.__qualname__ = f"render_{cmd.api_name}"
    render.__doc__ = (f"Render the answer of ``aksnap {cmd.name}``: "
                      f"{', '.join(cmd.formats)} (``section``: one table).")
    return render


for _cmd in COMMANDS.values():
    globals()[_cmd.api_name] = _function(_cmd)
    globals()[f"render_{_cmd.api_name}"] = _renderer(_cmd)
del _cmd


def lineage_summary(data: dict[str, Any]) -> str:
    """One sentence: the result's status, how complete its inputs are, what holds it."""
    return _lineage.summary_line(data)


def lineage_dot(snap: Snapshot, result_id: str) -> str:
    """The upstream of a result as Graphviz DOT text (what ``lineage --dot`` writes)."""
    snap = _snap(snap)
    return _lineage.to_dot(snap, snap.resolve_id("result", result_id))


def root_causes(snap: Snapshot, result_id: str | None = None,
                session_id: str | None = None) -> list[dict[str, Any]]:
    """Where failures started: failed/timed-out/cancelled tasks and aborted/deleted results with
    no failed input, upstream of ``result_id`` (or in a session, or in the whole bundle), each
    with how many failed nodes downstream it explains; the largest first."""
    from .describe import root_cause_rows

    snap = _snap(snap)
    if result_id is not None:
        return run("lineage", snap, result_id=result_id)["root_causes"]
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


__all__ = ["Snapshot", "AnalysisError", "Report", "open_snapshot", "run", "lineage_summary",
           "lineage_dot", "root_causes", "render_root_causes",
           *(c.api_name for c in COMMANDS.values()),
           *(f"render_{c.api_name}" for c in COMMANDS.values())]
