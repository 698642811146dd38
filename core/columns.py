"""The column catalogue: every fact about every column of the bundle format, in one place.

The schemas (:data:`aksnap.bundle.SCHEMAS`) say each column's type; this catalogue says what
the readers and writers of the format need to know besides, one :class:`Column` per column:

- ``ids``: the kind of ArmoniK id it holds (``task``, ``result``, ``session``, ``partition``),
  ``task[]`` for a list of them, None for no id; ``key``: it identifies the row (the exporter's
  dedup, sort and shard key; the analyzer resolves an id prefix against it);
- ``redact``: what ``aksnap redact`` does with it (:mod:`aksnap.redact`: a pseudonym kind,
  ``id``, ``message``, ``status``, ``options``, ``task_options``, ``opaque``, or ``keep`` for
  numbers, times, durations and flags; a ``keep`` column whose type holds text has no rule, so
  redaction stops: it fails closed);
- ``dictionary``: dictionary-encoded in Parquet (few distinct values; the writer encodes it and
  ``aksnap check`` expects the dictionary page, :mod:`aksnap.parquet_verify`);
- ``never_null``: a reader refuses a null there (the analyzer interprets it structurally: a null
  would silently drop an edge or a status); ``required``: not nullable in the schema either
  (the row's identity and status), refused by every open before any query
  (``queries/_validate.sql``);
- ``timestamp``: a moment (unset on the wire is ``seconds = 0``, stored as null);
  ``timeline``: an event of the row's life, listed in lifecycle order (the task view's
  timeline, the phases, the bundle's latest timestamp).

The status vocabularies and their named sets are here too: they are the facts of the
``status`` columns. Python imports the sets; SQL reads them from the ``status_sets`` table
(:func:`status_sets_table`), never from a literal list.

**What "failed" means** (ArmoniK.Core's semantics, ``docs/analyzer.md``): a task *failed* when
it ended in ERROR or TIMEOUT, its own failure or one propagated from a failed input (ERROR
without ``started_at``); nothing will retry it. A RETRIED task is an attempt that failed and
was retried: the next attempt carries on, so it is counted as *retried*, never as failed.
CANCELLED is not a failure of the task's code (a client or a retried parent stopped it): it is
*cancelled*. Those and *success* (COMPLETED) are the final statuses; every other status is
*open* (CANCELLING too: it is not final yet). So success, failed, retried, cancelled and open
partition the statuses, and every count of them adds up to the tasks. *Lost* is what the
graph calls bad: the task will never deliver its outputs (failed, cancelled or CANCELLING).

``tests/test_columns.py`` fails when a column of the schemas has no entry here, an entry names
no column, or a fact contradicts the schema (a timestamp flag on a non-timestamp, an id kind
on a number, ``required`` on a nullable field); ``tests/test_status_sets.py`` runs analyze,
``query throughput``, the report and the watch's state on the same bundles and compares their
counts of each set.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# -- the status vocabularies and their sets -------------------------------------------------

# Stored as ArmoniK's names without the enum prefix (TASK_STATUS_COMPLETED -> "COMPLETED").
TASK_STATUSES = (
    "UNSPECIFIED", "CREATING", "SUBMITTED", "DISPATCHED", "COMPLETED", "ERROR", "TIMEOUT",
    "CANCELLING", "CANCELLED", "PROCESSING", "PROCESSED", "RETRIED", "PENDING", "PAUSED",
)
RESULT_STATUSES = ("UNSPECIFIED", "CREATED", "COMPLETED", "ABORTED", "NOTFOUND", "DELETED")
SESSION_STATUSES = ("UNSPECIFIED", "RUNNING", "CANCELLED", "PAUSED", "CLOSED", "PURGED", "DELETED")
#: The status vocabulary of each table (a status outside it is refused, never guessed).
STATUS_DOMAIN: dict[str, tuple[str, ...]] = {
    "sessions": SESSION_STATUSES,
    "tasks": TASK_STATUSES,
    "results": RESULT_STATUSES,
}

#: Final: nothing will change the task any more (ArmoniK.Core; PROCESSED is in the enum but
#: Core never sets it, so it is not final here).
TASK_FINAL_STATUSES = ("COMPLETED", "CANCELLED", "ERROR", "RETRIED", "TIMEOUT")
#: Success: the task delivered its outputs (or handed them to its subtasks).
TASK_SUCCESS_STATUSES = ("COMPLETED",)
#: Failed: the task ended in failure and nothing retries it: its own error or timeout, or an
#: error propagated from a failed input (ERROR without started_at).
TASK_FAILED_STATUSES = ("ERROR", "TIMEOUT")
#: Retried: an attempt that failed and was retried (the next attempt carries on).
TASK_RETRIED_STATUSES = ("RETRIED",)
#: Cancelled: stopped by a client or by a retried parent, not by a failure of its own.
TASK_CANCELLED_STATUSES = ("CANCELLED",)
#: Open: not final, the task may still change (CANCELLING included: it is not final yet).
TASK_OPEN_STATUSES = tuple(s for s in TASK_STATUSES if s not in TASK_FINAL_STATUSES)
#: Waiting (open): not yet handed to an agent (its inputs, the queue or the session hold it).
TASK_WAITING_STATUSES = ("CREATING", "PENDING", "SUBMITTED", "PAUSED")
#: In progress (open): with an agent or its worker.
TASK_IN_PROGRESS_STATUSES = ("DISPATCHED", "PROCESSING", "PROCESSED")
#: Lost: the task will never deliver its outputs (the graph's "bad": root causes and what
#: they explain): failed, cancelled, or on its way to CANCELLED.
TASK_LOST_STATUSES = (*TASK_FAILED_STATUSES, *TASK_CANCELLED_STATUSES, "CANCELLING")

#: Results: open while their data may still come (CREATED: awaiting data), final otherwise.
RESULT_OPEN_STATUSES = ("UNSPECIFIED", "CREATED")
RESULT_SUCCESS_STATUSES = ("COMPLETED",)
#: Lost: the data will never be there (its producer failed or was cancelled, or it was
#: deleted).
RESULT_LOST_STATUSES = ("ABORTED", "DELETED", "NOTFOUND")
RESULT_FINAL_STATUSES = (*RESULT_SUCCESS_STATUSES, *RESULT_LOST_STATUSES)

#: Every named set, by table: the only spelling of each, read by Python and (through
#: ``status_sets``) by SQL. A set a table does not have is empty for it (results are never
#: "failed" or "retried": their producer is).
STATUS_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "tasks": {
        "final": TASK_FINAL_STATUSES, "success": TASK_SUCCESS_STATUSES,
        "failed": TASK_FAILED_STATUSES, "retried": TASK_RETRIED_STATUSES,
        "cancelled": TASK_CANCELLED_STATUSES, "open": TASK_OPEN_STATUSES,
        "waiting": TASK_WAITING_STATUSES, "in_progress": TASK_IN_PROGRESS_STATUSES,
        "lost": TASK_LOST_STATUSES,
    },
    "results": {
        "final": RESULT_FINAL_STATUSES, "success": RESULT_SUCCESS_STATUSES,
        "open": RESULT_OPEN_STATUSES, "waiting": RESULT_OPEN_STATUSES,
        "lost": RESULT_LOST_STATUSES,
    },
}
SET_NAMES = tuple(STATUS_SETS["tasks"])
#: The sets every task is in exactly one of (their counts add up to the tasks).
TASK_PARTITION = ("success", "failed", "retried", "cancelled", "open")


def set_counts(table: str, by_status: dict[str, int]) -> dict[str, int]:
    """How many rows of ``table`` are in each set, from counts by status."""
    sets = STATUS_SETS[table]
    return {name: sum(by_status.get(s, 0) for s in sets.get(name, ())) for name in SET_NAMES}


def status_sets_table() -> pa.Table:
    """The status sets as a table (``status_sets``: ``tbl``, ``status``, then one boolean per
    set of :data:`SET_NAMES`), so SQL uses the same sets as Python, never its own spelling."""
    cols: dict[str, list] = {k: [] for k in ("tbl", "status", *SET_NAMES)}
    for tbl, sets in STATUS_SETS.items():
        for st in STATUS_DOMAIN[tbl]:
            cols["tbl"].append(tbl)
            cols["status"].append(st)
            for name in SET_NAMES:
                cols[name].append(st in sets.get(name, ()))
    return pa.table(cols)


# -- the columns ------------------------------------------------------------------------------

#: Redaction rules that are not a pseudonym kind (see :mod:`aksnap.redact`).
KEEP = "keep"


@dataclass(frozen=True)
class Column:
    """One column's facts (see the module docstring)."""

    name: str
    ids: str | None = None
    key: bool = False
    redact: str = KEEP
    dictionary: bool = False
    never_null: bool = False
    required: bool = False
    timestamp: bool = False
    timeline: bool = False
    #: an id prefix of kind ``ids`` is resolved against this column too (a session known by
    #: its tasks, even without a session row)
    resolves: bool = False


def _key(name: str, ids: str, redact: str = "id") -> Column:
    return Column(name, ids=ids, key=True, redact=redact, never_null=True, required=True)


def _ref(name: str, ids: str) -> Column:
    """An id (or id list) the analyzer follows: never null."""
    return Column(name, ids=ids, redact="id", never_null=True)


def _status(dictionary: bool = True) -> Column:
    return Column("status", redact="status", dictionary=dictionary, never_null=True,
                  required=True)


def _text(name: str, redact: str) -> Column:
    """A string with few distinct values (names, hosts, messages): dictionary-encoded."""
    return Column(name, redact=redact, dictionary=True)


def _ts(name: str, timeline: bool = True) -> Column:
    return Column(name, timestamp=True, timeline=timeline)


_APPLICATION = ("application_name", "application_version", "application_namespace",
                "application_service", "engine_type")

#: Every column of every table, in the schema's order.
CATALOGUE: dict[str, tuple[Column, ...]] = {
    "sessions": (
        _key("session_id", "session"),
        _status(),
        Column("client_submission"),
        Column("worker_submission"),
        Column("partition_ids", ids="partition[]", redact="partition"),
        Column("options", redact="task_options"),
        *(_ts(c) for c in ("created_at", "cancelled_at", "closed_at", "purged_at", "deleted_at")),
        Column("duration"),
    ),
    "tasks": (
        _key("task_id", "task"),
        Column("session_id", ids="session", redact="id", dictionary=True, never_null=True,
               required=True, resolves=True),
        _status(),
        _text("status_message", "message"),
        _text("owner_pod_id", "pod"),
        _text("pod_hostname", "host"),
        _ref("initial_task_id", "task"),
        _ref("created_by", "task"),          # "" = the client; a retry: the previous attempt
        _ref("payload_id", "result"),
        _ref("parent_task_ids", "task[]"),   # [session_id, ..., direct parent]
        _ref("data_dependencies", "result[]"),
        _ref("expected_output_ids", "result[]"),
        _ref("retry_of_ids", "task[]"),
        Column("output_success"),
        _text("output_error", "message"),
        Column("partition_id", ids="partition", redact="partition", dictionary=True),
        Column("priority"),
        Column("max_retries"),
        Column("max_duration"),
        *(_text(c, c) for c in _APPLICATION),
        Column("options", redact="options"),
        *(_ts(c) for c in ("created_at", "submitted_at", "received_at", "acquired_at",
                           "fetched_at", "started_at", "processed_at", "ended_at")),
        _ts("pod_ttl", timeline=False),      # Core sends started_at again: not an event
        Column("creation_to_end_duration"),
        Column("processing_to_end_duration"),
        Column("received_to_end_duration"),
    ),
    "results": (
        _key("result_id", "result"),
        Column("session_id", ids="session", redact="id", dictionary=True, never_null=True,
               required=True),
        _text("name", "name"),
        _status(),
        _ref("owner_task_id", "task"),       # "" = no owner
        _ref("created_by", "task"),          # "" = the client
        _ts("created_at"),
        _ts("completed_at"),
        Column("size"),
        Column("opaque_id", redact="opaque"),
        Column("manual_deletion"),
    ),
    "partitions": (
        _key("partition_id", "partition", redact="partition"),
        Column("parent_partition_ids", ids="partition[]", redact="partition"),
        Column("pod_reserved"),
        Column("pod_max"),
        Column("priority"),
        Column("preemption_percentage"),
        Column("pod_configuration", redact="options"),
    ),
}


def columns(table: str, **facts) -> tuple[str, ...]:
    """The names of ``table``'s columns whose facts equal ``facts``, in schema order:
    ``columns("tasks", timestamp=True)``."""
    return tuple(c.name for c in CATALOGUE[table]
                 if all(getattr(c, k) == v for k, v in facts.items()))


def column(table: str, name: str) -> Column:
    for c in CATALOGUE[table]:
        if c.name == name:
            return c
    raise KeyError(f"{table}.{name}")


# -- derived: what the readers and writers used to spell each for itself ----------------------

#: The column that identifies a row, per table (the exporter's dedup, sort and shard key).
ID_COLUMN: dict[str, str] = {t: columns(t, key=True)[0] for t in CATALOGUE}
#: Dictionary-encoded in Parquet (the writer's ``use_dictionary``, what check expects).
DICTIONARY_COLUMNS: dict[str, list[str]] = {t: list(columns(t, dictionary=True)) for t in CATALOGUE}
#: Random GUIDs: the task and result ids and their lists (not dictionary-encoded). Written
#: without min/max statistics (on random ids they prune nothing, cost time and bytes, and are
#: a footer that could lie) and as DELTA_LENGTH_BYTE_ARRAY (the lengths packed apart, not four
#: bytes before every id): ``aksnap.bundle.parquet_writer_options``.
GUID_COLUMNS: dict[str, tuple[str, ...]] = {
    t: tuple(c.name for c in CATALOGUE[t]
             if not c.dictionary and (c.ids or "").rstrip("[]") in ("task", "result"))
    for t in CATALOGUE}
#: Never null: a reader refuses a null there (``column_problems``, ``aksnap check``).
NEVER_NULL: dict[str, tuple[str, ...]] = {t: columns(t, never_null=True) for t in CATALOGUE}
#: Never null and refused by every open, before any query (``queries/_validate.sql``).
REQUIRED: dict[str, tuple[str, ...]] = {t: columns(t, required=True) for t in CATALOGUE}
#: Moments (unset on the wire -> null), per table.
TIMESTAMP_COLUMNS: dict[str, tuple[str, ...]] = {t: columns(t, timestamp=True) for t in CATALOGUE}
#: A task's and a result's life, event by event, in order.
TASK_TIMESTAMPS = columns("tasks", timeline=True)
RESULT_TIMESTAMPS = columns("results", timeline=True)
#: The redaction rule of every column (:data:`aksnap.redact.PLAN` is derived from it).
REDACTION: dict[str, dict[str, str]] = {t: {c.name: c.redact for c in CATALOGUE[t]}
                                        for t in CATALOGUE}
ID_KINDS = ("task", "result", "session", "partition")


def id_sources(kind: str) -> tuple[tuple[str, str], ...]:
    """(table, column) pairs whose values are the ids of ``kind`` a bundle holds: the key of
    that kind's table, and the columns that name such objects by their rows (``resolves``)."""
    return tuple((t, c.name) for t in CATALOGUE for c in CATALOGUE[t]
                 if c.ids == kind and (c.key or c.resolves))


def catalogue_problems(schemas: dict[str, pa.Schema]) -> list[str]:
    """Why the catalogue does not describe ``schemas`` exactly (empty when it does): a column
    with no entry, an entry naming no column, or a fact its type or nullability contradicts."""
    problems = []
    for t in sorted(set(schemas) | set(CATALOGUE)):
        if t not in CATALOGUE or t not in schemas:
            problems.append(f"table {t} is in {'the schemas' if t in schemas else 'the catalogue'} only")
            continue
        names = [c.name for c in CATALOGUE[t]]
        schema = schemas[t]
        for n in schema.names:
            if n not in names:
                problems.append(f"{t}.{n} has no catalogue entry")
        for n in names:
            if n not in schema.names:
                problems.append(f"the catalogue's {t}.{n} names no column")
        if len(set(names)) != len(names):
            problems.append(f"{t} has a column listed twice in the catalogue")
        if [n for n in names if n in schema.names] != [n for n in schema.names if n in names]:
            problems.append(f"{t}'s catalogue is not in the schema's order")
        if len(columns(t, key=True)) != 1:
            problems.append(f"{t} has {len(columns(t, key=True))} key columns, not one")
        for c in CATALOGUE[t]:
            if c.name not in schema.names:
                continue
            f = schema.field(c.name)
            typ = f.type
            is_list = pa.types.is_list(typ)
            leaf = typ.value_type if is_list else typ
            if c.timestamp != pa.types.is_timestamp(typ):
                problems.append(f"{t}.{c.name}: the timestamp flag says {c.timestamp}, the type is {typ}")
            if c.timeline and not c.timestamp:
                problems.append(f"{t}.{c.name} is on the timeline but is not a timestamp")
            if c.ids is not None:
                kind = c.ids.removesuffix("[]")
                if kind not in ID_KINDS or not pa.types.is_string(leaf) \
                        or is_list != c.ids.endswith("[]"):
                    problems.append(f"{t}.{c.name}: id kind {c.ids!r} does not fit {typ}")
            if (c.key or c.resolves) and (c.ids is None or is_list):
                problems.append(f"{t}.{c.name} is a key but holds no single id")
            if c.dictionary and not pa.types.is_string(typ):
                problems.append(f"{t}.{c.name} is dictionary-encoded but is {typ}, not a string")
            if c.required != (not f.nullable):
                problems.append(f"{t}.{c.name}: required is {c.required} but the schema's field "
                                f"is {'nullable' if f.nullable else 'not nullable'}")
            if c.required and not c.never_null:
                problems.append(f"{t}.{c.name} is required but not never-null")
            if (c.redact == "status") != (c.name == "status" and t in STATUS_DOMAIN):
                problems.append(f"{t}.{c.name}: only a status column is redacted as a status")
    return problems
