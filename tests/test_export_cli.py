"""`aksnap export` as a user runs it: a thin shell over export(), one sentence per mistake."""

import json

import pytest
from typer.testing import CliRunner

from aksnap.cli import app
from aksnap.fixtures.server import SimulatedControlPlane, synthetic_cluster

runner = CliRunner()


@pytest.fixture(scope="module")
def server():
    cluster = synthetic_cluster(300, n_sessions=2, seed=11)
    with SimulatedControlPlane(cluster) as cp:
        yield cp.start(), cluster.sessions.column("session_id").to_pylist()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for k in ("AK_ENDPOINT", "AKCONFIG", "AK_CERTIFICATE_AUTHORITY", "AK_CLIENT_CERTIFICATE",
              "AK_CLIENT_KEY", "AK_OUTPUT"):
        monkeypatch.delenv(k, raising=False)
    # armonik-cli's default config file of whoever runs the tests must not be read.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def run(*args):
    return runner.invoke(app, ["export", *map(str, args)])


def test_json_summary_for_scripts(server, tmp_path):
    ep, sessions = server
    r = run("--endpoint", ep, "--session", sessions[0], "--out", tmp_path / "b", "--quiet",
            "-o", "json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["rows"]["tasks"] == 150 and summary["snapshot"] in ("final", "live")
    assert summary["sessions"] == [sessions[0]] and summary["bytes"] > 0


def test_table_summary_and_progress_on_stderr(server, tmp_path):
    ep, _ = server
    r = run("--endpoint", ep, "--all", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    assert "tasks" in r.stdout and "rows/s" in r.stdout and "snapshot" in r.stdout
    assert "tasks" in r.stderr  # the progress bars


def test_endpoint_from_the_environment(server, tmp_path, monkeypatch):
    ep, _ = server
    monkeypatch.setenv("AK_ENDPOINT", ep)
    r = run("--all", "--out", tmp_path / "b", "-q")
    assert r.exit_code == 0, r.output


BAD = [
    (["--all"], "missing option"),                                     # no --out
    (["--out", "{out}"], "nothing selected"),
    (["--out", "{out}", "--all", "--session", "x"], "exclude each other"),
    (["--out", "{out}", "--status", "bogus"], "unknown session status"),
    (["--out", "{out}", "--all", "--created-after", "yesterday"], "neither a time ago nor an ISO date"),
    (["--out", "{out}", "--all", "--page-size", "0"], "--page-size"),
    (["--out", "{out}", "--all", "--jobs", "0"], "--jobs"),
    (["--out", "{out}", "--all", "--jobs", "many"], "invalid value for '--jobs'"),
    (["--out", "{out}", "--all", "-o", "xml"], "unknown output format 'xml'"),
    (["--out", "{out}", "--all", "--max-message-size", "10"], "--max-message-size"),
    (["--out", "{out}", "--all", "-c", "{tmp}/none.yml"], "cannot read the config file"),
    (["--out", "{tmp}/missing/b", "--all"], "does not exist"),
    (["--out", "{tmp}", "--all"], "already exists"),
    (["--out", "{out}", "--session", "no-such-session"], "unknown session id no-such-session"),
    (["--out", "{out}", "--all", "--client-certificate", "{tmp}/c.pem"], "both --client-certificate"),
    (["--out", "{out}", "--all", "--certificate-authority", "{tmp}/none.pem"], "cannot read"),
]


@pytest.mark.parametrize("args,words", BAD, ids=[w for _, w in BAD])
def test_bad_arguments_exit_2_with_one_sentence(server, tmp_path, args, words):
    ep, _ = server
    out = tmp_path / "b"
    args = [a.format(out=out, tmp=tmp_path) for a in args]
    r = run("--endpoint", ep, *args)
    assert r.exit_code == 2, r.output
    assert words in r.output
    assert "Traceback" not in r.output
    # Usage mistakes too (a missing option, a wrong-typed value) are one line, not a panel.
    errors = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("aksnap: error: "), r.stderr
    assert not out.exists()


def test_no_endpoint_anywhere(tmp_path):
    r = run("--all", "--out", tmp_path / "b")
    assert r.exit_code == 2 and "no endpoint given" in r.stderr


def test_unreachable_endpoint_is_exit_1_with_a_sentence(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    from aksnap.exporter import api

    r = run("--endpoint", f"127.0.0.1:{port}", "--all", "--out", tmp_path / "b", "-q")
    assert r.exit_code == 1 and "UNAVAILABLE" in r.stderr and "Traceback" not in r.output
