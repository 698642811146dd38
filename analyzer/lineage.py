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
import rustworkx as rx


from .common import (failure_message, fmt_seconds, longest_waiting_first, micros, render_sections,
                     seconds_between, to_time)
from .graph import KIND_NAMES, NA
from .snapshot import AnalysisError


def _resolve_result(snap, result_id: str) -> int:
    g = snap.graph
    j = g.result_index(result_id)
    if j < 0:
        hint = " (that is a task id: try `aksnap task`)" if g.task_index(result_id) >= 0 else ""
        raise AnalysisError(f"result {result_id!r} is not in {snap.path}{hint}; "
                            "list result ids with: aksnap sql BUNDLE \"SELECT result_id, status FROM results\"")
    return g.n_tasks + j


def _partitions(snap) -> dict[str, dict[str, Any]]:
    try:
        return {p["partition_id"]: p for p in snap.sql(
            "SELECT partition_id, pod_max, pod_reserved FROM partitions").to_pylist()}
    except Exception:  # noqa: BLE001 - partition facts only sharpen a sentence
        return {}


def frontier_rows(snap, nodes: np.ndarray, detail_limit: int = 2000,
                  sort: bool = True) -> list[dict[str, Any]]:
    """Describe frontier nodes: id, kind, status, since when, for how long, what it waits for;
    longest in status first (``sort=False``: in the order given)."""
    g = snap.graph
    now = micros(snap.snapshot_time)
    ids = g.node_ids(nodes)
    tasks = nodes[nodes < g.n_tasks][:detail_limit]
    partition_of = {int(n): d.get("partition_id") or "" for n, d in zip(tasks.tolist(), g.task_detail(tasks))} \
        if len(tasks) else {}
    parts = _partitions(snap) if partition_of else {}
    rows = []
    for node, nid in zip(nodes.tolist(), ids):
        entered = g.entered_status_at(node)
        kind = "task" if g.is_task(node) else "result"
        status = g.status_name(node)
        part = partition_of.get(node, "")
        if kind == "result":
            prod = g.producer[node - g.n_tasks]
            waits = "the client to upload it" if prod < 0 else f"task {g.node_id(int(prod))}"
        elif g.bad[node]:
            waits = "nothing: it failed (a root cause)"
        elif status == "SUBMITTED":
            waits = f"a free agent in partition {part}" if part else "a free agent in its partition"
            if part and part in parts and (parts[part].get("pod_max") or 0) == 0:
                waits += " (pod_max 0: no pod can ever take it)"
            elif part and parts and part not in parts:
                waits += " (a partition the bundle does not list)"
        else:
            waits = {"PENDING": "the scheduler: its inputs are all complete",
                     "CREATING": "its submission to finish",
                     "PAUSED": "its session to be resumed",
                     "DISPATCHED": "its worker to start it",
                     "PROCESSING": "its worker to finish",
                     "CANCELLING": "its cancellation to finish"}.get(status, status.lower())
        rows.append({"id": nid, "kind": kind, "status": status, "since": to_time(entered),
                     "in_status_s": seconds_between(entered, now) if now != NA else None,
                     "waiting_for": waits, "session_id": g.session_id(node), "partition_id": part})
    if sort:
        rows.sort(key=lambda r: (-(r["in_status_s"] or 0), r["id"]))
    return rows


def root_cause_rows(snap, origins: np.ndarray, scope: np.ndarray | None,
                    target: int | None = None) -> list[dict[str, Any]]:
    """Describe failure origins: what failed, its message, how much of ``scope`` it explains."""
    g = snap.graph
    if not len(origins):
        return []
    ids = g.node_ids(origins)
    is_task = origins < g.n_tasks
    tdet = dict(zip(origins[is_task].tolist(), g.task_detail(origins[is_task])))
    started = g.task_ts["started_at"]
    in_scope = None
    if scope is not None:
        in_scope = np.zeros(g.n, dtype=bool)
        in_scope[scope] = True
    rows = []
    for node, nid in zip(origins.tolist(), ids):
        desc = g.descendants(node)
        if in_scope is not None:
            desc = desc[in_scope[desc]]
        explains = int(g.bad[desc].sum())
        row: dict[str, Any] = {"id": nid, "kind": "task" if g.is_task(node) else "result",
                               "status": g.status_name(node), "explains": explains}
        if g.is_task(node):
            t = tdet.get(node, {})
            row["message"] = failure_message(t)
            row["attempt"] = int(g.attempt[node])
            row["ran"] = bool(started[node] != NA)
            row["pod_hostname"] = t.get("pod_hostname") or ""
            if not row["ran"] and g.status_name(node) == "ERROR":
                row["note"] = ("failed by propagation, but the task it names is not upstream "
                               "in this bundle")
            else:
                row["note"] = ""
        else:
            prod = g.producer[node - g.n_tasks]
            row["message"] = (f"{row['status'].lower()} result; its producer "
                              f"{g.node_id(int(prod)) + ' is ' + g.status_name(int(prod)) if prod >= 0 else 'is the client'}")
            row["attempt"] = None
            row["ran"] = None
            row["pod_hostname"] = ""
            row["note"] = "deleted" if row["status"] == "DELETED" else ""
        if target is not None and target != node:
            try:
                paths = rx.digraph_dijkstra_shortest_paths(g.dag, node, target=target)
                path = list(paths[target]) if target in paths else []
            except Exception:  # noqa: BLE001 - a missing path only loses the "via" column
                path = []
            row["hops"] = max(len(path) - 1, 0)
            row["path"] = g.node_ids(np.array(path, dtype=np.int64)) if path else []
        rows.append(row)
    rows.sort(key=lambda r: (-r["explains"], r["id"]))
    return rows


def owner_chain(snap, node: int) -> list[dict[str, Any]]:
    """Who created the result, and every task that listed it as an expected output, from the
    creator down to the current owner (spawn depth, then attempt)."""
    g = snap.graph
    j = node - g.n_tasks
    holders = set(int(t) for t in g.expected_by(node))
    owner = int(g.producer[j])
    creator = int(g.result_creator[j])
    tasks = sorted(holders | {t for t in (owner, creator) if t >= 0},
                   key=lambda t: (int(g.depth[t]), int(g.attempt[t]), t != creator, t == owner, t))
    rows = []
    for t in tasks:
        role = []
        if t == creator:
            role.append("created it")
        if t in holders:
            role.append("listed it as expected output")
        if t == owner:
            role.append("current owner")
        rows.append({"task_id": g.node_id(t), "status": g.status_name(t), "depth": int(g.depth[t]),
                     "attempt": int(g.attempt[t]), "role": ", ".join(role)})
    if not rows:
        rows.append({"task_id": "(client)", "status": "", "depth": 0, "attempt": None,
                     "role": "created it; the client uploads it"})
    return rows


FRONTIER_SHOWN = 50  # frontier nodes described by default (the longest waiting); all are counted


def build(snap, result_id: str, frontier_limit: int | None = FRONTIER_SHOWN) -> dict[str, Any]:
    """``frontier_limit``: how many frontier nodes to describe, longest waiting first (None:
    all); ``frontier_total`` and ``frontier_by_status`` count them all."""
    g = snap.graph
    node = _resolve_result(snap, result_id)
    anc = g.ancestors(node)
    scope = np.append(anc, node)
    is_t = anc < g.n_tasks
    t_status = _status_counter(g, anc[is_t])
    r_status = _status_counter(g, anc[~is_t])
    done = int(g.complete[anc].sum())
    front = longest_waiting_first(snap, g.frontier(scope))
    shown = front[:frontier_limit] if frontier_limit is not None else front
    origins = g.origins(scope)
    prod = int(g.producer[node - g.n_tasks])
    data = {
        "result_id": result_id,
        "session_id": g.session_id(node),
        "status": g.status_name(node),
        "producer": None if prod < 0 else {"task_id": g.node_id(prod), "status": g.status_name(prod)},
        "snapshot_time": snap.snapshot_time,
        "upstream": {
            "tasks": int(is_t.sum()), "results": int((~is_t).sum()),
            "tasks_by_status": dict(sorted(t_status.items())),
            "results_by_status": dict(sorted(r_status.items())),
            "percent_complete": round(100.0 * done / len(anc), 2) if len(anc) else 100.0,
        },
        "frontier": frontier_rows(snap, shown, sort=False),
        "frontier_total": int(len(front)),
        "frontier_by_status": dict(sorted(_status_counter(g, front[front < g.n_tasks]).items())
                                   + sorted(_status_counter(g, front[front >= g.n_tasks]).items())),
        "root_causes": root_cause_rows(snap, origins, scope, target=node),
        "owner_chain": owner_chain(snap, node),
    }
    return data


def _status_counter(g, nodes: np.ndarray) -> Counter:
    out: Counter = Counter()
    if not len(nodes):
        return out
    if nodes[0] < g.n_tasks:
        codes, counts = np.unique(g.task_status[nodes], return_counts=True)
        from aksnap.bundle import TASK_STATUSES as names
    else:
        codes, counts = np.unique(g.result_status[nodes - g.n_tasks], return_counts=True)
        from aksnap.bundle import RESULT_STATUSES as names
    for c, k in zip(codes.tolist(), counts.tolist()):
        out[names[c] if c >= 0 else "UNKNOWN"] = k
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


def render(data: dict[str, Any], fmt: str = "table") -> str:
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
    return render_sections(data, fmt, [
        (title, data["frontier"],
         ["kind", "id", "status", "in_status_s", "since", "waiting_for"]),
        ("Root causes (origins of failures upstream)", rc_rows,
         ["kind", "id", "status", "explains", "attempt", "message", "path"]),
        ("Owner chain", data["owner_chain"], ["task_id", "status", "depth", "attempt", "role"]),
    ], head)


# -- Graphviz -----------------------------------------------------------------------------------

_COLORS = {"COMPLETED": "palegreen", "ERROR": "salmon", "TIMEOUT": "salmon", "CANCELLED": "grey",
           "ABORTED": "salmon", "DELETED": "grey", "RETRIED": "khaki", "PROCESSING": "lightblue",
           "SUBMITTED": "lightyellow", "DISPATCHED": "lightblue", "PENDING": "white",
           "CREATED": "white"}


def dot_escape(s: str) -> str:
    """The text of a double-quoted Graphviz ID or label showing ``s`` exactly, on one line.

    A character that is not printable (NUL, which Graphviz cannot hold at all, newlines, ANSI
    escapes, DEL, C1, bidi overrides) becomes its visible Python escape (``\\x00``,
    ``\\u202e``); then backslashes are doubled and quotes escaped, so that a label shows the
    escape instead of a line break, no string ends in an escaped quote, and two distinct ids
    never become the same node. ``&`` is written ``&amp;`` so that an id holding ``&#27;``
    is not turned into a control character by Graphviz's entity decoding.
    """
    shown = "".join(c if c.isprintable() and c != "\\" else
                    ("\\\\" if c == "\\" else repr(c)[1:-1]) for c in s)
    return shown.replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")


def to_dot(snap, result_id: str, max_nodes: int = 5000) -> str:
    """The upstream subgraph of a result in Graphviz DOT (tasks as boxes, results as ellipses)."""
    g = snap.graph
    node = _resolve_result(snap, result_id)
    nodes = np.append(g.ancestors(node), node)
    truncated = len(nodes) > max_nodes
    if truncated:  # keep the nodes nearest the result: they are the ones a reader follows
        seen, queue = {node}, [node]
        while queue and len(seen) < max_nodes:
            nxt = []
            for n in queue:
                for p in g.dag.predecessor_indices(n):
                    if p not in seen and len(seen) < max_nodes:
                        seen.add(p)
                        nxt.append(p)
            queue = nxt
        nodes = np.array(sorted(seen), dtype=np.int64)
    ids = g.node_ids(nodes)
    lines = [f'digraph "lineage of {dot_escape(result_id)}" {{', "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=10, style=filled];']
    for n, nid in zip(nodes.tolist(), ids):
        status = g.status_name(n)
        shape = "box" if g.is_task(n) else "ellipse"
        # "\\n" is Graphviz's line break; the parts are escaped on their own so that a newline
        # inside an id is shown, not obeyed.
        label = dot_escape(f"{'task' if g.is_task(n) else 'result'} {nid}") + "\\n" + dot_escape(status)
        extra = ", penwidth=3" if n == node else ""
        lines.append(f'  "{dot_escape(nid)}" [shape={shape}, fillcolor={_COLORS.get(status, "white")}, '
                     f'label="{label}"{extra}];')
    src, dst, kind = g.subgraph_edges(nodes)
    sid, did = g.node_ids(src), g.node_ids(dst)
    for a, b, k in zip(sid, did, kind.tolist()):
        style = ', style=dashed' if KIND_NAMES[k] == "payload" else ""
        lines.append(f'  "{dot_escape(a)}" -> "{dot_escape(b)}" [label="{KIND_NAMES[k]}"{style}];')
    if truncated:
        lines.append(f'  "truncated" [shape=note, label="{len(nodes)} of the upstream nodes shown"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
