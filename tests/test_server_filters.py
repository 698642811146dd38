"""Filters are an OR of ANDs with MongoDB's missing-value rules: property test against a
plain-Python reference over the tiny cluster, plus one gRPC round trip of a random filter."""

from __future__ import annotations

import operator
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import tasks_common_pb2, tasks_fields_pb2, tasks_filters_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aksnap.fixtures.filters import FilterError, filter_mask
from aksnap.fixtures.server import SimulatedControlPlane

sys.path.insert(0, str(Path(__file__).parent))
from test_server_support import T0, tiny_cluster, tiny_tasks  # noqa: E402

TASKS = tiny_tasks()
TABLE = tiny_cluster().tasks
IDS = [t.id for t in TASKS]

# (field message kwargs, python getter returning None when missing, kind)
STRING_FIELDS = {
    "id": ({"task_summary_field": {"field": 16}}, lambda t: t.id),
    "session_id": ({"task_summary_field": {"field": 1}}, lambda t: t.session_id),
    "pod_hostname": ({"task_summary_field": {"field": 13}}, lambda t: t.pod_hostname),
    "error": ({"task_summary_field": {"field": 8}}, lambda t: t.output.error),
    "partition": ({"task_option_field": {"field": 4}}, lambda t: t.options.partition_id),
    "tier": ({"task_option_generic_field": {"field": "tier"}}, lambda t: t.options.options.get("tier")),
}
DATE_FIELDS = {
    "created_at": ({"task_summary_field": {"field": 3}}, "created_at"),
    "started_at": ({"task_summary_field": {"field": 4}}, "started_at"),
    "ended_at": ({"task_summary_field": {"field": 5}}, "ended_at"),
}
STRINGS = ["", "0a-task", "task", "pod", "s1-session", "gold", "s", "boom", "gpu", "-", "e-task"]
STRING_OPS = {
    0: lambda v, x: v == x, 1: lambda v, x: v != x, 2: lambda v, x: x in v,
    3: lambda v, x: x not in v, 4: lambda v, x: v.startswith(x), 5: lambda v, x: v.endswith(x),
}
ORDER_OPS = {0: operator.eq, 1: operator.ne, 2: operator.lt, 3: operator.le, 4: operator.ge, 5: operator.gt}
NEGATIVE = {1, 3}  # NE, NOT_CONTAINS: the only operators a missing value satisfies


def _string_cond(draw):
    name = draw(st.sampled_from(sorted(STRING_FIELDS)))
    op = draw(st.sampled_from(sorted(STRING_OPS)))
    value = draw(st.sampled_from(STRINGS))
    field, get = STRING_FIELDS[name]
    msg = tasks_filters_pb2.FilterField(field=tasks_fields_pb2.TaskField(**field),
                                        filter_string={"value": value, "operator": op})

    def ref(t):
        v = get(t)
        return op in NEGATIVE if v is None else STRING_OPS[op](v, value)
    return msg, ref


def _number_cond(draw):
    op = draw(st.sampled_from(sorted(ORDER_OPS)))
    value = draw(st.integers(0, 4))
    msg = tasks_filters_pb2.FilterField(
        field=tasks_fields_pb2.TaskField(task_option_field={"field": 3}),  # priority
        filter_number={"value": value, "operator": op})
    return msg, lambda t: ORDER_OPS[op](t.options.priority, value)


def _date_cond(draw):
    name = draw(st.sampled_from(sorted(DATE_FIELDS)))
    op = draw(st.sampled_from(sorted(ORDER_OPS)))
    offset = draw(st.sampled_from([0, 1, 2, 3, 5, 10, 20, 30]))
    field, attr = DATE_FIELDS[name]
    msg = tasks_filters_pb2.FilterField(field=tasks_fields_pb2.TaskField(**field),
                                        filter_date={"value": {"seconds": T0 + offset}, "operator": op})

    def ref(t):
        if not t.HasField(attr):
            return op == 1
        return ORDER_OPS[op](getattr(t, attr).ToSeconds(), T0 + offset)
    return msg, ref


def _status_cond(draw):
    op = draw(st.sampled_from([0, 1]))
    status = draw(st.sampled_from([1, 4, 5, 8, 9, 12]))
    msg = tasks_filters_pb2.FilterField(
        field=tasks_fields_pb2.TaskField(task_summary_field={"field": 2}),
        filter_status={"value": status, "operator": op})
    return msg, lambda t: (t.status == status) == (op == 0)


@st.composite
def filters(draw):
    makers = [_string_cond, _number_cond, _date_cond, _status_cond]
    disjunction = []
    for _ in range(draw(st.integers(0, 3))):
        conjunction = [draw(st.sampled_from(makers))(draw) for _ in range(draw(st.integers(0, 3)))]
        disjunction.append(conjunction)
    message = tasks_filters_pb2.Filters(**{"or": [
        tasks_filters_pb2.FiltersAnd(**{"and": [m for m, _ in conj]}) for conj in disjunction]})

    def reference(t):
        if not disjunction:
            return True
        return any(all(ref(t) for _, ref in conj) for conj in disjunction)
    return message, reference


@settings(max_examples=300, deadline=None)
@given(filters())
def test_filter_mask_equals_the_reference_semantics(case):
    message, reference = case
    mask = filter_mask(TABLE, "tasks", message)
    assert [i for i, m in zip(IDS, mask) if m] == [t.id for t in TASKS if reference(t)]


@pytest.fixture(scope="module")
def stub():
    with SimulatedControlPlane(tiny_cluster()) as cp:
        with grpc.insecure_channel(cp.start()) as ch:
            yield TasksStub(ch)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=filters())
def test_list_tasks_over_grpc_returns_exactly_the_reference_rows(stub, case):
    message, reference = case
    request = tasks_common_pb2.ListTasksRequest(
        page=0, page_size=100, filters=message,
        sort=tasks_common_pb2.ListTasksRequest.Sort(
            field=tasks_fields_pb2.TaskField(task_summary_field={"field": 16}), direction=1))
    response = stub.ListTasksDetailed(request)
    expected = [t.id for t in TASKS if reference(t)]
    assert [t.id for t in response.tasks] == expected and response.total == len(expected)


def test_array_filters_are_refused_on_tasks_and_unknown_operators_rejected():
    bad_array = tasks_filters_pb2.Filters(**{"or": [tasks_filters_pb2.FiltersAnd(**{"and": [
        tasks_filters_pb2.FilterField(field=tasks_fields_pb2.TaskField(task_summary_field={"field": 16}),
                                      filter_array={"value": "x", "operator": 0})]})]})
    with pytest.raises(FilterError, match="filter_array"):
        filter_mask(TABLE, "tasks", bad_array)
    bad_op = tasks_filters_pb2.Filters(**{"or": [tasks_filters_pb2.FiltersAnd(**{"and": [
        tasks_filters_pb2.FilterField(field=tasks_fields_pb2.TaskField(task_summary_field={"field": 16}),
                                      filter_string={"value": "x", "operator": 42})]})]})
    with pytest.raises(FilterError, match="operator 42"):
        filter_mask(TABLE, "tasks", bad_op)
    assert np.asarray(filter_mask(TABLE, "tasks", tasks_filters_pb2.Filters())).all()


def test_views_of_a_growing_cluster_derive_their_orders_from_one_index_and_answer_the_same():
    """Given a realtime cluster whose tables grow at the end, when each new view's row orders
    are derived from one index over every row ever created (instead of sorting every id again),
    then for sessions, id prefixes, statuses, ids and the id sort both ways the rows listed
    equal those of an index built from the view alone, at several instants."""
    from armonik.protogen.common import sort_direction_pb2

    from aksnap.exporter import requests as rq
    from aksnap.fixtures import scenarios
    from aksnap.fixtures.filters import TableIndex, select_rows

    cp = SimulatedControlPlane(scenarios.htcmock(tasks=3000, seed=5), at=0.0, realtime=True)
    cluster = cp.cluster
    derived_somewhere = False
    for t in (2.0, 6.0, 15.0, cluster.end_time):
        view = cluster.view(t)
        for kind in ("tasks", "results"):
            table = getattr(view, kind)
            base = cp._base_index(kind, table)
            assert base is not None and base.n >= table.num_rows
            derived_somewhere |= base.n > table.num_rows
            sessions = sorted(set(table.column("session_id").to_pylist()))
            some_ids = table.column("id" if kind == "tasks" else "result_id").to_pylist()[::97]
            cases = [rq.row_filters(kind, s) for s in sessions]
            cases += [rq.row_filters(kind, sessions[0], p) for p in ("0", "a", "f3")]
            cases += [rq.ids_filters(kind, sessions[0], some_ids), rq.hex_filters(kind, sessions[0]),
                      rq.status_filters(kind, sessions, "COMPLETED"), None]
            for filters in cases:
                for direction in (sort_direction_pb2.SORT_DIRECTION_ASC, sort_direction_pb2.SORT_DIRECTION_DESC):
                    sort = rq.list_request(kind, filters, 0, 10).sort
                    sort.direction = direction
                    mine = select_rows(table, kind, filters, sort, TableIndex(table, kind, base))
                    alone = select_rows(table, kind, filters, sort, TableIndex(table, kind))
                    assert np.array_equal(mine, alone), (kind, t, filters)
    assert derived_somewhere  # the early views were strict prefixes of the whole table
