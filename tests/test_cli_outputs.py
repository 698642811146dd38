"""Every command's output is something a program can read.

Walks every command `aksnap --help` lists: each one that prints an answer is run with
``-o json`` (parsed by the json module) and ``-o csv`` (read by pandas as ONE table, and by the
csv module as rows of one width); ``-o yaml`` is parsed too. Commands that take an id get a
unique prefix of it, in another case, as armonik-cli users paste them. A command that prints
no answer (``version``: one line; ``simulate``: serves until Ctrl-C; ``demo``: a report for
people) is listed, with its reason, so that a new command cannot slip through untested.
"""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from aksnap.analyzer.testing import failure_bundle
from aksnap.cli import app
from aksnap.fixtures.server import SimulatedControlPlane, synthetic_cluster

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands

#: commands that print no machine-readable answer, and why
NO_ANSWER = {
    "version": "one line: the version",
    "simulate": "serves a control plane until Ctrl-C; its first line is the endpoint",
    "demo": "a report for people, the analyses of `analyze` and `lineage` in table form",
    "watch": "follows a live run until it ends; --once -o json|yaml: tests/test_watch.py",
    "serve": "serves a page until Ctrl-C; its JSON answers (/api/...) are the registry's -o "
             "json, checked against the commands in tests/test_serve.py",
}


@pytest.fixture(scope="module")
def fb(tmp_path_factory):
    return failure_bundle(tmp_path_factory.mktemp("outputs") / "failure.aksnap")


@pytest.fixture(scope="module")
def server():
    with SimulatedControlPlane(synthetic_cluster(40, n_sessions=1, seed=3)) as cp:
        yield cp.start()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for k in ("AK_ENDPOINT", "AKCONFIG", "AK_OUTPUT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))


def _argv(name: str, fb, server, tmp_path) -> list[str]:
    b = str(fb)
    return {
        "analyze": ["analyze", b],
        "findings": ["findings", b],
        "lineage": ["lineage", b, "R6"],          # r6, in another case
        "blockers": ["blockers", b, "--session", "S1"],  # s1, in another case
        "critical-path": ["critical-path", b],
        "task": ["task", b, "T2#"],               # t2###1, by a prefix
        "sessions": ["sessions", b],              # --endpoint: tests/test_new_user.py
        "check": ["check", b],
        "sql": ["sql", b, "SELECT status, count(*) AS n FROM tasks GROUP BY ALL ORDER BY 1"],
        "query": ["query", b, "phase_percentiles"],
        "queries": ["queries"],
        "export": ["export", "--endpoint", server, "--all", "--quiet",
                   "--out", str(tmp_path / "bundle")],
        "pack": ["pack", b, "--out", str(tmp_path / "p.aksnap")],
        "unpack": ["unpack", str(_packed(fb, tmp_path)), "--out", str(tmp_path / "unpacked")],
        "redact": ["redact", b, "--out", str(tmp_path / "redacted"), "--new-key",
                   "--key-file", str(tmp_path / "key")],
        "diff": ["diff", b, b],
        "archive": ["archive", "add", str(tmp_path / "arc"), b],
        "compare": ["compare", str(_archived(fb, tmp_path))],
        "graph": ["graph", b, "--out", str(tmp_path / "g.dot")],
        "trace": ["trace", b, "--out", str(tmp_path / "t.json")],
        "report": ["report", b, "--out", str(tmp_path / "r.html")],
        "whatif": ["whatif", b],
    }[name]


def _archived(fb, tmp_path):
    from aksnap.analyzer.archive import add

    add(tmp_path / "in.archive", [fb])
    return tmp_path / "in.archive"


def _command(name: str):
    """The command, or for a group (``archive``) the subcommand the walk runs (``add``)."""
    c = COMMANDS[name]
    return c.commands["add"] if hasattr(c, "commands") else c


def _packed(fb, tmp_path):
    from aksnap.pack import pack

    return pack(fb, tmp_path / "in.aksnap").path


def _formats(name: str) -> list[str]:
    """The formats the command's -o/--output offers (from its metavar)."""
    for p in _command(name).params:
        if "--output" in getattr(p, "opts", []):
            return (p.metavar or "").split("|")
    return []


def test_every_command_is_walked_or_says_why_not():
    walked = {"analyze", "findings", "lineage", "blockers", "critical-path", "task", "check", "sql", "query",
              "queries", "export", "pack", "unpack", "redact", "diff", "archive", "compare",
              "graph", "trace", "report", "sessions", "whatif"}
    assert set(COMMANDS) == walked | set(NO_ANSWER), "a new command: add it to _argv or NO_ANSWER"
    for name in walked:
        assert {"json", "yaml"} <= set(_formats(name)), f"`aksnap {name}` has no -o json|yaml"


@pytest.mark.parametrize("name", ["analyze", "lineage", "blockers", "critical-path", "task", "check",
                                  "sql", "query", "queries", "export", "pack", "unpack", "redact",
                                  "diff", "archive", "compare", "graph", "trace", "report",
                                  "sessions", "whatif"])
@pytest.mark.parametrize("fmt", ["json", "yaml", "csv"])
def test_output_parses(name, fmt, fb, server, tmp_path):
    argv = _argv(name, fb, server, tmp_path) + ["-o", fmt]
    if fmt not in _formats(name):
        r = runner.invoke(app, argv)
        assert r.exit_code == 2 and "output format" in r.stderr and r.stderr.count("\n") == 1
        return
    r = runner.invoke(app, argv)
    assert r.exit_code in (0, 1), r.output  # check: 1 when it finds anomalies
    out = r.stdout
    if fmt == "json":
        assert json.loads(out) not in (None, "")
    elif fmt == "yaml":
        assert yaml.safe_load(out) not in (None, "")
    else:
        frame = pd.read_csv(io.StringIO(out))
        assert len(frame.columns) >= 2
        widths = {len(row) for row in csv.reader(io.StringIO(out))}
        assert widths == {len(frame.columns)}, f"{name}: rows of several widths {widths}"


@pytest.mark.parametrize("argv, sections", [
    (["analyze", "{b}"], ["sessions", "phases", "error_classes", "root_causes", "top_blockers",
                          "findings"]),
    (["findings", "{b}"], ["findings", "thresholds"]),
    (["lineage", "{b}", "r6"], ["frontier", "root_causes", "owner_chain", "lineage"]),
    (["critical-path", "{b}"], ["sessions", "steps", "totals", "segments"]),
    (["task", "{b}", "t4"], ["task", "attempts", "parent_chain", "subtasks", "inputs", "outputs",
                             "timeline", "root_causes"]),
    (["check", "{b}"], ["findings", "counts"]),
    (["diff", "{b}", "{b}"], ["comparisons", "matches", "findings"]),
])
def test_every_section_is_one_csv_table(argv, sections, fb):
    """Given a command with several tables, when -o csv runs without --section, then stdout is
    its first table and stderr names the others; each --section NAME is one table too."""
    argv = [a.format(b=fb) for a in argv]
    r = runner.invoke(app, argv + ["-o", "csv"])
    assert r.exit_code == 0, r.output
    assert all(s in r.stderr for s in sections[1:])
    assert r.stdout == runner.invoke(app, argv + ["-o", "csv", "--section", sections[0]]).stdout
    for s in sections:
        r = runner.invoke(app, argv + ["-o", "csv", "--section", s])
        assert r.exit_code == 0, (s, r.output)
        frame = pd.read_csv(io.StringIO(r.stdout))
        assert len(frame.columns) >= 2
        assert json.loads(runner.invoke(app, argv + ["-o", "json", "--section", s]).stdout) is not None
    r = runner.invoke(app, argv + ["-o", "csv", "--section", "nope"])
    assert r.exit_code == 2 and "no section 'nope'" in r.stderr and sections[0] in r.stderr


def test_json_keeps_maps_as_objects_and_durations_in_seconds(fb):
    data = json.loads(runner.invoke(app, ["analyze", str(fb), "-o", "json"]).stdout)
    s = data["sessions"][0]
    assert isinstance(s["tasks_by_status"], dict) and isinstance(s["elapsed_s"], (int, float))
    lin = json.loads(runner.invoke(app, ["lineage", str(fb), "r7", "-o", "json"]).stdout)
    assert isinstance(lin["upstream"]["tasks_by_status"], dict)
    assert isinstance(lin["frontier"][0]["in_status_s"], float)


def test_output_format_from_the_environment_any_case(fb, monkeypatch):
    monkeypatch.setenv("AK_OUTPUT", "JSON")
    assert json.loads(runner.invoke(app, ["blockers", str(fb)]).stdout)["blockers"]
    assert runner.invoke(app, ["blockers", str(fb), "-o", "Csv"]).stdout.startswith("rank,")


def test_tables_never_print_a_huge_line(tmp_path):
    """Given a failure message of 5,000 characters, when any table shows it, no line of the
    output is longer than the terminal (or a bounded default); --wide shows it whole."""
    from aksnap.analyzer.testing import make_bundle, result, task

    msg = "x" * 5000
    b = make_bundle(tmp_path / "long.aksnap",
                    tasks=[task("t1", status="ERROR", outputs=["r1"], message=msg)],
                    results=[result("r1", owner="t1", status="ABORTED")])
    for argv in (["analyze", str(b)], ["lineage", str(b), "r1"], ["task", str(b), "t1"],
                 ["sql", str(b), "SELECT status_message FROM tasks"]):
        out = runner.invoke(app, argv, env={"COLUMNS": "120"}).stdout
        assert max(map(len, out.splitlines())) <= 1000, argv
    wide = runner.invoke(app, ["task", str(b), "t1", "--wide"], env={"COLUMNS": "120"}).stdout
    assert msg in wide


def test_an_id_prefix_is_accepted_and_an_ambiguous_one_is_a_sentence(fb):
    r = runner.invoke(app, ["task", str(fb), "t2#"])
    assert r.exit_code == 0 and "t2###1" in r.stdout
    r = runner.invoke(app, ["lineage", str(fb), "r"])
    assert r.exit_code == 2 and "ambiguous" in r.stderr and "r1" in r.stderr
    assert r.stderr.count("\n") == 1
    r = runner.invoke(app, ["lineage", str(fb), "nope"])
    assert r.exit_code == 2 and "is not in" in r.stderr
