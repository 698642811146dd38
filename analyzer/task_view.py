"""One task in full: attempts, parent chain, inputs and outputs with their status, timeline.

Inputs and outputs come from ``queries/task_io.sql`` and are counted by status with
``queries/task_io_counts.sql``: a task reading a million results shows the counts and the
first ``limit`` of each list (``--all`` for every row), never a million-element Python list.
"""

from __future__ import annotations

from typing import Any

from aksnap.bundle import TASK_LOST_STATUSES, TASK_TIMESTAMPS

from .common import Section, failure_message, render_data, render_sections, task_details
from .snapshot import AnalysisError

LIMIT = 50  # inputs and outputs listed by default (each); the counts cover them all


def build(snap, task_id: str, limit: int | None = LIMIT) -> dict[str, Any]:
    """``limit``: how many inputs and outputs to list (None: all)."""
    # the id lists can hold millions of ids: read as counts, listed by queries/task_io.sql
    rows = snap.sql("SELECT * EXCLUDE (data_dependencies, expected_output_ids) FROM tasks "
                    "WHERE task_id = $id", {"id": task_id}).to_pylist()
    if not rows:
        hint = ""
        if snap.sql("SELECT 1 FROM results WHERE result_id = $id", {"id": task_id}).num_rows:
            hint = " (that is a result id: try `aksnap lineage`)"
        raise AnalysisError(f"task {task_id!r} is not in {snap.path}{hint}; list task ids with: "
                            "aksnap sql BUNDLE \"SELECT task_id, status FROM tasks\"")
    t = rows[0]
    initial = t["initial_task_id"] or task_id
    attempts = snap.sql(
        "SELECT task_id, status, len(retry_of_ids) + 1 AS attempt, started_at, ended_at, "
        "coalesce(nullif(output_error, ''), status_message) AS message, pod_hostname "
        "FROM tasks WHERE task_id = $initial OR initial_task_id = $initial "
        "ORDER BY len(retry_of_ids), task_id", {"initial": initial}).to_pylist()
    parents = [p for p in (t["parent_task_ids"] or []) if p != t["session_id"]]
    pdet = task_details(snap, parents)
    parent_chain = [{"depth": i + 1, "task_id": p, "status": pdet.get(p, {}).get("status", "(not in bundle)")}
                    for i, p in enumerate(parents)]
    io = snap.query("task_io", {"task_id": task_id, "limit": limit}).to_pylist()
    inputs = [{"kind": r["kind"], "result_id": r["result_id"], "status": r["status"],
               "producer": r["producer"], "completed_at": r["completed_at"]}
              for r in io if r["direction"] == "input"]
    outputs = []
    for r in io:
        if r["direction"] != "output":
            continue
        owner = r["owner_task_id"]
        outputs.append({"result_id": r["result_id"], "status": r["status"], "owner_task_id": owner,
                        "note": "" if not r["known"] or owner == task_id else
                        ("ownership moved to " + owner if owner else "no owner")})
    counts: dict[str, dict[str, int]] = {"input": {}, "output": {}}
    for r in snap.query("task_io_counts", {"task_id": task_id}).to_pylist():
        counts[r["direction"]][r["status"]] = r["results"]
    children = snap.sql(
        "SELECT status, count(*) AS tasks FROM task_parents p JOIN tasks t USING (task_id) "
        "WHERE p.parent_task_id = $id GROUP BY status ORDER BY tasks DESC, status",
        {"id": task_id}).to_pylist()
    timeline = []
    prev = None
    for c in TASK_TIMESTAMPS:
        v = t.get(c)
        if v is None:
            continue
        timeline.append({"event": c[:-3], "at": v,
                         "since_created_s": (v - t["created_at"]).total_seconds() if t.get("created_at") else None,
                         "step_s": (v - prev).total_seconds() if prev else None})
        prev = v
    root_causes: list[dict[str, Any]] = []
    if t["status"] in TASK_LOST_STATUSES:
        # what made it fail (or cancelled it): the origins among its ancestors (itself when it
        # failed running)
        import numpy as np

        from .describe import root_cause_rows

        g = snap.graph
        node = g.task_index(task_id)
        scope = np.append(g.ancestors(node), node)
        root_causes = root_cause_rows(snap, g.origins(scope), scope, target=node)
    return {
        "task_id": task_id, "session_id": t["session_id"], "status": t["status"],
        "message": failure_message(t), "partition_id": t["partition_id"],
        "pod_hostname": t["pod_hostname"], "created_by": t["created_by"] or "client",
        "initial_task_id": initial, "attempt": len(t["retry_of_ids"] or []) + 1,
        "max_retries": t["max_retries"],
        "propagated_failure": t["status"] == "ERROR" and t["started_at"] is None,
        "attempts": attempts, "parent_chain": parent_chain, "subtasks": children,
        "inputs": inputs, "outputs": outputs, "timeline": timeline, "root_causes": root_causes,
        "inputs_total": sum(counts["input"].values()), "inputs_by_status": counts["input"],
        "outputs_total": sum(counts["output"].values()), "outputs_by_status": counts["output"],
    }


def _listed(what: str, rows: list, total: int, by_status: dict[str, int]) -> tuple[str, list[tuple[str, Any]]]:
    """A section title, and head lines when a long list is cut short."""
    if len(rows) >= total:
        return what, []
    counts = " ".join(f"{k}={v}" for k, v in by_status.items())
    return (f"{what} (the first {len(rows)} of {total}; --all for every one)",
            [(what.lower(), f"{total}  {counts}")])


_SCALARS = ("task_id", "session_id", "status", "message", "partition_id", "pod_hostname", "created_by",
            "initial_task_id", "attempt", "max_retries", "propagated_failure", "inputs_total",
            "inputs_by_status", "outputs_total", "outputs_by_status")


def sections(data: dict[str, Any]) -> list[Section]:
    """task (the task as one row: the main table), then its lists, each a table."""
    return [Section("task", [{k: data.get(k) for k in _SCALARS}]),
            Section("attempts", data["attempts"], ["attempt", "task_id", "status", "started_at", "ended_at", "message"]),
            Section("parent_chain", data["parent_chain"], ["depth", "task_id", "status"]),
            Section("subtasks", data["subtasks"], ["status", "tasks"]),
            Section("inputs", data["inputs"], ["kind", "result_id", "status", "producer", "completed_at"]),
            Section("outputs", data["outputs"], ["result_id", "status", "owner_task_id", "note"]),
            Section("timeline", data["timeline"], ["event", "at", "since_created_s", "step_s"]),
            Section("root_causes", data["root_causes"], ["kind", "id", "status", "attempt", "message", "path"])]


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)


def _table(data: dict[str, Any]) -> str:
    head = [("task", data["task_id"]), ("session", data["session_id"]),
            ("status", data["status"] + ("  (failed by propagation: the root cause is upstream)"
                                         if data["propagated_failure"] else "")),
            ("message", data["message"]), ("partition", data["partition_id"]),
            ("pod", data["pod_hostname"]), ("created by", data["created_by"]),
            ("attempt", f"{data['attempt']} of {len(data['attempts'])} (max_retries {data['max_retries']})")]
    later = [a for a in data["attempts"] if a["task_id"] != data["task_id"]]
    if later:  # the other attempts are tasks of their own (ID###n): say how to show one
        head.append(("other attempts", ", ".join(f"{a['task_id']} {a['status']}" for a in later)
                     + " (each a task: its whole id, ID###n, shows it)"))
    in_title, in_head = _listed("Inputs", data["inputs"], data.get("inputs_total", 0), data.get("inputs_by_status", {}))
    out_title, out_head = _listed("Outputs", data["outputs"], data.get("outputs_total", 0),
                                  data.get("outputs_by_status", {}))
    head += in_head + out_head
    return render_sections([
        ("Attempts", data["attempts"], ["attempt", "task_id", "status", "started_at", "ended_at", "message"]),
        ("Parent chain (outermost first)", data["parent_chain"], ["depth", "task_id", "status"]),
        ("Subtasks", data["subtasks"], ["status", "tasks"]),
        (in_title, data["inputs"], ["kind", "result_id", "status", "producer", "completed_at"]),
        (out_title, data["outputs"], ["result_id", "status", "owner_task_id", "note"]),
        ("Timeline", data["timeline"], ["event", "at", "since_created_s", "step_s"]),
    ] + ([("Root causes (where its failure started)",
           [{**r, "path": " -> ".join(r.get("path", []))} for r in data["root_causes"]],
           ["kind", "id", "status", "attempt", "message", "path"])] if data["root_causes"] else []),
        head)
