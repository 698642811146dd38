"""The simulation engine and its scenarios: wire shape, time travel and each scenario's truth."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from aksnap.fixtures import model
from aksnap.fixtures.scenarios import SCENARIOS, build_scenario


def _status_counts(table) -> dict[str, int]:
    return {d["values"]: d["counts"] for d in pc.value_counts(table.column("status")).to_pylist()}


def _row(table, key: str, value: str) -> dict:
    rows = table.filter(pc.equal(table.column(key), value)).to_pylist()
    assert len(rows) == 1, f"{key}={value}: {len(rows)} rows"
    return rows[0]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_view_tables_match_the_ptars_wire_schemas(name):
    """Given any scenario, when viewed at start, snapshot and beyond the end,
    then every table has exactly the ptars schema and round-trips through ptars."""
    sc = build_scenario(name, seed=2)
    cl = sc.cluster
    for t in (0.0, sc.snapshot_at, cl.end_time / 3, cl.end_time + 100):
        v = cl.view(t)
        assert v.tasks.schema.equals(model.task_schema())
        assert v.results.schema.equals(model.result_schema())
        assert v.sessions.schema.equals(model.session_schema())
        assert v.partitions.schema.equals(model.partition_schema())
        for table, handler in ((v.tasks, model.task_handler()),
                               (v.results, model.result_handler())):
            if table.num_rows:
                batch = table.combine_chunks().to_batches()[0]
                raw = handler.record_batch_to_array(batch)
                assert handler.list_to_record_batch(raw.to_pylist()).num_rows == table.num_rows


def test_same_t_returns_the_same_view_object_and_versions_track_changes():
    """Given a cluster, when view(t) is asked twice, then the same object comes back; a time
    with more events has another version; a time past the end has the final version."""
    cl = build_scenario("fanout", seed=1).cluster
    a = cl.view(3.0)
    assert cl.view(3.0) is a
    b = cl.view(cl.end_time / 2)
    assert b.version != a.version
    assert cl.view(cl.end_time).version == cl.view(cl.end_time + 1e6).version


def test_rows_appear_only_once_created_and_timestamps_after_t_are_null():
    """Given htcmock, when viewed mid-run, then no row is created after t and no timestamp is
    later than t."""
    sc = build_scenario("htcmock", seed=4)
    cl = sc.cluster
    t = cl.end_time / 2
    v = cl.view(t)
    limit = cl.start_time + t
    for col in ("created_at", "submitted_at", "received_at", "acquired_at", "fetched_at",
                "started_at", "processed_at", "ended_at", "pod_ttl"):
        mx = pc.max(v.tasks.column(col)).as_py()
        assert mx is None or mx.timestamp() <= limit + 1e-6, col
    assert 0 < cl.view(2.0).tasks.num_rows < cl.view(cl.end_time).tasks.num_rows


def test_htcmock_ends_completed_and_the_root_output_moved_to_the_top_aggregation():
    """Given htcmock run to the end, then every task is COMPLETED and the root's output is
    owned by the aggregation task the root submitted, after one owner change."""
    sc = build_scenario("htcmock", seed=5, tasks=300)
    v = sc.cluster.view(sc.snapshot_at)
    assert _status_counts(v.tasks) == {"TASK_STATUS_COMPLETED": sc.truth["n_tasks"]}
    assert abs(sc.truth["n_tasks"] - 300) <= 1
    res = _row(v.results, "result_id", sc.truth["final_result"])
    assert res["status"] == "RESULT_STATUS_COMPLETED"
    assert res["owner_task_id"] == sc.truth["final_owner"]
    agg = _row(v.tasks, "id", sc.truth["final_owner"])
    assert agg["created_by"] == sc.truth["root_task"]
    assert agg["parent_task_ids"] == [sc.truth["session"], sc.truth["root_task"]]
    changes = v.owner_changes.filter(pc.equal(v.owner_changes.column("result_id"),
                                              sc.truth["final_result"])).to_pylist()
    assert [(c["previous_owner_id"], c["current_owner_id"]) for c in changes] == [
        (sc.truth["root_task"], sc.truth["final_owner"])]


def test_chain_runs_one_task_at_a_time_in_order():
    """Given a chain, then each task starts after its predecessor ended."""
    sc = build_scenario("chain", seed=1, tasks=20)
    v = sc.cluster.view(sc.snapshot_at)
    starts = {r["id"]: r for r in v.tasks.to_pylist()}
    ids = sc.truth["chain"]
    for a, b in zip(ids, ids[1:]):
        assert starts[b]["started_at"] >= starts[a]["ended_at"]
        assert starts[b]["submitted_at"] >= starts[a]["ended_at"]


def test_fanout_reduce_waits_for_every_independent_task():
    """Given a fanout, then the reduce is submitted exactly when the last input completed."""
    sc = build_scenario("fanout", seed=2, tasks=60)
    v = sc.cluster.view(sc.snapshot_at)
    red = _row(v.tasks, "id", sc.truth["reduce_task"])
    others = v.tasks.filter(pc.not_equal(v.tasks.column("id"), sc.truth["reduce_task"]))
    assert red["submitted_at"] == pc.max(others.column("ended_at")).as_py()
    assert len(red["data_dependencies"]) == sc.truth["n_independent"]


def test_same_seed_gives_identical_tables_and_another_seed_does_not():
    """Given two builds with one seed, then their final tables are equal; another seed differs."""
    a = build_scenario("htcmock", seed=7, tasks=150)
    b = build_scenario("htcmock", seed=7, tasks=150)
    c = build_scenario("htcmock", seed=8, tasks=150)
    va, vb = a.cluster.view(a.snapshot_at), b.cluster.view(b.snapshot_at)
    assert va.tasks.equals(vb.tasks) and va.results.equals(vb.results)
    assert not va.tasks.equals(c.cluster.view(c.snapshot_at).tasks)


def test_inject_tasks_adds_pending_rows_and_bumps_the_version():
    """Given a cluster, when 5 tasks are injected at t, then the view at t has 5 more PENDING
    tasks (10 more results plus one gate) and a new version; earlier views do not show them."""
    sc = build_scenario("fanout", seed=3, tasks=30)
    cl = sc.cluster
    t = cl.end_time / 2
    before = cl.view(t)
    sid = sc.truth["session"]
    cl.inject_tasks(sid, 5, t)
    after = cl.view(t)
    assert after.version != before.version
    assert after.tasks.num_rows == before.tasks.num_rows + 5
    assert after.results.num_rows == before.results.num_rows + 11
    assert (_status_counts(after.tasks).get("TASK_STATUS_PENDING", 0)
            == _status_counts(before.tasks).get("TASK_STATUS_PENDING", 0) + 5)
    assert cl.view(t / 2).tasks.num_rows == cl.view(t / 2 + 1e-9).tasks.num_rows
    assert after.tasks.schema.equals(model.task_schema())


def test_scenarios_are_identical_across_processes_with_different_hash_seeds():
    """Given two interpreters with different PYTHONHASHSEED, when each builds every scenario
    with seed 3, then the rendered tables hash identically (nothing depends on set/dict order
    or on process state)."""
    import os
    import subprocess
    import sys

    code = (
        "import hashlib\n"
        "from aksnap.fixtures.scenarios import SCENARIOS, build_scenario\n"
        "h = hashlib.sha256()\n"
        "for name in sorted(SCENARIOS):\n"
        "    sc = build_scenario(name, seed=3)\n"
        "    v = sc.cluster.view(sc.snapshot_at)\n"
        "    for tb in (v.tasks, v.results, v.sessions, v.owner_changes):\n"
        "        h.update(repr(tb.to_pydict()).encode())\n"
        "    h.update(repr(sorted(sc.truth.items())).encode())\n"
        "print(h.hexdigest())\n"
    )
    # both interpreters at once (the suite's time: each builds every scenario)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONHASHSEED=hs)) for hs in ("1", "12345")]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out.strip())
    assert outs[0] == outs[1] and len(outs[0]) == 64


def test_inject_in_the_past_of_later_rows_keeps_every_view_consistent():
    """Given htcmock, when 7 tasks are injected at an early t (before most rows are created),
    then views before t do not show them, views after t show exactly 7 more tasks than
    before injection, they stay PENDING forever, and every status/ownership rule still holds
    on the final view."""
    sc = build_scenario("htcmock", seed=6, tasks=200)
    cl = sc.cluster
    t = 2.0
    before = {x: cl.view(x).tasks.num_rows for x in (1.0, 3.0, cl.end_time)}
    cl.inject_tasks(sc.truth["session"], 7, t)
    assert cl.view(1.0).tasks.num_rows == before[1.0]
    assert cl.view(3.0).tasks.num_rows == before[3.0] + 7
    end = cl.view(cl.end_time + 10)
    assert end.tasks.num_rows == before[cl.end_time] + 7
    counts = _status_counts(end.tasks)
    assert counts["TASK_STATUS_PENDING"] == 7
    ids = set(end.tasks.column("id").to_pylist())
    owners = set(end.results.column("owner_task_id").to_pylist()) - {""}
    assert owners <= ids
    assert end.tasks.schema.equals(model.task_schema())
    assert end.results.schema.equals(model.result_schema())


def test_concurrent_views_and_injections_stay_consistent():
    """Given one cluster shared by threads, when 6 threads render views at many times while
    another injects tasks, then no render fails and every view keeps its schema and its
    owner ids inside its own task ids."""
    import random
    import threading

    sc = build_scenario("htcmock", seed=9, tasks=400)
    cl = sc.cluster
    errors: list[BaseException] = []

    def render(k):
        rnd = random.Random(k)
        try:
            for _ in range(25):
                v = cl.view(rnd.uniform(0, cl.end_time))
                assert v.tasks.schema.equals(model.task_schema())
                owners = set(v.results.column("owner_task_id").to_pylist()) - {""}
                assert owners <= set(v.tasks.column("id").to_pylist())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def inject():
        for k in range(10):
            cl.inject_tasks(sc.truth["session"], 3, cl.end_time * k / 10)

    threads = [threading.Thread(target=render, args=(k,)) for k in range(6)]
    threads.append(threading.Thread(target=inject))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[0]
    assert cl.view(cl.end_time + 1).tasks.num_rows == sc.truth["n_tasks"] + 30


def test_view_accepts_infinite_times_and_refuses_nan():
    """Given a cluster, when viewed at -inf and +inf, then it is empty and final respectively;
    NaN is refused with a sentence."""
    cl = build_scenario("chain", seed=1, tasks=5).cluster
    assert cl.view(float("-inf")).tasks.num_rows == 0
    assert cl.view(float("inf")).version == cl.view(cl.end_time).version
    with pytest.raises(ValueError, match="NaN"):
        cl.view(float("nan"))
