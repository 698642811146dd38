"""Descriptions of graph nodes shared by the analyses: frontier rows, root-cause rows, owner chains.

Lineage, blockers, overview and task describe the same things (what a blocking node waits for,
what a failure origin explains); they all come from here, so they read the same everywhere and
no analysis imports another's row builder. Every function takes node indices (numpy) and works
column by column over all of them: ids, statuses, sessions and task details are taken with one
Arrow ``take`` each and the figures computed with numpy; Python touches each row only to put
the finished columns into the dictionaries an answer is made of.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from aksnap.bundle import RESULT_STATUSES, TASK_STATUSES

from .graph import NA
from .snapshot import AnalysisError

#: status names indexed by code; code -1 (not an ArmoniK status) picks the last, "UNKNOWN"
_TASK_NAMES = np.array(list(TASK_STATUSES) + ["UNKNOWN"], dtype=object)
_RESULT_NAMES = np.array(list(RESULT_STATUSES) + ["UNKNOWN"], dtype=object)

def result_node(snap, result_id: str) -> int:
    """The graph node of the result ``result_id`` (lineage, graph, trace and report start
    from one); an :class:`AnalysisError` naming the bundle when it holds no such result, and
    pointing at `aksnap task` when the id is a task's."""
    g = snap.graph
    j = g.result_index(result_id)
    if j < 0:
        hint = " (that is a task id: try `aksnap task`)" if g.task_index(result_id) >= 0 else ""
        raise AnalysisError(f"result {result_id!r} is not in {snap.path}{hint}; "
                            "list result ids with: aksnap sql BUNDLE \"SELECT result_id, status FROM results\"")
    return g.n_tasks + j


#: what a task in each waiting status waits for (SUBMITTED is told with its partition)
_WAITS = {"PENDING": "the scheduler: its inputs are all complete",
          "CREATING": "its submission to finish",
          "PAUSED": "its session to be resumed",
          "DISPATCHED": "its worker to start it",
          "PROCESSING": "its worker to finish",
          "CANCELLING": "its cancellation to finish"}


def status_names(g, nodes: np.ndarray) -> np.ndarray:
    """The status name of each node (object array), vectorised."""
    nodes = np.asarray(nodes, dtype=np.int64)
    t = nodes < g.n_tasks
    out = np.empty(len(nodes), dtype=object)
    out[t] = _TASK_NAMES[g.task_status[nodes[t]]]
    out[~t] = _RESULT_NAMES[g.result_status[nodes[~t] - g.n_tasks]]
    return out


def session_ids(g, nodes: np.ndarray) -> list[str]:
    """The session id of each node (one Arrow take)."""
    codes = pa.array(np.asarray(g.session_of[np.asarray(nodes, dtype=np.int64)], dtype=np.int64))
    return g.sessions.take(codes).to_pylist()


def task_columns(g, tasks: np.ndarray, columns: list[str]) -> dict[str, list]:
    """Detail columns (``TaskGraph.DETAIL_COLUMNS``) of task nodes, one Arrow take per column."""
    picked = g.details.select(columns).take(pa.array(np.asarray(tasks, dtype=np.int64)))
    return {c: picked[c].to_pylist() for c in columns}


def failure_messages(output_error: list, status_message: list) -> list[str]:
    """A task's failure message: its output error, else its status message."""
    return [(e or m or "").strip() for e, m in zip(output_error, status_message)]


def _partitions(snap) -> dict[str, dict[str, Any]]:
    try:
        return {p["partition_id"]: p for p in snap.sql(
            "SELECT partition_id, pod_max, pod_reserved FROM partitions").to_pylist()}
    except Exception:  # noqa: BLE001 - partition facts only sharpen a sentence
        return {}


def frontier_rows(snap, nodes: np.ndarray, detail_limit: int = 2000,
                  sort: bool = True) -> list[dict[str, Any]]:
    """Describe frontier nodes: id, kind, status, since when, for how long, what it waits for;
    longest in status first (``sort=False``: in the order given). The partition is looked up
    for the first ``detail_limit`` tasks."""
    from .common import to_time

    g = snap.graph
    nodes = np.asarray(nodes, dtype=np.int64)
    if not len(nodes):
        return []
    T = g.n_tasks
    now = _now(snap)
    ids = g.node_ids(nodes)
    is_task = nodes < T
    status = status_names(g, nodes)
    entered = g.entered_status_at_many(nodes)
    part = np.full(len(nodes), "", dtype=object)
    shown_tasks = np.flatnonzero(is_task)[:detail_limit]
    if len(shown_tasks):
        part[shown_tasks] = [p or "" for p in task_columns(g, nodes[shown_tasks], ["partition_id"])["partition_id"]]
    parts = _partitions(snap) if len(shown_tasks) else {}
    # results wait for their producer (or the client)
    res = np.flatnonzero(~is_task)
    prod = g.producer[nodes[res] - T]
    prod_ids = g.node_ids(prod[prod >= 0])
    waits = np.empty(len(nodes), dtype=object)
    waits[res[prod < 0]] = "the client to upload it"
    waits[res[prod >= 0]] = [f"task {p}" for p in prod_ids]
    tasks = np.flatnonzero(is_task)
    bad = g.bad[nodes[tasks]]
    waits[tasks[bad]] = "nothing: it failed (a root cause)"
    for i in tasks[~bad].tolist():
        waits[i] = _task_waits(status[i], part[i], parts)
    sessions = session_ids(g, nodes)
    rows = [{"id": nid, "kind": "task" if t else "result", "status": st,
             "since": to_time(e), "in_status_s": None if e == NA or now == NA else round((now - e) / 1e6, 6),
             "waiting_for": w, "session_id": sid, "partition_id": p}
            for nid, t, st, e, w, sid, p in zip(ids, is_task.tolist(), status.tolist(), entered.tolist(),
                                                 waits.tolist(), sessions, part.tolist())]
    if sort:
        rows.sort(key=lambda r: (-(r["in_status_s"] or 0), r["id"]))
    return rows


def _task_waits(status: str, part: str, parts: dict[str, dict[str, Any]]) -> str:
    if status != "SUBMITTED":
        return _WAITS.get(status, status.lower())
    waits = f"a free agent in partition {part}" if part else "a free agent in its partition"
    if part and part in parts and (parts[part].get("pod_max") or 0) == 0:
        waits += " (pod_max 0: no pod can ever take it)"
    elif part and parts and part not in parts:
        waits += " (a partition the bundle does not list)"
    return waits


def _now(snap) -> int:
    from .common import micros

    return micros(snap.snapshot_time)


def root_cause_rows(snap, origins: np.ndarray, scope: np.ndarray | None,
                    target: int | None = None) -> list[dict[str, Any]]:
    """Describe failure origins: what failed, its message, how many bad nodes of ``scope``
    (node numbers or a boolean mask of every node; None: the whole bundle) lie downstream of it (``explains``, counted for every origin at
    once), and with a ``target``, the propagation path to it; the largest first."""
    g = snap.graph
    origins = np.asarray(origins, dtype=np.int64)
    if not len(origins):
        return []
    T = g.n_tasks
    weight = g.bad.copy()
    if scope is not None:
        scope = np.asarray(scope)
        if scope.dtype == bool:  # a mask of every node (a lineage's upstream)
            weight &= scope
        else:
            in_scope = np.zeros(g.n, dtype=bool)
            in_scope[scope] = True
            weight &= in_scope
    sums, _ = g.downstream_sums(origins, weight.astype(np.int64))
    explains = sums[:, 0].tolist()
    ids = g.node_ids(origins)
    status = status_names(g, origins).tolist()
    is_task = origins < T
    tpos = np.flatnonzero(is_task)
    det = task_columns(g, origins[tpos], ["output_error", "status_message", "pod_hostname"])
    messages = failure_messages(det["output_error"], det["status_message"])
    ran = (g.task_ts["started_at"][origins[tpos]] != NA).tolist()
    attempts = g.attempt[origins[tpos]].tolist()
    rpos = np.flatnonzero(~is_task)
    prod = g.producer[origins[rpos] - T]
    prod_ids = dict(zip(np.flatnonzero(prod >= 0).tolist(), g.node_ids(prod[prod >= 0])))
    prod_status = status_names(g, np.maximum(prod, 0)).tolist()
    rows: list[dict[str, Any]] = [{} for _ in range(len(origins))]
    for k, i in enumerate(tpos.tolist()):
        note = ("failed by propagation, but the task it names is not upstream in this bundle"
                if not ran[k] and status[i] == "ERROR" else "")
        rows[i] = {"id": ids[i], "kind": "task", "status": status[i], "explains": int(explains[i]),
                   "message": messages[k], "attempt": int(attempts[k]), "ran": bool(ran[k]),
                   "pod_hostname": det["pod_hostname"][k] or "", "note": note}
    for k, i in enumerate(rpos.tolist()):
        by = (f"{prod_ids[k]} is {prod_status[k]}" if k in prod_ids else "is the client")
        rows[i] = {"id": ids[i], "kind": "result", "status": status[i], "explains": int(explains[i]),
                   "message": f"{status[i].lower()} result; its producer {by}", "attempt": None,
                   "ran": None, "pod_hostname": "", "note": "deleted" if status[i] == "DELETED" else ""}
    if target is not None:
        _add_paths(g, origins, rows, target)
    rows.sort(key=lambda r: (-r["explains"], r["id"]))
    return rows


def _add_paths(g, origins: np.ndarray, rows: list[dict[str, Any]], target: int) -> None:
    """The shortest propagation path (fewest hops) from each origin to ``target``: one search
    per origin (origins upstream of one result are few)."""
    import rustworkx as rx

    for node, row in zip(origins.tolist(), rows):
        if node == target:
            continue
        try:
            paths = rx.digraph_dijkstra_shortest_paths(g.dag, node, target=target)
            path = list(paths[target]) if target in paths else []
        except Exception:  # noqa: BLE001 - a missing path only loses the "via" column
            path = []
        row["hops"] = max(len(path) - 1, 0)
        row["path"] = g.node_ids(np.array(path, dtype=np.int64)) if path else []


def owner_chain(snap, node: int) -> list[dict[str, Any]]:
    """Who created the result, and every task that listed it as an expected output, from the
    creator down to the current owner (spawn depth, then attempt)."""
    g = snap.graph
    j = node - g.n_tasks
    holders = g.expected_by(node)
    owner = int(g.producer[j])
    creator = int(g.result_creator[j])
    tasks = np.unique(np.concatenate([holders, [t for t in (owner, creator) if t >= 0]]).astype(np.int64))
    if not len(tasks):
        return [{"task_id": "(client)", "status": "", "depth": 0, "attempt": None,
                 "role": "created it; the client uploads it"}]
    held = np.isin(tasks, holders)
    depth, attempt = g.depth_of(tasks), g.attempt_of(tasks)
    order = np.lexsort((tasks, tasks == owner, tasks != creator, attempt, depth))
    tasks, held, depth, attempt = tasks[order], held[order], depth[order], attempt[order]
    ids = g.node_ids(tasks)
    status = status_names(g, tasks).tolist()
    rows = []
    for k, t in enumerate(tasks.tolist()):
        role = [r for r, yes in (("created it", t == creator), ("listed it as expected output", held[k]),
                                 ("current owner", t == owner)) if yes]
        rows.append({"task_id": ids[k], "status": status[k], "depth": int(depth[k]),
                     "attempt": int(attempt[k]), "role": ", ".join(role)})
    return rows
