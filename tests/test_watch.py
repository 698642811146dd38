"""``aksnap watch``: the watched state converges to the server's truth, whatever the events do.

Given a seeded htcmock session served over real gRPC with its clock frozen, a watch runs in a
thread with a short reconcile interval while the event stream loses, duplicates and reorders
events and drops every few hundred events (or the server restarts on the same port); the
clock is moved on; then within one reconcile interval (plus the reconcile's own time) every
task's and result's status in the watcher equals the server's view. The exit codes, --once,
--record and Ctrl-C are checked through the CLI.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from aksnap.analyzer.live import LiveState
from aksnap.bundle import read_manifest, verify_bundle
from aksnap.cli import app
from aksnap.fixtures.scenarios import build_scenario
from aksnap.fixtures.server import Faults, SimulatedControlPlane
from aksnap.cli.watch import watch

INTERVAL = 0.6
NASTY = dict(events_loss_rate=0.3, events_duplicate_rate=0.2, events_reorder_window=16,
             events_drop_after=150, seed=5)


def truth(cp, session):
    """Every task's and result's status in the session, as the server has them now."""
    import pyarrow.compute as pc

    v = cp.view()
    t = v.tasks.filter(pc.equal(v.tasks.column("session_id"), session))
    r = v.results.filter(pc.equal(v.results.column("session_id"), session))
    tasks = {i: s.removeprefix("TASK_STATUS_") for i, s in
             zip(t.column("id").to_pylist(), t.column("status").to_pylist())}
    results = {i: s.removeprefix("RESULT_STATUS_") for i, s in
               zip(r.column("result_id").to_pylist(), r.column("status").to_pylist())}
    return tasks, results


def watched(state: LiveState):
    from aksnap.bundle import RESULT_STATUSES, TASK_STATUSES

    t, r = state.tasks, state.results
    return ({t.ids[i]: TASK_STATUSES[t.codes[i]] for i in range(t.n)},
            {r.ids[i]: RESULT_STATUSES[r.codes[i]] for i in range(r.n)})


class Watching:
    """watch() in a thread, its updates counted."""

    def __init__(self, endpoint, session, **kw):
        self.kw = getattr(self, "kw", kw)
        self.state = LiveState(session)
        self.stop = threading.Event()
        self.updates: list[dict] = []
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(endpoint, session), daemon=True)
        self.thread.start()

    def _run(self, endpoint, session):
        self.result = watch(endpoint, session_id=session, stop=self.stop, state=self.state,
                            on_update=self.updates.append, **{"interval": INTERVAL, **self.kw})

    def reconciles(self) -> int:
        return self.updates[-1]["reconciles"] if self.updates else 0

    def wait_reconciles(self, n: int, timeout: float = 30) -> None:
        end = time.time() + timeout
        while self.reconciles() < n and time.time() < end and self.thread.is_alive():
            time.sleep(0.05)
        assert self.reconciles() >= n, "no reconcile came"

    def close(self):
        self.stop.set()
        self.thread.join(timeout=30)


def converges(w: Watching, cp, session, changed_at: float) -> float:
    """Seconds from ``changed_at`` until the watcher equals the server (fails after 2
    intervals plus the time a reconcile takes)."""
    want = truth(cp, session)
    limit = changed_at + 2 * INTERVAL + 5
    while time.time() < limit:
        if watched(w.state) == want:
            return time.time() - changed_at
        time.sleep(0.05)
    got = watched(w.state)
    wrong = [k for k, v in want[0].items() if got[0].get(k) != v]
    raise AssertionError(f"not converged: {len(wrong)} tasks differ, e.g. {wrong[:3]}; "
                         f"{len(got[0])} watched vs {len(want[0])} tasks")


@pytest.fixture()
def htcmock():
    scenario = build_scenario("htcmock", seed=6, tasks=300)
    return scenario, scenario.truth["session"], scenario.cluster.end_time


def test_state_converges_despite_lost_duplicated_reordered_events_and_drops(htcmock):
    """Given events lost (30 %), duplicated (20 %), reordered (windows of 16) and a stream
    that drops every 150 events, when the frozen clock moves twice, then each time the
    watcher equals the server within one reconcile interval (plus the reconcile), and the
    follower resubscribed after the drops."""
    scenario, session, end = htcmock
    with SimulatedControlPlane(scenario, at=0.2 * end, faults=Faults(**NASTY)) as cp:
        ep = cp.start()
        w = Watching(ep, session)
        try:
            w.wait_reconciles(1)
            for frac in (0.5, 0.8):
                cp.at = frac * end
                took = converges(w, cp, session, time.time())
                assert took < 2 * INTERVAL + 5
            ev = w.updates[-1]["events"]
            assert ev["subscriptions"] >= 2 and ev["drops"] >= 1
        finally:
            w.close()


def test_state_converges_after_the_server_restarts(htcmock):
    """Given a watch, when the control plane stops and a new one (the clock moved on) starts
    on the same port, then the follower resubscribes, the reconciles resume (their outage
    retried) and the state equals the new server's."""
    scenario, session, end = htcmock
    cp = SimulatedControlPlane(scenario, at=0.3 * end)
    ep = cp.start()
    port = int(ep.rsplit(":", 1)[1])
    w = Watching(ep, session)
    try:
        w.wait_reconciles(1)
        cp.stop()
        time.sleep(2 * INTERVAL)
        cp = SimulatedControlPlane(scenario, at=0.7 * end)
        cp.start(port=port)
        before = w.reconciles()
        w.wait_reconciles(before + 1)
        converges(w, cp, session, time.time())
        assert w.updates[-1]["events"]["subscriptions"] >= 2
    finally:
        w.close()
        cp.stop()


def test_a_session_watch_ends_0_when_every_task_completed_and_1_after_failures():
    ok = build_scenario("chain", seed=1, tasks=20)
    with SimulatedControlPlane(ok, at=ok.cluster.end_time + 1) as cp:
        res = watch(cp.start(), session_id=ok.truth["session"], interval=INTERVAL, max_s=30)
    assert res.code == 0 and res.state["percent_complete"] == 100.0
    bad = build_scenario("failures", seed=1)
    with SimulatedControlPlane(bad) as cp:
        res = watch(cp.start(), session_id=bad.truth["main_session"], interval=INTERVAL, max_s=30)
    assert res.code == 1 and res.state["failed_tasks"] > 0
    causes = {c["id"] for c in res.state["analysis"]["root_causes"]}
    assert causes & set(bad.truth["root_cause_tasks"])


def test_a_result_watch_ends_when_the_result_completes_or_fails():
    """A watched result ends the watch as soon as it is known complete (0) or failed (1):
    here the clock is moved past its completion while the watch runs."""
    sc = build_scenario("demo", seed=0)
    with SimulatedControlPlane(sc, at=sc.snapshot_at) as cp:
        ep = cp.start()
        res = watch(ep, result_id=sc.truth["failed_result"], interval=INTERVAL, max_s=30)
        assert res.code == 1 and res.state["result_status"] == "ABORTED"
        stop_at = time.time() + 1.0
        mover = threading.Timer(0.5, lambda: setattr(cp, "at", sc.cluster.end_time + 1))
        mover.start()
        res = watch(ep, result_id=sc.truth["straggler_result"], interval=INTERVAL, max_s=30)
        mover.join()
    assert res.code == 0 and res.state["result_status"] == "COMPLETED"
    assert time.time() >= stop_at - 0.6


def test_cli_once_json_record_and_refusals(htcmock, tmp_path):
    scenario, session, end = htcmock
    runner = CliRunner()
    with SimulatedControlPlane(scenario, at=0.4 * end) as cp:
        ep = cp.start()
        r = runner.invoke(app, ["watch", "--endpoint", ep, "--session", session, "--once",
                                "-o", "json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        tasks, _ = truth(cp, session)
        assert doc["tasks"] == len(tasks) and doc["reconciles"] == 1
        assert doc["analysis"]["frontier"] and doc["eta_basis"]
        import yaml

        r = runner.invoke(app, ["watch", "--endpoint", ep, "--session", session, "--once",
                                "-o", "yaml"])
        assert r.exit_code == 0 and yaml.safe_load(r.stdout)["tasks"] == len(tasks)
        # --record: a bundle per new state, each the update of the one before
        stop = threading.Event()
        threading.Timer(1.5 * INTERVAL, lambda: setattr(cp, "at", 0.5 * end)).start()
        threading.Timer(3 * INTERVAL + 2, stop.set).start()
        res = watch(ep, session_id=session, interval=INTERVAL, record=tmp_path / "series",
                    stop=stop)
        assert len(res.bundles) >= 2
        ms = [read_manifest(b) for b in res.bundles]
        assert ms[0].update is None and ms[1].update["parent"]["digest"] == ms[0].digest()
        assert all(verify_bundle(b) == [] for b in res.bundles)
        r = runner.invoke(app, ["watch", "--endpoint", ep, "--session", session, "--record",
                                str(tmp_path / "series")])
        assert r.exit_code == 2 and "not empty" in r.output
        r = runner.invoke(app, ["watch", "--endpoint", ep, "--session", session, "--result", "x"])
        assert r.exit_code == 2 and "--session ID or --result ID" in r.output
        r = runner.invoke(app, ["watch", "--endpoint", ep, "--result", "no-such-result", "--once"])
        assert r.exit_code == 2 and "unknown result id no-such-result" in r.output


def test_ctrl_c_exits_130_with_a_sentence(htcmock):
    scenario, session, end = htcmock
    with SimulatedControlPlane(scenario, at=0.4 * end) as cp:
        ep = cp.start()
        proc = subprocess.Popen([sys.executable, "-m", "aksnap", "watch", "--endpoint", ep,
                                 "--session", session, "-o", "json", "--interval", "0.5"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline()  # the first reconcile's state
            assert json.loads(first)["session_id"] == session
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert err.strip() == "aksnap: error: watch interrupted" or "watch interrupted" in err
    assert "Traceback" not in err


def test_failures_before_the_watch_are_not_new_and_later_ones_are():
    """The replay and the first reconcile describe the past: their failures are known, not
    new; a task failing afterwards is listed once, however many times events repeat it."""
    st = LiveState("s")
    st.apply([("task", "old-fail", "ERROR"), ("task", "ok", "PROCESSING")])
    import pyarrow as pa

    tasks = pa.table({"task_id": ["old-fail", "ok"], "session_id": ["s", "s"],
                      "status": ["ERROR", "PROCESSING"],
                      "created_at": pa.array([None, None], pa.timestamp("us", tz="UTC")),
                      "ended_at": pa.array([None, None], pa.timestamp("us", tz="UTC"))})
    results = pa.table({"result_id": ["r"], "session_id": ["s"], "status": ["CREATED"],
                        "owner_task_id": ["ok"]})
    st.load(tasks, results)
    assert st.view()["new_failures"] == []
    st.apply([("task", "ok", "ERROR"), ("task", "ok", "ERROR"), ("task", "ok", "PROCESSING")])
    v = st.view()
    assert [f["task_id"] for f in v["new_failures"]] == ["ok"]
    assert v["tasks_by_status"] == {"ERROR": 2} and st.events_ignored == 1  # stale: ignored


def test_the_stream_opens_after_the_first_capture_and_asks_for_task_events_only(htcmock,
                                                                             monkeypatch):
    """A subscription replays the whole session (every task and result), which kept the server
    busy while the first capture ran. Given a session watch, then its follower starts only
    once the first export returned, asking for task events only; given the follower asked
    for one result, it gets every task's events and that result's alone."""
    import aksnap.exporter as exporter_pkg
    from aksnap.exporter.client import resolve_connection
    from aksnap.exporter.follow import EventFollower

    scenario, session, end = htcmock
    order = []
    real_export, real_start = exporter_pkg.export, EventFollower.start

    def export(*a, **k):
        s = real_export(*a, **k)
        order.append("exported")
        return s

    def start(self):
        order.append(("subscribed", self.results))
        return real_start(self)

    monkeypatch.setattr(exporter_pkg, "export", export)
    monkeypatch.setattr(EventFollower, "start", start)
    with SimulatedControlPlane(scenario, at=0.5 * end) as cp:
        ep = cp.start()
        res = watch(ep, session_id=session, interval=INTERVAL, max_s=2.5)
        assert order[:2] == ["exported", ("subscribed", "none")]
        monkeypatch.setattr(EventFollower, "start", real_start)
        target = truth(cp, session)[1]
        rid = next(iter(target))
        for results, want in (("none", set()), (rid, {rid})):
            got = []
            f = EventFollower(resolve_connection(ep), session, got.extend, results=results)
            f.start()
            deadline = time.time() + 30
            tasks = set(truth(cp, session)[0])
            while time.time() < deadline and not (
                    {o for k, o, _ in got if k == "task"} == tasks
                    and {o for k, o, _ in got if k == "result"} == want):
                time.sleep(0.05)
            time.sleep(0.3)  # (nothing else comes)
            f.stop()
            f.join(timeout=10)
            assert {o for k, o, _ in got if k == "result"} == want
            assert {o for k, o, _ in got if k == "task"} == tasks


def test_a_frozen_session_is_probed_with_two_calls_and_the_interval_grows(htcmock):
    """Given a frozen session (many rows open), when watched, then after the first capture
    each reconcile is a probe of two count calls (CountTasksByStatus, a count-only
    ListResults), fetching no row, the interval doubles while nothing changes, the view shows
    the cost per reconcile and in total, and the state is the server's. When the clock then
    moves, the watch converges, and the reconcile that follows refetches only what the events
    named (far fewer rows than the session holds)."""
    scenario, session, end = htcmock
    with SimulatedControlPlane(scenario, at=0.3 * end) as cp:
        ep = cp.start()
        w = Watching(ep, session)
        try:
            w.wait_reconciles(4)
            last = w.updates[-1]
            assert last["last_reconcile"] == "probe" and last["rows_fetched"] == 0
            assert last["cost"]["last_reconcile"]["calls"] == {"CountTasksByStatus": 1,
                                                               "ListResults": 1}
            assert last["cost"]["interval_s"] >= 4 * INTERVAL
            total = last["cost"]["total"]
            assert total["calls"]["GetEvents"] == 1 and total["rows_received"]["tasks"] >= 1
            from rich.console import Console

            from aksnap.cli.watch import render_view

            console = Console(width=400, record=True)
            console.print(render_view(last))
            shown = console.export_text()
            assert "cost: last reconcile (probe) 2 calls (" in shown and "calls/min" in shown
            assert watched(w.state) == truth(cp, session)
            seen = w.reconciles()
            cp.at = 0.31 * end  # a few tasks move
            converges(w, cp, session, time.time())
            w.wait_reconciles(seen + 1)
            moved = next(u for u in w.updates if u["reconciles"] == seen + 1)
            assert moved["last_reconcile"] == "changed", moved["last_reconcile_why"]
            assert 0 < moved["rows_fetched"] < (moved["tasks"] + moved["results"]) / 2
        finally:
            w.close()
    assert watched(w.state) == truth(cp, session)


def test_a_reconcile_that_cannot_trust_the_events_of_a_mostly_open_session_reexports(
        htcmock, monkeypatch):
    """Refetching open rows by id (500 a request) costs the server more than paging through
    every row once many are open. Given a frozen session with at least 10 % of its rows open,
    no --record, and every reconcile a full one (--full-every 0: the events never trusted),
    then every reconcile fetches every row (a full export), and the state is the server's."""
    scenario, session, end = htcmock
    with SimulatedControlPlane(scenario, at=0.3 * end) as cp:
        ep = cp.start()
        w = Watching(ep, session, full_every=0)
        try:
            w.wait_reconciles(2)
            first = next(u for u in w.updates if u["reconciles"] == 1)
            assert w.updates[-1]["rows_fetched"] == first["rows_fetched"] \
                == first["tasks"] + first["results"]
            assert w.updates[-1]["last_reconcile"] == "export"
            assert watched(w.state) == truth(cp, session)
        finally:
            w.close()


def test_full_every_inf_leaves_a_frozen_session_to_its_probes_and_a_bad_value_is_refused(
        htcmock):
    """Given a frozen session watched with --full-every inf (a 10M-task session, where each
    full reconcile is an export), then no reconcile is a full one for its age and, once the
    event stream is up, each is a probe; with --full-every 0.001 the same watch reads every
    open row each time ("every 0.001 s"); --full-every -1 or nan is one sentence, exit 2,
    before any call."""
    runner = CliRunner()
    scenario, session, end = htcmock

    def whys(w) -> list[tuple[str, str]]:
        w.wait_reconciles(5)
        by = {u["reconciles"]: (u["last_reconcile"], u.get("last_reconcile_why", ""))
              for u in w.updates if "last_reconcile" in u}
        return [by[k] for k in sorted(by) if k >= 2]

    with SimulatedControlPlane(scenario, at=0.3 * end) as cp:
        ep = cp.start()
        for every, aged in ((math.inf, False), (0.001, True)):
            w = Watching(ep, session, full_every=every, interval=0.2)  # 5 reconciles twice
            try:
                got = whys(w)
            finally:
                w.close()
            assert any(why.startswith("every ") for _, why in got) == aged, got
            assert (got[-1][0] == "probe") != aged, got
        before = cp.requests.snapshot()["requests"]
        for bad in ("-1", "nan"):
            r = runner.invoke(app, ["watch", "--endpoint", ep, "--session", session,
                                    "--full-every", bad, "--once"])
            assert r.exit_code == 2 and "--full-every must be a number of seconds >= 0" in \
                r.stderr and "Traceback" not in r.output, r.output
        assert cp.requests.snapshot()["requests"] == before


def test_the_watch_keeps_to_its_budget_as_the_server_counts(htcmock):
    """Given --max-rps 6, when a moving session is watched (the first export, reconciles,
    the subscription), then the server never counts more than 6 requests in a second."""
    scenario, session, end = htcmock
    with SimulatedControlPlane(scenario, at=0.2 * end) as cp:
        ep = cp.start()
        stop = threading.Event()
        updates = []
        t = threading.Thread(target=lambda: watch(ep, session_id=session, interval=0.3,
                                                  stop=stop, max_rps=6,
                                                  on_update=updates.append), daemon=True)
        t.start()
        try:
            deadline = time.time() + 30
            while not (updates and updates[-1]["reconciles"] >= 2) and time.time() < deadline:
                time.sleep(0.05)
            cp.at = 0.5 * end
            time.sleep(2.0)
        finally:
            stop.set()
            t.join(timeout=30)
        seen = cp.requests.snapshot()
    assert updates[-1]["reconciles"] >= 2
    assert seen["requests"] >= 12 and seen["busiest_second"] <= 6, seen["per_second"]
    assert updates[-1]["cost"]["budget"]["rate"] == 6.0


# -- --record: retention, unchanged states, the disk-space guard ---------------------------


class Recording(Watching):
    """watch(record=...) in a thread; its notices kept."""

    def __init__(self, endpoint, session, record, **kw):
        self.notices: list[str] = []
        self.record, self.kw = record, kw
        super().__init__(endpoint, session)

    def _run(self, endpoint, session):
        self.result = watch(endpoint, session_id=session, interval=0.3, stop=self.stop,
                            state=self.state, on_update=self.updates.append, record=self.record,
                            on_notice=self.notices.append, **self.kw)

    def settle(self, extra: int = 2) -> None:
        """Wait for ``extra`` more reconciles: one may have begun before a change."""
        self.wait_reconciles(self.reconciles() + extra)


def _bundles(d):
    """The recorded bundles (not the hidden directory of a reconcile in flight)."""
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _counts(cp, session):
    from collections import Counter

    return dict(Counter(truth(cp, session)[0].values()))


def test_record_keep_3_leaves_three_bundles_and_every_state_of_the_series(htcmock, tmp_path):
    """Given a frozen htcmock session recorded with --keep 3, when several reconciles see no
    change, then one state only is recorded (a frozen session does not fill the disk); when
    the clock then moves five times, then DIR holds exactly the last 3 bundles, yet
    `aksnap analyze DIR` (and the report) still has every state in order, each with the
    server's counts at that time, the pruned ones from states.jsonl."""
    from aksnap.analyzer import series

    scenario, session, end = htcmock
    d = tmp_path / "series"
    with SimulatedControlPlane(scenario, at=0.2 * end) as cp:
        ep = cp.start()
        w = Recording(ep, session, d, keep=3)
        try:
            w.wait_reconciles(4)
            st = w.updates[-1]["recording"]
            assert st["states"] == 1 and st["unchanged_not_recorded"] >= 3
            assert len(_bundles(d)) == 1
            want = [_counts(cp, session)]
            for frac in (0.3, 0.4, 0.5, 0.6, 0.7):
                cp.at = frac * end
                want.append(_counts(cp, session))
                w.settle()
        finally:
            w.close()
    assert w.result is not None and w.notices == []
    assert sorted(p.name for p in d.iterdir()) == [*_bundles(d), "states.jsonl"]  # none partial
    assert len(_bundles(d)) == 3 and [str(d / b) for b in _bundles(d)] == w.result.bundles
    assert all(verify_bundle(d / b) == [] for b in _bundles(d))
    data = series.build(d)
    states = data["states"]
    assert len(states) >= 6 and data["kept"] == 3
    assert [s["kept"] for s in states] == [False] * (len(states) - 3) + [True] * 3
    got = [s["tasks_by_status"] for s in states]
    # each state the server was frozen at, in order (a reconcile running while the clock
    # moved may add a state in between, as a live export of a moving cluster does)
    at = [got.index(c) for c in want]
    assert at == sorted(at) and at[0] == 0 and at[-1] == len(got) - 1, (got, want)
    elapsed = [s["elapsed_s"] for s in states]
    assert elapsed == sorted(elapsed) and elapsed[0] == 0
    runner = CliRunner()
    r = runner.invoke(app, ["analyze", str(d), "-o", "json"])
    assert r.exit_code == 0 and len(json.loads(r.stdout)["states"]) == len(states)
    r = runner.invoke(app, ["report", str(d), "--out", str(tmp_path / "r.html"), "-o", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["recorded_states"] == len(states)


def test_low_disk_stops_recording_with_one_sentence_and_keeps_the_states(htcmock, tmp_path,
                                                                       monkeypatch):
    """Given a recording with states, when DIR's file system gets short of space (below
    --min-free once the next bundle is written), then the recording stops with one sentence
    (said once), the states already written stay intact, nothing more lands in DIR while the
    cluster moves on, and the watch goes on reconciling and showing the cluster's state."""
    import shutil
    from collections import namedtuple

    Usage = namedtuple("Usage", "total used free")
    free = {"bytes": 500 * 2**30}
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: Usage(1000 * 2**30, 1000 * 2**30 - free["bytes"],
                                           free["bytes"]))
    scenario, session, end = htcmock
    d = tmp_path / "series"
    with SimulatedControlPlane(scenario, at=0.2 * end) as cp:
        ep = cp.start()
        w = Recording(ep, session, d, min_free="1GiB")
        try:
            w.wait_reconciles(1)
            cp.at = 0.4 * end
            w.settle()
            assert w.updates[-1]["recording"]["states"] >= 2
            free["bytes"] = 2**30 + 1000  # the next bundle would go below the floor
            w.settle(3)
            stopped = w.updates[-1]["recording"]
            assert stopped["stopped"] and w.notices == [stopped["stopped"]]
            before = {b: (d / b / "manifest.json").read_bytes() for b in _bundles(d)}
            lines = (d / "states.jsonl").read_text()
            for frac in (0.6, 0.8):
                went_on = w.reconciles()
                cp.at = frac * end
                w.settle()
                assert w.reconciles() > went_on
            last = w.updates[-1]
            assert last["tasks"] == len(truth(cp, session)[0])
        finally:
            w.close()
    n = stopped["states"]
    assert len(w.notices) == 1, w.notices
    assert w.notices[0] == (f"stopped recording into {d}: 1.1 GB free on its file system, and "
                            f"the next state (about {w.notices[0].split('about ')[1].split(')')[0]}"
                            f") would leave less than --min-free 1GiB; the {n} states recorded "
                            "are kept, and the watch goes on without recording")
    assert w.result.recording_stopped == w.notices[0] and last["recording"]["states"] == n
    assert len(lines.splitlines()) == n and len(before) == n
    assert {b: (d / b / "manifest.json").read_bytes() for b in _bundles(d)} == before
    assert (d / "states.jsonl").read_text() == lines
    assert sorted(p.name for p in d.iterdir()) == [*before, "states.jsonl"]
    assert all(verify_bundle(d / b) == [] for b in before)


def test_cli_low_disk_and_bad_recording_options(htcmock, tmp_path, monkeypatch):
    """Given --once --record with less free space than --min-free, then the state is shown
    (exit 0), stderr has the one sentence, and DIR holds nothing; --keep -1, --keep without
    --record and a --min-free that is no size are sentences with exit 2."""
    import shutil
    from collections import namedtuple

    scenario, session, end = htcmock
    runner = CliRunner()
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: namedtuple("U", "total used free")(10**10, 10**10 - 10**8,
                                                                       10**8))
    with SimulatedControlPlane(scenario, at=0.4 * end) as cp:
        ep = cp.start()
        d = tmp_path / "low"
        r = runner.invoke(app, ["watch", "--endpoint", ep, "--session", session, "--once",
                                "-o", "json", "--record", str(d), "--min-free", "5%"])
        assert r.exit_code == 0, r.output
        assert r.stderr.strip().startswith("aksnap: stopped recording into")
        assert "--min-free 5%" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert json.loads(r.stdout)["recording"]["stopped"] and list(d.iterdir()) == []
    for args, say in ((["--record", str(tmp_path / "a"), "--keep", "-1"], "--keep"),
                      (["--keep", "3"], "add --record"),
                      (["--record", str(tmp_path / "b"), "--min-free", "lots"], "not a size")):
        r = runner.invoke(app, ["watch", "--endpoint", "127.0.0.1:1", "--session", "s", *args])
        assert r.exit_code == 2 and say in r.stderr and "Traceback" not in r.output, r.output


# -- errors that retrying cannot cure end the watch at once ----------------------------------


def test_an_unknown_session_exits_2_at_once_with_or_without_once(htcmock):
    """Given a session id the cluster does not know, when `aksnap watch` runs without --once
    (and with), then it exits 2 with one sentence within seconds, instead of showing "last
    refresh failed" forever; an unknown --result does too. A prefix of a session id is no
    longer unknown: it names the session (tests/test_new_user.py)."""
    from aksnap.cli.watch import WatchError

    scenario, session, end = htcmock
    runner = CliRunner()
    with SimulatedControlPlane(scenario, at=0.4 * end) as cp:
        ep = cp.start()
        t0 = time.time()
        with pytest.raises(WatchError, match="unknown session id no-such-session") as e:
            watch(ep, session_id="no-such-session", interval=5, max_s=60)
        assert e.value.exit_code == 2 and time.time() - t0 < 10
        for sid, once in (("no-such-session", []), ("no-such-session", ["--once"])):
            t0 = time.time()
            r = runner.invoke(app, ["watch", "--endpoint", ep, "--session", sid, "--interval",
                                    "5", *once])
            assert r.exit_code == 2 and time.time() - t0 < 10, r.output
            err = r.stderr.strip()
            assert err.startswith(f"aksnap: error: unknown session id {sid}") and "\n" not in err
        r = runner.invoke(app, ["watch", "--endpoint", ep, "--result", "no-such-result"])
        assert r.exit_code == 2 and "unknown result id no-such-result" in r.stderr
        r = runner.invoke(app, ["watch", "--endpoint", ep, "--session", session[:8], "--once",
                                "-o", "json"])
        assert r.exit_code == 0 and json.loads(r.stdout)["session_id"] == session, r.output


def test_a_transient_failure_is_said_and_retried(htcmock, monkeypatch):
    """Given the control plane unavailable for the first two refreshes, then the watch does
    not end: its state says the refresh failed and that it is retrying, and it shows the
    session once the control plane answers."""
    import aksnap.exporter as exporter_pkg
    from aksnap.exporter.client import ExportError

    scenario, session, end = htcmock
    real = exporter_pkg.export
    calls = []

    def export(*a, **k):
        calls.append(1)
        if len(calls) <= 2:
            raise ExportError("the control plane at 127.0.0.1 stayed UNAVAILABLE after retrying")
        return real(*a, **k)

    monkeypatch.setattr(exporter_pkg, "export", export)
    updates = []
    with SimulatedControlPlane(scenario, at=0.4 * end) as cp:
        ep = cp.start()
        stop = threading.Event()

        def on_update(st):
            updates.append(st)
            if st["reconciles"] >= 1:
                stop.set()

        res = watch(ep, session_id=session, interval=0.3, stop=stop, on_update=on_update,
                    max_s=30)
    errors = [u["error"] for u in updates if u["error"]]
    assert errors and "UNAVAILABLE" in errors[0] and "retrying every 0.3 s" in errors[0]
    assert res.state["reconciles"] >= 1 and res.state["error"] is None and len(calls) >= 3


def test_a_ctrl_c_inside_a_reconciles_thread_start_leaves_nothing_to_join(monkeypatch):
    """Given a Ctrl-C that lands inside Thread.start() of a reconcile (seen under load: the
    watch exited 1 with 'cannot join thread before it is started' instead of 130), when the
    watch closes its reconciler, then nothing raises (the exit stays the interruption's)."""
    from aksnap.cli.watch import _Reconciler

    rec = _Reconciler(None, "s", None, None, keep=1, jobs=1)

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rec.start()
    monkeypatch.undo()
    rec.close()
