"""Invariants of the simulated control plane, checked on the rendered view tables.

Each property draws a scenario, a seed and a time, builds the cluster, and checks only what a
client of the listing API could see: the four wire tables of ``view(t)``.
"""

from __future__ import annotations

from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aksnap.fixtures.scenarios import build_scenario

FINAL = {"TASK_STATUS_COMPLETED", "TASK_STATUS_ERROR", "TASK_STATUS_TIMEOUT",
         "TASK_STATUS_CANCELLED", "TASK_STATUS_RETRIED"}
TIMESTAMPS = ("created_at", "submitted_at", "received_at", "acquired_at", "fetched_at",
              "started_at", "processed_at", "ended_at")
SIZES = {"htcmock": 120, "fanout": 40, "chain": 15, "failures": 70, "stuck": 20, "demo": 80,
         "htcmock+faults": 300, "htcmock-final": 150, "htcmock-final+faults": 400,
         "many": 60}
# variants: name -> (scenario, extra keyword arguments)
VARIANTS = {"htcmock+faults": ("htcmock", {"error_rate": 0.03, "exception_rate": 0.08}),
            "htcmock-final+faults": ("htcmock-final", {"error_rate": 0.03,
                                                       "exception_rate": 0.08}),
            "many": ("many", {"sessions": 4})}


def _build(name: str, seed: int):
    scenario, kw = VARIANTS.get(name, (name, {}))
    return build_scenario(scenario, seed=seed, tasks=SIZES[name], **kw)

settings.register_profile("engine", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("engine")

scenario_names = st.sampled_from(sorted(SIZES))
seeds = st.integers(min_value=0, max_value=10_000)
fractions = st.floats(min_value=0.0, max_value=1.2)


@lru_cache(maxsize=64)
def _scenario(name: str, seed: int):
    return _build(name, seed)


def _rows(name: str, seed: int, frac: float):
    sc = _scenario(name, seed)
    t = sc.cluster.end_time * frac
    v = sc.cluster.view(t)
    return sc, t, v, v.tasks.to_pylist(), v.results.to_pylist()


@given(scenario_names, seeds, fractions)
def test_every_result_has_at_most_one_owner_and_it_is_a_visible_task(name, seed, frac):
    """Given any scenario at any time, then result ids are unique and each owner_task_id is
    empty or the id of a task that exists at that time."""
    _, _, _, tasks, results = _rows(name, seed, frac)
    ids = {t["id"] for t in tasks}
    assert len(ids) == len(tasks)
    assert len({r["result_id"] for r in results}) == len(results)
    for r in results:
        assert r["owner_task_id"] == "" or r["owner_task_id"] in ids, r


@given(scenario_names, seeds, fractions)
def test_retries_are_well_formed_attempt_chains(name, seed, frac):
    """Given any scenario, then a retry's id is ``initial###n`` with n = len(retry_of_ids),
    retry_of_ids lists every earlier attempt in order, created_by is the previous attempt
    (which is RETRIED), and the retry keeps the initial task's payload, parents, dependencies
    and expected outputs."""
    _, _, _, tasks, _ = _rows(name, seed, frac)
    by_id = {t["id"]: t for t in tasks}
    for t in tasks:
        chain = t["retry_of_ids"]
        if not chain:
            assert t["initial_task_id"] == t["id"]
            continue
        init = t["initial_task_id"]
        assert t["id"] == f"{init}###{len(chain)}"
        assert chain == [init] + [f"{init}###{k}" for k in range(1, len(chain))]
        assert t["created_by"] == chain[-1]
        prev = by_id[chain[-1]]  # an earlier attempt exists before its retry
        assert prev["status"] == "TASK_STATUS_RETRIED"
        first = by_id[init]
        for key in ("payload_id", "parent_task_ids", "data_dependencies",
                    "expected_output_ids", "session_id"):
            assert t[key] == first[key], key


@given(scenario_names, seeds, fractions)
def test_no_task_starts_before_its_payload_and_dependencies_completed(name, seed, frac):
    """Given any scenario at any time, then every started task's payload and data
    dependencies were COMPLETED at or before its submitted_at, itself before started_at."""
    _, _, _, tasks, results = _rows(name, seed, frac)
    done = {r["result_id"]: r["completed_at"] for r in results}
    for t in tasks:
        if t["started_at"] is None:
            continue
        assert t["submitted_at"] is not None and t["submitted_at"] <= t["started_at"]
        for rid in t["data_dependencies"] + [t["payload_id"]]:
            assert done[rid] is not None and done[rid] <= t["submitted_at"], (t["id"], rid)


@given(scenario_names, seeds, fractions)
def test_timestamps_are_ordered_and_never_after_t(name, seed, frac):
    """Given any scenario at time t, then created <= submitted <= received <= acquired <=
    fetched <= started <= processed <= ended wherever set, none is after t, pod_ttl equals
    started_at, and durations equal their timestamp differences."""
    sc, t, _, tasks, results = _rows(name, seed, frac)
    limit = sc.cluster.start_time + t + 1e-6
    for row in tasks:
        seen = [row[k] for k in TIMESTAMPS if row[k] is not None]
        assert seen == sorted(seen), row["id"]
        assert all(x.timestamp() <= limit for x in seen)
        assert row["pod_ttl"] == row["started_at"]
        if row["ended_at"] is not None:
            assert row["creation_to_end_duration"] == row["ended_at"] - row["created_at"]
            if row["started_at"] is not None:
                assert row["processing_to_end_duration"] == row["ended_at"] - row["started_at"]
        else:
            assert row["creation_to_end_duration"] is None
    for r in results:
        assert r["created_at"].timestamp() <= limit
        if r["completed_at"] is not None:
            assert r["created_at"] <= r["completed_at"]


@given(scenario_names, seeds)
def test_failure_propagation_reaches_every_dependent_in_the_final_state(name, seed):
    """Given any scenario run to the end, then no CREATING/PENDING task reads an ABORTED
    result, and every ERROR task without started_at reads an ABORTED result and names, in
    its status_message, the owner of one."""
    sc = _scenario(name, seed)
    v = sc.cluster.view(sc.cluster.end_time + 1)
    results = {r["result_id"]: r for r in v.results.to_pylist()}
    for t in v.tasks.to_pylist():
        aborted = [rid for rid in t["data_dependencies"]
                   if results[rid]["status"] == "RESULT_STATUS_ABORTED"]
        if t["status"] in ("TASK_STATUS_PENDING", "TASK_STATUS_CREATING"):
            assert not aborted, t["id"]
        if t["status"] == "TASK_STATUS_ERROR" and t["started_at"] is None:
            assert aborted, t["id"]
            assert any(results[rid]["owner_task_id"] in t["status_message"] for rid in aborted)
            assert t["ended_at"] is not None


@given(scenario_names, seeds, fractions)
def test_status_agrees_with_the_timestamps_visible_at_t(name, seed, frac):
    """Given any scenario at time t, then each status is the one its visible timestamps
    imply: PENDING/CREATING before submission, SUBMITTED/PAUSED before acquisition,
    DISPATCHED before start, PROCESSING before end, a final status once ended; PROCESSED
    never appears; result statuses agree with completed_at."""
    _, _, _, tasks, results = _rows(name, seed, frac)
    for t in tasks:
        s = t["status"]
        assert s != "TASK_STATUS_PROCESSED"
        if s in FINAL:
            assert t["ended_at"] is not None
            if s == "TASK_STATUS_COMPLETED":
                assert t["processed_at"] is not None and t["output"]["success"]
        else:
            assert t["ended_at"] is None and not t["output"]["success"]
        if s in ("TASK_STATUS_CREATING", "TASK_STATUS_PENDING"):
            assert t["submitted_at"] is None and t["acquired_at"] is None
        if s == "TASK_STATUS_CREATING":
            assert t["created_by"] != ""  # only subtasks wait for their parent
        if s == "TASK_STATUS_SUBMITTED":
            assert t["submitted_at"] is not None and t["acquired_at"] is None
        if s == "TASK_STATUS_DISPATCHED":
            assert t["acquired_at"] is not None and t["started_at"] is None
            assert t["owner_pod_id"] and t["pod_hostname"]
        if s == "TASK_STATUS_PROCESSING":
            assert t["started_at"] is not None
        if s == "TASK_STATUS_PAUSED":
            assert t["acquired_at"] is None
    for r in results:
        assert (r["completed_at"] is not None) == (r["status"] == "RESULT_STATUS_COMPLETED") or \
            r["status"] == "RESULT_STATUS_ABORTED"


@given(scenario_names, seeds, fractions, fractions)
def test_history_only_moves_forward(name, seed, f1, f2):
    """Given two times t1 <= t2, then every task at t1 exists at t2 with the same static
    fields, and any timestamp or final status visible at t1 is unchanged at t2."""
    sc = _scenario(name, seed)
    t1, t2 = sorted((f1, f2))
    v1 = sc.cluster.view(sc.cluster.end_time * t1).tasks.to_pylist()
    later = {t["id"]: t for t in sc.cluster.view(sc.cluster.end_time * t2).tasks.to_pylist()}
    for a in v1:
        b = later[a["id"]]
        for k in TIMESTAMPS:
            if a[k] is not None:
                assert b[k] == a[k], k
        if a["status"] in FINAL:
            assert b["status"] == a["status"]
        assert a["data_dependencies"] == b["data_dependencies"]


@given(scenario_names, seeds)
def test_same_seed_reproduces_identical_tables(name, seed):
    """Given a scenario built twice with one seed, then its tables at the snapshot are equal."""
    a = _build(name, seed)
    b = _build(name, seed)
    t = a.snapshot_at
    assert a.truth == b.truth and a.snapshot_at == b.snapshot_at
    va, vb = a.cluster.view(t), b.cluster.view(t)
    for k in ("tasks", "results", "sessions", "partitions", "owner_changes"):
        assert getattr(va, k).equals(getattr(vb, k)), k


@given(scenario_names, seeds, fractions)
def test_owner_at_t_is_the_last_owner_change_at_or_before_t(name, seed, frac):
    """Given any scenario at time t, then owner_changes are in time order, each change starts
    from the owner the previous change of that result left, and every result's owner_task_id
    is the current_owner_id of its last change (when it has one)."""
    _, _, v, _, results = _rows(name, seed, frac)
    owner = {r["result_id"]: r["owner_task_id"] for r in results}
    last: dict[str, str] = {}
    times = []
    for c in v.owner_changes.to_pylist():
        times.append(c["at"])
        if c["result_id"] in last:
            assert c["previous_owner_id"] == last[c["result_id"]]
        last[c["result_id"]] = c["current_owner_id"]
    assert times == sorted(times)
    for rid, cur in last.items():
        assert owner[rid] == cur


@given(scenario_names, seeds, fractions, fractions, st.integers(min_value=1, max_value=20))
def test_injected_rows_keep_every_invariant(name, seed, f_inject, f_view, n):
    """Given a scenario with n tasks injected at a random time, when viewed at another random
    time, then the injected rows are there iff created by then, each PENDING with its own
    payload and output, owners exist, and versions differ from before the injection."""
    sc = _build(name, seed)  # fresh: injection mutates
    cl = sc.cluster
    t_inj, t_view = cl.end_time * f_inject, cl.end_time * f_view
    before = cl.view(t_view)
    sid = before.sessions.column("session_id")[0].as_py() if before.sessions.num_rows else \
        cl.session_id(0)
    cl.inject_tasks(sid, n, t_inj)
    after = cl.view(t_view)
    def us(x):  # the engine's clock: absolute microseconds
        return int(round((cl.start_time + x) * 1e6))

    extra = n if us(t_inj) <= us(t_view) else 0
    assert after.tasks.num_rows == before.tasks.num_rows + extra
    assert after.version != before.version
    tasks = after.tasks.to_pylist()
    ids = {t["id"] for t in tasks}
    results = {r["result_id"]: r for r in after.results.to_pylist()}
    for r in results.values():
        assert r["owner_task_id"] == "" or r["owner_task_id"] in ids
    old = set(before.tasks.column("id").to_pylist())
    new = [t for t in tasks if t["id"] not in old]
    assert len(new) == extra
    for t in new:
        assert t["status"] == "TASK_STATUS_PENDING" and t["submitted_at"] is None
        assert results[t["payload_id"]]["status"] == "RESULT_STATUS_COMPLETED"
        (out,) = t["expected_output_ids"]
        assert results[out]["owner_task_id"] == t["id"]
