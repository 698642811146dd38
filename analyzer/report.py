"""``aksnap report``: one self-contained HTML page of a bundle, to open offline and forward.

``build(snap, session_id=None, result_id=None)`` gathers plain data from the existing analyses
(overview, blockers, critical path, lineage: their Python API, nothing recomputed here) plus
the aggregates a page needs (tasks by status over time bins, completions per bin, phase
histograms per partition, the slowest tasks, utilisation per partition, the lost results
grouped by root cause, lineage DAGs laid out in layers); ``render(data)`` puts it into one
HTML file with its CSS and JavaScript inlined (``report_assets/``), and ``write(snap, out, ...)``
does both, atomically. ``write_series(dir, out, ...)`` does the same for a series recorded by
``aksnap watch --record``: the page of its latest bundle plus the recorded states (``replay``).

Safety: the bundle's strings travel only inside one ``<script type="application/json">``
element, JSON-encoded with ``<``, ``>``, ``&``, U+2028 and U+2029 escaped (nothing in it can
close the element), and the page's script puts every one of them into the DOM with
``textContent`` or an SVG text node, never as markup. A Content-Security-Policy meta forbids
every load (``default-src 'none'``); the page's own style and script run by a per-page nonce.

Scale: everything shown is aggregated or capped (time bins, histograms, the top 20 of each
table, DAGs of at most :data:`DAG_NODES` nodes nearest the result, the id search over the ids
in the page, plus every id when the bundle holds at most :data:`INDEX_MAX` nodes); the page says
what was aggregated and which command shows the detail.

Links: every section a finding may point at has a stable ``id`` (:func:`anchor`); the first
child of ``main`` is the verdict panel's slot.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import secrets
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aksnap.bundle import (
    STATUS_SETS,
    TASK_CANCELLED_STATUSES,
    TASK_FAILED_STATUSES,
    TASK_PHASES,
    TASK_RETRIED_STATUSES,
    TASK_STATUSES,
    TASK_SUCCESS_STATUSES,
)
from aksnap.output import jsonable

from .graph import NA, concat_ranges
from .snapshot import AnalysisError

TIME_BINS = 120          # instants of the status-over-time and throughput charts
HIST_EDGES = np.concatenate([[0.0], 10.0 ** np.arange(-3.0, 5.01, 0.25)])  # seconds, log bins
TOP = 20                 # rows of each table
DAG_NODES = 250          # nodes of a lineage DAG embedded in the page
DAG_VISIBLE_DEPTH = 3    # hops from the result shown before "expand upstream"
DAG_VISIBLE_ROWS = 24    # nodes of a column shown before "expand upstream" (the rest: "+N")
LINEAGES = 4             # results that matter, per session
SESSIONS_SHOWN = 5       # sessions in full (the largest); --session for another
INDEX_MAX = 60_000       # below this many nodes, every id is searchable in the page
MESSAGE_CHARS = 2_000    # a message longer than this is cut in the page (with its length)
CAUSES_SHOWN = 6         # lineage sections by root cause, per session (the rest counted)
CAUSES_EXACT = 20        # causes whose lost results are counted exactly (the largest first)
CAUSE_RESULTS = 10       # results listed (and drawn) per cause; the rest counted
SLOWEST = 20             # slowest tasks kept per measure (total, each phase), per session
PARTITIONS_SHOWN = 12    # partitions with a utilisation chart (the busiest)

#: The tasks ending in each time bin, by the vocabulary's final sets (status codes).
ENDED_SETS = {name: [TASK_STATUSES.index(s) for s in statuses] for name, statuses in (
    ("completed", TASK_SUCCESS_STATUSES), ("failed", TASK_FAILED_STATUSES),
    ("retried", TASK_RETRIED_STATUSES), ("cancelled", TASK_CANCELLED_STATUSES))}

STATUS_ORDER = ["PENDING", "SUBMITTED", "DISPATCHED", "PROCESSING", "COMPLETED", "RETRIED",
                "ERROR", "TIMEOUT", "CANCELLED", "CANCELLING", "PAUSED", "CREATING", "UNSPECIFIED"]


def _iso(us: int) -> str | None:
    from .common import to_time

    t = to_time(int(us)) if us != NA else None
    return t.isoformat() if t else None


def _utc(t) -> str:
    """An instant as a person reads it: ``2026-01-02 14:03:07 UTC``."""
    from datetime import timezone

    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cut(s: str | None) -> str | None:
    if s is None or len(s) <= MESSAGE_CHARS:
        return s
    return s[:MESSAGE_CHARS] + f" ... [{len(s) - MESSAGE_CHARS} more characters; aksnap task ID]"


# -- aggregates ------------------------------------------------------------------------------------

def timeline(g, tasks: np.ndarray, snapshot_us: int, bins: int = TIME_BINS) -> dict[str, Any]:
    """Tasks by status at ``bins + 1`` instants (the definition of queries/status_over_time.sql:
    PENDING [created, submitted), SUBMITTED [submitted, acquired), DISPATCHED [acquired,
    started), PROCESSING [started, ended), then the final status), and the tasks ending in each
    bin by the vocabulary's final sets (``completed``: success, ``failed``, ``retried``,
    ``cancelled``; what ``queries/throughput.sql`` counts). Counted with sorted timestamps and
    binary search: no per-task work."""
    ts = g.task_ts
    c = ts["created_at"][tasks]
    keep = c != NA
    tasks, c = tasks[keep], c[keep]
    if not len(tasks):
        return {"t0": None, "bin_s": 0, "times_s": [], "counts": {}, **{k: [] for k in ENDED_SETS}}
    end = ts["ended_at"][tasks]
    t0 = int(c.min())
    t1 = int(max(end[end != NA].max() if (end != NA).any() else t0, c.max()))
    grid = t0 + ((t1 - t0) * np.arange(bins + 1) // bins)
    big = np.iinfo(np.int64).max
    sub, acq, sta = (ts[k][tasks] for k in ("submitted_at", "acquired_at", "started_at"))

    def entered(x: np.ndarray) -> np.ndarray:  # tasks that entered a state by each instant
        return np.searchsorted(np.sort(np.where(x == NA, big, x)), grid, side="right")

    # a task leaves a state when it enters any later one (a missing timestamp: the next known)
    e_end = np.where(end == NA, big, end)
    e_sta = np.minimum(np.where(sta == NA, big, sta), e_end)
    e_acq = np.minimum(np.where(acq == NA, big, acq), e_sta)
    e_sub = np.minimum(np.where(sub == NA, big, sub), e_acq)
    n_created, n_sub, n_acq, n_sta = (entered(x) for x in (c, e_sub, e_acq, e_sta))
    counts = {"PENDING": n_created - n_sub, "SUBMITTED": n_sub - n_acq,
              "DISPATCHED": n_acq - n_sta}
    status = g.task_status[tasks]
    n_end_total = np.zeros(len(grid), dtype=np.int64)
    for code in np.unique(status).tolist():
        name = TASK_STATUSES[code] if code >= 0 else "UNKNOWN"
        m = status == code
        n = np.searchsorted(np.sort(e_end[m]), grid, side="right")
        counts[name] = counts.get(name, 0) + n
        n_end_total += n
    counts["PROCESSING"] = n_sta - n_end_total
    order = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts) - set(STATUS_ORDER))
    edges = grid.copy()
    edges[-1] += 1
    ended = {k: np.histogram(end[(end != NA) & np.isin(status, codes)], bins=edges)[0].tolist()
             for k, codes in ENDED_SETS.items()}
    return {"t0": _iso(t0), "bin_s": (t1 - t0) / bins / 1e6,
            "times_s": ((grid - t0) / 1e6).round(3).tolist(),
            "counts": {k: np.asarray(counts[k]).astype(int).tolist() for k in order
                       if np.asarray(counts[k]).any()},
            **ended, "snapshot_s": round((snapshot_us - t0) / 1e6, 3) if snapshot_us else None}


def phase_histograms(g, tasks: np.ndarray, percentiles: list[dict]) -> list[dict[str, Any]]:
    """Per partition and phase: a histogram of durations over log-spaced bins (seconds), with
    the percentiles of the overview (queries/phase_percentiles.sql)."""
    parts = g.details["partition_id"].take(pa.array(tasks)).combine_chunks()
    enc = parts.dictionary_encode()
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    names = enc.dictionary.to_pylist()
    pct = {(r["partition_id"], r["phase"]): r for r in percentiles}
    ts = g.task_ts
    out = []
    for k, part in enumerate(names):
        sel = tasks[codes == k]
        for phase, a, b in TASK_PHASES:
            x, y = ts[a][sel], ts[b][sel]
            ok = (x != NA) & (y != NA) & (y >= x)
            d = (y[ok] - x[ok]) / 1e6
            if not len(d):
                continue
            hist = np.histogram(np.clip(d, 0, HIST_EDGES[-1]), bins=HIST_EDGES)[0]
            p = pct.get((part, phase), {})
            out.append({"partition_id": part, "phase": phase, "tasks": int(len(d)),
                        "hist": hist.tolist(), "p50_s": p.get("p50_s"), "p90_s": p.get("p90_s"),
                        "max_s": p.get("max_s", float(d.max()))})
    return out


# -- lineage DAGs ----------------------------------------------------------------------------------

def _hops(g, targets) -> np.ndarray:
    """Fewest data hops from every upstream node down to the nearest of ``targets`` (-1: not
    upstream), one vectorised breadth-first level at a time."""
    dist = np.full(g.n, -1, dtype=np.int64)
    front = np.unique(np.atleast_1d(np.asarray(targets, dtype=np.int64)))
    dist[front] = 0
    d = 0
    while len(front):
        lo = g.in_ptr[front]
        nxt = g.in_src[concat_ranges(lo, g.in_ptr[front + 1] - lo)]
        nxt = np.unique(nxt[dist[nxt] < 0])
        d += 1
        dist[nxt] = d
        front = nxt
    return dist


def _path_down(g, start: int, dist: np.ndarray) -> list[int]:
    """A fewest-hops path from ``start`` down to the node of hop 0 (each step to an output one
    hop nearer: one exists for every node a breadth-first search reached)."""
    path, u = [start], start
    while dist[u] > 0:
        outs = g.out_dst[g.out_ptr[u]:g.out_ptr[u + 1]]
        nearer = outs[dist[outs] == dist[u] - 1]
        if not len(nearer):
            break
        u = int(nearer.min())
        path.append(u)
    return path


def _marked(g, lin: dict, dist: np.ndarray) -> dict[int, set]:
    """The upstream nodes the lineage names (its first frontier rows and root causes): node ->
    its roles ("frontier", "root")."""
    marked: dict[int, set] = {}
    for role, rows in (("frontier", lin["frontier"]), ("root", lin["root_causes"])):
        for r in rows[:TOP]:
            if r["kind"] == "task":
                i = g.task_index(r["id"])
            else:
                j = g.result_index(r["id"])
                i = g.n_tasks + j if j >= 0 else -1
            if i >= 0 and dist[i] >= 0:
                marked.setdefault(i, set()).add(role)
    return marked


def _kept(dist: np.ndarray, paths: dict[int, list[int]],
          cap: int) -> tuple[np.ndarray, dict[int, int]]:
    """The nodes drawn: the ``cap`` nearest the result, plus every marked node's path down to
    it; (the nodes in order, node -> its layer: hops from the result)."""
    up = np.flatnonzero(dist >= 0)
    near = up[np.lexsort((up, dist[up]))][:cap]  # the nearest first
    keep = set(near.tolist())
    for p in paths.values():
        keep.update(p)
    hop = {u: int(dist[u]) for u in keep}
    all_nodes = np.array(sorted(hop), dtype=np.int64)
    return all_nodes, {u: hop[u] for u in all_nodes.tolist()}


def _rows_in_layers(layer_of: dict[int, int], src: np.ndarray, dst: np.ndarray,
                    targets: list[int]) -> dict[int, float]:
    """Each node's row within its layer: the results in the order given, then layer by layer
    away from them, ordered by the mean row of its successors already placed (then by node).
    The page lays out the visible nodes from these orders (report.js ``layout``)."""
    succ: dict[int, list[int]] = {}
    for a, b in zip(src.tolist(), dst.tolist()):
        succ.setdefault(a, []).append(b)
    row: dict[int, float] = {}
    layers: dict[int, list[int]] = {0: list(targets)}
    for u, h in layer_of.items():
        if h:
            layers.setdefault(h, []).append(u)
    for h in sorted(layers):
        us = layers[h]
        if h:
            us.sort(key=lambda u: (np.mean([row[v] for v in succ.get(u, []) if v in row])
                                   if any(v in row for v in succ.get(u, [])) else 1e9, u))
        for k, u in enumerate(us):
            row[u] = float(k)
    return row


def _dag_nodes(g, lin: dict, all_nodes: np.ndarray, targets: set, marked: dict[int, set],
               layer_of: dict[int, int], row: dict[int, float], visible: set) -> list[dict]:
    """The page's node records: id, kind, status, place, flags, times; for a task its
    partition, pod, message and attempt; for a frontier row what it waits for, for a root
    cause what it explains; how many of its inputs the page does not hold."""
    from .describe import session_ids, status_names, task_columns

    ids = g.node_ids(all_nodes)
    statuses = status_names(g, all_nodes).tolist()
    sess = session_ids(g, all_nodes)
    t = all_nodes[all_nodes < g.n_tasks]
    tcols = task_columns(g, t, ["partition_id", "pod_hostname", "output_error", "status_message"]) \
        if len(t) else {}
    tpos = {u: k for k, u in enumerate(t.tolist())}
    in_total = (g.in_ptr[all_nodes + 1] - g.in_ptr[all_nodes]).tolist()
    front = {r["id"]: r for r in lin["frontier"]}
    roots = {r["id"]: r for r in lin["root_causes"]}
    out_nodes = []
    for k, u in enumerate(all_nodes.tolist()):
        task = u < g.n_tasks
        ts = g.task_ts if task else g.result_ts
        j = u if task else u - g.n_tasks
        d = {"id": ids[k], "kind": "task" if task else "result", "status": statuses[k],
             "session_id": sess[k], "layer": layer_of[u], "row": row[u],
             "visible": u in visible, "frontier": "frontier" in marked.get(u, ()),
             "root": "root" in marked.get(u, ()), "target": u in targets,
             "created_at": _iso(ts["created_at"][j]),
             "ended_at": _iso(ts["ended_at"][j] if task else ts["completed_at"][j]),
             "inputs": in_total[k]}
        if task:
            p = tpos[u]
            d.update(partition_id=tcols["partition_id"][p], pod=tcols["pod_hostname"][p],
                     message=_cut((tcols["output_error"][p] or tcols["status_message"][p] or "")
                                  .strip()) or None,
                     started_at=_iso(ts["started_at"][j]), attempt=int(g.attempt[u]))
        if ids[k] in front:
            f = front[ids[k]]
            d.update(waiting_for=f.get("waiting_for"), in_status_s=f.get("in_status_s"))
        if ids[k] in roots:
            d.update(explains=roots[ids[k]].get("explains"))
        ins = g.in_src[g.in_ptr[u]:g.in_ptr[u + 1]]  # what "expand upstream" cannot show
        d["inputs_not_in_page"] = int(np.count_nonzero(~np.isin(ins, all_nodes)))
        out_nodes.append(d)
    return out_nodes


def _page_edges(all_nodes: np.ndarray, src: np.ndarray, dst: np.ndarray,
                kind: np.ndarray) -> list[list[int]]:
    """The edges between drawn nodes, as [source position, destination position, kind]."""
    shown = set(all_nodes.tolist())
    idx = {u: k for k, u in enumerate(all_nodes.tolist())}
    return [[idx[a], idx[b], int(k)] for a, b, k in zip(src.tolist(), dst.tolist(), kind.tolist())
            if a in shown and b in shown]


def human_seconds(s: float | None) -> str:
    """A duration as people say it (the page's script writes the same): 850 µs, 12.4 ms,
    3.21 s, 4 min 12 s, 3 h 5 min, 12 d 4 h."""
    if s is None:
        return ""
    sign, s = ("-" if s < 0 else ""), abs(float(s))
    if s < 1e-3:
        return f"{sign}{s * 1e6:.0f} µs"
    if s < 0.99995:
        return f"{sign}{s * 1e3:.{2 if s < 0.01 else 1}f} ms"
    if s < 59.95:
        return f"{sign}{s:.{2 if s < 9.995 else 1}f} s"
    t = round(s)  # each unit rounded once, so never "59 min 60 s"
    if t < 3600:
        whole, rest, unit, sub = *divmod(t, 60), "min", "s"
    elif round(s / 60) < 1440:
        whole, rest, unit, sub = *divmod(round(s / 60), 60), "h", "min"
    else:
        whole, rest, unit, sub = *divmod(round(s / 3600), 24), "d", "h"
    return f"{sign}{whole} {unit}" + (f" {rest} {sub}" if rest else "")


def _summary(lin: dict) -> str:
    """The lineage's one line (``lineage.summary_line``'s sentence) for the page: counts with
    thousands separators, the time in status as people say it."""
    up = lin["upstream"]
    if lin["status"] == "COMPLETED":
        return f"result {lin['result_id']} is COMPLETED"
    s = (f"result {lin['result_id']} is {lin['status']}: depends on {up['tasks']:,} tasks and "
         f"{up['results']:,} results, {up['percent_complete']:.1f}% complete")
    if lin["root_causes"]:
        rc = lin["root_causes"][0]
        s += f"; root cause: {rc['kind']} {rc['id']} {rc['status']}"
        if rc.get("message"):
            s += f" ({rc['message'][:80]})"
    elif lin["frontier"]:
        f = lin["frontier"][0]
        s += f"; held by {f['kind']} {f['id']} {f['status']} for {human_seconds(f['in_status_s'])}"
    return s


def _dag(snap, lin: dict, targets: list[int], cap: int,
         visible_rows: int = DAG_VISIBLE_ROWS) -> dict[str, Any]:
    """The DAG upstream of ``targets`` (result nodes) for the page: the nodes nearest them, the
    frontier and root causes ``lin`` names with a path down to a target, each node's layer (x:
    hops from the nearest target) and order, which are visible at first. Shared upstream nodes
    are drawn once."""
    g = snap.graph
    dist = _hops(g, targets)
    marked = _marked(g, lin, dist)
    paths = {m: _path_down(g, m, dist) for m in marked}
    all_nodes, layer_of = _kept(dist, paths, cap)
    for t in targets:  # every target drawn, even beyond the cap
        if t not in layer_of:
            layer_of[t] = 0
    all_nodes = np.array(sorted(layer_of), dtype=np.int64)
    src, dst, kind = g.subgraph_edges(all_nodes)
    row = _rows_in_layers(layer_of, src, dst, targets)
    # visibility: a few hops (the first rows of each column: a wide fan-in is a "+N" badge),
    # plus every target, every marked node and its path to a target
    visible = {u for u, h in layer_of.items()
               if h <= DAG_VISIBLE_DEPTH and (row[u] < visible_rows or h == 0)}
    for p in paths.values():
        visible.update(p)
    out_nodes = _dag_nodes(g, lin, all_nodes, set(targets), marked, layer_of, row, visible)
    return {"nodes": out_nodes, "edges": _page_edges(all_nodes, src, dst, kind),
            "upstream_nodes": int(np.count_nonzero(dist >= 0)), "nodes_in_page": len(out_nodes)}


def lineage_dag(snap, result_id: str, cap: int = DAG_NODES) -> dict[str, Any]:
    """The result's lineage (the `lineage` analysis) and its upstream DAG for the page: the
    nodes nearest the result, the frontier and root causes with a path down to the result,
    positions in layers (x: hops from the result), which are visible at first."""
    from . import lineage as lineage_mod

    g = snap.graph
    lin = lineage_mod.build(snap, result_id, frontier_limit=TOP)
    dag = _dag(snap, lin, [g.n_tasks + g.result_index(result_id)], cap)
    summary = _summary(lin)
    total_up = int(lin["upstream"]["tasks"] + lin["upstream"]["results"] + 1)
    return {"result_id": result_id, "status": lin["status"], "summary": summary,
            "upstream_nodes": total_up, "nodes_in_page": dag["nodes_in_page"],
            "percent_complete": lin["upstream"]["percent_complete"],
            "frontier_total": lin["frontier_total"], "frontier": jsonable(lin["frontier"]),
            "root_causes": jsonable([{k: v for k, v in r.items() if k != "path"}
                                      for r in lin["root_causes"][:TOP]]),
            "nodes": dag["nodes"], "edges": dag["edges"]}


def results_that_matter(g, session_code: int, limit: int = LINEAGES) -> list[tuple[int, str]]:
    """Results of a session nobody reads (final outputs) that are blocked (incomplete) first,
    then failed (aborted, deleted), each group in bundle order; at most ``limit``, half of
    them kept for failed ones when there are both."""
    in_session = g.session_of[g.n_tasks:] == session_code
    sink = g.out_degree[g.n_tasks:] == 0
    has_producer = g.producer >= 0
    blocked = np.flatnonzero(in_session & sink & has_producer & ~g.complete[g.n_tasks:]
                             & ~g.bad[g.n_tasks:])
    failed = np.flatnonzero(in_session & sink & g.bad[g.n_tasks:])
    picks = [(int(j), "blocked") for j in blocked[:limit]]
    picks = picks[:limit - min(len(failed), limit // 2)]  # room for the failed ones
    picks += [(int(j), "failed") for j in failed[:limit - len(picks)]]
    return picks


# -- anchors ----------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def anchor(section: str, session_id: str | None = None, key: str | None = None) -> str:
    """The ``id`` of a section of the page, for a link to it (the verdict panel's findings):
    ``SECTION``, ``SECTION-SESSION`` or ``SECTION-SESSION-KEY`` (``SECTION-KEY`` without a
    session), every character outside ``[A-Za-z0-9_.-]`` written ``_``. Sections:
    ``verdict`` (the slot at the top), ``session``, ``lineage`` (the lineage sections of a
    session), ``lineage-cause`` (one root cause: key :func:`lineage_causes`' ``key``),
    ``lineage-result`` (one result: key its id), ``critical-path``, ``stragglers`` (the
    slowest tasks), ``failures`` (error classes, retries), ``blockers``, ``timeline``,
    ``utilisation`` (key: a partition id)."""
    return "-".join([section] + [_UNSAFE.sub("_", p) for p in (session_id, key) if p is not None])


# -- the verdict panel -------------------------------------------------------------------------------

_SECTION_OF = {  # a finding's kind -> the section of its session that shows its detail
    "unsatisfiable_dependency": "blockers", "bad_node": "failures",
    "retries_never_recover": "failures", "straggler": "stragglers", "stall": "timeline",
    "throughput_drop": "timeline", "capacity_bound": "critical-path", "clean_run": "session",
    "session_cancelled": "lineage", "failures_by_root_cause": "failures",
    "new_error_class": "failures"}


def _finding_cause_anchor(f: dict[str, Any], shown: dict[str, Any]) -> str | None:
    """The lineage section (one per root cause) a failure finding is about: the cancellation
    of its session, else the cause whose root tasks or lost results hold the finding's."""
    causes = [lin for lin in shown["lineages"] if lin.get("why") == "cause"]
    if f["kind"] == "session_cancelled":
        return next((lin["anchor"] for lin in causes if lin["kind"] == "session_cancelled"), None)
    ev = f["evidence"]
    roots = set(ev.get("root_ids") or ())
    example = ev.get("example_result")
    for lin in causes:
        if lin["kind"] == "session_cancelled":
            continue
        if roots & {r.get("id") for r in lin.get("root_causes") or ()} or \
                (example is not None and example in (lin.get("results") or ())):
            return lin["anchor"]
    return None


def verdict(snap, session_id: str | None, sessions: list[dict[str, Any]],
            use: dict[str, Any], paths=None, path_ids: list[str] | None = None) -> dict[str, Any]:
    """The findings (:mod:`findings`, ranked) for the panel at the top of the page, each with
    ``anchor``: the id of the section of this page that shows its detail (the lineage section
    of its root cause, the slowest tasks, the utilisation of its partition...), or ``None``
    when the page does not draw it (a session not shown: ``next`` is the command that does).
    ``paths``/``path_ids``: the critical paths the page computed (not computed twice)."""
    from . import findings as findings_mod

    d = findings_mod.build(snap, session_id, paths=paths, path_ids=path_ids)
    shown = {s["overview"]["session_id"]: s for s in sessions}
    drawn = {p["partition_id"] for p in use["partitions"]}
    out = []
    for f in d["findings"]:
        f = dict(f)
        several = f["evidence"].get("sessions")  # a finding said once for several sessions
        first = several[0] if isinstance(several, list) and several else None
        if isinstance(first, dict):  # the cancelled sessions: one row each
            first = first.get("session_id")
        sid = f["session_id"] or first
        s = shown.get(sid) if isinstance(sid, str) else None
        if s is None and sid is None and len(shown) == 1:
            s = next(iter(shown.values()))
        link = None
        part = f["evidence"].get("partition_id")
        if f["kind"] == "starved_partition" and part in drawn:
            link = anchor("utilisation", None, str(part))
        elif s is not None:
            if f["kind"] in ("session_cancelled", "failures_by_root_cause", "new_error_class"):
                link = _finding_cause_anchor(f, s)
            link = link or s["anchors"].get(_SECTION_OF.get(f["kind"], "session"))
        f["anchor"] = link
        out.append(f)
    return {"findings": out, "summary": d["summary"], "clean": d["clean"],
            "counts": d["counts"], "omitted": d["omitted"]}


# -- lineage by root cause -------------------------------------------------------------------------

_CLASS_RULES = (  # queries/error_classes.sql's placeholders, the same regular expressions
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(###[0-9]+)?", "<id>"),
    (r"\b[0-9a-fA-F]{16,}\b", "<hex>"),
    (r"[0-9]+(\.[0-9]+)?", "<n>"))


def error_classes(messages: pa.Array) -> pa.Array:
    """Each message's class as ``queries/error_classes.sql`` makes it (its first 300
    characters, ids, long hex strings and numbers as placeholders), vectorised (Arrow)."""
    x = pc.utf8_slice_codeunits(pc.fill_null(messages, "(no message)"), 0, 300)
    for pattern, placeholder in _CLASS_RULES:
        x = pc.replace_substring_regex(x, pattern, placeholder)
    return x


def _cause_keys(snap, origins: np.ndarray, session_row: dict) -> tuple[np.ndarray, list[dict]]:
    """Each origin's cause (an index into the returned list): the cancellation of its session
    when a task was cancelled in a cancelled session (ArmoniK cancels every open task of a
    cancelled session: one cause, said once); else its status and error class (failures
    alike, counted once); a result that went bad with no bad input: its status."""
    from .describe import status_names

    g = snap.graph
    T = g.n_tasks
    status = status_names(g, origins)
    is_task = origins < T
    which = np.full(len(origins), -1, dtype=np.int64)
    causes: list[dict] = []
    index: dict[tuple, int] = {}

    def cause_of(k: tuple) -> int:
        if k not in index:
            index[k] = len(causes)
            kind, st, cls = k
            if kind == "session_cancelled":
                key = "session-cancelled"
            elif kind == "results_lost":
                key = f"result-{st.lower()}"
            else:
                key = f"{st.lower()}-" + hashlib.sha1(cls.encode("utf-8", "surrogatepass")).hexdigest()[:10]
            causes.append({"kind": kind, "key": key, "status": st, "error_class": cls})
        return index[k]

    cancelled_session = session_row.get("session_status") == "CANCELLED"
    cancel = is_task & np.isin(status, list(TASK_CANCELLED_STATUSES) + ["CANCELLING"])
    if cancelled_session and cancel.any():
        which[cancel] = cause_of(("session_cancelled", "CANCELLED", None))
    rest = np.flatnonzero(is_task & (which < 0))
    if len(rest):
        det = g.details.select(["output_error", "status_message"]).take(pa.array(origins[rest]))
        err = pc.utf8_trim_whitespace(det["output_error"].combine_chunks())
        msg = pc.if_else(pc.fill_null(pc.greater(pc.utf8_length(err), 0), False), err,
                         pc.utf8_trim_whitespace(det["status_message"].combine_chunks()))
        msg = pc.if_else(pc.fill_null(pc.greater(pc.utf8_length(msg), 0), False), msg,
                         pa.scalar(None, pa.string()))
        for i, st, cls in zip(rest.tolist(), status[rest].tolist(), error_classes(msg).to_pylist()):
            which[i] = cause_of(("task_failures", st, cls))
    for i in np.flatnonzero(~is_task).tolist():
        which[i] = cause_of(("results_lost", status[i], None))
    return which, causes


def lineage_causes(snap, session_id: str, session_row: dict | None = None,
                   shown: int = CAUSES_SHOWN) -> dict[str, Any]:
    """The session's lost final outputs (results no task reads, ABORTED or DELETED) grouped
    by root cause: each cause with its root tasks (failure origins: a bad node none of whose
    inputs is bad), the results it explains (every lost final output downstream of one of
    them), its anchor in the page. A cancelled session is one cause, however many tasks it
    cancelled; failures of one status and error class are one cause. The ``shown`` causes
    explaining most results come first; ``more_causes`` and ``unexplained`` count the rest.

    Counted with arrays: a lower bound per cause from :meth:`TaskGraph.downstream_sums` ranks
    them, then the :data:`CAUSES_EXACT` largest are walked downstream (one traversal each)."""
    g = snap.graph
    T = g.n_tasks
    if session_row is None:
        session_row = {"session_status": snap.scalar(
            "SELECT status FROM sessions WHERE session_id = $s", {"s": session_id})}
    names = g.sessions.to_pylist()
    if session_id not in names:  # a session row with no task or result
        return {"causes": [], "more_causes": 0, "lost_results": 0, "unexplained": 0,
                "unexplained_ids": []}
    in_session = g.session_of == names.index(session_id)
    lost = np.zeros(g.n, dtype=bool)
    lost[T:] = in_session[T:] & (g.out_degree[T:] == 0) & g.bad[T:]
    n_lost = int(lost.sum())
    empty = {"causes": [], "more_causes": 0, "lost_results": n_lost, "unexplained": n_lost,
             "unexplained_ids": []}
    if not n_lost:
        return empty
    origins = g.origins(np.flatnonzero(in_session))
    if not len(origins):
        return {**empty, "unexplained_ids": [g.node_id(int(u)) for u in np.flatnonzero(lost)[:LINEAGES]]}
    which, causes = _cause_keys(snap, origins, session_row)
    sums, _ = g.downstream_sums(origins, lost.astype(np.int64))
    reach = sums[:, 0] + lost[origins]  # an origin can be a lost final output itself
    bound = np.zeros(len(causes), dtype=np.int64)
    np.maximum.at(bound, which, reach)   # at least what its largest origin explains
    order = np.lexsort((np.arange(len(causes)), -bound))
    explained = np.zeros(g.n, dtype=bool)
    exact = []
    for c in order[:CAUSES_EXACT].tolist():
        if not bound[c]:
            break
        roots = origins[which == c]
        down = np.union1d(g.descendants(roots), roots)
        res = down[lost[down]]
        explained[res] = True
        bad_results = down[(down >= T) & g.bad[down] & in_session[down]]
        exact.append((c, roots, res, int(len(bad_results))))
    exact.sort(key=lambda e: (-len(e[2]), causes[e[0]]["key"]))
    scope = np.flatnonzero(in_session)
    out = []
    for c, roots, res, n_bad in exact[:shown]:
        out.append(_cause_section(snap, session_id, session_row, causes[c], roots, res, n_bad,
                                  scope))
    more = int(np.count_nonzero(bound > 0)) - len(out)
    left = np.flatnonzero(lost & ~explained)
    walked_all = int(np.count_nonzero(bound > 0)) <= CAUSES_EXACT  # else some are not walked
    return {"causes": out, "more_causes": more, "lost_results": n_lost,
            "unexplained": int(len(left)) if walked_all else None,
            "unexplained_ids": [g.node_id(int(u)) for u in left[:LINEAGES]] if walked_all else []}


def _cause_section(snap, session_id: str, session_row: dict, cause: dict, roots: np.ndarray,
                   results: np.ndarray, lost_results: int, scope: np.ndarray) -> dict[str, Any]:
    """One root cause for the page: its sentence, its root tasks (the first :data:`TOP`, the
    ones upstream of the drawn results first), the results it explains (the first
    :data:`CAUSE_RESULTS` listed and drawn in one DAG, shared upstream once)."""
    from .describe import root_cause_rows

    g = snap.graph
    targets = [int(u) for u in results[:CAUSE_RESULTS]]
    drawn_roots = np.intersect1d(roots, g.ancestors(np.asarray(targets, dtype=np.int64))) \
        if targets else np.zeros(0, dtype=np.int64)
    rows_of = np.union1d(drawn_roots[:TOP], roots[:TOP])
    rows = root_cause_rows(snap, rows_of, scope)
    first = set(g.node_ids(drawn_roots[:TOP]))
    rows.sort(key=lambda r: (r["id"] not in first, -r["explains"], r["id"]))
    rows = [{k: v for k, v in r.items() if k not in ("path", "hops")} for r in rows[:TOP]]
    for r in rows:
        r["message"] = _cut(r.get("message"))
    # the paths from the root tasks matter here: few other rows shown at first
    dag = _dag(snap, {"frontier": [], "root_causes": rows}, targets, DAG_NODES,
               visible_rows=max(8, 2 * len(targets)))
    n, k = len(results), len(roots)
    lost_words = f"{n:,} result{'s' * (n != 1)} lost"
    if cause["kind"] == "session_cancelled":
        at = snap.scalar("SELECT cancelled_at FROM sessions WHERE session_id = $s",
                         {"s": session_id})
        when = f" at {_utc(at)}" if at is not None else ""
        claim = (f"session {session_id} was cancelled{when}: {lost_words}, "
                 f"{k:,} task{'s' * (k != 1)} cancelled with it")
    elif cause["kind"] == "results_lost":
        claim = (f"{lost_words}: {k:,} result{'s' * (k != 1)} {cause['status']} with no "
                 "failed input (deleted by a client, or its producer is not in the bundle)")
    else:
        what = rows[0]["message"] if k == 1 and rows and rows[0].get("message") \
            else cause["error_class"]
        claim = f"{lost_words}: {k:,} task{'s' * (k != 1)} {cause['status']}: {_cut(what)}"
    return {"why": "cause", "kind": cause["kind"], "key": cause["key"],
            "anchor": anchor("lineage-cause", session_id, cause["key"]), "claim": claim,
            "status": cause["status"], "error_class": _cut(cause["error_class"]),
            "results_total": n, "results": g.node_ids(np.asarray(targets, dtype=np.int64)),
            "lost_results": lost_results, "roots_total": k, "root_causes": jsonable(rows),
            "frontier": [], "frontier_total": 0, "result_id": None,
            "upstream_nodes": dag["upstream_nodes"], "nodes_in_page": dag["nodes_in_page"],
            "nodes": dag["nodes"], "edges": dag["edges"]}


# -- the slowest tasks and the partitions' pods ----------------------------------------------------

_CHAIN = ["created_at", "submitted_at", "acquired_at", "fetched_at", "started_at", "processed_at",
          "ended_at"]  # TASK_PHASES' boundaries, in order


def slowest_tasks(g, tasks: np.ndarray, snap_us: int, percentiles: list[dict],
                  per_measure: int = SLOWEST) -> dict[str, Any]:
    """The slowest tasks of a session: the :data:`SLOWEST` longest by total time (created to
    ended, or to the snapshot while open) and by each phase of ``TASK_PHASES`` (an open task's
    current phase counted to the snapshot, as ``queries/stragglers.sql`` does), each row with
    every phase and its slowest phase against the partition's p50 for that phase."""
    ts = g.task_ts
    n = len(tasks)
    if not n:
        return {"rows": [], "tasks": 0, "per_measure": per_measure}
    from aksnap.bundle import TASK_OPEN_STATUSES

    open_codes = [TASK_STATUSES.index(s) for s in TASK_OPEN_STATUSES]
    is_open = np.isin(g.task_status[tasks], open_codes) & (snap_us > 0)
    stamps = np.stack([ts[c][tasks] for c in _CHAIN])          # (7, n)
    known = stamps != NA
    last = len(_CHAIN) - 1 - np.argmax(known[::-1], axis=0)    # the last known boundary
    durations = np.full((len(TASK_PHASES), n), np.nan)
    for k in range(len(TASK_PHASES)):
        a, b = stamps[k], stamps[k + 1]
        ok = known[k] & known[k + 1] & (b >= a)
        durations[k, ok] = (b[ok] - a[ok]) / 1e6
        now = is_open & (last == k) & known[k] & (snap_us >= a)  # the phase it is in now
        durations[k, now] = (snap_us - a[now]) / 1e6
    end = np.where(known[-1], stamps[-1], np.where(is_open, snap_us, NA))
    total = np.where(known[0] & (end != NA) & (end >= stamps[0]), (end - stamps[0]) / 1e6, np.nan)
    measures = np.vstack([total[None, :], durations])
    keep: set[int] = set()
    for m in measures:  # the largest of each measure: a partition, not a sort (O(tasks))
        v = np.where(np.isnan(m), -1.0, m)
        top = np.argpartition(-v, per_measure - 1)[:per_measure] if n > per_measure else np.arange(n)
        keep.update(top[v[top] >= 0].tolist())
    pick = np.array(sorted(keep), dtype=np.int64)
    if not len(pick):
        return {"rows": [], "tasks": n, "per_measure": per_measure}
    from .describe import status_names, task_columns

    nodes = tasks[pick]
    ids = g.node_ids(nodes)
    cols = task_columns(g, nodes, ["partition_id", "pod_hostname"])
    status = status_names(g, nodes).tolist()
    p50 = {(r["partition_id"], r["phase"]): r.get("p50_s") for r in percentiles}
    rows = []
    for j, k in enumerate(pick.tolist()):
        part = cols["partition_id"][j]
        phases = {name: (None if np.isnan(durations[i, k]) else round(float(durations[i, k]), 6))
                  for i, (name, _, _) in enumerate(TASK_PHASES)}
        worst, ratio = None, None
        for name, d in phases.items():
            m = p50.get((part, name))
            if d is not None and m:
                if ratio is None or d / m > ratio:
                    worst, ratio = name, d / m
        now = TASK_PHASES[last[k]][0] if is_open[k] and last[k] < len(TASK_PHASES) else None
        rows.append({"id": ids[j], "partition_id": part, "status": status[j],
                     "pod": cols["pod_hostname"][j], "created_at": _iso(stamps[0, k]),
                     "total_s": None if np.isnan(total[k]) else round(float(total[k]), 6),
                     **{f"{name}_s": d for name, d in phases.items()}, "in_phase": now,
                     "worst_phase": worst, "x_p50": None if ratio is None else round(ratio, 2)})
    rows.sort(key=lambda r: -(r["total_s"] or 0))
    return {"rows": rows, "tasks": n, "per_measure": per_measure}


def utilisation(snap, bins: int = TIME_BINS) -> dict[str, Any]:
    """Per partition, the tasks in progress (acquired by an agent until ended: DISPATCHED and
    PROCESSING, what a pod runs) and queued (SUBMITTED: in the partition's queue) at ``bins +
    1`` instants, against its pods: ``pod_reserved`` and ``pod_max`` from the partitions table
    and the distinct pods its tasks ran on. Every task of the bundle counts (sessions share a
    partition's pods); a missing timestamp counts as the next known one (as :func:`timeline`)."""
    g = snap.graph
    ts = g.task_ts
    c = ts["created_at"][:g.n_tasks]
    tasks = np.flatnonzero(c != NA)
    if not len(tasks):
        return {"t0": None, "bin_s": 0, "times_s": [], "partitions": [], "partitions_total": 0}
    end = ts["ended_at"][tasks]
    t0 = int(c[tasks].min())
    t1 = int(max(end[end != NA].max() if (end != NA).any() else t0, c[tasks].max()))
    grid = t0 + ((t1 - t0) * np.arange(bins + 1) // bins)
    big = np.iinfo(np.int64).max
    e_end = np.where(end == NA, big, end)
    e_sta = np.minimum(np.where(ts["started_at"][tasks] == NA, big, ts["started_at"][tasks]), e_end)
    e_acq = np.minimum(np.where(ts["acquired_at"][tasks] == NA, big, ts["acquired_at"][tasks]), e_sta)
    e_sub = np.minimum(np.where(ts["submitted_at"][tasks] == NA, big, ts["submitted_at"][tasks]), e_acq)
    det = g.details.select(["partition_id", "pod_hostname"]).take(pa.array(tasks))
    enc = det["partition_id"].combine_chunks().dictionary_encode()
    codes = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    names = enc.dictionary.to_pylist()
    pods_seen = {}
    if len(names):
        pairs = pa.table({"p": enc.indices, "h": det["pod_hostname"].combine_chunks()}) \
            .filter(pc.field("h") != "").group_by("p") \
            .aggregate([("h", "count_distinct")])
        pods_seen = {names[p]: n for p, n in zip(pairs["p"].to_pylist(),
                                                 pairs["h_count_distinct"].to_pylist()) if p is not None}
    table = {r["partition_id"]: r for r in snap.sql(
        "SELECT partition_id, pod_reserved, pod_max FROM partitions").to_pylist()}

    def entered(x: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.sort(x), grid, side="right")

    parts = []
    for k, name in enumerate(names):
        m = codes == k
        n_acq, n_end, n_sub = entered(e_acq[m]), entered(e_end[m]), entered(e_sub[m])
        running, queued = n_acq - n_end, n_sub - n_acq
        busy = running[(grid >= e_acq[m].min()) & (grid <= e_end[m][e_end[m] < big].max())] \
            if (e_end[m] < big).any() and (e_acq[m] < big).any() else running
        row = table.get(name, {})
        pods = pods_seen.get(name, 0)
        parts.append({"partition_id": name, "tasks": int(m.sum()),
                      "pod_reserved": row.get("pod_reserved"), "pod_max": row.get("pod_max"),
                      "in_table": name in table, "pods_observed": int(pods),
                      "in_progress": running.astype(int).tolist(), "queued": queued.astype(int).tolist(),
                      "peak_in_progress": int(running.max()), "peak_queued": int(queued.max()),
                      "mean_in_progress": round(float(busy.mean()), 2) if len(busy) else 0.0})
    parts.sort(key=lambda p: (-p["tasks"], str(p["partition_id"])))
    return {"t0": _iso(t0), "bin_s": (t1 - t0) / bins / 1e6,
            "times_s": ((grid - t0) / 1e6).round(3).tolist(),
            "partitions": parts[:PARTITIONS_SHOWN], "partitions_total": len(parts)}


# -- the page's data -------------------------------------------------------------------------------

def by_depth(g, tasks: np.ndarray) -> list[dict[str, Any]]:
    """Tasks per spawn depth (0: submitted by the client) and status, counted in numpy."""
    from aksnap.bundle import TASK_STATUSES

    names = list(TASK_STATUSES) + ["UNKNOWN"]
    depth = g.depth[tasks]
    status = np.where(g.task_status[tasks] < 0, len(names) - 1, g.task_status[tasks])
    keys, counts = np.unique(depth * len(names) + status, return_counts=True)
    rows: dict[int, dict[str, Any]] = {}
    for k, c in zip(keys.tolist(), counts.tolist()):
        d, st = divmod(k, len(names))
        row = rows.setdefault(d, {"depth": d, "tasks": 0})
        row["tasks"] += c
        row[names[st]] = c
    return [rows[d] for d in sorted(rows)]


def _messages(g, tasks: list[int]) -> list[str | None]:
    if not tasks:
        return []
    det = g.details.take(pa.array(np.asarray(tasks, dtype=np.int64)))
    return [_cut((e or m or "").strip()) or None for e, m in
            zip(det["output_error"].to_pylist(), det["status_message"].to_pylist())]


def _session_data(snap, overview_row: dict, result_id: str | None, notes: list[str],
                  cps: dict[str, Any]) -> dict:
    """One session's part of the page; ``cps``: its critical path
    (``critical_path.session_detail`` with every step), computed once for the page."""
    from . import blockers as blockers_mod

    g = snap.graph
    sid = overview_row["session_id"]
    code = g.sessions.to_pylist().index(sid)
    tasks = np.flatnonzero(g.session_of[:g.n_tasks] == code)
    snap_us = 0
    if snap.snapshot_time is not None:
        from .common import micros

        snap_us = micros(snap.snapshot_time)
    errors = overview_row.get("error_classes", [])[:TOP]
    ex = [g.task_index(e["example_task_id"]) for e in errors if e.get("example_task_id")]
    msgs = dict(zip(ex, _messages(g, [i for i in ex if i >= 0])))
    for e in errors:
        e["example_message"] = msgs.get(g.task_index(e["example_task_id"])) \
            if e.get("example_task_id") else None
    chains = snap.query("retry_chains", {"session_id": sid})
    retry_rows = jsonable(chains.slice(0, TOP).to_pylist())
    for r in retry_rows:
        r["messages"] = [_cut(m) for m in r.get("messages") or []]
    from . import check as check_mod

    anomalies = check_mod.build(snap, sid, limit=TOP, thorough=False)
    bl = blockers_mod.build(snap, sid, limit=TOP)
    steps = []
    task_steps = [s for s in cps.get("steps") or [] if s.get("kind") == "task"]
    for s in task_steps[:200]:
        i = g.task_index(s["id"])
        bars = {}
        for phase, a, b in TASK_PHASES:
            x, y = g.task_ts[a][i], g.task_ts[b][i]
            if x != NA and y != NA and y >= x:
                bars[phase] = [_iso(x), round((y - x) / 1e6, 6)]
        steps.append({"id": s["id"], "edge": s.get("edge"), "status": s.get("status"),
                      "total": s.get("total"), "share": s.get("share"), "phases": bars})
    if len(task_steps) > 200:
        notes.append(f"critical path of session {sid}: the first 200 of {len(task_steps):,} tasks "
                     f"drawn (aksnap critical-path --session {sid} --all for every one)")
    by_cause = lineage_causes(snap, sid, overview_row)
    failed = [(g.result_index(r), "failed") for r in by_cause["unexplained_ids"]]
    blocked = [p for p in results_that_matter(g, code) if p[1] == "blocked"]
    blocked = blocked[:LINEAGES // 2 if by_cause["causes"] or failed else LINEAGES]
    picks = blocked + failed[:max(LINEAGES - len(blocked), 0)]
    if result_id is not None and g.session_id(g.n_tasks + g.result_index(result_id)) == sid:
        picks = [(g.result_index(result_id), "asked")] + [p for p in picks
                                                          if p[0] != g.result_index(result_id)]
    if not picks and not by_cause["causes"] and cps.get("last_result"):
        picks = [(g.result_index(cps["last_result"]), "last result")]
    lineages = []
    for j, why in picks[:LINEAGES + 1]:
        rid = g.node_id(g.n_tasks + j)
        dag = lineage_dag(snap, rid, cap=DAG_NODES * (4 if why == "asked" else 1))
        dag["why"] = why
        dag["anchor"] = anchor("lineage-result", sid, rid)
        if dag["upstream_nodes"] > dag["nodes_in_page"]:
            notes.append(f"lineage of {rid}: {dag['nodes_in_page']:,} of its {dag['upstream_nodes']:,} "
                         f"upstream nodes in the page, the nearest (aksnap report --result {rid} "
                         f"shows more, aksnap graph --result {rid} writes every one)")
        lineages.append(dag)
    # the asked result first, then one section per root cause, then what holds the rest
    lineages = lineages[:1] + by_cause["causes"] + lineages[1:] \
        if lineages and lineages[0]["why"] == "asked" else by_cause["causes"] + lineages
    for c in by_cause["causes"]:
        if c["results_total"] > len(c["results"]):
            notes.append(f"{c['anchor']}: {len(c['results'])} of the {c['results_total']:,} results "
                         "this cause explains listed and drawn (aksnap lineage BUNDLE ID for any)")
    if by_cause["more_causes"]:
        notes.append(f"session {sid}: {by_cause['more_causes']:,} more root causes of lost results "
                     f"than the {CAUSES_SHOWN} drawn (aksnap analyze --session {sid} lists them)")
    return {
        "overview": {k: v for k, v in overview_row.items()
                     if k not in ("phases", "error_classes", "top_blockers", "root_causes")},
        "timeline": timeline(g, tasks, snap_us),
        "phases": phase_histograms(g, tasks, overview_row.get("phases", [])),
        "depths": by_depth(g, tasks),
        "errors": errors, "retries": {**overview_row.get("retries", {}), "chains_shown": retry_rows},
        "root_causes": overview_row.get("root_causes", []),
        "anomalies": {"counts": anomalies["counts"], "rows": jsonable(anomalies["anomalies"])},
        "blockers": bl.get("blockers", [])[:TOP], "blocking_nodes": bl.get("blocking_nodes"),
        "critical_path": {"line": cps.get("line"), "wall_s": cps.get("wall_s"),
                          "task_steps": len(task_steps), "steps": steps},
        "lineages": lineages,
        "lost": {k: by_cause[k] for k in ("lost_results", "more_causes", "unexplained")},
        "slowest": slowest_tasks(g, tasks, snap_us, overview_row.get("phases", [])),
        "anchors": {k: anchor(k, sid) for k in ("session", "lineage", "critical-path",
                                                "stragglers", "failures", "blockers", "timeline")},
    }


def build(snap, session_id: str | None = None, result_id: str | None = None) -> dict[str, Any]:
    """The page's data (plain, JSON-ready): meta, sessions in full (``session_id``, else the
    :data:`SESSIONS_SHOWN` largest), the id index, and notes saying what was aggregated."""
    from aksnap import __version__

    from . import overview as overview_mod

    g = snap.graph
    if session_id is not None:
        session_id = snap.resolve_id("session", session_id)
        snap.require_session(session_id)
    if result_id is not None:
        result_id = snap.resolve_id("result", result_id)
        if g.result_index(result_id) < 0:
            raise AnalysisError(f"result {result_id!r} is not in {snap.path}")
        if session_id is None:
            session_id = g.session_id(g.n_tasks + g.result_index(result_id))
    notes = [f"tasks by status and throughput over {TIME_BINS} time bins per session; phase "
             "durations as histograms over log-spaced bins; tables show their first "
             f"{TOP} rows (the aksnap command named in each section lists every one)"]
    all_ids = snap.session_ids()
    if session_id is not None:
        chosen = [session_id]
    else:
        sizes = np.bincount(g.session_of[:g.n_tasks], minlength=len(g.sessions))
        order = np.argsort(-sizes, kind="stable")[:SESSIONS_SHOWN]
        chosen = [g.sessions[int(i)].as_py() for i in order]
        chosen = [s for s in chosen if s in all_ids] or all_ids[:SESSIONS_SHOWN]
        if len(all_ids) > SESSIONS_SHOWN:
            notes.append(f"{len(all_ids):,} sessions: the {SESSIONS_SHOWN} largest shown "
                         "(aksnap report --session ID for another, aksnap analyze for all)")
    # the critical paths, once for the page: the sessions drawn and the verdict's findings
    from . import critical_path as cp_mod

    path_ids = [session_id] if session_id is not None else all_ids
    paths = cp_mod.compute(snap, path_ids)
    slot = {sid: i for i, sid in enumerate(path_ids)}
    sessions = []
    for sid in chosen:
        ov = overview_mod.build(snap, sid, with_findings=False)  # the verdict says them
        row = jsonable(ov["sessions"][0])
        cps = cp_mod.session_detail(snap, paths, slot[sid], True) if sid in slot else {}
        sessions.append(_session_data(snap, row, result_id, notes, cps))
    snap_us = 0
    if snap.snapshot_time is not None:
        from .common import micros

        snap_us = micros(snap.snapshot_time)
    meta = {"bundle": str(snap.path), "snapshot_time": jsonable(snap.snapshot_time),
            "format_version": snap.manifest.format_version, "generator": f"aksnap {__version__}",
            "redacted": None, "sessions_total": len(all_ids), "tasks": g.n_tasks,
            "results": g.n_results, "task_sets": {k: list(v) for k, v in STATUS_SETS["tasks"].items()},
            "result_sets": {k: list(v) for k, v in STATUS_SETS["results"].items()}}
    if snap.manifest.redaction:
        from .check import redaction_line

        meta["redacted"] = redaction_line(snap.manifest.redaction)
    index = None
    if g.n <= INDEX_MAX:
        from .describe import status_names

        nodes = np.arange(g.n, dtype=np.int64)
        index = {"ids": [str(i) for i in g.node_ids(nodes)],
                 "status": status_names(g, nodes).tolist(), "tasks": g.n_tasks}
    else:
        notes.append(f"the id search covers the ids shown in this page ({g.n:,} ids in the "
                     "bundle); aksnap task ID or aksnap lineage BUNDLE ID for any other")
    use = utilisation(snap)
    verdict_data = verdict(snap, session_id, sessions, use, paths, path_ids)
    from . import whatif as whatif_mod

    whatif_data = whatif_mod.report_data(snap, session_id)
    if use["partitions_total"] > len(use["partitions"]):
        notes.append(f"utilisation: the {len(use['partitions'])} partitions with most tasks of "
                     f"{use['partitions_total']:,} drawn")
    return {"meta": meta, "notes": notes, "sessions": sessions, "index": index,
            "utilisation": use, "verdict": verdict_data, "whatif": whatif_data,
            "anchors": {"verdict": anchor("verdict"), "utilisation": anchor("utilisation"),
                        "whatif": anchor("whatif")}}


# -- a recorded series ----------------------------------------------------------------------------

def replay(series_dir, session_id: str | None = None) -> dict[str, Any]:
    """The states of a recorded series for the page: :func:`aksnap.analyzer.series.build`'s rows
    (one per recorded state: instant on the cluster's clock, tasks per status, percent complete,
    rows fetched), and the span they cover."""
    from . import series

    data = series.build(series_dir, session_id)
    rows = series.state_rows(data)
    times = [r["at"] for r in rows if r["at"]]
    return {"series": str(series_dir), "session_id": session_id, "states": len(rows),
            "from": times[0] if times else None, "to": times[-1] if times else None,
            "statuses": data["statuses"], "rows": rows}


def write_series(series_dir, out, session_id: str | None = None, result_id: str | None = None,
                 verify: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """The report of a series recorded by ``aksnap watch --record``: the page of its latest
    bundle plus a section of tasks by status over time as recorded (one point per state)."""
    from aksnap.output import check_output_file

    from . import series
    from .snapshot import Snapshot

    members = series.series_members(series_dir)
    if members is None:
        raise AnalysisError(f"{series_dir} is not a recorded series (a directory of bundles "
                            "written by aksnap watch --record)")
    check_output_file(out, overwrite=overwrite, sources=members)
    snap = Snapshot.open(members[-1], verify=verify)
    if session_id is not None:
        session_id = snap.resolve_id("session", session_id)
    return write(snap, out, session_id, result_id,
                 replay_data=replay(series_dir, session_id), overwrite=overwrite,
                 sources=members)


# -- HTML ------------------------------------------------------------------------------------------

def _asset(name: str) -> str:
    return resources.files("aksnap.analyzer").joinpath("report_assets", name).read_text("utf-8")


def script_json(data: Any) -> str:
    """``data`` as JSON safe inside a ``<script>`` element: ASCII, and ``<``, ``>``, ``&``
    (and U+2028/2029, by ensure_ascii) as ``\\u`` escapes, so no string can close the element
    or open a comment."""
    text = json.dumps(jsonable(data), ensure_ascii=True, separators=(",", ":"), allow_nan=False,
                      default=lambda v: v.item() if isinstance(v, np.generic) else str(v))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(data: dict[str, Any], *, nonce: str | None = None, connect_self: bool = False,
           extra_script: str = "", extra_style: str = "") -> str:
    """The page's HTML. A fresh random nonce unless ``nonce``. ``aksnap serve`` (the page
    served, not a file) adds ``connect_self`` (the policy lets the page fetch from its own
    origin, nothing else) and its own script and style, which run by the same nonce."""
    nonce = nonce or secrets.token_urlsafe(18)
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
           "img-src data:; " + ("connect-src 'self'; " if connect_self else "")
           + "base-uri 'none'; form-action 'none'")
    title = "aksnap report"
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="referrer" content="no-referrer">\n'
            f'<title>{title}</title>\n<style nonce="{nonce}">\n{_asset("report.css")}\n{extra_style}</style>\n'
            f'</head>\n<body>\n<header><h1>{title}</h1><div id="meta"></div>'
            '<input id="search" type="search" placeholder="search an id (prefix)" '
            'autocomplete="off" spellcheck="false"><div id="hits"></div></header>\n'
            # the verdict panel's slot: the first thing in the page (filled by the findings)
            f'<main id="main"><section id="{anchor("verdict")}" class="verdict" hidden></section>'
            '<noscript>This report draws itself with JavaScript; the data is '
            'in the script element "data".</noscript></main>\n'
            '<aside id="detail" hidden></aside>\n'
            f'<script type="application/json" id="data">{script_json(data)}</script>\n'
            f'<script nonce="{nonce}">\n{_asset("report.js")}\n</script>\n'
            + (f'<script nonce="{nonce}">\n{extra_script}\n</script>\n' if extra_script else "")
            + '</body>\n</html>\n')


def write(snap, out, session_id: str | None = None, result_id: str | None = None,
          replay_data: dict[str, Any] | None = None, overwrite: bool = False,
          sources=()) -> dict[str, Any]:
    """Build the page and write it to ``out`` atomically (an existing file only with
    ``overwrite``); returns path, bytes, sessions, lineages and notes (what was aggregated).
    ``replay_data`` (:func:`replay`) adds the recorded states of a series; ``sources``: other
    paths read, never written (the series' bundles)."""
    from aksnap.output import check_output_file

    from .graphfile import write_atomically

    sources = (snap.path, *sources)
    check_output_file(out, overwrite=overwrite, sources=sources)  # before the work
    data = build(snap, session_id, result_id)
    info: dict[str, Any] = {}
    if replay_data is not None:
        data["replay"] = replay_data
        data["meta"]["series"] = replay_data["series"]
        info = {"recorded_states": replay_data["states"], "recorded_from": replay_data["from"],
                "recorded_to": replay_data["to"]}
    text = render(data)
    size = write_atomically(Path(out), [text.encode("utf-8")], binary=True,
                            overwrite=overwrite, sources=sources)
    return {"path": str(out), "bytes": size, "sessions": len(data["sessions"]),
            "lineages": sum(len(s["lineages"]) for s in data["sessions"]),
            **info, "notes": data["notes"]}
