"""Invariants on random DAGs (hypothesis).

- the recursive SQL ancestors (queries/ancestors.sql) equal the rustworkx graph's ancestors,
  and both equal a brute-force walk over the rows;
- the blocking frontier (graph and queries/frontier.sql) is exactly the incomplete nodes of the
  lineage whose inputs are all complete.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import make_bundle, result, task

TASK_STATUSES = ["COMPLETED", "PENDING", "SUBMITTED", "PROCESSING", "ERROR", "RETRIED", "CANCELLED"]
RESULT_STATUSES = ["COMPLETED", "CREATED", "ABORTED"]


@st.composite
def random_dag(draw):
    """Tasks k = 0..n-1, each owning output o<k> (or, now and then, only creating it);
    client results c<i>; task k reads outputs of earlier tasks and client results, so the
    graph is a DAG; some references point at ids not in the bundle."""
    n = draw(st.integers(1, 9))
    n_client = draw(st.integers(0, 3))
    tasks, results = [], []
    for i in range(n_client):
        results.append(result(f"c{i}", status=draw(st.sampled_from(RESULT_STATUSES))))
    for k in range(n):
        pool = [f"o{j}" for j in range(k)] + [f"c{i}" for i in range(n_client)] + ["ghost"]
        deps = draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))
        payload = draw(st.sampled_from([f"p{k}"] + [f"o{j}" for j in range(k)]))
        tasks.append(task(f"t{k}", status=draw(st.sampled_from(TASK_STATUSES)), deps=deps,
                          payload=payload, outputs=[f"o{k}"], times={"created": 0}))
        via_owner = draw(st.booleans())
        results.append(result(f"o{k}", status=draw(st.sampled_from(RESULT_STATUSES)),
                              owner=f"t{k}" if via_owner else "",
                              created_by="" if via_owner else f"t{k}"))
        results.append(result(f"p{k}", status=draw(st.sampled_from(["COMPLETED", "COMPLETED", "CREATED"]))))
    return tasks, results


def brute_inputs(tasks, results):
    """node (kind, id) -> its input nodes, straight from the rows (ARMONIK.md's rules)."""
    rids = {r["result_id"] for r in results}
    tids = {t["task_id"] for t in tasks}
    inputs = {}
    for t in tasks:
        ins = [r for r in t["data_dependencies"] if r in rids]
        if t["payload_id"] in rids:
            ins.append(t["payload_id"])
        inputs[("task", t["task_id"])] = {("result", r) for r in ins}
    for r in results:
        p = r["owner_task_id"] or r["created_by"]
        inputs[("result", r["result_id"])] = {("task", p)} if p in tids else set()
    return inputs


def brute_ancestors(inputs, node):
    seen, stack = set(), [node]
    while stack:
        for p in inputs[stack.pop()]:
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dag())
def test_sql_ancestors_equal_graph_ancestors_and_frontier_is_exact(dag):
    tasks, results = dag
    with tempfile.TemporaryDirectory() as d:
        snap = Snapshot.open(make_bundle(Path(d) / "b", tasks=tasks, results=results,
                                         with_payloads=False))
        g = snap.graph
        status = {("task", t["task_id"]): t["status"] for t in tasks}
        status.update({("result", r["result_id"]): r["status"] for r in results})
        inputs = brute_inputs(tasks, results)
        for i, r in enumerate(results):
            # the graph at every result; the SQL (two recursive queries, the test's cost: 13 s
            # at every result) at every third one and at the last, the deepest output
            with_sql = i % 3 == 0 or i == len(results) - 1
            node = ("result", r["result_id"])
            truth = brute_ancestors(inputs, node)
            gi = g.n_tasks + g.result_index(r["result_id"])
            anc = g.ancestors(gi)
            graph_set = {("task" if a < g.n_tasks else "result", g.node_id(int(a))) for a in anc}
            assert graph_set == truth
            if with_sql:
                sql_set = {(x["kind"], x["id"]) for x in
                           snap.query("ancestors", {"result_id": r["result_id"]}).to_pylist()}
                assert sql_set == truth

            scope = truth | {node}
            expected = {n for n in scope
                        if status[n] not in ("COMPLETED", "RETRIED")
                        and all(status[p] == "COMPLETED" for p in inputs[n])}
            front = g.frontier(np.append(anc, gi))  # the small-scope path (walks in-edges)
            mask = np.zeros(g.n, dtype=bool)
            mask[np.append(anc, gi)] = True
            assert np.array_equal(np.sort(front), g.frontier(mask=mask))  # the all-edges path
            graph_front = {("task" if a < g.n_tasks else "result", g.node_id(int(a))) for a in front}
            assert graph_front == expected
            if with_sql:
                sql_front = {(x["kind"], x["id"]) for x in
                             snap.query("frontier", {"result_id": r["result_id"]}).to_pylist()}
                assert sql_front == expected
        snap.close()
