"""Every sink escapes: error sentences, table, CSV, JSON and DOT never hand a terminal (or
Graphviz) a raw control character taken from an id or a message.

The hostile strings: an OSC sequence that retitles a terminal (``ESC ] 0 ; ... BEL``), a bidi
override (U+202E, which reverses the text after it), NUL, DEL, a C1 control, quotes, a trailing
backslash, and an HTML character reference that Graphviz would decode into ESC.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from aksnap.analyzer import lineage
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import make_bundle, result, task
from aksnap.cli import app, fail
from aksnap.output import render_kv, render_rows, safe_text

runner = CliRunner()

OSC = "\x1b]0;pwned\x07"
BIDI = "\u202e"
EVIL_SESSION = f"s{OSC}{BIDI}1"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _raw_controls(text: str) -> list[str]:
    """Control characters a terminal would obey (newline and tab excepted)."""
    return RAW.findall(text)


@pytest.fixture(scope="module")
def evil_bundle(tmp_path_factory):
    """One session whose id holds a terminal retitle sequence and a bidi override; one task
    whose message holds a NUL, DEL, a C1 control and an ANSI colour."""
    return make_bundle(
        tmp_path_factory.mktemp("evil") / "b",
        tasks=[task("t1", session=EVIL_SESSION, outputs=["r1"], status="ERROR",
                    message="boom\x00\x7f\x85\x1b[31mred")],
        results=[result("r1", session=EVIL_SESSION, owner="t1", status="ABORTED")])


def test_error_sentence_shows_a_session_id_escaped(evil_bundle):
    """Given a bundle whose only session id holds ESC]0;...BEL and U+202E,
    when `aksnap analyze B --session nope` names the sessions it holds in its error,
    then the sentence shows them as \\x1b, \\x07, \\u202e and exits 2 (no raw control)."""
    r = runner.invoke(app, ["analyze", str(evil_bundle), "--session", "nope"])
    assert r.exit_code == 2
    assert r.stderr.startswith("aksnap: error: ")
    assert _raw_controls(r.stderr) == []
    assert "\\x1b]0;pwned\\x07\\u202e1" in r.stderr


def test_fail_keeps_newlines_and_escapes_everything_else(capsys):
    """Given a message with a newline, a tab, ESC, NUL, DEL, a C1 control and U+202E,
    when passed to fail(), then only the newline and the tab reach stderr raw."""
    fail("line one\n\tline two \x1b[2J\x00\x7f\x9b" + BIDI + "end")
    err = capsys.readouterr().err
    assert _raw_controls(err) == []
    assert "line one\n\tline two \\x1b[2J\\x00\\x7f\\x9b\\u202eend" in err


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_table_and_csv_cells_show_controls_escaped(evil_bundle, fmt):
    """Given the hostile session id and task message,
    when selected with `aksnap sql --format table|csv`,
    then no raw control reaches stdout, each row stays one line, the escapes are visible."""
    r = runner.invoke(app, ["sql", str(evil_bundle),
                            "SELECT session_id, output_error AS msg FROM tasks", "-f", fmt])
    assert r.exit_code == 0, r.output
    assert _raw_controls(r.stdout) == []
    assert len(r.stdout.strip().splitlines()) == (3 if fmt == "table" else 2)
    assert "s\\x1b]0;pwned\\x07\\u202e1" in r.stdout
    assert "boom\\x00\\x7f\\x85\\x1b[31mred" in r.stdout


def test_csv_of_an_analysis_escapes_ids(evil_bundle):
    """Given the hostile bundle, when `aksnap analyze --format csv` runs (CSV cells were written
    raw before), then stdout holds no raw control."""
    r = runner.invoke(app, ["analyze", str(evil_bundle), "-f", "csv"])
    assert r.exit_code == 0, r.output
    assert _raw_controls(r.stdout) == [] and "\\x1b]0;pwned" in r.stdout


def test_json_is_ascii_and_round_trips_exactly(evil_bundle):
    """Given the hostile bundle, when selected with --format json, then the document is plain
    ASCII and decodes to the exact original strings."""
    r = runner.invoke(app, ["sql", str(evil_bundle),
                            "SELECT session_id, output_error AS msg FROM tasks", "-f", "json"])
    assert r.exit_code == 0, r.output
    assert r.stdout.isascii() and _raw_controls(r.stdout) == []
    row = json.loads(r.stdout)[0]
    assert row == {"session_id": EVIL_SESSION, "msg": "boom\x00\x7f\x85\x1b[31mred"}


def test_column_names_and_keys_are_escaped_too():
    """Given a column name and a key holding ESC (SQL lets a user name a column anything),
    when rendered as table, CSV and key-value, then they are escaped like cells."""
    rows = [{"a\x1bb": "x\u2028y"}]
    for fmt in ("table", "csv"):
        out = render_rows(rows, fmt)
        assert _raw_controls(out) == [] and "a\\x1bb" in out and "x\\u2028y" in out
    kv = render_kv([("k\x07", "v\x1b")])
    assert _raw_controls(kv) == [] and kv.startswith("k\\x07")


def test_safe_text_leaves_printable_text_alone():
    """Given printable text (accents, CJK, a backslash), when made safe, then it is unchanged."""
    s = "résumé 任务 C:\\path"
    assert safe_text(s) == s


# -- DOT -----------------------------------------------------------------------------------------

DOT_IDS = ["t\x00nul", f"t{OSC}", 'q"uote\\', f"bidi{BIDI}x", "amp&#27;x", "nl\nx\r",
           "a\x1b", "a\\x1b", "del\x7f\x85"]
QUOTED = re.compile(r'"(?:[^"\\\n]|\\.)*"')
# The hostile tasks and 'final'; r0, one output per hostile task but the first, and r\.
NODES = (len(DOT_IDS) + 1) + (1 + len(DOT_IDS) - 1 + 1)


@pytest.fixture(scope="module")
def dot_text(tmp_path_factory):
    """r0 <- t0 -> ... : every hostile id is a task that reads r0 and produces one result, and a
    last task 'final' reads all of them and produces 'r\\'' (a backslash at the end).

        t\\x00nul -> r0 -> {each hostile task} -> o_k -> final -> r\\
    """
    tasks = [task(DOT_IDS[0], outputs=["r0"])]
    results = [result("r0", owner=DOT_IDS[0])]
    for k, i in enumerate(DOT_IDS[1:]):
        tasks.append(task(i, deps=["r0"], outputs=[f"o{k}"]))
        results.append(result(f"o{k}", owner=i))
    tasks.append(task("final", deps=[f"o{k}" for k in range(len(DOT_IDS) - 1)], outputs=["r\\"],
                      status="SUBMITTED"))
    results.append(result("r\\", owner="final", status="CREATED"))
    p = make_bundle(tmp_path_factory.mktemp("dot") / "b", tasks=tasks, results=results,
                    with_payloads=False)
    return lineage.to_dot(Snapshot.open(p), "r\\")


def test_dot_holds_no_control_character(dot_text):
    """Given ids with NUL, ESC/BEL, DEL, C1, U+202E, CR and LF, when written as DOT, then the
    file holds none of them raw; the line breaks are only those between statements."""
    assert _raw_controls(dot_text) == []
    assert "\\\\x00" in dot_text and "\\\\u202e" in dot_text


def test_dot_statements_are_well_quoted(dot_text):
    """Given the hostile ids, when written as DOT, then every statement line is made of
    complete quoted strings (no string ends on an escaped quote or spans lines)."""
    for line in dot_text.splitlines()[3:-1]:
        rest = QUOTED.sub("Q", line)
        assert '"' not in rest, line


def test_distinct_ids_stay_distinct_nodes(dot_text):
    """Given the id 'a' + ESC and the id 'a\\\\x1b' (a literal backslash), when written as DOT,
    then they are two different node ids."""
    names = {m.group(0) for m in re.finditer(r'^  ("(?:[^"\\]|\\.)*") \[', dot_text, re.M)}
    assert len(names) == NODES
    assert '  "a\\\\x1b" [' in names and '  "a\\\\\\\\x1b" [' in names


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_parses_the_file_and_keeps_every_edge(dot_text):
    """Given the hostile ids, when Graphviz reads the DOT, then it parses it, finds exactly
    the nodes and edges written, and its SVG is well-formed XML (no &#27; decoded into ESC)."""
    import xml.dom.minidom

    r = subprocess.run(["dot", "-Tjson"], input=dot_text, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    graph = json.loads(r.stdout)
    assert len(graph["objects"]) == NODES
    # produces: one per task; data: r0 -> each hostile task, o_k -> final
    assert len(graph["edges"]) == len(DOT_IDS) + 1 + 2 * (len(DOT_IDS) - 1)
    svg = subprocess.run(["dot", "-Tsvg"], input=dot_text, capture_output=True, text=True,
                         timeout=30)
    assert svg.returncode == 0, svg.stderr
    xml.dom.minidom.parseString(svg.stdout)


# -- credentials never reach a sink ------------------------------------------------------------

SECRET = "s3cr3t-pw"


@pytest.fixture(scope="module")
def live_endpoint():
    from aksnap.fixtures.server import SimulatedControlPlane, synthetic_cluster

    with SimulatedControlPlane(synthetic_cluster(20, seed=5)) as cp:
        yield cp.start()


@pytest.fixture
def _no_ak_env(monkeypatch):
    for k in ("AK_ENDPOINT", "AKCONFIG", "AK_CERTIFICATE_AUTHORITY", "AK_CLIENT_CERTIFICATE",
              "AK_CLIENT_KEY"):
        monkeypatch.delenv(k, raising=False)


def _export(*args):
    return runner.invoke(app, ["export", "--all", "-q", *map(str, args)])


@pytest.mark.usefixtures("_no_ak_env")
@pytest.mark.parametrize("endpoint", [
    f"https://user:{SECRET}@127.0.0.1:1",          # unreachable port
    f"user:{SECRET}@127.0.0.1:1",                  # no scheme
    f"https://user:{SECRET}/x?y@127.0.0.1:1",      # a password holding '/' and '?'
    f"https://user:a@{SECRET}@127.0.0.1:1",        # and '@'
])
def test_a_password_in_the_endpoint_is_refused_without_being_shown(tmp_path, endpoint):
    """Given an endpoint with USER:PASSWORD@ (gRPC has no use for it), when exported,
    then the export stops at once with exit 2 and a sentence that names the problem but not
    the password, and nothing is written."""
    r = _export("--endpoint", endpoint, "--out", tmp_path / "b")
    assert r.exit_code == 2, r.output
    assert SECRET not in r.output and SECRET not in (r.stderr or "")
    assert "user name or password" in r.stderr and "127.0.0.1:1" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("_no_ak_env")
def test_a_password_against_a_live_server_leaves_no_trace(tmp_path, live_endpoint):
    """Given a live control plane, when exported with user:password@ in front of its address,
    then the export is refused without the password; the same address without it exports, and
    the manifest's source is exactly HOST:PORT."""
    r = _export("--endpoint", f"https://admin:{SECRET}@{live_endpoint}", "--out", tmp_path / "b")
    assert r.exit_code == 2 and SECRET not in r.output + (r.stderr or "")
    assert not (tmp_path / "b").exists()
    ok = _export("--endpoint", live_endpoint, "--out", tmp_path / "b")
    assert ok.exit_code == 0, ok.output
    manifest = (tmp_path / "b" / "manifest.json").read_text()
    assert json.loads(manifest)["source"]["endpoint"] == live_endpoint and "@" not in manifest


@pytest.mark.usefixtures("_no_ak_env")
def test_a_password_from_the_environment_or_akconfig_is_not_shown(tmp_path, monkeypatch):
    """Given the endpoint with a password in AK_ENDPOINT, then in an AKCONFIG file, and an
    AKCONFIG file whose YAML is broken on the line after it, when exported, then each is a
    sentence with exit 2 that never quotes the password."""
    monkeypatch.setenv("AK_ENDPOINT", f"https://u:{SECRET}@127.0.0.1:1")
    r = _export("--out", tmp_path / "b")
    assert r.exit_code == 2 and SECRET not in r.output + (r.stderr or "")
    monkeypatch.delenv("AK_ENDPOINT")
    conf = tmp_path / "ak.yaml"
    conf.write_text(f"endpoint: https://u:{SECRET}@127.0.0.1:1\n")
    monkeypatch.setenv("AKCONFIG", str(conf))
    r = _export("--out", tmp_path / "b")
    assert r.exit_code == 2 and SECRET not in r.output + (r.stderr or "")
    conf.write_text(f"endpoint: https://u:{SECRET}@127.0.0.1:1\n\tbroken: [\n")
    r = _export("--out", tmp_path / "b")
    assert r.exit_code == 2 and "not valid YAML at line 2" in r.stderr
    assert SECRET not in r.output + (r.stderr or "")


def test_a_connection_built_in_python_cannot_carry_a_password():
    """Given the Python API, when a Connection is built with user:password@host:port, then it
    is refused with a sentence that does not hold the password."""
    from aksnap.exporter.client import Connection, ConnectionSettingsError

    with pytest.raises(ConnectionSettingsError) as e:
        Connection(f"u:{SECRET}@127.0.0.1:1", None)
    assert SECRET not in str(e.value) and "***@127.0.0.1:1" in str(e.value)
