"""The analyzer against the simulated control plane: scenarios whose ground truth is known.

Each scenario is served over real gRPC by ``SimulatedControlPlane``, exported with
``aksnap.exporter.export`` into a bundle, and analyzed; the analyzer must name what the scenario
made happen (the task it made fail, the straggler it made block a result).
"""

from __future__ import annotations

import pytest

from aksnap.analyzer import api, blockers, lineage, task_view
from aksnap.analyzer.snapshot import Snapshot

scenarios = pytest.importorskip("aksnap.fixtures.scenarios")
server_mod = pytest.importorskip("aksnap.fixtures.server")
exporter = pytest.importorskip("aksnap.exporter")


def _exported(name: str, tmp_path_factory, **kw):
    sc = scenarios.build_scenario(name, seed=0, **kw)
    out = tmp_path_factory.mktemp(name) / f"{name}.aksnap"
    with server_mod.SimulatedControlPlane(sc) as cp:
        exporter.export(cp.start(), out, all_sessions=True)
    return sc.truth, Snapshot.open(out)


@pytest.fixture(scope="module")
def failures(tmp_path_factory):
    return _exported("failures", tmp_path_factory)


@pytest.fixture(scope="module")
def stuck(tmp_path_factory):
    return _exported("stuck", tmp_path_factory)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return _exported("demo", tmp_path_factory)


def test_failures_root_cause_of_the_failed_result_is_the_failed_task(failures):
    truth, snap = failures
    d = lineage.build(snap, truth["failed_result"])
    assert d["root_causes"][0]["id"] == truth["failed_task"]


def test_failures_every_root_cause_task_is_an_origin_and_no_propagated_one_is(failures):
    truth, snap = failures
    origins = {r["id"] for r in api.root_causes(snap, session_id=truth["main_session"])}
    assert set(truth["root_cause_tasks"]) <= origins
    assert not origins & set(truth["propagated_error_tasks"])
    for t in truth["propagated_error_tasks"]:
        assert task_view.build(snap, t)["propagated_failure"]


def test_failures_retry_chains_match_the_attempts(failures):
    truth, snap = failures
    chains = {c["initial_task_id"]: c["attempt_ids"] for c in snap.query("retry_chains").to_pylist()}
    for initial, attempts in truth["retry_attempts"].items():
        assert chains[initial] == attempts


def test_stuck_straggler_holds_the_blocked_result(stuck):
    truth, snap = stuck
    d = lineage.build(snap, truth["blocked_result"])
    assert [f["id"] for f in d["frontier"]] == [truth["straggler_task"]]
    top = blockers.build(snap, truth["session"])["blockers"]
    assert top[0]["id"] == truth["straggler_task"]
    assert truth["starved_task"] in {b["id"] for b in top}
    strag = snap.query("stragglers").column("task_id").to_pylist()
    assert truth["straggler_task"] in strag


def test_demo_failure_and_straggler(demo):
    truth, snap = demo
    d = lineage.build(snap, truth["failed_root_result"])
    assert [r["id"] for r in d["root_causes"]] == [truth["failed_task"]]
    assert d["root_causes"][0]["explains"] >= len(truth["aborted_results"])
    d = lineage.build(snap, truth["blocked_result"])
    assert [f["id"] for f in d["frontier"]] == [truth["straggler_task"]]
    assert blockers.build(snap, truth["session"])["blockers"][0]["id"] == truth["straggler_task"]
    ov = api.overview(snap)
    s = ov["sessions"][0]
    assert s["root_causes"][0]["id"] == truth["failed_task"]
    assert s["top_blockers"][0]["id"] == truth["straggler_task"]
    assert api.check(snap)["total"] == 0, api.check(snap)["anomalies"]
