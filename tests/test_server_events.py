"""Events.GetEvents: replay of what exists, then live updates while the simulated clock runs."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKEvents
from armonik.common import EventTypes, Task, TaskStatus
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.common import events_common_pb2

from aksnap.fixtures.server import SimulatedControlPlane

sys.path.insert(0, str(Path(__file__).parent))
from test_server_support import S1, TwoStateCluster, tiny_cluster  # noqa: E402

E = events_common_pb2.EventsEnum


def collect(endpoint, request, n, timeout=5.0):
    """The first n events of a GetEvents stream, then cancel it."""
    with grpc.insecure_channel(endpoint) as ch:
        call = EventsStub(ch).GetEvents(request, timeout=timeout)
        out = []
        for event in call:
            out.append(event)
            if len(out) == n:
                call.cancel()
                break
        return out


@pytest.fixture(scope="module")
def frozen():
    with SimulatedControlPlane(tiny_cluster()) as cp:
        yield cp, cp.start()


def test_replay_through_the_armonik_client_announces_every_task_and_result_of_the_session(frozen):
    _, endpoint = frozen
    seen = []

    def handler(session_id, event_type, event):
        seen.append((event_type, event))
        return len(seen) == 4 + 8

    with grpc.insecure_channel(endpoint) as ch:
        ArmoniKEvents(ch).get_events(S1, [EventTypes.NEW_TASK, EventTypes.NEW_RESULT], [handler])
    tasks = [e.task_id for t, e in seen if t == EventTypes.NEW_TASK]
    results = sorted(e.result_id for t, e in seen if t == EventTypes.NEW_RESULT)
    assert tasks == ["0a-task", "1b-task", "2c-task", "3d-task"]  # by creation date
    assert results == ["p0", "p1", "p2", "p3", "r0", "r1", "r2", "r3"]
    new_task = dict((e.task_id, e) for t, e in seen if t == EventTypes.NEW_TASK)["2c-task"]
    assert new_task.data_dependencies == ["r0"] and new_task.expected_output_keys == ["r2"]
    assert new_task.status == TaskStatus.PENDING and new_task.payload_id == "p2"


def test_returned_events_and_task_filters_are_honoured(frozen):
    _, endpoint = frozen
    only_results = events_common_pb2.EventSubscriptionRequest(
        session_id=S1, returned_events=[E.EVENTS_ENUM_NEW_RESULT])
    events = collect(endpoint, only_results, 8)
    assert {e.WhichOneof("update") for e in events} == {"new_result"}

    error_tasks = events_common_pb2.EventSubscriptionRequest(
        session_id=S1, returned_events=[E.EVENTS_ENUM_NEW_TASK],
        tasks_filters=(Task.options["tier"] == "silver").to_disjunction().to_message())
    with grpc.insecure_channel(endpoint) as ch:
        call = EventsStub(ch).GetEvents(error_tasks, timeout=1.0)
        got = []
        with pytest.raises(grpc.RpcError) as err:
            for event in call:
                got.append(event.new_task.task_id)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # the stream never ends by itself
    assert got == ["1b-task"]


def test_live_updates_stream_status_new_task_and_owner_changes_with_empty_previous_owner():
    cluster = TwoStateCluster(change_at=0.3)
    with SimulatedControlPlane(cluster, realtime=True, speed=1.0) as cp:
        endpoint = cp.start()
        request = events_common_pb2.EventSubscriptionRequest(session_id=S1)
        events = collect(endpoint, request, 3 + 4, timeout=5.0)
    replay, live = events[:3], events[3:]
    assert [e.WhichOneof("update") for e in replay] == ["new_task", "new_result", "new_result"]
    kinds = {e.WhichOneof("update"): e for e in live}
    assert kinds["task_status_update"].task_status_update.task_id == "x-task"
    assert kinds["task_status_update"].task_status_update.status == TaskStatus.COMPLETED
    assert kinds["new_task"].new_task.task_id == "y-task"
    assert kinds["new_task"].new_task.parent_task_ids == [S1, "x-task"]
    assert kinds["new_result"].new_result.result_id == "py"
    owner = kinds["result_owner_update"].result_owner_update
    assert (owner.result_id, owner.previous_owner_id, owner.current_owner_id) == ("rx", "", "y-task")


def test_a_cancelled_stream_frees_the_server():
    with SimulatedControlPlane(tiny_cluster()) as cp:
        endpoint = cp.start()
        for _ in range(40):  # more streams than worker threads: each must end on cancel
            collect(endpoint, events_common_pb2.EventSubscriptionRequest(session_id=S1), 1)
        t = time.monotonic()
        cp.stop()
        assert time.monotonic() - t < 3.0


def test_events_for_tasks_injected_between_pages_appear_live():
    with SimulatedControlPlane(tiny_cluster()) as cp:
        endpoint = cp.start()
        done = threading.Event()
        request = events_common_pb2.EventSubscriptionRequest(
            session_id=S1, returned_events=[E.EVENTS_ENUM_NEW_TASK])

        def inject_later():
            time.sleep(0.3)
            cp.inject_tasks(S1, 2)
            done.set()

        threading.Thread(target=inject_later).start()
        events = collect(endpoint, request, 4 + 2)
        assert done.is_set()
        assert len({e.new_task.task_id for e in events[4:]}) == 2


@pytest.mark.parametrize("task_filter", [Task.status == TaskStatus.ERROR, Task.output.error == "boom"])
def test_event_filters_on_mutable_fields_are_refused_as_core_does(frozen, task_filter):
    _, endpoint = frozen
    request = events_common_pb2.EventSubscriptionRequest(
        session_id=S1, tasks_filters=task_filter.to_disjunction().to_message())
    with grpc.insecure_channel(endpoint) as ch:
        with pytest.raises(grpc.RpcError) as err:
            next(iter(EventsStub(ch).GetEvents(request, timeout=5)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Cannot filter" in err.value.details()


def test_event_result_filters_on_status_are_refused_but_owner_is_allowed(frozen):
    from armonik.common import Result, ResultStatus

    _, endpoint = frozen
    refused = events_common_pb2.EventSubscriptionRequest(
        session_id=S1, results_filters=(Result.status == ResultStatus.COMPLETED).to_disjunction().to_message())
    with grpc.insecure_channel(endpoint) as ch:
        with pytest.raises(grpc.RpcError) as err:
            next(iter(EventsStub(ch).GetEvents(refused, timeout=5)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    allowed = events_common_pb2.EventSubscriptionRequest(
        session_id=S1, returned_events=[E.EVENTS_ENUM_NEW_RESULT],
        results_filters=(Result.owner_task_id == "0a-task").to_disjunction().to_message())
    events = collect(endpoint, allowed, 1)
    assert events[0].new_result.result_id == "r0"


def test_a_result_that_starts_matching_the_filter_is_an_owner_update_not_a_new_result():
    from armonik.common import Result

    with SimulatedControlPlane(TwoStateCluster(change_at=0.3), realtime=True) as cp:
        endpoint = cp.start()
        request = events_common_pb2.EventSubscriptionRequest(
            session_id=S1,
            returned_events=[E.EVENTS_ENUM_NEW_RESULT, E.EVENTS_ENUM_RESULT_OWNER_UPDATE],
            results_filters=(Result.owner_task_id == "y-task").to_disjunction().to_message())
        events = collect(endpoint, request, 1)
    assert events[0].WhichOneof("update") == "result_owner_update"
    assert events[0].result_owner_update.result_id == "rx"
