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


# -- Writing is impossible by construction (issue 17, item 1) --------------------------------------
#
# `EXPLAIN ANALYZE COPY ... TO 'B/tasks.parquet'` once rewrote a bundle: the statement check saw
# an EXPLAIN, and DuckDB could write the table files because it was allowed to read them. Every
# wrapper below is tried with every writing statement against every file of the bundle, the
# bundle directory and a path outside it; and against the views. Twice: through the whole
# sandbox, and with the statement check switched off, to prove the construction alone holds.

WRAPPERS = (
    "{s}",
    "EXPLAIN {s}",
    "EXPLAIN ANALYZE {s}",
    "EXPLAIN (ANALYZE) {s}",
    "PREPARE p AS {s}; EXECUTE p",
    "WITH x AS (SELECT 1) {s}",
    "SELECT 1; {s}",
    "{s}; SELECT count(*) AS n FROM tasks",
)

WRITES = (
    "COPY (SELECT 1 AS a) TO '{t}' (FORMAT csv, USE_TMP_FILE false)",
    "COPY (SELECT 1 AS a) TO '{t}' (FORMAT parquet)",
    "COPY tasks TO '{t}' (FORMAT parquet, OVERWRITE_OR_IGNORE)",
    "EXPORT DATABASE '{t}'",
    "ATTACH '{t}' AS x",
    "CREATE TABLE z AS SELECT * FROM read_text('{t}')",
)

REDEFINITIONS = (
    "DROP VIEW tasks",
    "CREATE OR REPLACE VIEW tasks AS SELECT 'COMPLETED' AS status",
    "CREATE OR REPLACE TEMP VIEW tasks AS SELECT 'COMPLETED' AS status",
    "CREATE OR REPLACE VIEW task_phases AS SELECT 1 AS total",
    "CREATE SCHEMA s",
    "CREATE MACRO status_sets() AS TABLE SELECT 1",
    "ALTER VIEW result_producers RENAME TO gone",
    "INSERT INTO status_sets VALUES ('tasks', 'X', true, true, true, true)",
    "SET search_path = 'temp'",
)


def _targets(fb, tmp_path) -> list[str]:
    return [*(str(p) for p in sorted(fb.iterdir())), str(fb), str(tmp_path / "outside.csv")]


def _truth(fb) -> tuple:
    with Snapshot.open(fb) as snap:
        return _answers(snap)


def _answers(snap) -> tuple:
    return (snap.sql("SELECT status, count(*) AS n FROM tasks GROUP BY ALL ORDER BY ALL").to_pylist(),
            snap.sql("SELECT count(*) AS n FROM task_phases").to_pylist(),
            snap.sql("SELECT count(*) AS n FROM result_producers").to_pylist(),
            snap.sql("SELECT count(*) AS n FROM status_sets").to_pylist())


def _attack(snap, statements) -> list[str]:
    """Each statement must be refused; the ones that were not, returned."""
    got_through = []
    for sql in statements:
        try:
            snap.sql(sql)
        except AnalysisError:
            continue
        got_through.append(sql)
    return got_through


@pytest.mark.parametrize("statement_check", [True, False], ids=["sandbox", "construction-alone"])
def test_no_wrapper_writes_a_bundle_file_an_outside_path_or_the_views(fb, tmp_path, monkeypatch,
                                                                        statement_check):
    """Given the failure bundle and a sandboxed snapshot, when every wrapper (plain, EXPLAIN,
    EXPLAIN ANALYZE, PREPARE/EXECUTE, a CTE, several statements in one string) runs every
    writing statement at every file of the bundle, the bundle itself and an outside path, then
    no file changes or appears, and the views answer as before; with the statement check off,
    the same holds (DuckDB has no path it may write, and a changed catalog withholds the
    answer)."""
    before, truth = _digest(fb), _truth(fb)
    if not statement_check:
        monkeypatch.setattr(Snapshot, "_check_statements", lambda self, text: None)
    targets = _targets(fb, tmp_path)
    if not statement_check:
        # the construction refuses a path whatever file it names (DuckDB may open none): one
        # table file, the manifest, the directory and the outside path stand for all of them
        # here (every fingerprint of the catalog costs ~15-50 ms, 450 statements took 20 s)
        targets = [t for t in targets if t.endswith(("tasks.parquet", "manifest.json"))] + targets[-2:]
        assert len(targets) == 4, targets
    writes = [w.format(t=t) for w in WRITES for t in targets]
    statements = [wrap.format(s=s) for wrap in WRAPPERS for s in (*writes, *REDEFINITIONS)]
    with Snapshot.open(fb) as snap:
        snap.sandbox()
        through = _attack(snap, statements)
        if not statement_check:
            # a plain EXPLAIN plans a statement without running it: harmless, and the only
            # kind DuckDB itself lets through
            through = [s for s in through if not s.startswith("EXPLAIN ") or "ANALYZE" in s]
        # statements that are invalid SQL under a wrapper fail too; none may succeed
        assert through == [], through[:5]
        assert _answers(snap) == truth
    assert _digest(fb) == before
    assert not (tmp_path / "outside.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_reported_attack_through_the_cli_is_refused_and_the_bundle_intact(tmp_path):
    """The issue's reproduction, whole: `aksnap sql B "EXPLAIN ANALYZE COPY (select 1 as a) TO
    'B/tasks.parquet' (FORMAT csv, USE_TMP_FILE false)"` exits 2 with one sentence and
    tasks.parquet keeps every byte."""
    fb = failure_bundle(tmp_path / "own.aksnap")
    before = _digest(fb)
    for sql in (f"EXPLAIN ANALYZE COPY (select 1 as a) TO '{fb}/tasks.parquet' "
                "(FORMAT csv, USE_TMP_FILE false)",
                "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", "DROP VIEW tasks", "LOAD json",
                "EXPLAIN ANALYZE CREATE OR REPLACE VIEW tasks AS SELECT 1 AS task_id; "
                "SELECT count(*) FROM tasks"):
        r = runner.invoke(app, ["sql", str(fb), sql])
        assert r.exit_code == 2, (sql, r.output)
        assert r.stderr.startswith("aksnap: error: ") and r.stderr.count("\n") == 1, (sql, r.stderr)
    assert _digest(fb) == before


def test_a_redefined_view_never_answers(fb, monkeypatch):
    """Given the statement check switched off (so only the catalog fingerprint stands), when one
    string redefines `tasks` and then counts it, then no answer is given, and the next
    statement reads the bundle's own `tasks` again."""
    monkeypatch.setattr(Snapshot, "_check_statements", lambda self, text: None)
    truth = _truth(fb)
    with Snapshot.open(fb) as snap:
        snap.sandbox()
        with pytest.raises(AnalysisError, match="answer is withheld"):
            snap.sql("CREATE OR REPLACE TEMP VIEW tasks AS SELECT 'COMPLETED' AS status; "
                     "SELECT status, count(*) AS n FROM tasks GROUP BY ALL")
        assert _answers(snap) == truth


# -- A query that reads nothing does not wait for the checksums (issue 21, item d) -----------------

def _bad_checksums(fb, tmp_path):
    import shutil

    p = tmp_path / "bad"
    shutil.copytree(fb, p)
    m = json.loads((p / "manifest.json").read_text())
    for t in m["tables"].values():
        t["sha256"] = "0" * 64  # every file now fails its checksum; footers, sizes, rows still agree
    (p / "manifest.json").write_text(json.dumps(m))
    return p


READING_NOTHING = ["SELECT 1", "select 1 AS one, 2 + 2 AS four", "SELECT now() IS NOT NULL",
                   "SELECT 1; SELECT 2", "SELECT $x AS bound"]
# every way we know to reach a table without a plain FROM tasks; each must wait, and so fail
READING_SOMETHING = [
    "SELECT count(*) FROM tasks", "SELECT (SELECT count(*) FROM tasks)",
    "SELECT 1 WHERE EXISTS (SELECT 1 FROM results)", "WITH x AS (SELECT * FROM tasks) SELECT 1",
    "SELECT 1 UNION ALL SELECT count(*) FROM tasks", "SELECT 1; SELECT count(*) FROM tasks",
    "SELECT * FROM query_table('tas' || 'ks')", "SELECT * FROM query('select * from tasks')",
    "SUMMARIZE tasks", "DESCRIBE tasks", "SHOW TABLES", "PRAGMA table_info('tasks')",
    "CALL pragma_table_info('tasks')", "SELECT * FROM (VALUES (1)) v", "SELECT * FROM bundle_info",
    "SELECT * FROM status_sets", "SELECT 1 FROM task_phases LIMIT 0", "EXPLAIN SELECT 1",
    "SELEC 1",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",  # reads nothing, but names a relation: waits
]


@pytest.mark.parametrize("sql", READING_NOTHING)
def test_sql_reading_no_table_answers_at_once_and_says_what_was_verified(fb, tmp_path, sql):
    """Given a bundle whose every file fails its checksum, when `aksnap sql` runs SQL whose
    parse tree has no relation at all, then it answers (it cannot depend on the files) without
    waiting for the SHA-256, and says so on stderr."""
    params = ["-p", "x=1"] if "$x" in sql else []
    r = runner.invoke(app, ["sql", str(_bad_checksums(fb, tmp_path)), sql, "-o", "csv", *params])
    assert r.exit_code == 0, r.output
    assert "without waiting for the checksums" in r.stderr


@pytest.mark.parametrize("sql", READING_SOMETHING)
def test_sql_reading_anything_still_waits_for_the_checksums(fb, tmp_path, sql):
    """Given the same bundle, when the SQL names any relation (a table, a view, a table
    function, a subquery, a CTE even unused, VALUES) or is not a plain SELECT, then no answer
    is shown: the checksum failure is (exit 2), as before."""
    r = runner.invoke(app, ["sql", str(_bad_checksums(fb, tmp_path)), sql])
    assert r.exit_code == 2, (sql, r.output)
    assert "fails its checksum" in r.stderr or (sql == "SELEC 1" and "syntax" in r.stderr), r.stderr
    assert "without waiting" not in r.stderr
    assert Snapshot.reads_no_table(sql) is False


def test_sql_on_a_sound_bundle_says_nothing_more(fb):
    """Given a sound bundle, SQL reading a table prints its answer and no note."""
    r = runner.invoke(app, ["sql", str(fb), "SELECT count(*) AS n FROM tasks", "-o", "csv"])
    assert r.exit_code == 0 and not r.stderr
