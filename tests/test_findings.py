"""The findings (``aksnap.analyzer.findings``, issue 19): each rule is the top finding of its
seeded scenario, served over real gRPC by the simulated control plane and exported; clean runs
of several seeds (at their end and mid-run) raise no warning or error; what a rule explains is
said once; thresholds and ``--fail-on`` do what they say; and the findings show where they
should (``findings``, ``analyze`` first, ``diff`` new and resolved, ``watch`` as they appear).

Every scenario is anchored before it is exported (its instant is the wall clock's now), so the
bundle's snapshot time is the scenario's instant, as an export of a live cluster's is.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aksnap.analyzer import diff, findings, live
from aksnap.analyzer.snapshot import AnalysisError, Snapshot
from aksnap.analyzer.testing import anomaly_bundle, failure_bundle
from aksnap.cli import app

scenarios = pytest.importorskip("aksnap.fixtures.scenarios")
server_mod = pytest.importorskip("aksnap.fixtures.server")
exporter = pytest.importorskip("aksnap.exporter")

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[1] / "docs" / "findings.md"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(name, seed=0, at=None, **kw)`` -> (truth, bundle path): the scenario built,
    anchored at its instant (``at``: a share of its end time instead), served over gRPC and
    exported once per module."""
    cache: dict = {}

    def get(name: str, seed: int = 0, at: float | None = None, **kw):
        key = (name, seed, at, tuple(sorted(kw.items())))
        if key not in cache:
            sc = scenarios.build_scenario(name, seed=seed, **kw)
            if at is not None:
                sc.snapshot_at = at * sc.cluster.end_time
            instant = sc.snapshot_at if sc.snapshot_at is not None else sc.cluster.end_time
            _anchor(sc, instant)
            out = tmp_path_factory.mktemp(name.replace("-", "_")) / "b.aksnap"
            with server_mod.SimulatedControlPlane(sc) as cp:
                exporter.export(cp.start(), out, all_sessions=True)
            cache[key] = (sc.truth, out)
        return cache[key]
    return get


def _anchor(sc, instant: float) -> None:
    """Move the scenario's epoch so that ``instant`` is now, by whole seconds: a fractional
    epoch makes the view at ``end_time`` round its last event a microsecond away (the last
    task would still be running)."""
    scenarios.anchor(sc, float(int(time.time() - instant)))


def _found(path, **kw) -> dict:
    return findings.build(Snapshot.open(path), **kw)


def _worst(d: dict) -> list[dict]:
    return [f for f in d["findings"] if f["severity"] in ("error", "warning")]


# -- each rule is the top finding of its scenario ----------------------------------------------

def _ids(f, key):
    return set(f["evidence"][key])


CASES = [
    # scenario, its options, the top finding's kind and severity, what it must name
    ("failures", {}, "failures_by_root_cause", "error",
     lambda f, t: t["failed_task"] in f["evidence"]["root_ids"]
     and f["impact"]["results"] == 5 and f["evidence"]["failed_by_propagation"] == 4),
    ("straggler", {}, "straggler", "warning",
     lambda f, t: f["evidence"]["task_ids"][0] == t["straggler_task"] and f["evidence"]["running"]
     and f["evidence"]["percentile"] == 100 and f["impact"]["results"] >= 2),
    ("starved", {}, "starved_partition", "error",
     lambda f, t: f["subject"] == "gpu" and _ids(f, "task_ids") == set(t["starved_tasks"])
     and f["evidence"]["pod_max"] == 0),
    ("starved", {"gpu_pods": 2}, "starved_partition", "warning",
     lambda f, t: f["subject"] == "gpu" and _ids(f, "task_ids") == set(t["starved_tasks"])
     and f["evidence"]["pod_max"] == 2 and f["impact"]["time_lost_s"] >= 120),
    ("stuck", {}, "starved_partition", "error", lambda f, t: f["subject"] == t["starved_partition"]),
    ("bad-node", {}, "bad_node", None,
     lambda f, t: f["subject"] == t["bad_pod"] and f["evidence"]["tasks_failed"] >= 20
     and f["evidence"]["other_pods"] == 7),
    ("retries", {}, "retries_never_recover", "error",
     lambda f, t: _ids(f, "tasks") == set(t["never_recovered"])
     and set(f["evidence"]["last_attempts"]) == set(t["last_attempts"])
     and f["impact"]["results"] == 6),
    ("cancelled", {}, "session_cancelled", "warning",
     lambda f, t: f["session_id"] == t["session"]
     and f["evidence"]["tasks_cancelled"] == len(t["cancelled_tasks"])),
    ("unsatisfiable", {}, "unsatisfiable_dependency", "warning",
     lambda f, t: [i["result_id"] for i in f["evidence"]["inputs"]] == [t["missing_result"]]
     and _ids(f, "tasks") == set(t["blocked_tasks"]) and f["impact"]["results"] == 3),
    ("stall", {}, "stall", "warning",
     lambda f, t: f["evidence"]["open_by_status"] == {"SUBMITTED": len(t["queued_tasks"])}
     and f["evidence"]["quiet_s"] >= 300),
    ("slowdown", {}, "throughput_drop", "warning",
     lambda f, t: f["evidence"]["pods_last_window"] == t["pods_after"]
     and f["evidence"]["pods_before"] == t["pods_before"]),
    ("htcmock", {}, "capacity_bound", "info",
     lambda f, t: f["session_id"] == t["session"] and f["evidence"]["share"] >= 0.5),
    ("chain", {}, "clean_run", "info", lambda f, t: f["claim"].startswith("clean run")),
]


@pytest.mark.parametrize("name, kw, kind, severity, names", CASES,
                         ids=[f"{c[0]}{'-' + '-'.join(map(str, c[1].values())) if c[1] else ''}"
                              for c in CASES])
def test_each_rule_is_the_top_finding_of_its_scenario(exported, name, kw, kind, severity, names):
    """Given the scenario built for a rule (served over gRPC, exported at its instant), when
    its findings are built, then the first is that rule's, as severe as the rule says, and it
    names what the scenario made happen (its ground truth)."""
    truth, path = exported(name, **kw)
    d = _found(path)
    top = d["findings"][0]
    assert top["kind"] == kind, [(f["kind"], f["claim"]) for f in d["findings"]]
    if severity is not None:
        assert top["severity"] == severity, top
    assert names(top, truth), top
    assert top["next"].startswith("aksnap ") and top["claim"]


def test_every_rule_has_its_scenario_here():
    """Given the catalogue, then every rule but new_error_class (tested against a baseline
    below) is the top finding of a case above, so a new rule cannot come without one."""
    assert {c[2] for c in CASES} | {"new_error_class"} == set(findings.KINDS)


@pytest.mark.parametrize("doc", ["README.md", "docs/findings.md"])
def test_the_docs_list_every_rule_with_its_default_thresholds(doc):
    """Given the README and docs/findings.md, then each lists every rule of the catalogue in a
    table row, and every threshold with the default the code uses (a changed default, or a new
    rule, cannot go unsaid)."""
    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z_]+)` \|.*$", text, re.M)}
    assert set(findings.KINDS) - {"retry_cleanup"} <= set(rows), set(findings.KINDS) - set(rows)
    for name, value in findings.parse_thresholds(None).items():
        m = re.search(rf"`{name}` ([0-9.]+)", text)
        assert m is not None, f"{doc} does not state {name}"
        assert float(m.group(1)) == float(value), (doc, name, m.group(1), value)


def test_an_error_class_new_since_the_baseline_is_the_top_finding(exported):
    """Given a clean htcmock run A and the same tree with failing leaves B (seed 0), when B's
    findings are built with A as baseline (and by aksnap diff A B), then the top one is
    new_error_class naming the error output, and the failures are not said twice; without a
    baseline, they are failures_by_root_cause; B against itself has nothing new."""
    _, a = exported("htcmock")
    truth, b = exported("htcmock", error_rate=0.05)
    assert truth["error_tasks"]
    d = _found(b, baseline=Snapshot.open(a))
    top = d["findings"][0]
    assert top["kind"] == "new_error_class" and top["severity"] == "error", d["summary"]
    assert "Output error" in top["subject"] and set(top["evidence"]["root_ids"]) <= set(truth["error_tasks"])
    assert not [f for f in d["findings"] if f["kind"] == "failures_by_root_cause"]
    assert _found(b)["findings"][0]["kind"] == "failures_by_root_cause"
    assert not [f for f in _found(b, baseline=Snapshot.open(b))["findings"]
                if f["kind"] == "new_error_class"]
    dd = diff.build(Snapshot.open(a), Snapshot.open(b))
    assert dd["findings"]["new"][0]["kind"] == "new_error_class", dd["findings"]
    back = diff.build(Snapshot.open(b), Snapshot.open(a))
    assert any(f["kind"] == "failures_by_root_cause" for f in back["findings"]["resolved"])
    assert not back["findings"]["new"] or all(f["severity"] == "info" for f in back["findings"]["new"])


# -- no false positives ----------------------------------------------------------------------------

CLEAN = ([("htcmock", s, None, {}) for s in range(5)]
         + [("htcmock", s, at, {}) for s, at in ((0, 0.5), (1, 0.5), (2, 0.5), (3, 0.3), (4, 0.75))]
         + [("htcmock", s, None, {"exception_rate": 0.05}) for s in (0, 1)]
         + [("htcmock", 1, 0.5, {"exception_rate": 0.05})]
         + [("fanout", 0, None, {}), ("chain", 0, None, {}), ("fanout", 1, 0.5, {}),
            ("many", 0, None, {"sessions": 5, "tasks": 300})])


@pytest.mark.parametrize("name, seed, at, kw", CLEAN,
                         ids=[f"{c[0]}-{c[1]}" + (f"-at{c[2]}" if c[2] else "") + ("-flaky" if c[3].get("exception_rate") else "")
                              for c in CLEAN])
def test_clean_runs_raise_no_warning(exported, name, seed, at, kw):
    """Given a clean run (htcmock seeds 0-4 at their end and mid-run, with tasks that raise
    once and recover, fanout, chain, many sessions), then no finding is a warning or an error,
    the verdict is clean and said in one line."""
    _, path = exported(name, seed, at, **kw)
    d = _found(path)
    assert not _worst(d), [f["claim"] for f in _worst(d)]
    assert d["clean"] and "\n" not in d["summary"]
    assert d["findings"][-1]["kind"] == "clean_run"


# -- said once ------------------------------------------------------------------------------------------

def test_failures_scenario_says_each_cause_once(exported):
    """Given the failures scenario (an error output, a timeout, retries exhausted, a parent
    retried after creating subtasks, a cancelled session, a paused one), then: the cancelled
    session is one finding (no failure group in it); the exhausted retries are one
    retries_never_recover finding, not also a failure group; what the retried parent left behind
    (cancelled subtasks, aborted results) is in no finding; each root cause is in one finding."""
    truth, path = exported("failures")
    d = _found(path)
    kinds = [(f["kind"], f["session_id"]) for f in d["findings"]]
    assert kinds.count(("session_cancelled", truth["cancelled_session"])) == 1
    assert not [f for f in d["findings"] if f["session_id"] == truth["cancelled_session"]
                and f["kind"] != "session_cancelled"]
    retries = [f for f in d["findings"] if f["kind"] == "retries_never_recover"]
    assert len(retries) == 1 and retries[0]["evidence"]["tasks"] == truth["retries_exhausted"]
    named = [i for f in d["findings"] for i in f["evidence"].get("root_ids", [])]
    assert not set(named) & (set(truth["cancelled_subtasks"]) | set(truth["aborted_by_retry"]))
    assert len(named) == len(set(named))
    roots = {f["evidence"]["root_ids"][0] for f in d["findings"] if f["kind"] == "failures_by_root_cause"}
    assert roots == {truth["failed_task"], *truth["timeout_tasks"]}
    assert not [f for f in d["findings"] if f["session_id"] == truth["paused_session"]
                and f["severity"] != "info"]


def test_hand_drawn_bundles(tmp_path):
    """Given the hand-drawn failure bundle (t3 "division by zero" aborts r3, r4, r6; t4 and t6
    fail by propagation), then one error group names t3 and lineage r6 as next; given the
    anomaly bundle (a3 PENDING on x2, ABORTED by a2), then a3 can never start (an error)."""
    d = _found(failure_bundle(tmp_path / "f"))
    top = d["findings"][0]
    assert (top["kind"], top["evidence"]["root_ids"], top["impact"]["results"]) == \
        ("failures_by_root_cause", ["t3"], 3)
    assert top["evidence"]["failed_by_propagation"] == 2 and top["next"].endswith(" r6")
    d = _found(anomaly_bundle(tmp_path / "a"))
    un = [f for f in d["findings"] if f["kind"] == "unsatisfiable_dependency"]
    assert len(un) == 1 and un[0]["severity"] == "error" and un[0]["evidence"]["tasks"] == ["a3"]
    assert un[0]["evidence"]["inputs"] == [{"result_id": "x2", "status": "ABORTED"}]


def _queued_bundle(path, busy: bool):
    """Drawn (one pod, p1; snapshot at 120 s)::

        a  submitted 0, acquired 100 (queued 100 s), runs 100.2 -> 110  -> ra (the last result)
        b  (busy only) acquired 0 on p1, runs until 100                 -> rb
    """
    from aksnap.analyzer.testing import make_bundle, result, task

    tasks = [task("a", outputs=["ra"], times={"created": 0, "submitted": 0, "acquired": 100,
                                              "fetched": 100.1, "started": 100.2,
                                              "processed": 110, "ended": 110.1},
                  pod_hostname="p1")]
    results = [result("ra", owner="a", completed=110.1)]
    if busy:
        tasks.append(task("b", outputs=["rb"], times={"created": 0, "submitted": 0, "acquired": 0,
                                                      "fetched": 0.1, "started": 0.2,
                                                      "processed": 99.9, "ended": 100},
                          pod_hostname="p1"))
        results.append(result("rb", owner="b", completed=100))
    return make_bundle(path, tasks=tasks, results=results, snapshot=120)


def test_capacity_bound_needs_the_pods_busy_while_the_path_queued(tmp_path):
    """Given a critical path that waited 100 s of its 110 s in the queue, then it is
    capacity-bound when the one pod ran another task all that time, and not when the pod was
    idle (the queue, not the capacity, held it: a slow scheduler, a paused session)."""
    d = _found(_queued_bundle(tmp_path / "busy", busy=True))
    cap = [f for f in d["findings"] if f["kind"] == "capacity_bound"]
    assert len(cap) == 1 and cap[0]["evidence"]["busy_pods_while_queued"] >= 0.99, d["findings"]
    d = _found(_queued_bundle(tmp_path / "idle", busy=False))
    assert not [f for f in d["findings"] if f["kind"] == "capacity_bound"], d["findings"]


# -- thresholds, --fail-on, the contract --------------------------------------------------------------

def test_a_threshold_overrides_its_rule(exported):
    """Given the stall scenario (10 min quiet), when stall_min_s is 1200, then no stall is
    found and the thresholds used say 1200; the default finds it."""
    _, path = exported("stall")
    d = _found(path, thresholds=["stall_min_s=1200"])
    assert d["thresholds"]["stall_min_s"] == 1200 and not [f for f in d["findings"] if f["kind"] == "stall"]
    assert _found(path, thresholds={"stall_min_s": 300})["findings"][0]["kind"] == "stall"


@pytest.mark.parametrize("spec, words", [
    ("nope=1", "is not a finding's threshold"), ("stall_min_s", "needs a value"),
    ("stall_min_s=abc", "not a number"), ("stall_min_s=-5", ">= 0"), ("stall_min_s=nan", ">= 0")])
def test_a_bad_threshold_is_one_sentence(spec, words, tmp_path):
    """Given a bad --threshold, then findings and analyze refuse it before reading the bundle:
    one sentence, exit 2, no traceback."""
    with pytest.raises(AnalysisError, match=re.escape(words)):
        findings.parse_thresholds([spec])
    b = str(failure_bundle(tmp_path / "b"))
    for cmd in ("findings", "analyze"):
        r = runner.invoke(app, [cmd, b, "--threshold", spec])
        assert r.exit_code == 2 and "aksnap: error:" in r.output and "Traceback" not in r.output


def test_fail_on_exits_1_for_ci(exported, tmp_path):
    """Given --fail-on, then findings and analyze exit 1 when a finding is at least that severe:
    the failure bundle (an error) fails on error and warning; the cancelled session (a warning)
    fails on warning only; a clean run on neither; a bad value is exit 2."""
    fb = str(failure_bundle(tmp_path / "f"))
    _, cancelled = exported("cancelled")
    _, clean = exported("chain")
    for cmd in ("findings", "analyze"):
        for path, fail_on, code in ((fb, "error", 1), (fb, "warning", 1), (cancelled, "error", 0),
                                    (cancelled, "warning", 1), (clean, "warning", 0)):
            r = runner.invoke(app, [cmd, str(path), "--fail-on", fail_on])
            assert r.exit_code == code, (cmd, path, fail_on, r.output)
        assert runner.invoke(app, [cmd, fb]).exit_code == 0
        r = runner.invoke(app, [cmd, fb, "--fail-on", "regression"])
        assert r.exit_code == 2 and "warning, error" in r.output


def test_the_contract_and_every_next_command_runs(exported):
    """Given the findings of several scenarios as JSON, then each has the contract's fields
    (kind among the catalogue's, severity, one-sentence claim, impact, evidence, next, anchor),
    every threshold is listed with its value, and each `next` command runs (exit 0)."""
    for name in ("failures", "straggler", "bad-node", "unsatisfiable", "slowdown"):
        _, path = exported(name)
        r = runner.invoke(app, ["findings", str(path), "-o", "json"])
        assert r.exit_code == 0, r.output
        d = json.loads(r.stdout)
        assert set(d) >= {"findings", "clean", "summary", "thresholds"}
        assert set(d["thresholds"]) == set(findings.THRESHOLDS)
        for f in d["findings"]:
            assert f["kind"] in findings.KINDS and f["severity"] in findings.SEVERITIES
            assert set(f["impact"]) == {"results", "tasks", "time_lost_s"}
            assert isinstance(f["evidence"], dict) and "anchor" in f
            assert "\n" not in f["claim"] and f["claim"].strip()
            argv = shlex.split(f["next"])
            assert argv[0] == "aksnap"
            r = runner.invoke(app, argv[1:])
            assert r.exit_code == 0, (f["next"], r.output)


def test_findings_render_as_text_safely(exported):
    """Given the hostile scenario (messages with NULs, bidi overrides, markup), then the table
    of its findings shows no control character raw, and CSV is one table."""
    _, path = exported("hostile")
    r = runner.invoke(app, ["findings", str(path)])
    assert r.exit_code == 0 and r.output.strip()
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e\u202d]", r.output)
    r = runner.invoke(app, ["findings", str(path), "-o", "csv"])
    assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith("rank,severity,kind")


# -- where the findings show ------------------------------------------------------------------------

def test_analyze_prints_the_findings_first(tmp_path):
    """Given a bundle, then analyze's table begins with the verdict and the findings (then
    the detail of today), its JSON carries them under findings (and the verdict), and its CSV
    has a findings section."""
    b = str(failure_bundle(tmp_path / "f"))
    r = runner.invoke(app, ["analyze", b])
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].startswith("verdict: ") and lines[1].startswith("ERROR ")
    assert r.output.index("division by zero") < r.output.index("bundle ")
    d = json.loads(runner.invoke(app, ["analyze", b, "-o", "json"]).stdout)
    assert d["findings"][0]["kind"] == "failures_by_root_cause" and d["verdict"]["clean"] is False
    assert set(d["verdict"]["thresholds"]) == set(findings.THRESHOLDS)
    r = runner.invoke(app, ["analyze", b, "-o", "csv", "--section", "findings"])
    assert r.exit_code == 0 and "failures_by_root_cause" in r.stdout


def test_watch_shows_findings_as_they_appear(tmp_path):
    """Given the failures scenario's main session watched from 1 s (nothing failed yet) to 10 s
    (its error output failed at about 3.5 s, the session runs on), then the first reconcile has
    no error finding, a later one shows the failure group marked new with when it appeared, the
    JSON state carries it, the view renders it; LiveState drops a resolved finding."""
    import threading

    from rich.console import Console

    from aksnap.cli.watch import render_view, watch

    sc = scenarios.build_scenario("failures", seed=0)
    _anchor(sc, 10.0)
    states = []
    stop = threading.Event()
    with server_mod.SimulatedControlPlane(sc, at=1.0) as cp:
        ep = cp.start()

        def later():
            cp.at = 10.0
            # two reconciles at least after the change, then stop
            end = time.time() + 20
            while time.time() < end and not any(s["findings"] and s["findings"][0]["severity"] == "error"
                                                for s in states[-1:]):
                time.sleep(0.1)
            time.sleep(1.5)
            stop.set()
        threading.Timer(2.0, later).start()
        res = watch(ep, session_id=sc.truth["main_session"], interval=0.6, stop=stop, max_s=40,
                    on_update=states.append)
    first = next(s for s in states if s["reconciles"] == 1)
    assert not [f for f in first["findings"] if f["severity"] == "error"], first["findings"]
    last = res.state
    got = [f for f in last["findings"] if f["kind"] == "failures_by_root_cause"]
    assert got and got[0]["new"] and got[0]["seen_at"] > 0, last["findings"]
    assert "findings" not in (last.get("analysis") or {})
    json.dumps(last, default=str)
    con = Console(record=True, width=220)
    con.print(render_view(last))
    assert "results aborted by 1 root task" in con.export_text()
    state = live.LiveState("s")
    f1 = {"kind": "stall", "severity": "warning", "claim": "c", "key": "stall:s:"}
    state.note_findings([f1])
    assert state.view()["findings"][0]["new"] is False
    state.note_findings([])
    assert state.view()["findings"] == []
    state.note_findings([f1])
    assert state.view()["findings"][0]["new"] is True


def test_diff_lists_new_and_resolved_findings(exported):
    """Given a clean run A and a cancelled run B, then diff A B lists B's session_cancelled as
    new, diff B A as resolved, and its table and markdown say so."""
    _, a = exported("chain")
    _, b = exported("cancelled")
    r = runner.invoke(app, ["diff", str(a), str(b), "--session-a", _sid(a), "--session-b", _sid(b),
                            "-o", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert [f["kind"] for f in d["findings"]["new"]][0] == "session_cancelled"
    assert any(f["kind"] == "clean_run" for f in d["findings"]["resolved"])
    r = runner.invoke(app, ["diff", str(a), str(b), "--session-a", _sid(a), "--session-b", _sid(b)])
    assert "was cancelled" in r.output
    r = runner.invoke(app, ["diff", str(a), str(b), "--session-a", _sid(a), "--session-b", _sid(b),
                            "-o", "markdown"])
    assert "Findings new in B" in r.output


def _sid(path) -> str:
    return Snapshot.open(path).session_ids()[0]


def test_docs_list_every_rule_and_threshold():
    """Given docs/findings.md, then every rule's kind and every threshold (with its default)
    is documented, and the README names the command."""
    text = DOCS.read_text()
    for kind in findings.KINDS:
        assert f"`{kind}`" in text, kind
    for name, t in findings.THRESHOLDS.items():
        assert re.search(rf"`{name}`[^\n]*{re.escape(f'{t.default:g}')}", text), name
