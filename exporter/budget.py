"""The load budget of a capture: how fast and how wide aksnap asks the control plane, how it
backs off when the server shows strain, and what the capture cost it.

- :class:`Budget`: the user's caps, ``max_rps`` (requests started per second, every
  connection of the capture together) and ``jobs`` (requests in flight at once).
- :class:`Throttle`: every request of a capture takes a slot from it before it is sent (an
  export's, an update's, a watch's reconciles and event subscriptions: one throttle per
  command). Two rules bound the starts: the hard cap, at most ``floor(max_rps)`` starts in
  any window of :data:`WINDOW_S` (a little more than a second, so that jitter between here
  and the server never lets it count more than ``max_rps`` in one of its seconds), and the
  current rate of the AIMD loop below, which never exceeds it. A call holds one of
  ``window`` (at most ``jobs``) concurrency slots while it runs; an event stream holds none
  (it stays open for hours: only its start counts).
- **Backpressure, AIMD.** A sign of strain (two calls in a row of the same kind and size
  taking :data:`LATENCY_RISE` times what the capture has seen, and
  :data:`LATENCY_FLOOR_S` more; a RESOURCE_EXHAUSTED that is not about a message's size;
  UNAVAILABLE; DEADLINE_EXCEEDED) halves the rate and the concurrency window, at most once
  per reaction time (a burst of refusals is one sign); every second without strain adds a
  tenth of the cap back to the rate and one slot to the window (additive increase). The first
  decrease of an episode is said once (a ``log`` warning: the CLI prints it on stderr).
- :class:`Cost`: what the capture asked and received: calls by method, failures by status,
  rows and bytes received, the busiest second's requests, latency percentiles (a
  log-bucketed histogram: mergeable, 5 % resolution), wall time, time waited for the
  budget, backpressure episodes. It becomes the manifest's ``cost`` record
  (``docs/bundle-format.md``) and the watch's per-reconcile and total figures.

gRPC-free: the client (:mod:`aksnap.exporter.client`) reports each call's outcome here.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aksnap.errors import AksnapError

log = logging.getLogger("aksnap.exporter")

#: Requests per second a capture starts at most, all connections together (``--max-rps``).
#: Chosen for a production control plane, not for the simulator: a page of tasks costs Core
#: a MongoDB query (an index range, a skip, up to 16,384 tasks or 65,536 results) and the
#: serialization of up to about 8 MiB (pages sized to client.PAGE_MAX_RECEIVE), tens of
#: milliseconds of the server's CPU and of the database's; at 10 pages a second a capture
#: reads some 36,000 tasks a second (htcmock 1M: 28 s, 250 calls) while holding at most
#: ``DEFAULT_JOBS`` requests in flight, which is the load of a few busy clients
#: (docs/exporter.md, "The load budget").
DEFAULT_MAX_RPS = 10.0
#: Requests in flight at once (``--jobs``): two of Core's request threads and two MongoDB
#: queries at most, whatever the plan's parallelism.
DEFAULT_JOBS = 2
#: The hard cap's window: ``floor(max_rps)`` starts at most in any window this long. 10 %
#: more than a second absorbs 100 ms of jitter between the client and the server's clock.
WINDOW_S = 1.1
#: The rate never falls below this many requests per second (or the cap, when lower): one
#: request a second is nothing to a control plane, and keeps a capture moving.
MIN_RPS = 1.0
#: A call this many times slower than the usual for its kind and size, twice in a row...
LATENCY_RISE = 4.0
#: ...and at least this much slower (milliseconds jitter by more than 4x on a busy machine).
LATENCY_FLOOR_S = 0.25
#: Calls of one kind and size before their latency is judged.
LATENCY_LEARN_CALLS = 5
#: The multiplicative decrease.
DECREASE = 0.5
#: Seconds without strain before each additive increase (a tenth of the cap, one slot).
INCREASE_EVERY_S = 1.0


class BudgetError(AksnapError):
    """A budget no capture can use (``--max-rps 0``, ``--jobs -1``, a bad
    ``$AKSNAP_MAX_RPS``): one sentence, exit code 2, before any call."""


#: The environment variable that sets the default of ``--max-rps`` (a site's own figure, or
#: ``inf`` for a cluster nobody else uses, such as the simulator of the test suite).
MAX_RPS_VARIABLE = "AKSNAP_MAX_RPS"


@dataclass(frozen=True)
class Budget:
    """The caps of a capture: ``max_rps`` requests started per second (``math.inf``: no cap;
    the AIMD loop still slows down under strain) and ``jobs`` requests in flight. Built by
    :func:`budget_of`, which checks them."""

    max_rps: float = DEFAULT_MAX_RPS
    jobs: int = DEFAULT_JOBS

    @property
    def capped(self) -> bool:
        return self.max_rps != math.inf

    def as_record(self) -> dict[str, Any]:
        """The manifest's ``cost.budget``: ``max_rps`` null when there is no cap."""
        return {"max_rps": self.max_rps if self.capped else None, "jobs": self.jobs}


def budget_of(max_rps: float | str | None = None, jobs: int | None = None) -> Budget:
    """The checked :class:`Budget` of an API call's or a command's ``max_rps`` (None: the
    default, ``$AKSNAP_MAX_RPS`` else :data:`DEFAULT_MAX_RPS`; ``inf``: no cap) and ``jobs``
    (None: :data:`DEFAULT_JOBS`); a :class:`BudgetError` for a value no capture can use."""
    where = "--max-rps"
    if max_rps is None:
        env = os.environ.get(MAX_RPS_VARIABLE, "").strip()
        if env:
            where, max_rps = f"${MAX_RPS_VARIABLE}", env
        else:
            max_rps = DEFAULT_MAX_RPS
    try:
        rate = float(max_rps) if not isinstance(max_rps, bool) else math.nan
    except (TypeError, ValueError):
        rate = math.nan
    if not rate > 0:  # nan, 0, negative
        shown = f"{max_rps:g}" if isinstance(max_rps, float) else repr(max_rps)
        raise BudgetError(f"{where} must be a number of requests per second > 0 (inf for no "
                          f"cap), not {shown}")
    jobs = DEFAULT_JOBS if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BudgetError(f"--jobs must be at least 1, not {jobs}")
    return Budget(rate, jobs)


# -- latencies: a log-bucketed histogram -----------------------------------------------------

_LAT_MIN_S = 1e-4
_LAT_STEP = math.log(1.05)


def _bucket(seconds: float) -> int:
    return max(0, int(math.log(max(seconds, _LAT_MIN_S) / _LAT_MIN_S) / _LAT_STEP))


def _bucket_s(k: int) -> float:
    return _LAT_MIN_S * math.exp((k + 1) * _LAT_STEP)  # its upper bound


# -- the cost of a capture -------------------------------------------------------------------


@dataclass
class Cost:
    """What a capture asked of the control plane and received (see the module docstring).

    ``note`` is called once per request (every attempt: a retried call costs the server each
    time); the scans add rows; :meth:`record` is the manifest's ``cost``."""

    budget: Budget = field(default_factory=Budget)
    calls: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    per_second: dict[int, int] = field(default_factory=dict)
    latency: dict[int, int] = field(default_factory=dict)
    latency_max_s: float = 0.0
    waited_s: float = 0.0
    episodes: int = 0
    slowest_rps: float | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    #: a total this cost also counts into (a watch's, over its reconciles and subscriptions)
    parent: "Cost | None" = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def note(self, method: str, started_at: float, seconds: float, nbytes: int | None,
             failed: str | None = None) -> None:
        """One request: its method (short name), wall-clock start (``time.time()``), latency,
        response bytes (None when it failed) and the status it failed with."""
        if self.parent is not None:
            self.parent.note(method, started_at, seconds, nbytes, failed)
        with self._lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            sec = int(started_at)
            self.per_second[sec] = self.per_second.get(sec, 0) + 1
            if failed is not None:
                self.failed[failed] = self.failed.get(failed, 0) + 1
            else:
                self.bytes += nbytes or 0
                k = _bucket(seconds)
                self.latency[k] = self.latency.get(k, 0) + 1
                self.latency_max_s = max(self.latency_max_s, seconds)

    def add_rows(self, table: str, n: int) -> None:
        if self.parent is not None:
            self.parent.add_rows(table, n)
        with self._lock:
            self.rows[table] = self.rows.get(table, 0) + n

    def add_wait(self, seconds: float) -> None:
        if self.parent is not None:
            self.parent.add_wait(seconds)
        with self._lock:
            self.waited_s += seconds

    def strained(self, rate: float) -> None:
        with self._lock:
            self.episodes += 1
            self.slowest_rps = rate if self.slowest_rps is None else min(self.slowest_rps, rate)

    def slowed(self, rate: float) -> None:
        with self._lock:
            self.slowest_rps = rate if self.slowest_rps is None else min(self.slowest_rps, rate)

    def stop(self) -> None:
        if self.ended is None:
            self.ended = time.monotonic()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def wall_s(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def busiest_second(self) -> int:
        return max(self.per_second.values(), default=0)

    def percentile_ms(self, q: float) -> float | None:
        """The latency below which ``q`` of the answered calls fell, in milliseconds (to 5 %)."""
        n = sum(self.latency.values())
        if not n:
            return None
        rank, seen = q * n, 0
        for k in sorted(self.latency):
            seen += self.latency[k]
            if seen >= rank:
                return round(min(_bucket_s(k), self.latency_max_s) * 1000, 1)
        return round(self.latency_max_s * 1000, 1)

    def merge(self, other: "Cost") -> None:
        """Add ``other``'s figures (a watch's total over its reconciles)."""
        with self._lock:
            for mine, theirs in ((self.calls, other.calls), (self.failed, other.failed),
                                 (self.rows, other.rows), (self.per_second, other.per_second),
                                 (self.latency, other.latency)):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
            self.bytes += other.bytes
            self.latency_max_s = max(self.latency_max_s, other.latency_max_s)
            self.waited_s += other.waited_s
            self.episodes += other.episodes
            if other.slowest_rps is not None:
                self.slowest_rps = (other.slowest_rps if self.slowest_rps is None
                                    else min(self.slowest_rps, other.slowest_rps))

    def record(self) -> dict[str, Any]:
        """The manifest's ``cost`` record (``docs/bundle-format.md``): plain JSON. Taken under
        the lock: a watch reads its total while its reconciles and subscriptions count into
        it (iterating a dict another thread grows is a RuntimeError)."""
        with self._lock:
            return self._record()

    def _record(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "failed_calls": dict(sorted(self.failed.items())),
            "rows_received": dict(sorted(self.rows.items())),
            "bytes_received": self.bytes,
            "busiest_second": self.busiest_second(),
            "latency_ms": {"p50": self.percentile_ms(0.5), "p90": self.percentile_ms(0.9),
                           "p99": self.percentile_ms(0.99),
                           "max": round(self.latency_max_s * 1000, 1) if self.latency else None},
            "wall_s": round(self.wall_s, 3),
            "waited_for_budget_s": round(self.waited_s, 3),
            "budget": self.budget.as_record(),
            "backpressure": {"episodes": self.episodes,
                             "slowest_rps": (round(self.slowest_rps, 2)
                                             if self.slowest_rps is not None else None)},
        }


# -- the throttle ------------------------------------------------------------------------------


class Throttle:
    """The slots every request of one capture (or one watch) takes: the hard rate cap, the
    AIMD rate and concurrency window, and the strain notices (see the module docstring)."""

    def __init__(self, budget: Budget | None = None, endpoint: str = "the control plane"):
        self.budget = budget or budget_of()
        self.endpoint = endpoint
        cap = self.budget.max_rps
        self._cond = threading.Condition()
        # the hard cap: at most _n starts in any window of _period seconds
        self._n = max(1, int(cap)) if cap < math.inf else 0
        self._period = (WINDOW_S if cap >= 1 else WINDOW_S / cap) if cap < math.inf else 0.0
        self._starts: deque[float] = deque()
        self.rate: float = cap                      # the AIMD rate (inf: no cap, no strain)
        self.window: int = self.budget.jobs         # the AIMD concurrency
        self._ceiling = cap                         # what the rate grows back to
        self._inflight = 0
        self._last_decrease = -math.inf
        self._last_increase = time.monotonic()
        self._strained_since: float | None = None   # an episode is on
        self._slow: dict[tuple[str, int], list] = {}  # (method, size class) -> [usual, n, slow]
        self.episodes = 0
        #: costs to tell of a decrease (each capture's :class:`Cost` while it runs)
        self.listeners: list[Cost] = []
        #: set by a command that spans several captures (a watch): every capture's cost also
        #: counts into it (:attr:`Cost.parent`)
        self.total: Cost | None = None

    def keep_total(self) -> Cost:
        """Start counting every capture's cost through this throttle into one total."""
        if self.total is None:
            self.total = Cost(self.budget)
            self.listeners.append(self.total)
        return self.total

    def cost(self) -> Cost:
        """A new :class:`Cost` for one capture through this throttle (counted in the total)."""
        return Cost(self.budget, parent=self.total)

    # -- slots

    def acquire(self, cancelled: threading.Event | None = None, hold: bool = True) -> float:
        """Wait for a start (and, with ``hold``, a concurrency slot); return the seconds
        waited. Returns early, without a slot, once ``cancelled`` is set (the caller checks)."""
        t0 = time.monotonic()
        with self._cond:
            while True:
                if cancelled is not None and cancelled.is_set():
                    return time.monotonic() - t0
                now = time.monotonic()
                self._grow(now)
                wait = self._start_wait(now)
                full = hold and self._inflight >= max(1, self.window)
                if wait == 0 and not full:
                    self._take(now, hold)
                    return now - t0
                # until the start is allowed or a release frees a slot; a cancellation is
                # seen within 50 ms
                timeout = 0.05 if full else wait
                self._cond.wait(min(timeout, 0.05) if cancelled is not None else timeout)

    def _take(self, now: float, hold: bool) -> None:
        starts = self._starts
        starts.append(now)
        horizon = now - max(2.0, self._period, WINDOW_S / MIN_RPS)
        while starts and starts[0] < horizon:
            starts.popleft()
        if hold:
            self._inflight += 1

    def _start_wait(self, now: float) -> float:
        """Seconds until the next start is allowed by the hard cap and the AIMD rate (0: now)."""
        wait = 0.0
        starts = self._starts
        if self._n and len(starts) >= self._n:
            wait = max(wait, starts[-self._n] + self._period - now)
        if self.rate < math.inf:
            n = max(1, int(self.rate))
            period = WINDOW_S * n / self.rate
            if len(starts) >= n:
                wait = max(wait, starts[-n] + period - now)
        return max(0.0, wait)

    def release(self, method: str, seconds: float, nbytes: int | None = None,
                strain: str | None = None, hold: bool = True) -> None:
        """A call ended: ``seconds`` it took, its response's size (None: it failed), and the
        strain it showed (a status name), if any. Judges its latency, frees its slot."""
        with self._cond:
            if hold:
                self._inflight = max(0, self._inflight - 1)
            now = time.monotonic()
            if strain is None and nbytes is not None:
                strain = self._judge(method, seconds, nbytes)
            if strain is not None:
                self._decrease(now, strain, seconds)
            self._cond.notify_all()

    def _judge(self, method: str, seconds: float, nbytes: int) -> str | None:
        """A latency rise: two calls in a row of this kind and size class far slower than the
        usual (an average of the calls that were not slow)."""
        key = (method, max(0, nbytes).bit_length() // 2)  # size classes of x4
        usual, n, slow = self._slow.setdefault(key, [0.0, 0, 0])
        if n >= LATENCY_LEARN_CALLS and seconds > LATENCY_RISE * usual \
                and seconds > usual + LATENCY_FLOOR_S:
            self._slow[key][2] = slow + 1
            if slow + 1 >= 2:
                self._slow[key][2] = 0
                return (f"{method} took {seconds:.2f} s, {seconds / max(usual, 1e-6):.0f} times "
                        f"the usual {usual:.2f} s")
            return None
        self._slow[key] = [usual + (seconds - usual) / min(n + 1, 20), n + 1, 0]
        return None

    def _decrease(self, now: float, why: str, seconds: float) -> None:
        # One decrease per reaction time: the calls already in flight when the server
        # strained all tell of the same strain.
        if now - self._last_decrease < max(1.0, seconds):
            return
        self._last_decrease = now
        self._last_increase = now
        if self.rate == math.inf:  # no cap: start from what was being sent
            recent = [s for s in self._starts if s > now - 2.0]
            self._ceiling = max(MIN_RPS, len(recent) / 2.0)
            self.rate = self._ceiling
        self.rate = max(min(MIN_RPS, self._ceiling), self.rate * DECREASE)
        self.window = max(1, self.window // 2)
        for c in self.listeners:
            c.slowed(self.rate)
        if self._strained_since is None:
            self._strained_since = now
            self.episodes += 1
            for c in self.listeners:
                c.strained(self.rate)
            log.warning(f"the control plane at {self.endpoint} shows strain ({why}): slowing "
                        f"down to {self.rate:.1f} requests/s, {self.window} at a time, and "
                        "speeding up again as it recovers")

    def _grow(self, now: float) -> None:
        """Additive increase: every second without strain, a tenth of the ceiling back to the
        rate and one slot back to the window; the episode ends at the caps."""
        if self._strained_since is None or now - self._last_increase < INCREASE_EVERY_S:
            return
        steps = int((now - self._last_increase) / INCREASE_EVERY_S)
        self._last_increase += steps * INCREASE_EVERY_S
        ceiling = self._ceiling
        self.rate = min(ceiling, self.rate + steps * max(MIN_RPS, ceiling / 10))
        self.window = min(self.budget.jobs, self.window + steps)
        if self.rate >= ceiling and self.window >= self.budget.jobs:
            self._strained_since = None
            if not self.budget.capped:
                self.rate = self._ceiling = math.inf

    @property
    def strained(self) -> bool:
        return self._strained_since is not None

    def state(self) -> dict[str, Any]:
        """The current rate and window (for the watch's view)."""
        return {"rate": None if self.rate == math.inf else round(self.rate, 2),
                "window": self.window, "strained": self.strained, "episodes": self.episodes}


def cost_phrase(record: dict[str, Any] | None) -> str:
    """A cost record (:meth:`Cost.record`) in one line: ``"57 calls (ListResults 28,
    ListTasksDetailed 20, ...), 3 failed, 12.3 MiB received, busiest second 10 requests,
    latency p50/p90/p99 12/30/45 ms, 4.1 s"``; ``""`` for None."""
    if not record:
        return ""
    calls = record.get("calls") or {}
    by = ", ".join(f"{k} {v}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1]))
    failed = sum((record.get("failed_calls") or {}).values())
    lat = record.get("latency_ms") or {}
    mib = (record.get("bytes_received") or 0) / 2**20
    parts = [f"{sum(calls.values())} calls" + (f" ({by})" if by else "")]
    if failed:
        parts.append(f"{failed} failed")
    parts += [f"{mib:.1f} MiB received",
              f"busiest second {record.get('busiest_second', 0)} requests"]
    if lat.get("p50") is not None:
        parts.append(f"latency p50/p90/p99 {lat['p50']:g}/{lat['p90']:g}/{lat['p99']:g} ms")
    parts.append(f"{record.get('wall_s', 0):g} s")
    episodes = (record.get("backpressure") or {}).get("episodes") or 0
    if episodes:
        parts.append(f"slowed down {episodes} times for strain")
    return ", ".join(parts)
