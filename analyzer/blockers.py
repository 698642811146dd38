"""Blockers: incomplete work ranked by how much incomplete downstream work it holds up.

A blocking node is on the blocking frontier (incomplete, every input complete). Its weight is
the number of results downstream of it still awaiting data (status CREATED), counted exactly
over the graph (``TaskGraph.downstream_sums``: chains of single successors summed by pointer
jumping, one traversal per place where paths fan out), for every blocking node at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aksnap.bundle import RESULT_STATUSES

from .common import Section, in_status_seconds, longest_waiting_first, render_data, render_sections
from .describe import frontier_rows

CREATED = RESULT_STATUSES.index("CREATED")
# At most this many traversals (one per place downstream of the blocking nodes where paths fan
# out); beyond, the blocking nodes in their status the longest are the ones ranked.
MAX_EXACT = 20_000


@dataclass
class Ranking:
    """Blocking nodes in rank order, with their counts (numpy arrays, one entry per node)."""
    nodes: np.ndarray
    holds_results: np.ndarray
    holds_tasks: np.ndarray
    ready_inputs_waiting: np.ndarray
    frontier: np.ndarray  # every blocking node (incomplete, inputs complete), ranked or not
    ranked_exactly: int
    failed_frontier: int  # failed nodes at the frontier: root causes, not blockers

    @property
    def blocking_nodes(self) -> int:
        return len(self.frontier)


def rank(snap, mask: np.ndarray) -> Ranking:
    """Rank the blocking frontier of the nodes in ``mask``, vectorised over all of them."""
    g = snap.graph
    front = g.frontier(mask=mask)
    # A failed node at the frontier will never deliver: it is a root cause (lineage, analyze),
    # not something to wait for, so it is counted apart and never ranked as a blocker.
    failed = g.bad[front]
    front = longest_waiting_first(snap, front[~failed])
    T = g.n_tasks
    if not len(front):
        # nothing blocks (a finished run): no per-node weights (at 10M tasks the three columns
        # are 650 MB, and counting the complete inputs reads every edge)
        sums, exact = np.zeros((0, 3), dtype=np.int64), np.ones(0, dtype=bool)
        held_results = np.zeros(0, dtype=np.int64)
    else:
        waiting_result = np.concatenate([np.zeros(T, dtype=bool), g.result_status == CREATED])
        incomplete_task = np.concatenate([~g.complete[:T] & ~g.retried[:T] & ~g.bad[:T],
                                          np.zeros(g.n_results, dtype=bool)])
        # Ties are broken by the finished data parked behind the blocker: completed inputs of
        # the tasks it holds up (a reduce waiting for one straggler out of a thousand inputs).
        weights = np.stack([waiting_result, incomplete_task,
                            np.where(incomplete_task, g.complete_inputs, 0)], axis=1)
        sums, exact = g.downstream_sums(front, weights, max_traversals=MAX_EXACT)
        del weights
        held_results = sums[:, 0] + waiting_result[front]
    keep = exact
    nodes, hr, ht, ready = front[keep], held_results[keep], sums[keep, 1], sums[keep, 2]
    waited = np.nan_to_num(in_status_seconds(snap, nodes), nan=0.0)
    order = np.lexsort((g.id_rank(nodes), -waited, -ready, -hr))
    return Ranking(nodes[order], hr[order], ht[order], ready[order], front, int(exact.sum()),
                   int(failed.sum()))


def rows(snap, r: Ranking, picks: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Rows of the ranked blockers at positions ``picks`` (default: all), in rank order."""
    picks = np.arange(len(r.nodes)) if picks is None else np.asarray(picks, dtype=np.int64)
    described = frontier_rows(snap, r.nodes[picks], sort=False)
    return [{**d, "holds_results": int(r.holds_results[i]), "holds_tasks": int(r.holds_tasks[i]),
             "ready_inputs_waiting": int(r.ready_inputs_waiting[i]), "rank": int(i) + 1}
            for d, i in zip(described, picks.tolist())]


def build(snap, session_id: str | None = None, limit: int | None = 20) -> dict[str, Any]:
    g = snap.graph  # first: it builds while the checksums are still being verified
    snap.require_session(session_id)
    mask = g.session_nodes(session_id)
    r = rank(snap, mask)
    shown = np.arange(min(limit, len(r.nodes)) if limit else len(r.nodes))
    incomplete = int((mask & ~g.complete & ~g.retried).sum())
    return {
        "session_id": session_id,
        "snapshot_time": snap.snapshot_time,
        "incomplete_nodes": incomplete,
        "blocking_nodes": r.blocking_nodes,
        "failed_at_frontier": r.failed_frontier,
        "ranked_exactly": r.ranked_exactly,
        "blockers": rows(snap, r, shown),
    }


COLUMNS = ["rank", "kind", "id", "status", "holds_results", "holds_tasks", "ready_inputs_waiting",
           "in_status_s", "waiting_for", "session_id"]


def sections(data: dict[str, Any]) -> list[Section]:
    return [Section("blockers", data["blockers"], COLUMNS + ["since", "partition_id"])]


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)


def _table(data: dict[str, Any]) -> str:
    head = [("session", data["session_id"] or "(all)"), ("snapshot time", data["snapshot_time"]),
            ("incomplete nodes", f"{data['incomplete_nodes']} (tasks and results not yet "
                                 "complete, failed ones included)"),
            ("blocking nodes", f"{data['blocking_nodes']} (incomplete, every input complete: "
                               "the blockers below)")]
    if data.get("failed_at_frontier"):
        head.append(("failed at frontier", f"{data['failed_at_frontier']} (root causes, not "
                                           "blockers: see `aksnap analyze` or `aksnap lineage`)"))
    if data["ranked_exactly"] < data["blocking_nodes"]:
        head.append(("note", f"ranked the {data['ranked_exactly']} longest-waiting blocking nodes"))
    return render_sections([
        ("Blockers (ranked by incomplete results held up)", data["blockers"], COLUMNS),
    ], head)
