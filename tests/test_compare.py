"""`aksnap compare ARCHIVE`: every run against its rolling baseline, on DuckDB and on Spark.

The archive: 30 nightly runs of one workload with a few percent of noise, and a regression
injected at run 20 (one partition's processing twice as slow). compare must flag run 20 and no
other, on both engines, and both engines must give the same table.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random

import pytest
from typer.testing import CliRunner

from aksnap.analyzer import archive, compare
from aksnap.analyzer.snapshot import AnalysisError
from aksnap.analyzer.testing import T0, make_bundle, result, task
from aksnap.cli import app

runner = CliRunner()
RUNS, REGRESSED = 30, 20


def nightly_run(out, day: int, slow: float = 1.0, n: int = 30):
    """Run `day` (exported `day` days after T0): n tasks in two partitions, drawn::

        cpu tasks (odd i):  processing ~2 s x `slow`, +-5% seeded noise
        io tasks (even i):  processing ~1 s, +-5% noise
        every task: submitted +0.1 s, acquired +0.3, fetched +0.35, started +0.4, ended +0.1
        after processing; task i is created at i x 0.5 s.
    """
    rng = random.Random(day)
    tasks, results = [], []
    for i in range(n):
        part = "cpu" if i % 2 else "io"
        proc = (2.0 * slow if part == "cpu" else 1.0) * rng.uniform(0.95, 1.05)
        c = i * 0.5
        tasks.append(task(f"t{i}", session=f"s{day}", partition=part, outputs=[f"r{i}"],
                          times=dict(created=c, submitted=c + .1, acquired=c + .3, fetched=c + .35,
                                     started=c + .4, processed=c + .4 + proc, ended=c + .5 + proc)))
        results.append(result(f"r{i}", session=f"s{day}", owner=f"t{i}", completed=c + .5 + proc))
    return make_bundle(out, tasks=tasks, results=results, snapshot=day * 86400.0 + 100)


@pytest.fixture(scope="module")
def arc(tmp_path_factory):
    d = tmp_path_factory.mktemp("compare")
    bundles = [nightly_run(d / f"run{day}", day, slow=2.0 if day == REGRESSED else 1.0)
               for day in range(1, RUNS + 1)]
    archive.add(d / "arc", bundles[:10], ["env=nightly"])
    archive.add(d / "arc", bundles[10:], ["env=nightly", "branch=main"])
    # another application's run in the same archive, filtered out by --where
    archive.add(d / "arc", [nightly_run(d / "other", 40, slow=5.0)], ["env=dev"])
    runs = {(r["exported_at"] - T0).days: r["run_id"] for r in archive.runs(d / "arc")}
    return d / "arc", runs


def test_compare_flags_the_regressed_run_and_no_other(arc):
    """Given 30 nightly runs with noise and run 20's cpu processing twice as slow, when compared
    against the rolling median and MAD of the previous 10 runs, then run 20 is the only run that
    regresses, on the cpu processing percentiles, and runs 1-3 have too little history."""
    path, runs = arc
    data = compare.build(str(path), where=["env=nightly"])
    target = runs[REGRESSED]
    assert data["regressed_runs"] == [target]
    flagged = {(r["metric"], r["scope"]) for r in data["rows"] if r["verdict"] == "regression"}
    assert {("phase.processing.p50", "cpu"), ("phase.processing.p90", "cpu")} <= flagged
    assert not {s for _, s in flagged if s == "io"}
    first = [r for r in data["rows"] if r["pos"] <= 3]
    assert {r["verdict"] for r in first} == {"no baseline"}
    assert len(data["runs"]) == RUNS


def test_last_reports_the_last_runs_and_a_pinned_baseline_compares_with_one_run(arc):
    path, runs = arc
    data = compare.build(str(path), where=["env=nightly"], last=5)
    assert [r["pos"] for r in data["runs"]] == list(range(RUNS - 4, RUNS + 1))
    assert data["regressed_runs"] == []  # run 20 is older than the last five
    pinned = compare.build(str(path), where=["branch=main"], baseline=runs[12][-12:],
                           metrics=["phase.processing.p50"])
    assert pinned["regressed_runs"] == [runs[REGRESSED]]
    assert {r["metric"] for r in pinned["rows"]} == {"phase.processing.p50"}
    assert all(r["history"] == 1 for r in pinned["rows"] if r["baseline"] is not None)


def test_the_cli_fails_on_regression_and_writes_every_format(arc):
    path, _ = arc
    r = runner.invoke(app, ["compare", str(path), "--where", "env=nightly", "--fail-on", "regression"])
    assert r.exit_code == 1, r.output
    assert "Trends" in r.stdout and "Regressions" in r.stdout
    r = runner.invoke(app, ["compare", str(path), "-w", "env=nightly", "--last", "5", "--fail-on",
                            "regression", "-o", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["regressed_runs"] == []
    r = runner.invoke(app, ["compare", str(path), "-w", "env=nightly", "-o", "csv"])
    assert r.exit_code == 0 and r.stdout.startswith("run,pos,metric") and "trends" in r.stderr
    r = runner.invoke(app, ["compare", str(path), "-w", "env=nightly", "-o", "markdown"])
    assert r.stdout.startswith("### aksnap compare") and "| run | metric |" in r.stdout


@pytest.mark.parametrize("argv, words", [
    (["--where", "env=nowhere"], "no run of"),
    (["--metric", "latency"], "names no metric"),
    (["--engine", "oracle"], "is not one of duckdb, spark"),
    (["--baseline", "zzz"], "is not in the archive"),
    (["--last", "0"], "must be at least 1"),
    (["--fail-on", "everything"], "is not one of regression, change"),
])
def test_bad_input_is_one_sentence(arc, argv, words):
    path, _ = arc
    r = runner.invoke(app, ["compare", str(path)] + argv)
    assert r.exit_code == 2 and words in r.stderr and r.stderr.count("\n") == 1, r.output


def test_the_sql_is_one_query_per_family_and_transpiles_to_spark():
    """Every family's query and the baseline query parse as DuckDB SQL and come out as Spark SQL
    with Spark's functions (unix_micros, percentile), and never spell a status list."""
    pytest.importorskip("sqlglot")
    for name in ("compare_runs", "compare_phases", "compare_baseline"):
        text = compare.spark_sql(name)
        assert "EPOCH_US" not in text.upper() and "QUANTILE_CONT" not in text.upper()
    assert "UNIX_MICROS" in compare.spark_sql("compare_phases").upper()
    assert "PERCENTILE(" in compare.spark_sql("compare_phases").upper()


def test_each_family_reads_the_archive_once_on_spark_too():
    """Spark inlines a CTE at every reference (DuckDB materialises it): a family written as a
    UNION ALL of one SELECT per metric from its aggregate scanned the whole archive once per
    metric there (22 scans, most of the Spark test's time). Given each family's Spark SQL,
    then the task rows and the aggregate are each referenced once."""
    sqlglot = pytest.importorskip("sqlglot")
    from sqlglot import exp

    for name in ("compare_runs", "compare_phases"):
        tree = sqlglot.parse_one(compare.spark_sql(name), read="spark")
        tables = [t.name for t in tree.find_all(exp.Table)]
        assert tables.count("tasks") == 1 and tables.count("a") == 1, (name, tables)


# -- Spark: the same table on the same archive --------------------------------------------------------

spark_available = importlib.util.find_spec("pyspark") is not None and \
    importlib.util.find_spec("sqlglot") is not None


@pytest.fixture(scope="module")
def spark():
    if not spark_available:
        pytest.skip("pyspark and sqlglot are the spark extra: pip install -e '.[spark]'")
    from pyspark.sql import SparkSession

    s = (SparkSession.builder.master("local[2]").appName("aksnap-tests")
         .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


def _same(x, y) -> bool:
    if isinstance(x, float) or isinstance(y, float):
        return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) \
            or x is None and y is None
    return x == y


@pytest.mark.spark
def test_spark_and_duckdb_give_the_same_table(arc, spark):
    """Given the 30-run archive, when compared on Spark (local) and on DuckDB, then every row is
    the same (values to 1e-9), and Spark flags run 20 too."""
    path, runs = arc
    d = compare.build(str(path), where=["env=nightly"])
    s = compare.build(str(path), where=["env=nightly"], engine="spark", spark=spark)
    key = lambda r: (r["pos"], r["metric"], r["scope"])  # noqa: E731
    a, b = sorted(d["rows"], key=key), sorted(s["rows"], key=key)
    assert len(a) == len(b) > 0
    different = [(x, y) for x, y in zip(a, b) if not all(_same(x[k], y[k]) for k in x)]
    assert not different, different[:3]
    assert s["regressed_runs"] == d["regressed_runs"] == [runs[REGRESSED]]


def test_without_pyspark_the_spark_engine_is_a_sentence(arc, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pyspark(name, *a, **kw):
        if name.startswith("pyspark"):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pyspark)
    path, _ = arc
    with pytest.raises(AnalysisError, match=r"needs pyspark"):
        compare.build(str(path), engine="spark")
