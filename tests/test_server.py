"""The simulated control plane answers the real `armonik` client like a small ArmoniK cluster.

Every test goes through real gRPC on loopback against the tiny cluster drawn in
``test_server_support``.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import grpc
import pytest
from armonik.client import (
    ArmoniKPartitions,
    ArmoniKResults,
    ArmoniKSessions,
    ArmoniKTasks,
    ArmoniKVersions,
)
from armonik.common import Direction, Partition, Result, ResultStatus, Session, Task, TaskStatus
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import (
    filters_common_pb2,
    sort_direction_pb2,
    tasks_common_pb2,
    tasks_fields_pb2,
    tasks_filters_pb2,
)

from aksnap.fixtures.server import SIMULATED_CORE_VERSION, SimulatedControlPlane

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: find the sibling helper
from test_server_support import S1, S2, T0, tiny_cluster  # noqa: E402


@pytest.fixture(scope="module")
def channel():
    with SimulatedControlPlane(tiny_cluster()) as cp:
        endpoint = cp.start()
        with grpc.insecure_channel(endpoint) as ch:
            yield ch


@pytest.fixture(scope="module")
def tasks(channel):
    return ArmoniKTasks(channel)


def ids(listing):
    return [t.id for t in listing[1]]


def at(offset):
    return dt.datetime.fromtimestamp(T0 + offset, tz=dt.timezone.utc)


# --- listing, paging, counting ------------------------------------------------------------------

def test_list_tasks_detailed_returns_every_task_sorted_by_id_with_total(tasks):
    total, listed = tasks.list_tasks()
    assert total == 5
    assert [t.id for t in listed] == ["0a-task", "1b-task", "2c-task", "3d-task", "4e-task"]
    first = listed[0]
    assert first.session_id == S1 and first.expected_output_ids == ["r0"]
    assert first.options.options == {"tier": "gold"} and first.options.priority == 1


def test_offset_paging_skips_page_times_page_size_and_counts_total_separately(tasks):
    assert ids(tasks.list_tasks(page=0, page_size=2)) == ["0a-task", "1b-task"]
    assert ids(tasks.list_tasks(page=1, page_size=2)) == ["2c-task", "3d-task"]
    assert tasks.list_tasks(page=2, page_size=2) == (5, tasks.list_tasks(page=2, page_size=2)[1])
    assert ids(tasks.list_tasks(page=2, page_size=2)) == ["4e-task"]
    total, rows = tasks.list_tasks(page=7, page_size=2)
    assert (total, rows) == (5, [])


def test_page_size_zero_is_a_count_only_query(tasks):
    total, rows = tasks.list_tasks(Task.session_id == S1, page_size=0)
    assert total == 4 and rows == []


def test_summary_listing_carries_id_list_counts_and_error_only_for_error_tasks(channel):
    stub = TasksStub(channel)
    request = tasks_common_pb2.ListTasksRequest(
        page=0, page_size=10, filters=tasks_filters_pb2.Filters(),
        sort=tasks_common_pb2.ListTasksRequest.Sort(
            field=tasks_fields_pb2.TaskField(task_summary_field={"field": 16}), direction=1))
    rows = {t.id: t for t in stub.ListTasks(request).tasks}
    assert rows["2c-task"].count_data_dependencies == 1
    assert rows["2c-task"].count_expected_output_ids == 1
    assert rows["0a-task"].count_parent_task_ids == 1
    assert rows["1b-task"].error == "boom"
    assert rows["0a-task"].error == ""


def test_summary_listing_through_the_client(tasks):
    total, rows = tasks.list_tasks(Task.status == TaskStatus.ERROR, detailed=False)
    assert total == 1 and rows[0].id == "1b-task"


def test_count_tasks_by_status_counts_the_filtered_tasks(tasks):
    assert tasks.count_tasks_by_status() == {
        TaskStatus.COMPLETED: 1, TaskStatus.ERROR: 1, TaskStatus.PENDING: 1,
        TaskStatus.PROCESSING: 1, TaskStatus.CANCELLED: 1,
    }
    assert tasks.count_tasks_by_status(Task.session_id == S2) == {TaskStatus.CANCELLED: 1}


# --- filters ----------------------------------------------------------------------------------

@pytest.mark.parametrize("task_filter, expected", [
    (Task.status == TaskStatus.ERROR, ["1b-task"]),
    (Task.status != TaskStatus.COMPLETED, ["1b-task", "2c-task", "3d-task", "4e-task"]),
    (Task.session_id == S2, ["4e-task"]),
    (Task.id.startswith("3"), ["3d-task"]),
    (Task.id.endswith("e-task"), ["4e-task"]),
    (Task.pod_hostname.contains("pod"), ["0a-task", "1b-task", "3d-task"]),
    (~Task.pod_hostname.contains("gpu"), ["0a-task", "1b-task", "2c-task", "4e-task"]),
    (Task.payload_id == "p2", ["2c-task"]),
    (Task.output.error == "boom", ["1b-task"]),
    (Task.options.priority >= 2, ["1b-task", "2c-task"]),
    (Task.options.priority < 2, ["0a-task", "3d-task", "4e-task"]),
    (Task.options.partition_id == "gpu", ["3d-task"]),
    (Task.options.max_retries == 2, ["0a-task", "1b-task", "2c-task", "3d-task", "4e-task"]),
    (Task.options.max_duration > dt.timedelta(seconds=59), ["0a-task", "1b-task", "2c-task", "3d-task", "4e-task"]),
    (Task.options["tier"] == "gold", ["0a-task", "4e-task"]),
    (Task.options["tier"] != "gold", ["1b-task", "2c-task", "3d-task"]),  # missing key counts as "not gold"
    (Task.options["tier"].startswith("s"), ["1b-task"]),
    (Task.created_at >= at(3), ["2c-task", "3d-task", "4e-task"]),
    (Task.created_at < at(1), ["0a-task"]),
    (Task.started_at <= at(5), ["0a-task", "1b-task"]),  # never-started tasks don't match
    (Task.ended_at != at(10), ["1b-task", "2c-task", "3d-task", "4e-task"]),
    (Task.creation_to_end_duration > dt.timedelta(seconds=15), ["1b-task", "4e-task"]),
    (Task.processing_to_end_duration == dt.timedelta(seconds=8), ["0a-task"]),
])
def test_task_filters_follow_core_semantics(tasks, task_filter, expected):
    assert ids(tasks.list_tasks(task_filter)) == expected


def test_or_of_ands_filters(tasks):
    f = ((Task.session_id == S1) & (Task.options.priority == 1)) | (Task.status == TaskStatus.PENDING)
    assert ids(tasks.list_tasks(f)) == ["0a-task", "2c-task", "3d-task"]


def test_empty_filters_match_everything_and_and_narrows(tasks):
    f = (Task.session_id == S1) & (Task.status != TaskStatus.ERROR) & (Task.options["tier"] == "gold")
    assert ids(tasks.list_tasks(f)) == ["0a-task"]


def test_sort_on_any_field_and_direction_with_nulls_first_ascending(tasks):
    assert ids(tasks.list_tasks(sort_field=Task.created_at, sort_direction=Direction.DESC)) == [
        "4e-task", "3d-task", "2c-task", "1b-task", "0a-task"]
    # 2c-task and 4e-task were never started: MongoDB puts missing values first ascending
    assert ids(tasks.list_tasks(sort_field=Task.started_at))[:2] == ["2c-task", "4e-task"]
    assert ids(tasks.list_tasks(sort_field=Task.started_at, sort_direction=Direction.DESC))[-2:] == [
        "2c-task", "4e-task"]
    assert ids(tasks.list_tasks(sort_field=Task.options.priority, sort_direction=Direction.DESC))[:2] == [
        "2c-task", "1b-task"]
    assert ids(tasks.list_tasks(sort_field=Task.options["tier"]))[-1] in ("1b-task",)


def test_results_sessions_partitions_filters(channel):
    results = ArmoniKResults(channel)
    total, rows = results.list_results(
        (Result.session_id == S1) & (Result.status == ResultStatus.CREATED))
    assert total == 2 and sorted(r.result_id for r in rows) == ["r2", "r3"]
    total, rows = results.list_results(Result.size > 150, sort_field=Result.size,
                                       sort_direction=Direction.DESC)
    assert [r.result_id for r in rows] == ["r4", "r3", "r2"]
    sessions = ArmoniKSessions(channel)
    total, rows = sessions.list_sessions(Session.partition_ids.contains("gpu"))
    assert [s.session_id for s in rows] == [S1]
    total, rows = sessions.list_sessions(Session.status == 2)  # CANCELLED
    assert [s.session_id for s in rows] == [S2]
    total, rows = sessions.list_sessions(Session.client_submission == True)  # noqa: E712
    assert [s.session_id for s in rows] == [S1]
    partitions = ArmoniKPartitions(channel)
    total, rows = partitions.list_partitions(Partition.priority > 1)
    assert [p.id for p in rows] == ["gpu"]
    total, rows = partitions.list_partitions(Partition.parent_partition_ids.contains("default"))
    assert [p.id for p in rows] == ["gpu"]


# --- Get*, versions ---------------------------------------------------------------------------

def test_get_task_and_not_found(tasks):
    task = tasks.get_task("1b-task")
    assert task.status == TaskStatus.ERROR and task.output.error == "boom"
    with pytest.raises(grpc.RpcError) as err:
        tasks.get_task("no-such-task")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_get_session_result_partition_and_not_found(channel):
    assert ArmoniKSessions(channel).get_session(S2).status == 2
    assert ArmoniKResults(channel).get_result("r0").owner_task_id == "0a-task"
    assert ArmoniKPartitions(channel).get_partition("gpu").pod_max == 2
    for call in (lambda: ArmoniKSessions(channel).get_session("nope"),
                 lambda: ArmoniKResults(channel).get_result("nope"),
                 lambda: ArmoniKPartitions(channel).get_partition("nope")):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_get_result_ids_and_owner_task_ids(channel, tasks):
    assert tasks.get_result_ids(["0a-task", "2c-task"]) == {"0a-task": ["r0"], "2c-task": ["r2"]}
    owners = ArmoniKResults(channel).get_owner_task_id(["r1", "r3"], S1)
    assert owners == {"r1": "1b-task", "r3": "3d-task"}


def test_versions_report_simulated_core_and_installed_api(channel):
    import armonik

    assert ArmoniKVersions(channel).list_versions() == {
        "core": SIMULATED_CORE_VERSION, "api": armonik.__version__}


# --- wire fidelity ---------------------------------------------------------------------------

def _raw_request(**kw):
    base = dict(page=0, page_size=10, filters=tasks_filters_pb2.Filters(),
                sort=tasks_common_pb2.ListTasksRequest.Sort(
                    field=tasks_fields_pb2.TaskField(task_summary_field={"field": 16}),
                    direction=sort_direction_pb2.SORT_DIRECTION_ASC))
    base.update(kw)
    return tasks_common_pb2.ListTasksRequest(**base)


def test_unset_timestamps_are_sent_as_epoch_and_unset_durations_are_absent(channel):
    response = TasksStub(channel).ListTasksDetailed(_raw_request())
    pending = {t.id: t for t in response.tasks}["2c-task"]
    assert pending.HasField("started_at") and pending.started_at.seconds == 0
    assert pending.HasField("ended_at") and pending.ended_at.ToSeconds() == 0
    assert not pending.HasField("creation_to_end_duration")
    done = {t.id: t for t in response.tasks}["0a-task"]
    assert done.ended_at.ToSeconds() == T0 + 10
    assert done.creation_to_end_duration.ToSeconds() == 10


def test_response_echoes_page_and_page_size(channel):
    response = TasksStub(channel).ListTasksDetailed(_raw_request(page=1, page_size=3))
    assert (response.page, response.page_size, response.total, len(response.tasks)) == (1, 3, 5, 2)


# --- validation ------------------------------------------------------------------------------

def _status_filter_on_id():
    return tasks_filters_pb2.Filters(**{"or": [tasks_filters_pb2.FiltersAnd(**{"and": [
        tasks_filters_pb2.FilterField(
            field=tasks_fields_pb2.TaskField(task_summary_field={"field": 16}),  # TASK_ID: a string
            filter_number=filters_common_pb2.FilterNumber(value=3, operator=0))]})]})


@pytest.mark.parametrize("name, request_", [
    ("negative page", lambda: _raw_request(page=-1)),
    ("negative page size", lambda: _raw_request(page_size=-5)),
    ("filters unset", lambda: tasks_common_pb2.ListTasksRequest(
        page=0, page_size=10, sort=_raw_request().sort)),
    ("sort unset", lambda: tasks_common_pb2.ListTasksRequest(
        page=0, page_size=10, filters=tasks_filters_pb2.Filters())),
    ("sort direction unspecified", lambda: _raw_request(sort=tasks_common_pb2.ListTasksRequest.Sort(
        field=tasks_fields_pb2.TaskField(task_summary_field={"field": 16}), direction=0))),
    ("sort field unspecified", lambda: _raw_request(sort=tasks_common_pb2.ListTasksRequest.Sort(
        field=tasks_fields_pb2.TaskField(task_summary_field={"field": 0}), direction=1))),
    ("number filter on a string field", lambda: _raw_request(filters=_status_filter_on_id())),
])
def test_core_validation_rejects_bad_list_requests_with_invalid_argument(channel, name, request_):
    stub = TasksStub(channel)
    for method in (stub.ListTasks, stub.ListTasksDetailed):
        with pytest.raises(grpc.RpcError) as err:
            method(request_())
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert err.value.details()


def test_unimplemented_mutations_answer_unimplemented(channel):
    with pytest.raises(grpc.RpcError) as err:
        TasksStub(channel).CancelTasks(tasks_common_pb2.CancelTasksRequest(task_ids=["0a-task"]))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_session_filters_on_option_keys_durations_and_dates(channel):
    sessions = ArmoniKSessions(channel)
    assert [s.session_id for s in sessions.list_sessions(Session.duration > dt.timedelta(seconds=30))[1]] == [S2]
    assert [s.session_id for s in sessions.list_sessions(Session.cancelled_at >= at(0))[1]] == [S2]
    assert sessions.list_sessions(Session.options.partition_id == "default")[0] == 2
    assert sessions.list_sessions(Session.options["missing"] == "x")[0] == 0


def test_results_filters_on_dates_and_owner(channel):
    results = ArmoniKResults(channel)
    total, rows = results.list_results(Result.completed_at > at(5))
    assert [r.result_id for r in rows] == ["r0"]
    total, rows = results.list_results(Result.owner_task_id.startswith("1b"))
    assert [r.result_id for r in rows] == ["r1"]


def test_whole_table_cache_serves_the_same_bytes_as_per_page_serialization():
    """Given a server that serializes whole tables after the first page, pages are identical."""
    requests = [_raw_request(page=p, page_size=2) for p in range(3)]
    summary = [_raw_request(page=p, page_size=3) for p in range(2)]
    outputs = []
    for cache in (False, True):
        with SimulatedControlPlane(tiny_cluster()) as cp:
            if cache:
                cp.row_cache_min_rows = 0
                cp.row_cache_after_fraction = 0.0
            with grpc.insecure_channel(cp.start()) as ch:
                stub = TasksStub(ch)
                outputs.append([stub.ListTasksDetailed(r).SerializeToString() for r in requests]
                               + [stub.ListTasks(r).SerializeToString() for r in summary])
            assert bool(cp._row_cache) == cache
    assert outputs[0] == outputs[1]


def test_health_checks_report_every_service_healthy(channel):
    from armonik.client import ArmoniKHealthChecks

    health = ArmoniKHealthChecks(channel).check_health()
    assert set(health) == {"database", "object", "queue"}


def test_array_fields_sort_by_their_smallest_element_ascending_and_largest_descending(channel):
    from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
    from armonik.protogen.common import sessions_common_pb2, sessions_fields_pb2, sessions_filters_pb2

    def listed(direction):
        request = sessions_common_pb2.ListSessionsRequest(
            page=0, page_size=10, filters=sessions_filters_pb2.Filters(),
            sort=sessions_common_pb2.ListSessionsRequest.Sort(
                field=sessions_fields_pb2.SessionField(session_raw_field={"field": 3}),  # PARTITION_IDS
                direction=direction))
        return [s.session_id for s in SessionsStub(channel).ListSessions(request).sessions]

    # S1 has [default, gpu], S2 [default]: equal minimums keep table order, S1's max wins desc
    assert listed(sort_direction_pb2.SORT_DIRECTION_ASC) == [S1, S2]
    assert listed(sort_direction_pb2.SORT_DIRECTION_DESC) == [S1, S2]
    assert [p.id for p in ArmoniKPartitions(channel).list_partitions(
        sort_field=Partition.priority, sort_direction=Direction.DESC)[1]] == ["gpu", "default"]


def test_every_list_method_validates_like_tasks(channel):
    from armonik.protogen.client.results_service_pb2_grpc import ResultsStub
    from armonik.protogen.common import results_common_pb2

    with pytest.raises(grpc.RpcError) as err:
        ResultsStub(channel).ListResults(results_common_pb2.ListResultsRequest(page=0, page_size=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_page_is_its_items_then_its_tail_in_one_bytes_object_whatever_the_array():
    """Given binary arrays (plain, large, sliced, with empty items, empty) and a tail, when a
    page's bytes are assembled in place (one copy), then they are exactly the items back to back
    followed by the tail, and a new bytes object that nothing else shares."""
    import pyarrow as pa

    from aksnap.fixtures.wire import bytes_of, concat_binary

    items = [b"\x0a\x03abc", b"", b"\x0a\x01z" * 500, b"\xff\x00" * 7]
    tail = b"\x10\x02\x18\x04\x20\x09"
    for kind in (pa.binary(), pa.large_binary()):
        arr = pa.array(items * 3, kind)
        for a in (arr, arr.slice(1), arr.slice(2, 5), arr.slice(4, 0)):
            want = b"".join(a.to_pylist())
            assert concat_binary(a) == want
            got = concat_binary(a, tail)
            assert got == want + tail and type(got) is bytes
    # two pages from the same buffer are two objects: filling one never touches the other
    buf = pa.py_buffer(b"0123456789")
    one, two = bytes_of(buf.address, 4, b"!", keep=buf), bytes_of(buf.address + 2, 4, keep=buf)
    assert (one, two) == (b"0123!", b"2345") and one is not two
    assert bytes_of(buf.address, 0, b"tail") == b"tail"
