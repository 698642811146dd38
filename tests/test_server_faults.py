"""Every fault knob of the simulated control plane, changed at runtime, seen by a real client."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKTasks, ArmoniKVersions
from armonik.common import Task

from aksnap.fixtures.server import Faults, SimulatedControlPlane

sys.path.insert(0, str(Path(__file__).parent))
from test_server_support import S1, tiny_cluster  # noqa: E402


@pytest.fixture
def served():
    with SimulatedControlPlane(tiny_cluster(), faults=Faults(seed=7)) as cp:
        endpoint = cp.start()
        with grpc.insecure_channel(endpoint) as ch:
            yield cp, ch


def code_of(call):
    try:
        call()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_latency_delays_every_call(served):
    cp, ch = served
    versions = ArmoniKVersions(ch)
    versions.list_versions()  # connect first
    cp.faults.latency_s = 0.2
    t = time.monotonic()
    versions.list_versions()
    assert time.monotonic() - t >= 0.2
    cp.faults.latency_s = 0.0
    t = time.monotonic()
    versions.list_versions()
    assert time.monotonic() - t < 0.2


def test_unavailable_burst_fails_exactly_the_next_n_calls(served):
    cp, ch = served
    tasks = ArmoniKTasks(ch)
    cp.faults.unavailable_burst = 2
    codes = [code_of(lambda: tasks.list_tasks(page_size=1)) for _ in range(3)]
    assert codes == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK]
    assert cp.faults.unavailable_burst == 0


def test_unavailable_rate_is_seeded_and_can_be_switched_off(served):
    cp, ch = served
    versions = ArmoniKVersions(ch)
    cp.faults.unavailable_rate = 1.0
    assert code_of(versions.list_versions) == grpc.StatusCode.UNAVAILABLE
    cp.faults.unavailable_rate = 0.5
    cp.faults.seed = 7  # assigning the seed restarts the random sequence
    first = [code_of(versions.list_versions) for _ in range(40)]
    assert 5 < first.count(grpc.StatusCode.UNAVAILABLE) < 35
    cp.faults.seed = 7
    again = [code_of(versions.list_versions) for _ in range(40)]
    assert again == first
    cp.faults.unavailable_rate = 0.0
    assert all(code_of(versions.list_versions) == grpc.StatusCode.OK for _ in range(10))


def test_rows_inserted_between_pages_shift_later_pages_and_grow_the_total(served):
    cp, ch = served
    tasks = ArmoniKTasks(ch)
    cp.faults.insert_rows_between_pages = 3
    total0, page0 = tasks.list_tasks(Task.session_id == S1, page=0, page_size=2)
    total1, page1 = tasks.list_tasks(Task.session_id == S1, page=1, page_size=2)
    assert total0 == 4 and total1 == 7  # total is counted again on every page: not a snapshot
    cp.faults.insert_rows_between_pages = 0
    total, everything = tasks.list_tasks(Task.session_id == S1, page_size=100)
    assert total == 10  # 3 more were inserted after page 1
    injected = [t for t in everything if t.id not in {"0a-task", "1b-task", "2c-task", "3d-task"}]
    assert len(injected) == 6 and all(t.session_id == S1 for t in injected)


def test_responses_beyond_max_response_bytes_fail_resource_exhausted(served):
    cp, ch = served
    tasks = ArmoniKTasks(ch)
    cp.faults.max_response_bytes = 200
    assert code_of(lambda: tasks.list_tasks(page_size=5)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert tasks.list_tasks(page_size=0)[0] == 5  # a count-only page is tiny
    cp.faults.max_response_bytes = None
    assert len(tasks.list_tasks(page_size=5)[1]) == 5


def test_faults_given_at_construction_apply_from_the_first_call():
    with SimulatedControlPlane(tiny_cluster(), faults=Faults(unavailable_burst=1)) as cp:
        with grpc.insecure_channel(cp.start()) as ch:
            versions = ArmoniKVersions(ch)
            assert code_of(versions.list_versions) == grpc.StatusCode.UNAVAILABLE
            assert code_of(versions.list_versions) == grpc.StatusCode.OK
