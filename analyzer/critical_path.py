"""Critical path: the chain of dependencies that decided when a session's last result completed.

Walk back from the session's last completed result: a result waits for its producer; a task
waits for the latest-finishing of its predecessors: its inputs (data dependencies, payload),
its spawning parent (a subtask is written when its parent ends) and its previous attempt (a
retry is created when that attempt fails). Each task on the chain contributes, from the moment
its binding predecessor finished: waiting (-> submitted), queued (-> acquired), fetching
(acquired -> started: input download and hand-over to the worker), processing (-> processed),
finishing (-> ended). Gaps between a predecessor's end and a task's creation are "spawn" or
"retry" time; before the first task, "before first task". The segments tile the wall time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aksnap.bundle import RESULT_STATUSES

from .common import fmt_seconds, render_sections, seconds_between, to_time
from .graph import NA

PHASES = ("waiting", "queued", "fetching", "processing", "finishing")
COMPLETED = RESULT_STATUSES.index("COMPLETED")


def _task_finish(g, t: int) -> int:
    e = int(g.task_ts["ended_at"][t])
    return e if e != NA else int(g.task_ts["processed_at"][t])


def _chain(g, last_result: int) -> list[tuple[int, str]]:
    """[(node, edge kind that led to the *next* node)], oldest first."""
    chain: list[tuple[int, str]] = [(last_result, "")]
    node = last_result
    seen = {node}
    while True:
        if node >= g.n_tasks:
            p = int(g.producer[node - g.n_tasks])
            if p < 0 or p in seen:
                break
            node, edge = p, "produces"
        else:
            best, best_t, best_edge = -1, NA, ""
            for r in g.inputs(node):  # results it reads
                t = int(g.result_ts["completed_at"][r - g.n_tasks])
                if t != NA and t > best_t:
                    best, best_t = r, t
                    best_edge = "payload" if g.payload_of[node] == r - g.n_tasks else "data"
            for cand, edge in ((int(g.parent[node]), "spawn"), (int(g.previous_attempt[node]), "retry")):
                if cand >= 0:
                    t = _task_finish(g, cand)
                    if t != NA and t > best_t:
                        best, best_t, best_edge = cand, t, edge
            if best < 0 or best in seen:
                break
            node, edge = best, best_edge
        seen.add(node)
        chain.append((node, edge))
    chain.reverse()
    return chain


def build_session(snap, session_id: str) -> dict[str, Any]:
    g = snap.graph
    mask = g.session_nodes(session_id)
    res = np.flatnonzero(mask[g.n_tasks:] & (g.result_status == COMPLETED))
    completed_at = g.result_ts["completed_at"][res]
    ok = completed_at != NA
    task_mask = mask[:g.n_tasks]
    created = g.task_ts["created_at"][task_mask]
    created = created[created != NA]
    start = int(created.min()) if len(created) else NA
    base = {"session_id": session_id, "last_result": None, "wall_s": None, "steps": [],
            "segments": [], "totals": [], "line": "no completed result: no critical path yet"}
    if not ok.any():
        return base
    last = int(g.n_tasks + res[ok][np.argmax(completed_at[ok])])
    end = int(g.result_ts["completed_at"][last - g.n_tasks])
    if start == NA or start > end:
        start = int(g.result_ts["created_at"][last - g.n_tasks])
    wall = (end - start) / 1e6 if end != NA and start != NA else None
    chain = _chain(g, last)
    segments: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    prev_finish = start
    prev_edge = ""
    first_task = True
    for node, edge in chain:
        nid = g.node_id(node)
        if node >= g.n_tasks:
            t = int(g.result_ts["completed_at"][node - g.n_tasks])
            steps.append({"step": len(steps) + 1, "kind": "result", "id": nid, "edge": prev_edge,
                          "status": g.status_name(node), "at": to_time(t)})
            if t != NA:
                prev_finish = max(prev_finish, t) if first_task is False else prev_finish
            prev_edge = edge
            continue
        ts = {c: int(g.task_ts[f"{c}_at"][node]) for c in
              ("created", "submitted", "acquired", "started", "processed", "ended")}
        origin = ts["created"]
        if first_task:
            if origin != NA and origin > start:
                segments.append(_seg("before first task", "", start, origin))
            begin = origin if origin != NA else start
        else:
            if origin != NA and origin > prev_finish:
                label = {"spawn": "spawn", "retry": "retry"}.get(prev_edge, "created late")
                segments.append(_seg(label, nid, prev_finish, origin))
            begin = max(prev_finish, origin) if origin != NA else prev_finish
        marks = [("waiting", ts["submitted"]), ("queued", ts["acquired"]),
                 ("fetching", ts["started"]), ("processing", ts["processed"]),
                 ("finishing", ts["ended"])]
        cursor = begin
        row = {"step": len(steps) + 1, "kind": "task", "id": nid, "edge": prev_edge,
               "status": g.status_name(node)}
        for phase, mark in marks:
            if mark == NA or cursor == NA:
                row[phase] = None
                continue
            s = max(mark - cursor, 0)
            row[phase] = s / 1e6
            if s:
                segments.append(_seg(phase, nid, cursor, cursor + s))
            cursor = max(cursor, mark)
        row["total"] = seconds_between(begin, cursor)
        row["share"] = round(row["total"] / wall, 4) if wall and row["total"] is not None else None
        steps.append(row)
        prev_finish = cursor
        prev_edge = edge
        first_task = False
    totals: dict[str, float] = {}
    for s in segments:
        totals[s["segment"]] = totals.get(s["segment"], 0.0) + s["seconds"]
    for s in segments:
        s["share"] = round(s["seconds"] / wall, 4) if wall else None
    total_rows = [{"segment": k, "seconds": round(v, 6), "share": round(v / wall, 4) if wall else None}
                  for k, v in sorted(totals.items(), key=lambda kv: -kv[1])]
    n_tasks = sum(1 for s in steps if s["kind"] == "task")
    covered = sum(totals.values())
    top = ", ".join(f"{r['segment']} {100 * (r['share'] or 0):.0f}%" for r in total_rows[:3])
    longest = max(segments, key=lambda s: s["seconds"], default=None)
    line = (f"{n_tasks} task(s) to {g.node_id(last)} over {fmt_seconds(wall)}: {top}"
            + (f"; longest: {longest['segment']} of {longest['id']} {fmt_seconds(longest['seconds'])}"
               if longest and longest["id"] else ""))
    return {**base, "last_result": g.node_id(last), "started": to_time(start), "ended": to_time(end),
            "wall_s": wall, "covered_s": round(covered, 6), "steps": steps, "segments": segments,
            "totals": total_rows, "line": line}


def _seg(name: str, nid: str, a: int, b: int) -> dict[str, Any]:
    return {"segment": name, "id": nid, "start": to_time(a), "end": to_time(b),
            "seconds": (b - a) / 1e6}


def build(snap, session_id: str | None = None) -> dict[str, Any]:
    snap.graph  # first: it builds while the checksums are still being verified
    snap.require_session(session_id)
    ids = [session_id] if session_id else snap.session_ids()
    return {"sessions": [build_session(snap, s) for s in ids]}


def render(data: dict[str, Any], fmt: str = "table") -> str:
    if fmt == "json":
        return render_sections(data, fmt, [])
    parts = []
    for s in data["sessions"]:
        head = [("session", s["session_id"]), ("last result", s["last_result"]),
                ("wall time", fmt_seconds(s["wall_s"]) if s["wall_s"] is not None else None),
                ("critical path", s["line"])]
        parts.append(render_sections(s, fmt, [
            ("Chain (oldest first; seconds per phase; share of wall time)", s["steps"],
             ["step", "kind", "id", "edge", "status", *PHASES, "total", "share"]),
            ("Time on the critical path by segment", s["totals"], ["segment", "seconds", "share"]),
        ], head))
    return "\n\n".join(parts)
