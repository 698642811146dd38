"""`aksnap archive add`: many runs in one hive-partitioned Parquet dataset that other tools read
without aksnap; idempotent, atomic per run, checksums verified on the way in."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest
from typer.testing import CliRunner

from aksnap.analyzer import archive
from aksnap.analyzer.snapshot import AnalysisError
from aksnap.analyzer.testing import failure_bundle, make_bundle, result, task
from aksnap.bundle import BundleError
from aksnap.cli import app

runner = CliRunner()


def small(path, day: int, n: int = 3):
    """A run of n completed tasks exported `day` days after T0 (so each run has its own id)."""
    return make_bundle(path, tasks=[task(f"t{i}", outputs=[f"r{i}"],
                                         times=dict(created=0, submitted=1, acquired=1, fetched=1,
                                                    started=2, processed=3 + i, ended=4 + i))
                                    for i in range(n)],
                       results=[result(f"r{i}", owner=f"t{i}", completed=4 + i) for i in range(n)],
                       snapshot=day * 86400.0 + 100)


def test_adding_a_bundle_lays_it_out_by_table_and_run_with_a_runs_row(tmp_path):
    """Given a bundle, when added with labels, then each table is under <table>/run=<id>/, the
    runs table names it with its labels and counts, and the id starts with its export time."""
    b = failure_bundle(tmp_path / "f.aksnap")
    rows = archive.add(tmp_path / "arc", [b], ["env=nightly", "branch=main"])
    assert rows[0]["status"] == "added"
    rid = rows[0]["run_id"]
    assert rid.startswith("20260101T120140Z-")
    for table in ("tasks", "results", "sessions", "partitions", "labels", "runs"):
        assert (tmp_path / "arc" / table / f"run={rid}" / "part-0.parquet").is_file(), table
    # the bundle's files are copied byte for byte
    assert (tmp_path / "arc" / "tasks" / f"run={rid}" / "part-0.parquet").read_bytes() == \
        (b / "tasks.parquet").read_bytes()
    run = archive.runs(tmp_path / "arc")[0]
    assert run["run_id"] == rid and run["tasks"] == 14 and run["sessions"] == 2
    assert json.loads(run["labels"]) == {"env": "nightly", "branch": "main"}
    assert not [p for p in (tmp_path / "arc").iterdir() if p.name.startswith(".staging")]


def test_adding_the_same_bundle_twice_adds_it_once(tmp_path):
    b = small(tmp_path / "b", 1)
    first = archive.add(tmp_path / "arc", [b])
    again = archive.add(tmp_path / "arc", [b, b])
    assert [r["status"] for r in again] == ["already present", "already present"]
    assert {r["run_id"] for r in again} == {first[0]["run_id"]}
    assert len(archive.runs(tmp_path / "arc")) == 1


def test_duckdb_pandas_and_pyarrow_read_the_archive_without_aksnap(tmp_path):
    """Given an archive of two runs, then plain DuckDB (hive partitioning), pyarrow datasets and
    pandas read every table with a run column, and join tasks to runs by it."""
    arc = tmp_path / "arc"
    archive.add(arc, [small(tmp_path / "b1", 1, 3), small(tmp_path / "b2", 2, 5)], ["env=ci"])
    con = duckdb.connect()
    got = con.sql(f"""
        SELECT r.run_id, count(*) AS tasks
        FROM read_parquet('{arc}/tasks/*/*.parquet', hive_partitioning = true) t
        JOIN read_parquet('{arc}/runs/*/*.parquet', hive_partitioning = true) r ON t.run = r.run_id
        GROUP BY ALL ORDER BY 1""").fetchall()
    assert [n for _, n in got] == [3, 5]
    table = ds.dataset(arc / "tasks", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 8 and "run" in table.column_names
    pd = pytest.importorskip("pandas")
    frame = pd.read_parquet(arc / "results")
    assert set(frame["run"].astype(str)) == {r for r, _ in got}


def test_a_damaged_bundle_is_refused_and_leaves_nothing(tmp_path):
    """Given a bundle whose tasks file changed after the export (same size, other bytes), when
    added, then it is refused by its checksum in one sentence and no file of it stays."""
    import pyarrow.parquet as pq

    b = small(tmp_path / "b", 1)
    f = b / "tasks.parquet"
    meta = pq.ParquetFile(f).metadata.row_group(0)
    col = [meta.column(i) for i in range(meta.num_columns)
           if meta.column(i).path_in_schema == "pod_hostname"][0]  # a column no check reads
    data = bytearray(f.read_bytes())
    data[col.data_page_offset + col.total_compressed_size - 1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="fails its checksum"):
        archive.add(tmp_path / "arc", [b])
    assert archive.Archive.open(tmp_path / "arc").run_ids() == []
    leftovers = [p for p in (tmp_path / "arc").rglob("*.parquet")]
    assert leftovers == []
    r = runner.invoke(app, ["archive", "add", str(tmp_path / "arc"), str(b)])
    assert r.exit_code == 2 and "fails its checksum" in r.stderr and r.stderr.count("\n") == 1


def test_a_run_left_half_written_is_ignored_then_replaced(tmp_path):
    """Given tasks/run=<id>/ left by an add that died before its runs row, then readers do not
    see that run, and adding the bundle again writes it whole."""
    b = small(tmp_path / "b", 1)
    arc = tmp_path / "arc"
    rid = archive.add(arc, [b])[0]["run_id"]
    for name in ("runs", "labels"):
        for p in (arc / name / f"run={rid}").iterdir():
            p.unlink()
        (arc / name / f"run={rid}").rmdir()
    (arc / "tasks" / f"run={rid}" / "part-0.parquet").write_bytes(b"half a file")
    assert archive.Archive.open(arc).run_ids() == []
    assert archive.add(arc, [b])[0]["status"] == "added"
    con = archive.Archive.open(arc).connect()
    assert con.execute("SELECT count(*) FROM tasks").fetchall()[0][0] == 3


def test_the_cli_adds_and_lists_with_every_output(tmp_path):
    arc = tmp_path / "arc"
    b = small(tmp_path / "b", 3)
    r = runner.invoke(app, ["archive", "add", str(arc), str(b), "--label", "env=nightly", "-o", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["labels"] == {"env": "nightly"}
    r = runner.invoke(app, ["archive", "list", str(arc), "-o", "csv"])
    assert r.exit_code == 0 and r.stdout.startswith("run_id,") and "env" in r.stdout


@pytest.mark.parametrize("argv, words", [
    (["archive", "add", "{arc}", "{b}", "--label", "nolabel"], "is not key=value"),
    (["archive", "list", "{missing}"], "no archive at"),
    (["archive", "add", "{notarc}", "{b}"], "is not an aksnap archive"),
    (["archive", "add", "{arc}", "{missing}"], "no bundle at"),
])
def test_bad_input_is_one_sentence(argv, words, tmp_path):
    b = small(tmp_path / "b", 1)
    notarc = tmp_path / "notarc"
    notarc.mkdir()
    (notarc / "something.txt").write_text("mine")
    argv = [a.format(arc=tmp_path / "arc", b=b, missing=tmp_path / "missing", notarc=notarc)
            for a in argv]
    r = runner.invoke(app, argv)
    assert r.exit_code == 2 and words in r.stderr and r.stderr.count("\n") == 1, r.output
    assert (notarc / "something.txt").read_text() == "mine"


def test_an_archive_of_another_version_is_refused(tmp_path):
    arc = tmp_path / "arc"
    archive.add(arc, [small(tmp_path / "b", 1)])
    (arc / "archive.json").write_text(json.dumps({"format": "aksnap-archive", "version": 99}))
    with pytest.raises(AnalysisError, match="archive version 99"):
        archive.Archive.open(arc)
    assert os.path.isdir(Path(arc) / "runs")


def test_a_packed_file_of_a_bundle_is_the_same_run(tmp_path):
    """Given a bundle and the packed file of it, when both are added, then the second is the
    same run (the id comes from the manifest, not from the file that carried it)."""
    pack = pytest.importorskip("aksnap.pack")
    b = small(tmp_path / "b", 1)
    packed = pack.pack(b, tmp_path / "b.aksnap").path
    rows = archive.add(tmp_path / "arc", [b, packed])
    assert [r["status"] for r in rows] == ["added", "already present"]
    assert rows[0]["run_id"] == rows[1]["run_id"]
