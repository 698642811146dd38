"""`aksnap whatif`: the replay engine on small drawn DAGs whose schedules are computed by hand,
its calibration against the simulated control plane over real gRPC, and its bad inputs.

Drawn runs: times in seconds after T0; every task is queued the instant it is ready and
runs on the pod named (``pod_hostname``) from its ``acquired_at`` to its ``ended_at``, so its
pod time is exactly its drawn work and the recorded schedule is the one drawn.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from aksnap.analyzer import api, whatif
from aksnap.analyzer.snapshot import AnalysisError, Snapshot
from aksnap.analyzer.testing import make_bundle, payloads_for, result, task
from aksnap.cli import app


def run(tid, start, work, pod, *, ready=None, deps=(), outputs=(), status="COMPLETED",
        created=None, **kw):
    """A task that became ready at ``ready`` (default ``start``), got pod ``pod`` at ``start``
    and ran ``work`` seconds; created at 0 (the client submits its tasks up front) unless
    said."""
    ready = start if ready is None else ready
    created = 0 if created is None else created
    end = start + work
    return task(tid, status=status, deps=list(deps), outputs=list(outputs), pod_hostname=pod,
                times=dict(created=created, submitted=ready, acquired=start, fetched=start,
                           started=start, processed=end, ended=end), **kw)


def bundle(tmp_path, tasks, results, spawned=(), name="b"):
    """A bundle of the drawn tasks; the payloads of ``spawned`` tasks (tid -> (creator, at))
    are uploaded by their creator when it ends."""
    pay = payloads_for(tasks)
    for r in pay:
        tid = r["result_id"].removesuffix("-payload")
        if tid in dict(spawned):
            creator, when = dict(spawned)[tid]
            r.update(result(r["result_id"], created_by=creator, created=when, completed=when))
    return make_bundle(tmp_path / name, tasks=tasks, results=results + pay, with_payloads=False)


def answer(path, **kw):
    with Snapshot.open(path) as snap:
        return whatif.build(snap, **kw)


def makespan(path, **kw):
    return answer(path, **kw)["summary"]["predicted_s"]


# -- drawn DAGs ---------------------------------------------------------------------------------

@pytest.fixture
def chain(tmp_path):
    """a [0..2] -> r1 -> b [2..5] -> r2 -> c [5..9] -> r3, one pod."""
    tasks = [run("a", 0, 2, "p1", outputs=["r1"]),
             run("b", 2, 3, "p1", deps=["r1"], outputs=["r2"]),
             run("c", 5, 4, "p1", deps=["r2"], outputs=["r3"])]
    results = [result("r1", owner="a", completed=2), result("r2", owner="b", completed=5),
               result("r3", owner="c", completed=9)]
    return bundle(tmp_path, tasks, results)


def test_chain_replays_exactly_and_more_pods_do_not_shorten_it(chain):
    """Given a chain of three tasks (2 s, 3 s, 4 s) on one pod,
    when it is replayed in the recorded order on the recorded pod,
    then the makespan is the recorded 9 s (0 % error) and every task ends when it did;
    and with 4 pods it is still 9 s: a chain has no parallelism to use."""
    d = answer(chain, policy="recorded")
    assert d["summary"]["recorded_s"] == 9.0
    assert d["summary"]["predicted_s"] == 9.0
    assert d["calibration"]["makespan_error_pct"] == 0.0
    assert d["calibration"]["end_error_max_abs_s"] == 0.0
    assert d["summary"]["pods"] == {"default": 1}
    assert [s["task_id"] for s in d["critical_path"]["steps"]] == ["a", "b", "c"]
    assert makespan(chain, pods=4) == 9.0


@pytest.fixture
def fan(tmp_path):
    """Four independent tasks of 3 s, all queued at 0, run one after the other on one pod:
    w1 [0..3], w2 [3..6], w3 [6..9], w4 [9..12]."""
    tasks = [run(f"w{i}", 3 * (i - 1), 3, "p1", ready=0, outputs=[f"o{i}"]) for i in (1, 2, 3, 4)]
    results = [result(f"o{i}", owner=f"w{i}", completed=3 * i) for i in (1, 2, 3, 4)]
    return bundle(tmp_path, tasks, results)


def test_fan_out_halves_with_two_pods_and_stops_at_four(fan):
    """Given four independent 3 s tasks recorded on 1 pod (makespan 12 s),
    then the recorded capacity is 1 pod and the replay gives 12 s;
    with 2 pods 6 s (two waves), with 4 pods 3 s, with 8 pods still 3 s;
    the capacity curve (N/2, N, 2N, 4N = 1, 1, 2, 4 pods) says 12, 12, 6, 3, and the time to
    w4's output falls from 12 s to 6 s with 2 pods (it is in the second wave)."""
    d = answer(fan, curve=True)
    assert d["summary"]["pods"] == {"default": 1}
    assert d["summary"]["recorded_s"] == d["summary"]["predicted_s"] == 12.0
    assert makespan(fan, pods=2) == 6.0
    assert makespan(fan, pods=4) == 3.0
    assert makespan(fan, pods=8) == 3.0
    assert [r["predicted_s"] for r in d["curve"]] == [12.0, 12.0, 6.0, 3.0]
    assert [r["pods_total"] for r in d["curve"]] == [1, 1, 2, 4]
    assert d["curve"][1]["saturated"] and not d["curve"][2]["saturated"]
    two = answer(fan, pods=2, targets=["o4"])
    assert two["targets"][0]["recorded_s"] == 12.0
    assert two["targets"][0]["predicted_s"] == 6.0
    part = two["partitions"][0]
    assert part["pods"] == 2 and part["pods_from"] == "--pods"
    assert part["utilisation_predicted"] == 1.0
    assert answer(fan, partitions=["default=4"])["summary"]["predicted_s"] == 3.0


@pytest.fixture
def takeover(tmp_path):
    """HtcMock's fork-join, on 2 pods::

        P [0..2] on p1 spawns c1, c2 and A (written when P succeeds, at 2)
          c1 [2..5] on p1 -> rc1 --+
          c2 [2..5] on p2 -> rc2 --+--> A [5..6] on p1 -> rP
        rP was P's expected output; A lists it and owns it now (rP completed at 6)."""
    kids = dict(parents=["s1", "P"], created_by="P", created=2)
    tasks = [run("P", 0, 2, "p1", outputs=["rP"]),
             run("c1", 2, 3, "p1", outputs=["rc1"], **kids),
             run("c2", 2, 3, "p2", outputs=["rc2"], **kids),
             run("A", 5, 1, "p1", ready=5, deps=["rc1", "rc2"], outputs=["rP"], **kids)]
    results = [result("rP", owner="A", completed=6),
               result("rc1", owner="c1", created_by="P", created=2, completed=5),
               result("rc2", owner="c2", created_by="P", created=2, completed=5)]
    return bundle(tmp_path, tasks, results,
                  spawned={"c1": ("P", 2), "c2": ("P", 2), "A": ("P", 2)}.items())


def test_subtasks_wait_for_their_parent_and_the_aggregator_owns_its_output(takeover):
    """Given the fork-join drawn above (recorded on 2 pods, rP at 6 s),
    when it is replayed on 1 pod: P 0..2, c1 2..5, c2 5..8, A 8..9, so rP (owned by A, not
    by P, whose run ended at 2) is predicted at 9 s;
    with 8 pods the subtasks still cannot start before their parent ended: rP at 6 s."""
    d = answer(takeover, targets=["rP"], policy="recorded")
    assert d["summary"]["pods"] == {"default": 2}
    assert d["targets"][0]["recorded_s"] == d["targets"][0]["predicted_s"] == 6.0
    one = answer(takeover, pods=1, targets=["rP"])
    assert one["targets"][0]["producer"] == "A"
    assert one["targets"][0]["predicted_s"] == 9.0
    assert one["summary"]["predicted_s"] == 9.0
    assert answer(takeover, pods=8, targets=["rP"])["targets"][0]["predicted_s"] == 6.0


def test_lazy_runs_only_the_targets_upstream_with_its_parent(takeover):
    """Given the fork-join drawn above, on 1 pod,
    when only rc1 is wanted (--policy lazy --target rc1),
    then only P (c1's parent: c1 exists only once P ran) and c1 run: rc1 at 5 s, against 5 s
    recorded; c2 and A are not run: 2 tasks and 4 task-seconds saved."""
    d = answer(takeover, pods=1, policy="lazy", targets=["rc1"])
    assert d["targets"][0]["predicted_s"] == 5.0
    assert d["targets"][0]["recorded_s"] == 5.0
    assert d["lazy"]["tasks_run"] == 2
    assert d["lazy"]["tasks_not_run"] == 2
    assert d["lazy"]["task_seconds_not_run"] == 4.0
    assert d["summary"]["predicted_s"] == 5.0
    # fifo over the whole graph on 1 pod: rc1 still at 5 s, but the run lasts 9 s
    assert makespan(takeover, pods=1) == 9.0


@pytest.fixture
def retried(tmp_path):
    """t fails after 2 s on p1 (RETRIED); its retry t###1 (created by t when it failed, at 2)
    runs 2..5 on p1 -> r; u runs 0..4 on p2 -> q."""
    tasks = [run("t", 0, 2, "p1", status="RETRIED", outputs=["r"], message="crash"),
             run("t###1", 2, 3, "p1", outputs=["r"], created_by="t", retry_of=["t"],
                 initial="t", payload="t-payload"),
             run("u", 0, 4, "p2", outputs=["q"])]
    results = [result("r", owner="t###1", completed=5), result("q", owner="u", completed=4)]
    return bundle(tmp_path, tasks, results)


def test_a_retry_follows_its_failed_attempt_as_recorded(retried):
    """Given t failing after 2 s and its retry taking 3 s (recorded on 2 pods: makespan 5 s),
    when replayed on 1 pod (fifo): t 0..2, then u (queued at 0) before t###1 (queued at 2):
    u 2..6, t###1 6..9, so r at 9 s;
    with 4 pods the retry still waits for the failure: r at 5 s; both attempts are replayed
    (the failed one costs its 2 s of pod time)."""
    d = answer(retried, pods=1, targets=["r"])
    assert d["targets"][0]["predicted_s"] == 9.0
    assert d["summary"]["predicted_s"] == 9.0
    assert d["summary"]["tasks_replayed"] == 3
    assert d["partitions"][0]["work_s"] == 9.0
    assert answer(retried, pods=4, targets=["r"])["targets"][0]["predicted_s"] == 5.0
    assert answer(retried, policy="recorded")["calibration"]["makespan_error_pct"] == 0.0


@pytest.fixture
def head(tmp_path):
    """On 2 pods: k1, k2 (1 s each, queued at 0) and a (1 s, queued at 0, it got a pod at 1)
    -> ra -> b (10 s) -> rb. Recorded (fifo): k1 p1 0..1, k2 p2 0..1, a p1 1..2, b p1 2..12."""
    tasks = [run("k1", 0, 1, "p1", outputs=["x1"]), run("k2", 0, 1, "p2", outputs=["x2"]),
             run("a", 1, 1, "p1", ready=0, outputs=["ra"]),
             run("b", 2, 10, "p1", deps=["ra"], outputs=["rb"])]
    results = [result("x1", owner="k1", completed=1), result("x2", owner="k2", completed=1),
               result("ra", owner="a", completed=2), result("rb", owner="b", completed=12)]
    return bundle(tmp_path, tasks, results)


def test_critical_path_policy_starts_the_long_chain_first(head):
    """Given the run drawn above (12 s),
    then fifo replays it in 12 s, and critical-path (longest remaining path first) runs a at
    0 beside k1, then b at 1 beside k2: 11 s."""
    assert makespan(head, policy="recorded") == 12.0
    assert makespan(head, policy="fifo") == 12.0
    d = answer(head, policy="critical-path")
    assert d["summary"]["predicted_s"] == 11.0
    assert [s["task_id"] for s in d["critical_path"]["steps"]] == ["a", "b"]


def test_python_api_and_report_section(head):
    """Given the drawn run, the notebook function of the command gives the same data, and
    report_data (the report's section) gives recorded against predicted and the curve."""
    d = api.whatif(str(head), pods=1)
    assert d["summary"]["predicted_s"] == 13.0  # 1 pod: k1, k2, a, b one after the other
    with Snapshot.open(head) as snap:
        r = whatif.report_data(snap)
    assert r["available"]
    assert r["sessions"][0]["recorded_s"] == r["sessions"][0]["predicted_s"] == 12.0
    assert [c["pods_total"] for c in r["curve"]] == [1, 2, 4, 8]
    assert r["curve"][1]["predicted_s"] == 12.0


def test_nothing_ran_is_said_not_crashed(tmp_path):
    """Given a bundle whose only task never got a pod (PENDING), the replay runs nothing and
    says so, and the report section says it is unavailable."""
    path = make_bundle(tmp_path / "b", tasks=[task("t", status="PENDING", outputs=["r"],
                                                    times=dict(created=0))],
                       results=[result("r", owner="t", status="CREATED")])
    d = answer(path)
    assert d["summary"]["tasks_replayed"] == 0
    assert d["summary"]["predicted_s"] is None
    assert any("never got a pod" in n for n in d["notes"])
    with Snapshot.open(path) as snap:
        assert whatif.report_data(snap)["available"] is False


# -- calibration against the simulator, over real gRPC -----------------------------------------

def _simulated(tmp_path, pods, tasks=400, seed=5):
    from aksnap.exporter import export
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario("htcmock", seed=seed, tasks=tasks, pods=pods)
    out = tmp_path / f"htc{pods}"
    with SimulatedControlPlane(sc) as cp:
        export(cp.start("127.0.0.1", 0), out, all_sessions=True)
    return out, sc.truth


def test_calibration_and_cross_prediction_on_the_simulator(tmp_path):
    """Given htcmock (400 tasks, seed 5) run by the simulated control plane with 4 pods and
    with 8 pods, each exported over real gRPC,
    when the 4-pod bundle is replayed on its recorded pods (recorded order),
    then its makespan and the final result's time are within 5 % of the recorded ones;
    and replayed on 8 pods (fifo) it predicts the 8-pod run's makespan within 10 %."""
    p4, truth = _simulated(tmp_path, 4)
    p8, _ = _simulated(tmp_path, 8)
    d = answer(p4, policy="recorded", targets=[truth["final_result"]])
    assert d["summary"]["pods"] == {"htcmock": 4}
    assert abs(d["calibration"]["makespan_error_pct"]) <= 5
    t = d["targets"][0]
    assert abs(t["predicted_s"] - t["recorded_s"]) <= 0.05 * t["recorded_s"]
    real8 = answer(p8)["summary"]["recorded_s"]
    pred8 = makespan(p4, pods=8)
    assert abs(pred8 - real8) <= 0.10 * real8, (pred8, real8)


# -- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--pods", "0"], "--pods must be at least 1"),
    (["--partition", "default"], "is not NAME=N"),
    (["--partition", "default=two"], "not a whole number"),
    (["--partition", "default=0"], "at least 1 pod"),
    (["--partition", "gpu=3"], "partition 'gpu' is not in"),
    (["--policy", "random"], "is not one of"),
    (["--policy", "lazy"], "name them with --target"),
    (["--target", "nope"], "target result 'nope' is not in"),
    (["--session", "nope"], "nope"),
])
def test_bad_input_is_one_sentence_and_exit_2(head, args, words):
    """Given a drawn bundle, when whatif gets a bad option, then it exits 2 with one
    `aksnap: error:` sentence naming the problem, and no traceback."""
    r = CliRunner().invoke(app, ["whatif", str(head), *args])
    assert r.exit_code == 2, r.output
    err = r.stderr if hasattr(r, "stderr") else r.output
    assert "aksnap: error:" in err and words in err, err
    assert "Traceback" not in r.output


def test_command_outputs(head):
    """The command answers as a table, JSON and YAML, and a single section as CSV."""
    import json
    runner = CliRunner()
    r = runner.invoke(app, ["whatif", str(head), "--pods", "1", "-o", "json", "--curve"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["summary"]["predicted_s"] == 13.0 and len(d["curve"]) == 4
    r = runner.invoke(app, ["whatif", str(head)])
    assert r.exit_code == 0 and "model error" in r.stdout and "predicted makespan" in r.stdout
    r = runner.invoke(app, ["whatif", str(head), "-o", "yaml"])
    assert r.exit_code == 0 and "predicted_s" in r.stdout
    r = runner.invoke(app, ["whatif", str(head), "-o", "csv", "--section", "partitions"])
    assert r.exit_code == 0 and r.stdout.startswith("partition_id")
    r = runner.invoke(app, ["whatif", str(head), "--pods", "1", "--no-calibration", "-o", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["calibration"] is None and d["summary"]["predicted_s"] == 13.0
    r = runner.invoke(app, ["whatif", str(head), "--no-calibration"])
    assert r.exit_code == 0 and "not measured" in r.stdout


def test_analysis_error_is_raised_by_the_library(head):
    """The library raises AnalysisError (the CLI turns it into the sentence)."""
    with Snapshot.open(head) as snap, pytest.raises(AnalysisError):
        whatif.build(snap, pods=-1)



# -- lazy, validated: the simulator submitting only the targets' upstream ------------------------

def _run_upstream_templates(cl, rows):
    """The templates of every task the given task rows need in a finished run, read from the
    run itself (not from the plan): the last owners of what they read, their parents, their
    earlier attempts, transitively."""
    need, stack = set(), [int(i) for i in rows]
    while stack:
        i = stack.pop()
        if i in need:
            continue
        need.add(i)
        stack += [int(cl.r_final_owner[r]) for r in cl.deps(i).tolist() if cl.r_final_owner[r] >= 0]
        stack += [int(x) for x in (cl.parent_idx[i], cl.created_by_idx[i]) if x >= 0]
    return {int(cl.tmpl[i]) for i in need}


@pytest.mark.parametrize("name, tasks", [("htcmock", 400), ("fanout", 60)])
def test_a_pruned_plan_submits_exactly_the_upstream_and_its_target_completes(name, tasks):
    """Given a seeded scenario run in full, and results picked in it (the final result, an
    aggregation's output in the middle of the graph, a leaf's output),
    when the same plan runs with lazy_targets = the templates owning those results,
    then the pruned run instantiates exactly the templates the full run's own task graph says
    the target needs (last owners of its inputs, parents, transitively), each once, all
    COMPLETED, the target's output completes, and no later than in the full run (less work
    competes for the pods); template ids match across the runs (result ids do not)."""
    import pyarrow.compute as pc
    from aksnap.fixtures.engine import T_COMPLETED
    from aksnap.fixtures.scenarios import build_scenario, result_template

    full = build_scenario(name, seed=5, tasks=tasks, pods=4)
    cl = full.cluster
    reads = np.flatnonzero(cl.dep_n > 0)
    picks = [full.truth["final_result"], cl.result_id(cl.outputs(int(reads[len(reads) // 2]))[0]),
             cl.result_id(cl.outputs(int(np.flatnonzero(cl.dep_n == 0)[-1]))[0])]
    for rid in dict.fromkeys(picks):
        tm, k = result_template(cl, rid)
        owner = int(cl.r_final_owner[pc.index(cl.result_ids, rid).as_py()])
        want = _run_upstream_templates(cl, [owner])
        lz = build_scenario(name, seed=5, tasks=tasks, pods=4, lazy_targets=[tm])
        lc = lz.cluster
        assert sorted(lc.tmpl.tolist()) == sorted(want), rid
        assert (lc.final == T_COMPLETED).all()
        r2 = pc.index(lc.result_ids, lz.truth["lazy_targets"][tm][k]).as_py()
        assert lc.r_final_owner[r2] >= 0 and lc.tmpl[lc.r_final_owner[r2]] == tm
        done_lazy = lc.rts["completed"][r2] - lc.ts["created"].min()
        done_full = cl.rts["completed"][pc.index(cl.result_ids, rid).as_py()] - cl.ts["created"].min()
        assert 0 < done_lazy <= done_full + 1000  # µs: agent delays are drawn per dispatch
        assert lz.truth["n_tasks"] == len(want) < cl.n_tasks or rid == full.truth["final_result"]


def test_lazy_targets_on_a_scenario_that_cannot_prune_is_refused():
    """Given a scenario without lazy support, lazy_targets is refused with a sentence (not
    silently ignored: the run would be the full one)."""
    from aksnap.fixtures.scenarios import build_scenario

    with pytest.raises(ValueError, match="cannot run lazily"):
        build_scenario("chain", seed=1, tasks=10, lazy_targets=[3])
    with pytest.raises(ValueError, match="not templates"):
        build_scenario("fanout", seed=1, tasks=10, lazy_targets=[999])


def test_lazy_prediction_against_the_simulators_lazy_run(tmp_path):
    """Given htcmock (400 tasks, seed 5, 4 pods) run in full and exported over real gRPC, and
    a target deep in the graph (the output of the aggregation half-way through the run),
    when `whatif --policy lazy --target R` predicts R's time on the full bundle,
    and the simulator runs the same plan submitting only R's upstream (same pods), exported too,
    then the prediction is within 2 % of the lazy run's measured time to R (both from the
    first task's creation), and the tasks and task-seconds the replay says are not run are the
    ones the lazy run did not run (within 1 %: pod times carry the agent's drawn delays)."""
    import pyarrow.compute as pc
    from aksnap.exporter import export
    from aksnap.fixtures.scenarios import build_scenario, result_template
    from aksnap.fixtures.server import SimulatedControlPlane

    def run(out, **kw):
        sc = build_scenario("htcmock", seed=5, tasks=400, pods=4, **kw)
        with SimulatedControlPlane(sc) as cp:
            export(cp.start("127.0.0.1", 0), out, all_sessions=True)
        return sc

    full = run(tmp_path / "full")
    cl = full.cluster
    aggs = np.flatnonzero(cl.dep_n > 0)
    mid = aggs[np.argsort(cl.ts["ended"][aggs])[len(aggs) // 2]]
    rid = cl.result_id(cl.outputs(int(mid))[0])
    tm, k = result_template(cl, rid)
    lazy = run(tmp_path / "lazy", lazy_targets=[tm])
    rid2 = lazy.truth["lazy_targets"][tm][k]
    pred = answer(tmp_path / "full", policy="lazy", targets=[rid])
    real = answer(tmp_path / "lazy", targets=[rid2], calibrate=False)
    p, r = pred["targets"][0]["predicted_s"], real["targets"][0]["recorded_s"]
    assert abs(p - r) <= 0.02 * r, (p, r)
    assert pred["targets"][0]["recorded_s"] > 1.5 * r  # the full run got there much later
    assert pred["lazy"]["tasks_run"] == lazy.truth["n_tasks"]
    assert pred["lazy"]["tasks_not_run"] == cl.n_tasks - lazy.truth["n_tasks"]
    work_lazy = real["partitions"][0]["work_s"]
    assert abs(pred["lazy"]["task_seconds_run"] - work_lazy) <= 0.01 * work_lazy


# -- the calibration, remembered per bundle ------------------------------------------------------

def test_calibration_is_cached_per_content_session_and_code(head, tmp_path, monkeypatch):
    """Given a bundle large enough to cache (the threshold lowered for the test),
    when whatif runs twice, then the second answer reuses the calibration (no second
    'recorded' replay) and says the same;
    a corrupted cache entry is recomputed, not believed into a crash;
    an entry written for other content (a forged file under another key) is never read,
    an opening without checksum verification neither reads nor writes the cache, and another
    session is its own entry."""
    import json
    from aksnap.analyzer import replay as rp

    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(whatif, "CALIBRATION_CACHE_MIN_TASKS", 1)
    calls = []
    real = rp.replay

    def counting(wl, cap, policy="fifo", *a, **kw):
        calls.append(policy)
        return real(wl, cap, policy, *a, **kw)

    monkeypatch.setattr(rp, "replay", counting)
    first = answer(head, policy="critical-path")
    assert calls == ["critical-path", "recorded"]
    entries = list((tmp_path / "cache").glob("whatif-calibration-*"))
    assert len(entries) == 1
    calls.clear()
    second = answer(head, policy="critical-path")
    assert calls == ["critical-path"] and second["calibration"] == first["calibration"]
    # corrupted: recomputed and rewritten
    entries[0].write_text("{not json")
    calls.clear()
    assert answer(head, policy="critical-path")["calibration"] == first["calibration"]
    assert calls == ["critical-path", "recorded"]
    # a lie in the entry is believed only for this content: another bundle never reads it
    forged = json.loads(entries[0].read_text())
    forged["*"]["makespan_error_pct"] = 99.0
    entries[0].write_text(json.dumps(forged))
    assert answer(head)["calibration"]["makespan_error_pct"] == 99.0  # same content: reused
    other = bundle(tmp_path, [run("a", 0, 2, "p1", outputs=["r1"])],
                   [result("r1", owner="a", completed=2)], name="other")
    calls.clear()
    assert answer(other)["calibration"]["makespan_error_pct"] == 0.0
    assert calls == ["fifo", "recorded"]
    calls.clear()
    with Snapshot.open(head, verify=False) as snap:
        d = whatif.build(snap, policy="critical-path")
    assert d["calibration"]["makespan_error_pct"] == 0.0 and calls == ["critical-path", "recorded"]
    sid = first["sessions"][0]["session_id"]
    calls.clear()
    assert answer(head, session_id=sid)["calibration"]["makespan_error_pct"] == 0.0
    assert calls == ["fifo", "recorded"]
