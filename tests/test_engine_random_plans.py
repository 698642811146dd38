"""The engine's invariants on random workloads, not just on the hand-made scenarios.

Hypothesis draws a random plan (a DAG of client tasks reading earlier outputs, some of them
submitting subtasks and an aggregation that takes over their output, with random error
outputs, timeouts, worker exceptions and retry budgets, a partition without pods, and a
session that may be paused, resumed or cancelled), simulates it, and checks every rule that a
client of the listing API can see, at several times.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aksnap.fixtures.engine import (
    ERROR_OUTPUT,
    TIMEOUT,
    PartitionSpec,
    Plan,
    SessionSpec,
    simulate,
)

FINAL = {"TASK_STATUS_COMPLETED", "TASK_STATUS_ERROR", "TASK_STATUS_TIMEOUT",
         "TASK_STATUS_CANCELLED", "TASK_STATUS_RETRIED"}
TIMESTAMPS = ("created_at", "submitted_at", "received_at", "acquired_at", "fetched_at",
              "started_at", "processed_at", "ended_at")


def _behave(plan: Plan, rng: np.random.Generator, duration: float, **kw) -> int:
    """A template with a random fate: ok, error output, timeout, or raising k times."""
    roll = rng.random()
    if roll < 0.06:
        return plan.task(duration, behaviour=ERROR_OUTPUT, **kw)
    if roll < 0.10:
        return plan.task(duration, behaviour=TIMEOUT, max_duration=duration / 2, **kw)
    if roll < 0.22:
        return plan.task(duration, fail_attempts=int(rng.choice([1, 2, 5])),
                         max_retries=int(rng.integers(0, 4)), **kw)
    return plan.task(duration, **kw)


def random_cluster(seed: int):
    rng = np.random.default_rng(seed)
    plan = Plan()
    n = int(rng.integers(5, 40))
    tops = []
    for i in range(n):
        deps = sorted(set(rng.integers(0, i, size=int(rng.integers(0, 4))).tolist())) if i else []
        part = 1 if rng.random() < 0.05 else 0
        tm = _behave(plan, rng, float(rng.uniform(0.2, 3.0)), deps=deps, outs=[i],
                     partition=part)
        if rng.random() < 0.25:  # submits k subtasks and an aggregation of their outputs
            k = int(rng.integers(1, 4))
            kids = [_behave(plan, rng, float(rng.uniform(0.2, 2.0)), outs=[j]) for j in range(k)]
            agg = _behave(plan, rng, 0.3, deps=list(range(k)), outs=[-1])
            plan.set_children(tm, kids + [agg], k, spawn_frac=float(rng.uniform(0.05, 0.9)))
        tops.append(tm)
    plan.submit(0, 0.5, tops, n)
    end_guess = 2.0 * n / 2
    spec = SessionSpec(partition_ids=("default", "nopods"))
    roll = rng.random()
    if roll < 0.25:
        spec.cancel_at = float(rng.uniform(0.5, end_guess))
    elif roll < 0.5:
        spec.pause_at = float(rng.uniform(0.5, end_guess))
        if rng.random() < 0.7:
            spec.resume_at = spec.pause_at + float(rng.uniform(0.1, 10))
    parts = [PartitionSpec("default", pod_max=int(rng.integers(1, 5))),
             PartitionSpec("nopods", pod_max=0)]
    return simulate(plan, parts, [spec], seed=seed, name="random")


def check_invariants(cl, t: float) -> None:
    v = cl.view(t)
    tasks = v.tasks.to_pylist()
    results = {r["result_id"]: r for r in v.results.to_pylist()}
    by_id = {x["id"]: x for x in tasks}
    assert len(by_id) == len(tasks)
    limit = cl.start_time + t + 1e-6
    for r in results.values():  # one owner, which exists
        assert r["owner_task_id"] == "" or r["owner_task_id"] in by_id
        assert (r["status"] == "RESULT_STATUS_COMPLETED") <= (r["completed_at"] is not None)
    for x in tasks:
        seen = [x[k] for k in TIMESTAMPS if x[k] is not None]
        assert seen == sorted(seen) and all(s.timestamp() <= limit for s in seen), x["id"]
        s = x["status"]
        assert s != "TASK_STATUS_PROCESSED"
        assert (s in FINAL) == (x["ended_at"] is not None), (x["id"], s)
        if s in ("TASK_STATUS_PENDING", "TASK_STATUS_CREATING"):
            assert x["submitted_at"] is None
        if s == "TASK_STATUS_SUBMITTED":
            assert x["submitted_at"] is not None and x["acquired_at"] is None
        if s in ("TASK_STATUS_DISPATCHED", "TASK_STATUS_PROCESSING"):
            assert x["acquired_at"] is not None and x["owner_pod_id"]
        if x["started_at"] is not None:  # readiness
            for rid in x["data_dependencies"] + [x["payload_id"]]:
                done = results[rid]["completed_at"]
                assert done is not None and done <= x["submitted_at"] <= x["started_at"]
            assert x["options"]["partition_id"] != "nopods"
        chain = x["retry_of_ids"]  # retries
        if chain:
            init = x["initial_task_id"]
            assert x["id"] == f"{init}###{len(chain)}"
            assert chain == [init] + [f"{init}###{k}" for k in range(1, len(chain))]
            assert x["created_by"] == chain[-1]
            assert by_id[chain[-1]]["status"] == "TASK_STATUS_RETRIED"
            assert len(chain) <= x["options"]["max_retries"]
            for key in ("payload_id", "data_dependencies", "expected_output_ids",
                        "parent_task_ids"):
                assert x[key] == by_id[init][key]
        else:
            assert x["initial_task_id"] == x["id"]
        if s == "TASK_STATUS_ERROR" and x["started_at"] is None:  # propagated
            aborted = [rid for rid in x["data_dependencies"]
                       if results[rid]["status"] == "RESULT_STATUS_ABORTED"]
            assert aborted and any(results[rid]["owner_task_id"] in x["status_message"]
                                   for rid in aborted)
        if s == "TASK_STATUS_RETRIED":
            assert x["started_at"] is not None and "retried" in x["status_message"]
    last: dict[str, str] = {}
    for c in v.owner_changes.to_pylist():  # owner log
        if c["result_id"] in last:
            assert c["previous_owner_id"] == last[c["result_id"]]
        last[c["result_id"]] = c["current_owner_id"]
    for rid, cur in last.items():
        assert results[rid]["owner_task_id"] == cur


def check_final_state(cl) -> None:
    v = cl.view(cl.end_time + 1)
    results = {r["result_id"]: r for r in v.results.to_pylist()}
    sessions = v.sessions.to_pylist()
    for x in v.tasks.to_pylist():
        deps = [results[rid]["status"] for rid in x["data_dependencies"]]
        if x["status"] in ("TASK_STATUS_PENDING", "TASK_STATUS_CREATING"):
            assert "RESULT_STATUS_ABORTED" not in deps  # propagation reached it
            assert "RESULT_STATUS_CREATED" in deps  # a PENDING task still waits for something
        if x["status"] == "TASK_STATUS_SUBMITTED":  # only a partition without pods starves
            assert x["options"]["partition_id"] == "nopods"
        if x["status"] == "TASK_STATUS_PAUSED":
            assert sessions[0]["status"] == "SESSION_STATUS_PAUSED"
        if x["status"] == "TASK_STATUS_COMPLETED":
            for rid in x["expected_output_ids"]:  # produced, or handed to a subtask
                r = results[rid]
                assert r["status"] == "RESULT_STATUS_COMPLETED" or r["owner_task_id"] != x["id"]
    if sessions[0]["status"] == "SESSION_STATUS_CANCELLED":
        assert not [r for r in results.values() if r["status"] == "RESULT_STATUS_CREATED"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32 - 1),
       st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=4))
def test_random_plans_respect_every_armonik_rule_at_any_time(seed, fractions):
    """Given a random workload with faults, retries, subtasks, pause/cancel and a partition
    without pods, when viewed at random times and after the end, then ownership, retry chains,
    readiness, timestamp order, status/timestamp agreement, propagation and the owner log all
    hold, and the final state has no task waiting on an aborted result."""
    cl = random_cluster(seed)
    for f in fractions:
        check_invariants(cl, cl.end_time * f)
    check_invariants(cl, cl.end_time + 1)
    check_final_state(cl)
