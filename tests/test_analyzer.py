"""The analyzer on tiny hand-drawn bundles with known answers.

The bundles are drawn in the docstrings of ``aksnap.analyzer.testing.failure_bundle`` and
``anomaly_bundle``; each test states what it proves (given / when / then).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aksnap.analyzer import api, blockers, check, critical_path, lineage, task_view
from aksnap.analyzer.snapshot import AnalysisError, Snapshot
from aksnap.analyzer.testing import (anomaly_bundle, failure_bundle, make_bundle, result, task)
from aksnap.bundle import BundleError
from aksnap.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def fb(tmp_path_factory) -> Path:
    return failure_bundle(tmp_path_factory.mktemp("fb") / "failure.aksnap")


@pytest.fixture(scope="module")
def snap(fb) -> Snapshot:
    return Snapshot.open(fb)


@pytest.fixture(scope="module")
def ab(tmp_path_factory) -> Path:
    return anomaly_bundle(tmp_path_factory.mktemp("ab") / "anomaly.aksnap")


# -- Snapshot -----------------------------------------------------------------------------------

def test_views_expose_every_table_and_the_edge_views(snap):
    """Given the failure bundle, when the views are listed, then the tables and edges are there
    and the edges say what ARMONIK.md says (t2###1 owns r2 after the retry; t10 owns r8)."""
    for view in ("sessions", "tasks", "results", "partitions", "task_dependencies", "task_outputs",
                 "result_producers", "task_parents", "task_attempts", "task_retries", "task_phases"):
        assert snap.sql(f"SELECT count(*) AS n FROM {view}").num_rows == 1
    prod = {r["result_id"]: r["task_id"] for r in
            snap.sql("SELECT result_id, task_id FROM result_producers").to_pylist()}
    assert prod["r2"] == "t2###1" and prod["r8"] == "t10" and prod["r1"] == "t1"
    assert prod["t1-payload"] is None  # the client uploaded it
    kinds = snap.sql("SELECT kind, count(*) AS n FROM task_dependencies GROUP BY ALL ORDER BY 1").to_pylist()
    assert kinds == [{"kind": "data", "n": 9}, {"kind": "payload", "n": 14}]
    assert snap.sql("SELECT * FROM task_retries").to_pylist() == [
        {"task_id": "t2", "session_id": "s1", "next_task_id": "t2###1"}]
    assert sorted(r["task_id"] for r in snap.sql("SELECT * FROM task_parents").to_pylist()) == ["t10", "t9"]


def test_sql_binds_parameters_and_returns_arrow(snap):
    t = snap.sql("SELECT task_id FROM tasks WHERE status = $s ORDER BY 1", {"s": "ERROR"})
    assert t.column("task_id").to_pylist() == ["t3", "t4", "t6"]


def test_phase_durations_follow_the_issue_definitions(snap):
    """u2: created 0, submitted 5, acquired 7, fetched 7, started 7.5, processed 9.5, ended 10."""
    row = [r for r in snap.query("task_phases", {"session_id": "s2"}).to_pylist() if r["task_id"] == "u2"][0]
    assert (row["waiting"], row["queued"], row["dispatch"], row["fetching"], row["processing"],
            row["finishing"], row["total"]) == (5.0, 2.0, 0.0, 0.5, 2.0, 0.5, 10.0)


def _sql_status_counts(snap, sid):
    out = {}
    for q, n in (("status_counts", "tasks"), ("result_status_counts", "results")):
        d = {}
        for r in snap.query(q, {"session_id": sid}).to_pylist():
            d.setdefault(r["session_id"], {})[r["status"]] = r[n]
        out[n] = d
    return out["tasks"], out["results"]


def test_status_counts_from_the_index_are_the_sql_definitions(fb, tmp_path):
    """Given bundles with several sessions, tied counts and a session with no task, when
    analyze counts tasks and results by status from the graph's codes (overview.status_counts),
    then it answers what queries/status_counts.sql and result_status_counts.sql answer, in
    their order (most numerous first, then by name), for all sessions and for each one."""
    from aksnap.analyzer import overview

    statuses = ["COMPLETED", "ERROR", "COMPLETED", "CANCELLED", "ERROR", "RETRIED", "PROCESSING",
                "SUBMITTED", "CANCELLED", "TIMEOUT", "CREATING", "COMPLETED"]
    tasks = [task(f"t{i}", session=f"s{i % 3}", status=st, outputs=[f"r{i}"])
             for i, st in enumerate(statuses)]
    results = [result(f"r{i}", session=f"s{i % 3}", owner=f"t{i}",
                      status=("COMPLETED" if st == "COMPLETED" else "ABORTED" if i % 2 else "CREATED"))
               for i, st in enumerate(statuses)]
    sessions = [{"session_id": s, "status": "RUNNING", "created_at": None, "partition_ids": ["default"]}
                for s in ("s0", "s1", "s2", "s9")]
    tied = make_bundle(tmp_path / "tied.aksnap", tasks=tasks, results=results, sessions=sessions)
    for path in (fb, tied):
        with Snapshot.open(path) as s:
            ids = [r["session_id"] for r in s.query("session_summary").to_pylist()] + ["s9"]
            for sid in [None, *ids]:
                if sid == "s9" and path == fb:
                    continue
                got = overview.status_counts(s.graph, sid)
                want = _sql_status_counts(s, sid)
                assert got == want and [list(d.items()) for d in got[0].values()] == \
                    [list(d.items()) for d in want[0].values()], (path, sid)
                assert [list(d.items()) for d in got[1].values()] == \
                    [list(d.items()) for d in want[1].values()], (path, sid)


def test_session_summary_is_computed_over_all_rows(snap):
    s2 = [r for r in snap.query("session_summary").to_pylist() if r["session_id"] == "s2"][0]
    assert s2["elapsed_s"] == 10.0 and s2["tasks"] == 3 and s2["avg_throughput"] == pytest.approx(0.3)


def test_transition_stats_between_any_two_timestamps(snap):
    rows = snap.query("transition_stats", {"from": "submitted", "to": "acquired",
                                           "session_id": "s2"}).to_pylist()
    assert rows[0]["tasks"] == 3 and rows[0]["max_s"] == 2.0 and rows[0]["min_s"] == 0.5
    with pytest.raises(AnalysisError, match="unknown timestamp"):
        snap.query("transition_stats", {"from": "lunch"})


def test_tasks_in_status_over_time_counts_running_tasks(snap):
    """s2 processing (started -> ended): u3 [1, 2], u1 [2, 5], u2 [7.5, 10]."""
    rows = snap.query("tasks_in_status_over_time", {"timestamp": "started", "next_timestamp": "ended",
                                                    "session_id": "s2"}).to_pylist()
    assert [r["tasks"] for r in rows] == [1, 1, 0, 1, 0]


def test_error_classes_group_messages_and_tell_propagation(snap):
    rows = snap.query("error_classes", {"session_id": "s1"}).to_pylist()
    prop = [r for r in rows if r["propagated"]]
    assert len(prop) == 1 and prop[0]["tasks"] == 2  # t4 and t6: one class once ids are masked


def test_retry_chains_and_stragglers(snap):
    chains = snap.query("retry_chains").to_pylist()
    assert [(c["initial_task_id"], c["attempt_ids"], c["final_status"]) for c in chains] == [
        ("t2", ["t2", "t2###1"], "COMPLETED")]
    strag = snap.query("stragglers", {"min_ratio": "3"}).to_pylist()
    assert [s["task_id"] for s in strag] == ["t5"] and strag[0]["running"]


def test_unknown_query_and_unknown_parameter_are_sentences(snap):
    with pytest.raises(AnalysisError, match="no query named"):
        snap.query("nope")
    with pytest.raises(AnalysisError, match="has no parameter"):
        snap.query("status_counts", {"colour": "red"})


# -- graph and lineage --------------------------------------------------------------------------

def test_graph_node_index_is_row_index(snap):
    g = snap.graph
    assert g.node_id(0) == "t1" and g.node_id(g.n_tasks) == "r1"
    assert g.n == g.n_tasks + g.n_results


def test_lineage_of_a_failed_result_names_the_origin(snap):
    """r6 <- t6 <- r4 <- t4 <- r3 <- t3 (ERROR, ran): t3 is the one root cause and it explains
    the five bad nodes downstream of it."""
    d = lineage.build(snap, "r6")
    assert [(r["id"], r["explains"]) for r in d["root_causes"]] == [("t3", 5)]
    assert d["root_causes"][0]["path"] == ["t3", "r3", "t4", "r4", "t6", "r6"]
    assert d["root_causes"][0]["message"] == "division by zero in pricer"
    assert d["upstream"]["tasks_by_status"] == {"COMPLETED": 2, "ERROR": 3, "PROCESSING": 1}


def test_lineage_frontier_is_what_holds_the_result_now(snap):
    """r7 <- t7 PENDING <- r5 <- t5 PROCESSING since 20 s (snapshot at 100 s)."""
    d = lineage.build(snap, "r7")
    assert [(f["id"], f["status"], f["in_status_s"]) for f in d["frontier"]] == [("t5", "PROCESSING", 80.0)]
    assert d["root_causes"] == []
    assert d["upstream"]["percent_complete"] == pytest.approx(100 * 8 / 11, abs=0.01)


def test_lineage_follows_ownership_transfer(snap):
    """r8 was t8's expected output; after t8 ended the aggregator t10 owns it."""
    d = lineage.build(snap, "r8")
    assert [o["task_id"] for o in d["owner_chain"]] == ["t8", "t10"]
    assert "current owner" in d["owner_chain"][-1]["role"]
    assert [(f["id"], f["status"], f["in_status_s"]) for f in d["frontier"]] == [("t10", "SUBMITTED", 94.0)]


def test_lineage_of_a_complete_result_has_no_frontier(snap):
    d = lineage.build(snap, "q2")
    assert d["frontier"] == [] and d["upstream"]["percent_complete"] == 100.0


def test_unknown_result_is_a_sentence(snap):
    with pytest.raises(AnalysisError, match="result 'nope' is not in"):
        lineage.build(snap, "nope")
    with pytest.raises(AnalysisError, match="that is a task id"):
        lineage.build(snap, "t1")


def test_root_causes_of_a_session(snap):
    rows = api.root_causes(snap, session_id="s1")
    assert [r["id"] for r in rows] == ["t3"]
    assert api.root_causes(snap, session_id="s2") == []


def test_blockers_rank_by_results_held_up(snap):
    d = blockers.build(snap, "s1")
    assert [(b["id"], b["holds_results"]) for b in d["blockers"]] == [("t5", 2), ("t10", 1)]
    assert blockers.build(snap, "s2")["blockers"] == []


def test_critical_path_tiles_the_wall_time(snap):
    """s2: u1 (queued 1, fetching 1, processing 3) -> q1 -> u2 (queued 2, fetching .5,
    processing 2, finishing .5) -> q2 at 10 s; u3 is off the path."""
    s = critical_path.build(snap, "s2")["sessions"][0]
    assert s["last_result"] == "q2" and s["wall_s"] == 10.0
    assert [x["id"] for x in s["steps"]] == ["u1-payload", "u1", "q1", "u2", "q2"]
    assert s["covered_s"] == pytest.approx(10.0)
    totals = {t["segment"]: t["seconds"] for t in s["totals"]}
    assert totals == pytest.approx({"processing": 5.0, "queued": 3.0, "fetching": 1.5, "finishing": 0.5})


def test_critical_path_crosses_retries(snap):
    s = critical_path.build(snap, "s1")["sessions"][0]
    assert [x["id"] for x in s["steps"] if x["kind"] == "task"] == ["t2", "t2###1"]
    assert s["steps"][2]["edge"] == "retry"


def test_task_view_shows_attempts_and_ownership(snap):
    d = task_view.build(snap, "t2###1")
    assert [a["task_id"] for a in d["attempts"]] == ["t2", "t2###1"] and d["attempt"] == 2
    d = task_view.build(snap, "t8")
    assert d["outputs"][0]["note"] == "ownership moved to t10"
    assert {s["status"]: s["tasks"] for s in d["subtasks"]} == {"COMPLETED": 1, "SUBMITTED": 1}
    t4 = task_view.build(snap, "t4")
    assert t4["propagated_failure"] and [r["id"] for r in t4["root_causes"]] == ["t3"]
    assert [r["id"] for r in task_view.build(snap, "t3")["root_causes"]] == ["t3"]


def test_overview_has_every_section(snap):
    d = api.overview(snap)
    s1 = d["sessions"][0]
    for key in ("tasks_by_status", "elapsed_s", "avg_throughput", "phases", "error_classes",
                "retries", "top_blockers", "critical_path", "anomalies", "root_causes"):
        assert key in s1
    assert s1["root_causes"][0]["id"] == "t3" and s1["top_blockers"][0]["id"] == "t5"
    assert "session" in d.render("table") and json.loads(d.render("json"))["sessions"]


def test_overview_in_threads_is_the_overview_in_one(fb, ab, tmp_path, monkeypatch):
    """Given the failure and anomaly bundles (errors, retries, blockers, anomalies) and one
    with anomalies in two sessions, when analyze runs its SQL sections in threads on twin connections, then its
    answer is the one computed in a single thread, whole and per session (the twin's
    connection answers as the first; each section lands in its place)."""
    from aksnap.analyzer import overview

    def build(path, session_id=None, threads=True):
        with Snapshot.open(path, verify=False) as s:
            if not threads:
                monkeypatch.setattr(Snapshot, "twin", lambda self: None)
            try:
                return overview.build(s, session_id)
            finally:
                monkeypatch.undo()

    tasks = [task("c1", status="COMPLETED", times={"created": 0, "ended": 2}),
             task("c2", status="ERROR", times={"created": 0}),
             task("c3", session="s2", status="PROCESSING", times={"created": 0, "submitted": 1}),
             task("c4", session="s2", status="COMPLETED",
                  times={"created": 3, "submitted": 1, "started": 4, "processed": 5, "ended": 6})]
    two = make_bundle(tmp_path / "two.aksnap", tasks=tasks, results=[
        result("x1", owner="c1", status="COMPLETED", completed=None),
        result("x2", session="s2", owner="c4", status="COMPLETED", completed=6)])
    for path in (fb, ab, two):
        whole = build(path)
        assert whole == build(path, threads=False)
        for sid in [x["session_id"] for x in whole["sessions"]]:
            assert build(path, sid) == build(path, sid, threads=False)
    assert all(x["anomalies"] for x in whole["sessions"]) and len(whole["sessions"]) == 2


def test_api_accepts_a_path(fb):
    assert api.lineage(fb, "r7")["frontier"][0]["id"] == "t5"


# -- check ------------------------------------------------------------------------------------

def test_check_finds_each_drawn_anomaly(ab):
    d = check.build(Snapshot.open(ab, verify=False, collect_problems=True))
    assert d["counts"] == {"cycle": 1, "missing_reference": 1, "result_without_producer": 1,
                           "status_timestamp": 1, "waiting_on_aborted": 1}
    found = {(a["kind"], a["object_id"]) for a in d["anomalies"]}
    assert {("missing_reference", "a1"), ("result_without_producer", "orphan"),
            ("waiting_on_aborted", "a3"), ("status_timestamp", "a4")} <= found


def test_timestamp_contradictions_counted_without_ids_are_the_same_rows(ab, tmp_path):
    """Given tasks and results whose statuses contradict their timestamps, in two sessions,
    when timestamp_contradictions runs with count_only (what analyze counts by session), then
    it finds the same rows, object_id left null; and check.build(object_ids=False) counts what
    check.build counts."""
    tasks = [task("c1", status="COMPLETED", times={"created": 0, "ended": 2}),
             task("c2", status="ERROR", times={"created": 0}),
             task("c3", session="s2", status="PROCESSING", times={"created": 0, "submitted": 1}),
             task("c4", session="s2", status="COMPLETED",
                  times={"created": 3, "submitted": 1, "started": 4, "processed": 5, "ended": 6}),
             task("c5", status="SUBMITTED", times={"created": 0, "submitted": 1, "ended": 3})]
    results = [result("x1", owner="c1", status="COMPLETED", completed=None),
               result("x2", session="s2", owner="c4", status="COMPLETED", completed=6)]
    for path in (ab, make_bundle(tmp_path / "ts.aksnap", tasks=tasks, results=results)):
        s = Snapshot.open(path, verify=False, collect_problems=True)
        full = s.query("timestamp_contradictions").to_pylist()
        counted = s.query("timestamp_contradictions", {"count_only": "true"}).to_pylist()
        assert all(r["object_id"] is None for r in counted)
        key = lambda r: (r["kind"], r["session_id"], r["detail"])  # noqa: E731
        assert sorted(map(key, counted)) == sorted(map(key, full)) and full
        a, b = check.build(s, limit=None), check.build(s, limit=None, object_ids=False)
        assert a["counts"] == b["counts"] and a["total"] == b["total"]
        assert sorted(r["session_id"] or "" for r in a["anomalies"]) == \
            sorted(r["session_id"] or "" for r in b["anomalies"])
    assert len(full) == 6


def test_check_is_clean_on_a_sound_bundle(snap):
    assert check.build(snap)["total"] == 0


# -- rendering escapes what it shows ------------------------------------------------------------

def test_rendering_escapes_what_it_shows(tmp_path):
    """Given a message with a newline, an ANSI escape and quotes, and an id with a quote, when
    rendered as table, JSON and DOT, then the table shows them escaped on one line, the JSON
    round-trips them, and the DOT stays valid."""
    evil = 'bad "thing"\n\x1b[31mred\x1b[0m'
    rid = 'r"1'
    p = make_bundle(tmp_path / "evil", tasks=[
        task("e1", status="ERROR", outputs=[rid], message=evil,
             times=dict(created=0, submitted=1, acquired=1, fetched=1, started=1, processed=2, ended=2))],
        results=[result(rid, owner="e1", status="ABORTED")])
    s = Snapshot.open(p)
    data = lineage.build(s, rid)
    table = lineage.render(data, "table")
    assert "\x1b" not in table and "\\x1b[31m" in table
    assert not any(line.startswith("\x1b") or line == "red" for line in table.splitlines())
    assert json.loads(lineage.render(data, "json"))["root_causes"][0]["message"] == evil
    dot = lineage.to_dot(s, rid)
    assert '"r\\"1"' in dot and "\x1b" not in dot
    assert dot.count('"') % 2 == 0 and '\n"' not in dot
    assert "\\x1b" not in api.render_root_causes(api.root_causes(s), "json")
    out = runner.invoke(app, ["task", str(p), "e1"])
    assert out.exit_code == 0 and "\x1b" not in out.stdout


# -- CLI: bad inputs are one sentence and exit 2 -------------------------------------------------

def _err(result) -> str:
    return (result.stderr or "") if hasattr(result, "stderr") else result.output


def test_missing_bundle_exits_2(tmp_path):
    r = runner.invoke(app, ["analyze", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "does not exist" in _err(r)


def test_wrong_version_is_refused_naming_both(tmp_path, fb):
    p = tmp_path / "old"
    shutil.copytree(fb, p)
    m = json.loads((p / "manifest.json").read_text())
    m["format_version"] = 99
    (p / "manifest.json").write_text(json.dumps(m))
    r = runner.invoke(app, ["analyze", str(p)])
    from aksnap.bundle import FORMAT_VERSION

    assert r.exit_code == 2 and "version 99" in _err(r) and \
        f"format version {FORMAT_VERSION}" in _err(r)


def test_corrupted_checksum_exits_2_unless_no_verify(tmp_path, fb):
    p = tmp_path / "bad"
    shutil.copytree(fb, p)
    m = json.loads((p / "manifest.json").read_text())
    m["tables"]["tasks"]["sha256"] = "0" * 64
    (p / "manifest.json").write_text(json.dumps(m))
    r = runner.invoke(app, ["lineage", str(p), "r7"])
    assert r.exit_code == 2 and "checksum" in _err(r) and "--no-verify" in _err(r)
    assert runner.invoke(app, ["lineage", str(p), "r7", "--no-verify"]).exit_code == 0
    r = runner.invoke(app, ["check", str(p)])
    assert r.exit_code == 1 and "integrity" in r.stdout


@pytest.mark.parametrize("argv, needle", [
    (["lineage", "{b}", "nope"], "result 'nope' is not in"),
    (["task", "{b}", "nope"], "task 'nope' is not in"),
    (["blockers", "{b}", "--session", "nope"], "session 'nope' is not in"),
    (["critical-path", "{b}", "--session", "nope"], "session 'nope' is not in"),
    (["query", "{b}", "nope"], "no query named"),
    (["query", "{b}", "status_counts", "--param", "oops"], "is not k=v"),
    (["query", "{b}", "ancestors"], "needs --param result_id"),
    (["sql", "{b}", "SELEC 1"], "the SQL failed"),
    (["analyze", "{b}", "-o", "xml"], "unknown output format"),
    (["analyze", "{b}", "--format", "xml"], "unknown output format"),
])
def test_unknown_ids_and_bad_arguments_exit_2(fb, argv, needle):
    r = runner.invoke(app, [a.format(b=fb) for a in argv])
    assert r.exit_code == 2, r.output
    msg = _err(r).strip()
    assert needle in msg and msg.count("\n") == 0


def test_check_exits_1_on_anomalies_and_0_when_clean(ab, fb):
    assert runner.invoke(app, ["check", str(ab)]).exit_code == 1
    assert runner.invoke(app, ["check", str(fb)]).exit_code == 0


@pytest.mark.parametrize("fmt", ["table", "json", "yaml", "csv", "JSON"])
def test_every_command_speaks_every_format(fb, tmp_path, fmt):
    for argv in (["analyze", str(fb)], ["lineage", str(fb), "r6"], ["blockers", str(fb)],
                 ["critical-path", str(fb)], ["task", str(fb), "t4"], ["check", str(fb)],
                 ["sql", str(fb), "SELECT 1 AS one"], ["query", str(fb), "status_counts"], ["queries"]):
        r = runner.invoke(app, argv + ["-o", fmt])
        assert r.exit_code == 0, (argv, r.output)
        if fmt.lower() == "json":
            json.loads(r.stdout)


def test_format_is_kept_as_a_hidden_alias_of_output(fb):
    """Given a script written before -o, when it passes --format json, then it still gets JSON,
    and the help no longer shows --format."""
    r = runner.invoke(app, ["blockers", str(fb), "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["blockers"]
    assert "--format" not in runner.invoke(app, ["blockers", "-h"]).stdout


def test_lineage_writes_dot(fb, tmp_path):
    out = tmp_path / "l.dot"
    r = runner.invoke(app, ["lineage", str(fb), "r6", "--dot", str(out)])
    assert r.exit_code == 0 and out.read_text().startswith('digraph "lineage of r6"')
    assert '"t3" -> "r3"' in out.read_text()


# -- the index cache ---------------------------------------------------------------------------

def test_index_cache_round_trip(tmp_path, monkeypatch, fb):
    """Given a bundle whose graph was built once with the cache on, when it is opened again,
    then the graph comes from the cache and answers exactly as the built one."""
    import numpy as np

    from aksnap.analyzer.graph import TaskGraph

    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(TaskGraph, "CACHE_MIN_TASKS", 0)
    built = Snapshot.open(fb)
    g1 = built.graph
    assert len(list((tmp_path / "cache").glob("graph-*/meta.json"))) == 1
    loaded = Snapshot.open(fb)
    g2 = loaded.graph
    monkeypatch.setattr(TaskGraph, "_build", lambda *a: pytest.fail("rebuilt despite the cache"))
    for k in TaskGraph._CACHED:
        assert np.array_equal(getattr(g1, k), getattr(g2, k)), k
    assert lineage.build(loaded, "r8") == lineage.build(built, "r8")
    assert critical_path.build(loaded) == critical_path.build(built)


def test_queries_are_all_documented():
    from aksnap import queries

    doc = (Path(__file__).resolve().parents[1] / "docs" / "queries.md").read_text()
    for name in queries.names():
        info = queries.info(name)
        assert info.purpose and info.columns, f"{name}.sql lacks a purpose or columns header"
        assert f"`{name}`" in doc, f"docs/queries.md does not describe {name}"


def test_spawn_tree_falls_back_to_ancestry_lists_without_created_by(tmp_path):
    """Given a bundle whose tasks carry no created_by (an older Core), when the graph is built,
    then the spawn tree and retry chain come from parent_task_ids[-1] and retry_of_ids[-1]."""
    p = make_bundle(tmp_path / "old", tasks=[
        task("p", outputs=["rp"]), task("c", parents=["s1", "p"], outputs=["rc"]),
        task("c###1", parents=["s1", "p"], outputs=["rc"], retry_of=["c"], initial="c",
             payload="c-payload")], results=[result("rp", owner="p"), result("rc", owner="c###1")])
    g = Snapshot.open(p).graph
    assert g.parent.tolist() == [-1, 0, 0] and g.previous_attempt.tolist() == [-1, -1, 1]
    assert check.build(Snapshot.open(p))["counts"]["spawn_mismatch"] == 2  # and says so


def test_an_empty_bundle_is_answered_not_crashed(tmp_path):
    p = make_bundle(tmp_path / "empty", tasks=[], results=[], sessions=[])
    for argv in (["analyze", str(p)], ["blockers", str(p)], ["critical-path", str(p)],
                 ["check", str(p)], ["query", str(p), "phase_percentiles"]):
        r = runner.invoke(app, argv)
        assert r.exit_code == 0, (argv, r.output)
