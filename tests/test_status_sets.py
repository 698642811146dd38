"""One definition of failed, final and open: ``analyze``, ``query throughput``, the report's data
and the watch's live state count the same tasks in each set of the vocabulary
(``aksnap.columns.STATUS_SETS``), on the same bundles.

Before, "failed" had three spellings: analyze counted ERROR, TIMEOUT, CANCELLED, CANCELLING;
throughput and the report "ended and not COMPLETED" (RETRIED included); the watch ERROR,
TIMEOUT, CANCELLED. On the failure bundle analyze said 3 failed and throughput 4.
"""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap.analyzer import report
from aksnap.analyzer.live import LiveState
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import anomaly_bundle, failure_bundle, make_bundle, result, task
from aksnap.bundle import TASK_FINAL_STATUSES, TASK_STATUSES
from aksnap.cli import app
from aksnap.columns import TASK_PARTITION, set_counts

#: what each command calls the sets of TASK_PARTITION
ANALYZE = {"success": "completed", "failed": "failed", "retried": "retried",
           "cancelled": "cancelled", "open": "running"}
ENDED = ("success", "failed", "retried", "cancelled")  # the final sets: tasks with ended_at


def every_status_bundle(out):
    """One task in each of ArmoniK's 14 task statuses (final ones ended at 5 s), its output
    COMPLETED, ABORTED or CREATED accordingly: each set's count is known by construction."""
    tasks, results = [], []
    for st in TASK_STATUSES:
        final = st in TASK_FINAL_STATUSES
        tid = f"t-{st.lower()}"
        tasks.append(task(tid, status=st, outputs=[f"r-{st.lower()}"],
                          times=dict(created=0, submitted=1, acquired=2, fetched=2, started=3,
                                     processed=4, ended=5) if final else dict(created=0)))
        results.append(result(f"r-{st.lower()}", owner=tid,
                              status="COMPLETED" if st == "COMPLETED" else
                              "ABORTED" if final and st != "RETRIED" else "CREATED",
                              completed=5 if st == "COMPLETED" else None))
    return make_bundle(out, tasks=tasks, results=results)


def htcmock_export(out):
    """A seeded HtcMock run with injected errors (ERROR) and exceptions (RETRIED, and the
    CANCELLED first subtasks of a retried parent), exported over real gRPC at 60 % of its
    span, so open tasks remain."""
    from aksnap.exporter import export
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario("htcmock", seed=3, tasks=200, error_rate=0.1, exception_rate=0.15)
    with SimulatedControlPlane(sc, at=0.6 * sc.cluster.end_time) as cp:
        export(cp.start("127.0.0.1", 0), out, all_sessions=True)
    return out


BUNDLES = {"failure": failure_bundle, "anomaly": anomaly_bundle, "every_status": every_status_bundle,
           "htcmock": htcmock_export}


@pytest.fixture(scope="module", params=sorted(BUNDLES))
def bundle(request, tmp_path_factory):
    return request.param, BUNDLES[request.param](tmp_path_factory.mktemp(request.param) / "b")


def _truth(b):
    """Per session: each set's count, from the rows themselves; and over tasks with ended_at."""
    t = pq.read_table(b / "tasks.parquet", columns=["session_id", "status", "ended_at"])
    out = {}
    for sid in sorted(set(t.column("session_id").to_pylist())):
        mine = t.filter(pc.equal(t.column("session_id"), sid))
        ended = mine.filter(pc.is_valid(mine.column("ended_at")))
        by = lambda x: {s: x.column("status").to_pylist().count(s) for s in TASK_STATUSES}  # noqa: E731
        out[sid] = (set_counts("tasks", by(mine)), set_counts("tasks", by(ended)), mine.num_rows)
    return out


def _cli_json(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_analyze_throughput_report_and_watch_count_the_same_sets(bundle):
    """Given a bundle (hand-drawn failures, anomalies, one task per status, an HtcMock export
    with errors, retries and cancellations), when `analyze -o json`, `query throughput`, the
    report's data and the watch's live state describe it, then each counts the same tasks as
    completed, failed (ERROR, TIMEOUT), retried, cancelled and open (the rows' own statuses
    read through the vocabulary), the five add up to the tasks, and throughput and the report's
    time bins count exactly the tasks that ended, by the same final sets."""
    name, b = bundle
    truth = _truth(b)
    analyzed = {s["session_id"]: s for s in _cli_json("analyze", b, "-o", "json")["sessions"]}
    flow: dict[str, dict[str, int]] = {}
    for row in _cli_json("query", b, "throughput", "-o", "json"):
        f = flow.setdefault(row["session_id"], dict.fromkeys(ENDED, 0))
        for k in ENDED:
            f[k] += row[ANALYZE[k]]
    with Snapshot.open(b) as snap:
        page = {s["overview"]["session_id"]: s for s in report.build(snap)["sessions"]}
    tasks, results = pq.read_table(b / "tasks.parquet"), pq.read_table(b / "results.parquet")
    assert set(analyzed) == set(truth)
    for sid, (sets, ended, n) in truth.items():
        assert sum(sets[k] for k in TASK_PARTITION) == n, (name, sid)
        a = analyzed[sid]
        assert {k: a[ANALYZE[k]] for k in TASK_PARTITION} == {k: sets[k] for k in TASK_PARTITION}, (name, sid)
        assert flow.get(sid, dict.fromkeys(ENDED, 0)) == {k: ended[k] for k in ENDED}, (name, sid)
        if sid in page:
            o, tl = page[sid]["overview"], page[sid]["timeline"]
            assert {k: o[ANALYZE[k]] for k in TASK_PARTITION} == {k: sets[k] for k in TASK_PARTITION}
            assert {k: sum(tl[ANALYZE[k]]) for k in ENDED} == {k: ended[k] for k in ENDED}, (name, sid)
        live = LiveState(sid)
        live.load(tasks, results)
        v = live.view()
        assert (v["failed_tasks"], v["retried_tasks"], v["cancelled_tasks"], v["open_tasks"]) == \
            (sets["failed"], sets["retried"], sets["cancelled"], sets["open"]), (name, sid)
        assert v["tasks"] - v["open_tasks"] == sets["final"]


def test_the_bundles_hold_every_set(bundle):
    """The comparison above means something: together the bundles hold tasks of every set
    (an HtcMock export alone: failed, retried, cancelled, open and completed tasks)."""
    name, b = bundle
    sets = {k: sum(v[0][k] for v in _truth(b).values()) for k in TASK_PARTITION}
    if name in ("htcmock", "every_status"):
        assert all(sets.values()), (name, sets)
    if name == "failure":
        assert (sets["failed"], sets["retried"]) == (3, 1)  # throughput said 4 failed before
