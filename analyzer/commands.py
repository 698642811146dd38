"""CLI commands of aksnap.analyzer (registered by aksnap.cli).

Each command parses options, calls one function of the Python API and hands the answer to a
renderer; DuckDB and rustworkx are imported inside the bodies so `aksnap export` never loads
them. Bad input (missing bundle, other format version, failed checksum, unknown id or query)
is one sentence on stderr and exit code 2.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer

FORMATS = ("table", "json", "csv")

_BUNDLE = typer.Argument(..., help="Bundle directory (written by `aksnap export`).",
                         show_default=False, metavar="BUNDLE")


def _format_opt():
    return typer.Option("table", "--format", "-f", help="Output format: table, json or csv.",
                        metavar="table|json|csv")


def _verify_opt():
    return typer.Option(False, "--no-verify",
                        help="Skip the SHA-256 checks of the Parquet files (faster on big bundles).")


def _session_opt():
    return typer.Option(None, "--session", "-s", help="Only this session (default: every session).",
                        show_default=False, metavar="SESSION_ID")


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the analyzer's and the bundle's errors into one sentence and exit code 2."""
    from aksnap.analyzer.snapshot import AnalysisError
    from aksnap.bundle import BundleError
    from aksnap.cli import fail

    try:
        yield
    except (BundleError, AnalysisError) as e:
        raise fail(str(e)) from None


def _check_format(fmt: str) -> None:
    from aksnap.cli import fail

    if fmt not in FORMATS:
        raise fail(f"unknown --format {fmt!r}; use table, json or csv")


def _open(bundle: Path, no_verify: bool):
    from aksnap.analyzer.snapshot import Snapshot

    return Snapshot.open(bundle, verify=not no_verify)


def analyze_command(bundle: Path = _BUNDLE, session: Optional[str] = _session_opt(),
                    fmt: str = _format_opt(), no_verify: bool = _verify_opt()) -> None:
    """Overview of each session: tasks and results by status, wall time, throughput, phase
    breakdown, error classes, retries, root causes, top blockers, the critical path in one
    line, and the anomaly count. Over more than 20 sessions: a summary (totals, and the
    sessions standing out by failures, waiting and wall time; --format csv gives one row per
    session, --session one session in full).

    Example: aksnap analyze ./run.aksnap --format json
    """
    _check_format(fmt)
    with _errors():
        from aksnap.analyzer import overview

        snap = _open(bundle, no_verify)
        typer.echo(overview.render(overview.build(snap, session), fmt))


def lineage_command(bundle: Path = _BUNDLE,
                    result_id: str = typer.Argument(..., help="The result to explain.",
                                                    show_default=False, metavar="RESULT_ID"),
                    dot: Optional[Path] = typer.Option(None, "--dot", help="Also write the upstream "
                                                       "subgraph to FILE (Graphviz DOT).",
                                                       show_default=False, metavar="FILE"),
                    all_frontier: bool = typer.Option(False, "--all", help="Describe every node of "
                                                      "the blocking frontier (default: the 50 "
                                                      "longest waiting; all are counted)."),
                    fmt: str = _format_opt(), no_verify: bool = _verify_opt()) -> None:
    """Why isn't this result ready? Its upstream graph (tasks and results it depends on, by
    status, percent complete), the blocking frontier (what holds it now, and for how long),
    the root causes of failures upstream, and the chain of owners.

    Example: aksnap lineage ./run.aksnap 0b5e2c1a-... --dot lineage.dot
    """
    _check_format(fmt)
    with _errors():
        from aksnap.analyzer import lineage
        from aksnap.cli import fail

        snap = _open(bundle, no_verify)
        data = lineage.build(snap, result_id, None if all_frontier else lineage.FRONTIER_SHOWN)
        if dot is not None:
            try:
                dot.write_text(lineage.to_dot(snap, result_id))
            except OSError as e:
                raise fail(f"cannot write the DOT file {str(dot)!r} ({e.strerror}); check the path")
        typer.echo(lineage.render(data, fmt))


def blockers_command(bundle: Path = _BUNDLE, session: Optional[str] = _session_opt(),
                     limit: int = typer.Option(20, "--limit", "-n", help="How many blockers to show (0 = all)."),
                     fmt: str = _format_opt(), no_verify: bool = _verify_opt()) -> None:
    """Incomplete work ranked by how many incomplete downstream results each blocking node
    (incomplete, with every input complete) holds up.

    Example: aksnap blockers ./run.aksnap --session 6f1c... --limit 10
    """
    _check_format(fmt)
    with _errors():
        from aksnap.analyzer import blockers

        snap = _open(bundle, no_verify)
        typer.echo(blockers.render(blockers.build(snap, session, limit or None), fmt))


def critical_path_command(bundle: Path = _BUNDLE, session: Optional[str] = _session_opt(),
                          all_steps: bool = typer.Option(False, "--all", help="Every step of a long "
                                                         "chain (default: the first, last and longest)."),
                          fmt: str = _format_opt(), no_verify: bool = _verify_opt()) -> None:
    """The chain of dependencies (data, spawn and retry edges) that decided when each session's
    last result completed, task by task (waiting, queued, fetching, processing, finishing),
    with its share of the wall time. Over more than 20 sessions: the time by segment over all
    of them and the longest paths (--session for one in full).

    Example: aksnap critical-path ./run.aksnap --session 6f1c...
    """
    _check_format(fmt)
    with _errors():
        from aksnap.analyzer import critical_path

        snap = _open(bundle, no_verify)
        typer.echo(critical_path.render(critical_path.build(snap, session, all_steps), fmt))


def task_command(bundle: Path = _BUNDLE,
                 task_id: str = typer.Argument(..., help="The task to show.", show_default=False,
                                               metavar="TASK_ID"),
                 all_io: bool = typer.Option(False, "--all", help="List every input and output "
                                             "(default: counts by status and the first 50)."),
                 fmt: str = _format_opt(), no_verify: bool = _verify_opt()) -> None:
    """One task in full: its attempts, parent chain, subtasks, inputs and outputs with their
    status (and where ownership moved), and its timeline. Long input or output lists are
    counted by status, with the first 50 listed.

    Example: aksnap task ./run.aksnap 3f2a9c4e-... --all --format csv
    """
    _check_format(fmt)
    with _errors():
        from aksnap.analyzer import task_view

        snap = _open(bundle, no_verify)
        typer.echo(task_view.render(task_view.build(snap, task_id, None if all_io else task_view.LIMIT), fmt))


def check_command(bundle: Path = _BUNDLE, session: Optional[str] = _session_opt(),
                  fmt: str = _format_opt()) -> None:
    """Integrity (checksums, format version) and graph anomalies: results with no producer,
    references to ids not in the bundle, tasks waiting on aborted results, cycles,
    statuses contradicting timestamps, duplicate ids. Exit code 1 when anything is found.

    Example: aksnap check ./run.aksnap || echo "see the findings above"
    """
    _check_format(fmt)
    with _errors():
        from aksnap.analyzer import check
        from aksnap.analyzer.snapshot import Snapshot

        snap = Snapshot.open(bundle, verify=False, collect_problems=True)
        data = check.build(snap, session)
        typer.echo(check.render(data, fmt))
    if data["total"]:
        raise typer.Exit(1)


def sql_command(bundle: Path = _BUNDLE,
                query: str = typer.Argument(..., help="SQL over the views sessions, tasks, "
                                            "results, partitions, task_dependencies, task_outputs, "
                                            "result_producers, task_parents, task_attempts, "
                                            "task_retries, task_phases, bundle_info.",
                                            show_default=False, metavar="SQL"),
                param: List[str] = typer.Option([], "--param", "-p", help="Bind $k to v (repeatable).",
                                                metavar="k=v"),
                fmt: str = _format_opt(), no_verify: bool = _verify_opt()) -> None:
    """Run SQL (DuckDB) over the bundle's views; parameters are bound, never pasted.

    Example: aksnap sql ./run.aksnap "SELECT status, count(*) AS n FROM tasks GROUP BY ALL"
    """
    _check_format(fmt)
    with _errors():
        from aksnap.analyzer.common import render_table

        params = _params(param)
        snap = _open(bundle, no_verify)
        typer.echo(render_table(snap.sql(query, params or None), fmt))


def query_command(bundle: Path = _BUNDLE,
                  name: str = typer.Argument(..., help="A query name (see `aksnap queries`).",
                                             show_default=False, metavar="NAME"),
                  param: List[str] = typer.Option([], "--param", "-p",
                                                  help="Bind the query's $k to v (repeatable).",
                                                  metavar="k=v"),
                  fmt: str = _format_opt(), no_verify: bool = _verify_opt()) -> None:
    """Run one of the named queries of queries/*.sql with bound parameters.

    Example: aksnap query ./run.aksnap phase_percentiles --param session_id=6f1c...
    """
    _check_format(fmt)
    with _errors():
        from aksnap.analyzer.common import render_table

        params = _params(param)
        snap = _open(bundle, no_verify)
        typer.echo(render_table(snap.query(name, params), fmt))


def queries_command(fmt: str = _format_opt()) -> None:
    """List the named queries: purpose, parameters, output columns.

    Example: aksnap queries --format json
    """
    _check_format(fmt)
    from aksnap import queries
    from aksnap.output import render_rows

    rows = [{"name": q.name, "params": q.params, "purpose": q.purpose, "columns": q.columns}
            for q in map(queries.info, queries.names())]
    typer.echo(render_rows(rows, fmt, columns=["name", "params", "purpose"] if fmt == "table" else None,
                           max_width=100))


def _params(pairs: list[str]) -> dict[str, str]:
    from aksnap.analyzer.snapshot import AnalysisError

    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k.strip():
            raise AnalysisError(f"--param {p!r} is not k=v; write e.g. --param session_id=abc")
        out[k.strip()] = v
    return out


def register(app: typer.Typer) -> None:
    """Add this layer's commands to the aksnap app."""
    app.command("analyze")(analyze_command)
    app.command("lineage")(lineage_command)
    app.command("blockers")(blockers_command)
    app.command("critical-path")(critical_path_command)
    app.command("task")(task_command)
    app.command("check")(check_command)
    app.command("sql")(sql_command)
    app.command("query")(query_command)
    app.command("queries")(queries_command)
