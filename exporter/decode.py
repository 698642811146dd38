"""Serialized ArmoniK list responses -> Arrow record batches in the bundle's schemas.

A page arrives as the raw bytes of a ``List*Response``. ptars (Rust) turns those bytes into an
Arrow record batch using the armonik descriptors, so no Python object is ever built per task;
the rest is a handful of vectorised Arrow operations per page:

- enums arrive as their full names (``TASK_STATUS_COMPLETED``) and lose the prefix;
- an unset timestamp is ``seconds = 0`` on the wire (ArmoniK's convention): epoch -> null;
- task options are flattened into columns, id lists stay list columns.

The exporter builds its own handlers: it depends on the armonik protos and ptars, never on the
simulated control plane in ``aksnap.fixtures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc
from armonik.protogen.common import (
    partitions_common_pb2,
    results_common_pb2,
    sessions_common_pb2,
    tasks_common_pb2,
    versions_common_pb2,
)
from ptars import HandlerPool, PtarsConfig

from aksnap.bundle import (
    DUR,
    PARTITIONS_SCHEMA,
    RESULTS_SCHEMA,
    SESSIONS_SCHEMA,
    STR_LIST,
    STR_MAP,
    TASK_OPTIONS_STRUCT,
    TASKS_SCHEMA,
    TIMESTAMP_COLUMNS,
    TS,
)

PTARS_CONFIG = PtarsConfig(enum_repr="string", timestamp_unit="us", duration_unit="us")

# The table name, the response message, and the name of its repeated field.
RESPONSES = {
    "tasks": (tasks_common_pb2.ListTasksDetailedResponse, "tasks"),
    "results": (results_common_pb2.ListResultsResponse, "results"),
    "sessions": (sessions_common_pb2.ListSessionsResponse, "sessions"),
    "partitions": (partitions_common_pb2.ListPartitionsResponse, "partitions"),
}

_EPOCH = pa.scalar(0, pa.timestamp("us", tz="UTC"))


@lru_cache(maxsize=1)
def handler_pool() -> HandlerPool:
    return HandlerPool(
        [tasks_common_pb2.DESCRIPTOR, results_common_pb2.DESCRIPTOR,
         sessions_common_pb2.DESCRIPTOR, partitions_common_pb2.DESCRIPTOR,
         versions_common_pb2.DESCRIPTOR],
        config=PTARS_CONFIG,
    )


@lru_cache(maxsize=None)
def response_handler(table: str):
    message, _ = RESPONSES[table]
    return handler_pool().get_for_message(message.DESCRIPTOR)


@dataclass
class Page:
    """One decoded page: rows in the bundle schema, and the envelope's counters."""

    rows: pa.RecordBatch
    total: int
    nbytes: int  # size of the serialized response, to keep pages under the receive limit


def decode_page(table: str, raw: bytes) -> Page:
    """Decode the raw bytes of one ``List*Response`` into bundle-schema rows."""
    rb = response_handler(table).list_to_record_batch([raw])
    items = rb.column(RESPONSES[table][1])
    total = rb.column("total")[0].as_py()
    wire = items.flatten()  # a StructArray of TaskDetailed / ResultRaw / ...
    return Page(CONVERTERS[table](wire), int(total), len(raw))


# ----------------------------------------------------------------------------- helpers


def _as(a: pa.Array, t: pa.DataType) -> pa.Array:
    """``a`` as type ``t``; itself when it is already (a no-op cast is still a call)."""
    return a if a.type == t else a.cast(t)


def _ts(a: pa.Array) -> pa.Array:
    """Unset timestamps are seconds=0 on the wire: store them as null."""
    a = _as(a, TS)
    return pc.if_else(pc.equal(a, _EPOCH), pa.scalar(None, TS), a)


def _enum(a: pa.Array, prefix: str) -> pa.Array:
    # A page has a handful of distinct statuses: strip the prefix once per distinct value.
    enc = a.dictionary_encode()
    names = pc.replace_substring_regex(enc.dictionary, pattern=f"^{prefix}", replacement="")
    return names.take(enc.indices)


def _list(a: pa.Array) -> pa.Array:
    # ptars's lists declare their items non-null: the same buffers, viewed as the bundle's type
    # (a cast copies the offsets, and costs a call as long).
    if a.type == STR_LIST:
        return a
    if pa.types.is_list(a.type) and a.type.value_type == pa.string():
        return a.view(STR_LIST)
    return a.cast(STR_LIST)


def _map(a: pa.Array) -> pa.Array:
    if a.type == STR_MAP:
        return a
    if (pa.types.is_map(a.type) and a.type.key_type == pa.string()
            and a.type.item_type == pa.string()):
        return a.view(STR_MAP)
    return a.cast(STR_MAP)


def _dur(a: pa.Array) -> pa.Array:
    return _as(a, DUR)


def _fields(struct: pa.StructArray) -> dict[str, pa.Array]:
    """Child arrays of a struct, with the struct's own nulls pushed down into them."""
    if struct.null_count == 0:
        return {struct.type.field(i).name: struct.field(i) for i in range(struct.type.num_fields)}
    return {struct.type.field(i).name: a for i, a in enumerate(struct.flatten())}


def _options(opts: dict[str, pa.Array]) -> dict[str, pa.Array]:
    return {
        "max_duration": _dur(opts["max_duration"]),
        "max_retries": _as(opts["max_retries"], pa.int32()),
        "priority": _as(opts["priority"], pa.int32()),
        "partition_id": opts["partition_id"],
        "application_name": opts["application_name"],
        "application_version": opts["application_version"],
        "application_namespace": opts["application_namespace"],
        "application_service": opts["application_service"],
        "engine_type": opts["engine_type"],
        "options": _map(opts["options"]),
    }


def _batch(schema: pa.Schema, cols: dict[str, pa.Array]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([_as(cols[f.name], f.type) for f in schema], schema=schema)


# ----------------------------------------------------------------------------- per table


def tasks_from_wire(w: pa.StructArray) -> pa.RecordBatch:
    f = _fields(w)
    out = _fields(f["output"])
    opts = _options(_fields(f["options"]))
    cols = {
        "task_id": f["id"],
        "session_id": f["session_id"],
        "status": _enum(f["status"], "TASK_STATUS_"),
        "status_message": f["status_message"],
        "owner_pod_id": f["owner_pod_id"],
        "pod_hostname": f["pod_hostname"],
        "initial_task_id": f["initial_task_id"],
        "created_by": f["created_by"],
        "payload_id": f["payload_id"],
        "parent_task_ids": _list(f["parent_task_ids"]),
        "data_dependencies": _list(f["data_dependencies"]),
        "expected_output_ids": _list(f["expected_output_ids"]),
        "retry_of_ids": _list(f["retry_of_ids"]),
        "output_success": out["success"],
        "output_error": out["error"],
        **{k: v for k, v in opts.items()},
    }
    for name in TIMESTAMP_COLUMNS["tasks"]:
        cols[name] = _ts(f[name])
    for name in ("creation_to_end_duration", "processing_to_end_duration",
                 "received_to_end_duration"):
        cols[name] = _dur(f[name])
    return _batch(TASKS_SCHEMA, cols)


def results_from_wire(w: pa.StructArray) -> pa.RecordBatch:
    f = _fields(w)
    cols = {
        "result_id": f["result_id"],
        "session_id": f["session_id"],
        "name": f["name"],
        "status": _enum(f["status"], "RESULT_STATUS_"),
        "owner_task_id": f["owner_task_id"],
        "created_by": f["created_by"],
        **{name: _ts(f[name]) for name in TIMESTAMP_COLUMNS["results"]},
        "size": f["size"],
        "opaque_id": f["opaque_id"],
        "manual_deletion": f["manual_deletion"],
    }
    return _batch(RESULTS_SCHEMA, cols)


def sessions_from_wire(w: pa.StructArray) -> pa.RecordBatch:
    f = _fields(w)
    opts_struct = f["options"]
    opts = _options(_fields(opts_struct))
    options = pa.StructArray.from_arrays(
        [_as(opts[fld.name], fld.type) for fld in TASK_OPTIONS_STRUCT],
        fields=list(TASK_OPTIONS_STRUCT),
        mask=opts_struct.is_null() if opts_struct.null_count else None,
    )
    cols = {
        "session_id": f["session_id"],
        "status": _enum(f["status"], "SESSION_STATUS_"),
        "client_submission": f["client_submission"],
        "worker_submission": f["worker_submission"],
        "partition_ids": _list(f["partition_ids"]),
        "options": options,
        "duration": _dur(f["duration"]),
    }
    for name in TIMESTAMP_COLUMNS["sessions"]:
        cols[name] = _ts(f[name])
    return _batch(SESSIONS_SCHEMA, cols)


def partitions_from_wire(w: pa.StructArray) -> pa.RecordBatch:
    f = _fields(w)
    cols = {
        "partition_id": f["id"],
        "parent_partition_ids": _list(f["parent_partition_ids"]),
        "pod_reserved": f["pod_reserved"],
        "pod_max": f["pod_max"],
        "priority": f["priority"],
        "preemption_percentage": f["preemption_percentage"],
        "pod_configuration": _map(f["pod_configuration"]),
    }
    return _batch(PARTITIONS_SCHEMA, cols)


CONVERTERS = {
    "tasks": tasks_from_wire,
    "results": results_from_wire,
    "sessions": sessions_from_wire,
    "partitions": partitions_from_wire,
}

def versions_from_raw(raw: bytes) -> dict[str, str]:
    msg = versions_common_pb2.ListVersionsResponse.FromString(raw)
    return {"core": msg.core, "api": msg.api}


def status_counts_from_raw(raw: bytes) -> dict[str, int]:
    """A CountTasksByStatusResponse (a handful of entries): status name -> count."""
    from armonik.protogen.common import task_status_pb2

    msg = tasks_common_pb2.CountTasksByStatusResponse.FromString(raw)
    return {task_status_pb2.TaskStatus.Name(s.status).removeprefix("TASK_STATUS_"): s.count
            for s in msg.status}
