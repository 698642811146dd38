"""One vocabulary and one manifest: the status sets, timestamps and phases are defined once in
``aksnap.bundle`` and Python and SQL agree on them; the manifest round-trips through its typed
class and the analyzer reads no key the writer does not write."""

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aksnap import queries
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import at, make_bundle, result, task
from aksnap.bundle import (
    PHASE_NAMES,
    STATUS_DOMAIN,
    STATUS_SETS,
    TASK_LOST_STATUSES,
    TASK_OPEN_STATUSES,
    TASK_PHASES,
    TASK_STATUSES,
    Manifest,
    read_manifest,
    status_sets_table,
)
from aksnap.columns import SET_NAMES, TASK_PARTITION
from aksnap.cli import app

ROOT = Path(__file__).resolve().parent.parent


def test_the_task_phases_view_is_the_vocabularys_phases():
    """Given queries/_views.sql, then task_phases has exactly TASK_PHASES, in order, each the
    difference of the vocabulary's two timestamps."""
    sql = queries.text("_views")
    found = re.findall(r"\(epoch_us\((\w+)\) - epoch_us\((\w+)\)\) / 1e6 AS (\w+)", sql)
    phases = [(name, start, end) for end, start, name in found if name != "total"]
    assert tuple(phases) == TASK_PHASES


def test_phase_percentiles_lists_the_phases_in_order():
    names = re.findall(r"\d+(?: AS k)?, '(\w+)'", queries.text("phase_percentiles"))
    assert tuple(names) == (*PHASE_NAMES, "total")


def test_no_query_spells_a_status_set():
    """A status set in SQL comes from the status_sets table, never from a literal list
    (``status IN ('ERROR', ...)`` drifted from the graph's sets before)."""
    names = "|".join(TASK_STATUSES)
    for name in queries.names():
        body = "\n".join(l for l in queries.text(name).splitlines() if not l.lstrip().startswith("--"))
        assert not re.search(rf"IN \(\s*'({names})'\s*,", body), name


def test_the_sets_partition_the_statuses():
    """Given the vocabulary's task sets, then success, failed, retried, cancelled and open
    partition the statuses (each status in exactly one), final is the first four, waiting and
    in progress are open, lost is failed + cancelled + CANCELLING; every set is a subset of its
    table's vocabulary; and the status_sets table SQL reads says the same, row by row."""
    sets = STATUS_SETS["tasks"]
    for st in TASK_STATUSES:
        assert sum(st in sets[k] for k in TASK_PARTITION) == 1, st
    assert set(sets["final"]) == set(TASK_STATUSES) - set(sets["open"])
    assert set(sets["final"]) == {s for k in TASK_PARTITION if k != "open" for s in sets[k]}
    assert set(sets["waiting"]) | set(sets["in_progress"]) < set(TASK_OPEN_STATUSES)
    assert set(TASK_LOST_STATUSES) == set(sets["failed"]) | set(sets["cancelled"]) | {"CANCELLING"}
    assert set(sets["failed"]) == {"ERROR", "TIMEOUT"} and "RETRIED" not in TASK_LOST_STATUSES
    assert "CANCELLING" in TASK_OPEN_STATUSES and "PROCESSED" in TASK_OPEN_STATUSES
    results = STATUS_SETS["results"]
    assert set(results["final"]) == set(STATUS_DOMAIN["results"]) - set(results["open"])
    for table, named in STATUS_SETS.items():
        for name, members in named.items():
            assert name in SET_NAMES and set(members) <= set(STATUS_DOMAIN[table]), (table, name)
    rows = status_sets_table().to_pylist()
    for r in rows:
        for name in SET_NAMES:
            assert r[name] == (r["status"] in STATUS_SETS[r["tbl"]].get(name, ())), (r, name)
    assert len(rows) == sum(len(STATUS_DOMAIN[t]) for t in STATUS_SETS)


def cancelled_session(tmp_path):
    """s1: t1 COMPLETED at 8 s (r1 completed at 8), t2 CANCELLING, t3 CANCELLED at 11.3 s,
    t4 PENDING. Wall time: 0 -> 11.3 s."""
    return make_bundle(tmp_path / "b", tasks=[
        task("t1", outputs=["r1"], times=dict(created=0, submitted=1, acquired=2, fetched=2.5,
                                              started=3, processed=7.5, ended=8)),
        task("t2", status="CANCELLING", outputs=["r2"], times=dict(created=0, submitted=1)),
        task("t3", status="CANCELLED", outputs=["r3"], times=dict(created=0, submitted=1, ended=11.3)),
        task("t4", status="PENDING", deps=["r2"], outputs=["r4"], times=dict(created=0)),
    ], results=[result("r1", owner="t1", completed=8), result("r2", owner="t2", status="CREATED"),
                result("r3", owner="t3", status="ABORTED"), result("r4", owner="t4", status="CREATED")])


def test_analyze_and_critical_path_agree_on_the_wall_time(tmp_path):
    """Given a cancelled session whose last result completed at 8 s and whose last task ended
    at 11.3 s, then analyze and critical-path both say 11.3 s, and the critical path's
    segments tile it (3.3 s after the last result)."""
    from aksnap.analyzer import critical_path, overview

    b = cancelled_session(tmp_path)
    r = CliRunner().invoke(app, ["analyze", str(b)])
    assert r.exit_code == 0 and "11.3" in r.output, r.output
    with Snapshot.open(b) as snap:
        s = overview.build(snap, "s1")["sessions"][0]
        assert s["elapsed_s"] == pytest.approx(11.3)
        cp = critical_path.build(snap, "s1")
    cp = cp["sessions"][0] if "sessions" in cp else cp
    assert cp["wall_s"] == pytest.approx(11.3)
    assert sum(t["seconds"] for t in cp["totals"]) == pytest.approx(11.3)
    assert {t["segment"]: t["seconds"] for t in cp["totals"]}["after the last result"] == pytest.approx(3.3)


def test_counts_use_the_same_sets_as_the_graph(tmp_path):
    """Given a session with a COMPLETED, a CANCELLING, a CANCELLED and a PENDING task, then no
    task failed (cancelling is not a failure), one is cancelled, two are open (CANCELLING is
    not final yet), and the graph's bad tasks are the lost set (cancelled and cancelling: both
    will never deliver) in SQL as in the graph; throughput counts ended tasks."""
    b = cancelled_session(tmp_path)
    with Snapshot.open(b) as snap:
        row = snap.query("session_summary").to_pylist()[0]
        g = snap.graph
        assert row["failed"] == 0 and row["cancelled"] == 1
        assert row["running"] == 2 and row["completed"] == 1 and row["retried"] == 0
        lost = snap.scalar("SELECT count(*) FROM tasks JOIN status_sets v ON v.tbl = 'tasks' "
                           "AND v.status = tasks.status WHERE v.lost")
        assert lost == int(g.bad[: g.n_tasks].sum()) == 2
        assert row["avg_throughput"] == pytest.approx(2 / 11.3)  # t1 and t3 ended


def test_the_manifest_round_trips_through_its_class(tmp_path):
    b = cancelled_session(tmp_path)
    m = read_manifest(b)
    again = Manifest.from_dict(m.to_dict())
    assert again == m and again.to_dict() == m.to_dict()
    extra = Manifest.from_dict({**m.to_dict(), "future_field": {"x": 1}})
    assert extra.extra == {"future_field": {"x": 1}}
    assert extra.to_dict()["future_field"] == {"x": 1}


def test_the_analyzer_reads_no_manifest_key_the_writer_does_not_write():
    """Every ``.manifest.X`` the analyzer reads is a field of the typed Manifest, and every
    such field is one the exporter fills (exporter/*.py names it)."""
    written = {f.name for f in fields(Manifest)} - {"extra"}
    exporter_src = "\n".join(p.read_text() for p in (ROOT / "exporter").glob("*.py"))
    read = set()
    for path in (ROOT / "analyzer").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and node.value.attr == "manifest":
                read.add(node.attr)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "get" and isinstance(node.func.value, ast.Attribute) \
                    and node.func.value.attr == "manifest":
                pytest.fail(f"{path.name} reads the manifest by key: use the typed Manifest")
    assert read <= written, read - written
    for name in read - {"tables", "format_version", "written_at"}:
        assert re.search(rf"\b{name}\b", exporter_src), f"the exporter never writes {name}"
