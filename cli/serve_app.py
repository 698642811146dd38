"""The web application of ``aksnap serve``: Starlette routes, a guard in front of them, and the
broadcaster that pushes the live state to the pages (Server-Sent Events).

What a page may ask (``GET`` only; anything else is 405 before any route runs):

- ``/``: the report's page (``aksnap.analyzer.report.render``: the same CSS, script and
  Content-Security-Policy as the offline file, plus ``connect-src 'self'`` and this server's
  script), with a fresh nonce per response;
- ``/api/lineage?id=``, ``/api/task?id=``: exactly what ``aksnap lineage -o json`` and
  ``aksnap task -o json`` print (the registry's commands on the same bundle), an id prefix
  accepted; ``/api/search?q=``: the ids of the bundle beginning with ``q`` (at most
  :data:`SEARCH_HITS`);
- ``/api/state`` and ``/api/events`` (a live source): the watch's latest state, once or as a
  stream.

The guard: a request whose ``Host`` is not the address served is refused (a page of another
site reaching 127.0.0.1 through DNS rebinding gets nothing), and with a token (any address but
loopback) a request without it is 401. Bounded: one text per live state shared by every
client (no queue per client: a slow or gone browser costs nothing), at most
:data:`MAX_CLIENTS` streams, each answer at most :data:`MAX_ANSWER_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from typing import Any, Optional
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

#: live streams served at once (one per open page); more are 503 (a closed page frees its own)
MAX_CLIENTS = 16
#: a comment line on an idle stream this often: a browser gone away is noticed by it
HEARTBEAT_S = 10.0
#: the longest id or prefix a drill-down accepts
MAX_ID_CHARS = 512
#: ids a search returns (the first, in id order)
SEARCH_HITS = 30
#: the largest answer of a drill-down (the CLI's limits keep them far below: 50 frontier nodes,
#: 50 inputs listed)
MAX_ANSWER_BYTES = 4 << 20
#: headers of every response
SAFE_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                (b"cache-control", b"no-store"), (b"x-frame-options", b"DENY"),
                (b"cross-origin-resource-policy", b"same-origin")]


class Broadcaster:
    """The latest live state as one JSON text, and a version that grows with each new one.

    ``publish`` may be called from any thread (the watch's); each stream sends the newest text
    when the version moved, so however slow or many the browsers, memory holds one state."""

    def __init__(self) -> None:
        self.text: Optional[str] = None
        self.version = 0
        self.closed = False
        self.clients = 0
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._changed: Optional[asyncio.Event] = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._changed = asyncio.Event()

    def publish(self, text: str) -> None:
        if self.loop is None:
            self.text, self.version = text, self.version + 1
            return
        try:
            self.loop.call_soon_threadsafe(self._set, text)
        except RuntimeError:  # the loop is closed: the server is stopping
            pass

    def close(self) -> None:
        """Every stream ends (the server stops)."""
        self.closed = True
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self._wake)
            except RuntimeError:
                pass

    def _set(self, text: str) -> None:
        self.text, self.version = text, self.version + 1
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            ev, self._changed = self._changed, asyncio.Event()
            ev.set()

    async def wait(self, seen: int, timeout: float) -> bool:
        """Until the version moves past ``seen`` (True) or ``timeout`` passes (False)."""
        if self.version != seen or self.closed:
            return True
        ev = self._changed
        try:
            await asyncio.wait_for(ev.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


def json_response(text: str, status: int = 200) -> Response:
    """JSON text as an answer, with ``<``, ``>`` and ``&`` written as ``\\u`` escapes (inside
    JSON they occur only in strings, so it decodes the same): even read as HTML, by a browser
    ignoring ``nosniff``, no id or message in it is markup."""
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Response(text, status_code=status, media_type="application/json")


def _json_error(status: int, sentence: str) -> Response:
    return json_response(json.dumps({"error": sentence}, ensure_ascii=True), status)


class Guard:
    """ASGI middleware in front of every route: GET/HEAD only (405), the Host header (403),
    the token (401), and the safety headers on every answer."""

    def __init__(self, app, token: Optional[str], hosts: Optional[set[str]]):
        self.app, self.token, self.hosts = app, token, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":  # no WebSocket: nothing here listens on one
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        refusal = self.refuse(scope)

        async def send_safe(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + SAFE_HEADERS}
            await send(message)

        if refusal is not None:
            return await refusal(scope, receive, send_safe)
        await self.app(scope, receive, send_safe)

    def refuse(self, scope) -> Optional[Response]:
        if scope["method"] not in ("GET", "HEAD"):
            r = _json_error(405, f"aksnap serve is read-only: {scope['method'][:16]!r} is "
                            "refused, only GET")
            r.headers["allow"] = "GET, HEAD"
            return r
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if self.hosts is not None and host not in self.hosts:
            return _json_error(403, "this server answers only requests addressed to it "
                               f"({', '.join(sorted(self.hosts))})")
        if self.token is not None:
            given = headers.get(b"x-aksnap-token", b"").decode("latin-1")
            if not given:
                q = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                given = (q.get("token") or [""])[0]
            if not secrets.compare_digest(given.encode("utf-8", "replace"),
                                          self.token.encode()):
                return _json_error(401, "this server needs its token: open the address "
                                   "aksnap serve printed (with ?token=...)")
        return None


def _one_id(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if not value.strip():
        raise ValueError(f"give the id (or its beginning) as ?{name}=")
    if len(value) > MAX_ID_CHARS:
        raise ValueError(f"an id of {len(value)} characters is longer than any ArmoniK id "
                         f"(at most {MAX_ID_CHARS} here)")
    return value


def make_app(source, token: Optional[str] = None, hosts: Optional[set[str]] = None,
             on_started=None):
    """The application serving ``source`` (:mod:`aksnap.cli.serve`: its ``page()``, ``drill``
    and ``broadcaster``); ``token``: required on every request when set; ``hosts``: the
    ``Host`` headers accepted (None: any)."""
    from aksnap.errors import AksnapError

    async def page(request: Request) -> Response:
        nonce = secrets.token_urlsafe(18)
        text = await run_in_threadpool(source.page, nonce)
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
               "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'")
        return HTMLResponse(text, headers={"content-security-policy": csp})

    def drill(kind: str, param: str):
        async def answer(request: Request) -> Response:
            if source.drill is None:
                return _json_error(404, "no bundle yet: the first reconcile has not ended")
            try:
                value = _one_id(request, param)
                at = request.query_params.get("at")  # a recorded state (a series' slider)
                target = source.drill_for(at) if at and hasattr(source, "drill_for") else source.drill
                text = await run_in_threadpool(getattr(target, kind), value)
            except ValueError as e:
                return _json_error(400, str(e))
            except AksnapError as e:
                return _json_error(404, str(e))
            if len(text) > MAX_ANSWER_BYTES:
                return _json_error(413, f"the answer is {len(text):,} bytes, more than a page "
                                   f"takes; aksnap {kind} BUNDLE ID -o json gives it whole")
            return json_response(text)
        return answer

    async def state(request: Request) -> Response:
        b = source.broadcaster
        if b is None or b.text is None:
            return _json_error(404, "no live state: this server shows a bundle" if b is None
                               else "no state yet")
        return json_response(b.text)

    async def events(request: Request) -> Response:
        b = source.broadcaster
        if b is None:
            return _json_error(404, "no live state: this server shows a bundle")
        if b.clients >= MAX_CLIENTS:
            return _json_error(503, f"{MAX_CLIENTS} pages follow this server already; close one")

        async def stream():
            b.clients += 1  # counted while it runs: a page closed before it began costs nothing
            try:
                seen = -1
                yield "retry: 2000\n\n"
                while not b.closed:
                    if b.version != seen and b.text is not None:
                        seen = b.version
                        yield f"id: {seen}\nevent: state\ndata: {b.text}\n\n"
                    elif not await b.wait(seen, HEARTBEAT_S):
                        yield ": alive\n\n"
            finally:
                b.clients -= 1

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if source.broadcaster is not None:
            source.broadcaster.bind(asyncio.get_running_loop())
        source.start()
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            if source.broadcaster is not None:
                source.broadcaster.close()
            await run_in_threadpool(source.stop)

    routes = [Route("/", page), Route("/favicon.ico", no_icon),
              Route("/api/lineage", drill("lineage", "id")),
              Route("/api/task", drill("task", "id")),
              Route("/api/search", drill("search", "q")),
              Route("/api/state", state), Route("/api/events", events)]
    app = Starlette(routes=routes, lifespan=lifespan)
    return Guard(app, token, hosts)


#: what a state's JSON may not hold raw (it travels inside an SSE data line)
_LINE_BREAK = re.compile(r"[\r\n]")


def state_text(state: dict[str, Any]) -> str:
    """A state as one line of JSON (ASCII: a newline in a message is ``\\n``, so it cannot end
    the event's data line)."""
    from aksnap.output import jsonable

    text = json.dumps(jsonable(state), ensure_ascii=True, separators=(",", ":"), default=str)
    assert not _LINE_BREAK.search(text)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
