"""``aksnap compare ARCHIVE``: every run of an archive against its baseline, flagging regressions.

Computed by SQL over the whole archive at once, one query per metric family
(``queries/compare_runs.sql``: counts, failures, times, throughput; ``compare_phases.sql``:
phase percentiles per partition; one row per run, metric and scope), then ``compare_baseline.sql`` puts each figure beside its baseline: the
median of the previous ``--history`` runs (and their MAD), or a pinned ``--baseline`` run. No
Python loop runs over bundles or tasks: Python only selects the runs (``--where``, ``--last``),
registers three tiny tables (``selected_runs``, ``compare_params``, ``status_sets``) and shapes
the answer.

The SQL is written once, in DuckDB's dialect. ``--engine spark`` reads the same archive with
Spark (``spark.read.parquet``, partition discovery) and runs the same files, transpiled by
SQLGlot (DuckDB -> Spark) plus two function renames SQLGlot does not make
(:data:`SPARK_FUNCTIONS`); ``tests/test_compare.py`` proves both engines give the same table.
"""

from __future__ import annotations

import fnmatch
import json
import math
from typing import Any, Iterable, Sequence

import pyarrow as pa

from aksnap import queries
from aksnap.bundle import status_sets_table

from .archive import Archive, parse_labels
from .common import Section, pick_section, render_data, render_sections
from .diff import markdown_table, md_cell
from .snapshot import AnalysisError, duckdb_type

#: metric family -> the query computing it (one query per family, over the whole archive)
FAMILIES = {"tasks": "compare_runs", "time": "compare_runs", "throughput": "compare_runs",
            "errors": "compare_runs", "phase": "compare_phases"}
ENGINES = ("duckdb", "spark")
FAIL_ON = ("regression", "change")
VERDICTS = ("regression", "improvement", "changed", "same", "no baseline")
HISTORY, K, MIN_REL, MIN_ABS, MIN_HISTORY = 10, 3.0, 0.10, 0.05, 3
SPARKS = "▁▂▃▄▅▆▇█"


# -- the SQL on each engine ---------------------------------------------------------------------------

#: DuckDB functions SQLGlot leaves as they are, and their Spark equivalents
SPARK_FUNCTIONS = {"EPOCH_US": "UNIX_MICROS"}


def spark_sql(name: str) -> str:
    """A query of ``queries/`` in Spark SQL: SQLGlot's DuckDB -> Spark transpilation, with
    ``quantile_cont(x, q)`` as Spark's exact ``percentile(x, q)`` (the same interpolation) and
    the functions of :data:`SPARK_FUNCTIONS` renamed on the syntax tree."""
    import sqlglot
    from sqlglot import exp

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and str(node.this).upper() in SPARK_FUNCTIONS:
            return exp.Anonymous(this=SPARK_FUNCTIONS[str(node.this).upper()],
                                 expressions=node.expressions)
        if isinstance(node, (exp.PercentileCont, exp.Quantile)):
            # a list of fractions stays a list (Spark: an array), indexed from 0 by SQLGlot
            return exp.Anonymous(this="PERCENTILE", expressions=[node.this, node.expression])
        return node

    tree = sqlglot.parse_one(queries.text(name), read="duckdb")
    return tree.transform(fix).sql(dialect="spark")


class DuckEngine:
    name = "duckdb"

    def __init__(self, archive: Archive, run_ids: list[str], memory_limit: str | None = None):
        self.con = archive.connect(memory_limit=memory_limit, datasets=("tasks",))
        # every family query joins selected_runs, which holds only runs with a runs row: the
        # view's own filter on them would be a second probe of 20 M rows
        self.con.execute("CREATE OR REPLACE TEMP VIEW tasks AS SELECT * FROM tasks_all")

    def table(self, name: str, t: pa.Table) -> None:
        """A few rows of our own, from bound lists (not con.register: that imports pandas)."""
        types = {c: duckdb_type(t.schema.field(c).type) for c in t.column_names}
        select = ", ".join(f"unnest(${c})::{types[c]} AS {c}" for c in t.column_names)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {select}",
                         {c: t[c].to_pylist() for c in t.column_names})

    def run(self, name: str):
        return self.con.sql(queries.text(name))

    def view(self, name: str, rels: list) -> None:
        rel = rels[0]
        for r in rels[1:]:
            rel = rel.union(r)
        rel.create_view(name)

    def arrow(self, rel) -> pa.Table:
        return rel.to_arrow_table()

    def close(self) -> None:
        self.con.close()


class SparkEngine:
    name = "spark"

    def __init__(self, archive: Archive, run_ids: list[str], master: str | None = None,
                 spark=None):
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise AnalysisError("--engine spark needs pyspark: pip install "
                                "'armonik-snapshot[spark]' (and Java 17)") from None
        try:
            import sqlglot  # noqa: F401
        except ImportError:
            raise AnalysisError("--engine spark needs sqlglot: pip install "
                                "'armonik-snapshot[spark]'") from None
        self.spark = spark or (SparkSession.builder.master(master or "local[*]")
                               .appName("aksnap compare")
                               .config("spark.sql.session.timeZone", "UTC")
                               .config("spark.ui.enabled", "false")
                               .config("spark.ui.showConsoleProgress", "false")
                               .config("spark.sql.shuffle.partitions",
                                       "2" if (master or "local").startswith("local") else "200")
                               .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
                               .getOrCreate())
        if spark is None:
            self.spark.sparkContext.setLogLevel("ERROR")  # stderr keeps aksnap's own sentences
        for table in ("tasks",):
            base = str(archive.root / table)
            paths = [str(archive.root / table / f"run={r}") for r in run_ids]
            (self.spark.read.option("basePath", base).parquet(*paths)
             .createOrReplaceTempView(table))

    def table(self, name: str, t: pa.Table) -> None:
        from pyspark.sql.types import (BooleanType, DoubleType, LongType, StringType,
                                       StructField, StructType)

        def typ(a: pa.DataType):
            return BooleanType() if pa.types.is_boolean(a) else LongType() if pa.types.is_integer(a) \
                else DoubleType() if pa.types.is_floating(a) else StringType()
        schema = StructType([StructField(f.name, typ(f.type), True) for f in t.schema])
        rows = [tuple(r[c] for c in t.column_names) for r in t.to_pylist()]
        self.spark.createDataFrame(rows, schema).createOrReplaceTempView(name)

    def run(self, name: str):
        return self.spark.sql(spark_sql(name))

    def view(self, name: str, rels: list) -> None:
        df = rels[0]
        for r in rels[1:]:
            df = df.unionByName(r)
        # computed once: the baseline query reads it several times, and Spark does not
        # materialize a view or a CTE by itself
        df.cache().createOrReplaceTempView(name)

    def arrow(self, df) -> pa.Table:
        rows = [r.asDict() for r in df.collect()]
        return pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in df.columns})

    def close(self) -> None:
        pass  # the session is shared (getOrCreate); the process' exit stops it


# -- selecting runs -------------------------------------------------------------------------------

def _select_runs(runs: list[dict[str, Any]], where: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for r in runs:
        labels = json.loads(r.get("labels") or "{}")
        if all(labels.get(k) == v for k, v in where.items()):
            out.append({**r, "labels": labels})
    return out


def _resolve_run(runs: list[dict[str, Any]], value: str) -> str:
    hits = [r["run_id"] for r in runs if r["run_id"].lower().startswith(value.lower())
            or r["run_id"].split("-")[-1].startswith(value.lower())]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise AnalysisError(f"run {value!r} is not in the archive; `aksnap archive list` shows "
                            "its runs")
    raise AnalysisError(f"run {value!r} is ambiguous: it begins {', '.join(hits[:5])}; give more "
                        "of the run id")


def _families(metrics: Sequence[str]) -> list[str]:
    if not metrics:
        return list(dict.fromkeys(FAMILIES.values()))
    out = []
    for m in metrics:
        fam = m.split(".")[0]
        hits = [q for f, q in FAMILIES.items() if fnmatch.fnmatchcase(f, fam)]
        if not hits:
            raise AnalysisError(f"--metric {m!r} names no metric: metrics begin with "
                                f"{', '.join(FAMILIES)}")
        out += hits
    return list(dict.fromkeys(out))


def _wanted(metric: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(metric == p or metric.startswith(p + ".") or
                               fnmatch.fnmatchcase(metric, p) for p in patterns)


# -- the analysis ---------------------------------------------------------------------------------

def build(archive: str, where: Iterable[str] = (), last: int | None = None,
          metrics: Sequence[str] = (), history: int = HISTORY, baseline: str | None = None,
          k: float = K, min_rel: float = MIN_REL, min_abs: float = MIN_ABS,
          engine: str = "duckdb", master: str | None = None, fail_on: str | None = None,
          spark=None) -> dict[str, Any]:
    """Every selected run of ``archive`` against its baseline; see the module's docstring."""
    if engine not in ENGINES:
        raise AnalysisError(f"--engine {engine!r} is not one of {', '.join(ENGINES)}")
    if fail_on is not None and fail_on not in FAIL_ON:
        raise AnalysisError(f"--fail-on {fail_on!r} is not one of {', '.join(FAIL_ON)}")
    for name, v, lo in (("--last", last, 1), ("--history", history, 1)):
        if v is not None and v < lo:
            raise AnalysisError(f"{name} {v} must be at least {lo}")
    for name, v in (("--k", k), ("--min-rel", min_rel), ("--min-abs", min_abs)):
        if not math.isfinite(v) or v < 0:
            raise AnalysisError(f"{name} {v} must be a finite, non-negative number")
    families = _families(metrics)
    a = Archive.open(archive)
    runs = _select_runs(a.runs(), parse_labels(where))
    if not runs:
        raise AnalysisError(f"no run of {archive} has the labels {', '.join(where)}; "
                            "`aksnap archive list` shows every run's labels")
    pinned = _resolve_run(runs, baseline) if baseline else None
    n = len(runs)
    first_reported = max(1, n - last + 1) if last else 1
    ids = [r["run_id"] for r in runs]
    eng = SparkEngine(a, ids, master, spark) if engine == "spark" else DuckEngine(a, ids)
    try:
        eng.table("status_sets", status_sets_table())
        eng.table("selected_runs", pa.table({"run": ids, "pos": list(range(1, n + 1))}))
        eng.table("compare_params", pa.table({
            "history_runs": [history], "k": [float(k)], "min_rel": [float(min_rel)],
            "min_abs": [float(min_abs)], "min_history": [1 if pinned else min(MIN_HISTORY, history)],
            "baseline_run": pa.array([pinned], pa.string()), "first_reported": [first_reported]}))
        eng.view("metric_values", [eng.run(q) for q in families])
        table = eng.arrow(eng.run("compare_baseline"))
    finally:
        eng.close()
    rows = [r for r in table.to_pylist() if _wanted(r["metric"], metrics)]
    for r in rows:
        for c in ("value", "baseline", "mad", "delta", "rel_delta"):
            if r[c] is not None:
                r[c] = float(r[c])
        r["pos"], r["history"] = int(r["pos"]), int(r["history"])
    by_run = {r["run_id"]: r for r in runs}
    reported = ids[first_reported - 1:]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    flagged = sorted({r["run"] for r in rows if r["verdict"] == "regression"},
                     key=ids.index)
    failing = counts["regression"] if fail_on == "regression" else \
        counts["regression"] + counts["improvement"] + counts["changed"] if fail_on == "change" else 0
    return {
        "archive": str(archive), "engine": engine,
        "baseline": pinned or f"rolling median and MAD of the previous {history} runs",
        "runs": [{"run_id": i, "pos": p, "exported_at": by_run[i]["exported_at"],
                  "labels": by_run[i]["labels"], "tasks": by_run[i]["tasks"],
                  "regressions": sum(r["run"] == i and r["verdict"] == "regression" for r in rows)}
                 for p, i in enumerate(ids, 1) if p >= first_reported],
        "regressed_runs": flagged, "verdicts": counts, "fail_on": fail_on, "failing": failing,
        "trends": _trends(rows, reported), "rows": rows,
    }


def _trends(rows: list[dict[str, Any]], reported: list[str]) -> list[dict[str, Any]]:
    """Per (metric, scope): the values over the reported runs as a sparkline, the last value,
    its baseline and verdict, and the runs that regressed."""
    series: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        series.setdefault((r["metric"], r["scope"]), {})[r["run"]] = r
    out = []
    for (metric, scope), by_run in sorted(series.items()):
        vals = [by_run[i]["value"] if i in by_run else None for i in reported]
        present = [v for v in vals if v is not None]
        lo, hi = (min(present), max(present)) if present else (0.0, 0.0)
        spark = "".join(" " if v is None else SPARKS[0] if hi == lo else
                        SPARKS[min(7, int((v - lo) / (hi - lo) * 8))] for v in vals)
        last = by_run.get(reported[-1]) if reported else None
        out.append({"metric": metric, "scope": scope, "trend": spark, "min": lo, "max": hi,
                    "last": last["value"] if last else None,
                    "baseline": last["baseline"] if last else None,
                    "verdict": last["verdict"] if last else None,
                    "regressed_runs": [i for i in reported if i in by_run
                                       and by_run[i]["verdict"] == "regression"]})
    return out


def exit_code(data: dict[str, Any]) -> int:
    return 1 if data.get("failing") else 0


# -- rendering --------------------------------------------------------------------------------------

COLUMNS = ["run", "pos", "metric", "scope", "value", "baseline", "mad", "history", "delta",
           "rel_delta", "verdict", "better"]
TREND_COLUMNS = ["metric", "scope", "trend", "min", "max", "last", "baseline", "verdict",
                 "regressed_runs"]


def sections(data: dict[str, Any]) -> list[Section]:
    return [Section("rows", data["rows"], COLUMNS),
            Section("trends", data["trends"], TREND_COLUMNS),
            Section("runs", data["runs"], ["run_id", "pos", "exported_at", "labels", "tasks",
                                           "regressions"])]


def _regressions(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**r, "rel": "" if r["rel_delta"] is None else f"{r['rel_delta']:+.1%}"}
            for r in data["rows"] if r["verdict"] == "regression"]


REG_COLUMNS = ["run", "metric", "scope", "value", "baseline", "rel", "history"]


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    if fmt == "markdown":
        if section is not None:
            s = pick_section(sections(data), section)
            return markdown_table([{k: (" -> ".join(v) if isinstance(v, list) else v)
                                    for k, v in r.items()} for r in s.rows], s.csv_columns())
        c = data["verdicts"]
        out = [f"### aksnap compare: {md_cell(data['archive'])}", "",
               f"{len(data['runs'])} run(s) against the {md_cell(data['baseline'])}: "
               f"**{c['regression']} regression(s)** in {len(data['regressed_runs'])} run(s)"
               + (f" ({md_cell(', '.join(data['regressed_runs']))})" if data["regressed_runs"] else "")
               + "."]
        regs = _regressions(data)
        if regs:
            out += ["", markdown_table(regs, REG_COLUMNS)]
        return "\n".join(out)
    return render_data(data, fmt, sections, _table, section)


def _table(data: dict[str, Any]) -> str:
    c = data["verdicts"]
    head = [("archive", data["archive"]), ("engine", data["engine"]),
            ("runs", f"{len(data['runs'])} reported"), ("baseline", data["baseline"]),
            ("verdicts", ", ".join(f"{c[v]} {v}" for v in VERDICTS)),
            ("regressed runs", ", ".join(data["regressed_runs"]) or "none")]
    trends = [{**t, "regressed_runs": len(t["regressed_runs"])} for t in data["trends"]]
    return render_sections([
        ("Trends (one character per run, oldest first; the last run's verdict)", trends,
         TREND_COLUMNS),
        ("Regressions", _regressions(data), REG_COLUMNS)], head)
