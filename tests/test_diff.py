"""`aksnap diff A B`: two runs side by side, every figure with a verdict.

The main test builds the same workload twice on the simulated control plane (the engine, served
over real gRPC and exported), the second run with four known differences, and checks that diff
flags exactly those (and their direct consequences), nothing else.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from aksnap.analyzer import api, diff
from aksnap.analyzer.snapshot import AnalysisError, Snapshot
from aksnap.analyzer.testing import failure_bundle, make_bundle, result, task
from aksnap.cli import app

runner = CliRunner()
N = 12  # independent tasks per partition


def nightly(seed: int = 0, slow: float = 1.0, failing: int = 0, flaky: int = 0, chain: int = 8):
    """One nightly run of a workload on the simulated engine, drawn::

        client submits:  12 x cpu task (~2 s each, x `slow`)      partition cpu, 16 pods
                         12 x io task  (~1 s; the first `flaky` raise once, then succeed)
                         chain: c0 -> spawns c1 -> ... -> c{chain-1} (1 s each, partition io):
                                the critical path (the longest thing in the run)
                         `failing` x io task returning an error Output (a new failing class)

    Pods outnumber tasks, so slowing one partition adds no queueing anywhere else. The same
    seed gives the same durations to the tasks both runs share.
    """
    from aksnap.fixtures import model
    from aksnap.fixtures.engine import ERROR_OUTPUT, PartitionSpec, Plan, SessionSpec, simulate

    rng = np.random.default_rng([seed, 10])
    cpu = np.exp(rng.normal(np.log(2.0), 0.1, N)) * slow
    io_ = np.exp(rng.normal(np.log(1.0), 0.1, N))
    plan = Plan()
    top = [plan.task(d, outs=[k], partition=0) for k, d in enumerate(cpu)]
    top += [plan.task(d, outs=[N + k], partition=1, fail_attempts=1 if k < flaky else 0)
            for k, d in enumerate(io_)]
    links = [plan.task(1.0, outs=[2 * N] if j == 0 else [0], partition=1) for j in range(chain)]
    for a, b in zip(links, links[1:]):
        plan.set_children(a, [b], 1)
    top.append(links[0])
    top += [plan.task(1.0, outs=[2 * N + 1 + j], partition=1, behaviour=ERROR_OUTPUT)
            for j in range(failing)]
    plan.submit(0, 0.5, top, 2 * N + 1 + failing)
    parts = [PartitionSpec("cpu", pod_max=16, pod_reserved=16),
             PartitionSpec("io", pod_max=16, pod_reserved=16)]
    cl = simulate(plan, parts, [SessionSpec(partition_ids=("cpu", "io"))], seed=seed, name="nightly")
    return model.Scenario("nightly", seed, cl, {"session": cl.session_id(0)}, snapshot_at=cl.end_time)


def exported(scenario, out):
    from aksnap.exporter import export
    from aksnap.fixtures.server import SimulatedControlPlane

    with SimulatedControlPlane(scenario) as cp:
        export(cp.start(), out, all_sessions=True)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("diff")
    a = exported(nightly(0), d / "a.aksnap")
    b = exported(nightly(0, slow=2.0, failing=2, flaky=3, chain=11), d / "b.aksnap")
    return a, b


# what each injected difference must make diff flag (metric, scope) - and nothing else
SLOW_CPU = {(f"phase.processing.{s}", "cpu") for s in ("p50", "p90", "p99", "max")}
NEW_FAILURE = {("tasks.ERROR", ""), ("results.ABORTED", "")}
MORE_RETRIES = {("tasks.RETRIED", ""), ("retries.retried_attempts", ""),
                ("retries.tasks_retried", "")}
LONGER_PATH = {("critical_path.length", ""), ("critical_path.processing_s", ""),
               # the longer path is the run's wall time: its consequences
               ("time.wall_s", ""), ("time.makespan_s", ""), ("throughput.completed_per_s", "")}


def test_diff_flags_exactly_the_injected_differences(runs):
    """Given two runs of one workload, the second with one partition's processing twice as
    slow, a new failing task class, more retries and a longer critical path, when diffed, then
    the regressions are exactly those (and the wall time the longer path makes), no figure
    improved, and what merely changed is the counts and shape the extra tasks explain."""
    a, b = runs
    data = api.diff(a, b)
    assert len(data["matches"]) == 1 and "the only session" in data["matches"][0]["reason"]
    regressed = {(r["metric"], r["scope"]) for r in data["rows"] if r["verdict"] == "regression"}
    errors = {k for k in regressed if k[0].startswith("errors.")}
    assert {m for m, _ in errors} == {"errors.ERROR", "errors.RETRIED"}  # the new failing class, the retries
    assert regressed - errors == SLOW_CPU | NEW_FAILURE | MORE_RETRIES | LONGER_PATH
    assert not [r for r in data["rows"] if r["verdict"] == "improvement"]
    changed = {r["metric"] for r in data["rows"] if r["verdict"] == "changed"}
    assert changed <= {"tasks.COMPLETED", "results.COMPLETED", "pods.used"} | {
        m for m in changed if m.startswith("graph.depth.")}
    # the other partition's phases did not move beyond noise
    assert all(r["verdict"] == "same" for r in data["rows"]
               if r["metric"].startswith("phase.") and r["scope"] == "io")
    assert "processing grew most" in data["matches"][0]["headline"]


def test_a_run_against_itself_is_all_the_same_and_passes_ci(runs):
    a, _ = runs
    r = runner.invoke(app, ["diff", str(a), str(a), "--fail-on", "regression", "-o", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert {row["verdict"] for row in data["rows"]} == {"same"}
    assert all(row["delta"] == 0 for row in data["rows"])


def test_fail_on_regression_exits_1_and_markdown_pastes_into_a_pull_request(runs):
    a, b = runs
    r = runner.invoke(app, ["diff", str(a), str(b), "--fail-on", "regression", "-o", "markdown"])
    assert r.exit_code == 1, r.output
    assert r.stdout.startswith("### aksnap diff") and "| metric | scope |" in r.stdout
    assert "|---|" in r.stdout and "regression" in r.stdout


def test_csv_is_every_figure_with_a_b_delta_relative_delta_and_verdict(runs):
    a, b = runs
    r = runner.invoke(app, ["diff", str(a), str(b), "-o", "csv"])
    assert r.exit_code == 0 and "matches" in r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows and {"a", "b", "delta", "rel_delta", "verdict"} <= set(rows[0])
    slow = [x for x in rows if x["metric"] == "phase.processing.p50" and x["scope"] == "cpu"][0]
    assert float(slow["rel_delta"]) == pytest.approx(1.0, rel=0.05)


def test_a_threshold_turns_a_regression_into_noise(runs):
    """Given --threshold phase.processing=150%, then doubling the processing time (+100%) is
    within it: the cpu phases are the same, the rest is still flagged."""
    a, b = runs
    data = api.diff(a, b, thresholds=["phase.processing=150%"])
    verdicts = {(r["metric"], r["scope"]): r["verdict"] for r in data["rows"]}
    assert all(verdicts[k] == "same" for k in SLOW_CPU)
    assert verdicts[("tasks.ERROR", "")] == "regression"
    # with no noise floor at all, the io partition's few milliseconds of jitter count too
    tight = api.diff(a, b, thresholds=["phase.*.p90=0%,0"])
    p90 = {r["scope"]: r for r in tight["rows"] if r["metric"] == "phase.processing.p90"}
    assert p90["cpu"]["verdict"] == "regression" and p90["io"]["verdict"] != "same"
    assert abs(p90["io"]["rel_delta"]) < 0.2


@pytest.mark.parametrize("spec, words", [
    ("phase.processing.p90", "is not METRIC=N% or METRIC=N"),
    ("phase=abc", "is not a number or a percentage"),
    ("latency=10%", "names no metric"),
    ("phase=-5%", "non-negative"),
])
def test_a_bad_threshold_is_one_sentence(spec, words, tmp_path):
    b = failure_bundle(tmp_path / "f.aksnap")
    r = runner.invoke(app, ["diff", str(b), str(b), "--threshold", spec])
    assert r.exit_code == 2 and words in r.stderr and r.stderr.count("\n") == 1, r.output
    assert "Traceback" not in r.output


def _two_sessions(path, apps=("pricer", "risk"), tasks_per=(3, 5)):
    """Two sessions, each one application with its own task count (partition default)."""
    rows, res = [], []
    for s, (name, n) in enumerate(zip(apps, tasks_per)):
        for i in range(n):
            tid = f"{name}-{s}-{i}"
            rows.append(task(tid, session=f"{name}-{s}", outputs=[f"r{tid}"],
                             application_name=name, application_version="1.0",
                             times=dict(created=0, submitted=1, acquired=2, fetched=2, started=3,
                                        processed=4 + i, ended=5 + i)))
            res.append(result(f"r{tid}", session=f"{name}-{s}", owner=tid, completed=5 + i))
    return make_bundle(path, tasks=rows, results=res)


def test_sessions_are_matched_by_application_and_the_reason_is_printed(tmp_path):
    """Given A and B each with a pricer and a risk session, when diffed without flags, then
    pricer matches pricer and risk matches risk, each with its reason."""
    a = _two_sessions(tmp_path / "a")
    b = _two_sessions(tmp_path / "b", tasks_per=(4, 5))
    data = api.diff(a, b)
    pairs = {(m["session_a"], m["session_b"]) for m in data["matches"]}
    assert pairs == {("pricer-0", "pricer-0"), ("risk-1", "risk-1")}
    reason = [m for m in data["matches"] if m["session_a"] == "pricer-0"][0]["reason"]
    assert "same application pricer 1.0" in reason and "3 vs 4 tasks" in reason
    r = runner.invoke(app, ["diff", str(a), str(b)])
    assert r.exit_code == 0 and "because" in r.stdout and "same application pricer" in r.stdout


def test_an_ambiguous_match_is_a_sentence_asking_for_the_flags(tmp_path):
    """Given two sessions of the same application and size in each bundle, then diff cannot
    choose and asks for --session-a and --session-b; with them it compares."""
    a = _two_sessions(tmp_path / "a", apps=("pricer", "pricer"), tasks_per=(3, 3))
    r = runner.invoke(app, ["diff", str(a), str(a)])
    assert r.exit_code == 2 and "ambiguous" in r.stderr and "--session-a" in r.stderr
    assert r.stderr.count("\n") == 1
    r = runner.invoke(app, ["diff", str(a), str(a), "--session-a", "PRICER-1", "--session-b",
                            "pricer-0", "-o", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["matches"][0]["reason"].startswith("given by --session-a")


def test_one_session_flag_without_the_other_is_a_sentence(tmp_path):
    b = failure_bundle(tmp_path / "f.aksnap")
    r = runner.invoke(app, ["diff", str(b), str(b), "--session-a", "s1"])
    assert r.exit_code == 2 and "give both --session-a and --session-b" in r.stderr
    r = runner.invoke(app, ["diff", str(b), str(b), "--session-a", "s1", "--session-b", "nope"])
    assert r.exit_code == 2 and "is not in" in r.stderr
    r = runner.invoke(app, ["diff", str(b), str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no bundle at" in r.stderr


def test_verdicts_follow_the_better_direction():
    """Given the same change, a duration regresses when it grows, a throughput when it falls,
    and a figure with no better direction only changes."""
    assert diff.verdict("time.wall_s", 10, 12, 0.1, 1)[0] == "regression"
    assert diff.verdict("throughput.tasks_per_s", 10, 12, 0.1, 0)[0] == "improvement"
    assert diff.verdict("graph.depth.3", 10, 12, 0, 0)[0] == "changed"
    assert diff.verdict("time.wall_s", 10, 10.5, 0.1, 1)[0] == "same"  # under both thresholds
    assert diff.threshold_for("phase.processing.p90", diff.parse_thresholds(["phase.*.p90=5%"])) == (0.05, 0.05)


def test_the_markdown_table_escapes_what_it_shows():
    text = diff.markdown_table([{"m": "a|b `x` <script>"}], ["m"])
    assert "a\\|b" in text and "<script>" not in text and "\\`x\\`" in text


def test_diff_is_registered_like_every_analysis():
    from aksnap.analyzer.registry import COMMANDS

    a = COMMANDS["diff"]
    assert a.bundles == ("a", "b") and "markdown" in a.formats
    with pytest.raises(AnalysisError):
        diff.parse_thresholds(["="])
    assert isinstance(Snapshot, type)
