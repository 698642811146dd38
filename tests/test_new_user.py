"""What a new user hit (issue 19, item 4), each fixed with the test that shows it.

Tried as a new ArmoniK user would: ids pasted by their beginning (as armonik-cli's tables show
them), a retried task, an 80-column terminal, an id of the wrong kind, a session id to find
without armonik-cli, `watch` on a live session, a live bundle, two runs compared, a redacted
bundle, `--created-after 2h`, and `aksnap -h`. Each test runs the command line (typer's
CliRunner, or a subprocess) and, where there is one, the Python API.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from aksnap.analyzer import api
from aksnap.analyzer.snapshot import AnalysisError
from aksnap.analyzer.testing import _ts, make_bundle, result, task
from aksnap.cli import app

runner = CliRunner()


def _id(head: str, n: int = 0) -> str:
    """A GUID-shaped id whose first characters are ``head`` (hex)."""
    first = head if len(head) >= 8 else f"{head}{n:0{8 - len(head)}x}"
    return f"{first}-aaaa-4bbb-8ccc-{n:012x}"


_PAYLOADS = iter(range(1, 1000))


def _task(task_id: str, **kw):
    """A task whose payload has a GUID of its own (as ArmoniK's), not ``ID-payload``."""
    return task(task_id, payload=kw.pop("payload", None) or _id("9a9a", next(_PAYLOADS)), **kw)


S = _id("5e55e55e")          # the session
S2 = _id("5e5f")             # another session: "5e5" is ambiguous, "5e55" is S
A = _id("7057ad6a")          # a task retried twice: A, A###1, A###2
RA = _id("0a0a0a0a")         # A's output, aborted
B = _id("b10cb10c")          # a completed task; "b10c" is a task, not a result
RB = _id("b10cff00")         # B's output... a result that begins like B: "b10cf" is a result
C = [_id("c0ffee", n) for n in (1, 2, 3)]          # three blockers, SUBMITTED on "gpu"
RC = [_id("cafe", n) for n in (1, 2, 3)]
D, RD = _id("d0d0d0d0"), _id("dddd0000")           # waits on the three
E, RE = _id("e0e0e0e0"), _id("eeee0000")           # waits on C1 only: C1 holds up the most
LONG = ("Worker exception in task {t}: System.ApplicationException: HtcMock simulated crash "
        "(attempt {n}); task will be retried")


@pytest.fixture(scope="module")
def nb(tmp_path_factory):
    """The new user's bundle (times in seconds after T0, snapshot at 100)::

        A RETRIED [0..5] -> A###1 RETRIED [5..10] -> A###2 ERROR [10..15] -> RA ABORTED
        B COMPLETED [0..3] -> RB
        C1 SUBMITTED since 60 -> RC1 --+--> D PENDING -> RD
        C2 SUBMITTED since 20 -> RC2 --+
        C3 SUBMITTED since 10 -> RC3 --+
                              RC1 -----> E PENDING -> RE
        session S2: F COMPLETED
    """
    PA = _id("9a9a")  # the attempts of A share their payload
    tasks = [
        _task(A, session=S, status="RETRIED", outputs=[RA], payload=PA, message=LONG.format(t=A, n=1),
             times=_ts(0, .5, 1, 1.1, 1.2, 5, 5)),
        _task(f"{A}###1", session=S, status="RETRIED", outputs=[RA], created_by=A, retry_of=[A],
             initial=A, payload=PA, message=LONG.format(t=A + "###1", n=2),
             times=_ts(5, 5.1, 6, 6.1, 6.2, 10, 10)),
        _task(f"{A}###2", session=S, status="ERROR", outputs=[RA], created_by=f"{A}###1",
             retry_of=[A, f"{A}###1"], initial=A, payload=f"{A}-payload",
             message=LONG.format(t=A + "###2", n=3), times=_ts(10, 10.1, 11, 11.1, 11.2, 15, 15)),
        _task(B, session=S, outputs=[RB], times=_ts(0, .5, 1, 1.1, 1.2, 3, 3)),
        *[_task(c, session=S, status="SUBMITTED", outputs=[r], partition="gpu",
               times=_ts(0, since)) for c, r, since in zip(C, RC, (60, 20, 10))],
        _task(D, session=S, status="PENDING", deps=RC, outputs=[RD], times=_ts(0)),
        _task(E, session=S, status="PENDING", deps=[RC[0]], outputs=[RE], times=_ts(0)),
        _task(_id("f0f0f0f0"), session=S2, outputs=[_id("ffff0000")], times=_ts(0, 1, 2, 2, 3, 4, 4)),
    ]
    results = [result(RA, session=S, owner=f"{A}###2", status="ABORTED"),
               result(RB, session=S, owner=B, completed=3),
               *[result(r, session=S, owner=c, status="CREATED") for c, r in zip(C, RC)],
               result(RD, session=S, owner=D, status="CREATED"),
               result(RE, session=S, owner=E, status="CREATED"),
               result(_id("ffff0000"), session=S2, owner=_id("f0f0f0f0"), completed=4)]
    sessions = [{"session_id": S, "status": "RUNNING", "created_at": datetime(2026, 1, 1, 12,
                                                                             tzinfo=timezone.utc),
                 "partition_ids": ["default", "gpu"]},
                {"session_id": S2, "status": "CLOSED", "created_at": datetime(2026, 1, 1, 13,
                                                                             tzinfo=timezone.utc),
                 "partition_ids": ["default"]}]
    partitions = [{"partition_id": p, "parent_partition_ids": [], "pod_reserved": 1,
                   "pod_max": 10, "priority": 1, "preemption_percentage": 0}
                  for p in ("default", "gpu")]
    return make_bundle(tmp_path_factory.mktemp("newuser") / "nb.aksnap", tasks=tasks,
                       results=results, sessions=sessions, partitions=partitions)


def _run(argv, columns: int | None = None):
    env = {"COLUMNS": str(columns)} if columns else {}
    return runner.invoke(app, [str(a) for a in argv], env=env)


def _lines(text: str) -> list[str]:
    return text.splitlines()


# -- ids: a retried task, a prefix of a retry, an id of another kind --------------------------------

def test_a_retried_task_by_its_beginning_is_its_first_attempt_and_lists_the_retries(nb):
    """Given a task retried twice (ArmoniK names the retries A###1, A###2), when `aksnap task B
    7057ad6a` names it by the beginning armonik-cli shows, then it is the first attempt A (not
    "ambiguous"), and the answer lists the two retries with how to show one; the API does the
    same. Two different tasks under one prefix stay ambiguous, each named once with its
    retries counted; `A###` (a prefix of the retries only) asks for the whole id."""
    r = _run(["task", nb, "7057ad6a"])
    assert r.exit_code == 0, r.output
    assert re.search(rf"^task\s+{A}$", r.stdout, re.M)
    other = next(line for line in _lines(r.stdout) if line.startswith("other attempts"))
    assert f"{A}###1 RETRIED" in other and f"{A}###2 ERROR" in other and "###n" in other
    assert api.task(nb, "7057AD6A")["task_id"] == A
    assert api.task(nb, f"{A}###2")["task_id"] == f"{A}###2"
    r = _run(["task", nb, f"{A}###"])
    assert r.exit_code == 2 and "retries of " + A in r.stderr and "whole id" in r.stderr
    r = _run(["task", nb, "c0ffee"])  # three different tasks
    assert r.exit_code == 2 and "ambiguous" in r.stderr and C[0] in r.stderr
    with pytest.raises(AnalysisError, match="ambiguous"):
        api.task(nb, "c0ffee")


def test_an_id_of_the_wrong_kind_is_named_as_what_it_is(nb):
    """Given a task id (by its beginning) where a result is asked (`lineage`), then the error
    says it is a task and which command shows it; a result given to `task` says `lineage`; a
    session given as a result says --session. Exit 2, one line; the API raises the same."""
    r = _run(["lineage", nb, "b10cb"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert f"is the task {B}" in r.stderr and "not a result" in r.stderr
    assert f"aksnap task {nb} {B}" in r.stderr
    r = _run(["task", nb, "dddd"])
    assert r.exit_code == 2 and f"is the result {RD}" in r.stderr and "aksnap lineage" in r.stderr
    r = _run(["lineage", nb, "5e55"])
    assert r.exit_code == 2 and f"is the session {S}" in r.stderr and "--session" in r.stderr
    with pytest.raises(AnalysisError, match="is the task .* not a result"):
        api.lineage(nb, "b10cb")
    r = _run(["lineage", nb, "b10cf"])  # the result that begins like B: a result, answered
    assert r.exit_code == 0 and RB in r.stdout


def test_query_takes_an_id_by_its_beginning(nb):
    """Given `aksnap query B session_summary --param session_id=5e55` (a beginning, as every
    command takes), then the session's row, not "(no rows)"; an ambiguous one is refused naming
    candidates; one that names nothing is a sentence; the API resolves it too."""
    r = _run(["query", nb, "session_summary", "--param", "session_id=5E55", "-o", "json"])
    assert r.exit_code == 0, r.output
    assert [row["session_id"] for row in json.loads(r.stdout)] == [S]
    assert api.query(nb, "session_summary", {"session_id": "5e55"}).column("session_id").to_pylist() == [S]
    r = _run(["query", nb, "session_summary", "--param", "session_id=5e5"])
    assert r.exit_code == 2 and "ambiguous" in r.stderr and S2 in r.stderr
    r = _run(["query", nb, "session_summary", "--param", "session_id=nope"])
    assert r.exit_code == 2 and "no session" in r.stderr


# -- at 80 columns ----------------------------------------------------------------------------------

def test_the_lineage_summary_wraps_at_80_columns_and_is_in_the_json(nb):
    """Given `COLUMNS=80 aksnap lineage B RD`, then the one-line summary is wrapped under
    itself, every word of it shown (not cut at "...is CREATED: depen"), no line over 80; and
    -o json carries it as `summary`, as the API does."""
    r = _run(["lineage", nb, "dddd0000"], columns=80)
    assert r.exit_code == 0, r.output
    assert max(map(len, _lines(r.stdout))) <= 80
    data = json.loads(_run(["lineage", nb, "dddd0000", "-o", "json"]).stdout)
    summary = data["summary"]
    assert summary == api.lineage_summary(data) and summary.startswith(f"result {RD} is CREATED")
    lines = _lines(r.stdout)
    i = next(k for k, line in enumerate(lines) if line.startswith("summary"))
    shown = lines[i].split(None, 1)[1]
    for line in lines[i + 1:]:
        if not line.startswith(" "):
            break
        shown += " " + line.strip()
    assert shown == summary
    assert api.lineage(nb, "dddd")["summary"] == summary


def test_the_attempts_table_at_80_columns_tells_the_attempts_apart(nb):
    """Given `COLUMNS=80 aksnap task B A`, then each attempt row shows its own ###n and its
    start and end times whole (the date they share said once under the table): the three
    attempts no longer look identical; no line is over 80."""
    r = _run(["task", nb, A], columns=80)
    assert r.exit_code == 0, r.output
    lines = _lines(r.stdout)
    assert max(map(len, lines)) <= 80
    i = lines.index("Attempts")
    rows = lines[i + 3:i + 6]
    assert len({row.split()[1] for row in rows}) == 3  # task_id cells differ
    assert rows[1].split()[1].endswith("###1") and rows[2].split()[1].endswith("###2")
    for row, (start, end) in zip(rows, (("12:00:01.200", "12:00:05.000"),
                                        ("12:00:06.200", "12:00:10.000"),
                                        ("12:00:11.200", "12:00:15.000"))):
        assert start in row and end in row, row
    assert lines[i + 6] == "(times UTC, on 2026-01-01)"
    # piped (no terminal): the table as before, full times, no note
    assert "2026-01-01 12:00:01.200+00:00" in _run(["task", nb, A]).stdout


def test_blockers_at_140_columns_keep_waiting_for_and_cut_the_session(nb):
    """Given `COLUMNS=140 aksnap blockers B --session S` (three blockers of one session), then
    waiting_for is whole ("a free agent in partition gpu") and the session id, the same on
    every row, is what yields; ids stay unique prefixes."""
    r = _run(["blockers", nb, "--session", "5e55"], columns=140)
    assert r.exit_code == 0, r.output
    lines = _lines(r.stdout)
    assert max(map(len, lines)) <= 140
    rows = [line for line in lines if line[:1].isdigit()]
    assert len(rows) == 3
    for row in rows:
        assert "a free agent in partition gpu" in row
        assert S not in row and "5e55e55e" in row  # the session, cut
    ids = [row.split()[2].rstrip("…") for row in rows]
    assert sorted(api.run("blockers", nb, session_id=S)["blockers"][k]["id"] for k in range(3)) \
        == sorted(next(c for c in C if c.startswith(i)) for i in ids)


def test_the_table_rule_yields_what_tells_no_rows_apart(monkeypatch):
    """Given a table wider than the terminal: a column with one value on every row yields
    first, then ids down to a unique prefix, then text; ids sharing a long beginning are cut
    in their middle so that their ends (###1, ###2) stay."""
    from aksnap.output import render_rows

    monkeypatch.setenv("COLUMNS", "80")
    rows = [{"id": f"{A}###{n}" if n else A, "session_id": S,
             "message": f"attempt {n} failed with a long message that goes on and on"}
            for n in range(3)]
    out = _lines(render_rows(rows, "table"))
    assert max(map(len, out)) <= 80
    cells = [line.split("  ")[0] for line in out[2:]]
    assert cells[1].endswith("###1") and cells[2].endswith("###2") and len(set(cells)) == 3
    assert all(S not in line for line in out[2:])
    assert all("attempt" in line for line in out[2:])  # the text keeps its beginning


# -- sessions ---------------------------------------------------------------------------------------

def test_sessions_of_a_bundle_newest_first_with_tasks_by_status_set(nb):
    """Given `aksnap sessions B`, then one row per session, the most recently created first,
    with its status and tasks by status set (adding up to its tasks); -o json and the API give
    the same data, and counts by status."""
    data = json.loads(_run(["sessions", nb, "-o", "json"]).stdout)
    assert [s["session_id"] for s in data["sessions"]] == [S2, S] and data["total"] == 2
    s = data["sessions"][1]
    assert s["status"] == "RUNNING" and s["tasks"] == 9
    assert (s["success"], s["failed"], s["retried"], s["cancelled"], s["open"]) == (1, 1, 2, 0, 5)
    assert s["tasks_by_status"] == {"COMPLETED": 1, "ERROR": 1, "PENDING": 2, "RETRIED": 2,
                                    "SUBMITTED": 3}
    assert json.loads(api.sessions(nb).render("json")) == data
    r = _run(["sessions", nb])
    assert r.exit_code == 0 and S in r.stdout and "success" in r.stdout
    assert [x["session_id"] for x in api.sessions(nb, limit=1)["sessions"]] == [S2]


@pytest.fixture(scope="module")
def cluster():
    """A control plane serving 12 small sessions created just now (wall clock)."""
    from aksnap.fixtures.scenarios import build_scenario_now
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario_now("many", tasks=60, sessions=12, seed=2)
    with SimulatedControlPlane(sc) as cp:
        yield cp.start("127.0.0.1", 0), sc.truth


@pytest.fixture(autouse=True)
def _no_cluster_config(monkeypatch, tmp_path):
    for k in ("AK_ENDPOINT", "AKCONFIG", "AK_OUTPUT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))


def _unique_prefix(ids: list[str], of: str) -> str:
    return next(of[:n] for n in range(1, len(of)) if sum(i.startswith(of[:n]) for i in ids) == 1)


def _ambiguous_prefix(ids: list[str]) -> str:
    return next(i[:1] for i in ids if sum(j.startswith(i[:1]) for j in ids) > 1)


def test_sessions_of_a_control_plane_in_bounded_calls(cluster, tmp_path):
    """Given `aksnap sessions --endpoint E --limit 5`, then the 5 sessions created last, newest
    first, each with its tasks counted, in 1 ListSessions + 5 CountTasksByStatus calls (said);
    the same rows as `aksnap sessions` of an export of that cluster; -o csv is one table; a
    BUNDLE with --endpoint is refused."""
    from aksnap.exporter import export, list_sessions

    endpoint, truth = cluster
    r = _run(["sessions", "--endpoint", endpoint, "--limit", "5", "-o", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [s["session_id"] for s in data["sessions"]] == truth["sessions"][::-1][:5]
    assert data["total"] == 12
    assert data["calls"] == {"Sessions.ListSessions": 1, "Tasks.CountTasksByStatus": 5}
    assert all(s["tasks"] > 0 and s["tasks"] == sum(s[k] for k in ("success", "failed", "retried",
                                                                "cancelled", "open"))
               for s in data["sessions"]), data["sessions"]
    export(endpoint, tmp_path / "b", all_sessions=True)
    offline = api.sessions(tmp_path / "b", limit=5)["sessions"]
    keys = ("session_id", "status", "tasks", "success", "failed", "open", "tasks_by_status")
    assert [{k: s[k] for k in keys} for s in offline] == \
        [{k: s[k] for k in keys} for s in list_sessions(endpoint, limit=5)["sessions"]]
    table = _run(["sessions", "--endpoint", endpoint, "--limit", "5"]).stdout
    assert "1 Sessions.ListSessions, 5 Tasks.CountTasksByStatus" in table
    csv = _run(["sessions", "--endpoint", endpoint, "-o", "csv", "--limit", "0"]).stdout
    assert len(csv.splitlines()) == 13 and csv.startswith("session_id,status,created_at,tasks")
    r = _run(["sessions", tmp_path / "b", "--endpoint", endpoint])
    assert r.exit_code == 2 and "not both" in r.stderr


def test_export_session_takes_a_unique_beginning_and_refuses_an_ambiguous_one(cluster, tmp_path):
    """Given `export --session PREFIX` against the control plane, then a unique beginning
    exports that session and the manifest records its whole id (an --update selects it
    again); an ambiguous one is exit 2 naming candidates, nothing written."""
    endpoint, truth = cluster
    sid = truth["sessions"][3]
    prefix = _unique_prefix(truth["sessions"], sid)
    r = _run(["export", "--endpoint", endpoint, "--session", prefix.upper(), "--quiet",
              "--out", tmp_path / "one", "-o", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sessions"] == [sid]
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert manifest["selection"]["sessions"] == [sid]
    amb = _ambiguous_prefix(truth["sessions"])
    r = _run(["export", "--endpoint", endpoint, "--session", amb, "--quiet",
              "--out", tmp_path / "two"])
    assert r.exit_code == 2 and "ambiguous" in r.stderr and r.stderr.count("\n") == 1
    assert sum(s.startswith(amb) for s in truth["sessions"]) >= 2
    assert next(s for s in truth["sessions"] if s.startswith(amb)) in r.stderr
    assert not (tmp_path / "two").exists()


def test_watch_takes_a_session_or_result_by_its_beginning(cluster):
    """Given `watch --session PREFIX --once -o json` (and --result PREFIX), then the watched
    session is the whole id; an ambiguous prefix exits 2 at once naming candidates."""
    endpoint, truth = cluster
    sid = truth["sessions"][5]
    r = _run(["watch", "--endpoint", endpoint, "--session", _unique_prefix(truth["sessions"], sid),
              "--once", "-o", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["session_id"] == sid
    res = truth["final_results"][5]
    r = _run(["watch", "--endpoint", endpoint, "--result", res[:13], "--once", "-o", "json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout)
    assert st["result_id"] == res and st["session_id"] == sid
    r = _run(["watch", "--endpoint", endpoint, "--session", _ambiguous_prefix(truth["sessions"]),
              "--once"])
    assert r.exit_code == 2 and "ambiguous" in r.stderr


def test_created_after_takes_a_time_ago(cluster, tmp_path):
    """Given `export --created-after 1h` (the sessions were created just now), then every
    session is exported and the manifest records the instant; `--created-before 1h` selects
    none (a sentence, exit 2); `--created-after yesterday` is a sentence naming the forms;
    the API takes "2h" too."""
    from aksnap.exporter.selection import Selection

    endpoint, truth = cluster
    r = _run(["export", "--endpoint", endpoint, "--created-after", "1h", "--quiet",
              "--out", tmp_path / "recent", "-o", "json"])
    assert r.exit_code == 0, r.output
    assert sorted(json.loads(r.stdout)["sessions"]) == sorted(truth["sessions"])
    after = json.loads((tmp_path / "recent" / "manifest.json").read_text())["selection"]["created_after"]
    ago = datetime.now(timezone.utc) - datetime.fromisoformat(after)
    assert timedelta(minutes=59) < ago < timedelta(minutes=61)
    r = _run(["export", "--endpoint", endpoint, "--created-before", "1h", "--quiet",
              "--out", tmp_path / "old"])
    assert r.exit_code == 2 and "no session matches" in r.stderr
    r = _run(["export", "--endpoint", endpoint, "--created-after", "yesterday", "--quiet",
              "--out", tmp_path / "x"])
    assert r.exit_code == 2 and "2h, 30m, 1d" in r.stderr and r.stderr.count("\n") == 1
    now = datetime.now(timezone.utc)
    for text, seconds in (("2h", 7200), ("30m", 1800), ("1d", 86400), ("1h30m", 5400)):
        got = Selection.of(created_after=text).created_after
        assert abs((now - got).total_seconds() - seconds) < 60, text
    assert Selection.of(created_after="2025-01-31").created_after == datetime(2025, 1, 31,
                                                                              tzinfo=timezone.utc)


# -- watch's view -----------------------------------------------------------------------------------

def test_watch_frontier_is_longest_waiting_first(nb):
    """Given a session whose top blocker (C1: it holds up the most) has waited least, when the
    watch analyses it, then its frontier is shown longest waiting first, as titled."""
    from aksnap.analyzer.live import analyze

    front = analyze(nb, S)["frontier"]
    waits = [f["waiting_s"] for f in front]
    assert len(front) == 3 and waits == sorted(waits, reverse=True) and waits[0] > waits[-1]
    assert api.blockers(nb, session_id=S)["blockers"][0]["id"] == C[0] == front[-1]["id"]


def _view(width: int, monkeypatch, result_id=None) -> str:
    from rich.console import Console

    from aksnap.cli.watch import render_view

    st = {"session_id": S, "result_id": result_id, "result_status": "CREATED" if result_id else None,
          "percent_complete": 40.0, "tasks": 10, "failed_tasks": 1,
          "tasks_by_status": {"COMPLETED": 4, "SUBMITTED": 6}, "throughput_tasks_per_s": 0.5,
          "eta_s": 12.0, "eta_basis": "b", "new_failures": [], "reconciles": 1,
          "last_reconcile_s": 0.1, "rows_fetched": 3, "events": {},
          "analysis": {"lineage_percent_complete": 50.0, "frontier_total": 1,
                       "frontier": [{"kind": "task", "id": C[0], "status": "SUBMITTED",
                                     "waiting_s": 17.441944, "waiting_for": "a free agent"}],
                       "root_causes": []}}
    monkeypatch.setenv("COLUMNS", str(width))  # the terminal's width, as the view reads it
    console = Console(width=width, record=True, color_system=None)
    console.print(render_view(st))
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
def test_watch_view_says_the_session_once_fits_its_title_and_formats_waits(width, monkeypatch):
    """Given the watch's view of a session at 80 and 120 columns, then its first line names
    the session once (not "session X in session X") and does not wrap (the figures go to a
    second line when they would); a wait reads 17.4s, not 17.441944; a watched result names
    its session once too."""
    out = _view(width, monkeypatch)
    head = _lines(out)[0]
    assert head.count(S) == 1 and "in session" not in head and len(head) <= width
    assert "17.4s" in out and "17.441944" not in out
    assert "40.0 % complete" in "\n".join(_lines(out)[:2])
    out = _view(width, monkeypatch, result_id=RD)
    first_two = "\n".join(_lines(out)[:2])
    assert first_two.count("session") == 1 and "50.0 % complete" in first_two
    assert all(len(line) <= width for line in _lines(out)[:2])


# -- a live bundle, two runs, an archive, a redacted bundle -----------------------------------------

def test_a_live_session_without_a_finished_task_has_no_critical_path_yet(tmp_path):
    """Given a live bundle whose only complete results are the client's uploads, when
    `analyze -o csv` (and the table) shows its critical path, then it says "none yet", not
    "0 task(s) to ... over 0ms"; the API's overview says the same."""
    b = make_bundle(tmp_path / "live", tasks=[task("t1", status="PROCESSING", outputs=["r1"],
                                                   times=_ts(0, 1, 2, 2, 3))],
                    results=[result("r1", owner="t1", status="CREATED")])
    r = _run(["analyze", b, "-o", "csv"])
    assert r.exit_code == 0, r.output
    assert "none yet" in r.stdout and "0 task(s)" not in r.stdout
    assert "none yet" in _run(["analyze", b]).stdout
    assert api.overview(b)["sessions"][0]["critical_path"].startswith("none yet")


def test_diff_prints_counts_as_integers(nb):
    """Given `aksnap diff` of two bundles, then counts (tasks by status, results, retries,
    path length) are integers in the table and in JSON (10, not 10.000), seconds stay
    decimals."""
    r = _run(["diff", nb, nb, "-o", "json"])
    assert r.exit_code == 0, r.output
    rows = {(x["metric"], x["scope"]): x for x in json.loads(r.stdout)["rows"]}
    assert rows[("tasks.RETRIED", "")]["a"] == 2 and isinstance(rows[("tasks.RETRIED", "")]["a"], int)
    assert '"a": 2,' in r.stdout and '"a": 2.0' not in r.stdout
    assert isinstance(rows[("time.wall_s", "")]["a"], float)
    data = api.diff(nb, nb)
    assert all(isinstance(x["a"], int) for x in data["rows"] if x["metric"].startswith("tasks."))
    table = _run(["diff", nb, nb, "-o", "csv"]).stdout
    assert ",tasks.RETRIED,,2,2,0," in table


def test_compare_shows_no_baseline_value_beside_no_baseline(nb, tmp_path):
    """Given an archive of two runs (too few for a baseline), then every row whose verdict is
    "no baseline" has no baseline value, MAD or delta (table, JSON and API alike)."""
    arc = tmp_path / "arc"
    api.archive_add(arc, [nb], ["run=1"])
    other = make_bundle(tmp_path / "other", tasks=[task("t1", outputs=["r1"],
                                                        times=_ts(0, 1, 2, 2, 3, 9, 9))],
                        results=[result("r1", owner="t1", completed=9)])
    api.archive_add(arc, [other], ["run=2"])
    data = json.loads(_run(["compare", arc, "-o", "json"]).stdout)
    nob = [x for x in data["rows"] if x["verdict"] == "no baseline"]
    assert nob and all(x["baseline"] is None and x["mad"] is None and x["delta"] is None
                       for x in nob)
    assert all(t["baseline"] is None for t in data["trends"] if t["verdict"] == "no baseline")
    assert all(x["baseline"] is None for x in api.compare(arc)["rows"]
               if x["verdict"] == "no baseline")


def test_a_redacted_bundle_says_it_once(nb, tmp_path):
    """Given a redacted bundle, then analyze's header reads "redaction  keyed pseudonyms
    (hmac-sha256, key ...)", not "redacted  redacted (...)"; check says it the same way."""
    key = tmp_path / "key"
    r = _run(["redact", nb, "--out", tmp_path / "red", "--key-file", key, "--new-key"])
    assert r.exit_code == 0, r.output
    line = next(x for x in _lines(_run(["analyze", tmp_path / "red"]).stdout)
                if "pseudonyms" in x)
    assert re.match(r"redaction\s+keyed pseudonyms \(hmac-sha256, key sha256:", line), line
    assert line.count("redact") == 1
    line = next(x for x in _lines(_run(["check", tmp_path / "red"]).stdout) if "pseudonyms" in x)
    assert line.count("redact") == 1


# -- aksnap -h --------------------------------------------------------------------------------------

def _ragged(text: str, width: int) -> list[str]:
    """Lines broken early: the next line's first word would have fit after them. In the
    commands panel (``│ name  description │``), within one command's description; elsewhere,
    within a paragraph of help text."""
    bad = []
    lines = text.splitlines()
    panels, panel = [], None
    for line in lines:
        if line.startswith("╭"):
            panel = []
        elif line.startswith("╰"):
            panels.append(panel)
            panel = None
        elif panel is not None:
            panel.append(line[2:-2])
    for inner in panels:
        # the description column: where a row's text goes on (the deepest indent in the panel)
        col = max(len(x) - len(x.lstrip()) for x in inner if x.strip())
        for a, b in zip(inner, inner[1:]):
            if len(b) - len(b.lstrip()) != col or b.lstrip()[:1] == "[" or not a[col:].strip():
                continue  # b begins another row (or is typer's "[default: ...]" line)
            if len(a[col:].rstrip()) + 1 + len(b.split()[0]) <= len(a) - col:
                bad.append(a.rstrip())
    prose = [line for line in lines if not line.startswith(("│", "╭", "╰"))]
    for a, b in zip(prose, prose[1:]):
        if a.strip() and b.strip() and not b.strip().startswith(("Usage", "Example")):
            if len(a.rstrip()) + 1 + len(b.split()[0]) <= width - 1:
                bad.append(a.rstrip())
    return bad


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("argv", [["-h"], ["analyze", "-h"], ["redact", "-h"], ["report", "-h"],
                                  ["watch", "-h"]])
def test_help_wraps_to_the_terminal(argv, width):
    """Given `aksnap -h` (and a few commands' -h) at 80 and 120 columns, then the help text is
    wrapped by the terminal's width, never at the source's line breaks: no line is broken
    where the next word would have fit, none is wider than the terminal."""
    r = _run(argv, columns=width)
    assert r.exit_code == 0, r.output
    assert max(map(len, _lines(r.stdout))) <= width
    assert _ragged(r.stdout, width) == [], argv
