"""Decoding: raw ArmoniK list responses, built by hand here, become bundle-schema rows.

No server involved: the messages are serialized with the armonik protos and decoded by
``aksnap.exporter.decode`` exactly as a page from the wire would be.
"""

from datetime import datetime, timedelta, timezone

import pyarrow as pa
from armonik.protogen.common import (
    objects_pb2,
    partitions_common_pb2,
    results_common_pb2,
    sessions_common_pb2,
    tasks_common_pb2,
)

from aksnap.bundle import SCHEMAS
from aksnap.exporter.decode import decode_page

UTC = timezone.utc


def _task(**kw):
    base = dict(
        id="0a-task", session_id="s1", owner_pod_id="pod", initial_task_id="0a-task",
        parent_task_ids=["s1"], data_dependencies=["r1", "r2"], expected_output_ids=["r3"],
        status="TASK_STATUS_COMPLETED", status_message="", payload_id="p1", created_by="",
        pod_hostname="host",
        options=objects_pb2.TaskOptions(max_duration={"seconds": 60}, max_retries=2, priority=3,
                                        partition_id="gpu", application_name="app",
                                        options={"k": "v"}),
        created_at={"seconds": 1_700_000_000, "nanos": 250_000_000},
        submitted_at={"seconds": 0},  # ArmoniK's "unset"
        ended_at={"seconds": 1_700_000_010},
        creation_to_end_duration={"seconds": 10},
        output=tasks_common_pb2.TaskDetailed.Output(success=False, error="boom"),
    )
    base.update(kw)
    return tasks_common_pb2.TaskDetailed(**base)


def test_task_page_decodes_every_field():
    """Given a ListTasksDetailedResponse with one task and total=7,
    when decoded, then the row has the bundle schema, the prefix-free status, null for the
    epoch timestamp and for absent ones, flattened options and list columns."""
    raw = tasks_common_pb2.ListTasksDetailedResponse(tasks=[_task()], page=0, page_size=10,
                                                     total=7).SerializeToString()
    page = decode_page("tasks", raw)
    assert page.total == 7 and page.nbytes == len(raw)
    assert page.rows.schema.equals(SCHEMAS["tasks"])
    row = page.rows.to_pylist()[0]
    assert row["task_id"] == "0a-task" and row["status"] == "COMPLETED"
    assert row["created_at"] == datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)
    assert row["submitted_at"] is None  # seconds=0 on the wire
    assert row["started_at"] is None    # absent on the wire
    assert row["ended_at"] == datetime(2023, 11, 14, 22, 13, 30, tzinfo=UTC)
    assert row["data_dependencies"] == ["r1", "r2"] and row["retry_of_ids"] == []
    assert row["parent_task_ids"] == ["s1"]
    assert row["partition_id"] == "gpu" and row["priority"] == 3 and row["max_retries"] == 2
    assert row["max_duration"] == timedelta(seconds=60)
    assert row["options"] == [("k", "v")]
    assert row["output_success"] is False and row["output_error"] == "boom"
    assert row["creation_to_end_duration"] == timedelta(seconds=10)
    assert row["processing_to_end_duration"] is None
    assert row["created_by"] == "" and row["status_message"] == ""


def test_task_without_output_or_options_gives_nulls():
    """A task whose output and options messages are absent decodes to nulls, not defaults."""
    t = tasks_common_pb2.TaskDetailed(id="1", session_id="s", status="TASK_STATUS_PENDING")
    raw = tasks_common_pb2.ListTasksDetailedResponse(tasks=[t, _task(id="2")],
                                                     total=2).SerializeToString()
    rows = decode_page("tasks", raw).rows.to_pylist()
    assert rows[0]["status"] == "PENDING"
    assert rows[0]["output_success"] is None and rows[0]["output_error"] is None
    assert rows[0]["partition_id"] is None and rows[0]["max_duration"] is None
    assert rows[1]["output_error"] == "boom" and rows[1]["partition_id"] == "gpu"


def test_empty_page_keeps_the_total():
    raw = tasks_common_pb2.ListTasksDetailedResponse(total=12345).SerializeToString()
    page = decode_page("tasks", raw)
    assert page.rows.num_rows == 0 and page.total == 12345


def test_results_sessions_partitions():
    r = results_common_pb2.ResultRaw(
        result_id="r1", session_id="s1", name="out", owner_task_id="t1", created_by="t0",
        status="RESULT_STATUS_CREATED", created_at={"seconds": 1_700_000_000},
        completed_at={"seconds": 0}, size=42, opaque_id=b"\x00\x01", manual_deletion=True)
    rows = decode_page("results", results_common_pb2.ListResultsResponse(
        results=[r], total=1).SerializeToString()).rows
    assert rows.schema.equals(SCHEMAS["results"])
    row = rows.to_pylist()[0]
    assert row["status"] == "CREATED" and row["completed_at"] is None
    assert row["opaque_id"] == b"\x00\x01" and row["size"] == 42 and row["manual_deletion"]

    s = sessions_common_pb2.SessionRaw(
        session_id="s1", status="SESSION_STATUS_CANCELLED", partition_ids=["a", "b"],
        client_submission=True, options=objects_pb2.TaskOptions(partition_id="a", priority=2,
                                                                options={"x": "y"}),
        created_at={"seconds": 1_700_000_000}, cancelled_at={"seconds": 1_700_000_100},
        closed_at={"seconds": 0}, duration={"seconds": 100})
    rows = decode_page("sessions", sessions_common_pb2.ListSessionsResponse(
        sessions=[s], total=1).SerializeToString()).rows
    assert rows.schema.equals(SCHEMAS["sessions"])
    row = rows.to_pylist()[0]
    assert row["status"] == "CANCELLED" and row["partition_ids"] == ["a", "b"]
    assert row["options"]["partition_id"] == "a" and row["options"]["options"] == [("x", "y")]
    assert row["closed_at"] is None and row["duration"] == timedelta(seconds=100)

    p = partitions_common_pb2.PartitionRaw(id="a", parent_partition_ids=["root"], pod_reserved=1,
                                           pod_max=10, priority=3, preemption_percentage=50,
                                           pod_configuration={"image": "x"})
    rows = decode_page("partitions", partitions_common_pb2.ListPartitionsResponse(
        partitions=[p], total=1).SerializeToString()).rows
    assert rows.schema.equals(SCHEMAS["partitions"])
    assert rows.to_pylist()[0] == {
        "partition_id": "a", "parent_partition_ids": ["root"], "pod_reserved": 1, "pod_max": 10,
        "priority": 3, "preemption_percentage": 50, "pod_configuration": [("image", "x")]}


def test_decode_builds_no_python_message_per_row(monkeypatch):
    """The hot path never calls FromString on the response or on tasks."""
    raw = tasks_common_pb2.ListTasksDetailedResponse(
        tasks=[_task(id=f"{i:x}") for i in range(50)], total=50).SerializeToString()

    def boom(*a, **k):
        raise AssertionError("a Python message was built")

    monkeypatch.setattr(tasks_common_pb2.ListTasksDetailedResponse, "FromString", boom, raising=False)
    monkeypatch.setattr(tasks_common_pb2.TaskDetailed, "FromString", boom, raising=False)
    assert decode_page("tasks", raw).rows.num_rows == 50


def test_every_field_the_api_gives_has_a_column():
    """Each field of TaskDetailed, ResultRaw, SessionRaw and PartitionRaw (and of TaskOptions,
    TaskDetailed.Output) lands in a bundle column: a new field in a future armonik release
    makes this fail instead of being dropped silently."""
    cases = [
        (tasks_common_pb2.TaskDetailed, "tasks", {"id": "task_id", "options": None, "output": None}),
        (results_common_pb2.ResultRaw, "results", {}),
        (sessions_common_pb2.SessionRaw, "sessions", {}),
        (partitions_common_pb2.PartitionRaw, "partitions", {"id": "partition_id"}),
    ]
    for message, table, renames in cases:
        columns = set(SCHEMAS[table].names)
        for f in message.DESCRIPTOR.fields:
            if f.name in renames:
                if renames[f.name]:
                    assert renames[f.name] in columns
                continue
            assert f.name in columns, f"{message.__name__}.{f.name} has no column in {table}"
    task_columns = set(SCHEMAS["tasks"].names)
    for f in objects_pb2.TaskOptions.DESCRIPTOR.fields:
        assert f.name in task_columns, f"TaskOptions.{f.name} is not flattened into tasks"
    for f in tasks_common_pb2.TaskDetailed.Output.DESCRIPTOR.fields:
        assert f"output_{f.name}" in task_columns


def test_an_id_hashes_the_same_whatever_page_it_comes_in():
    """Given GUIDs and ids of other lengths, when hashed alone, in a page of GUIDs only, in a
    mixed page or from a slice, then each id gets one hash (dedup compares hashes across
    pages), distinct ids get distinct hashes, and nothing is built per row in Python."""
    import uuid

    from aksnap.exporter.scan import id_hashes

    guids = [str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15) % 2**128)) for i in range(5000)]
    alone = id_hashes(pa.array(guids))
    assert len(set(alone.tolist())) == len(guids)
    mixed = pa.array(["x", "task-7", None, *guids[:3], ""])
    h = id_hashes(mixed)
    assert h[3:6].tolist() == alone[:3].tolist()
    assert id_hashes(mixed.slice(1, 1)).tolist() == [h[1]] == id_hashes(pa.array(["task-7"])).tolist()
    assert id_hashes(pa.array(guids).slice(100, 7)).tolist() == alone[100:107].tolist()
    assert id_hashes(pa.array(guids, pa.large_string()))[:3].tolist() == alone[:3].tolist()
    assert len({h[0], h[1], h[3]}) == 3


def test_a_resized_page_still_starts_at_the_offset():
    """Given offset paging (page = offset // size), when a page size is halved or reduced,
    then the new size divides the offset, so no row is repeated or skipped."""
    from aksnap.exporter.scan import aligned

    assert aligned(0, 699) == 699
    assert aligned(8192, 2048) == 2048          # powers of two: any smaller one divides
    for offset, size in [(2796, 1398), (2796 + 1398, 699), (4194, 349), (375, 62)]:
        new = aligned(offset, size)
        assert 1 <= new <= size and offset % new == 0
