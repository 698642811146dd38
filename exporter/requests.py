"""List requests as ArmoniK wants them: filters and sort always set, sort direction ascending.

Only the filter shapes the exporter needs: a row's session, the first character of its id
(shards), and the session selection (id, status, creation date).
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from armonik.protogen.common import (
    filters_common_pb2 as fc,
    partitions_common_pb2,
    partitions_fields_pb2,
    partitions_filters_pb2,
    results_common_pb2,
    results_fields_pb2,
    results_filters_pb2,
    sessions_common_pb2,
    sessions_fields_pb2,
    sessions_filters_pb2,
    sort_direction_pb2,
    tasks_common_pb2,
    tasks_fields_pb2,
    tasks_filters_pb2,
    versions_common_pb2,
)
from google.protobuf.timestamp_pb2 import Timestamp

HEX = "0123456789abcdef"
ASC = sort_direction_pb2.SORT_DIRECTION_ASC
DESC = sort_direction_pb2.SORT_DIRECTION_DESC

_STR_EQ = fc.FILTER_STRING_OPERATOR_EQUAL
_STR_PREFIX = fc.FILTER_STRING_OPERATOR_STARTS_WITH


def _task_field(name: str) -> tasks_fields_pb2.TaskField:
    enum = getattr(tasks_fields_pb2, f"TASK_SUMMARY_ENUM_FIELD_{name}")
    return tasks_fields_pb2.TaskField(task_summary_field=tasks_fields_pb2.TaskSummaryField(field=enum))


def _result_field(name: str) -> results_fields_pb2.ResultField:
    enum = getattr(results_fields_pb2, f"RESULT_RAW_ENUM_FIELD_{name}")
    return results_fields_pb2.ResultField(result_raw_field=results_fields_pb2.ResultRawField(field=enum))


def _session_field(name: str) -> sessions_fields_pb2.SessionField:
    enum = getattr(sessions_fields_pb2, f"SESSION_RAW_ENUM_FIELD_{name}")
    return sessions_fields_pb2.SessionField(session_raw_field=sessions_fields_pb2.SessionRawField(field=enum))


# Per table: (filters module, field builder, id field name, session field name)
_TABLES = {
    "tasks": (tasks_filters_pb2, _task_field, "TASK_ID", "SESSION_ID"),
    "results": (results_filters_pb2, _result_field, "RESULT_ID", "SESSION_ID"),
}


def row_filters(table: str, session_id: str, prefix: str | None = None):
    """Rows of one session, optionally only those whose id starts with ``prefix``."""
    mod, field, id_name, session_name = _TABLES[table]
    conds = [mod.FilterField(field=field(session_name),
                             filter_string=fc.FilterString(value=session_id, operator=_STR_EQ))]
    if prefix is not None:
        conds.append(mod.FilterField(field=field(id_name),
                                     filter_string=fc.FilterString(value=prefix, operator=_STR_PREFIX)))
    return mod.Filters(**{"or": [mod.FiltersAnd(**{"and": conds})]})


def sessions_filters(table: str, session_ids: Sequence[str]):
    """Rows of any of ``session_ids``: one OR filter, so that many small sessions are listed
    in a few calls instead of a count and a page per session."""
    mod, field, _, session_name = _TABLES[table]
    return mod.Filters(**{"or": [mod.FiltersAnd(**{"and": [mod.FilterField(
        field=field(session_name), filter_string=fc.FilterString(value=s, operator=_STR_EQ))]})
        for s in session_ids]})


def hex_filters(table: str, session_id: str):
    """Rows of one session whose id starts with any hex digit: the union of the 16 shards."""
    mod, field, id_name, session_name = _TABLES[table]
    ands = []
    for h in HEX:
        ands.append(mod.FiltersAnd(**{"and": [
            mod.FilterField(field=field(session_name),
                            filter_string=fc.FilterString(value=session_id, operator=_STR_EQ)),
            mod.FilterField(field=field(id_name),
                            filter_string=fc.FilterString(value=h, operator=_STR_PREFIX)),
        ]}))
    return mod.Filters(**{"or": ands})


def _session_cond(table: str, session_id: str):
    mod, field, _, session_name = _TABLES[table]
    return mod.FilterField(field=field(session_name),
                           filter_string=fc.FilterString(value=session_id, operator=_STR_EQ))


def ids_filters(table: str, session_id: str, ids: Sequence[str]):
    """Rows of one session whose id is one of ``ids`` (one AND per id: the session condition
    lets Core and the simulator narrow each alternative by the session before the id)."""
    return pairs_filters(table, [(session_id, i) for i in ids])


def pairs_filters(table: str, pairs: Sequence[tuple[str, str]]):
    """Rows whose (session, id) is one of ``pairs`` (one AND per pair, as ``ids_filters``)."""
    mod, field, id_name, _ = _TABLES[table]
    id_field = field(id_name)
    sessions = {s: _session_cond(table, s) for s in dict.fromkeys(s for s, _ in pairs)}
    return mod.Filters(**{"or": [mod.FiltersAnd(**{"and": [sessions[s], mod.FilterField(
        field=id_field, filter_string=fc.FilterString(value=i, operator=_STR_EQ))]})
        for s, i in pairs]})


def created_since_filters(table: str, session_ids: Sequence[str], since: datetime):
    """Rows of any of ``session_ids`` created at or after ``since`` (the cluster's clock)."""
    mod, field, _, _ = _TABLES[table]
    cond = mod.FilterField(field=field("CREATED_AT"), filter_date=fc.FilterDate(
        value=_ts(since), operator=fc.FILTER_DATE_OPERATOR_AFTER_OR_EQUAL))
    return mod.Filters(**{"or": [mod.FiltersAnd(**{"and": [_session_cond(table, s), cond]})
                                 for s in session_ids]})


def status_filters(table: str, session_ids: Sequence[str], status: str):
    """Rows of any of ``session_ids`` in ``status`` (a name without the enum prefix)."""
    mod, field, _, _ = _TABLES[table]
    prefix = "TASK_STATUS_" if table == "tasks" else "RESULT_STATUS_"
    enum = mod.FilterStatus.DESCRIPTOR.fields_by_name["value"].enum_type
    cond = mod.FilterField(field=field("STATUS"), filter_status=mod.FilterStatus(
        value=enum.values_by_name[prefix + status].number,
        operator=fc.FILTER_STATUS_OPERATOR_EQUAL))
    return mod.Filters(**{"or": [mod.FiltersAnd(**{"and": [_session_cond(table, s), cond]})
                                 for s in session_ids]})


def list_request(table: str, filters, page: int, page_size: int):
    if table == "tasks":
        return tasks_common_pb2.ListTasksRequest(
            page=page, page_size=page_size, filters=filters, with_errors=True,
            sort=tasks_common_pb2.ListTasksRequest.Sort(field=_task_field("TASK_ID"), direction=ASC))
    if table == "results":
        return results_common_pb2.ListResultsRequest(
            page=page, page_size=page_size, filters=filters,
            sort=results_common_pb2.ListResultsRequest.Sort(field=_result_field("RESULT_ID"),
                                                            direction=ASC))
    if table == "sessions":
        return sessions_common_pb2.ListSessionsRequest(
            page=page, page_size=page_size, filters=filters, with_task_options=True,
            sort=sessions_common_pb2.ListSessionsRequest.Sort(field=_session_field("SESSION_ID"),
                                                              direction=ASC))
    if table == "partitions":
        field = partitions_fields_pb2.PartitionField(
            partition_raw_field=partitions_fields_pb2.PartitionRawField(
                field=partitions_fields_pb2.PARTITION_RAW_ENUM_FIELD_ID))
        return partitions_common_pb2.ListPartitionsRequest(
            page=page, page_size=page_size, filters=filters,
            sort=partitions_common_pb2.ListPartitionsRequest.Sort(field=field, direction=ASC))
    raise KeyError(table)


def newest_sessions_request(page: int, page_size: int, filters=None):
    """A ListSessions page, the sessions created last first (``aksnap sessions``)."""
    return sessions_common_pb2.ListSessionsRequest(
        page=page, page_size=page_size, filters=filters or sessions_filters_pb2.Filters(),
        with_task_options=False,
        sort=sessions_common_pb2.ListSessionsRequest.Sort(field=_session_field("CREATED_AT"),
                                                          direction=DESC))


def session_prefix_filters(prefix: str):
    """Sessions whose id starts with ``prefix`` (an id given by its beginning)."""
    m = sessions_filters_pb2
    return m.Filters(**{"or": [m.FiltersAnd(**{"and": [m.FilterField(
        field=_session_field("SESSION_ID"),
        filter_string=fc.FilterString(value=prefix, operator=_STR_PREFIX))]})]})


def result_prefix_filters(prefix: str):
    """Results whose id starts with ``prefix``."""
    m = results_filters_pb2
    return m.Filters(**{"or": [m.FiltersAnd(**{"and": [m.FilterField(
        field=_result_field("RESULT_ID"),
        filter_string=fc.FilterString(value=prefix, operator=_STR_PREFIX))]})]})


def all_partitions_filters():
    return partitions_filters_pb2.Filters()


def _ts(dt: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt)
    return t


def session_filters(ids: Sequence[str] = (), status: str | None = None,
                    created_after: datetime | None = None,
                    created_before: datetime | None = None):
    """The session selection as one ``Filters``: (id1 OR id2 ...) AND status AND dates.

    ArmoniK's filters are an OR of ANDs, so the id alternatives each carry the other conditions.
    """
    m = sessions_filters_pb2
    common = []
    if status is not None:
        common.append(m.FilterField(
            field=_session_field("STATUS"),
            filter_status=m.FilterStatus(value=f"SESSION_STATUS_{status}",
                                         operator=fc.FILTER_STATUS_OPERATOR_EQUAL)))
    if created_after is not None:
        common.append(m.FilterField(
            field=_session_field("CREATED_AT"),
            filter_date=fc.FilterDate(value=_ts(created_after),
                                      operator=fc.FILTER_DATE_OPERATOR_AFTER_OR_EQUAL)))
    if created_before is not None:
        common.append(m.FilterField(
            field=_session_field("CREATED_AT"),
            filter_date=fc.FilterDate(value=_ts(created_before),
                                      operator=fc.FILTER_DATE_OPERATOR_BEFORE)))
    if ids:
        ands = [m.FiltersAnd(**{"and": [m.FilterField(
            field=_session_field("SESSION_ID"),
            filter_string=fc.FilterString(value=i, operator=_STR_EQ))] + common}) for i in ids]
    elif common:
        ands = [m.FiltersAnd(**{"and": common})]
    else:
        ands = []
    return m.Filters(**{"or": ands})


def count_tasks_request(session_ids: str | Sequence[str]):
    """Task counts by status of one session, or of a group of sessions together."""
    filters = (row_filters("tasks", session_ids) if isinstance(session_ids, str)
               else sessions_filters("tasks", session_ids))
    return tasks_common_pb2.CountTasksByStatusRequest(filters=filters)


def versions_request():
    return versions_common_pb2.ListVersionsRequest()
