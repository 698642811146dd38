"""CLI commands that draw a bundle: ``aksnap graph`` (DOT, GraphML, JSON), ``aksnap trace``
(Chrome/Perfetto trace) and ``aksnap report`` (one self-contained HTML page). Registered by
aksnap.cli; each parses its options and calls one function of the analyzer (graphfile.write,
trace.write, report.write), so a notebook does the same by importing it. A file is written
atomically (temporary sibling, fsynced, then renamed; :func:`aksnap.output.atomic_output`),
never over an existing file without --overwrite, never through a symbolic link, into a
directory, a FIFO or a bundle; --out is checked before the bundle is read. A cut to a size
limit is one sentence on stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aksnap import paths
from aksnap.output import output_option

from .commands import output_format, no_verify_option

_BUNDLE = typer.Argument(..., help="Bundle directory or packed file (written by `aksnap export` "
                         "or `aksnap pack`).", show_default=False, metavar="BUNDLE",
                         callback=paths.bundle_in)
_SUMMARY_FORMATS = ("table", "json", "yaml")


def _session_opt():
    return typer.Option(None, "--session", "-s", help="Only this session (a unique prefix is "
                        "enough).", show_default=False, metavar="SESSION_ID")


def _result_opt(what: str):
    return typer.Option(None, "--result", "-r", help=f"Only this result's upstream ({what}; a "
                        "unique prefix is enough).", show_default=False, metavar="RESULT_ID")


def _out_opt(example: str):
    return typer.Option(..., "--out", help=f"The file to write, e.g. {example} (refused if it "
                        "exists, unless --overwrite; written atomically).", show_default=False,
                        metavar="FILE", callback=paths.file_out)


def _overwrite_opt():
    return typer.Option(False, "--overwrite", help="Replace an existing --out file (a regular "
                        "file only: never a link, a directory or the bundle read).")


def _check_out(out: Path, overwrite: bool, bundle: Path) -> None:
    """Refuse --out before any work (reading the bundle can take long)."""
    from aksnap.output import check_output_file

    check_output_file(out, overwrite=overwrite, sources=(bundle,))


def _say(info: dict, fmt: str) -> None:
    from aksnap.output import render_kv, to_json, to_yaml

    note = info.get("note")
    if note:
        typer.echo(note, err=True)
    if fmt == "table":
        typer.echo(render_kv([(k, v) for k, v in info.items() if k != "note" and v is not None]))
    else:
        typer.echo((to_json if fmt == "json" else to_yaml)(info).rstrip("\n"))


_SUFFIX_FORMATS = {".dot": "dot", ".gv": "dot", ".graphml": "graphml", ".json": "json"}


def graph_command(bundle: Path = _BUNDLE,
                  out: Path = _out_opt("graph.dot"),
                  fmt: Optional[str] = typer.Option(None, "--format", help="dot (Graphviz), "
                                                    "graphml (Gephi, yEd, networkx) or json "
                                                    "(nodes and edges); default: from --out's "
                                                    "suffix (.dot/.gv, .graphml, .json), else dot.",
                                                    metavar="dot|graphml|json", show_default=False),
                  session: Optional[str] = _session_opt(),
                  result: Optional[str] = _result_opt("the tasks and results it depends on"),
                  max_nodes: int = typer.Option(-1, "--max-nodes", help="Write at most N nodes "
                                                "(default 5000 for dot, 200000 otherwise; 0: "
                                                "every one); a cut is said on stderr.",
                                                show_default=False, metavar="N"),
                  overwrite: bool = _overwrite_opt(),
                  output: Optional[str] = output_option(_SUMMARY_FORMATS),
                  no_verify: bool = no_verify_option()) -> None:
    """Write the task/data graph (the whole bundle, one session, or one result's upstream) as
    Graphviz DOT, GraphML or JSON: tasks and results as nodes (status, session, partition, pod,
    message, times), data, payload, produces, spawn and retry edges. Every bundle string is
    escaped for the format, so hostile ids and messages cannot break the file. Prints what was
    written.

    Example: aksnap graph ./run.aksnap --result 0b5e2c1a --out lineage.dot && dot -Tsvg lineage.dot > l.svg
    """
    from aksnap.analyzer import graphfile
    from aksnap.analyzer.snapshot import AnalysisError, Snapshot

    summary_fmt = output_format(output, None, False, _SUMMARY_FORMATS)
    _check_out(out, overwrite, bundle)
    # no -f here: elsewhere -f is the deprecated spelling of -o (the answer's format)
    fmt = (fmt or _SUFFIX_FORMATS.get(out.suffix.lower(), "dot")).lower()
    if fmt not in graphfile.FORMATS:
        raise AnalysisError(f"--format {fmt!r} is not a graph format; use dot, graphml or json")
    if max_nodes < -1:
        raise AnalysisError(f"--max-nodes {max_nodes} is negative; give a count, or 0 for no cap")
    snap = Snapshot.open(bundle, verify=not no_verify)
    info = graphfile.write(snap, out, fmt, session, result, max_nodes, overwrite=overwrite,
                           sources=(bundle,))
    _say(info, summary_fmt)


def trace_command(bundle: Path = _BUNDLE,
                  out: Path = _out_opt("trace.json"),
                  session: Optional[str] = _session_opt(),
                  result: Optional[str] = _result_opt("the tasks that produced what it reads, "
                                                      "with their retried attempts"),
                  max_tasks: int = typer.Option(200_000, "--max-tasks", help="Write at most N "
                                                "tasks, the first by start (0: every one; a "
                                                "million tasks is about 0.5 GB of JSON).",
                                                metavar="N"),
                  overwrite: bool = _overwrite_opt(),
                  output: Optional[str] = output_option(_SUMMARY_FORMATS),
                  no_verify: bool = no_verify_option()) -> None:
    """Write the run as a Chrome/Perfetto trace (JSON trace event format; open it in
    ui.perfetto.dev or chrome://tracing): one track per pod (slots of the partition when pods
    are unknown), each task a slice with its dispatch, fetching, processing and finishing
    phases nested, waiting and queued as counters (and slices on small traces), data
    dependencies as flow arrows from producer to consumer, retries linked. A limited trace
    (--session, --result, --max-tasks) says so in the file and on stderr.

    Example: aksnap trace ./run.aksnap --session 6f1c --out trace.json
    """
    from aksnap.analyzer import trace
    from aksnap.analyzer.snapshot import Snapshot

    summary_fmt = output_format(output, None, False, _SUMMARY_FORMATS)
    _check_out(out, overwrite, bundle)
    snap = Snapshot.open(bundle, verify=not no_verify)
    info = trace.write(snap, out, session, result, max_tasks, overwrite=overwrite,
                       sources=(bundle,))
    _say(info, summary_fmt)


def report_command(bundle: Path = _BUNDLE,
                   out: Path = _out_opt("report.html"),
                   session: Optional[str] = typer.Option(None, "--session", "-s", help="Only this "
                                                         "session (default: the 5 largest).",
                                                         show_default=False, metavar="SESSION_ID"),
                   result: Optional[str] = typer.Option(None, "--result", "-r", help="Draw this "
                                                        "result's lineage first, with more of its "
                                                        "upstream (its session is shown).",
                                                        show_default=False, metavar="RESULT_ID"),
                   overwrite: bool = _overwrite_opt(),
                   output: Optional[str] = output_option(_SUMMARY_FORMATS),
                   no_verify: bool = no_verify_option()) -> None:
    """Write one self-contained HTML page (opens offline; no network: its CSS and JavaScript
    are inlined and a Content-Security-Policy forbids loads): per session the overview, tasks
    by status over time, throughput, phase distributions per partition, error classes with
    examples, retries, top blockers, the critical path as a Gantt strip, and the lineage of
    the results that matter (blocked, then failed) as an interactive DAG (click a node for its
    detail, expand upstream; frontier and root causes highlighted), with an id search. Big
    views are aggregated and the page says how. Every bundle string is shown as text.

    BUNDLE may be a series recorded by `aksnap watch --record DIR`: the page of its latest
    bundle, plus tasks by status over time as recorded (one point per recorded state).

    Example: aksnap report ./run.aksnap --out report.html
    """
    from aksnap.analyzer import report, series
    from aksnap.analyzer.snapshot import Snapshot

    summary_fmt = output_format(output, None, False, _SUMMARY_FORMATS)
    _check_out(out, overwrite, bundle)
    if series.series_members(bundle) is not None:
        info = report.write_series(bundle, out, session, result, verify=not no_verify,
                                   overwrite=overwrite)
    else:
        snap = Snapshot.open(bundle, verify=not no_verify)
        info = report.write(snap, out, session, result, overwrite=overwrite,
                            sources=(bundle,))
    info = {**info, "notes": "; ".join(info["notes"])}
    _say(info, summary_fmt)


def register(app: typer.Typer) -> None:
    app.command("graph")(graph_command)
    app.command("trace")(trace_command)
    app.command("report")(report_command)


__all__ = ["register", "graph_command", "trace_command", "report_command"]
