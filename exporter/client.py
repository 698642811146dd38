"""The gRPC side of the exporter: connection settings, a channel, raw calls with retries.

Responses are never deserialized into Python messages here: each call returns the response's
raw bytes (identity response deserializer) and :mod:`aksnap.exporter.decode` turns them into
Arrow with ptars.

Connection settings follow armonik-cli: ``--endpoint`` / ``AK_ENDPOINT``,
``--certificate-authority``, ``--client-certificate``, ``--client-key`` (and their
``AK_*`` variables), a YAML file named by ``-c/--config`` or ``AKCONFIG`` with the keys
``endpoint``, ``certificate_authority``, ``client_certificate``, ``client_key`` (armonik-cli's
own names), and armonik-cli's default config file. Precedence: option > environment >
``-c``/``AKCONFIG`` file > the default file (read only when no endpoint is given otherwise).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import grpc

from aksnap.errors import AksnapError
from aksnap.exporter.budget import Budget, Cost, Throttle

#: Where the exporter says what the user should know while it runs (a retry): the CLI prints
#: these on stderr; a Python caller sees them through :mod:`logging`.
log = logging.getLogger("aksnap.exporter")

# The receive limit the armonik client (and grpc) use by default: a channel's, when its caller
# gives none (watch, listing, serve: small replies).
DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024
# The receive limit an export's pages are sized to (pages of about 8 MiB, up to 65,536 rows),
# capped or not. Capped (``--max-rps N``), the export is bounded by calls per second, not by
# bytes, so each call should bring more: four times fewer calls for the same rows than with
# the armonik client's 4 MiB; per call the server pays a fixed cost (a query, a thread
# hand-off, caches gone cold since the last call) that spaced calls pay in full. Uncapped, the
# exporter pays a cost per page too: about 10 % less CPU (htcmock 1M: 8.4-8.9 -> 7.6-7.7 s per
# million tasks, 804 -> 249 calls), for about 100 MiB more at the peak (docs/exporter.md).
# ArmoniK Core sets no send limit of its own (ASP.NET's gRPC default is unlimited); a server
# that has one says so in its refusal, and pages are sized to it.
PAGE_MAX_RECEIVE = 16 * 1024 * 1024
# How far the client raises its own receive limit when a single row does not fit it.
MAX_RECEIVE_CEILING = 256 * 1024 * 1024

METHODS = {
    "tasks": "/armonik.api.grpc.v1.tasks.Tasks/ListTasksDetailed",
    "results": "/armonik.api.grpc.v1.results.Results/ListResults",
    "sessions": "/armonik.api.grpc.v1.sessions.Sessions/ListSessions",
    "partitions": "/armonik.api.grpc.v1.partitions.Partitions/ListPartitions",
    "count_tasks": "/armonik.api.grpc.v1.tasks.Tasks/CountTasksByStatus",
    "versions": "/armonik.api.grpc.v1.versions.Versions/ListVersions",
}


class ExportError(AksnapError):
    """The export cannot go on; the message is one sentence a user can act on."""

    exit_code = 1


class SelectionError(ExportError):
    """The selection names something the cluster does not have (exit code 2)."""

    exit_code = 2


class ConnectionSettingsError(ExportError):
    """The connection settings are unusable (missing endpoint, unreadable certificate)."""

    exit_code = 2


@dataclass(frozen=True)
class TlsFiles:
    """TLS settings as PEM bytes (never written into a bundle)."""

    certificate_authority: bytes | None = None
    client_certificate: bytes | None = None
    client_key: bytes | None = None

    @property
    def mutual(self) -> bool:
        return self.client_certificate is not None


@dataclass(frozen=True)
class Connection:
    endpoint: str           # host:port: no scheme, no user name or password
    tls: TlsFiles | None    # None: plaintext

    def __post_init__(self) -> None:
        # The endpoint is shown in every error, the progress and the manifest: it must never
        # carry credentials, however the Connection was built.
        if "@" in self.endpoint:
            raise ConnectionSettingsError(_credentials_refused(self.endpoint))

    def describe(self) -> dict[str, Any]:
        """What the manifest may say about the connection: no certificate, key, path or password."""
        return {"endpoint": self.endpoint, "tls": self.tls is not None,
                "mutual_tls": bool(self.tls and self.tls.mutual)}


def _shown(endpoint: str) -> str:
    """The endpoint as it may be printed: user name, password, query and fragment removed.

    Everything up to the last ``@`` goes, whatever a password holds (``/``, ``?``, ``@``)."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        scheme, rest = "", endpoint
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}{sep}{rest}" or "(empty)"


def _credentials_refused(endpoint: str) -> str:
    return (f"the endpoint {_shown(endpoint)} carries a user name or password, which aksnap "
            "never sends (ArmoniK authenticates clients with certificates); remove the "
            "'USER:PASSWORD@' part, and pass --client-certificate and --client-key if the "
            "cluster needs them")


def _read_pem(path: str | os.PathLike, what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as e:
        raise ConnectionSettingsError(
            f"cannot read the {what} {path}: {e.strerror or e}; check the path") from None


#: The connection keys of a config file, as armonik-cli names them (its other keys, such as
#: ``output``, ``debug`` or ``table_columns``, are ignored here).
CONFIG_KEYS = ("endpoint", "certificate_authority", "client_certificate", "client_key")


def armonik_cli_config_path() -> Path:
    """armonik-cli's default config file (``~/.config/armonik_cli/config.yml`` on Linux)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("armonik_cli")) / "config.yml"


def _load_config(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """A YAML connection file as a mapping; every problem is a sentence naming ``what``."""
    try:
        import yaml

        data = yaml.safe_load(Path(path).expanduser().read_text()) or {}
    except OSError as e:
        raise ConnectionSettingsError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except Exception as e:  # yaml.YAMLError and friends
        # Only the problem and its position: the YAML error's snippet would quote the line,
        # which may hold an endpoint with a password.
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConnectionSettingsError(
            f"{what} {path} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConnectionSettingsError(f"{what} {path} must be a YAML mapping "
                                      "(endpoint: HOST:PORT, certificate_authority: PATH, ...)")
    return data


def _named_config(config: str | os.PathLike | None) -> dict[str, Any]:
    """The file named by ``-c/--config``, else by ``AKCONFIG``; {} when neither is set."""
    if config:
        return _load_config(config, "the config file (-c/--config)")
    path = os.environ.get("AKCONFIG")
    return _load_config(path, "the AKCONFIG file") if path else {}


def _default_config() -> dict[str, Any]:
    """armonik-cli's own config file, when it exists; {} otherwise."""
    path = armonik_cli_config_path()
    if not path.is_file():
        return {}
    return _load_config(path, "armonik-cli's config file")


@dataclass(frozen=True)
class ConnectionOptions:
    """The connection options as a command received them (None: not given). Every command
    that connects hands them to :func:`resolve_connection`, the one place they are merged and
    checked, so a mistake gets the same sentence from ``export``, ``export --update`` and
    ``watch``; the API functions accept them as their ``endpoint``."""

    endpoint: str | None = None
    certificate_authority: str | os.PathLike | None = None
    client_certificate: str | os.PathLike | None = None
    client_key: str | os.PathLike | None = None
    config: str | os.PathLike | None = None

    def resolve(self, recorded: dict[str, Any] | None = None,
                bundle: str | os.PathLike | None = None,
                tls: TlsFiles | None = None) -> Connection:
        return resolve_connection(self.endpoint, self.certificate_authority,
                                  self.client_certificate, self.client_key, config=self.config,
                                  recorded=recorded, bundle=bundle, tls=tls)


def resolve_connection(endpoint: str | None = None,
                       certificate_authority: str | os.PathLike | None = None,
                       client_certificate: str | os.PathLike | None = None,
                       client_key: str | os.PathLike | None = None,
                       config: str | os.PathLike | None = None, *,
                       recorded: dict[str, Any] | None = None,
                       bundle: str | os.PathLike | None = None,
                       tls: TlsFiles | None = None) -> Connection:
    """The one connection resolver of every command that connects.

    Merges the settings like armonik-cli: option > ``AK_*`` environment variable > the YAML
    file named by ``config`` (``-c/--config``) or ``AKCONFIG`` > armonik-cli's default config
    file, which is read only when none of the others gives an endpoint (so that its
    certificates never go to another cluster's endpoint), then checks them (both halves of a
    client certificate, readable files, no password in the endpoint).

    ``recorded`` is the ``source`` record of a bundle's manifest (``export --update``,
    ``bundle`` names it in sentences): the endpoint is ``endpoint`` if given, else the one the
    bundle came from, never ``AK_ENDPOINT`` or a config file's (they may name another
    cluster), and certificates never come from armonik-cli's default file; a bundle exported
    over TLS needs certificates. ``tls`` (Python callers: PEM bytes) replaces the TLS
    settings of the files."""
    options = dict(zip(CONFIG_KEYS, (endpoint, certificate_authority, client_certificate,
                                     client_key)))
    options = {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in options.items()}
    env = {k: os.environ.get(f"AK_{k.upper()}") for k in CONFIG_KEYS}
    named = _named_config(config)
    if recorded is not None:
        from_bundle = recorded.get("endpoint") if not endpoint else None
        if not endpoint and not from_bundle:
            raise SelectionError(f"{bundle} does not record the endpoint it was exported from; "
                                 "pass --endpoint HOST:PORT")
        layers = [{**options, "endpoint": endpoint or from_bundle},
                  {**env, "endpoint": None}, {**named, "endpoint": None}]
    else:
        from_bundle = None
        layers = [options, env, named]
        if not any(layer.get("endpoint") for layer in layers):
            layers.append(_default_config())

    def pick(key: str):
        return next((layer[key] for layer in layers if layer.get(key)), None)

    endpoint, ca, cert, key = (pick(k) for k in CONFIG_KEYS)
    if not endpoint:
        raise ConnectionSettingsError(
            "no endpoint given; pass --endpoint HOST:PORT, set AK_ENDPOINT, name a config "
            f"file with -c/--config or AKCONFIG, or set endpoint in {armonik_cli_config_path()}")
    conn = _connection(str(endpoint), ca, cert, key)  # str: a YAML file may hold a number
    if tls is not None:
        conn = Connection(conn.endpoint, tls)
    if from_bundle and recorded.get("tls") and conn.tls is None:
        raise SelectionError(f"{bundle} was exported over TLS from {from_bundle}; pass "
                             "--certificate-authority (and --client-certificate/--client-key "
                             "for mutual TLS) to update it")
    return conn


def connection_of(endpoint: "str | Connection | ConnectionOptions | None",
                  tls: TlsFiles | None = None, *, recorded: dict[str, Any] | None = None,
                  bundle: str | os.PathLike | None = None) -> Connection:
    """What an API function was given as its ``endpoint``, as a :class:`Connection`: one
    already resolved as is, anything else (a ``HOST:PORT``, :class:`ConnectionOptions`, None
    for the environment and config files) through :func:`resolve_connection`. ``tls``
    replaces the TLS settings."""
    if isinstance(endpoint, Connection):
        return Connection(endpoint.endpoint, tls) if tls is not None else endpoint
    options = endpoint if isinstance(endpoint, ConnectionOptions) else ConnectionOptions(endpoint)
    return options.resolve(recorded, bundle, tls)


def _connection(endpoint: str, ca, cert, key) -> Connection:
    if "@" in endpoint:
        # Refused rather than dropped: a user who wrote a password expects it to be used.
        raise ConnectionSettingsError(_credentials_refused(endpoint))
    parsed = urlparse(endpoint if "://" in endpoint else f"//{endpoint}")
    hostport = parsed.netloc or parsed.path
    if not hostport:
        raise ConnectionSettingsError(f"the endpoint {_shown(endpoint)!r} has no host; "
                                      "use HOST:PORT")
    if (cert is None) != (key is None):
        raise ConnectionSettingsError(
            "mutual TLS needs both --client-certificate and --client-key; one of them is missing")
    want_tls = parsed.scheme == "https" or ca is not None or cert is not None
    tls = None
    if want_tls:
        tls = TlsFiles(
            certificate_authority=_read_pem(ca, "certificate authority") if ca else None,
            client_certificate=_read_pem(cert, "client certificate") if cert else None,
            client_key=_read_pem(key, "client key") if key else None,
        )
    return Connection(hostport, tls)


def open_channel(conn: Connection, max_receive: int = DEFAULT_MAX_RECEIVE) -> grpc.Channel:
    options = [("grpc.max_receive_message_length", max_receive),
               ("grpc.enable_retries", 0)]  # our own retry loop owns the budget
    if conn.tls is None:
        return grpc.insecure_channel(conn.endpoint, options=options)
    creds = grpc.ssl_channel_credentials(
        root_certificates=conn.tls.certificate_authority,
        private_key=conn.tls.client_key,
        certificate_chain=conn.tls.client_certificate,
    )
    return grpc.secure_channel(conn.endpoint, creds, options=options)


@dataclass
class RetryPolicy:
    """Exponential backoff for UNAVAILABLE and DEADLINE_EXCEEDED.

    By default (``retry_for`` None) within a bounded budget: ``attempts`` per call and
    ``budget_s`` of waiting for the whole export; a connection refused (or a host name that
    does not resolve) before any call succeeded is not retried at all: nothing is there, and
    saying so at once beats 30 silent seconds. With ``retry_for`` (``--retry-for SECONDS``)
    every outage, the first connection included, is retried until the control plane has been
    unreachable for that many seconds in a row; ``attempts`` and ``budget_s`` no longer
    apply (an export that makes progress between outages goes on)."""

    # per call: 14 attempts wait about 20-40 s in all, long enough for a control-plane pod
    # restart (bench/faults.py restarts the server mid-export)
    attempts: int = 14
    initial_s: float = 0.1
    max_s: float = 5.0
    budget_s: float = 120.0      # total time the whole export may spend waiting on retries
    deadline_s: float = 60.0     # per call
    retry_for: float | None = None

    def delay(self, attempt: int, rng: random.Random) -> float:
        d = min(self.max_s, self.initial_s * (2 ** attempt))
        return d * (0.5 + rng.random() / 2)  # jitter: many shards must not retry in lockstep

    def window_s(self) -> float:
        """The longest a call may keep retrying one outage, in seconds (for the notice)."""
        if self.retry_for is not None:
            return self.retry_for
        waits = sum(min(self.max_s, self.initial_s * 2 ** a) for a in range(self.attempts - 1))
        return min(waits, self.budget_s)


RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
#: An outage is announced on stderr at most this often (seconds): a server refusing one call
#: in five is one notice, not one per refused call.
ANNOUNCE_EVERY_S = 60.0


# "Received message larger than max (5000 vs. 4194304)": the response's size and the limit.
_SIZES = re.compile(r"\((\d+) vs\.? (\d+)\)")
# How gRPC implementations word a refusal for a message's size (grpc's core: "Received message
# larger than max"; grpc-dotnet: "Sending message exceeds the maximum configured message size").
# An UNAVAILABLE that says the server was never reached (down, wrong port, TLS mismatch) is an
# outage or a mistake, not a sign of strain: the retry notice speaks of it, not the throttle.
_UNREACHED = ("connection refused", "failed to connect", "handshake", "name resolution",
              "dns resolution")
_SIZE_WORDS = ("larger than max", "message size", "message length", "exceeds the maximum")


def size_refusal(details: str) -> bool:
    """Whether a RESOURCE_EXHAUSTED is about a message's size (smaller pages fix it) rather
    than an overloaded server or gateway refusing work (slowing down fixes it). A refusal
    that says nothing is taken as a size refusal, as before this distinction."""
    low = details.lower()
    return not low.strip() or bool(_SIZES.search(details)) or any(w in low for w in _SIZE_WORDS)


class PageTooLarge(ExportError):
    """A response was refused for its size (RESOURCE_EXHAUSTED): use smaller pages.

    ``side`` says whose limit it was: ``"client"`` (our own receive limit: grpc says
    ``CLIENT: Received message larger than max (N vs. M)``) or ``"server"`` (the control
    plane's send limit, in the status it sent). ``size`` and ``limit`` are N and M when the
    message gives them. It is an :class:`ExportError` so that a call made outside a paged scan
    (the versions, a count) still ends in a sentence.
    """

    def __init__(self, endpoint: str, method: str, details: str, max_receive: int):
        self.details = details
        m = _SIZES.search(details)
        self.size = int(m.group(1)) if m else None
        self.limit = int(m.group(2)) if m else None
        low = details.lower()
        # Older grpc releases drop the "CLIENT:" tag; then a limit equal to ours is ours.
        client = "client:" in low or (self.limit == max_receive and "received message" in low)
        self.side = "client" if client else "server"
        call = METHODS[method].rsplit("/", 1)[-1]
        if self.side == "server":
            limit = f"its send limit of {self.limit} bytes" if self.limit else "its send limit"
            size = f"a {self.size} byte response" if self.size else "the response"
            said = "" if m else f" ({details})"  # its own words, when they hold no sizes
            msg = (f"the control plane at {endpoint} ({call}) refused to send {size}: it is "
                   f"over {limit} (the server's limit, not aksnap's receive limit){said}; "
                   "raise the server's maximum send message size")
        else:
            size = f"a {self.size} byte response" if self.size else "the response"
            msg = (f"{size} from {endpoint} ({call}) is over aksnap's receive limit of "
                   f"{max_receive} bytes")
        super().__init__(msg)


def _identity(b: bytes) -> bytes:
    return b


@dataclass
class CallStats:
    retries: int = 0
    resource_exhausted: int = 0
    # Rows and bytes of the list pages read, per table (the scans add them): a typical row's
    # size, to judge a server's send limit.
    table_rows: dict = field(default_factory=dict)
    table_bytes: dict = field(default_factory=dict)


class RawClient:
    """Raw unary calls returning serialized responses, with retries and plain-sentence errors.

    Every attempt takes a slot of the capture's :class:`~aksnap.exporter.budget.Throttle`
    (``throttle``, shared by every client of one command; else one of its own for ``budget``)
    and is accounted in :attr:`cost` (:class:`~aksnap.exporter.budget.Cost`)."""

    def __init__(self, conn: Connection, retry: RetryPolicy | None = None,
                 max_receive: int = DEFAULT_MAX_RECEIVE, cancelled: threading.Event | None = None,
                 max_receive_ceiling: int = MAX_RECEIVE_CEILING, budget: Budget | None = None,
                 throttle: Throttle | None = None):
        self.conn = conn
        self.throttle = throttle or Throttle(budget, conn.endpoint)
        self.cost = self.throttle.cost()
        self.throttle.listeners.append(self.cost)
        self.retry = retry or RetryPolicy()
        self.max_receive = max_receive
        # Pages are sized to the receive limit as configured; raising it for one heavy row
        # must not make every later page (and the memory that holds it) 64 times bigger.
        self.page_receive = max_receive
        self.max_receive_ceiling = max(max_receive, max_receive_ceiling)
        # The control plane's send limit, once one of its refusals has told it (bytes).
        self.server_limit: int | None = None
        self.stats = CallStats()
        self._lock = threading.Lock()
        self._rng = random.Random(0)
        self._budget_left = self.retry.budget_s
        # Whether a call ever succeeded (a refused connection before that means nothing is
        # there), and whether the current outage was announced (once, not per attempt).
        self._reached = False
        self._announced = False
        self._announced_at = -math.inf
        self.cancelled = cancelled or threading.Event()
        self._old_channels: list[grpc.Channel] = []
        self._open(max_receive)

    def _open(self, max_receive: int) -> None:
        self.channel = open_channel(self.conn, max_receive)
        # One assignment: a thread in call() sees either the old stubs or the new ones.
        self._stubs: dict[str, Callable] = {
            name: self.channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                           response_deserializer=_identity)
            for name, path in METHODS.items()
        }
        self.max_receive = max_receive

    def raise_receive_limit(self, needed: int) -> bool:
        """Reopen the channel with a receive limit of at least ``needed`` bytes (the next power
        of two, at most ``max_receive_ceiling``); False when the ceiling is already reached.
        Calls in flight finish on the old channel, closed with the client."""
        with self._lock:
            if needed <= self.max_receive:
                return True  # another unit raised it meanwhile
            if self.max_receive >= self.max_receive_ceiling:
                return False
            new = min(self.max_receive_ceiling, 1 << max(needed - 1, 1).bit_length())
            self._old_channels.append(self.channel)
            self._open(new)
            return True

    def close(self) -> None:
        self.cost.stop()
        if self.cost in self.throttle.listeners:
            self.throttle.listeners.remove(self.cost)
        for ch in self._old_channels:
            ch.close()
        self.channel.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method: str, request: Any) -> bytes:
        stub = self._stubs[method]
        name = METHODS[method].rsplit("/", 1)[-1]
        attempt = 0
        failing_since = None
        while True:
            response, e = self._attempt(stub, name, request)
            if e is None:
                with self._lock:
                    self._reached = True
                    self._announced = False
                return response
            code = e.code() if hasattr(e, "code") else None
            details = (e.details() if hasattr(e, "details") else "") or ""
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED and size_refusal(details):
                # Never retried: the same request gets the same refusal. The scan halves.
                err = PageTooLarge(self.conn.endpoint, method, details, self.max_receive)
                with self._lock:
                    self.stats.resource_exhausted += 1
                    if err.side == "server" and err.limit:
                        self.server_limit = min(self.server_limit or err.limit, err.limit)
                raise err from None
            mismatch = self._protocol_mismatch(e, method)
            if mismatch is not None:
                raise ExportError(mismatch) from None  # never transient: no retry
            if code in RETRYABLE or code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                # an outage, or an overloaded server refusing work: the throttle has slowed
                # down already; wait and try again
                failing_since = failing_since or time.monotonic()
                wait = self._retry_wait(e, method, attempt, failing_since,
                                        outage=code in RETRYABLE)
                if self.cancelled.wait(wait):
                    raise ExportError("the export was cancelled") from None
                attempt += 1
                continue
            raise self._error(e, method) from None

    def _attempt(self, stub, name: str, request: Any) -> tuple[bytes | None,
                                                               grpc.RpcError | None]:
        """One request through the throttle, accounted: (response, None) or (None, error)."""
        self.cost.add_wait(self.throttle.acquire(self.cancelled))
        if self.cancelled.is_set():
            raise ExportError("the export was cancelled")
        started_at, t0 = time.time(), time.perf_counter()
        try:
            response = stub(request, timeout=self.retry.deadline_s)
        except grpc.RpcError as e:
            seconds = time.perf_counter() - t0
            code = e.code() if hasattr(e, "code") else None
            details = (e.details() if hasattr(e, "details") else "") or ""
            strain = None
            if (code == grpc.StatusCode.RESOURCE_EXHAUSTED and not size_refusal(details)) \
                    or code == grpc.StatusCode.DEADLINE_EXCEEDED \
                    or (code == grpc.StatusCode.UNAVAILABLE and self._reached
                        and not any(w in details.lower() for w in _UNREACHED)):
                strain = f"{code.name}: {' '.join(details.split())[:100]}"
            self.throttle.release(name, seconds, None, strain=strain)
            self.cost.note(name, started_at, seconds, None,
                           failed=code.name if code is not None else "UNKNOWN")
            return None, e
        except BaseException:
            self.throttle.release(name, time.perf_counter() - t0, None)
            raise
        seconds = time.perf_counter() - t0
        self.throttle.release(name, seconds, len(response))
        self.cost.note(name, started_at, seconds, len(response))
        return response, None

    def _retry_wait(self, e: grpc.RpcError, method: str, attempt: int,
                    failing_since: float, outage: bool = True) -> float:
        """How long to wait before the next attempt of a retryable failure, or the error to
        raise: a refused first connection at once (unless ``retry_for``), else when the
        attempts, the budget or ``retry_for`` are spent. Announces an outage once. An
        overloaded server (``outage`` False: it answered, refusing work) is retried within the
        call's attempts but spends nothing of the export's outage budget and is not called
        unreachable (the throttle said it slows down)."""
        details = (e.details() if hasattr(e, "details") else "") or ""
        refused = "connection refused" in details.lower()
        policy = self.retry
        with self._lock:
            if policy.retry_for is None:
                if refused and not self._reached:
                    raise ExportError(self._refused_sentence()) from None
                wait = policy.delay(attempt, self._rng)
                if attempt + 1 >= policy.attempts or (outage and self._budget_left - wait < 0):
                    raise self._error(e, method, exhausted=True) from None
                if outage:
                    self._budget_left -= wait
            else:
                left = policy.retry_for - (time.monotonic() - failing_since)
                if left <= 0:
                    raise self._error(e, method, exhausted=True) from None
                wait = min(policy.delay(attempt, self._rng), left)
            self.stats.retries += 1
            # once per outage, and at most once a minute: a flaky server (a call in five
            # refused) is one notice, not one per refused call
            now = time.monotonic()
            if outage and not self._announced and now - self._announced_at >= ANNOUNCE_EVERY_S:
                self._announced, self._announced_at = True, now
                log.warning(self._retry_notice(e, refused))
        return wait

    def _refused_sentence(self) -> str:
        return (f"nothing accepts connections at {self.conn.endpoint} (UNAVAILABLE: connection "
                "refused): check the endpoint's host and port and that the control plane is "
                "up, or pass --retry-for SECONDS to wait for it")

    def _retry_notice(self, e: grpc.RpcError, refused: bool) -> str:
        code = e.code() if hasattr(e, "code") else None
        why = ("connection refused" if refused else
               f"{code.name if code else 'UNAVAILABLE'}: "
               f"{' '.join(((e.details() if hasattr(e, 'details') else '') or '').split())[:160]}")
        how = (f"for up to {self.retry.window_s():g} s" if self.retry.retry_for is not None
               else f"for up to about {self.retry.window_s():.0f} s "
                    "(--retry-for SECONDS to wait longer)")
        return f"the control plane at {self.conn.endpoint} is unreachable ({why}); retrying {how}"

    def _protocol_mismatch(self, e: grpc.RpcError, method: str) -> str | None:
        """The sentence for a server that does not speak what aksnap speaks (TLS against
        plaintext, HTTP/1, gRPC without ArmoniK), or None. Retrying cannot change these."""
        code = e.code() if hasattr(e, "code") else None
        details = (e.details() if hasattr(e, "details") else "") or ""
        low = details.lower()
        ep, call = self.conn.endpoint, METHODS[method].rsplit("/", 1)[-1]
        if self.conn.tls is not None and ("wrong_version_number" in low
                                          or "wrong version number" in low):
            return (f"the server at {ep} does not speak TLS (its reply to the TLS handshake "
                    "was not TLS): it is a plaintext port; use http://HOST:PORT or HOST:PORT "
                    "without --certificate-authority, or the cluster's TLS port")
        if "http1.x server" in low or "http/1" in low:
            return (f"the server at {ep} answers HTTP/1, not gRPC over HTTP/2: it is not an "
                    "ArmoniK control plane (a web server or an HTTP proxy); check the host "
                    "and port (ArmoniK's gRPC endpoint, often port 5001)")
        if code == grpc.StatusCode.UNIMPLEMENTED and method == "versions":
            return (f"the server at {ep} speaks gRPC but is not an ArmoniK control plane: it "
                    f"does not implement Versions.{call} ({details or 'UNIMPLEMENTED'}), which "
                    "every ArmoniK control plane serves; check the host and port (another "
                    "gRPC service listens there)")
        return None

    def _hint(self, details: str, code=None) -> str:
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return ("the control plane is overloaded and refuses work: try again later, or "
                    "with a lower --max-rps and --jobs")
        low = details.lower()
        if "handshake" in low or "certificate" in low or "ssl" in low:
            return ("the TLS handshake failed: check that --certificate-authority is the CA "
                    "that signed the server's certificate")
        if "socket closed" in low and self.conn.tls is None:
            return ("the server closed the connection: it may require TLS, pass "
                    "--certificate-authority (and --client-certificate/--client-key)")
        if "socket closed" in low and not self.conn.tls.mutual:
            return ("the server closed the connection: it may require a client certificate, "
                    "pass --client-certificate and --client-key")
        return "check the endpoint and that the cluster is up, then run the export again"

    def _error(self, e: grpc.RpcError, method: str, exhausted: bool = False) -> ExportError:
        code = e.code() if hasattr(e, "code") else None
        details = (e.details() if hasattr(e, "details") else str(e)) or ""
        where = f"{self.conn.endpoint} ({METHODS[method].rsplit('/', 1)[-1]})"
        name = code.name if code else "UNKNOWN"
        if code == grpc.StatusCode.UNAUTHENTICATED:
            msg = (f"the control plane at {where} refused the connection as unauthenticated: "
                   f"{details}; check --client-certificate and --client-key")
        elif code == grpc.StatusCode.PERMISSION_DENIED:
            msg = (f"the control plane at {where} denied permission: {details}; the client "
                   "certificate's user needs the List permissions on tasks, results, sessions "
                   "and partitions")
        elif code == grpc.StatusCode.INVALID_ARGUMENT:
            msg = (f"the control plane at {where} rejected the request as invalid: {details}; "
                   "this ArmoniK version may not support the filters aksnap sends")
        elif code == grpc.StatusCode.UNIMPLEMENTED:
            msg = (f"the control plane at {where} does not implement this call: {details}; "
                   "ArmoniK Core 0.14 or later is needed")
        elif exhausted:
            spent = (f" for {self.retry.retry_for:g} s" if self.retry.retry_for is not None
                     else "")
            msg = (f"the control plane at {where} stayed {name} after retrying{spent} "
                   f"({self.stats.retries} retries): {details}; {self._hint(details, code)}")
        else:
            msg = f"the call to {where} failed with {name}: {details}"
        return ExportError(msg)
