"""Pathological shapes answer correctly and in bounded time (small versions; the large figures
are in bench/bench_shapes.py).

- a long chain: the recursive SQL ancestors stay linear, lineage and critical path need no
  recursion and a long critical path is summarised (``--all`` for every step);
- a wide fan-in: every blocking node is ranked exactly, without walking the fan-in task's
  inputs once per blocker;
- many sessions: ``analyze`` and ``critical-path`` give a summary computed for all sessions at
  once (``--session`` for detail);
- a task with very many inputs: counts by status and the first 50 (``--all`` for every one).

The time bounds are generous (a regression to quadratic costs minutes, not seconds).
"""

from __future__ import annotations

import csv
import io
import random
import time

import numpy as np
import pytest
import rustworkx as rx
from typer.testing import CliRunner

from aksnap.analyzer import blockers, critical_path, lineage, overview, task_view
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import make_bundle, result, task
from aksnap.cli import app

runner = CliRunner()


def _chain_bundle(path, levels: int):
    """c0 -> r0 -> c1 -> r1 -> ... -> c(L-1) -> r(L-1); every level COMPLETED in one second,
    but the last task, PROCESSING (each task also reads its own uploaded payload)."""
    tasks, results = [], []
    for k in range(levels):
        last = k == levels - 1
        times = {"created": k, "submitted": k + .1, "acquired": k + .2, "fetched": k + .25,
                 "started": k + .3} | ({} if last else {"processed": k + .9, "ended": k + 1})
        tasks.append(task(f"c{k}", status="PROCESSING" if last else "COMPLETED",
                          deps=[f"r{k - 1}"] if k else [], outputs=[f"r{k}"], times=times))
        results.append(result(f"r{k}", owner=f"c{k}", status="CREATED" if last else "COMPLETED",
                              created=k, completed=None if last else k + 1))
    return make_bundle(path, tasks=tasks, results=results, snapshot=levels + 10)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return _chain_bundle(tmp_path_factory.mktemp("chain") / "chain.aksnap", 20_000)


def test_ancestors_query_of_a_20k_level_chain_is_exactly_the_chain_and_linear(chain):
    """Given a 20,000-level chain (40,000 hops for the recursion),
    when the named query `ancestors` runs for the last result,
    then it returns every task, every earlier result and every payload, each once, in seconds
    (the edge CTE is materialised once, not re-derived per recursion step)."""
    snap = Snapshot.open(chain)
    t = time.perf_counter()
    rows = snap.query("ancestors", {"result_id": "r19999"}).to_pylist()
    took = time.perf_counter() - t
    got = {(r["kind"], r["id"]) for r in rows}
    want = ({("task", f"c{k}") for k in range(20_000)} | {("result", f"r{k}") for k in range(19_999)}
            | {("result", f"c{k}-payload") for k in range(20_000)})
    assert len(rows) == len(got) == len(want) and got == want
    assert took < 60, f"ancestors of a 20k chain took {took:.1f} s: the recursion went quadratic"
    front = snap.query("frontier", {"result_id": "r19999"}).to_pylist()
    assert [(r["kind"], r["id"]) for r in front] == [("task", "c19999")]


def test_lineage_and_critical_path_of_a_20k_level_chain_answer_without_recursion(chain):
    """Given the 20,000-level chain,
    when lineage and critical-path run,
    then lineage counts 20,000 upstream tasks and names c19999 as the frontier; the critical
    path walks 19,999 tasks but the table shows the first, last and longest steps only, and
    --all (JSON) gives every step."""
    snap = Snapshot.open(chain)
    d = lineage.build(snap, "r19999")
    assert d["upstream"]["tasks"] == 20_000 and d["frontier_total"] == 1
    assert [f["id"] for f in d["frontier"]] == ["c19999"]
    cp = critical_path.build(snap)["sessions"][0]
    assert cp["steps_total"] == 2 * 19_999 + 1  # the payload of c0, then tasks and results
    assert cp["last_result"] == "r19998" and cp["line"].startswith("19999 task(s) to r19998")
    assert cp["steps_omitted"] > 0 and len(cp["steps"]) <= critical_path.STEPS_SHOWN
    r = runner.invoke(app, ["critical-path", str(chain)])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) < 100 and "--all for every step" in r.stdout
    full = critical_path.build(snap, all_steps=True)["sessions"][0]
    assert len(full["steps"]) == full["steps_total"] and full["steps_omitted"] == 0
    assert [s["id"] for s in full["steps"] if s["kind"] == "task"] == [f"c{k}" for k in range(19_999)]


@pytest.fixture(scope="module")
def fan_in(tmp_path_factory):
    """m0..m(N-1) PENDING (10 of them COMPLETED), each writing o<i>; reduce reads every o<i>."""
    n = 50_000
    done = set(range(0, n, n // 10))
    tasks = [task(f"m{i}", status="COMPLETED" if i in done else "PENDING", outputs=[f"o{i}"],
                  times={"created": 0} | ({"ended": 1} if i in done else {})) for i in range(n)]
    tasks.append(task("reduce", status="PENDING", deps=[f"o{i}" for i in range(n)],
                      outputs=["final"], times={"created": 0}))
    results = [result(f"o{i}", owner=f"m{i}", status="COMPLETED" if i in done else "CREATED",
                      completed=1 if i in done else None) for i in range(n)]
    results.append(result("final", owner="reduce", status="CREATED"))
    return make_bundle(tmp_path_factory.mktemp("fan") / "fan.aksnap", tasks=tasks, results=results), n, done


def test_blockers_of_a_50k_fan_in_rank_every_map_exactly(fan_in):
    """Given 50,000 maps (49,990 PENDING) feeding one reduce task,
    when blockers are ranked,
    then every PENDING map is ranked exactly: it holds its output and the final result
    (2 results), the reduce task (1 task), and the reduce's 11 completed inputs (10 outputs and
    its payload); in seconds."""
    path, n, done = fan_in
    snap = Snapshot.open(path)
    t = time.perf_counter()
    d = blockers.build(snap, limit=None)
    took = time.perf_counter() - t
    pending = n - len(done)
    assert d["blocking_nodes"] == d["ranked_exactly"] == len(d["blockers"]) == pending
    assert {(b["holds_results"], b["holds_tasks"], b["ready_inputs_waiting"]) for b in d["blockers"]} \
        == {(2, 1, len(done) + 1)}
    assert sorted(b["id"] for b in d["blockers"]) == sorted(f"m{i}" for i in range(n) if i not in done)
    assert took < 60


def test_downstream_sums_equal_one_traversal_per_node_on_random_dags(tmp_path):
    """Given random DAGs (tasks with one or several outputs, results read by several tasks),
    when downstream sums are computed for every node at once,
    then they equal summing over one rustworkx traversal per node."""
    rng = random.Random(5)
    for case in range(20):
        n = rng.randint(2, 40)
        tasks, results = [], []
        for k in range(n):
            pool = [f"o{j}_{x}" for j in range(k) for x in range(2)]
            deps = rng.sample(pool, min(len(pool), rng.randint(0, 3)))
            outs = [f"o{k}_0"] + ([f"o{k}_1"] if rng.random() < .3 else [])
            tasks.append(task(f"t{k}", status=rng.choice(["COMPLETED", "PENDING", "ERROR"]), deps=deps,
                              outputs=outs, times={"created": 0}))
            results += [result(o, owner=f"t{k}", status=rng.choice(["COMPLETED", "CREATED"])) for o in outs]
            if len(outs) == 1:
                results.append(result(f"o{k}_1", status="CREATED"))  # uploaded by the client
        g = Snapshot.open(make_bundle(tmp_path / f"d{case}", tasks=tasks, results=results)).graph
        w = np.stack([np.arange(g.n) % 3, np.ones(g.n, dtype=np.int64)], axis=1)
        sums, exact = g.downstream_sums(np.arange(g.n), w)
        truth = np.stack([w[np.fromiter(rx.descendants(g.dag, v), dtype=np.int64)].sum(axis=0)
                          for v in range(g.n)])
        assert exact.all() and np.array_equal(sums, truth), case


@pytest.fixture(scope="module")
def many_sessions(tmp_path_factory):
    """2,000 sessions of a map and a reduce; every 10th has a failed map, every 7th is still
    running (its reduce PENDING), session k's reduce ends at k seconds."""
    tasks, results = [], []
    for k in range(2_000):
        s = f"s{k:04d}"
        failed, running = k % 10 == 3, k % 7 == 5
        tasks.append(task(f"{s}-map", session=s, status="ERROR" if failed else "COMPLETED",
                          outputs=[f"{s}-o"], message="boom" if failed else "",
                          times={"created": 0, "submitted": .1, "acquired": .2, "started": .3,
                                 "processed": .9, "ended": 1}))
        red = "PENDING" if running and not failed else ("ERROR" if failed else "COMPLETED")
        tasks.append(task(f"{s}-reduce", session=s, status=red, deps=[f"{s}-o"], outputs=[f"{s}-final"],
                          times={"created": 0} | ({} if red != "COMPLETED" else
                                                  {"submitted": 1, "acquired": 1.1, "started": 1.2,
                                                   "processed": 1 + k / 1000, "ended": 1 + k / 1000 + .01})
                          | ({"ended": 1} if failed else {})))
        results.append(result(f"{s}-o", session=s, owner=f"{s}-map", status="ABORTED" if failed else "COMPLETED",
                              completed=None if failed else 1))
        results.append(result(f"{s}-final", session=s, owner=f"{s}-reduce",
                              status={"COMPLETED": "COMPLETED", "PENDING": "CREATED"}.get(red, "ABORTED"),
                              completed=1 + k / 1000 + .01 if red == "COMPLETED" else None))
    return make_bundle(tmp_path_factory.mktemp("many") / "many.aksnap", tasks=tasks, results=results,
                       snapshot=3600)


def test_analyze_of_2k_sessions_is_a_readable_summary(many_sessions):
    """Given 2,000 sessions,
    when `aksnap analyze` runs without --session,
    then it prints a summary (totals and the top sessions by failures, waiting and wall time),
    not 2,000 sections; -o csv gives one row per session; --session gives one in full."""
    t = time.perf_counter()
    r = runner.invoke(app, ["analyze", str(many_sessions)])
    took = time.perf_counter() - t
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) < 60 and took < 60
    assert "sessions          2000" in r.stdout and "Longest wall time" in r.stdout
    snap = Snapshot.open(many_sessions)
    d = overview.build(snap)
    s = d["summary"]
    assert s["sessions"] == 2_000 and s["sessions_with_failures"] == 200
    assert s["root_causes"] == 200  # each failed map, nothing else
    assert [x["session_id"] for x in d["top_sessions"]["duration"]] == [f"s{k:04d}" for k in (1999, 1998, 1997, 1996, 1995)]
    rows = {x["session_id"]: x for x in d["sessions"]}
    # the running sessions (k % 7 == 5, map not failed) each have one blocking node: the reduce
    assert {k for k, x in rows.items() if x["blocking_nodes"] and x["longest_wait_s"]} == \
        {f"s{k:04d}" for k in range(2_000) if k % 7 == 5 and k % 10 != 3}
    out = runner.invoke(app, ["analyze", str(many_sessions), "-o", "csv"]).stdout
    assert len(list(csv.DictReader(io.StringIO(out)))) == 2_000
    one = overview.build(snap, "s0005")["sessions"][0]
    assert one["blocking_nodes"] == rows["s0005"]["blocking_nodes"] == 1
    assert [b["id"] for b in one["top_blockers"]] == ["s0005-reduce"]


def test_critical_path_of_2k_sessions_is_a_summary_agreeing_with_each_session(many_sessions):
    """Given 2,000 sessions,
    when `aksnap critical-path` runs without --session,
    then it prints the time by segment over all sessions and the longest paths, each line the
    same as that session's own critical path."""
    snap = Snapshot.open(many_sessions)
    d = critical_path.build(snap)["summary"]
    assert d["sessions_total"] == 2_000 and len(d["longest"]) == critical_path.SESSIONS_SHOWN
    top = d["longest"][0]
    assert top["session_id"] == "s1999"
    assert critical_path.build(snap, "s1999")["sessions"][0]["line"] == top["line"]
    r = runner.invoke(app, ["critical-path", str(many_sessions)])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) < 60


@pytest.fixture(scope="module")
def wide_task(tmp_path_factory):
    n = 100_000
    results = [result(f"in{i}", status="COMPLETED" if i % 10 < 7 else "CREATED",
                      completed=1 if i % 10 < 7 else None) for i in range(n)]
    results.append(result("gathered", owner="gather", status="CREATED"))
    tasks = [task("gather", status="PENDING", deps=[f"in{i}" for i in range(n)], outputs=["gathered"],
                  times={"created": 0})]
    return make_bundle(tmp_path_factory.mktemp("wide") / "wide.aksnap", tasks=tasks, results=results), n


def test_task_with_100k_inputs_prints_counts_and_the_first_50(wide_task):
    """Given a task reading 100,000 inputs (70% COMPLETED) and its payload,
    when `aksnap task` runs,
    then it prints the inputs counted by status and the first 50 in order; --all lists all."""
    path, n = wide_task
    r = runner.invoke(app, ["task", str(path), "gather"])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) < 120
    assert f"inputs      {n + 1}  COMPLETED={7 * n // 10 + 1} CREATED={3 * n // 10}" in r.stdout
    assert f"Inputs (the first {task_view.LIMIT} of {n + 1}; --all for every one)" in r.stdout
    d = task_view.build(Snapshot.open(path), "gather")
    assert [x["result_id"] for x in d["inputs"]] == [f"in{i}" for i in range(task_view.LIMIT)]
    out = runner.invoke(app, ["task", str(path), "gather", "--all", "-o", "csv", "--section", "inputs"]).stdout
    listed = [line for line in out.splitlines() if line.startswith(("data,", "payload,"))]
    assert len(listed) == n + 1 and listed[-1].startswith("payload,gather-payload,COMPLETED")
