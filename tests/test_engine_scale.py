"""The scale scenarios and the epoch shift, small: what they promise, checked on a few hundred
tasks (the big runs live in bench/)."""

from __future__ import annotations

import pyarrow.compute as pc

from aksnap.fixtures.scenarios import anchor, build_scenario


def test_shifting_the_epoch_equals_building_with_it():
    """Given a scenario built at its seeded epoch, when its epoch is shifted in place, then
    every table at every time equals the same scenario built at the new epoch."""
    shifted = build_scenario("failures", seed=5)
    anchor(shifted, 1_800_000_000.25)
    rebuilt = build_scenario("failures", seed=5, start_time=1_800_000_000.25)
    for t in (0.0, 0.7, 5.0, 12.5, shifted.snapshot_at):
        a, b = shifted.cluster.view(t), rebuilt.cluster.view(t)
        assert a.version == b.version
        for kind in ("tasks", "results", "sessions", "partitions", "owner_changes"):
            assert getattr(a, kind).equals(getattr(b, kind)), (t, kind)


def test_htcmock_final_has_the_same_tree_as_the_simulated_htcmock():
    """Given one seed, size and depth, the numpy-built final state has the simulated run's
    tree: as many tasks, leaves and levels; everything completed; one owner change per
    non-root node plus one per aggregation."""
    sim = build_scenario("htcmock", seed=7, tasks=800)
    fin = build_scenario("htcmock-final", seed=7, tasks=800)
    for key in ("n_tasks", "leaves", "max_depth"):
        assert fin.truth[key] == sim.truth[key]
    v = fin.cluster.view(fin.snapshot_at)
    assert pc.all(pc.equal(v.tasks.column("status"), "TASK_STATUS_COMPLETED")).as_py()
    assert v.results.num_rows == sim.cluster.view(sim.snapshot_at).results.num_rows
    owner = dict(zip(v.results.column("result_id").to_pylist(),
                     v.results.column("owner_task_id").to_pylist()))
    assert owner[fin.truth["final_result"]] == fin.truth["final_owner"]


def test_htcmock_final_faults_propagate_to_the_root_output():
    """Given error leaves, the root output is ABORTED and the top aggregation is ERROR
    without started_at; a flaky leaf's retry is ``id###1`` and completes."""
    sc = build_scenario("htcmock-final", seed=2, tasks=600, error_rate=0.05,
                        exception_rate=0.05)
    assert sc.truth["error_tasks"] and sc.truth["flaky_tasks"]
    v = sc.cluster.view(sc.snapshot_at)
    results = dict(zip(v.results.column("result_id").to_pylist(),
                       v.results.column("status").to_pylist()))
    assert results[sc.truth["final_result"]] == "RESULT_STATUS_ABORTED"
    tasks = {r["id"]: r for r in v.tasks.select(["id", "status", "started_at"]).to_pylist()}
    top = tasks[sc.truth["final_owner"]]
    assert top["status"] == "TASK_STATUS_ERROR" and top["started_at"] is None
    flaky = sc.truth["flaky_tasks"][0]
    assert tasks[flaky]["status"] == "TASK_STATUS_RETRIED"
    assert tasks[flaky + "###1"]["status"] == "TASK_STATUS_COMPLETED"


def test_many_makes_one_session_per_job():
    """Given 30 sessions of about 20 tasks, each session holds one finished HtcMock job."""
    sc = build_scenario("many", seed=1, tasks=600, sessions=30)
    v = sc.cluster.view(sc.snapshot_at)
    assert v.sessions.num_rows == 30 == len(sc.truth["sessions"])
    counts = pc.value_counts(v.tasks.column("session_id")).to_pylist()
    assert len(counts) == 30 and all(15 <= c["counts"] <= 25 for c in counts)
    assert pc.all(pc.equal(v.tasks.column("status"), "TASK_STATUS_COMPLETED")).as_py()
