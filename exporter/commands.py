"""CLI commands of aksnap.exporter (registered by aksnap.cli): ``aksnap export``, and the
connection group (:data:`CONNECTION`: ``--endpoint``, ``-c/--config``, the certificates,
``--retry-for``, and the load budget ``--max-rps``, ``--jobs``) that every command connecting
to a control plane takes (``aksnap watch`` too), declared once here.

The command is declared as data (:data:`EXPORT`, :class:`aksnap.options.Param`) and made
into a typer command by :func:`aksnap.options.typer_function`; its body checks the options,
calls :func:`aksnap.exporter.export` (or ``update``), and hands the summary to the shared
formatter (``-o/--output table|json|yaml``, ``AK_OUTPUT``, any case). The bundle directory is
``--out`` only: ``-o`` is the output format, as in armonik-cli. gRPC, ptars and the exporter
itself are imported inside the command body.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer

from aksnap import paths
from aksnap.exporter.budget import DEFAULT_JOBS, DEFAULT_MAX_RPS
from aksnap.options import OutputGroup, Param, typer_function

# The summary is one record: no csv (armonik-cli's formats).
FORMATS = ("table", "json", "yaml")


class RichProgress:
    """One progress bar per table on stderr, with the totals the API reported."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._p = Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TimeRemainingColumn(),
                           console=Console(stderr=True), transient=False)
        self._tasks: dict[str, int] = {}
        self._started = False

    def start(self, table: str, total: int) -> None:
        if self._p is None:
            return
        if not self._started:  # not before the first table: a refusal shows no empty bars
            self._p.start()
            self._started = True
        self._tasks[table] = self._p.add_task(table, total=max(total, 0))

    def advance(self, table: str, rows: int) -> None:
        tid = self._tasks.get(table)
        if tid is None or self._p is None:
            return
        task = self._p.tasks[tid]
        # Rows inserted during the export can outgrow the reported total: grow the bar.
        if task.total is not None and task.completed + rows > task.total:
            self._p.update(tid, total=task.completed + rows)
        self._p.advance(tid, rows)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None  # type: ignore[assignment]


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (a pod eviction, a CI timeout) cleans up like Ctrl-C: no partial directory."""
    import signal
    import threading

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


# -- the connection group: every command that connects (export, export --update, watch) ---------

CONNECTION: tuple[Param, ...] = (
    Param("endpoint", Optional[str], typer.Option(
        None, "--endpoint", "-e", help="Control plane HOST:PORT (default: AK_ENDPOINT, then the "
        "-c/AKCONFIG file, then armonik-cli's config file).", show_default=False)),
    Param("config", Optional[Path], typer.Option(
        None, "--config", "-c", help="YAML connection file, as AKCONFIG (keys endpoint, "
        "certificate_authority, client_certificate, client_key).", show_default=False,
        metavar="FILE", callback=paths.file_in)),
    Param("certificate_authority", Optional[Path], typer.Option(
        None, "--certificate-authority", help="PEM file of the CA that signed the server "
        "certificate (turns TLS on).", show_default=False, callback=paths.file_in)),
    Param("client_certificate", Optional[Path], typer.Option(
        None, "--client-certificate", help="PEM client certificate, for mutual TLS.",
        show_default=False, callback=paths.file_in)),
    Param("client_key", Optional[Path], typer.Option(
        None, "--client-key", help="PEM client key, for mutual TLS.", show_default=False,
        callback=paths.file_in)),
    Param("retry_for", Optional[float], typer.Option(
        None, "--retry-for", metavar="SECONDS", help="Keep retrying an unreachable control "
        "plane for up to SECONDS in a row: at the start (by default a refused connection fails "
        "at once) and during the export (by default 20-40 s per call, 120 s of waiting in "
        "all).", show_default=False)),
    Param("max_rps", Optional[float], typer.Option(
        None, "--max-rps", metavar="N", help=f"Requests per second at most, all connections "
        f"together (default: $AKSNAP_MAX_RPS, else {DEFAULT_MAX_RPS:g}; inf: no cap); slower "
        "while the control plane shows strain (latency rising, RESOURCE_EXHAUSTED, "
        "UNAVAILABLE); see docs/exporter.md, \"The load budget\".", show_default=False)),
    Param("jobs", int, typer.Option(
        DEFAULT_JOBS, "--jobs", "-j", help="Requests in flight at most (shards read "
        "concurrently); halved while the control plane shows strain.")),
)


def take_connection(values: dict[str, Any]):
    """Remove the connection group's values from ``values``: the options as given
    (:class:`~aksnap.exporter.client.ConnectionOptions`, for the one resolver,
    ``resolve_connection``), the retry policy of ``--retry-for`` (None: the default) and the
    load budget (:class:`~aksnap.exporter.budget.Budget` of ``--max-rps`` and ``--jobs``)."""
    from aksnap.errors import OptionError
    from aksnap.exporter.budget import budget_of
    from aksnap.exporter.client import ConnectionOptions, RetryPolicy

    options = ConnectionOptions(*(values.pop(k) for k in (
        "endpoint", "certificate_authority", "client_certificate", "client_key", "config")))
    retry_for = values.pop("retry_for")
    if retry_for is not None and not retry_for >= 0:
        raise OptionError(f"--retry-for must be a number of seconds >= 0, not {retry_for}")
    budget = budget_of(values.pop("max_rps"), values.pop("jobs"))  # BudgetError: exit 2
    return options, (RetryPolicy(retry_for=retry_for) if retry_for is not None else None), budget


# -- aksnap export -------------------------------------------------------------------------------

EXPORT_HELP = """Export sessions, their tasks and results, and the partitions into a bundle.

    Versioned Parquet plus a manifest (docs/bundle-format.md), renamed into place when complete.
    The summary goes to stdout (-o table|json|yaml), progress bars to stderr.

    Example: aksnap export --endpoint 10.0.0.1:5001 --session 3f2a... --out ./run-42 -o json

    Refresh it later (reads only what can have changed): aksnap export --update ./run-42
    """

#: the summary is one record: no csv (armonik-cli's formats); --format/-f is the old -o
OUTPUT = OutputGroup(FORMATS, deprecated=True)

EXPORT: tuple[Param, ...] = (
    Param("out", Optional[Path], typer.Option(
        None, "--out", help="Bundle directory to create (refused if it exists, unless "
        "--overwrite). With --update: where the refreshed bundle goes (default: replace "
        "BUNDLE).", show_default=False, metavar="DIR", callback=paths.dir_out)),
    Param("update_bundle", Optional[Path], typer.Option(
        None, "--update", metavar="BUNDLE", help="Refresh BUNDLE from the cluster it came from "
        "(its recorded endpoint unless --endpoint is given), fetching only the tasks and "
        "results that were not final in it and those created since; the selection is "
        "BUNDLE's.", show_default=False, callback=paths.bundle_in)),
    *CONNECTION,
    Param("session", Optional[List[str]], typer.Option(
        None, "--session", "-s", help="Session id to export; repeat for several.",
        show_default=False)),
    Param("all_sessions", bool, typer.Option(False, "--all", help="Export every session.")),
    Param("status", Optional[str], typer.Option(
        None, "--status", help="Only sessions with this status (RUNNING, PAUSED, CANCELLED, "
        "CLOSED, PURGED, DELETED).", show_default=False)),
    Param("created_after", Optional[str], typer.Option(
        None, "--created-after", help="Only sessions created at or after this time: a time "
        "ago (30m, 2h, 1d, 1h30m) or an ISO date-time (UTC if no zone).", show_default=False,
        metavar="AGO|ISO")),
    Param("created_before", Optional[str], typer.Option(
        None, "--created-before", help="Only sessions created before this time: a time ago "
        "(2h: before two hours ago) or an ISO date-time.", show_default=False,
        metavar="AGO|ISO")),
    Param("page_size", Optional[int], typer.Option(
        None, "--page-size", help="Rows per page (default: automatic, about 8 MiB per page). "
        "Halved when a page would not fit aksnap's receive limit or the server's send limit; "
        "grows back when pages are light again.", show_default=False)),
    Param("max_message_size", int, typer.Option(
        256 * 1024 * 1024, "--max-message-size", metavar="BYTES", help="Largest response aksnap "
        "accepts: its 16 MiB receive limit is raised up to this for a single heavy row (a task "
        "with many data dependencies); default 256 MiB.")),
    Param("overwrite", bool, typer.Option(
        False, "--overwrite", help="Replace an existing bundle at --out (atomically, once the "
        "new one is complete).")),
    Param("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress bars.")),
    Param("redact", bool, typer.Option(
        False, "--redact", help="Write a redacted bundle (as aksnap redact: keyed pseudonyms, "
        "the key's fingerprint in the manifest); needs --key-file.")),
    Param("key_file", Optional[Path], typer.Option(
        None, "--key-file", help="The secret key for --redact (aksnap redact --new-key creates "
        "one).", show_default=False, metavar="KEY", callback=paths.file_out)),
    Param("messages", str, typer.Option(
        "classes", "--messages", metavar="classes|drop|keep", help="With --redact: what to do "
        "with error texts and status messages (see aksnap redact).")),
    Param("map_out", Optional[Path], typer.Option(
        None, "--map", help="With --redact: also write the pseudonym -> original table "
        "(Parquet) to FILE, for the sender alone; never inside the bundle.", show_default=False,
        metavar="FILE", callback=paths.file_out)),
    Param("keep_ids", bool, typer.Option(
        False, "--keep-ids", help="With --redact: keep session, task and result ids as they "
        "are.")),
    *OUTPUT.params(),
)


def _redaction(values: dict[str, Any]):
    """``--redact --key-file KEY`` and what goes with it, checked: the Redaction, or None."""
    from aksnap.errors import OptionError

    redact, key_file = values["redact"], values["key_file"]
    if (redact or key_file is not None) and not (redact and key_file is not None):
        raise OptionError("--redact and --key-file go together: --redact --key-file KEY "
                          "(aksnap redact --new-key creates a key)")
    if (values["map_out"] is not None or values["keep_ids"]) and not redact:
        raise OptionError("--map and --keep-ids go with --redact --key-file KEY")
    if not redact:
        return None
    from aksnap.redact import MESSAGE_MODES, Redaction, load_key

    messages = values["messages"].lower()
    if messages not in MESSAGE_MODES:
        raise OptionError(f"unknown --messages mode {values['messages']!r}; use "
                          f"{', '.join(MESSAGE_MODES)}")
    return Redaction(load_key(key_file), messages, keep_ids=values["keep_ids"],
                     map_out=values["map_out"])


def _check_selection(values: dict[str, Any]) -> None:
    """--update keeps the bundle's own selection; a new export needs --out."""
    from aksnap.errors import OptionError

    if values["update_bundle"] is not None:
        chosen = [name for name, key in (("--session", "session"), ("--all", "all_sessions"),
                                         ("--status", "status"),
                                         ("--created-after", "created_after"),
                                         ("--created-before", "created_before"),
                                         ("--redact", "redact")) if values[key]]
        if chosen:
            raise OptionError(f"--update refreshes the bundle's own selection; {chosen[0]} "
                              "does not go with it (export to a new --out to change the "
                              "selection)")
    elif values["out"] is None:
        raise OptionError("missing option --out DIR: the bundle directory to create (or "
                          "--update BUNDLE to refresh an existing bundle)")


def export_body(values: dict[str, Any]) -> None:
    """The body of ``aksnap export``: check the options, export (or update), print the
    summary."""
    import os

    from aksnap.errors import Interrupted

    # gRPC's C core logs TLS handshake details to stderr; our error sentence says what matters.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    fmt, _ = OUTPUT.take(values)
    from aksnap.exporter.api import export

    redaction = _redaction(values)
    _check_selection(values)
    # Every command that connects hands its options to the one resolver (resolve_connection).
    options, retry, budget = take_connection(values)
    _terminate_like_ctrl_c()
    out, update_bundle = values["out"], values["update_bundle"]
    where = out if out is not None else update_bundle
    progress = None
    try:
        with notices_on_stderr():
            if not values["quiet"]:
                progress = RichProgress()
            common = dict(page_size=values["page_size"], jobs=budget.jobs,
                          max_rps=budget.max_rps, overwrite=values["overwrite"],
                          progress=progress, max_receive_ceiling=values["max_message_size"],
                          retry=retry)
            if update_bundle is not None:
                from aksnap.exporter.incremental import update

                # The bundle's own endpoint unless --endpoint is given.
                summary = update(update_bundle, out, endpoint=options, **common)
            else:
                summary = export(options, out, sessions=values["session"] or (),
                                 all_sessions=values["all_sessions"], status=values["status"],
                                 created_after=values["created_after"],
                                 created_before=values["created_before"], redaction=redaction,
                                 **common)
    except KeyboardInterrupt as e:
        # ExportInterrupted knows what is at --out; an earlier interrupt came before anything
        # was written.
        kept = " (the existing bundle is untouched)" if os.path.lexists(where) else ""
        raise Interrupted(str(e) or f"the export was interrupted; nothing was written to "
                          f"{where}{kept}") from None
    finally:
        if progress is not None:
            progress.close()
    typer.echo(render_summary(summary, fmt))
    for w in summary.warnings:
        from aksnap.output import safe_text

        typer.echo(f"warning: {safe_text(w)}", err=True)


class _StderrNotice(logging.Handler):
    """The exporter's notices (a retry) as ``aksnap: warning: ...`` lines on stderr, looked up
    when written (a progress display or a test may have replaced it)."""

    def emit(self, record: logging.LogRecord) -> None:
        from aksnap.output import safe_text

        try:
            sys.stderr.write(f"aksnap: warning: {safe_text(record.getMessage())}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - a notice must never break the export
            pass


@contextmanager
def notices_on_stderr() -> Iterator[None]:
    """Show the exporter's notices on stderr while a command runs (not hidden by --quiet:
    they are warnings, not progress)."""
    from aksnap.exporter.client import log

    handler = _StderrNotice(logging.WARNING)
    log.addHandler(handler)
    propagate, log.propagate = log.propagate, False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def render_summary(summary, fmt: str) -> str:
    """The export's summary: a table and key-value lines, or one JSON/YAML document."""
    from aksnap.exporter.budget import cost_phrase
    from aksnap.output import render_kv, render_rows, to_json, to_yaml

    if fmt == "json":
        return to_json(summary.as_dict())
    if fmt == "yaml":
        return to_yaml(summary.as_dict())
    m = summary.manifest["tables"]
    rows = [{"table": t, "rows": m[t]["rows"], "bytes": _human(m[t]["bytes"])} for t in m]
    extra = []
    if summary.update is not None:
        u = summary.update
        fetched = sum(u["rows_fetched"].values())
        held = sum(m[t]["rows"] for t in u["rows_fetched"])
        share = f" ({100 * fetched / held:.1f} % of the {held:,} task and result rows)" if held else ""
        extra = [("updated from", f"{u['parent']['digest'][:12]}... exported at "
                                  f"{u['parent']['exported_at']}"),
                 ("rows fetched", f"{fetched:,}{share}"),
                 ("rows kept", f"{sum(u['rows_kept'].values()):,}")]
        if u["rescanned_sessions"] or u["new_sessions"]:
            extra.append(("read whole", f"{len(u['new_sessions'])} new, "
                                        f"{len(u['rescanned_sessions'])} rescanned sessions"))
    return "\n".join([render_rows(rows, "table", ["table", "rows", "bytes"]), render_kv(extra + [
        ("bundle", str(summary.path)),
        ("snapshot", summary.snapshot),
        ("sessions", len(summary.sessions)),
        ("bytes", _human(summary.bytes)),
        ("seconds", round(summary.seconds, 2)),
        ("rows/s", f"{summary.rows_per_s:,.0f}"),
        ("tasks/s", f"{summary.tasks_per_s:,.0f}"),
        *([("cost", cost_phrase(summary.cost))] if summary.cost else []),
    ])])


export_command = typer_function("export", EXPORT_HELP, EXPORT, export_body)


def register(app: typer.Typer) -> None:
    """Add this layer's commands to the aksnap app."""
    app.command("export")(export_command)
