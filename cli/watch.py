"""``aksnap watch``: follow a running session, or one result, live.

It ties the layers together (as ``aksnap demo`` does, so it lives in the composition floor,
``aksnap.cli``, every import of a layer inside the function bodies): the exporter's
:class:`~aksnap.exporter.follow.EventFollower` reads ArmoniK's ``Events.GetEvents`` stream
(resubscribing when it drops), the exporter's ``export``/``update`` reconcile every
``interval`` seconds (the incremental export: only what can have changed is read), and the
analyzer's :class:`~aksnap.analyzer.live.LiveState` and :func:`~aksnap.analyzer.live.analyze`
turn both into what is shown.

Between reconciles the events move the statuses (they may be lost, repeated, stale or out of
order: each reconcile replaces the state with the cluster's truth, and the events that
arrived while it ran are applied again on top). Every reconcile is a bundle: with
``--record DIR`` each new state is kept there (each the update of the previous one; a state
equal to the last recorded one is not recorded again), the last ``--keep`` of them as bundles
and every one as a line of ``DIR/states.jsonl`` (:mod:`aksnap.analyzer.series`), and the
recording stops, the watch going on, before the file system's free space would fall below
``--min-free``; without it, in a temporary directory that only holds the last.

An error that will not go away (an unknown session or result, a refused selection, unusable
connection settings) ends the watch at once (:class:`WatchError`, exit 2); one that may (the
control plane unavailable) is shown and retried at the next interval.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from aksnap import paths
from aksnap.errors import AksnapError
from aksnap.options import OutputGroup, Param, typer_function

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
#: ``--record``: how many recorded states keep their bundle (the newest); every state keeps its
#: line in ``DIR/states.jsonl``. 0: every bundle.
DEFAULT_KEEP = 10
#: ``--record``: the free space (bytes, or a share of the file system as ``"5%"``) the recording
#: leaves on DIR's file system; below it, the recording stops and the watch goes on.
DEFAULT_MIN_FREE = "1GiB"


#: A reconcile's calls use at most this share of the budget over time: the interval grows so
#: that calls / interval <= RECONCILE_SHARE * max_rps (the event stream and a retry keep room).
RECONCILE_SHARE = 0.5
#: While nothing changes (no event, and the server's counts are the last bundle's), the
#: interval doubles up to this many seconds; an event brings it back to ``--interval``.
MAX_IDLE_INTERVAL = 60.0
#: Every this many seconds a reconcile reads every open row again, whatever the events said
#: (a change between two open statuses whose event was lost is seen within this): the default
#: of ``--full-every`` (at 10M tasks each is an export of 10M tasks: raise it there).
TRUST_EVERY_S = 600.0


@dataclass
class Plan:
    """What a reconcile does, and why (shown in the view):

    - ``probe``: nothing changed as far as the events tell: count the session's tasks by
      status and its results (2 calls); a new state only when they moved (then ``full``);
    - ``changed``: update the last bundle, refetching only the rows the events named
      (``tasks``, ``results``; and the open results those tasks own) besides new rows;
    - ``full``: the state cannot be trusted (the first, a failed probe, every
      ``--full-every`` seconds, :data:`TRUST_EVERY_S` by default): update every open row,
      or export when most are open;
    - ``export``: what a ``full`` became (set once it ran)."""

    kind: str
    why: str = ""
    tasks: set = field(default_factory=set)
    results: set = field(default_factory=set)


class WatchError(AksnapError):
    """The watch cannot start or go on; one sentence. ``exit_code`` 2 for a mistake that will
    not go away (unknown id, bad option), 1 for a refresh that failed (--once)."""


@dataclass
class WatchResult:
    """How a watch ended: ``code`` 0 (the result completed; the session ended without a failed
    task), 1 (the result failed; a task of the session failed), ``None`` (stopped before:
    ``--once``, Ctrl-C, ``max_s``), and the last state shown."""

    code: Optional[int]
    state: dict[str, Any]
    bundles: list[str] = field(default_factory=list)  # recorded bundles still in DIR
    #: why the recording stopped (free space), else None
    recording_stopped: Optional[str] = None


class _Reconciler:
    """Reconciles in a thread: export (first) or update (then) into the next bundle, then reads
    back the columns the live state needs, and analyses the bundle.

    Recording (``record``): a new state is kept in DIR (a line in ``states.jsonl``, its bundle
    among the last ``keep``), one equal to the last recorded is dropped, and before each
    reconcile the free space of DIR's file system is checked against ``min_free``: when the
    next bundle (as large as the last) would leave less, the recording stops (:attr:`stopped`
    says why) and the reconciles go on in a temporary directory, as without ``--record``."""

    def __init__(self, conn, session_id: str, result_id: Optional[str], record: Optional[Path],
                 keep: int, jobs: int, min_free: Optional[tuple[str, float]] = None, retry=None,
                 throttle=None):
        self.conn, self.session_id, self.result_id = conn, session_id, result_id
        self.throttle = throttle                    # the watch's one load budget
        self.retry = retry                          # --retry-for: each export's RetryPolicy
        self.record, self.keep, self.min_free, self.jobs = record, keep, min_free, jobs
        self.dir = record
        self.temp = False
        if record is None:
            self._scratch_dir()
        self.last: Optional[Path] = None            # the newest bundle: the next update's parent
        self.recorded: list[Path] = []              # recorded bundles still in DIR
        self.scratch: list[Path] = []               # bundles in the temporary directory
        self.states = 0                             # states recorded (lines of states.jsonl)
        self.unchanged = 0                          # reconciles equal to the last recorded state
        self.stopped: Optional[str] = None          # why the recording stopped
        self._last_state = None                     # the last recorded state, sorted by id
        self.seq = 0
        self.thread: Optional[threading.Thread] = None
        self.outcome: Optional[tuple] = None      # (tables, analysis, path, seconds, rows fetched)
        self.error: Optional[str] = None
        self.permanent = False                     # the error will not go away by retrying
        self.started_at = 0.0
        self.count = 0
        self.parts: dict[str, float] = {}          # what the last reconcile's steps took
        self.open_share = 1.0                      # of the last bundle's rows, still open
        self.plan = Plan("full", "first")           # what the running (last) reconcile does
        self.cost: Optional[dict] = None            # what it cost (the manifest's cost record)
        self.tables = None                          # the last bundle's live-state columns
        self.last_counts: tuple = ({}, -1)          # its tasks by status, its results
        self.probes = 0                             # probes that found nothing changed

    def _scratch_dir(self) -> None:
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="aksnap-watch-"))
        self.temp = True

    @property
    def recording(self) -> bool:
        return self.record is not None and self.stopped is None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, plan: "Plan | None" = None) -> None:
        self.outcome, self.error, self.permanent = None, None, False
        self.plan = plan or Plan("full", "first")
        self.started_at = time.time()
        thread = threading.Thread(target=self._run, name="aksnap-reconcile", daemon=True)
        self.thread = thread
        thread.start()

    def run_now(self) -> None:
        self.plan = Plan("full", "first")
        self.started_at = time.time()
        self._run()
        if self.error:
            raise WatchError(self.error, exit_code=2 if self.permanent else 1)

    def _low_space(self) -> Optional[str]:
        """Why the next state must not be recorded (DIR's file system too full), else None."""
        from aksnap.pack import human

        usage = shutil.disk_usage(self.record)
        text, value = self.min_free or ("", 0.0)
        floor = value * usage.total if text.endswith("%") else value
        need = _bundle_bytes(self.recorded[-1]) if self.recorded else 0
        if usage.free - need >= floor:
            return None
        return (f"stopped recording into {self.record}: {human(usage.free)} free on its file "
                f"system, and the next state (about {human(need)}) would leave less than "
                f"--min-free {text}; the {self.states} states recorded are kept, and the "
                "watch goes on without recording")

    def _run(self) -> None:
        from aksnap.exporter.client import ExportError

        t0 = time.perf_counter()
        self.cost = None
        try:
            if self.recording:
                self.stopped = self._low_space()
                if self.stopped is not None:
                    self._scratch_dir()  # never fill the disk: the recording is over
            plan = self.plan
            if plan.kind == "probe":
                if self._unchanged():
                    self.probes += 1
                    self.count += 1  # a reconcile that found the state unchanged
                    if self.recording:
                        self.unchanged += 1
                    return  # nothing fetched, no bundle: outcome and error stay None
                plan = self.plan = Plan("full", "the server's counts moved without events")
            self._reconcile(plan, t0)
        except ExportError as e:
            self.error, self.permanent = str(e), e.exit_code == 2
        except OSError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - a bundle error: shown, retried next interval
            self.error = f"the refresh failed: {e}"

    def _unchanged(self) -> bool:
        """Whether the server's counts are the last bundle's: tasks by status (one
        CountTasksByStatus) and the results' number (one count-only ListResults)."""
        from aksnap.exporter.client import RawClient
        from aksnap.exporter.decode import status_counts_from_raw
        from aksnap.exporter.requests import count_tasks_request, row_filters
        from aksnap.exporter.selection import count

        with RawClient(self.conn, retry=self.retry, throttle=self.throttle) as client:
            try:
                by_status = status_counts_from_raw(client.call(
                    "count_tasks", count_tasks_request([self.session_id])))
                results = count(client, "results", row_filters("results", self.session_id))
            finally:
                self.cost = client.cost.record()
        tasks = {k: v for k, v in by_status.items() if v}
        return tasks == self.last_counts[0] and results == self.last_counts[1]

    def _reconcile(self, plan: "Plan", t0: float) -> None:
        """Export (the first time, or when the state cannot be trusted and most rows are
        open), else update the last bundle (every open row, or only the changed ones);
        read back the live state's columns, analyse, file the bundle."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from aksnap.analyzer.live import analyze
        from aksnap.exporter import export, update

        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = self.dir / f"{self.seq:05d}-{stamp}"
        # --record keeps the chain of updates (each bundle names its parent and what it
        # cost); otherwise the cheaper way to the same rows
        if self.last is None or (plan.kind == "full" and not self.recording
                                 and self.open_share >= FULL_EXPORT_OPEN_SHARE):
            s = export(self.conn, out, sessions=[self.session_id], jobs=self.jobs,
                       retry=self.retry, throttle=self.throttle)
            fetched = s.rows["tasks"] + s.rows["results"]
            self.plan = Plan("export", plan.why)
        else:
            changed = None
            if plan.kind == "changed":
                changed = {"tasks": sorted(plan.tasks),
                           "results": sorted(plan.results | _owned_open(self.tables,
                                                                        plan.tasks))}
            s = update(self.last, out, endpoint=self.conn, jobs=self.jobs, retry=self.retry,
                       throttle=self.throttle, changed=changed)
            fetched = sum(s.update["rows_fetched"].values())
        self.cost = s.cost
        t1 = time.perf_counter()
        tables = (pq.read_table(out / "tasks.parquet", columns=_TASK_COLUMNS),
                  pq.read_table(out / "results.parquet", columns=_RESULT_COLUMNS))
        t2 = time.perf_counter()
        self.open_share = _open_share(*tables)
        self.tables = tables
        vc = pc.value_counts(tables[0].column("status")).to_pylist() if tables[0].num_rows \
            else []
        self.last_counts = ({d["values"]: d["counts"] for d in vc}, tables[1].num_rows)
        try:
            analysis = analyze(out, self.session_id, self.result_id)
        except Exception as e:  # noqa: BLE001 - the view says so; the counts still show
            analysis = {"error": f"the analysis failed: {e}"}
        self.parts = {"export_s": round(t1 - t0, 3), "read_s": round(t2 - t1, 3),
                      "analyze_s": round(time.perf_counter() - t2, 3)}
        shown = self._keep(out, tables)
        self.seq += 1
        self.count += 1
        self.outcome = (tables, analysis, str(shown), time.perf_counter() - t0, fetched)

    def _keep(self, out: Path, tables) -> Path:
        """File the new bundle ``out``; return the bundle that holds this state."""
        from aksnap.analyzer import series
        from aksnap.bundle_writer import remove_bundle_dir

        if not self.recording:
            for old in self.scratch:
                remove_bundle_dir(old)
            self.scratch = [out]
            self.last = out
            return out
        state = _sorted_state(tables)
        if self._last_state is not None and _same_state(state, self._last_state):
            remove_bundle_dir(out)  # a frozen session is not recorded again and again
            self.unchanged += 1
            return self.last
        try:
            series.append_state(self.record, out)
        except BaseException:
            remove_bundle_dir(out)  # a state is recorded with its line or not at all
            raise
        self.states += 1
        self._last_state = state
        self.recorded.append(out)
        self.last = out
        while self.keep and len(self.recorded) > self.keep:
            remove_bundle_dir(self.recorded.pop(0))  # its state stays in states.jsonl
        return out

    def wait(self, timeout: float = 30) -> None:
        """Let a reconcile in flight finish (a recorded state is filed whole, never left as
        a partial directory or a bundle without its line)."""
        thread = self.thread
        # a Ctrl-C can land inside Thread.start(): a thread that never started has nothing
        # to wait for (joining it is a RuntimeError, which turned the exit 130 into 1)
        if thread is not None and thread.ident is not None:
            thread.join(timeout=timeout)

    def close(self) -> None:
        self.wait()
        if self.temp:
            shutil.rmtree(self.dir, ignore_errors=True)


def _bundle_bytes(bundle: Path) -> int:
    """The bytes of a bundle's files (what the next one will be about)."""
    total = 0
    for p in bundle.iterdir():
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return total


def _sorted_state(tables):
    """The state a reconcile read (ids, statuses, times), in id order: two reconciles of an
    unchanged session give equal tables whatever order the server listed the rows in."""
    tasks, results = tables
    return (tasks.sort_by("task_id").combine_chunks(),
            results.sort_by("result_id").combine_chunks())


def _same_state(a, b) -> bool:
    return all(x.num_rows == y.num_rows and x.equals(y) for x, y in zip(a, b))


def parse_min_free(value) -> tuple[str, float]:
    """``--min-free``: ``"1GiB"``, ``"500MB"``, a number of bytes, or ``"5%"`` of the file
    system; (the text, bytes or the share as a fraction)."""
    from aksnap.bundle import BundleError
    from aksnap.pack import parse_size

    text = str(value).strip()
    if text in ("0", "0B", "0%"):
        return text, 0.0  # no floor: record until the disk is full (the export then fails)
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            pct = -1.0
        if not 0 <= pct < 100:
            raise WatchError(f"--min-free {value!r} is not a share of the disk; write e.g. 5%")
        return text, pct / 100
    try:
        return text, float(parse_size(text))
    except BundleError:
        raise WatchError(f"--min-free {value!r} is not a size; write e.g. 1GiB, 500MB or "
                         "5%") from None


def _open_share(tasks, results) -> float:
    """The share of the rows that an update would refetch by id (tasks not final, results not
    complete), counted with Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from aksnap.bundle import RESULT_OPEN_STATUSES, TASK_FINAL_STATUSES

    rows = tasks.num_rows + results.num_rows
    if not rows:
        return 0.0
    open_t = tasks.num_rows - pc.sum(pc.is_in(tasks.column("status"),
                                              value_set=pa.array(TASK_FINAL_STATUSES))).as_py()
    open_r = pc.sum(pc.is_in(results.column("status"),
                             value_set=pa.array(RESULT_OPEN_STATUSES))).as_py()
    return (int(open_t or 0) + int(open_r or 0)) / rows


def _owned_open(tables, task_ids: set) -> set:
    """The open results (CREATED) of the last bundle owned by one of ``task_ids``: a task's
    end completes or aborts them, or hands them on (a parent's output to its aggregation
    child), so they are refetched with it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if tables is None or not task_ids:
        return set()
    results = tables[1]
    mask = pc.and_(pc.equal(results.column("status"), "CREATED"),
                   pc.is_in(results.column("owner_task_id"),
                            value_set=pa.array(list(task_ids), pa.string())))
    return set(results.column("result_id").filter(mask).to_pylist())


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
          jobs: Optional[int] = None, on_update: Optional[Callable[[dict[str, Any]], None]] = None,
          stop: Optional[threading.Event] = None, max_s: Optional[float] = None,
          state=None, keep: Optional[int] = None, min_free=None,
          on_notice: Optional[Callable[[str], None]] = None, retry=None,
          max_rps: Optional[float] = None,
          on_reconcile: Optional[Callable[[str], None]] = None,
          full_every: Optional[float] = None) -> WatchResult:
    """Follow ``session_id`` (or the session of ``result_id``) at ``endpoint`` until it ends.

    ``on_update(state)`` is called with the state (plain data) after every reconcile and about
    every ``interval / 5`` seconds between them. Returns when the result completes or fails
    (``code`` 0 or 1), when every task of the session is final (1 if any failed), after one
    reconcile with ``once``, when ``stop`` is set or after ``max_s`` seconds (``code`` None).
    Raises WatchError at once for an error retrying cannot cure (an unknown session or
    result: exit code 2); a refresh that fails otherwise is shown and retried.
    ``record``: a new or empty directory that keeps each new state: its bundle (the last
    ``keep``, default :data:`DEFAULT_KEEP`; 0 every one) and a line of ``states.jsonl``
    (every state). Before each state the free space of its file system is checked: when
    the next bundle would leave less than ``min_free`` (bytes, ``"1GiB"``, ``"5%"``; default
    :data:`DEFAULT_MIN_FREE`), the recording stops and the watch goes on: ``on_notice``
    gets the sentence once, and the state's ``recording.stopped`` and the result's
    ``recording_stopped`` say it. ``state``: a :class:`aksnap.analyzer.live.LiveState` of
    the caller's to fill (to read its statuses). ``retry``: the
    :class:`~aksnap.exporter.client.RetryPolicy` of every call (``--retry-for``; None: the
    exporter's default), the first included. ``on_reconcile(path)``: the bundle of each
    reconcile taken, before the state shows it (``aksnap serve`` reads its drill-downs there;
    without ``record`` it is removed when the next reconcile is taken). ``full_every``: seconds
    between full reconciles that read every open row whatever the events said (None:
    :data:`TRUST_EVERY_S`; 0: every reconcile; ``math.inf``: only when the events cannot be
    trusted).
    """
    from aksnap.analyzer.live import LiveState
    from aksnap.exporter.budget import Throttle, budget_of
    from aksnap.exporter.client import RawClient, connection_of
    from aksnap.exporter.follow import result_session
    from aksnap.exporter.listing import resolve_result_prefix, resolve_session_prefix

    if (session_id is None) == (result_id is None):
        raise WatchError("watch one thing: --session ID or --result ID")
    if not interval > 0:
        raise WatchError(f"--interval must be > 0 seconds (got {interval})")
    full_every = TRUST_EVERY_S if full_every is None else full_every
    if isinstance(full_every, bool) or not isinstance(full_every, (int, float)) \
            or not full_every >= 0:
        raise WatchError(f"--full-every must be a number of seconds >= 0 (0: every reconcile; "
                         f"inf: only when the events cannot be trusted), not {full_every!r}")
    if record is None and (keep is not None or min_free is not None):
        raise WatchError("--keep and --min-free apply to a recording; add --record DIR")
    if keep is None:
        keep = DEFAULT_KEEP
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
        raise WatchError(f"--keep {keep!r} must be a count of bundles (0: every one)")
    floor = parse_min_free(DEFAULT_MIN_FREE if min_free is None else min_free)
    record = _check_record(Path(record) if record is not None else None)
    conn = connection_of(endpoint, tls)  # the one resolver, as export and export --update
    # one load budget for every call of the watch: reconciles, lookups, subscriptions; and
    # one total of what they cost
    budget = budget_of(max_rps, jobs)
    throttle = Throttle(budget, conn.endpoint)
    throttle.keep_total()
    with RawClient(conn, retry=retry, throttle=throttle) as client:
        # an id given by its beginning is made whole (an ambiguous one refused) first
        if result_id is not None:
            result_id = resolve_result_prefix(client, result_id)
            session_id = result_session(client, result_id)
        else:
            session_id = resolve_session_prefix(client, session_id)
    if state is None:
        state = LiveState(session_id, result_id)
    else:
        state.session_id, state.result_id = session_id, result_id
    rec = _Reconciler(conn, session_id, result_id, record, keep=keep, jobs=budget.jobs,
                      min_free=floor, retry=retry, throttle=throttle)
    w = _Watch(rec, state, throttle, interval=interval, record=record, floor=floor,
               on_update=on_update, on_notice=on_notice, stop=stop or threading.Event(),
               on_reconcile=on_reconcile, full_every=float(full_every))
    try:
        if once:
            rec.run_now()  # WatchError: 2 for an unknown id, 1 for a refresh that failed
            w.announce()
            w.take(rec.outcome)
            return w.result(None)
        return w.result(w.run(max_s))
    finally:
        w.close()


class _Watch:
    """The watch's loop (:func:`watch`): events applied as they come, a reconcile planned
    (:class:`Plan`) at each interval from what they said, the interval adapted, the state
    shown."""

    def __init__(self, rec: _Reconciler, state, throttle, *, interval: float, record, floor,
                 on_update, on_notice, stop: threading.Event, on_reconcile=None,
                 full_every: float = TRUST_EVERY_S):
        self.rec, self.state, self.throttle = rec, state, throttle
        self.full_every = full_every
        self.on_reconcile = on_reconcile  # aksnap serve: each reconcile's bundle, first
        self.interval, self.record, self.floor = interval, record, floor
        self.on_update, self.on_notice, self.stop = on_update, on_notice, stop
        self.announced: list[str] = []
        self.pending: deque = deque()
        self.replay: list = []
        self.follower = None
        self.changed: tuple[set, set] = (set(), set())  # named by events since the last start
        self.idle = 0                     # reconciles in a row that found nothing changed
        self.trusted_at = 0.0             # when the last full reconcile started
        self.gap = interval               # the current interval
        self.started = time.time()
        self.info: dict[str, Any] = {"reconciles": 0, "last_reconcile_s": None,
                                     "last_reconcile_parts": {}, "rows_fetched": None,
                                     "bundle": None, "analysis": {}, "error": None}

    # -- the view

    def snapshot(self) -> dict[str, Any]:
        rec, st = self.rec, self.state.view()
        if self.follower is not None:
            fs = self.follower.stats
            st["events"] = {"received": fs.events, "subscriptions": fs.subscriptions,
                            "drops": fs.drops, "applied": self.state.events_applied,
                            "ignored_stale": self.state.events_ignored,
                            # since the first subscription (it opens after the first
                            # reconcile): the rate the stream delivered, not diluted by it
                            "per_s": round(fs.events / max(1e-9, time.time() - (
                                fs.subscribed_at or self.started)), 1)}
        st.update(self.info)
        total = self.throttle.total
        st["cost"] = {"last_reconcile": self.info.get("last_cost"),
                      "total": total.record() if total is not None else None,
                      "calls_per_min": (round(total.total_calls / max(total.wall_s, 1e-9) * 60,
                                              1) if total is not None else None),
                      "interval_s": round(self.gap, 2), "budget": self.throttle.state()}
        st.pop("last_cost", None)
        st["recorded"] = [str(p) for p in rec.recorded]
        if self.record is not None:
            st["recording"] = {"dir": str(self.record), "keep": rec.keep,
                               "min_free": self.floor[0], "states": rec.states,
                               "bundles_kept": len(rec.recorded),
                               "unchanged_not_recorded": rec.unchanged, "stopped": rec.stopped}
        return st

    def show(self) -> None:
        if self.on_update is not None:
            self.on_update(self.snapshot())

    def announce(self) -> None:
        """The sentence saying the recording stopped, once."""
        rec = self.rec
        if rec.stopped is not None and not self.announced:
            self.announced.append(rec.stopped)
            if self.on_notice is not None:
                self.on_notice(rec.stopped)

    def result(self, code) -> WatchResult:
        rec = self.rec
        rec.wait()  # what DIR holds when the watch returns
        self.announce()
        return WatchResult(code, self.snapshot(), [str(p) for p in rec.recorded], rec.stopped)

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.rec.close()

    # -- a reconcile's end

    def take(self, outcome) -> None:
        tables, analysis, path, seconds, fetched = outcome
        rec = self.rec
        if self.on_reconcile is not None:
            self.on_reconcile(path)
        self.state.load(*tables, at=rec.started_at)
        for batch in self.replay:  # events that arrived while it ran may be newer than it
            self.state.apply(batch)
        self.replay.clear()
        self.state.note_findings(analysis.pop("findings", None) or []
                                 if isinstance(analysis, dict) else [])
        self.info.update(reconciles=rec.count, last_reconcile_s=round(seconds, 3),
                         last_reconcile_parts=dict(rec.parts), last_reconcile=rec.plan.kind,
                         last_reconcile_why=rec.plan.why, rows_fetched=fetched,
                         analysis=analysis,
                         bundle=path if self.record is not None else None, error=None)

    def finished(self) -> Optional[int]:
        """A reconcile ended: take its state (or its error); the outcome when decided."""
        rec = self.rec
        if rec.error is not None and rec.permanent:
            # an unknown session, a refused selection: retrying cannot help
            raise WatchError(rec.error)
        self.announce()
        if self.follower is None:
            self._follow()  # after the first reconcile (taken or failed)
        code = None
        self.info["last_cost"] = rec.cost
        self.info["probes_unchanged"] = rec.probes
        if rec.outcome is not None:
            self.take(rec.outcome)
            rec.outcome = None
            code = self.state.outcome()
            self.idle = 0 if rec.plan.kind != "probe" else self.idle
        elif rec.error is not None:
            # the control plane unavailable, a network cut: said, and tried again
            self.info["error"] = f"{rec.error}; retrying every {self.interval:g} s"
            rec.error = None
        else:  # a probe: nothing changed
            self.idle += 1
            self.info.update(reconciles=rec.count, last_reconcile="probe",
                             last_reconcile_why="no event, the server's counts unchanged",
                             last_reconcile_s=round(time.time() - rec.started_at, 3),
                             rows_fetched=0, error=None)
        rec.thread = None
        self.replay.clear()
        self.gap = self._next_gap()
        self.show()
        return code

    def _next_gap(self) -> float:
        """The interval until the next reconcile: ``--interval``, doubled for each reconcile
        in a row that found nothing changed (up to :data:`MAX_IDLE_INTERVAL`), and never so
        short that reconciles like the last would use more than :data:`RECONCILE_SHARE` of
        the budget."""
        gap = min(max(self.interval, MAX_IDLE_INTERVAL), self.interval * 2 ** min(self.idle, 8))
        cost, rate = self.rec.cost, self.throttle.budget.max_rps
        if cost and rate != float("inf"):
            gap = max(gap, sum(cost.get("calls", {}).values()) / (rate * RECONCILE_SHARE))
        return gap

    # -- the loop

    def _follow(self) -> None:
        from aksnap.exporter.follow import EventFollower

        # The first reconcile runs alone: a new subscription replays the whole session (every
        # task and result as NEW_*, as Core does), which keeps the server busy for as long as
        # it takes to send; a capture taken meanwhile competed with it (a 200,000-task live
        # session on the simulator: the first complete view after 30 s, 17-20 s alone; see
        # docs/watch.md). Subscribing after it loses nothing: the replay is the state as of
        # the subscription, and what it shows changed since the bundle is named for the next
        # reconcile. The events asked for: a session's tasks (its results are as of the last
        # reconcile: the replay of a result per task output and input more than doubled the
        # stream), or for a result, the tasks and that result alone.
        rid = self.state.result_id
        self.follower = EventFollower(self.rec.conn, self.state.session_id, self.pending.append,
                                      results=rid if rid is not None else "none",
                                      throttle=self.throttle)
        self.follower.start()

    def plan(self, now: float) -> Plan:
        """What the next reconcile does (:class:`Plan`), from what the events said."""
        tasks, results = self.changed
        self.changed = (set(), set())
        f = self.follower
        if f is None or not f.stats.subscriptions or self.rec.last is None:
            return Plan("full", "no event stream yet")
        if now - self.trusted_at >= self.full_every:
            return Plan("full", f"every {self.full_every:g} s")
        if not tasks and not results:
            return Plan("probe", "no event")
        rows = self.rec.tables[0].num_rows + self.rec.tables[1].num_rows if self.rec.tables \
            else 0
        if not self.rec.recording and len(tasks) + len(results) >= FULL_EXPORT_OPEN_SHARE * rows:
            return Plan("full", "most rows changed")
        return Plan("changed", f"{len(tasks)} tasks and {len(results)} results changed",
                    tasks, results)

    def run(self, max_s: Optional[float]) -> Optional[int]:
        rec, state, stop = self.rec, self.state, self.stop
        rec.start(Plan("full", "first"))
        self.trusted_at = time.time()
        next_at = time.time() + self.interval
        tick = min(0.5, self.interval / 5)
        last_shown = 0.0
        while not stop.is_set():
            pending = self.pending
            while pending:
                batch = pending.popleft()
                state.apply(batch, self.changed)
                if rec.thread is not None:  # a reconcile in flight (or not yet taken)
                    self.replay.append(batch)
            if rec.thread is not None and not rec.running:
                code = self.finished()
                last_shown = time.time()
                if code is not None:
                    return code
                next_at = max(next_at, rec.started_at + self.gap)
            if state.result_id is not None and state.outcome() is not None:
                return state.outcome()  # a result's COMPLETED/ABORTED is final: trust it
            now = time.time()
            if (self.changed[0] or self.changed[1]) and self.idle:
                self.idle = 0  # the session moves again: back to --interval
                self.gap = self._next_gap()
                next_at = min(next_at, rec.started_at + self.gap)
            if rec.thread is None and now >= next_at:
                plan = self.plan(now)
                if plan.kind == "full":
                    self.trusted_at = now
                rec.start(plan)
                next_at = now + self.gap
            if self.on_update is not None and now - last_shown >= tick:
                self.show()
                last_shown = now
            if max_s is not None and now - self.started >= max_s:
                return None
            stop.wait(0.02 if pending else 0.05)
        return None


# -- rendering ----------------------------------------------------------------------------


def _head(st: dict[str, Any], width: int) -> str:
    """The view's first line: what is watched (the session said once) and how far it is, fit
    to ``width`` columns: when it would wrap, the figures on a line of their own, then the
    ids cut to their first 8 characters (a prefix ``watch`` takes), the session's first."""
    a = st.get("analysis") or {}
    pct = a.get("lineage_percent_complete") if st.get("result_id") else st["percent_complete"]
    figures = (f"{pct if pct is not None else '?'} % complete, {st['tasks']} tasks, "
               f"{st['failed_tasks']} failed")

    def what(rid: str, sid: str) -> str:
        return (f"result {rid} ({st['result_status'] or 'unknown yet'}) in session {sid}"
                if st.get("result_id") else f"session {sid}")

    rid, sid = str(st.get("result_id") or ""), str(st["session_id"])
    line = f"aksnap watch: {what(rid, sid)}: {figures}"
    if len(line) <= width:
        return line
    short = [(rid, sid), (rid, sid[:8] + "…"), (rid[:8] + "…", sid[:8] + "…")]
    for r, s in short:
        line = f"aksnap watch: {what(r, s)}"
        if len(line) <= width:
            return f"{line}\n{figures}"
    return f"aksnap watch: {what(*short[-1])}\n{figures}"


def render_view(st: dict[str, Any], width: Optional[int] = None):
    """A rich renderable of the state (ids and messages escaped: they come from the cluster),
    its first line fit to ``width`` (default: the terminal's)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from aksnap.analyzer.common import fmt_seconds
    from aksnap.output import safe_text

    def t(x: Any) -> Text:
        return Text(safe_text("" if x is None else str(x)))

    if width is None:
        width = shutil.get_terminal_size().columns
    a = st.get("analysis") or {}
    head = Text(safe_text(_head(st, width), keep="\n"), style="bold")
    status = Table(title="tasks by status", title_justify="left")
    for k in st["tasks_by_status"]:
        status.add_column(k, justify="right")
    status.add_row(*[str(v) for v in st["tasks_by_status"].values()])
    eta = st["eta_s"]
    rate = Text(safe_text(f"throughput {st['throughput_tasks_per_s']} tasks/s, ETA "
                          f"{'unknown' if eta is None else f'{eta:.0f} s'} (basis: "
                          f"{st['eta_basis']})"))
    parts = [head, status, rate]
    if st.get("findings"):  # the verdict first: what is wrong, as it appears
        fd = Table(title="findings", title_justify="left")
        for c in ("severity", "claim", "since"):
            fd.add_column(c)
        for f in st["findings"]:
            fd.add_row(t(f["severity"]), t(f["claim"]),
                       t(f"+{f['seen_at']} s" + (" new" if f.get("new") else "")))
        parts.append(fd)
    if a.get("frontier"):
        total, shown = a.get("frontier_total", 0), len(a["frontier"])
        which = "" if shown >= total or st.get("result_id") else \
            f"; the {shown} holding up most"
        ft = Table(title=f"blocking frontier ({total} nodes{which}, longest waiting first)",
                   title_justify="left")
        for c in ("kind", "id", "status", "waiting_s", "waiting_for"):
            ft.add_column(c)
        for r in a["frontier"]:
            ft.add_row(*[t(fmt_seconds(r.get(c)) if c == "waiting_s" else r.get(c))
                         for c in ("kind", "id", "status", "waiting_s", "waiting_for")])
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
    cost = st.get("cost") or {}
    if cost.get("total"):
        from aksnap.exporter.budget import cost_phrase

        last = cost.get("last_reconcile")
        foot += (f"\ncost: last reconcile ({st.get('last_reconcile', '?')}) "
                 f"{cost_phrase(last) if last else 'none yet'}; total "
                 f"{cost_phrase(cost['total'])}; {cost.get('calls_per_min')} calls/min; next "
                 f"in {cost.get('interval_s')} s")
    rec = st.get("recording")
    if rec:
        foot += (f"; recording stopped ({rec['states']} states kept in {rec['dir']})"
                 if rec["stopped"] else
                 f"; recorded {rec['states']} states in {rec['dir']} ({rec['bundles_kept']} "
                 f"bundles kept, {rec['unchanged_not_recorded']} unchanged not recorded)")
    parts.append(Text(safe_text(foot), style="dim"))
    return Group(*parts)


WATCH_HELP = """Follow a running session (or one result) live: progress, throughput and ETA, the
    blocking frontier, new failures and their root causes.

    Follows Events.GetEvents and reconciles every --interval seconds with the incremental
    export. Exits 0 when the result completes (a session: every task final, none failed),
    1 when it fails, 130 on Ctrl-C. -o json prints one JSON state per reconcile (one line
    each), -o yaml one YAML document each; --once -o json prints one refreshed state.

    Example: aksnap watch --endpoint 10.0.0.1:5001 --result 7f3e... --record ./run-42-series
    """

OUTPUT = OutputGroup(FORMATS)


def _watch_params() -> tuple:
    """The options of ``aksnap watch``: what to follow and how, the recording, then the
    connection group (declared once, with ``aksnap export``'s) and -o."""
    from aksnap.exporter.commands import CONNECTION

    return (
        Param("session", Optional[str], typer.Option(None, "--session", "-s", help="Session to "
                                                     "watch.", show_default=False)),
        Param("result", Optional[str], typer.Option(None, "--result", "-r", help="Result to "
                                                    "watch (its lineage; ends when it completes "
                                                    "or fails).", show_default=False)),
        Param("interval", float, typer.Option(DEFAULT_INTERVAL, "--interval", help="Seconds "
                                              "between reconciles (list calls, incremental).")),
        Param("once", bool, typer.Option(False, "--once", help="One refreshed state, then exit "
                                         "0.")),
        Param("full_every", float, typer.Option(
            TRUST_EVERY_S, "--full-every", metavar="SECONDS", help="Seconds between full "
            "reconciles, which read every open row whatever the events said (a change whose "
            "event was lost is seen within this); each is about an export of the session, so "
            "raise it for sessions of millions of tasks (0: every reconcile; inf: only when "
            "the events cannot be trusted).")),
        Param("record", Optional[Path], typer.Option(
            None, "--record", metavar="DIR", help="Record each new state in DIR (new or empty): "
            "a bundle, the incremental update of the previous one, and a line of "
            "DIR/states.jsonl (a state equal to the last recorded one is not recorded again).",
            show_default=False, callback=paths.dir_out)),
        Param("keep", Optional[int], typer.Option(
            None, "--keep", metavar="N", help=f"With --record: keep the bundles of the last N "
            f"states (default {DEFAULT_KEEP}; 0: every one); older states keep their line in "
            "states.jsonl, so `aksnap analyze DIR` still shows every state.",
            show_default=False)),
        Param("min_free", Optional[str], typer.Option(
            None, "--min-free", metavar="SIZE|N%", help="With --record: stop recording (the "
            "watch goes on) before the free space of DIR's file system would fall below SIZE "
            f"(default {DEFAULT_MIN_FREE}; e.g. 500MB, 5%, 0 for no floor).",
            show_default=False)),
        *CONNECTION,
        *OUTPUT.params(),
    )


def watch_body(values: dict[str, Any]) -> None:
    """The body of ``aksnap watch``."""
    session, result, interval, once, record, keep, min_free, full_every = (values[k] for k in (
        "session", "result", "interval", "once", "record", "keep", "min_free", "full_every"))
    import sys

    from aksnap.errors import Interrupted
    from aksnap.output import safe_text, to_json, to_yaml

    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    fmt, _ = OUTPUT.take(values)
    from aksnap.exporter.commands import take_connection

    options, retry, budget = take_connection(values)
    conn = options.resolve()  # the one resolver, as export and export --update
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
                live.update(render_view(st, console.width), refresh=True)
        else:
            def on_update(st, _last=[0]):
                if st["reconciles"] != _last[0]:
                    _last[0] = st["reconciles"]
                    console.print(render_view(st, console.width))
    from aksnap.exporter.commands import notices_on_stderr

    try:
        with notices_on_stderr():  # the exporter's retry notices, as `export` shows them
            res = watch(conn, session_id=session, result_id=result, interval=interval, once=once,
                        record=record, on_update=on_update, keep=keep, min_free=min_free,
                        retry=retry, jobs=budget.jobs, max_rps=budget.max_rps,
                        full_every=full_every,
                        on_notice=lambda sentence: typer.echo(f"aksnap: {safe_text(sentence)}",
                                                              err=True))
    except KeyboardInterrupt:
        if live is not None:
            live.stop()
        if latest:  # -o json|yaml: the state when interrupted, last
            emit(latest[0])
        where = f"; the bundles so far are in {record}" if record is not None else ""
        raise Interrupted(f"watch interrupted{where}") from None
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

            console = Console()
            console.print(render_view(res.state, console.width))
        raise typer.Exit(0)
    end = res.state
    what = f"result {end['result_id']}" if result else f"session {end['session_id']}"
    verdict = {0: "completed", 1: "failed"}.get(res.code, "stopped")
    typer.echo(f"aksnap: {what} {verdict}", err=True)
    raise typer.Exit(res.code if res.code is not None else 0)


def register(app: typer.Typer) -> None:
    app.command("watch")(typer_function("watch", WATCH_HELP, _watch_params(), watch_body))
