"""``aksnap watch``: follow a running session, or one result, live.

It ties the layers together (as ``aksnap demo`` does, so it lives in the root package, every
import inside the function bodies): the exporter's :class:`~aksnap.exporter.follow.
EventFollower` reads ArmoniK's ``Events.GetEvents`` stream (resubscribing when it drops), the
exporter's ``export``/``update`` reconcile every ``interval`` seconds (the incremental export:
only what can have changed is read), and the analyzer's :class:`~aksnap.analyzer.live.
LiveState` and :func:`~aksnap.analyzer.live.analyze` turn both into what is shown.

Between reconciles the events move the statuses (they may be lost, repeated, stale or out of
order: each reconcile replaces the state with the cluster's truth, and the events that
arrived while it ran are applied again on top). Every reconcile is a bundle: kept in
``--record DIR`` (one per interval, each the update of the previous one), else in a temporary
directory that only holds the last.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from aksnap.output import output_option

FORMATS = ("table", "json", "yaml")
DEFAULT_INTERVAL = 5.0
#: A reconcile is a full export instead of an update of the previous bundle when at least this
#: share of that bundle's rows were open (tasks not final, results not complete): the update
#: asks for them by id, 500 a request, many more requests than paging through every row
#: (about 8,000 a page). On the simulator, a 200,000-task htcmock session with 35 % of its
#: rows open: update 12-13 s, full export 1.8 s; break-even near 5 %. A 1 %-open refresh
#: (the case the update is for) stays an update; so does every reconcile with ``--record``
#: (the recording is a chain of updates).
FULL_EXPORT_OPEN_SHARE = 0.1
_TASK_COLUMNS = ["task_id", "session_id", "status", "created_at", "started_at", "ended_at",
                 "submitted_at"]
_RESULT_COLUMNS = ["result_id", "session_id", "status", "owner_task_id"]


class WatchError(Exception):
    """The watch cannot start or go on; one sentence."""

    exit_code = 2


@dataclass
class WatchResult:
    """How a watch ended: ``code`` 0 (the result completed; the session ended without a failed
    task), 1 (the result failed; a task of the session failed), ``None`` (stopped before:
    ``--once``, Ctrl-C, ``max_s``), and the last state shown."""

    code: Optional[int]
    state: dict[str, Any]
    bundles: list[str] = field(default_factory=list)


class _Reconciler:
    """Reconciles in a thread: export (first) or update (then) into the next bundle, then reads
    back the columns the live state needs, and analyses the bundle."""

    def __init__(self, conn, session_id: str, result_id: Optional[str], record: Optional[Path],
                 keep: bool, jobs: int):
        import tempfile

        self.conn, self.session_id, self.result_id = conn, session_id, result_id
        self.keep, self.jobs = keep, jobs
        self.dir = record if record is not None else Path(tempfile.mkdtemp(prefix="aksnap-watch-"))
        self.temp = record is None
        self.bundles: list[Path] = []
        self.seq = 0
        self.thread: Optional[threading.Thread] = None
        self.outcome: Optional[tuple] = None      # (tables, analysis, path, seconds, rows fetched)
        self.error: Optional[str] = None
        self.started_at = 0.0
        self.count = 0
        self.parts: dict[str, float] = {}          # what the last reconcile's steps took
        self.open_share = 1.0                      # of the last bundle's rows, still open

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        self.outcome, self.error = None, None
        self.started_at = time.time()
        self.thread = threading.Thread(target=self._run, name="aksnap-reconcile", daemon=True)
        self.thread.start()

    def run_now(self) -> None:
        self.started_at = time.time()
        self._run()
        if self.error:
            raise WatchError(self.error)

    def _run(self) -> None:
        import pyarrow.parquet as pq

        from aksnap.analyzer.live import analyze
        from aksnap.bundle_writer import remove_bundle_dir
        from aksnap.exporter import export, update
        from aksnap.exporter.client import ExportError

        t0 = time.perf_counter()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = self.dir / f"{self.seq:05d}-{stamp}"
        try:
            # --record keeps the chain of updates (each bundle names its parent and what it
            # cost); otherwise the cheaper way to the same rows
            if not self.bundles or (not self.keep and self.open_share >= FULL_EXPORT_OPEN_SHARE):
                s = export(self.conn, out, sessions=[self.session_id], jobs=self.jobs)
                fetched = s.rows["tasks"] + s.rows["results"]
            else:
                s = update(self.bundles[-1], out, endpoint=self.conn, jobs=self.jobs)
                fetched = sum(s.update["rows_fetched"].values())
            t1 = time.perf_counter()
            tables = (pq.read_table(out / "tasks.parquet", columns=_TASK_COLUMNS),
                      pq.read_table(out / "results.parquet", columns=_RESULT_COLUMNS))
            t2 = time.perf_counter()
            self.open_share = _open_share(*tables)
            try:
                analysis = analyze(out, self.session_id, self.result_id)
            except Exception as e:  # noqa: BLE001 - the view says so; the counts still show
                analysis = {"error": f"the analysis failed: {e}"}
            self.parts = {"export_s": round(t1 - t0, 3), "read_s": round(t2 - t1, 3),
                          "analyze_s": round(time.perf_counter() - t2, 3)}
        except (ExportError, OSError) as e:
            self.error = str(e)
            return
        except Exception as e:  # noqa: BLE001 - a bundle error: shown, retried next interval
            self.error = f"the refresh failed: {e}"
            return
        self.seq += 1
        self.count += 1
        self.bundles.append(out)
        if not self.keep:
            while len(self.bundles) > 1:
                remove_bundle_dir(self.bundles.pop(0))
        self.outcome = (tables, analysis, str(out), time.perf_counter() - t0, fetched)

    def close(self) -> None:
        if self.temp:
            import shutil

            if self.thread is not None:
                self.thread.join(timeout=30)
            shutil.rmtree(self.dir, ignore_errors=True)


def _open_share(tasks, results) -> float:
    """The share of the rows that an update would refetch by id (tasks not final, results not
    complete), counted with Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from aksnap.bundle import RESULT_INCOMPLETE_STATUSES, TASK_FINAL_STATUSES

    rows = tasks.num_rows + results.num_rows
    if not rows:
        return 0.0
    open_t = tasks.num_rows - pc.sum(pc.is_in(tasks.column("status"),
                                              value_set=pa.array(TASK_FINAL_STATUSES))).as_py()
    open_r = pc.sum(pc.is_in(results.column("status"),
                             value_set=pa.array(RESULT_INCOMPLETE_STATUSES))).as_py()
    return (int(open_t or 0) + int(open_r or 0)) / rows


def _check_record(record: Optional[Path]) -> Optional[Path]:
    if record is None:
        return None
    record = Path(os.path.abspath(record))
    if record.exists():
        if not record.is_dir():
            raise WatchError(f"--record {record} exists and is not a directory; give a new or "
                             "empty directory")
        if any(record.iterdir()):
            raise WatchError(f"--record {record} is not empty; give a new or empty directory "
                             "(each refresh adds a bundle to it)")
    elif not record.parent.is_dir():
        raise WatchError(f"cannot create --record {record}: the parent directory "
                         f"{record.parent} does not exist")
    else:
        record.mkdir()
    return record


def watch(endpoint=None, *, session_id: Optional[str] = None, result_id: Optional[str] = None,
          interval: float = DEFAULT_INTERVAL, once: bool = False, record=None, tls=None,
          jobs: int = 2, on_update: Optional[Callable[[dict[str, Any]], None]] = None,
          stop: Optional[threading.Event] = None, max_s: Optional[float] = None,
          state=None) -> WatchResult:
    """Follow ``session_id`` (or the session of ``result_id``) at ``endpoint`` until it ends.

    ``on_update(state)`` is called with the state (plain data) after every reconcile and about
    every ``interval / 5`` seconds between them. Returns when the result completes or fails
    (``code`` 0 or 1), when every task of the session is final (1 if any failed), after one
    reconcile with ``once``, when ``stop`` is set or after ``max_s`` seconds (``code`` None).
    ``record``: a new or empty directory that keeps one bundle per reconcile. ``state``: a
    :class:`aksnap.analyzer.live.LiveState` of the caller's to fill (to read its statuses).
    """
    from aksnap.analyzer.live import LiveState
    from aksnap.exporter.client import ExportError, RawClient, connection_of
    from aksnap.exporter.follow import EventFollower, result_session

    if (session_id is None) == (result_id is None):
        raise WatchError("watch one thing: --session ID or --result ID")
    if interval <= 0:
        raise WatchError(f"--interval must be > 0 seconds (got {interval})")
    record = _check_record(Path(record) if record is not None else None)
    conn = connection_of(endpoint, tls)  # the one resolver, as export and export --update
    stop = stop or threading.Event()
    if result_id is not None:
        with RawClient(conn) as client:
            session_id = result_session(client, result_id)
    if state is None:
        state = LiveState(session_id, result_id)
    else:
        state.session_id, state.result_id = session_id, result_id
    rec = _Reconciler(conn, session_id, result_id, record, keep=record is not None, jobs=jobs)
    pending: deque = deque()
    replay: list = []
    follower = None
    shown: dict[str, Any] = {}
    info: dict[str, Any] = {"reconciles": 0, "last_reconcile_s": None,
                            "last_reconcile_parts": {}, "rows_fetched": None,
                            "bundle": None, "analysis": {}, "error": None}

    def snapshot() -> dict[str, Any]:
        st = state.view()
        if follower is not None:
            fs = follower.stats
            st["events"] = {"received": fs.events, "subscriptions": fs.subscriptions,
                            "drops": fs.drops, "applied": state.events_applied,
                            "ignored_stale": state.events_ignored,
                            # since the first subscription (it opens after the first
                            # reconcile): the rate the stream delivered, not diluted by it
                            "per_s": round(fs.events / max(1e-9, time.time() - (
                                fs.subscribed_at or started)), 1)}
        st.update({k: v for k, v in info.items()})
        st["recorded"] = [str(p) for p in rec.bundles] if record is not None else []
        return st

    def take(outcome) -> None:
        tables, analysis, path, seconds, fetched = outcome
        state.load(*tables, at=rec.started_at)
        if replay:  # events that arrived while the reconcile ran may be newer than it
            for batch in replay:
                state.apply(batch)
        replay.clear()
        info.update(reconciles=rec.count, last_reconcile_s=round(seconds, 3),
                    last_reconcile_parts=dict(rec.parts),
                    rows_fetched=fetched, analysis=analysis,
                    bundle=path if record is not None else None, error=None)

    started = time.time()
    try:
        if once:
            try:
                rec.run_now()
            except ExportError as e:
                raise WatchError(str(e)) from None
            take(rec.outcome)
            shown = snapshot()
            return WatchResult(None, shown, [str(p) for p in rec.bundles] if record else [])

        def sink(batch):
            pending.append(batch)

        # The first reconcile runs alone: a new subscription replays the whole session (every
        # task and result as NEW_*, as Core does), which keeps the server busy for as long as
        # it takes to send; a capture taken meanwhile competed with it (a 200,000-task live
        # session on the simulator: the first complete view after 30 s, 17-20 s alone; see
        # docs/watch.md). Subscribing after it loses
        # nothing: the replay is the state as of the subscription.
        # The events asked for: a session's tasks (its results are as of the last reconcile:
        # the replay of a result per task output and input more than doubled the stream), or
        # for a result, the tasks and that result alone.
        follower = EventFollower(conn, session_id, sink,
                                 results=result_id if result_id is not None else "none")
        rec.start()
        next_at = time.time() + interval
        tick = min(0.5, interval / 5)
        last_shown = 0.0
        code = None
        while not stop.is_set():
            while pending:
                batch = pending.popleft()
                state.apply(batch)
                if rec.thread is not None:  # a reconcile in flight (or not yet taken)
                    replay.append(batch)
            if rec.thread is not None and not rec.running:
                if not follower.is_alive() and follower.ident is None:
                    follower.start()  # after the first reconcile (taken or failed)
                if rec.outcome is not None:
                    take(rec.outcome)
                    rec.outcome = None
                    code = state.outcome()
                elif rec.error is not None:
                    info["error"] = rec.error
                    rec.error = None
                rec.thread = None
                replay.clear()
                if on_update is not None:
                    on_update(snapshot())
                    last_shown = time.time()
                if code is not None:
                    break
            if state.result_id is not None and state.outcome() is not None:
                code = state.outcome()  # a result's COMPLETED/ABORTED is final: trust it
                break
            now = time.time()
            if rec.thread is None and now >= next_at:
                rec.start()
                next_at = now + interval
            if on_update is not None and now - last_shown >= tick:
                on_update(snapshot())
                last_shown = now
            if max_s is not None and now - started >= max_s:
                break
            stop.wait(0.02 if pending else 0.05)
        shown = snapshot()
        return WatchResult(code, shown, [str(p) for p in rec.bundles] if record else [])
    finally:
        if follower is not None:
            follower.stop()
        rec.close()


# -- rendering ----------------------------------------------------------------------------


def render_view(st: dict[str, Any]):
    """A rich renderable of the state (ids and messages escaped: they come from the cluster)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from aksnap.output import safe_text

    def t(x: Any) -> Text:
        return Text(safe_text("" if x is None else str(x)))

    what = (f"result {st['result_id']} ({st['result_status'] or 'unknown yet'})"
            if st.get("result_id") else f"session {st['session_id']}")
    a = st.get("analysis") or {}
    pct = a.get("lineage_percent_complete") if st.get("result_id") else st["percent_complete"]
    head = Text(safe_text(f"aksnap watch: {what} in session {st['session_id']}: "
                          f"{pct if pct is not None else '?'} % complete, {st['tasks']} tasks, "
                          f"{st['failed_tasks']} failed"), style="bold")
    status = Table(title="tasks by status", title_justify="left")
    for k in st["tasks_by_status"]:
        status.add_column(k, justify="right")
    status.add_row(*[str(v) for v in st["tasks_by_status"].values()])
    eta = st["eta_s"]
    rate = Text(safe_text(f"throughput {st['throughput_tasks_per_s']} tasks/s, ETA "
                          f"{'unknown' if eta is None else f'{eta:.0f} s'} (basis: "
                          f"{st['eta_basis']})"))
    parts = [head, status, rate]
    if a.get("frontier"):
        ft = Table(title=f"blocking frontier ({a.get('frontier_total', 0)} nodes, longest "
                   "waiting first)", title_justify="left")
        for c in ("kind", "id", "status", "waiting_s", "waiting_for"):
            ft.add_column(c)
        for r in a["frontier"]:
            ft.add_row(*[t(r.get(c)) for c in ("kind", "id", "status", "waiting_s", "waiting_for")])
        parts.append(ft)
    if st.get("new_failures"):
        nf = Table(title="new failures", title_justify="left")
        for c in ("task_id", "status", "seen_at"):
            nf.add_column(c)
        for r in st["new_failures"]:
            nf.add_row(t(r["task_id"]), t(r["status"]), t(f"+{r['seen_at']} s"))
        parts.append(nf)
    if a.get("root_causes"):
        rc = Table(title="root causes", title_justify="left")
        for c in ("kind", "id", "status", "explains", "message"):
            rc.add_column(c)
        for r in a["root_causes"]:
            rc.add_row(*[t(r.get(c)) for c in ("kind", "id", "status", "explains", "message")])
        parts.append(rc)
    ev = st.get("events") or {}
    foot = (f"events {ev.get('received', 0)} ({ev.get('per_s', 0)}/s, {ev.get('drops', 0)} "
            f"stream drops), reconciles {st['reconciles']} (last {st['last_reconcile_s']} s, "
            f"{st['rows_fetched']} rows fetched)")
    if st.get("error"):
        foot += f"; last refresh failed: {st['error']}"
    parts.append(Text(safe_text(foot), style="dim"))
    return Group(*parts)


def watch_command(
    endpoint: Optional[str] = typer.Option(None, "--endpoint", "-e", help="Control plane "
                                           "HOST:PORT (default: AK_ENDPOINT, then the config "
                                           "files, as aksnap export).", show_default=False),
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Session to watch.",
                                          show_default=False),
    result: Optional[str] = typer.Option(None, "--result", "-r", help="Result to watch (its "
                                         "lineage; ends when it completes or fails).",
                                         show_default=False),
    interval: float = typer.Option(DEFAULT_INTERVAL, "--interval", help="Seconds between "
                                   "reconciles (list calls, incremental)."),
    once: bool = typer.Option(False, "--once", help="One refreshed state, then exit 0."),
    record: Optional[Path] = typer.Option(None, "--record", metavar="DIR", help="Keep a bundle "
                                          "per reconcile in DIR (new or empty), each the "
                                          "incremental update of the previous one.",
                                          show_default=False),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML connection file, "
                                          "as AKCONFIG.", show_default=False, metavar="FILE"),
    certificate_authority: Optional[Path] = typer.Option(None, "--certificate-authority",
                                                         help="PEM CA of the server (TLS).",
                                                         show_default=False),
    client_certificate: Optional[Path] = typer.Option(None, "--client-certificate",
                                                      help="PEM client certificate (mutual "
                                                      "TLS).", show_default=False),
    client_key: Optional[Path] = typer.Option(None, "--client-key", help="PEM client key.",
                                              show_default=False),
    output: Optional[str] = output_option(FORMATS),
) -> None:
    """Follow a running session (or one result) live: progress, throughput and ETA, the
    blocking frontier, new failures and their root causes.

    Follows Events.GetEvents and reconciles every --interval seconds with the incremental
    export. Exits 0 when the result completes (a session: every task final, none failed),
    1 when it fails, 130 on Ctrl-C. -o json prints one JSON state per reconcile (one line
    each), -o yaml one YAML document each; --once -o json prints one refreshed state.

    Example: aksnap watch --endpoint 10.0.0.1:5001 --result 7f3e... --record ./run-42-series
    """
    import sys

    from aksnap.cli import fail
    from aksnap.output import FormatError, resolve_format, to_json, to_yaml

    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        fmt = resolve_format(output, FORMATS)
    except FormatError as e:
        raise fail(str(e)) from None
    from aksnap.exporter.client import ExportError, resolve_connection

    try:
        conn = resolve_connection(endpoint, certificate_authority and str(certificate_authority),
                                  client_certificate and str(client_certificate),
                                  client_key and str(client_key), config=config)
    except ExportError as e:
        raise fail(str(e), code=e.exit_code)
    import signal

    def on_term(signum, frame):  # a pod eviction, a CI timeout: as Ctrl-C
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
    live = None
    on_update = None
    latest: list = []

    def emit(st) -> None:
        """One state: a JSON line, or a YAML document (``---`` first)."""
        if fmt == "json":
            sys.stdout.write(to_json(st).replace("\n", " ") + "\n")
        else:
            sys.stdout.write("---\n" + to_yaml(st).rstrip("\n") + "\n")
        sys.stdout.flush()

    if fmt in ("json", "yaml") and not once:
        def on_update(st, _last=[0]):  # one state per reconcile
            latest[:] = [st]
            if st["reconciles"] != _last[0]:
                _last[0] = st["reconciles"]
                emit(st)
    elif fmt == "table" and not once:
        from rich.console import Console
        from rich.live import Live

        console = Console()
        if console.is_terminal:
            live = Live(console=console, auto_refresh=False, transient=False)
            live.start()

            def on_update(st):
                live.update(render_view(st), refresh=True)
        else:
            def on_update(st, _last=[0]):
                if st["reconciles"] != _last[0]:
                    _last[0] = st["reconciles"]
                    console.print(render_view(st))
    try:
        res = watch(conn, session_id=session, result_id=result, interval=interval, once=once,
                    record=record, on_update=on_update)
    except KeyboardInterrupt:
        if live is not None:
            live.stop()
        if latest:  # -o json|yaml: the state when interrupted, last
            emit(latest[0])
        where = f"; the bundles so far are in {record}" if record is not None else ""
        raise fail(f"watch interrupted{where}", code=130)
    except WatchError as e:
        raise fail(str(e), code=e.exit_code)
    except ExportError as e:
        raise fail(str(e), code=e.exit_code)
    finally:
        if live is not None and live.is_started:
            live.stop()
    if once:
        if fmt == "json":
            typer.echo(to_json(res.state))
        elif fmt == "yaml":
            typer.echo(to_yaml(res.state))
        else:
            from rich.console import Console

            Console().print(render_view(res.state))
        raise typer.Exit(0)
    end = res.state
    what = f"result {result}" if result else f"session {end['session_id']}"
    verdict = {0: "completed", 1: "failed"}.get(res.code, "stopped")
    typer.echo(f"aksnap: {what} {verdict}", err=True)
    raise typer.Exit(res.code if res.code is not None else 0)


def register(app: typer.Typer) -> None:
    app.command("watch")(watch_command)
