"""Hand-drawn bundles for tests, examples and docs: rows as dicts, everything else defaulted.

>>> from datetime import datetime, timezone
>>> T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> make_bundle(tmp / "b", tasks=[task("t1", outputs=["r1"], status="COMPLETED", t0=T0)],
...             results=[result("r1", owner="t1", status="COMPLETED", completed=T0)])
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from aksnap.bundle import SCHEMAS, write_bundle

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
SESSION = "s1"


def at(seconds: float | None) -> datetime | None:
    """T0 + seconds (None stays None): tests speak in seconds from the start of the run."""
    return None if seconds is None else T0 + timedelta(seconds=seconds)


def task(task_id: str, *, session: str = SESSION, status: str = "COMPLETED",
         deps: list[str] | None = None, payload: str | None = None,
         outputs: list[str] | None = None, parents: list[str] | None = None,
         created_by: str = "", retry_of: list[str] | None = None, initial: str | None = None,
         partition: str = "default", message: str = "", times: dict[str, float | None] | None = None,
         **extra: Any) -> dict[str, Any]:
    """A task row. ``times`` maps timestamp names without ``_at`` (created, submitted, acquired,
    fetched, started, processed, ended) to seconds after T0."""
    row: dict[str, Any] = {
        "task_id": task_id, "session_id": session, "status": status, "status_message": message,
        "initial_task_id": initial or task_id, "created_by": created_by,
        "payload_id": payload if payload is not None else f"{task_id}-payload",
        "parent_task_ids": parents if parents is not None else [session],
        "data_dependencies": deps or [], "expected_output_ids": outputs or [],
        "retry_of_ids": retry_of or [], "partition_id": partition, "max_retries": 2,
        "priority": 1, "output_success": status == "COMPLETED",
        "output_error": message if status in ("ERROR", "TIMEOUT", "RETRIED") else "",
    }
    for k, v in (times or {}).items():
        row[f"{k}_at"] = at(v)
    row.update(extra)
    return row


def result(result_id: str, *, session: str = SESSION, status: str = "COMPLETED",
           owner: str = "", created_by: str = "", created: float | None = 0.0,
           completed: float | None = None, **extra: Any) -> dict[str, Any]:
    row = {"result_id": result_id, "session_id": session, "name": result_id, "status": status,
           "owner_task_id": owner, "created_by": created_by, "created_at": at(created),
           "completed_at": at(completed), "size": 8 if status == "COMPLETED" else 0,
           "manual_deletion": False}
    row.update(extra)
    return row


def payloads_for(tasks: list[dict[str, Any]], created: float = 0.0) -> list[dict[str, Any]]:
    """One COMPLETED payload result per task (uploaded by whoever created the task)."""
    return [result(t["payload_id"], session=t["session_id"], created_by=t["created_by"],
                   created=created, completed=created)
            for t in tasks if t["payload_id"]]


def table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = SCHEMAS[name]
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.table({k: pa.array(v, type=schema.field(k).type) for k, v in cols.items()},
                    schema=schema)


def make_bundle(out: str | os.PathLike, *, tasks: list[dict[str, Any]],
                results: list[dict[str, Any]], sessions: list[dict[str, Any]] | None = None,
                partitions: list[dict[str, Any]] | None = None, with_payloads: bool = True,
                snapshot: float | None = 100.0, overwrite: bool = True) -> Path:
    """Write a bundle; payload results are added for every task unless ``with_payloads=False``;
    ``snapshot`` (seconds after T0) becomes the manifest's ``exported_at``."""
    results = list(results)
    if with_payloads:
        known = {r["result_id"] for r in results}
        results += [r for r in payloads_for(tasks) if r["result_id"] not in known]
    if sessions is None:
        ids = sorted({t["session_id"] for t in tasks} | {r["session_id"] for r in results})
        sessions = [{"session_id": s, "status": "RUNNING", "created_at": at(0.0),
                     "partition_ids": ["default"]} for s in ids]
    if partitions is None:
        partitions = [{"partition_id": "default", "parent_partition_ids": [], "pod_reserved": 1,
                       "pod_max": 10, "priority": 1, "preemption_percentage": 0}]
    manifest = {"exported_at": at(snapshot).isoformat()} if snapshot is not None else {}
    return write_bundle(out, {"sessions": table("sessions", sessions),
                              "tasks": table("tasks", tasks),
                              "results": table("results", results),
                              "partitions": table("partitions", partitions)},
                        manifest_fields=manifest, overwrite=overwrite)
