"""The column catalogue (aksnap.columns): one entry per column of the format, and the modules
that used to spell a column fact for themselves (decode, redact, snapshot, task_view, the
writer, check, the open-time validation) read it instead.

Each test attacks one promise: a schema column without an entry, an entry without a column, a
fact the type contradicts; a reader or writer that would disagree with the catalogue."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from armonik.protogen.common import (
    partitions_common_pb2,
    results_common_pb2,
    sessions_common_pb2,
    tasks_common_pb2,
)

from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import failure_bundle, make_bundle, task
from aksnap.bundle import (
    MANIFEST,
    SCHEMAS,
    TABLES,
    BundleError,
    column_problems,
    parquet_writer_options,
    sha256_file,
)
from aksnap.columns import (
    CATALOGUE,
    DICTIONARY_COLUMNS,
    ID_COLUMN,
    NEVER_NULL,
    REDACTION,
    REQUIRED,
    TIMESTAMP_COLUMNS,
    catalogue_problems,
    columns,
)
from aksnap.exporter.decode import decode_page
from aksnap.redact import PLAN, plan_of


def test_every_column_of_the_format_has_exactly_one_entry_and_no_entry_is_spare():
    """Given the format's schemas, then the catalogue describes them exactly: every column has
    one entry, in the schema's order, each fact agreeing with the column's type."""
    assert catalogue_problems(SCHEMAS) == []
    for t in TABLES:
        assert [c.name for c in CATALOGUE[t]] == SCHEMAS[t].names


@pytest.mark.parametrize("attack,words", [
    (lambda s: {**s, "tasks": s["tasks"].append(pa.field("gpu_model", pa.string()))},
     "tasks.gpu_model has no catalogue entry"),
    (lambda s: {**s, "results": s["results"].remove(s["results"].get_field_index("size"))},
     "the catalogue's results.size names no column"),
    (lambda s: {**s, "tasks": s["tasks"].set(s["tasks"].get_field_index("pod_ttl"),
                                             pa.field("pod_ttl", pa.int64()))},
     "tasks.pod_ttl: the timestamp flag says True"),
    (lambda s: {**s, "sessions": s["sessions"].set(s["sessions"].get_field_index("duration"),
                                                   pa.field("duration", pa.timestamp("us", "UTC")))},
     "sessions.duration: the timestamp flag says False"),
    (lambda s: {**s, "tasks": s["tasks"].set(s["tasks"].get_field_index("retry_of_ids"),
                                             pa.field("retry_of_ids", pa.string()))},
     "tasks.retry_of_ids: id kind 'task[]' does not fit string"),
    (lambda s: {**s, "results": s["results"].set(s["results"].get_field_index("result_id"),
                                                 pa.field("result_id", pa.string()))},
     "results.result_id: required is True but the schema's field is nullable"),
    (lambda s: {k: v for k, v in s.items() if k != "partitions"},
     "table partitions is in the catalogue only"),
])
def test_a_schema_the_catalogue_does_not_describe_is_named(attack, words):
    """Given a schema with a column the catalogue does not list, without a column it lists, or
    whose type contradicts a fact (a timestamp flag, an id list, a required field), then the
    catalogue's check names the column and the fact."""
    problems = catalogue_problems(attack(SCHEMAS))
    assert any(words in p for p in problems), problems


def test_the_writer_and_check_encode_what_the_catalogue_says(tmp_path):
    """Given a bundle written by aksnap, then exactly the catalogue's dictionary columns are
    dictionary-encoded in every file (the writer's options and check's model both read it)."""
    b = failure_bundle(tmp_path / "b")
    for t in TABLES:
        opts = parquet_writer_options(t)["use_dictionary"]
        assert set(opts or ()) == set(columns(t, dictionary=True)) == set(DICTIONARY_COLUMNS[t])
        md = pq.ParquetFile(b / f"{t}.parquet").metadata
        if not md.num_row_groups:
            continue
        rg = md.row_group(0)
        encoded = {rg.column(i).path_in_schema for i in range(rg.num_columns)
                   if "RLE_DICTIONARY" in rg.column(i).encodings}
        assert encoded == set(DICTIONARY_COLUMNS[t]), t


def _wire_with_unset_times(table: str) -> bytes:
    """One row of ``table`` as the wire sends it, every timestamp the catalogue lists set to
    ArmoniK's "unset" (seconds = 0)."""
    unset = {c: {"seconds": 0} for c in TIMESTAMP_COLUMNS[table]}
    if table == "tasks":
        return tasks_common_pb2.ListTasksDetailedResponse(tasks=[tasks_common_pb2.TaskDetailed(
            id="t", session_id="s", status="TASK_STATUS_PENDING", **unset)], total=1).SerializeToString()
    if table == "results":
        return results_common_pb2.ListResultsResponse(results=[results_common_pb2.ResultRaw(
            result_id="r", session_id="s", status="RESULT_STATUS_CREATED", **unset)],
            total=1).SerializeToString()
    if table == "sessions":
        return sessions_common_pb2.ListSessionsResponse(sessions=[sessions_common_pb2.SessionRaw(
            session_id="s", status="SESSION_STATUS_RUNNING", **unset)], total=1).SerializeToString()
    return partitions_common_pb2.ListPartitionsResponse(partitions=[
        partitions_common_pb2.PartitionRaw(id="p", **unset)], total=1).SerializeToString()


@pytest.mark.parametrize("table", TABLES)
def test_decode_stores_every_unset_timestamp_of_the_catalogue_as_null(table):
    """Given a page whose every timestamp is seconds = 0 on the wire (pod_ttl and the
    sessions' lifecycle times included), when decoded, then every timestamp column the
    catalogue lists is null, never 1970-01-01."""
    row = decode_page(table, _wire_with_unset_times(table)).rows.to_pylist()[0]
    assert {c: row[c] for c in TIMESTAMP_COLUMNS[table]} == {c: None for c in TIMESTAMP_COLUMNS[table]}
    assert set(TIMESTAMP_COLUMNS[table]) == {f.name for f in SCHEMAS[table]
                                             if pa.types.is_timestamp(f.type)}


def test_redaction_plan_is_the_catalogues_and_fails_closed_on_what_it_does_not_list():
    """Given the catalogue, then redaction's plan is its rules, column by column; a column the
    catalogue does not list has no rule (even a number: nothing unlisted is copied), nor has
    a column whose rule is "keep" but whose type holds text."""
    for t in TABLES:
        assert PLAN[t] == REDACTION[t], t
    extra = SCHEMAS["tasks"].append(pa.field("gpu_count", pa.int64())).append(
        pa.field("gpu_model", pa.string()))
    plan = plan_of(extra, REDACTION["tasks"])
    assert plan["gpu_count"] is None and plan["gpu_model"] is None
    assert plan_of(SCHEMAS["results"], {**REDACTION["results"], "name": "keep"})["name"] is None


def test_the_never_null_columns_are_the_catalogues():
    """Given a row group with a null in every column, then the reader's column check names
    exactly the catalogue's never-null columns (ids, id lists, statuses)."""
    for t in TABLES:
        nulls = pa.table({f.name: pa.nulls(1, f.type) for f in SCHEMAS[t]})
        named = {c for c in SCHEMAS[t].names
                 for p in column_problems(t, nulls, "x") if f"whose {c} is null" in p}
        assert named == set(NEVER_NULL[t]), t


def _null_in(b, table: str, column: str) -> None:
    """Replace ``column`` of ``table`` by nulls and reseal the manifest (what an attacker does)."""
    import json

    f = b / f"{table}.parquet"
    t = pq.read_table(f)
    i = t.schema.get_field_index(column)
    t = t.set_column(i, t.schema.field(i).with_nullable(True), pa.nulls(t.num_rows, t.schema.field(i).type))
    pq.write_table(t, f)
    m = json.loads((b / MANIFEST).read_text())
    m["tables"][table].update(sha256=sha256_file(f), bytes=f.stat().st_size)
    (b / MANIFEST).write_text(json.dumps(m))


@pytest.mark.parametrize("table,column", [(t, c) for t in TABLES for c in REQUIRED[t]])
def test_every_open_refuses_a_null_in_a_required_column(tmp_path, table, column):
    """Given a bundle whose required column (the catalogue's: the row's id, session, status;
    the partitions' id too) holds nulls and whose manifest was resealed, when opened for
    analysis, then it is refused by name before any answer: the first SQL answer (of any
    table) and the graph raise, every time (the check runs at the first answer that reads a
    table rather than at open, so that ``select 1`` of 10M tasks waits for nothing)."""
    b = failure_bundle(tmp_path / "b")
    _null_in(b, table, column)
    why = f"{table}.parquet (\\(row group \\d+\\) )?has \\d+ rows whose {column} is null"
    with Snapshot.open(b, verify=False) as snap:
        with pytest.raises(BundleError, match=why):
            snap.sql("SELECT count(*) AS n FROM sessions")
        with pytest.raises(BundleError, match=why):
            snap.graph
        with pytest.raises(BundleError, match=why):
            snap.session_ids()


def test_an_id_prefix_resolves_against_the_catalogues_id_columns(tmp_path):
    """Given a bundle whose session has tasks but no session row, then a prefix of the session
    resolves (the tasks' session_id is a source of session ids), as prefixes of task and
    result ids do against their keys."""
    b = make_bundle(tmp_path / "b", tasks=[task("task-1", session="sess-1", outputs=["res-1"])],
                    results=[], sessions=[])
    with Snapshot.open(b) as snap:
        assert snap.resolve_id("session", "SESS") == "sess-1"
        assert snap.resolve_id("task", "task-") == "task-1"
        assert snap.resolve_id("result", "task-1-pay") == "task-1-payload"
    assert ID_COLUMN == {"sessions": "session_id", "tasks": "task_id", "results": "result_id",
                         "partitions": "partition_id"}


def test_every_column_of_the_catalogue_is_documented():
    """Given docs/bundle-format.md, then each table's section names every column of the
    catalogue (a column added to the format without its documentation fails here)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "bundle-format.md").read_text()
    for t in TABLES:
        m = re.search(rf"^## `{t}\.parquet`.*?(?=^## )", doc, re.S | re.M)
        assert m, f"docs/bundle-format.md has no section for {t}.parquet"
        missing = [c.name for c in CATALOGUE[t] if f"`{c.name}`" not in m.group(0)]
        assert not missing, f"{t}.parquet's section does not document {missing}"
