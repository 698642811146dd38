"""Blockers: incomplete work ranked by how much incomplete downstream work it holds up.

A blocking node is on the blocking frontier (incomplete, every input complete). Its weight is
the number of results downstream of it still awaiting data (status CREATED), counted exactly
with a graph traversal from each blocking node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aksnap.bundle import RESULT_STATUSES

from .common import render_sections
from .lineage import frontier_rows

CREATED = RESULT_STATUSES.index("CREATED")
# Beyond this many blocking nodes the exact count runs on the ones in their status the longest.
MAX_EXACT = 20_000


def build(snap, session_id: str | None = None, limit: int | None = 20) -> dict[str, Any]:
    g = snap.graph  # first: it builds while the checksums are still being verified
    snap.require_session(session_id)
    mask = g.session_nodes(session_id)
    front = g.frontier(mask=mask)
    rows = frontier_rows(snap, front)  # sorted: longest in status first
    considered = rows[:MAX_EXACT]
    node_of = dict(zip(g.node_ids(front), front.tolist()))
    waiting_result = np.concatenate([np.zeros(g.n_tasks, dtype=bool), g.result_status == CREATED])
    incomplete_task = np.concatenate([~g.complete[:g.n_tasks] & ~g.retried[:g.n_tasks] & ~g.bad[:g.n_tasks],
                                      np.zeros(g.n_results, dtype=bool)])
    out = []
    for r in considered:
        node = node_of[r["id"]]
        d = g.descendants(node)
        held_results = int(waiting_result[d].sum()) + int(waiting_result[node])
        held = d[incomplete_task[d]]
        if held_results == 0 and g.bad[node]:
            continue  # a failure whose consequences are already settled: see root causes
        # Ties are broken by the finished data parked behind the blocker: completed inputs of
        # the tasks it holds up (a reduce waiting for one straggler out of a thousand inputs).
        ready = sum(int(g.complete[g.inputs(int(t))].sum()) for t in held[:1000])
        out.append({**r, "holds_results": held_results, "holds_tasks": int(len(held)),
                    "ready_inputs_waiting": ready})
    out.sort(key=lambda r: (-r["holds_results"], -r["ready_inputs_waiting"],
                            -(r["in_status_s"] or 0), r["id"]))
    for i, r in enumerate(out, 1):
        r["rank"] = i
    incomplete = int((mask & ~g.complete & ~g.retried).sum())
    return {
        "session_id": session_id,
        "snapshot_time": snap.snapshot_time,
        "incomplete_nodes": incomplete,
        "blocking_nodes": len(front),
        "ranked_exactly": len(considered),
        "blockers": out[:limit] if limit else out,
    }


def render(data: dict[str, Any], fmt: str = "table") -> str:
    head = [("session", data["session_id"] or "(all)"), ("snapshot time", data["snapshot_time"]),
            ("incomplete nodes", data["incomplete_nodes"]),
            ("blocking nodes", data["blocking_nodes"])]
    if data["ranked_exactly"] < data["blocking_nodes"]:
        head.append(("note", f"ranked the {data['ranked_exactly']} longest-waiting blocking nodes"))
    return render_sections(data, fmt, [
        ("Blockers (ranked by incomplete results held up)", data["blockers"],
         ["rank", "kind", "id", "status", "holds_results", "holds_tasks", "ready_inputs_waiting", "in_status_s",
          "waiting_for", "session_id"]),
    ], head)
