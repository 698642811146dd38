"""Lineage of one result: what it depends on, what holds it right now, why it failed.

``build(snap, result_id)`` returns plain data:

- ``upstream``: tasks and results the result depends on (data DAG ancestors), by status, and the
  percentage complete;
- ``frontier``: the blocking frontier, incomplete nodes whose own inputs are all complete: what
  holds the result right now, with the status and how long each has been in it at snapshot time;
- ``root_causes``: failed, timed-out, cancelled tasks and aborted or deleted results upstream,
  followed through propagation back to the origin (a bad node none of whose inputs is bad);
- ``owner_chain``: the tasks that held the result, when ownership moved to subtasks or retries.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from . import graphfile
from .common import Section, fmt_seconds, longest_waiting_first, render_data, render_sections
from .describe import frontier_rows, owner_chain, result_node, root_cause_rows


FRONTIER_SHOWN = 50  # frontier nodes described by default (the longest waiting); all are counted


def build(snap, result_id: str, frontier_limit: int | None = FRONTIER_SHOWN) -> dict[str, Any]:
    """``frontier_limit``: how many frontier nodes to describe, longest waiting first (None:
    all); ``frontier_total`` and ``frontier_by_status`` count them all."""
    g = snap.graph
    node = result_node(snap, result_id)
    # the upstream as a mask of every node, never as a list: the root lineage of a big session
    # is the whole session (27M nodes at 10M tasks), and every figure below is a count, a
    # frontier or a handful of origins
    up = g.ancestors_mask(node)
    T = g.n_tasks
    up_t, up_r = up[:T], up[T:]
    n_t, n_r = int(np.count_nonzero(up_t)), int(np.count_nonzero(up_r))
    t_status = _status_counter(g, g.task_status[up_t], tasks=True)
    r_status = _status_counter(g, g.result_status[up_r], tasks=False)
    done = int(np.count_nonzero(up & g.complete))
    up[node] = True  # the scope: the upstream and the result
    front = longest_waiting_first(snap, g.frontier(mask=up, csr=True))
    shown = front[:frontier_limit] if frontier_limit is not None else front
    origins = g.origins(mask=up, csr=True)
    prod = int(g.producer[node - g.n_tasks])
    data = {
        "result_id": result_id,
        "session_id": g.session_id(node),
        "status": g.status_name(node),
        "producer": None if prod < 0 else {"task_id": g.node_id(prod), "status": g.status_name(prod)},
        "snapshot_time": snap.snapshot_time,
        "upstream": {
            "tasks": n_t, "results": n_r,
            "tasks_by_status": dict(sorted(t_status.items())),
            "results_by_status": dict(sorted(r_status.items())),
            "percent_complete": round(100.0 * done / (n_t + n_r), 2) if n_t + n_r else 100.0,
        },
        "frontier": frontier_rows(snap, shown, sort=False),
        "frontier_total": int(len(front)),
        "frontier_by_status": dict(
            sorted(_status_counter(g, g.task_status[front[front < T]], tasks=True).items())
            + sorted(_status_counter(g, g.result_status[front[front >= T] - T], tasks=False).items())),
        "root_causes": root_cause_rows(snap, origins, up, target=node),
        "owner_chain": owner_chain(snap, node),
    }
    data["summary"] = summary_line(data)  # the one sentence the table shows, for programs too
    return data


def _status_counter(g, codes: np.ndarray, tasks: bool) -> Counter:
    """Status name -> count of the status ``codes`` of some tasks (or results)."""
    out: Counter = Counter()
    if not len(codes):
        return out
    if tasks:
        from aksnap.bundle import TASK_STATUSES as names
    else:
        from aksnap.bundle import RESULT_STATUSES as names
    # counted by bincount (linear; np.unique sorts: seconds for the 27M nodes of a 10M
    # session's root lineage); -1 (unknown) shifted to slot 0
    counts = np.bincount(codes.astype(np.int64) + 1, minlength=len(names) + 1)
    for c in np.flatnonzero(counts).tolist():
        out[names[c - 1] if c > 0 else "UNKNOWN"] = int(counts[c])
    return out


def summary_line(data: dict[str, Any]) -> str:
    up = data["upstream"]
    if data["status"] == "COMPLETED":
        return f"result {data['result_id']} is COMPLETED"
    s = (f"result {data['result_id']} is {data['status']}: depends on {up['tasks']} tasks and "
         f"{up['results']} results, {up['percent_complete']:.1f}% complete")
    if data["root_causes"]:
        rc = data["root_causes"][0]
        s += f"; root cause: {rc['kind']} {rc['id']} {rc['status']}"
        if rc.get("message"):
            s += f" ({rc['message'][:80]})"
    elif data["frontier"]:
        f = data["frontier"][0]
        s += (f"; held by {f['kind']} {f['id']} {f['status']} for "
              f"{fmt_seconds(f['in_status_s'])}")
    return s


def _path_text(path: list[str], keep: int = 6) -> str:
    """A propagation path for a table cell: a long one keeps its ends."""
    if len(path) <= 2 * keep + 1:
        return " -> ".join(path)
    return " -> ".join(path[:keep] + [f"... {len(path) - 2 * keep} more ..."] + path[-keep:])


FRONTIER_COLUMNS = ["kind", "id", "status", "in_status_s", "since", "waiting_for"]
ROOT_CAUSE_COLUMNS = ["kind", "id", "status", "explains", "attempt", "message", "path"]
OWNER_COLUMNS = ["task_id", "status", "depth", "attempt", "role"]


def sections(data: dict[str, Any]) -> list[Section]:
    """frontier (the main table), root_causes, owner_chain, and the lineage as one row."""
    up = data["upstream"]
    prod = data["producer"] or {}
    summary = {"result_id": data["result_id"], "session_id": data["session_id"],
               "status": data["status"], "producer": prod.get("task_id"),
               "producer_status": prod.get("status"), "snapshot_time": data["snapshot_time"],
               "upstream_tasks": up["tasks"], "upstream_results": up["results"],
               "percent_complete": up["percent_complete"],
               "upstream_tasks_by_status": up["tasks_by_status"],
               "upstream_results_by_status": up["results_by_status"],
               "frontier_total": data.get("frontier_total", len(data["frontier"])),
               "frontier_by_status": data.get("frontier_by_status", {}),
               "root_causes": len(data["root_causes"]), "summary": summary_line(data)}
    return [Section("frontier", data["frontier"], FRONTIER_COLUMNS + ["session_id", "partition_id"]),
            Section("root_causes", data["root_causes"], ROOT_CAUSE_COLUMNS),
            Section("owner_chain", data["owner_chain"], OWNER_COLUMNS),
            Section("lineage", [summary])]


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)


def _table(data: dict[str, Any]) -> str:
    up = data["upstream"]
    head = [
        ("result", data["result_id"]), ("session", data["session_id"]), ("status", data["status"]),
        ("producer", f"{data['producer']['task_id']} ({data['producer']['status']})"
         if data["producer"] else "the client"),
        ("snapshot time", data["snapshot_time"]),
        ("upstream tasks", f"{up['tasks']}  " + " ".join(f"{k}={v}" for k, v in up["tasks_by_status"].items())),
        ("upstream results", f"{up['results']}  " + " ".join(f"{k}={v}" for k, v in up["results_by_status"].items())),
        ("complete", f"{up['percent_complete']:.1f}%"),
        ("summary", summary_line(data)),
    ]
    rc_rows = [{**r, "path": _path_text(r.get("path", []))} for r in data["root_causes"]]
    title = "Blocking frontier (what holds the result now)"
    total = data.get("frontier_total", len(data["frontier"]))
    if total > len(data["frontier"]):
        title = (f"Blocking frontier (what holds the result now; the {len(data['frontier'])} longest "
                 f"waiting of {total}, --all for every one)")
        head.insert(-1, ("frontier", f"{total}  " + " ".join(f"{k}={v}" for k, v in
                                                             data["frontier_by_status"].items())))
    return render_sections([
        (title, data["frontier"], FRONTIER_COLUMNS),
        ("Root causes (origins of failures upstream)", rc_rows, ROOT_CAUSE_COLUMNS),
        ("Owner chain", data["owner_chain"], OWNER_COLUMNS),
    ], head)


# -- Graphviz: the same selection and writer as `aksnap graph --result` (graphfile.py) ------------

def dot_selection(snap, result_id: str, max_nodes: int = 5000):
    """The upstream of a result as :class:`graphfile.Selection` (data edges only, as lineage
    answers), cut to the ``max_nodes`` nearest the result."""
    return graphfile.select(snap, result_id=result_id, max_nodes=max_nodes, extra_edges=False)


def to_dot(snap, result_id: str, max_nodes: int = 5000) -> str:
    """The upstream subgraph of a result in Graphviz DOT (tasks as boxes, results as ellipses)."""
    return graphfile.to_dot(snap, dot_selection(snap, result_id, max_nodes),
                            title=f"lineage of {result_id}")
