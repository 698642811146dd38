"""The server over the real engine: listings agree with the engine's view, time runs live."""

from __future__ import annotations

import grpc
import pyarrow.compute as pc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Task
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.common import events_common_pb2

from aksnap.fixtures.server import SimulatedControlPlane

scenarios = pytest.importorskip("aksnap.fixtures.scenarios")


def test_listings_of_the_failures_scenario_match_the_engine_view():
    scenario = scenarios.build_scenario("failures", seed=1)
    with SimulatedControlPlane(scenario) as cp:
        view = cp.view()
        with grpc.insecure_channel(cp.start()) as ch:
            tasks, results = ArmoniKTasks(ch), ArmoniKResults(ch)
            assert tasks.list_tasks(page_size=0)[0] == view.tasks.num_rows
            assert results.list_results(page_size=0)[0] == view.results.num_rows
            assert ArmoniKSessions(ch).list_sessions(page_size=0)[0] == view.sessions.num_rows
            expected = {}
            for entry in pc.value_counts(view.tasks.column("status")).to_pylist():
                expected[entry["values"]] = entry["counts"]
            counted = {f"TASK_STATUS_{s.name}": n for s, n in tasks.count_tasks_by_status().items()}
            assert counted == expected
            # paging by shards of the first hex digit covers every task exactly once
            seen = []
            for digit in "0123456789abcdef":
                page = 0
                while True:
                    _, rows = tasks.list_tasks(Task.id.startswith(digit), page=page, page_size=50)
                    seen += [t.id for t in rows]
                    if len(rows) < 50:
                        break
                    page += 1
            assert sorted(seen) == sorted(view.tasks.column("id").to_pylist())


def test_realtime_engine_streams_status_updates_as_the_clock_runs():
    scenario = scenarios.build_scenario("chain", seed=0, tasks=5)
    end = scenario.cluster.end_time
    with SimulatedControlPlane(scenario, at=0.0, realtime=True, speed=max(end, 1.0) * 2) as cp:
        endpoint = cp.start()
        session = cp.view().sessions.column("session_id")[0].as_py()
        request = events_common_pb2.EventSubscriptionRequest(
            session_id=session, returned_events=[events_common_pb2.EVENTS_ENUM_TASK_STATUS_UPDATE])
        with grpc.insecure_channel(endpoint) as ch:
            call = EventsStub(ch).GetEvents(request, timeout=10)
            for event in call:
                if event.task_status_update.status == 4:  # COMPLETED
                    call.cancel()
                    break
        assert event.session_id == session
        assert cp.now() > 0


def test_realtime_owner_updates_follow_the_engine_ownership_log():
    scenario = scenarios.build_scenario("htcmock", seed=2, tasks=30)
    cluster = scenario.cluster
    final = cluster.view(cluster.end_time)
    session = final.sessions.column("session_id")[0].as_py()
    log = final.owner_changes.filter(pc.equal(final.owner_changes.column("session_id"), session))
    expected = sorted(zip(log.column("result_id").to_pylist(), log.column("current_owner_id").to_pylist()))
    assert expected, "htcmock moves ownership to aggregation tasks"
    with SimulatedControlPlane(scenario, at=0.0, realtime=True, speed=cluster.end_time / 3) as cp:
        endpoint = cp.start()
        request = events_common_pb2.EventSubscriptionRequest(
            session_id=session, returned_events=[events_common_pb2.EVENTS_ENUM_RESULT_OWNER_UPDATE])
        got = []
        with grpc.insecure_channel(endpoint) as ch:
            call = EventsStub(ch).GetEvents(request, timeout=20)
            for event in call:
                update = event.result_owner_update
                assert update.previous_owner_id == ""  # as Core's watcher
                got.append((update.result_id, update.current_owner_id))
                if len(got) == len(expected):
                    call.cancel()
                    break
    assert sorted(got) == expected
