"""CLI commands of aksnap.analyzer (registered by aksnap.cli).

The analysis commands are made from :data:`aksnap.analyzer.registry.ANALYSES`: one generic body
(:func:`run_analysis`) opens the bundle, resolves id prefixes, calls the analysis' ``build`` and
renders it. Every command takes armonik-cli's ``-o/--output table|json|yaml|csv`` (``AK_OUTPUT``,
any case) and ``--wide``; analyses with several tables take ``--section NAME``. DuckDB,
numpy and rustworkx are imported inside the bodies, so `aksnap export` never loads them and
`aksnap sql` never loads the graph. Bad input (missing bundle, other format version, failed
checksum, unknown or ambiguous id, unknown query, bad parameter) is one sentence on stderr and
exit code 2.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, List, Optional

import typer

from aksnap import paths
from aksnap.output import FORMATS, output_option, wide_option

from .registry import ANALYSES, Analysis

_BUNDLE = typer.Argument(..., help="Bundle directory (written by `aksnap export`).",
                         show_default=False, metavar="BUNDLE", callback=paths.bundle_in)


def _format_opt():
    # the first spelling, kept for scripts written before -o; hidden from the help
    return typer.Option(None, "--format", "-f", hidden=True, show_default=False,
                        help="Deprecated: use -o/--output.")


def _section_opt():
    return typer.Option(None, "--section", help="Only this table of the answer (csv writes one "
                        "table: the first section unless this names another).",
                        show_default=False, metavar="NAME")


def no_verify_option():
    """``--no-verify``, as every command that reads a bundle takes it (here and in
    :mod:`aksnap.analyzer.visual_commands`)."""
    return typer.Option(False, "--no-verify",
                        help="Skip the SHA-256 checks of the Parquet files (faster on big bundles).")


def output_format(output: Optional[str], fmt: Optional[str], wide: bool,
            allowed: tuple[str, ...] = FORMATS) -> str:
    """The output format (-o, else the deprecated --format, else $AK_OUTPUT, else table)."""
    from aksnap.output import resolve_format, set_wide

    set_wide(wide)
    return resolve_format(output if output is not None else fmt, allowed)


def run_analysis(a: Analysis, values: dict[str, Any]) -> None:
    """The body of every analysis command: open, build, render, exit code."""
    from aksnap.analyzer.snapshot import Snapshot

    fmt = output_format(values.pop("output"), values.pop("fmt"), values.pop("wide"), a.formats)
    section = values.pop("section")
    open_kwargs = dict(a.open_kwargs) or {"verify": not values.pop("no_verify", False)}
    kwargs = {}
    for p in a.params:
        if p.name is not None:
            v = values[p.dest]
            kwargs[p.name] = p.to_build(v) if p.to_build else v
    if a.name == "analyze":
        from . import series

        if series.series_members(values["bundle"]) is not None:
            # a directory of bundles recorded by `aksnap watch --record`: its states
            data = series.build(values["bundle"], kwargs.get("session_id"))
            typer.echo(series.render(data, fmt, section))
            return
    if a.before is not None:
        a.before(values)
    snaps = [Snapshot.open(values[name], **open_kwargs) for name in a.bundles]
    data = a.build(*snaps, **kwargs)
    if a.after is not None:
        a.after(snaps[0], data, values)
    text = a.render(data, fmt, section)
    if fmt == "csv" and section is None:
        names = [s.name for s in a.sections(data)]
        if len(names) > 1:
            typer.echo(f"aksnap: csv is the {names[0]} table; --section NAME for another "
                       f"({', '.join(names[1:])})", err=True)
    typer.echo(text)
    code = a.exit_code(data) if a.exit_code else 0
    if code:
        raise typer.Exit(code)


def make_command(a: Analysis):
    """A typer command for ``a``: its parameters, then the ones every analysis takes."""
    bundles = [(name, Path, _BUNDLE if name == "bundle" else typer.Argument(
        ..., help="A bundle directory or packed file.", show_default=False, metavar=name.upper(),
        callback=paths.bundle_in))
        for name in a.bundles]
    params = bundles + [(p.dest, p.annotation, p.cli) for p in a.params] + [
        ("output", Optional[str], output_option(a.formats)), ("section", Optional[str], _section_opt()),
        ("wide", bool, wide_option()), ("fmt", Optional[str], _format_opt())]
    if a.verify_option:
        params.append(("no_verify", bool, no_verify_option()))

    def command(**values: Any) -> None:
        run_analysis(a, values)

    command.__signature__ = inspect.Signature([
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        for name, ann, default in params])
    command.__annotations__ = {name: ann for name, ann, _ in params}
    command.__doc__ = inspect.cleandoc(a.help)
    command.__name__ = command.__qualname__ = a.name.replace("-", "_") + "_command"
    return command


def sql_command(bundle: Path = _BUNDLE,
                query: str = typer.Argument(..., help="SQL over the views sessions, tasks, "
                                            "results, partitions, task_dependencies, task_outputs, "
                                            "result_producers, task_parents, task_attempts, "
                                            "task_retries, task_phases, bundle_info.",
                                            show_default=False, metavar="SQL"),
                param: List[str] = typer.Option([], "--param", "-p", help="Bind $k to v (repeatable).",
                                                metavar="k=v"),
                output: Optional[str] = output_option(), wide: bool = wide_option(),
                allow_external: bool = typer.Option(False, "--allow-external", help="Lift the "
                                                    "sandbox: the SQL may read and write any "
                                                    "file (the bundle's too), install and load "
                                                    "extensions. Only for SQL you wrote."),
                memory_limit: str = typer.Option("4GB", "--memory-limit", help="Most memory DuckDB "
                                                 "may use.", metavar="SIZE"),
                fmt: Optional[str] = _format_opt(), no_verify: bool = no_verify_option()) -> None:
    """Run SQL (DuckDB) over the bundle's views; parameters are bound, never pasted. The SQL
    runs sandboxed: DuckDB holds no path (the tables reach it as Arrow datasets), so nothing
    is read or written but the bundle's tables; SQL that redefines a view gets no answer;
    configuration locked, --memory-limit. To save an answer use -o csv > FILE;
    --allow-external lifts the sandbox (only for SQL you wrote: it may write any file).

    Example: aksnap sql ./run.aksnap "SELECT status, count(*) AS n FROM tasks GROUP BY ALL"
    """
    _run_sql(bundle, output, fmt, wide, no_verify, allow_external, memory_limit,
             lambda snap: snap.sql(query, _params(param) or None))


def query_command(bundle: Path = _BUNDLE,
                  name: str = typer.Argument(..., help="A query name (see `aksnap queries`).",
                                             show_default=False, metavar="NAME"),
                  param: List[str] = typer.Option([], "--param", "-p",
                                                  help="Bind the query's $k to v (repeatable).",
                                                  metavar="k=v"),
                  output: Optional[str] = output_option(), wide: bool = wide_option(),
                  memory_limit: str = typer.Option("4GB", "--memory-limit", help="Most memory "
                                                   "DuckDB may use.", metavar="SIZE"),
                  fmt: Optional[str] = _format_opt(), no_verify: bool = no_verify_option()) -> None:
    """Run one of the named queries of queries/*.sql with bound parameters (checked: a
    parameter a query reads as a number must be one), sandboxed as `aksnap sql`.

    Example: aksnap query ./run.aksnap phase_percentiles --param session_id=6f1c...
    """
    _run_sql(bundle, output, fmt, wide, no_verify, False, memory_limit,
             lambda snap: snap.query(name, _params(param)))


def _run_sql(bundle, output, fmt, wide, no_verify, allow_external, memory_limit, run) -> None:
    from aksnap.analyzer.snapshot import Snapshot
    from aksnap.output import render_rows

    fmt = output_format(output, fmt, wide)
    snap = Snapshot.open(bundle, verify=not no_verify)
    if not allow_external:
        snap.sandbox(memory_limit)
    text = render_rows(run(snap), fmt)
    typer.echo(text)


def queries_command(output: Optional[str] = output_option(), wide: bool = wide_option(),
                    fmt: Optional[str] = _format_opt()) -> None:
    """List the named queries: purpose, parameters, output columns.

    Example: aksnap queries -o json
    """
    from aksnap import queries
    from aksnap.output import render_rows

    fmt = output_format(output, fmt, wide)
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


# -- archives of many runs --------------------------------------------------------------------------

archive_app = typer.Typer(
    name="archive", no_args_is_help=True,
    help="Many runs in one Parquet dataset, laid out by table and run (hive partitioning: "
         "tasks/run=<id>/...), with a runs table; DuckDB, pandas, Spark and Trino read it "
         "without aksnap (docs/comparison.md). `aksnap compare` reads it.\n\n"
         "Example: aksnap archive add ./nightly.archive run-42.aksnap --label env=nightly")

_ARCHIVE = typer.Argument(..., help="The archive directory (created by the first add).",
                          show_default=False, metavar="ARCHIVE", callback=paths.dir_out)
COMPARE_FORMATS = FORMATS + ("markdown",)


@archive_app.command("add")
def archive_add_command(archive: Path = _ARCHIVE,
                        bundles: List[Path] = typer.Argument(..., help="Bundles (or packed "
                                                             "files) to add.", show_default=False,
                                                             metavar="BUNDLE...",
                                                             callback=paths.bundle_in),
                        label: List[str] = typer.Option([], "--label", "-l", help="Label the runs "
                                                        "key=value (repeatable); compare --where "
                                                        "selects by label.", metavar="k=v"),
                        output: Optional[str] = output_option(), wide: bool = wide_option()) -> None:
    """Add bundles to an archive (created when new): each bundle's Parquet copied under
    <table>/run=<id>/, its checksums verified on the way in, a row in the runs table. The run
    id comes from the manifest's digest, so adding the same bundle twice adds it once.

    Example: aksnap archive add ./nightly.archive run-42.aksnap --label env=nightly
    """
    from aksnap.analyzer import archive as archive_mod
    from aksnap.output import render_rows

    fmt = output_format(output, None, wide)
    rows = archive_mod.add(archive, bundles, label)
    typer.echo(render_rows([{**r, "labels": " ".join(f"{k}={v}" for k, v in r["labels"].items())}
                            if fmt in ("table", "csv") else r for r in rows], fmt))


@archive_app.command("list")
def archive_list_command(archive: Path = _ARCHIVE, output: Optional[str] = output_option(),
                         wide: bool = wide_option()) -> None:
    """The runs of an archive, oldest first: run id, export time, ArmoniK versions, labels,
    sessions, tasks, manifest digest.

    Example: aksnap archive list ./nightly.archive -o csv
    """
    from aksnap.analyzer import archive as archive_mod
    from aksnap.output import render_rows

    fmt = output_format(output, None, wide)
    rows = archive_mod.runs(archive)
    typer.echo(render_rows(rows, fmt))


def compare_command(archive: Path = _ARCHIVE,
                    where: List[str] = typer.Option([], "--where", "-w", help="Only runs with "
                                                    "this label (key=value; repeatable: all must "
                                                    "hold).", metavar="k=v"),
                    last: Optional[int] = typer.Option(None, "--last", "-n", help="Report the last "
                                                       "N runs (earlier ones still feed their "
                                                       "baselines).", show_default=False),
                    metric: List[str] = typer.Option([], "--metric", "-m", help="Only these metrics "
                                                     "(a name, a family such as phase, or a glob "
                                                     "such as phase.*.p90; repeatable).",
                                                     metavar="METRIC"),
                    history: int = typer.Option(10, "--history", help="The rolling baseline: median "
                                                "and MAD of this many previous runs."),
                    baseline: Optional[str] = typer.Option(None, "--baseline", help="Compare every "
                                                           "run with this one instead (a run id or "
                                                           "a unique prefix).", show_default=False,
                                                           metavar="RUN"),
                    k: float = typer.Option(3.0, "--k", help="A run regresses beyond k x 1.4826 x "
                                            "MAD from the median ..."),
                    min_rel: float = typer.Option(0.10, "--min-rel", help="... and beyond this "
                                                  "share of the baseline ..."),
                    min_abs: float = typer.Option(0.05, "--min-abs", help="... and beyond this "
                                                  "much, in the metric's unit."),
                    engine: str = typer.Option("duckdb", "--engine", help="duckdb (this machine) "
                                               "or spark (pyspark: the spark extra).",
                                               metavar="duckdb|spark"),
                    master: Optional[str] = typer.Option(None, "--master", help="Spark master URL "
                                                         "(default local[*]).", show_default=False,
                                                         metavar="URL"),
                    fail_on: Optional[str] = typer.Option(None, "--fail-on", help="Exit 1 when a "
                                                          "reported run regressed (regression) or "
                                                          "changed at all (change).",
                                                          show_default=False,
                                                          metavar="regression|change"),
                    output: Optional[str] = output_option(COMPARE_FORMATS),
                    section: Optional[str] = _section_opt(), wide: bool = wide_option()) -> None:
    """Every run of an archive against its baseline (the median and MAD of the previous
    --history runs, or a pinned --baseline run): one row per run and metric (tasks, failures,
    retries, wall time, makespan, throughput, phase percentiles per partition, errors), the
    trend of each metric, and the runs that regress. One SQL query per metric family over the
    whole archive (queries/compare_*.sql), on DuckDB or, with --engine spark, on Spark.
    Sections: rows (csv's default), trends, runs.

    Example: aksnap compare ./nightly.archive --where env=nightly --last 30 --fail-on regression
    """
    from aksnap.analyzer import compare as compare_mod

    fmt = output_format(output, None, wide, COMPARE_FORMATS)
    data = compare_mod.build(str(archive), where, last, metric, history, baseline, k, min_rel,
                             min_abs, engine, master, fail_on)
    text = compare_mod.render(data, fmt, section)
    if fmt == "csv" and section is None:
        typer.echo("aksnap: csv is the rows table; --section NAME for another (trends, runs)",
                   err=True)
    typer.echo(text)
    if compare_mod.exit_code(data):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this layer's commands to the aksnap app: every registered analysis, then SQL, then
    the archive commands."""
    for a in ANALYSES.values():
        app.command(a.name)(make_command(a))
    app.command("sql")(sql_command)
    app.command("query")(query_command)
    app.command("queries")(queries_command)
    app.add_typer(archive_app)
    app.command("compare")(compare_command)


__all__ = ["FORMATS", "make_command", "register", "run_analysis"]
