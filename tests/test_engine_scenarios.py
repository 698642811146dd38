"""Each scenario's ground truth holds in the tables the engine renders."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from aksnap.fixtures.scenarios import build_scenario


def _by(table, key="id"):
    return {r[key]: r for r in table.to_pylist()}


@pytest.fixture(scope="module")
def failures():
    sc = build_scenario("failures", seed=11)
    v = sc.cluster.view(sc.snapshot_at)
    return sc, v, _by(v.tasks), _by(v.results, "result_id")


def test_failures_root_causes_ran_and_failed_on_their_own(failures):
    """Given the failures scenario at its end, then X is ERROR with an output error, Z's last
    attempt is ERROR after max retries, T is TIMEOUT without processed_at; all three started."""
    sc, _, tasks, _ = failures
    x, z, t = (tasks[i] for i in sc.truth["root_cause_tasks"])
    assert x["id"] == sc.truth["failed_task"]
    assert x["status"] == "TASK_STATUS_ERROR" and x["output"]["error"]
    assert z["status"] == "TASK_STATUS_ERROR" and "max retries" in z["status_message"]
    assert t["status"] == "TASK_STATUS_TIMEOUT" and t["processed_at"] is None
    assert t["id"] in sc.truth["timeout_tasks"]
    assert all(r["started_at"] is not None for r in (x, z, t))


def test_failures_propagated_errors_have_no_start_and_end_with_their_cause(failures):
    """Given the failures scenario, then every propagated error task is ERROR, never started,
    and ended at the same instant as the failure that doomed it; the results are ABORTED."""
    sc, _, tasks, results = failures
    for tid in sc.truth["propagated_error_tasks"]:
        t = tasks[tid]
        assert t["status"] == "TASK_STATUS_ERROR"
        assert t["started_at"] is None and t["ended_at"] is not None
        assert "was aborted because task" in t["status_message"]
    x = tasks[sc.truth["failed_task"]]
    for name_idx in range(4):  # B, C, D, E end with X
        assert tasks[sc.truth["propagated_error_tasks"][name_idx]]["ended_at"] == x["ended_at"]
    for rid in sc.truth["aborted_results"]:
        assert results[rid]["status"] == "RESULT_STATUS_ABORTED"
    assert results[sc.truth["failed_result"]]["owner_task_id"] == sc.truth["failed_task"]


def test_failures_retry_ownership_moves_to_the_last_attempt(failures):
    """Given Y raised once, then Y is RETRIED, Y###1 COMPLETED, and Y's output is owned by
    Y###1 after one owner change from Y."""
    sc, v, tasks, results = failures
    y = sc.truth["retried_then_succeeded"][0]
    attempts = sc.truth["retry_attempts"][y]
    assert attempts == [y, f"{y}###1"]
    assert tasks[y]["status"] == "TASK_STATUS_RETRIED"
    assert tasks[attempts[1]]["status"] == "TASK_STATUS_COMPLETED"
    out = tasks[y]["expected_output_ids"][0]
    assert results[out]["owner_task_id"] == attempts[1]
    assert results[out]["status"] == "RESULT_STATUS_COMPLETED"
    oc = v.owner_changes.filter(pc.equal(v.owner_changes.column("result_id"), out)).to_pylist()
    assert [(c["previous_owner_id"], c["current_owner_id"]) for c in oc] == [(y, attempts[1])]


def test_failures_exhausted_retries_stop_at_max_retries(failures):
    """Given Z always raises with max_retries 2, then exactly 3 attempts exist: two RETRIED,
    the last ERROR."""
    sc, _, tasks, _ = failures
    z = sc.truth["retries_exhausted"][0]
    attempts = sc.truth["retry_attempts"][z]
    assert attempts == [z, f"{z}###1", f"{z}###2"]
    assert [tasks[a]["status"] for a in attempts] == [
        "TASK_STATUS_RETRIED", "TASK_STATUS_RETRIED", "TASK_STATUS_ERROR"]
    assert tasks[attempts[-1]]["options"]["max_retries"] == 2


def test_failures_retried_parent_cancels_its_subtasks_and_aborts_what_it_created(failures):
    """Given Q raised after submitting subtasks, then those subtasks are CANCELLED without
    starting, the results Q created are ABORTED, and Q###1's own subtasks complete."""
    sc, _, tasks, results = failures
    q = sc.truth["retried_parent"]
    assert tasks[q]["status"] == "TASK_STATUS_RETRIED"
    assert len(sc.truth["cancelled_subtasks"]) == 3
    for tid in sc.truth["cancelled_subtasks"]:
        t = tasks[tid]
        assert t["status"] == "TASK_STATUS_CANCELLED" and t["started_at"] is None
        assert t["created_by"] == q and t["ended_at"] == tasks[q]["ended_at"]
    assert sc.truth["aborted_by_retry"]
    for rid in sc.truth["aborted_by_retry"]:
        assert results[rid]["status"] == "RESULT_STATUS_ABORTED"
        assert results[rid]["created_by"] == q
    retry_kids = [t for t in tasks.values() if t["created_by"] == f"{q}###1"
                  and t["initial_task_id"] == t["id"]]
    assert len(retry_kids) == 3
    assert all(t["status"] == "TASK_STATUS_COMPLETED" for t in retry_kids)


def test_failures_cancelled_session_cancels_tasks_and_aborts_results(failures):
    """Given the cancelled session, then the session is CANCELLED with cancelled_at, its
    non-completed tasks are CANCELLED at that instant, and none of its results is CREATED."""
    sc, v, tasks, results = failures
    sid = sc.truth["cancelled_session"]
    sess = _by(v.sessions, "session_id")[sid]
    assert sess["status"] == "SESSION_STATUS_CANCELLED" and sess["cancelled_at"] is not None
    mine = [t for t in tasks.values() if t["session_id"] == sid]
    assert {t["status"] for t in mine} <= {"TASK_STATUS_CANCELLED", "TASK_STATUS_COMPLETED"}
    cancelled = [t for t in mine if t["status"] == "TASK_STATUS_CANCELLED"]
    assert sorted(t["id"] for t in cancelled) == sorted(sc.truth["cancelled_tasks"])
    assert any(t["started_at"] is not None for t in cancelled)  # some were running
    assert all(t["ended_at"] == sess["cancelled_at"] for t in cancelled)
    assert not [r for r in results.values() if r["session_id"] == sid
                and r["status"] == "RESULT_STATUS_CREATED"]


def test_failures_paused_session_holds_its_tasks_until_resumed(failures):
    """Given the paused session, when viewed inside the pause window, then it is PAUSED and so
    are its queued tasks; after resume they are submitted again and finally complete."""
    sc, _, tasks, _ = failures
    sid = sc.truth["paused_session"]
    cl = sc.cluster
    mid = cl.view(10.0)
    sess = _by(mid.sessions, "session_id")[sid]
    assert sess["status"] == "SESSION_STATUS_PAUSED"
    mine = mid.tasks.filter(pc.equal(mid.tasks.column("session_id"), sid))
    assert set(mine.column("status").to_pylist()) == {"TASK_STATUS_PAUSED"}
    assert sorted(mine.column("id").to_pylist()) == sorted(sc.truth["paused_tasks"])
    for tid in sc.truth["paused_tasks"]:
        assert tasks[tid]["status"] == "TASK_STATUS_COMPLETED"
        assert tasks[tid]["started_at"].timestamp() >= cl.start_time + 20.0


@pytest.fixture(scope="module", params=[0, 3])
def stuck(request):
    sc = build_scenario("stuck", seed=request.param)
    v = sc.cluster.view(sc.snapshot_at)
    return sc, v, _by(v.tasks), _by(v.results, "result_id")


def test_stuck_blocked_result_waits_for_the_running_straggler_only(stuck):
    """Given the stuck scenario at snapshot_at, then the blocked result is CREATED, owned by
    the PENDING reduce, whose only incomplete input is the straggler's output; the straggler
    is PROCESSING."""
    sc, _, tasks, results = stuck
    tr = sc.truth
    assert results[tr["blocked_result"]]["status"] == "RESULT_STATUS_CREATED"
    assert results[tr["blocked_result"]]["owner_task_id"] == tr["blocked_task"]
    red = tasks[tr["blocked_task"]]
    assert red["status"] == "TASK_STATUS_PENDING"
    missing = [r for r in red["data_dependencies"]
               if results[r]["status"] != "RESULT_STATUS_COMPLETED"]
    assert missing == [tr["straggler_result"]]
    assert tasks[tr["straggler_task"]]["status"] == "TASK_STATUS_PROCESSING"
    assert results[tr["straggler_result"]]["owner_task_id"] == tr["straggler_task"]


def test_stuck_task_on_a_partition_without_pods_stays_submitted_forever(stuck):
    """Given the gpu partition has no pods, then the starved task is SUBMITTED at snapshot_at
    and still after the end; its dependent stays PENDING."""
    sc, v, tasks, _ = stuck
    tr = sc.truth
    part = _by(v.partitions)[tr["starved_partition"]]
    assert part["pod_max"] == 0
    assert tasks[tr["starved_task"]]["status"] == "TASK_STATUS_SUBMITTED"
    assert tasks[tr["starved_task"]]["options"]["partition_id"] == "gpu"
    end = _by(sc.cluster.view(sc.cluster.end_time + 3600).tasks)
    assert end[tr["starved_task"]]["status"] == "TASK_STATUS_SUBMITTED"
    assert end[tr["starved_dependent"]]["status"] == "TASK_STATUS_PENDING"
    assert end[tr["blocked_task"]]["status"] == "TASK_STATUS_COMPLETED"


@pytest.fixture(scope="module", params=[0, 1, 2])
def demo(request):
    sc = build_scenario("demo", seed=request.param)
    v = sc.cluster.view(sc.snapshot_at)
    return sc, v, _by(v.tasks), _by(v.results, "result_id")


def test_demo_is_small_and_mid_run(demo):
    """Given the demo, then it has 200-400 tasks and, at snapshot_at, is neither empty nor
    finished."""
    sc, v, tasks, _ = demo
    assert 200 <= v.tasks.num_rows <= 400
    assert sc.snapshot_at < sc.cluster.end_time
    assert any(t["status"] == "TASK_STATUS_PROCESSING" for t in tasks.values())


def test_demo_failure_propagates_up_tree_a_to_its_root_output(demo):
    """Given the demo, then the failed leaf returned an error output, each aggregation above it
    failed by propagation (ERROR, no start), and each level's output is ABORTED up to tree A's
    root output; the failed result is owned by the failed task."""
    sc, _, tasks, results = demo
    tr = sc.truth
    leaf = tasks[tr["failed_task"]]
    assert leaf["status"] == "TASK_STATUS_ERROR" and leaf["started_at"] is not None
    assert tr["failed_result"] in leaf["expected_output_ids"]
    assert results[tr["failed_result"]]["owner_task_id"] == tr["failed_task"]
    assert len(tr["propagated_error_tasks"]) >= 1
    for tid in tr["propagated_error_tasks"]:
        assert tasks[tid]["status"] == "TASK_STATUS_ERROR" and tasks[tid]["started_at"] is None
    for rid in tr["aborted_results"]:
        assert results[rid]["status"] == "RESULT_STATUS_ABORTED"
    assert tr["aborted_results"][-1] == tr["failed_root_result"]
    # each aborted level's output is owned by the aggregation that failed for it
    for tid, rid in zip(tr["propagated_error_tasks"], tr["aborted_results"][1:]):
        assert results[rid]["owner_task_id"] == tid


def test_demo_blocked_result_waits_behind_the_straggler(demo):
    """Given the demo at snapshot_at, then tree B's root output is CREATED and owned by the top
    aggregation (PENDING), every aggregation of the blocking chain is PENDING, the straggler is
    PROCESSING, and a flaky leaf was retried once and succeeded."""
    sc, _, tasks, results = demo
    tr = sc.truth
    assert results[tr["blocked_result"]]["status"] == "RESULT_STATUS_CREATED"
    assert results[tr["blocked_result"]]["owner_task_id"] == tr["blocked_task"]
    for tid in tr["blocking_chain"]:
        assert tasks[tid]["status"] == "TASK_STATUS_PENDING"
    assert tasks[tr["straggler_task"]]["status"] == "TASK_STATUS_PROCESSING"
    assert results[tr["straggler_result"]]["status"] == "RESULT_STATUS_CREATED"
    flaky = tr["retried_then_succeeded"][0]
    assert tasks[flaky]["status"] == "TASK_STATUS_RETRIED"
    assert tasks[f"{flaky}###1"]["status"] == "TASK_STATUS_COMPLETED"
    others = [t for t in tasks.values() if t["id"] not in tr["blocking_chain"]
              and t["id"] != tr["straggler_task"]]
    assert all(t["status"] in ("TASK_STATUS_COMPLETED", "TASK_STATUS_ERROR",
                               "TASK_STATUS_RETRIED") for t in others)


def test_demo_eventually_completes_tree_b():
    """Given the demo run past the straggler, then tree B's root output is COMPLETED."""
    sc = build_scenario("demo", seed=0)
    end = _by(sc.cluster.view(sc.cluster.end_time).results, "result_id")
    assert end[sc.truth["blocked_result"]]["status"] == "RESULT_STATUS_COMPLETED"
    assert end[sc.truth["failed_root_result"]]["status"] == "RESULT_STATUS_ABORTED"


def test_htcmock_depth_and_size_are_configurable():
    """Given htcmock with tasks=1000 and depth=6, then about 1000 tasks exist, the deepest
    parent_task_ids has depth+1 entries (session first), and all complete."""
    sc = build_scenario("htcmock", seed=3, tasks=1000, depth=6)
    v = sc.cluster.view(sc.snapshot_at)
    assert abs(v.tasks.num_rows - 1000) <= 1
    lens = pc.list_value_length(v.tasks.column("parent_task_ids"))
    # aggregation tasks of depth-5 nodes sit one level below them: depth 6 + session
    assert pc.max(lens).as_py() <= 7
    assert sc.truth["max_depth"] == 6
    firsts = pc.list_element(v.tasks.column("parent_task_ids"), 0).unique().to_pylist()
    assert firsts == [sc.truth["session"]]
    assert set(v.tasks.column("status").to_pylist()) == {"TASK_STATUS_COMPLETED"}


def test_task_ids_shard_evenly_on_their_first_hex_digit():
    """Given htcmock with 2000 tasks, then all 16 first hex digits occur (STARTS_WITH shards)."""
    sc = build_scenario("htcmock", seed=1, tasks=2000)
    ids = sc.cluster.view(sc.snapshot_at).tasks.column("id")
    firsts = set(pc.utf8_slice_codeunits(ids, 0, 1).to_pylist())
    assert firsts == set("0123456789abcdef")
    assert pa.types.is_string(ids.type)


def test_owner_follows_each_retry_of_a_result_that_changed_hands_twice(failures):
    """Given Z's output moves Z -> Z###1 -> Z###2, when viewed between the two retries, then
    its owner is Z###1; before the first, Z; after the second, Z###2."""
    sc, _, tasks, _ = failures
    z0, z1, z2 = sc.truth["retry_attempts"][sc.truth["retries_exhausted"][0]]
    out = tasks[z0]["expected_output_ids"][0]
    cl = sc.cluster

    def owner_at(ts):
        t = ts.timestamp() - cl.start_time
        res = cl.view(t).results
        return res.filter(pc.equal(res.column("result_id"), out)).to_pylist()[0]["owner_task_id"]

    assert owner_at(tasks[z1]["created_at"]) == z1
    assert owner_at(tasks[z2]["created_at"]) == z2
    before = tasks[z1]["created_at"].timestamp() - cl.start_time - 1e-3
    res = cl.view(before).results
    assert res.filter(pc.equal(res.column("result_id"), out)).to_pylist()[0]["owner_task_id"] == z0


@pytest.mark.parametrize("name,tasks", [("stuck", 3000), ("demo", 3000), ("demo", 40)])
def test_straggler_scenarios_keep_their_truth_at_any_size(name, tasks):
    """Given stuck or demo sized far from its default, then at snapshot_at the straggler still
    runs and the blocked result still waits (the straggler outlasts the rest at any size)."""
    sc = build_scenario(name, seed=4, tasks=tasks)
    v = sc.cluster.view(sc.snapshot_at)
    tasks_by_id, results = _by(v.tasks), _by(v.results, "result_id")
    assert tasks_by_id[sc.truth["straggler_task"]]["status"] == "TASK_STATUS_PROCESSING"
    assert results[sc.truth["blocked_result"]]["status"] == "RESULT_STATUS_CREATED"
    assert tasks_by_id[sc.truth["blocked_task"]]["status"] == "TASK_STATUS_PENDING"


def test_stuck_paused_session_holds_its_queued_tasks_forever(stuck):
    """Given the second session paused at 0.6 s and never resumed, then at snapshot_at and
    after the end it is PAUSED, its three tasks PAUSED (submitted, never acquired), their
    output CREATED and the task reading it PENDING."""
    sc, v, tasks, results = stuck
    tr = sc.truth
    for view in (v, sc.cluster.view(sc.cluster.end_time + 60)):
        sess = _by(view.sessions, "session_id")[tr["paused_session"]]
        assert sess["status"] == "SESSION_STATUS_PAUSED"
        by_id = _by(view.tasks)
        for tid in tr["paused_tasks"]:
            assert by_id[tid]["status"] == "TASK_STATUS_PAUSED"
            assert by_id[tid]["submitted_at"] is not None and by_id[tid]["acquired_at"] is None
        assert by_id[tr["paused_dependent"]]["status"] == "TASK_STATUS_PENDING"
    assert results[tr["paused_result"]]["status"] == "RESULT_STATUS_CREATED"


def test_htcmock_faults_fail_leaves_and_retry_nodes():
    """Given htcmock with 5% erroring leaves and 5% flaky nodes, then each error task is ERROR
    with an output error, each flaky node is RETRIED and its ###1 attempt ends, and the root
    output is ABORTED when any leaf failed."""
    sc = build_scenario("htcmock", seed=2, tasks=600, error_rate=0.05, exception_rate=0.05)
    v = sc.cluster.view(sc.snapshot_at)
    tasks, results = _by(v.tasks), _by(v.results, "result_id")
    assert sc.truth["error_tasks"] and sc.truth["flaky_tasks"]
    for tid in sc.truth["error_tasks"]:
        assert tasks[tid]["status"] == "TASK_STATUS_ERROR" and tasks[tid]["output"]["error"]
    for tid in sc.truth["flaky_tasks"]:
        assert tasks[tid]["status"] == "TASK_STATUS_RETRIED"
        assert tasks[f"{tid}###1"]["status"] != "TASK_STATUS_RETRIED"
    assert results[sc.truth["final_result"]]["status"] == "RESULT_STATUS_ABORTED"
