"""`aksnap sql` and `aksnap query` read the bundle and nothing else.

A bundle arrives from anyone's bug report, and `aksnap sql BUNDLE "..."` may be pasted from it.
Given a bundle and a file outside it, when SQL tries to read that file, write a file, install
or load an extension, attach a database or change the configuration, then it is refused with
one sentence (exit 2) and nothing is read or written; the bundle's views still answer.
``--allow-external`` opens the door for the rare user who wants a file out.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from aksnap.analyzer.snapshot import AnalysisError, Snapshot
from aksnap.analyzer.testing import failure_bundle
from aksnap.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def fb(tmp_path_factory):
    return failure_bundle(tmp_path_factory.mktemp("sandbox") / "failure.aksnap")


def _digest(bundle) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(bundle.iterdir())}


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "secret.csv"
    p.write_text("token\nhunter2\n")
    return p


def _attempts(fb, secret, tmp_path):
    out = tmp_path / "out.csv"
    table = "/proc/self/fd/3"  # a table file, opened by the bundle: readable, never writable
    return out, [
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM read_text('{secret}')",
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT * FROM read_text('{fb}/manifest.json')",
        "SELECT * FROM glob('/tmp/*')",
        f"COPY (SELECT 1 AS x) TO '{out}'",
        f"COPY (SELECT 1 AS x) TO '{out}' (FORMAT csv, USE_TMP_FILE false)",
        f"COPY (SELECT 1 AS x) TO '{table}' (FORMAT csv, USE_TMP_FILE false)",
        f"COPY (SELECT 1 AS x) TO '{fb}/tasks.parquet' (FORMAT csv, USE_TMP_FILE false)",
        f"EXPORT DATABASE '{tmp_path / 'db'}'",
        f"ATTACH '{tmp_path / 'x.duckdb'}' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SET memory_limit = '64GB'",
        "CREATE TABLE t AS SELECT 1",
    ]


def test_sql_cannot_read_or_write_outside_the_bundle(fb, secret, tmp_path):
    before = _digest(fb)
    out, attempts = _attempts(fb, secret, tmp_path)
    for sql in attempts:
        r = runner.invoke(app, ["sql", str(fb), sql])
        assert r.exit_code == 2, (sql, r.output)
        assert "hunter2" not in r.output and "root:" not in r.output
        assert r.stderr.startswith("aksnap: error: ") and r.stderr.count("\n") == 1, (sql, r.stderr)
    assert not out.exists() and not (tmp_path / "db").exists() and not (tmp_path / "x.duckdb").exists()
    assert _digest(fb) == before


def test_the_sandbox_still_answers_over_the_bundle(fb):
    for sql in ("SELECT count(*) AS n FROM tasks", "SELECT * FROM task_phases",
                "SELECT * FROM result_producers", "SELECT * FROM bundle_info", "DESCRIBE tasks",
                "PRAGMA table_info('tasks')", "EXPLAIN SELECT 1"):
        r = runner.invoke(app, ["sql", str(fb), sql, "-o", "json"])
        assert r.exit_code == 0, (sql, r.output)
        json.loads(r.stdout)
    for name in ("phase_percentiles", "stragglers", "status_over_time", "task_phases"):
        assert runner.invoke(app, ["query", str(fb), name]).exit_code == 0, name


def test_query_is_sandboxed_too(fb):
    with Snapshot.open(fb) as snap:
        snap.sandbox()
        with pytest.raises(AnalysisError, match="COPY statement is refused"):
            snap.sql("COPY (SELECT 1) TO '/tmp/aksnap-sandbox-test.csv'")
        assert snap.query("status_counts").num_rows


def test_allow_external_lets_a_file_out(fb, tmp_path):
    out = tmp_path / "counts.csv"
    r = runner.invoke(app, ["sql", str(fb), f"COPY (SELECT status FROM tasks) TO '{out}'",
                            "--allow-external"])
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("status")


def test_a_bad_query_parameter_is_a_sentence(fb):
    for argv, words in ((["stragglers", "-p", "min_ratio=abc"], "min_ratio='abc' is not a number"),
                        (["stragglers", "-p", "limit=ten"], "limit='ten' is not a whole number"),
                        (["status_over_time", "-p", "buckets=1.5"], "is not a whole number"),
                        (["throughput", "-p", "bucket_seconds=nan"], "not a finite number")):
        r = runner.invoke(app, ["query", str(fb), *argv])
        assert r.exit_code == 2 and words in r.stderr, (argv, r.output)
    assert runner.invoke(app, ["query", str(fb), "stragglers", "-p", "min_ratio=2.5"]).exit_code == 0


def test_sql_does_not_load_the_graph(fb):
    """`aksnap sql` starts fast: it never imports rustworkx (nor the analyses)."""
    code = ("import sys\nfrom aksnap.cli import main\nsys.argv = ['aksnap', 'sql', %r, 'select 1']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('rustworkx', 'aksnap.analyzer.graph', 'aksnap.analyzer.overview', "
            "'grpc') if m in sys.modules]\nassert not bad, bad\n") % str(fb)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
