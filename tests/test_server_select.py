"""The server's fast row selection (per-table id and session orders, id prefixes as ranges)
returns exactly what the general evaluation returns: same rows, same order, same errors.

Given random small tables (duplicate ids, null ids and sessions, ids sharing prefixes), random
OR-of-AND filters mixing session EQ, id STARTS_WITH / EQ and other conditions, and a random
sort, when both paths run, then they agree row for row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from armonik.protogen.common import (
    results_common_pb2,
    results_fields_pb2,
    results_filters_pb2,
    tasks_common_pb2,
    tasks_fields_pb2,
    tasks_filters_pb2,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from aksnap.fixtures.filters import (
    FilterError,
    TableIndex,
    filter_mask,
    select_rows,
    sort_indices,
)

IDS = ["0a", "0b", "0a", "1", "a", "ab", "abc", "", "f0", "0", None]
SESSIONS = ["s1", "s2", "s10", None]
STATUSES = ["TASK_STATUS_COMPLETED", "TASK_STATUS_ERROR", "TASK_STATUS_PENDING"]
VALUES = ["", "0", "0a", "a", "ab", "s1", "s2", "s", "x", "1"]

# kind -> (module, field factory, id enum, session enum, other string enum, status enum, sort)
KINDS = {
    "tasks": (tasks_filters_pb2, lambda f: tasks_fields_pb2.TaskField(task_summary_field={"field": f}),
              16, 1, 13, 2, tasks_common_pb2.ListTasksRequest.Sort),
    "results": (results_filters_pb2,
                lambda f: results_fields_pb2.ResultField(result_raw_field={"field": f}),
                7, 1, 2, 4, results_common_pb2.ListResultsRequest.Sort),
}
ID_COLUMN = {"tasks": "id", "results": "result_id"}
OTHER_COLUMN = {"tasks": "pod_hostname", "results": "name"}
STATUS_ENUM = {"tasks": [1, 4, 10], "results": [1, 2, 3]}


def _table(kind, ids, sessions, others, statuses):
    status = statuses if kind == "tasks" else [s.replace("TASK", "RESULT") for s in statuses]
    return pa.table({ID_COLUMN[kind]: pa.array(ids, pa.string()),
                     "session_id": pa.array(sessions, pa.string()),
                     OTHER_COLUMN[kind]: pa.array(others, pa.string()),
                     "status": pa.array(status, pa.string())})


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(sorted(KINDS)))
    mod, field, f_id, f_session, f_other, f_status, sort_cls = KINDS[kind]
    n = draw(st.integers(0, 25))
    table = _table(kind, [draw(st.sampled_from(IDS)) for _ in range(n)],
                   [draw(st.sampled_from(SESSIONS)) for _ in range(n)],
                   [draw(st.sampled_from(VALUES + [None])) for _ in range(n)],
                   [draw(st.sampled_from(STATUSES)) for _ in range(n)])

    def cond():
        which = draw(st.sampled_from(["session", "id", "other", "status", "session", "id"]))
        if which == "status":
            return mod.FilterField(field=field(f_status), filter_status={
                "value": draw(st.sampled_from(STATUS_ENUM[kind])),
                "operator": draw(st.sampled_from([0, 1]))})
        f = {"session": f_session, "id": f_id, "other": f_other}[which]
        op = draw(st.sampled_from([0, 4, 0, 4, 1, 2, 3, 5]))
        return mod.FilterField(field=field(f), filter_string={
            "value": draw(st.sampled_from(VALUES)), "operator": op})

    ors = [mod.FiltersAnd(**{"and": [cond() for _ in range(draw(st.integers(0, 3)))]})
           for _ in range(draw(st.integers(0, 3)))]
    filters = mod.Filters(**{"or": ors})
    sort = sort_cls(field=field(draw(st.sampled_from([f_id, f_id, f_session, f_other,
                                                            f_status]))),
                    direction=draw(st.sampled_from([1, 2])))
    if draw(st.integers(0, 5)) == 0:
        sort = None
    return kind, table, filters, sort


def _general(table, kind, filters, sort):
    idx = np.flatnonzero(filter_mask(table, kind, filters))
    return idx if sort is None else sort_indices(table, kind, idx, sort)


@settings(max_examples=400, deadline=None)
@given(cases())
def test_select_rows_equals_the_general_evaluation(case):
    kind, table, filters, sort = case
    expected = _general(table, kind, filters, sort)
    index = TableIndex(table, kind)
    got = select_rows(table, kind, filters, sort, index)
    assert got.tolist() == expected.tolist()
    # the index is shared between requests: a second request through it agrees too
    assert select_rows(table, kind, filters, sort, index).tolist() == expected.tolist()


def test_an_invalid_condition_is_refused_even_after_a_condition_matching_nothing():
    """Given a session nobody has AND a mistyped condition, the fast path still refuses."""
    table = _table("tasks", ["a"], ["s1"], ["x"], STATUSES[:1])
    field = KINDS["tasks"][1]
    bad = tasks_filters_pb2.Filters(**{"or": [tasks_filters_pb2.FiltersAnd(**{"and": [
        tasks_filters_pb2.FilterField(field=field(1), filter_string={"value": "nobody"}),
        tasks_filters_pb2.FilterField(field=field(16), filter_number={"value": 1}),
    ]})]})
    with pytest.raises(FilterError, match="filter_number"):
        select_rows(table, "tasks", bad)
