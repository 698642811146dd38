"""The commands that draw a bundle into a file: ``aksnap graph`` (DOT, GraphML, JSON),
``aksnap trace`` (Chrome/Perfetto trace) and ``aksnap report`` (one self-contained HTML page).

Each is registered in :mod:`aksnap.analyzer.registry` with a ``build`` below, which checks
the options and calls one function of the analyzer (graphfile.write, trace.write,
report.write, report.write_series); what it returns is what was written (path, sizes, and
``note``: the sentence saying how the file was cut, if it was), which :func:`render` prints.
A file is written atomically (temporary sibling, fsynced, then renamed;
:func:`aksnap.output.atomic_output`), never over an existing file without ``overwrite``,
never through a symbolic link, into a directory, a FIFO or a bundle (nor over ``sources``,
the paths the bundle was read from); the command line checks --out before the bundle is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from .snapshot import AnalysisError

#: --out's suffix -> the graph format written when --format is not given
SUFFIX_FORMATS = {".dot": "dot", ".gv": "dot", ".graphml": "graphml", ".json": "json"}


def graph_options(out: str | os.PathLike, fmt: Optional[str], max_nodes: Optional[int]) -> str:
    """The graph format (``fmt``, else from ``out``'s suffix, else dot), checked with
    ``max_nodes``; a sentence (AnalysisError) for a bad one."""
    from . import graphfile

    fmt = (fmt or SUFFIX_FORMATS.get(Path(out).suffix.lower(), "dot")).lower()
    if fmt not in graphfile.FORMATS:
        raise AnalysisError(f"--format {fmt!r} is not a graph format; use dot, graphml or json")
    if max_nodes is not None and max_nodes < -1:
        raise AnalysisError(f"--max-nodes {max_nodes} is negative; give a count, or 0 for no cap")
    return fmt


def graph(snap, out, fmt: Optional[str] = None, session_id: Optional[str] = None,
          result_id: Optional[str] = None, max_nodes: Optional[int] = -1,
          overwrite: bool = False, sources=()) -> dict[str, Any]:
    """Write the task/data graph (the bundle, a session, or a result's upstream) to ``out`` as
    ``dot``, ``graphml`` or ``json`` (None: from ``out``'s suffix); ``max_nodes`` -1 is the
    format's default cap, 0 or None none."""
    from . import graphfile

    fmt = graph_options(out, fmt, max_nodes)
    return graphfile.write(snap, out, fmt, session_id, result_id, max_nodes, overwrite=overwrite,
                           sources=sources)


def trace(snap, out, session_id: Optional[str] = None, result_id: Optional[str] = None,
          max_tasks: Optional[int] = 200_000, overwrite: bool = False, sources=()) -> dict[str, Any]:
    """Write the run as a Chrome/Perfetto JSON trace to ``out`` (one session, one result's
    upstream, or all; at most ``max_tasks`` tasks, 0 or None: all)."""
    from . import trace as trace_mod

    return trace_mod.write(snap, out, session_id, result_id, max_tasks, overwrite=overwrite,
                           sources=sources)


def report(snap, out, session_id: Optional[str] = None, result_id: Optional[str] = None,
           overwrite: bool = False, sources=()) -> dict[str, Any]:
    """Write one self-contained HTML page of the bundle to ``out`` (one session, else the
    largest; ``result_id``'s lineage first). Returns path, bytes and the notes saying what the
    page aggregated. The page's data alone: ``report.build(snap)``."""
    from . import report as report_mod

    return report_mod.write(snap, out, session_id, result_id, overwrite=overwrite,
                            sources=sources)


def report_series(series_dir, out, session_id: Optional[str] = None,
                  result_id: Optional[str] = None, overwrite: bool = False,
                  verify: bool = True) -> dict[str, Any]:
    """The report of a series recorded by ``aksnap watch --record``: the page of its latest
    bundle plus its recorded states (:func:`aksnap.analyzer.report.write_series`)."""
    from . import report as report_mod

    return report_mod.write_series(series_dir, out, session_id, result_id, verify=verify,
                                   overwrite=overwrite)


def render(info: dict[str, Any], fmt: str = "table", section: Optional[str] = None) -> str:
    """What was written: key-value lines (the note aside: the command says it on stderr), or
    one JSON/YAML document."""
    from aksnap.output import render_kv, to_json, to_yaml

    if fmt == "table":
        return render_kv([(k, v) for k, v in info.items() if k != "note" and v is not None])
    return (to_json if fmt == "json" else to_yaml)(info).rstrip("\n")


def render_report(info: dict[str, Any], fmt: str = "table", section: Optional[str] = None) -> str:
    """:func:`render`, the page's notes on one line."""
    return render({**info, "notes": "; ".join(info["notes"])}, fmt, section)
