"""``aksnap serve``: the report's page served on loopback, live for a running session.

Three sources, one page (the report's, :mod:`aksnap.analyzer.report`): a bundle (its report),
a series recorded by ``aksnap watch --record`` (its report, with a slider over the recorded
states), or a control plane (``--endpoint`` and ``--session``/``--result``: the watch engine,
:func:`aksnap.cli.watch.watch`, reconciles in a thread and every state it shows is pushed to
the pages by Server-Sent Events). The drill-downs of the page (a click on a node, an id
typed in the search box) ask the server, which runs the registry's own commands
(:data:`aksnap.analyzer.registry.COMMANDS`: ``lineage``, ``task``) on the same bundle, so
the page and the command line never disagree.

It joins the exporter (the live source) and the analyzer, so it lives in the composition
floor, as ``watch`` does. The web application itself is :mod:`aksnap.cli.serve_app`
(Starlette, run by uvicorn).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from aksnap import paths
from aksnap.errors import AksnapError
from aksnap.options import NO_VERIFY, Param, typer_function

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"
#: addresses that only this machine reaches: no token needed
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ServeError(AksnapError):
    """The server cannot start; one sentence (exit 2: a mistake to correct)."""


def _asset(name: str) -> str:
    from importlib import resources

    return resources.files("aksnap.cli").joinpath("serve_assets", name).read_text("utf-8")


# -- drill-downs: the registry's commands on one bundle ------------------------------------------

class Drill:
    """The drill-downs over one bundle (a live source moves it to each reconcile's bundle):
    ``lineage(id)`` and ``task(id)`` give the text ``aksnap lineage|task BUNDLE ID -o json``
    prints, ``search(prefix)`` the ids beginning so. One at a time (a lock): DuckDB and the
    graph are read by one thread, and a burst of clicks costs one core at most."""

    def __init__(self, path=None, verify: bool = True, snap=None):
        self.lock = threading.Lock()
        self.verify = verify
        self.wanted = str(path) if path is not None else None
        self.path: Optional[str] = None
        self.snap = snap
        if snap is not None:
            self.path = self.wanted = str(snap.path)

    def point_at(self, path) -> None:
        """Answer from ``path`` from now on (opened at the next question)."""
        self.wanted = str(path)

    def _open(self, path=None):
        from aksnap.analyzer.snapshot import Snapshot

        wanted = str(path) if path is not None else self.wanted
        if self.snap is None or self.path != wanted:
            if self.snap is not None:
                self.snap.close()
                self.snap = None
            self.snap = Snapshot.open(wanted, verify=self.verify)
            self.path = wanted
        return self.snap

    def _command(self, name: str, kwargs: dict[str, Any], path=None) -> str:
        from aksnap.analyzer.registry import COMMANDS

        with self.lock:
            snap = self._open(path)
            try:
                answer = COMMANDS[name].execute([snap], kwargs)
            except FileNotFoundError:
                raise ServeError("the state moved on while this was read; ask again") from None
            return answer.render("json")

    def lineage(self, result_id: str, path=None) -> str:
        """``aksnap lineage BUNDLE RESULT_ID -o json`` (its defaults: the 50 longest waiting
        frontier nodes described, all counted)."""
        from aksnap.analyzer.lineage import FRONTIER_SHOWN

        return self._command("lineage", {"result_id": result_id, "frontier_limit": FRONTIER_SHOWN},
                             path)

    def task(self, task_id: str, path=None) -> str:
        """``aksnap task BUNDLE TASK_ID -o json`` (its defaults: the first 50 inputs and
        outputs listed, all counted)."""
        from aksnap.analyzer.task_view import LIMIT

        return self._command("task", {"task_id": task_id, "limit": LIMIT}, path)

    def search(self, prefix: str, path=None) -> str:
        """The ids of tasks, results and sessions beginning with ``prefix`` (any case), at most
        ``SEARCH_HITS``, in id order, with their kind and status; ``more`` when others match."""
        from aksnap.output import to_json

        from .serve_app import SEARCH_HITS

        with self.lock:
            snap = self._open(path)
            rows = snap.sql(
                "SELECT id, kind, status FROM ("
                " SELECT task_id AS id, 'task' AS kind, status FROM tasks"
                "  WHERE starts_with(lower(task_id), lower($q))"
                " UNION ALL SELECT result_id, 'result', status FROM results"
                "  WHERE starts_with(lower(result_id), lower($q))"
                " UNION ALL SELECT session_id, 'session', status FROM sessions"
                "  WHERE starts_with(lower(session_id), lower($q))"
                ") ORDER BY id, kind LIMIT $n", {"q": prefix, "n": SEARCH_HITS + 1}).to_pylist()
        return to_json({"q": prefix, "hits": rows[:SEARCH_HITS], "more": len(rows) > SEARCH_HITS})

    def close(self) -> None:
        with self.lock:
            if self.snap is not None:
                self.snap.close()
                self.snap = None


# -- the sources ---------------------------------------------------------------------------------

class BundleSource:
    """A bundle: its report, built once; the drill-downs over it."""

    mode = "bundle"
    broadcaster = None

    def __init__(self, path, verify: bool = True, session_id=None, result_id=None):
        from aksnap.analyzer import report
        from aksnap.analyzer.snapshot import Snapshot

        snap = Snapshot.open(path, verify=verify)
        self.data = report.build(snap, session_id, result_id)
        self.drill = Drill(snap=snap)
        self.label = str(path)

    def page(self, nonce: str) -> str:
        return render_page(self.data, nonce, {"mode": self.mode})

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.drill.close()


class AtState:
    """A :class:`Drill`'s questions asked of one bundle of a series."""

    def __init__(self, drill: Drill, path):
        self.drill, self.path = drill, path

    def lineage(self, result_id: str) -> str:
        return self.drill.lineage(result_id, path=self.path)

    def task(self, task_id: str) -> str:
        return self.drill.task(task_id, path=self.path)

    def search(self, prefix: str) -> str:
        return self.drill.search(prefix, path=self.path)


class SeriesSource(BundleSource):
    """A series recorded by ``aksnap watch --record``: the report of its latest bundle with the
    recorded states (``report.replay``), which the page's slider walks through."""

    mode = "series"

    def __init__(self, series_dir, verify: bool = True, session_id=None, result_id=None):
        from aksnap.analyzer import report, series
        from aksnap.analyzer.snapshot import Snapshot

        members = series.series_members(series_dir)
        snap = Snapshot.open(members[-1], verify=verify)
        if session_id is not None:
            session_id = snap.resolve_id("session", session_id)
        self.data = report.build(snap, session_id, result_id)
        self.data["replay"] = report.replay(series_dir, session_id)
        self.data["meta"]["series"] = self.data["replay"]["series"]
        self.drill = Drill(snap=snap)
        self.label = str(series_dir)
        self.verify = verify
        self.members = {m.name: m for m in members}
        self.latest = members[-1].name
        self.at_drill: Optional[Drill] = None

    def drill_for(self, at: Optional[str]):
        """The drill-downs at the recorded state whose bundle is named ``at`` (the slider's):
        the latest's, or one more bundle kept open (the last asked for; the bundle is chosen
        under the drill's lock, so two pages on two states never get each other's answer)."""
        if at is None or at == self.latest:
            return self.drill
        if at not in self.members:
            raise ServeError(f"no bundle {at!r} in {self.label}: pruned by --keep, or never "
                             "recorded")
        if self.at_drill is None:
            self.at_drill = Drill(self.members[at], verify=self.verify)
        return AtState(self.at_drill, self.members[at])

    def stop(self) -> None:
        super().stop()
        if self.at_drill is not None:
            self.at_drill.close()


class LiveSource:
    """A session (or one result) of a control plane, followed by the watch engine in a
    thread; each state it shows is published to the pages, and the drill-downs read the
    bundle of the last reconcile."""

    mode = "endpoint"

    def __init__(self, conn, session_id: Optional[str], result_id: Optional[str],
                 interval: float, retry=None, jobs: int = 2, max_s: Optional[float] = None,
                 max_rps: Optional[float] = None):
        from .serve_app import Broadcaster

        self.conn, self.interval, self.retry, self.jobs, self.max_s = conn, interval, retry, jobs, max_s
        self.max_rps = max_rps  # the watch's load budget (None: the default, as watch's)
        self.session_id, self.result_id = session_id, result_id
        self.broadcaster = Broadcaster()
        self.drill: Optional[Drill] = None
        self.stop_event = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.reconciles = 0
        self.reconciled_at: Optional[float] = None
        self.last: dict[str, Any] = {}
        self.ended: Optional[dict[str, Any]] = None
        self.label = f"{conn.endpoint}"

    def resolve(self) -> None:
        """The ids made whole (a prefix) and checked at the control plane, before the server
        starts: an unknown or ambiguous one is one sentence, exit 2, as ``aksnap watch``."""
        from aksnap.exporter.client import RawClient
        from aksnap.exporter.follow import result_session
        from aksnap.exporter.listing import resolve_result_prefix, resolve_session_prefix

        from .watch import WatchError

        if (self.session_id is None) == (self.result_id is None):
            raise WatchError("serve one thing of --endpoint: --session ID or --result ID")
        if self.interval <= 0:
            raise WatchError(f"--interval must be > 0 seconds (got {self.interval})")
        with RawClient(self.conn, retry=self.retry) as client:
            if self.result_id is not None:
                self.result_id = resolve_result_prefix(client, self.result_id)
                self.session_id = result_session(client, self.result_id)
            else:
                self.session_id = resolve_session_prefix(client, self.session_id)
                # an unknown one comes back as given: said now, not after the server started
                # (the watch would find it at its first reconcile)
                from aksnap.exporter.decode import decode_page
                from aksnap.exporter.requests import list_request, session_prefix_filters

                page = decode_page("sessions", client.call("sessions", list_request(
                    "sessions", session_prefix_filters(self.session_id), 0, 1)))
                if not page.total:
                    raise WatchError(f"unknown session id {self.session_id} at "
                                     f"{self.conn.endpoint}; `aksnap sessions --endpoint "
                                     f"{self.conn.endpoint}` lists them")

    def page(self, nonce: str) -> str:
        from aksnap import __version__

        what = (f"result {self.result_id} in session {self.session_id}" if self.result_id
                else f"session {self.session_id}")
        data = {"meta": {"bundle": f"live: {what} at {self.label}", "snapshot_time": None,
                         "format_version": "", "generator": f"aksnap {__version__}",
                         "redacted": None, "sessions_total": 1, "tasks": 0, "results": 0},
                "notes": [f"live: the state of the watch engine (a reconcile every "
                          f"{self.interval:g} s, events between), pushed to this page as it "
                          "changes"],
                "sessions": [], "index": None, "utilisation": None, "verdict": None,
                "anchors": {"verdict": "verdict"}}
        return render_page(data, nonce, {"mode": self.mode, "session_id": self.session_id,
                                          "result_id": self.result_id, "endpoint": self.label,
                                          "interval": self.interval})

    def _reconciled(self, path: str) -> None:
        if self.drill is None:
            self.drill = Drill(path, verify=False)
        else:
            self.drill.point_at(path)

    def _update(self, st: dict[str, Any]) -> None:
        from .serve_app import state_text

        now = time.time()
        if st.get("reconciles", 0) != self.reconciles:
            self.reconciles = st["reconciles"]
            self.reconciled_at = now
        st = {**st, "reconciled_at": self.reconciled_at, "published_at": now,
              "interval": self.interval, "ended": self.ended}
        self.last = st
        self.broadcaster.publish(state_text(st))

    def _run(self) -> None:
        from .watch import watch

        try:
            # one of the two, as the command line takes them (watch finds a result's session)
            res = watch(self.conn, result_id=self.result_id,
                        session_id=None if self.result_id else self.session_id,
                        interval=self.interval, retry=self.retry, jobs=self.jobs,
                        max_rps=self.max_rps, on_update=self._update, stop=self.stop_event,
                        on_reconcile=self._reconciled, max_s=self.max_s)
            what = f"result {self.result_id}" if self.result_id else f"session {self.session_id}"
            verdict = {0: "completed", 1: "failed"}.get(res.code)
            self.ended = {"code": res.code, "sentence": (
                f"{what} {verdict}: the watch ended; this is its last state" if verdict
                else "the watch stopped")}
            self._update(res.state)
        except AksnapError as e:
            self.ended = {"code": 2, "sentence": f"the watch stopped: {e}"}
            self._update(self.last or {})
            print(f"aksnap: error: the watch stopped: {e}", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - said on the page and stderr, the server stays
            self.ended = {"code": 2, "sentence": f"the watch stopped: {e!r}"}
            self._update(self.last or {})
            print(f"aksnap: error: the watch stopped: {e!r}", file=sys.stderr, flush=True)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="aksnap-serve-watch", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=60)
        if self.drill is not None:
            self.drill.close()


def render_page(data: dict[str, Any], nonce: str, serve: dict[str, Any]) -> str:
    """The report's page for a server: the report's own, plus ``connect-src 'self'`` and this
    server's script (``serve_assets/serve.js``) and style; ``serve`` tells the script what it
    serves (a bundle, a series, a live session)."""
    from aksnap.analyzer import report

    return report.render({**data, "serve": serve}, nonce=nonce, connect_self=True,
                         extra_script=_asset("serve.js"), extra_style=_asset("serve.css"))


# -- running it ----------------------------------------------------------------------------------

def listen(host: str, port: int) -> "socket.socket":
    """The listening socket, bound before anything else starts: a port in use or an address
    not of this machine is one sentence."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ServeError(f"--host {host!r} is not an address of this machine ({e.strerror}); "
                         "give an IP address such as 127.0.0.1") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise ServeError(f"cannot listen on {host} port {port}: {e.strerror}; choose another "
                         "--port (0: any free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


class Served:
    """A server running (:func:`serve` with ``background=True``): its ``url`` (with the token
    when there is one), ``token``, and ``stop()``."""

    def __init__(self, server, thread, url: str, token: Optional[str], source):
        self.server, self.thread, self.url, self.token, self.source = server, thread, url, token, source

    def stop(self) -> None:
        self.server.should_exit = True
        if self.source.broadcaster is not None:
            self.source.broadcaster.close()
        self.thread.join(timeout=30)


def serve(source, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: Optional[str] = None,
          background: bool = False, on_ready: Optional[Callable[[str], None]] = None,
          open_browser: bool = False, sock: Optional["socket.socket"] = None):
    """Serve ``source`` (a :class:`BundleSource`, :class:`SeriesSource` or
    :class:`LiveSource`) until Ctrl-C or SIGTERM (or, ``background``, in a thread: returns a
    :class:`Served`). Any ``host`` but loopback needs a ``token`` (made and returned when
    None). ``on_ready(url)`` once it listens. ``sock``: the socket bound already (by
    :func:`listen`: the command binds before it reads the bundle)."""
    import secrets

    import uvicorn

    from .serve_app import make_app

    loopback = host in LOOPBACK
    if not loopback and token is None:
        token = secrets.token_urlsafe(24)
    sock = sock or listen(host, port)
    port = sock.getsockname()[1]
    url = _url(host, port) + (f"?token={token}" if token else "")
    names = {host, "127.0.0.1", "localhost", "[::1]"} if loopback else None
    hosts = {f"{h}:{port}" for h in names} if names is not None else None
    ready = threading.Event()
    app = make_app(source, token=token, hosts=hosts, on_started=ready.set)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=2, ws="none")
    server = _Server(config, source)

    def said_ready() -> None:
        if on_ready is not None:
            on_ready(url)
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    if background:
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                  name="aksnap-serve", daemon=True)
        thread.start()
        deadline = time.time() + 60
        while not server.started and thread.is_alive() and time.time() < deadline:
            time.sleep(0.01)
        if not server.started:
            server.should_exit = True
            raise ServeError("the server did not start")
        said_ready()
        return Served(server, thread, url, token, source)
    watcher = threading.Thread(target=lambda: ready.wait() and said_ready(), daemon=True)
    watcher.start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return None


class _Server:
    """uvicorn's server, stopping on Ctrl-C and SIGTERM without raising the signal again
    afterwards (uvicorn does, which would end the process before the watch and the bundles
    are closed): the streams end, the watch thread stops, then the command returns."""

    def __new__(cls, config, source):
        import contextlib
        import signal

        import uvicorn

        class Server(uvicorn.Server):
            signalled: list[int] = []

            @contextlib.contextmanager
            def capture_signals(self):
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return

                def stop(sig, frame):
                    self.signalled.append(sig)
                    if self.should_exit:
                        self.force_exit = True
                    self.should_exit = True
                    if source.broadcaster is not None:
                        source.broadcaster.close()

                old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
                try:
                    yield
                finally:
                    for s, h in old.items():
                        signal.signal(s, h)

        return Server(config)


# -- the command -----------------------------------------------------------------------------------

SERVE_HELP = """Serve the report's page in a browser, live for a running session: a bundle (its
    report), a series recorded by `aksnap watch --record` (the report, with a slider over the
    recorded states), or --endpoint with --session or --result (the watch engine reconciles in
    the background and the page updates in place: findings first, progress, blocking
    frontier, lineage of the result, how fresh the data is and whether the cluster answers).

    Click a node or type an id (a prefix is enough) to drill down: the page asks the server,
    which runs `aksnap lineage` and `aksnap task` on the same bundle. Read-only (GET only).
    Listens on 127.0.0.1 unless --host; any other address needs the token printed once on
    stderr (the page sends it). Ctrl-C or SIGTERM stops it.

    Example: aksnap serve ./run.aksnap --open
    """


def _serve_params() -> tuple:
    from aksnap.exporter.commands import CONNECTION

    return (
        Param("source", Optional[Path], typer.Argument(
            None, help="Bundle directory or packed file, or a directory recorded by `aksnap "
            "watch --record` (or none, with --endpoint).", show_default=False,
            metavar="[BUNDLE|SERIES_DIR]", callback=paths.bundle_in)),
        Param("session", Optional[str], typer.Option(
            None, "--session", "-s", help="With BUNDLE: only this session; with --endpoint: the "
            "session to follow (a unique prefix is enough).", show_default=False)),
        Param("result", Optional[str], typer.Option(
            None, "--result", "-r", help="With BUNDLE: this result's lineage first; with "
            "--endpoint: the result to follow (its lineage).", show_default=False)),
        Param("port", int, typer.Option(DEFAULT_PORT, "--port", help="TCP port to listen "
                                        "on (0: any free one; the address is printed).",
                                        min=0, max=65535)),
        Param("host", str, typer.Option(DEFAULT_HOST, "--host", help="Address to listen on; any "
                                        "but 127.0.0.1, ::1 or localhost requires the token "
                                        "printed on stderr.")),
        Param("open_browser", bool, typer.Option(False, "--open", help="Open the page in the "
                                                 "default browser.")),
        Param("interval", float, typer.Option(5.0, "--interval", help="With --endpoint: "
                                              "seconds between reconciles.")),
        NO_VERIFY,
        *CONNECTION,
    )


def serve_body(values: dict[str, Any]) -> None:
    """The body of ``aksnap serve``."""
    from aksnap.output import safe_text

    source_path, session, result, port, host, open_browser, interval, no_verify = (
        values.pop(k) for k in ("source", "session", "result", "port", "host", "open_browser",
                                "interval", "no_verify"))
    given_endpoint = any(values.get(k) is not None for k in
                         ("endpoint", "config", "certificate_authority"))
    if source_path is not None and given_endpoint:
        raise ServeError("serve a bundle, a series or --endpoint, not both")
    if source_path is None and not (given_endpoint or os.environ.get("AK_ENDPOINT")
                                    or os.environ.get("AKCONFIG")):
        raise ServeError("give a BUNDLE, a SERIES_DIR, or --endpoint HOST:PORT with --session "
                         "ID or --result ID")
    if not host.strip():
        raise ServeError("--host is empty; give an address such as 127.0.0.1")
    # bound first: a port in use is said before a big bundle is read
    sock = listen(host, port)
    if source_path is not None:
        from aksnap.analyzer.series import series_members

        if source_path.is_dir() and series_members(source_path) is not None:
            source = SeriesSource(source_path, verify=not no_verify, session_id=session,
                                  result_id=result)
        else:
            source = BundleSource(source_path, verify=not no_verify, session_id=session,
                                  result_id=result)
    else:
        from aksnap.exporter.commands import notices_on_stderr, take_connection

        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        options, retry, budget = take_connection(values)
        conn = options.resolve()
        source = LiveSource(conn, session, result, interval, retry=retry, jobs=budget.jobs,
                            max_rps=budget.max_rps)
        with notices_on_stderr():
            source.resolve()
    loopback = host in LOOPBACK

    def ready(url: str) -> None:
        what = {"bundle": "the report of", "series": "the recorded series",
                "endpoint": "the live state of"}[source.mode]
        typer.echo(f"aksnap: serving {what} {safe_text(source.label)} at {url} (Ctrl-C to stop)",
                   err=True)
        if not loopback:
            typer.echo("aksnap: the token is in that address and printed only this once: the "
                       "page sends it with each request; without it the server answers 401",
                       err=True)

    serve(source, host=host, port=port, on_ready=ready, open_browser=open_browser, sock=sock)
    typer.echo("aksnap: serve stopped", err=True)
    raise typer.Exit(0)


def register(app: typer.Typer) -> None:
    app.command("serve")(typer_function("serve", SERVE_HELP, _serve_params(), serve_body))
