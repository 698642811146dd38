"""The random ids are written without statistics and delta-length encoded (issue 21 item 4),
and ``aksnap check`` still accounts for every byte: of such files, and of the bundles written
before, whose ids are plain with statistics.
"""

from __future__ import annotations

import pyarrow.parquet as pq

from aksnap import bundle_writer
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import failure_bundle
from aksnap.bundle import DICTIONARY_COLUMNS, GUID_COLUMNS, TABLES, verify_bundle


def _chunks(path):
    md = pq.ParquetFile(path).metadata
    for g in range(md.num_row_groups):
        for c in range(md.row_group(g).num_columns):
            yield md.row_group(g).column(c)


def test_the_id_columns_carry_no_statistics_and_are_delta_length_encoded(tmp_path):
    """Given a bundle written by the bundle writer, then every leaf of a task or result id
    column (lists included) has no statistics and only DELTA_LENGTH_BYTE_ARRAY data pages,
    the other columns keep their statistics, and check finds nothing."""
    b = failure_bundle(tmp_path / "b")
    seen = set()
    for table in ("tasks", "results"):
        for ch in _chunks(b / f"{table}.parquet"):
            top = ch.path_in_schema.split(".")[0]
            if top in GUID_COLUMNS[table]:
                seen.add((table, top))
                assert not ch.is_stats_set, ch.path_in_schema
                assert "DELTA_LENGTH_BYTE_ARRAY" in ch.encodings and "PLAIN" not in ch.encodings
            elif top in ("status", "created_at"):
                assert ch.is_stats_set, ch.path_in_schema
    assert {("tasks", "task_id"), ("tasks", "data_dependencies"), ("tasks", "parent_task_ids"),
            ("results", "result_id"), ("results", "owner_task_id")} <= seen
    assert not set(GUID_COLUMNS["tasks"]) & set(DICTIONARY_COLUMNS["tasks"])
    assert verify_bundle(b, thorough=True) == []


def test_a_bundle_written_before_with_plain_ids_and_statistics_still_checks_and_opens(tmp_path, monkeypatch):
    """Given a bundle written with the settings before issue 21 (plain ids with min/max
    statistics), when checked and opened, then check finds nothing and the graph is built."""
    def before(table):
        return {"compression": "zstd", "use_dictionary": DICTIONARY_COLUMNS[table] or False,
                "write_page_checksum": True, "write_statistics": True, "write_page_index": False}

    monkeypatch.setattr(bundle_writer, "parquet_writer_options", before)
    b = failure_bundle(tmp_path / "b")
    monkeypatch.undo()
    task_id = next(ch for ch in _chunks(b / "tasks.parquet") if ch.path_in_schema == "task_id")
    assert task_id.is_stats_set and "PLAIN" in task_id.encodings
    assert verify_bundle(b, thorough=True) == []
    with Snapshot.open(b) as snap:
        assert snap.graph.n_tasks == snap.manifest.tables["tasks"].rows
    assert TABLES
