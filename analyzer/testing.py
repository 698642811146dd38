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
    """One COMPLETED payload result per distinct payload id (uploaded by whoever created the
    first task using it; retries share their first attempt's payload)."""
    out, seen = [], set()
    for t in tasks:
        if t["payload_id"] and t["payload_id"] not in seen:
            seen.add(t["payload_id"])
            out.append(result(t["payload_id"], session=t["session_id"], created_by=t["created_by"],
                              created=created, completed=created))
    return out


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


def _ts(created, submitted=None, acquired=None, fetched=None, started=None, processed=None,
        ended=None) -> dict[str, float | None]:
    return dict(created=created, submitted=submitted, acquired=acquired, fetched=fetched,
                started=started, processed=processed, ended=ended)


def failure_bundle(out: str | os.PathLike) -> Path:
    """Two sessions, drawn (times in seconds after T0; snapshot at 100)::

        session s1
          t1 COMPLETED [0..10] ----> r1 ----------------------------+
          t2 RETRIED [0..5] -> t2###1 COMPLETED [5..12] -> r2 ------+--> t5 PROCESSING since 20 -> r5 -> t7 PENDING -> r7
          t3 ERROR ran [1.2..8] "division by zero" -> r3 ABORTED                                  |
             r1 + r3 -> t4 ERROR (propagated, never started) -> r4 ABORTED --+                    |
                                                      r4 + r5 -> t6 ERROR (propagated) -> r6 ABORTED
          t8 COMPLETED [0..3] spawns t9 COMPLETED [3..6] -> r9 -> t10 SUBMITTED since 6 -> r8
             r8 was t8's expected output; ownership moved to the aggregator t10

        session s2 (complete)
          u1 [0..5] -> q1 -> u2 [waits 0..5, queued 5..7, runs 7.5..9.5, ends 10] -> q2 (last, @10)
          u3 [0..2] -> q3

    Known answers: lineage(r6) root cause = t3 (explains r3, t4, r4, t6, r6 = 5 bad nodes);
    lineage(r7) frontier = [t5 PROCESSING for 80 s]; lineage(r8) frontier = [t10 SUBMITTED for
    94 s], owner chain t8 -> t10; critical path of s2 = u1 -> q1 -> u2 -> q2 over 10 s.
    """
    tasks = [
        task("t1", outputs=["r1"], times=_ts(0, .5, 1, 1.2, 1.5, 9.5, 10)),
        task("t2", status="RETRIED", outputs=["r2"], message="worker crashed",
             times=_ts(0, .5, 1, 1.1, 1.2, 5, 5)),
        task("t2###1", outputs=["r2"], created_by="t2", retry_of=["t2"], initial="t2",
             payload="t2-payload", times=_ts(5, 5.1, 6, 6.1, 6.2, 11.8, 12)),
        task("t3", status="ERROR", outputs=["r3"], message="division by zero in pricer",
             times=_ts(0, .5, 1, 1.1, 1.2, 7.9, 8)),
        task("t4", status="ERROR", deps=["r1", "r3"], outputs=["r4"],
             message="One of the input data is aborted. Dependency r3 of task t3",
             times=_ts(0, ended=8)),
        task("t5", status="PROCESSING", deps=["r1", "r2"], outputs=["r5"],
             times=_ts(0, 12, 19, 19.5, 20)),
        task("t6", status="ERROR", deps=["r4", "r5"], outputs=["r6"],
             message="One of the input data is aborted. Dependency r4 of task t4",
             times=_ts(0, ended=8)),
        task("t7", status="PENDING", deps=["r5"], outputs=["r7"], times=_ts(0)),
        task("t8", outputs=["r8"], times=_ts(0, .5, 1, 1.1, 1.2, 3, 3)),
        task("t9", outputs=["r9"], parents=["s1", "t8"], created_by="t8",
             times=_ts(3, 3.1, 3.5, 3.6, 3.7, 6, 6)),
        task("t10", status="SUBMITTED", deps=["r9"], outputs=["r8"], parents=["s1", "t8"],
             created_by="t8", times=_ts(3, 6)),
        task("u1", session="s2", outputs=["q1"], times=_ts(0, 0, 1, 1, 2, 5, 5)),
        task("u2", session="s2", deps=["q1"], outputs=["q2"], times=_ts(0, 5, 7, 7, 7.5, 9.5, 10)),
        task("u3", session="s2", outputs=["q3"], times=_ts(0, 0, .5, .5, 1, 2, 2)),
    ]
    results = [
        result("r1", owner="t1", completed=10),
        result("r2", owner="t2###1", completed=12),
        result("r3", owner="t3", status="ABORTED"),
        result("r4", owner="t4", status="ABORTED"),
        result("r5", owner="t5", status="CREATED"),
        result("r6", owner="t6", status="ABORTED"),
        result("r7", owner="t7", status="CREATED"),
        result("r8", owner="t10", status="CREATED"),
        result("r9", owner="t9", created_by="t8", created=3, completed=6),
        result("q1", session="s2", owner="u1", completed=5),
        result("q2", session="s2", owner="u2", completed=10),
        result("q3", session="s2", owner="u3", completed=2),
    ]
    # t9 and t10 were submitted by t8: their payloads come from t8, not from the client
    pay = payloads_for(tasks)
    for r in pay:
        if r["result_id"] in ("t9-payload", "t10-payload"):
            r["created_by"], r["created_at"], r["completed_at"] = "t8", at(3), at(3)
    return make_bundle(out, tasks=tasks, results=results + pay, with_payloads=False)


def anomaly_bundle(out: str | os.PathLike) -> Path:
    """A bundle with one of each graph anomaly ``check`` knows, drawn::

        orphan  CREATED result, no owner, no creator, nobody expects it  -> result with no producer
        a1 PENDING reads ghost (an id not in the bundle)                  -> missing reference
        a2 ERROR ran -> x2 ABORTED -> a3 PENDING                          -> task waiting on an aborted result
        c1 -> y1 -> c2 -> y2 -> c1 (both PENDING)                         -> cycle
        a4 COMPLETED without ended_at                                     -> status/timestamp contradiction
    """
    tasks = [
        task("a1", status="PENDING", deps=["ghost"], outputs=["x1"], times=_ts(0)),
        task("a2", status="ERROR", outputs=["x2"], message="boom", times=_ts(0, 1, 2, 2, 3, 4, 4)),
        task("a3", status="PENDING", deps=["x2"], outputs=["x3"], times=_ts(0)),
        task("c1", status="PENDING", deps=["y2"], outputs=["y1"], times=_ts(0)),
        task("c2", status="PENDING", deps=["y1"], outputs=["y2"], times=_ts(0)),
        task("a4", outputs=["x4"], times=_ts(0, 1, 2, 2, 3, 4, None)),
    ]
    results = [
        result("orphan", status="CREATED"),
        result("x1", owner="a1", status="CREATED"),
        result("x2", owner="a2", status="ABORTED"),
        result("x3", owner="a3", status="CREATED"),
        result("y1", owner="c1", status="CREATED"),
        result("y2", owner="c2", status="CREATED"),
        result("x4", owner="a4", completed=4),
    ]
    return make_bundle(out, tasks=tasks, results=results)
