"""Critical path: the chain of dependencies that decided when a session's last result completed.

Walk back from the session's last completed result: a result waits for its producer; a task
waits for the latest-finishing of its predecessors: its inputs (data dependencies, payload),
its spawning parent (a subtask is written when its parent ends) and its previous attempt (a
retry is created when that attempt fails). Each task on the chain contributes, from the moment
its binding predecessor finished: waiting (-> submitted), queued (-> acquired), fetching
(acquired -> started: input download and hand-over to the worker), processing (-> processed),
finishing (-> ended). Gaps between a predecessor's end and a task's creation are "spawn" or
"retry" time; before the first task, "before first task". The segments tile the wall time.

Vectorised over every session at once: the chains of all sessions are walked back in lockstep
(one numpy step per hop), each step computing the binding predecessor of the nodes it reached
only (one grouped arg-max over their CSR in-edges: at 10M tasks, computing it for every node
was 6.6 s and 1.6 GiB of temporaries), and the phases and segments are computed on the arrays
of all chain steps; Python builds dictionaries only for the steps shown. A long chain shows its first, last and longest
steps (``--all`` for every step); many sessions show a summary (``--session`` for detail).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aksnap.bundle import PHASE_NAMES, RESULT_STATUSES, TASK_PHASES

from .common import Section, fmt_seconds, render_data, render_sections, seconds_between, to_time
from .graph import NA, concat_ranges

PHASES = PHASE_NAMES  # aksnap.bundle.TASK_PHASES, the same phases as the task_phases view
COMPLETED = RESULT_STATUSES.index("COMPLETED")
EDGES = ("", "produces", "data", "payload", "spawn", "retry")
E_PRODUCES, E_DATA, E_PAYLOAD, E_SPAWN, E_RETRY = 1, 2, 3, 4, 5
# segment names: the phases, then the gaps before a task's creation, then the session's time
# after its last result completed (tasks still ending: cancelled ones, say), so the segments
# tile the session's wall time as analyze defines it (queries/session_summary.sql)
SEGMENTS = PHASES + ("before first task", "spawn", "retry", "created late", "after the last result")
S_BEFORE = len(PHASES)
S_GAP = {E_SPAWN: S_BEFORE + 1, E_RETRY: S_BEFORE + 2}
S_LATE, S_AFTER = S_BEFORE + 3, S_BEFORE + 4
MARKS = tuple(end for _, _, end in TASK_PHASES)  # where each phase ends
NM = len(MARKS)
STEPS_SHOWN = 100  # a longer chain shows its first, last and longest steps (--all: every step)
STEPS_EDGE, STEPS_LONGEST = 10, 30
SESSIONS_SHOWN = 20  # more sessions than this (and no --session): a summary


def _binding(g, tasks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pred, edge) for every node: what it waited for last, and by which edge. A result waits
    for its producer; a task for the latest-finishing of its inputs (completed_at), its parent
    and its previous attempt (ended_at, else processed_at); ties go to the inputs (lowest node
    index first), then the parent, then the previous attempt.

    Sort-free: a task's inputs are its in-edges, contiguous in the graph's CSR arrays, so the
    latest of them is one ``maximum.reduceat`` and the lowest index among the latest one
    ``minimum.reduceat``."""
    T = g.n_tasks
    pred = np.full(g.n, -1, dtype=np.int64)
    edge = np.zeros(g.n, dtype=np.int8)
    prod = g.producer >= 0
    pred[T:][prod] = g.producer[prod]
    edge[T:][prod] = E_PRODUCES
    if not T:
        return pred, edge
    ended, processed = g.task_ts["ended_at"], g.task_ts["processed_at"]
    finish = np.where(ended != NA, ended, processed)
    ptr = np.asarray(g.in_ptr[:T + 1])
    n_in = int(ptr[T])
    src = np.asarray(g.in_src[:n_in])  # every in-edge of a task comes from a result
    counts = np.diff(ptr)
    has = counts > 0
    best_in = np.full(T, NA, dtype=np.int64)
    best_src = np.full(T, -1, dtype=np.int64)
    if n_in:
        when = g.result_ts["completed_at"][src - T]
        starts = ptr[:-1][has]
        best_in[has] = np.maximum.reduceat(when, starts)
        top = np.iinfo(np.int64).max
        cand = np.where((when == np.repeat(best_in, counts)) & (when != NA), src, top)
        low = np.minimum.reduceat(cand, starts)
        best_src[has] = np.where(low == top, -1, low)
    parent, previous = np.asarray(g.parent), np.asarray(g.previous_attempt)
    par_when = np.where(parent >= 0, finish[np.maximum(parent, 0)], NA)
    prev_when = np.where(previous >= 0, finish[np.maximum(previous, 0)], NA)
    use_in = (best_src >= 0) & (best_in >= par_when) & (best_in >= prev_when)
    use_par = ~use_in & (par_when != NA) & (par_when >= prev_when)
    use_prev = ~use_in & ~use_par & (prev_when != NA)
    if tasks is not None:
        tasks = np.asarray(tasks[:T], dtype=bool)
        use_in, use_par, use_prev = use_in & tasks, use_par & tasks, use_prev & tasks
    payload = np.asarray(g.payload_of) == best_src - T
    pred[:T] = np.where(use_in, best_src, np.where(use_par, parent, np.where(use_prev, previous, -1)))
    edge[:T] = np.where(use_in, np.where(payload, E_PAYLOAD, E_DATA),
                        np.where(use_par, E_SPAWN, np.where(use_prev, E_RETRY, 0)))
    return pred, edge


def _at(ts, column: str, rows: np.ndarray) -> np.ndarray:
    """``ts[column][rows]``: for a column not read yet, only the row groups of ``rows`` are
    read (a chain's few steps need four of the phase columns nowhere else)."""
    at = getattr(ts, "at", None)
    return at(column, rows) if at is not None else ts[column][rows]


def _binding_at(g, nodes: np.ndarray, in_scope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pred, edge) of ``nodes`` only, exactly as :func:`_binding` gives them for every node
    (``in_scope``: the lookup from a task to whether its session was asked for). A walk back
    visits a few nodes per chain: their in-edges are read from the CSR, nothing else."""
    T = g.n_tasks
    nodes = np.asarray(nodes, dtype=np.int64)
    pred = np.full(len(nodes), -1, dtype=np.int64)
    edge = np.zeros(len(nodes), dtype=np.int8)
    r = np.flatnonzero(nodes >= T)
    if len(r):
        prod = np.asarray(g.producer[nodes[r] - T], dtype=np.int64)
        has_p = prod >= 0
        pred[r[has_p]] = prod[has_p]
        edge[r[has_p]] = E_PRODUCES
    t = np.flatnonzero(nodes < T)
    if not len(t):
        return pred, edge
    tn = nodes[t]
    ts = g.task_ts
    ended = ts["ended_at"]
    ptr = g.in_ptr
    lo = np.asarray(ptr[tn], dtype=np.int64)
    counts = np.asarray(ptr[tn + 1], dtype=np.int64) - lo
    has = counts > 0
    best_in = np.full(len(tn), NA, dtype=np.int64)
    best_src = np.full(len(tn), -1, dtype=np.int64)
    if has.any():
        src = np.asarray(g.in_src[concat_ranges(lo, counts)], dtype=np.int64)
        when = g.result_ts["completed_at"][src - T]
        starts = (np.cumsum(counts) - counts)[has]
        best_in[has] = np.maximum.reduceat(when, starts)
        top = np.iinfo(np.int64).max
        cand = np.where((when == np.repeat(best_in, counts)) & (when != NA), src, top)
        low = np.minimum.reduceat(cand, starts)
        best_src[has] = np.where(low == top, -1, low)

    def finish_of(ptrs: np.ndarray) -> np.ndarray:
        i = np.maximum(ptrs, 0)
        e = ended[i]
        f = np.where(e != NA, e, _at(ts, "processed_at", i))
        return np.where(ptrs >= 0, f, NA)

    parent = np.asarray(g.parent[tn], dtype=np.int64)
    previous = np.asarray(g.previous_attempt[tn], dtype=np.int64)
    par_when, prev_when = finish_of(parent), finish_of(previous)
    scope = np.asarray(in_scope[tn], dtype=bool)
    use_in = (best_src >= 0) & (best_in >= par_when) & (best_in >= prev_when) & scope
    use_par = ~use_in & (par_when != NA) & (par_when >= prev_when) & scope
    use_prev = ~use_in & ~use_par & (prev_when != NA) & scope
    payload = np.asarray(g.payload_of[tn]) == best_src - T
    pred[t] = np.where(use_in, best_src, np.where(use_par, parent, np.where(use_prev, previous, -1)))
    edge[t] = np.where(use_in, np.where(payload, E_PAYLOAD, E_DATA),
                       np.where(use_par, E_SPAWN, np.where(use_prev, E_RETRY, 0)))
    return pred, edge


#: lockstep steps walked from the visited nodes only; a longer walk (a chain of thousands of
#: tasks, or a cycle, which would make it endless) is redone over the whole-graph binding: each
#: step here costs tens of microseconds of numpy calls (a 20,000-step chain: 8 s), the whole
#: graph's binding a linear pass
WALK_STEPS_LAZY = 256


def _walk_lazy(g, lasts: np.ndarray, in_scope: np.ndarray):
    """:func:`_walk` from :func:`_binding_at`: (k, node, edge) of every chain step, grouped by
    k, oldest first, with each step's edge (how it waited for the step before it). Binding
    edges are computed only for the nodes the walk visits. A walk longer than
    :data:`WALK_STEPS_LAZY` steps (a long chain, or a cycle) is redone over :func:`_binding`
    and :func:`_walk` (the same answer, at the cost of one pass over the graph)."""
    k = np.arange(len(lasts))
    cur = np.asarray(lasts, dtype=np.int64)
    ks, nodes, edges = [], [], []
    steps = 0
    while len(k):
        pred, edge = _binding_at(g, cur, in_scope)
        ks.append(k)
        nodes.append(cur)
        edges.append(edge)
        alive = pred >= 0
        k, cur = k[alive], pred[alive]
        steps += 1
        if steps == WALK_STEPS_LAZY and len(k):
            pred, edge = _binding(g, in_scope[:g.n_tasks])
            k, node = _walk(g, pred, lasts)
            return k, node, edge[node]
    if not ks:
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0, dtype=np.int8)
    depth = np.concatenate([np.full(len(x), i) for i, x in enumerate(ks)])
    k, node, edge = np.concatenate(ks), np.concatenate(nodes), np.concatenate(edges)
    order = np.lexsort((-depth, k))
    return k[order], node[order], edge[order]


def _walk(g, pred: np.ndarray, lasts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walk back from each last result, all at once: (k, node) of every chain step, grouped by
    k (the index into ``lasts``), oldest first. A cycle (an anomalous bundle) ends a walk at
    the first node seen twice."""
    ks, nodes = [np.arange(len(lasts))], [np.asarray(lasts, dtype=np.int64)]
    acyclic = g.is_dag()
    if acyclic:
        k, cur = ks[0], nodes[0]
        while len(k):
            nxt = pred[cur]
            alive = nxt >= 0
            k, cur = k[alive], nxt[alive]
            if len(k):
                ks.append(k)
                nodes.append(cur)
    else:
        ks, nodes = [], []
        for i, node in enumerate(np.asarray(lasts).tolist()):
            seen, chain = {node}, [node]
            while pred[node] >= 0 and int(pred[node]) not in seen:
                node = int(pred[node])
                seen.add(node)
                chain.append(node)
            ks.append(np.full(len(chain), i))
            nodes.append(np.array(chain, dtype=np.int64))
        ks.append(np.zeros(0, np.int64))
        nodes.append(np.zeros(0, np.int64))
    depth = np.concatenate([np.arange(len(x)) for x in ks]) if not acyclic else \
        np.concatenate([np.full(len(x), i) for i, x in enumerate(ks)])
    k, node = np.concatenate(ks), np.concatenate(nodes)
    order = np.lexsort((-depth, k))
    return k[order], node[order]


def _seg_cummax(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Running maximum of ``values`` within each run of equal ``group`` (rows sorted by group)."""
    if not len(values):
        return values.copy()
    uniq, rank = np.unique(values, return_inverse=True)
    key = group.astype(np.int64) * (len(uniq) + 1) + rank
    return uniq[np.maximum.accumulate(key) - group.astype(np.int64) * (len(uniq) + 1)]


#: up to this many sessions, the per-session reductions are one masked numpy reduction per
#: session (no gathered copies, no ufunc.at over millions of rows); beyond, one ufunc.at
FEW_SESSIONS = 8


def _group_reduce(ufunc, group: np.ndarray, values: np.ndarray, S: int, where, initial) -> np.ndarray:
    """``ufunc`` (np.maximum, np.minimum) of ``values`` per group 0..S-1 (group S: none),
    over the rows where ``where`` (None: all) holds; ``initial`` where a group has none. Returns
    S + 1 values (the last is ``initial``)."""
    out = np.full(S + 1, initial, dtype=np.int64)
    if S <= FEW_SESSIONS:
        for i in range(S):
            sel = group == i
            if where is not None:
                sel &= where
            out[i] = ufunc.reduce(values, where=sel, initial=initial)
        return out
    if where is None:
        ufunc.at(out, group, values)
    else:
        ufunc.at(out, group[where], values[where])
    out[S] = initial
    return out


@dataclass
class Paths:
    """The critical paths of many sessions, as arrays (one row per chain step, and per segment)."""
    sessions: list[str]
    last: np.ndarray           # per session: last completed result (node) or -1
    start: np.ndarray          # per session, µs (NA unknown)
    end: np.ndarray
    wall: np.ndarray           # per session, seconds (NaN unknown)
    # chain steps, grouped by session (index into sessions), oldest first
    k: np.ndarray
    node: np.ndarray
    prev_edge: np.ndarray
    is_task: np.ndarray
    begin: np.ndarray
    cursor_end: np.ndarray
    phase: np.ndarray          # (steps, 5) µs, -1 = none
    # segments, in chain order within each session
    seg_k: np.ndarray
    seg_step: np.ndarray
    seg_name: np.ndarray
    seg_a: np.ndarray
    seg_b: np.ndarray


#: the timestamp columns :func:`compute` reads whole, whatever the sessions
COLUMNS_READ = (("result_ts", "completed_at"), ("task_ts", "created_at"), ("task_ts", "ended_at"))


def read_columns(g) -> None:
    """Read the columns :data:`COLUMNS_READ` now (kept by the graph), e.g. while a thread
    runs SQL: :func:`compute` then finds them read."""
    for table, column in COLUMNS_READ:
        getattr(g, table)[column]


def compute(snap, session_ids: list[str]) -> Paths:
    """Critical paths of the named sessions, vectorised over all of them."""
    g = snap.graph
    T = g.n_tasks
    S = len(session_ids)
    code_of = {s: i for i, s in enumerate(g.sessions.to_pylist())}
    codes = np.array([code_of.get(s, -1) for s in session_ids], dtype=np.int64)
    # which of the requested sessions each node belongs to (S: none), int32 as the session
    # codes are: the per-session reductions index arrays of S + 1 slots (the last one unused)
    to_k = np.full(len(g.sessions) + 1, S, dtype=np.int32)
    to_k[codes[codes >= 0]] = np.flatnonzero(codes >= 0)
    session_of = np.asarray(g.session_of)
    tk, rk = to_k[session_of[:T]], to_k[session_of[T:]]
    rts, tts = g.result_ts, g.task_ts
    completed = rts["completed_at"]
    # last completed result per session (lowest index among ties), and the first task creation
    # (NA is the smallest int64: a max over NA and times is the times' max, a min must skip NA)
    done = (rk < S) & (g.result_status == COMPLETED)
    best = _group_reduce(np.maximum, rk, completed, S, done, NA)
    if S <= FEW_SESSIONS:  # compared with each session's best: no gathered copy of best[rk]
        tie = np.zeros(len(done), dtype=bool)
        for i in range(S):
            if best[i] != NA:
                tie |= (completed == best[i]) & (rk == i)
        done &= tie
        del tie
    else:
        done &= completed == best[rk]
    done &= completed != NA
    hit = np.flatnonzero(done)
    del done
    last = np.full(S + 1, T + g.n_results, dtype=np.int64)
    np.minimum.at(last, rk[hit], T + hit)
    del hit
    last = np.where(last[:S] < T + g.n_results, last[:S], -1)
    end = np.where(last >= 0, best[:S], NA)
    created = tts["created_at"]
    start = _group_reduce(np.minimum, tk, created, S, (tk < S) & (created != NA),
                          np.iinfo(np.int64).max)[:S]
    start[start == np.iinfo(np.int64).max] = NA
    lr = np.maximum(last - T, 0)
    redo = (last >= 0) & ((start == NA) | (start > end))
    if redo.any():  # else the results' creation times (17M at 10M tasks) are not read
        start[redo] = rts["created_at"][lr[redo]]
    # The session's wall time, one definition with analyze: first task created -> the last
    # task ended or result completed.
    session_end = np.maximum(_group_reduce(np.maximum, tk, tts["ended_at"], S, None, NA),
                             _group_reduce(np.maximum, rk, completed, S, None, NA))[:S]
    session_end = np.where((end != NA) & ((session_end == NA) | (session_end < end)), end, session_end)
    wall = np.where((last >= 0) & (session_end != NA) & (start != NA),
                    (session_end - start) / 1e6, np.nan)

    with_path = np.flatnonzero(last >= 0)
    k, node, edge = _walk_lazy(g, last[with_path], tk < S)
    k = with_path[k]
    n = len(node)
    is_task = node < T
    prev_edge = edge.astype(np.int64)
    if n:
        prev_edge[np.r_[True, k[1:] != k[:-1]]] = 0  # the oldest step was reached by nothing
    tn = np.where(is_task, node, 0)
    origin = np.where(is_task, created[tn], NA)
    marks = np.stack([np.where(is_task, _at(tts, c, tn), NA) for c in MARKS], axis=1) if n else \
        np.zeros((0, NM), dtype=np.int64)
    completed = np.where(~is_task, rts["completed_at"][np.where(is_task, 0, node - T)], NA)
    pos = np.arange(n)
    first_of_k = np.full(S, n, dtype=np.int64)
    np.minimum.at(first_of_k, k[is_task], pos[is_task])
    first_task = is_task & (pos == first_of_k[k])
    after_first = pos > first_of_k[k]
    begin0 = np.where(origin != NA, origin, start[k])
    mark_max = marks.max(axis=1) if n else np.zeros(0, dtype=np.int64)
    # What each step leaves as "the previous finish": a task, the end of its phases; a result
    # after the first task, its completion. A task with no creation time before anything has
    # finished has no beginning (its phases are unknown and it leaves nothing).
    strict = np.where(first_task, np.where(begin0 != NA, np.maximum(begin0, mark_max), NA),
                      np.where(is_task & after_first & (origin != NA), np.maximum(origin, mark_max),
                               np.where(~is_task & after_first, completed, NA)))
    anchor = np.full(S, n, dtype=np.int64)
    has_v = strict != NA
    np.minimum.at(anchor, k[has_v], pos[has_v])
    late_task = is_task & after_first & (origin == NA) & (pos > anchor[k])
    value = np.where(late_task, mark_max, strict)
    P = _seg_cummax(value, k)
    P_prev = np.where(pos > 0, np.r_[NA, P[:-1]], NA)
    begin = np.where(first_task, begin0, np.where(origin != NA, np.maximum(P_prev, origin), P_prev))
    begin = np.where(is_task, begin, NA)
    cur = np.maximum.accumulate(np.concatenate([begin[:, None], marks], axis=1), axis=1) if n else \
        np.zeros((0, NM + 1), dtype=np.int64)
    valid = (marks != NA) & (begin[:, None] != NA)
    phase = np.where(valid, np.maximum(marks - cur[:, :NM], 0), -1)
    cursor_end = np.where(begin != NA, cur[:, NM], NA)

    # segments: a gap before the task's creation, then its phases
    # (an unknown start or previous finish makes no gap: there is nothing to measure from)
    gap_first = first_task & (origin != NA) & (start[k] != NA) & (origin > start[k])
    gap_next = is_task & ~first_task & (origin != NA) & (P_prev != NA) & (origin > P_prev) & after_first
    gap_name = np.where(first_task, S_BEFORE,
                        np.where(prev_edge == E_SPAWN, S_GAP[E_SPAWN],
                                 np.where(prev_edge == E_RETRY, S_GAP[E_RETRY], S_LATE)))
    gap = np.flatnonzero(gap_first | gap_next)
    gap_a = np.where(first_task[gap], start[k[gap]], P_prev[gap])
    ph_rows, ph_col = np.nonzero(phase > 0)
    # after the last result: from its completion to the session's last end (the last row of
    # each chain is its last result)
    tail_k = np.flatnonzero((last >= 0) & (session_end != NA) & (end != NA) & (session_end > end))
    last_row = np.searchsorted(k, tail_k, side="right") - 1
    seg_step = np.concatenate([gap, ph_rows, last_row])
    seg_sub = np.concatenate([np.full(len(gap), -1), ph_col, np.full(len(last_row), NM)])
    seg_name = np.concatenate([gap_name[gap], ph_col, np.full(len(last_row), S_AFTER)])
    seg_a = np.concatenate([gap_a, cur[ph_rows, ph_col], end[tail_k]])
    seg_b = np.concatenate([origin[gap], cur[ph_rows, ph_col] + phase[ph_rows, ph_col],
                            session_end[tail_k]])
    o = np.lexsort((seg_sub, seg_step))
    return Paths(list(session_ids), last, start, end, wall, k, node, prev_edge, is_task, begin,
                 cursor_end, phase, k[seg_step[o]], seg_step[o], seg_name[o], seg_a[o], seg_b[o])


def _totals(p: Paths, sel: np.ndarray, wall: float | None) -> list[dict[str, Any]]:
    """Seconds per segment name over the segments ``sel`` (chain order), largest first."""
    names = p.seg_name[sel]
    secs = (p.seg_b[sel] - p.seg_a[sel]) / 1e6
    sums = np.bincount(names, weights=secs, minlength=len(SEGMENTS))
    seen = np.full(len(SEGMENTS), len(sel), dtype=np.int64)
    np.minimum.at(seen, names, np.arange(len(sel)))
    present = np.flatnonzero(seen < len(sel))
    present = present[np.argsort(seen[present], kind="stable")]  # first occurrence order
    ordered = sorted(((SEGMENTS[c], float(sums[c])) for c in present), key=lambda kv: -kv[1])
    return [{"segment": name, "seconds": round(v, 6), "share": round(v / wall, 4) if wall else None}
            for name, v in ordered]


def _step_rows(snap, p: Paths, rows: np.ndarray, first: int, wall: float | None) -> list[dict[str, Any]]:
    g = snap.graph
    ids = g.node_ids(p.node[rows]) if len(rows) else []
    out = []
    for r, nid in zip(rows.tolist(), ids):
        node = int(p.node[r])
        row: dict[str, Any] = {"step": r - first + 1, "kind": "task" if p.is_task[r] else "result",
                               "id": nid, "edge": EDGES[p.prev_edge[r]], "status": g.status_name(node)}
        if not p.is_task[r]:
            row["at"] = to_time(int(g.result_ts["completed_at"][node - g.n_tasks]))
            out.append(row)
            continue
        for i, ph in enumerate(PHASES):
            v = int(p.phase[r, i])
            row[ph] = None if v < 0 else v / 1e6
        row["total"] = seconds_between(int(p.begin[r]), int(p.cursor_end[r]))
        row["share"] = round(row["total"] / wall, 4) if wall and row["total"] is not None else None
        out.append(row)
    return out


def _shown_steps(p: Paths, lo: int, hi: int) -> np.ndarray:
    """Rows of a long chain worth showing: the first and last steps and the longest tasks."""
    n = hi - lo
    if n <= STEPS_SHOWN:
        return np.arange(lo, hi)
    dur = np.where(p.is_task[lo:hi] & (p.begin[lo:hi] != NA) & (p.cursor_end[lo:hi] != NA),
                   p.cursor_end[lo:hi] - p.begin[lo:hi], -1)
    longest = np.argsort(-dur, kind="stable")[:STEPS_LONGEST]
    keep = np.union1d(np.r_[np.arange(STEPS_EDGE), np.arange(n - STEPS_EDGE, n)], longest)
    return lo + keep


def session_detail(snap, p: Paths, i: int, all_steps: bool = False) -> dict[str, Any]:
    """The critical path of session ``i`` of ``p`` as plain data."""
    g = snap.graph
    sid = p.sessions[i]
    base = {"session_id": sid, "last_result": None, "wall_s": None, "steps": [],
            "segments": [], "totals": [], "line": "none yet (no result has completed)"}
    last = int(p.last[i])
    if last < 0:
        return {**base, "steps_total": 0, "steps_omitted": 0}
    lo, hi = int(np.searchsorted(p.k, i, side="left")), int(np.searchsorted(p.k, i, side="right"))
    if not p.is_task[lo:hi].any():
        # only what the client uploaded is complete (a session that just started): no task
        # decided anything yet
        return {**base, "line": "none yet (no task has completed a result)", "steps_total": 0,
                "steps_omitted": 0}
    wall = None if np.isnan(p.wall[i]) else float(p.wall[i])
    slo, shi = int(np.searchsorted(p.seg_k, i, side="left")), int(np.searchsorted(p.seg_k, i, side="right"))
    seg = np.arange(slo, shi)
    shown = np.arange(lo, hi) if all_steps else _shown_steps(p, lo, hi)
    steps = _step_rows(snap, p, shown, lo, wall)
    shown_segs = seg if len(shown) == hi - lo else seg[np.isin(p.seg_step[seg], shown)]
    seg_ids = g.node_ids(p.node[p.seg_step[shown_segs]]) if len(shown_segs) else []
    segments = []
    for s, nid in zip(shown_segs.tolist(), seg_ids):
        name = SEGMENTS[p.seg_name[s]]
        a, b = int(p.seg_a[s]), int(p.seg_b[s])
        secs = (b - a) / 1e6
        segments.append({"segment": name, "id": "" if name == "before first task" else nid,
                         "start": to_time(a), "end": to_time(b), "seconds": secs,
                         "share": round(secs / wall, 4) if wall else None})
    totals = _totals(p, seg, wall)
    # the segments' seconds summed per name, then the names in order of first appearance
    sums = np.bincount(p.seg_name[seg], weights=(p.seg_b[seg] - p.seg_a[seg]) / 1e6,
                       minlength=len(SEGMENTS))
    covered = sum(float(sums[c]) for c in dict.fromkeys(p.seg_name[seg].tolist()))
    n_tasks = int(p.is_task[lo:hi].sum())
    top = ", ".join(f"{r['segment']} {100 * (r['share'] or 0):.0f}%" for r in totals[:3])
    line = f"{n_tasks} task(s) to {g.node_id(last)} over {fmt_seconds(wall)}: {top}"
    if len(seg):
        j = seg[int(np.argmax(p.seg_b[seg] - p.seg_a[seg]))]
        name = SEGMENTS[p.seg_name[j]]
        if name != "before first task":
            line += (f"; longest: {name} of {g.node_id(int(p.node[p.seg_step[j]]))} "
                     f"{fmt_seconds((int(p.seg_b[j]) - int(p.seg_a[j])) / 1e6)}")
    return {**base, "last_result": g.node_id(last), "started": to_time(int(p.start[i])),
            "ended": to_time(int(p.end[i])), "wall_s": wall, "covered_s": round(covered, 6),
            "steps": steps, "segments": segments, "totals": totals, "line": line,
            "steps_total": int(hi - lo), "steps_omitted": int(hi - lo - len(shown))}


def summary(snap, p: Paths, shown: int = SESSIONS_SHOWN) -> dict[str, Any]:
    """Many sessions at once: time on the critical paths by segment over all sessions, and the
    sessions with the longest critical paths (their one-line summary)."""
    wall = np.nan_to_num(p.wall, nan=-1.0)
    order = np.argsort(-wall, kind="stable")[:shown]
    order = order[wall[order] >= 0]
    total_wall = float(p.wall[~np.isnan(p.wall)].sum())
    totals = _totals(p, np.arange(len(p.seg_name)), total_wall or None)
    steps = np.bincount(p.k, weights=p.is_task, minlength=len(p.sessions)).astype(np.int64)
    top = []
    for i in order.tolist():
        d = session_detail(snap, p, i)
        top.append({"session_id": d["session_id"], "wall_s": d["wall_s"], "tasks_on_path": int(steps[i]),
                    "last_result": d["last_result"], "line": d["line"]})
    return {"sessions_total": len(p.sessions),
            "sessions_with_path": int((p.last >= 0).sum()),
            "wall_s_total": round(total_wall, 6), "totals": totals, "longest": top}


def build(snap, session_id: str | None = None, all_steps: bool = False) -> dict[str, Any]:
    snap.graph  # first: it builds while the checksums are still being verified
    snap.require_session(session_id)
    ids = [session_id] if session_id else snap.session_ids()
    p = compute(snap, ids)
    if len(ids) > SESSIONS_SHOWN:
        return {"summary": summary(snap, p)}
    return {"sessions": [session_detail(snap, p, i, all_steps) for i in range(len(ids))]}


def sections(data: dict[str, Any]) -> list[Section]:
    """sessions (one row each: the main table), then, per session (a ``session_id`` column),
    the chain's steps, the time by segment and the segments; over many sessions, the longest
    paths and the time by segment over all of them."""
    if "summary" in data:
        s = data["summary"]
        return [Section("sessions", s["longest"], ["session_id", "wall_s", "tasks_on_path", "last_result", "line"]),
                Section("totals", s["totals"], ["segment", "seconds", "share"])]
    keys = ("session_id", "last_result", "started", "ended", "wall_s", "covered_s", "steps_total",
            "steps_omitted", "line")
    per = data["sessions"]
    return [Section("sessions", [{k: s.get(k) for k in keys} for s in per], keys),
            Section("steps", [{"session_id": s["session_id"], **r} for s in per for r in s["steps"]],
                    ["session_id", "step", "kind", "id", "edge", "status", *PHASES, "total", "share", "at"]),
            Section("totals", [{"session_id": s["session_id"], **r} for s in per for r in s["totals"]],
                    ["session_id", "segment", "seconds", "share"]),
            Section("segments", [{"session_id": s["session_id"], **r} for s in per for r in s["segments"]],
                    ["session_id", "segment", "id", "start", "end", "seconds", "share"])]


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)


def _table(data: dict[str, Any]) -> str:
    if "summary" in data:
        s = data["summary"]
        head = [("sessions", s["sessions_total"]), ("with a completed result", s["sessions_with_path"]),
                ("wall time, summed", fmt_seconds(s["wall_s_total"])),
                ("detail", "aksnap critical-path BUNDLE --session SESSION_ID")]
        return render_sections([
            ("Time on the critical paths by segment (all sessions)", s["totals"], ["segment", "seconds", "share"]),
            (f"Longest critical paths (top {len(s['longest'])})", s["longest"],
             ["session_id", "wall_s", "tasks_on_path", "line"]),
        ], head)
    parts = []
    for s in data["sessions"]:
        head = [("session", s["session_id"]), ("last result", s["last_result"]),
                ("wall time", fmt_seconds(s["wall_s"]) if s["wall_s"] is not None else None),
                ("critical path", s["line"])]
        if s.get("steps_omitted"):
            head.append(("steps", f"{s['steps_total']} on the path; showing the first and last "
                                  f"{STEPS_EDGE} and the {STEPS_LONGEST} longest (--all for every step)"))
        parts.append(render_sections([
            ("Chain (oldest first; seconds per phase; share of wall time)", s["steps"],
             ["step", "kind", "id", "edge", "status", *PHASES, "total", "share"]),
            ("Time on the critical path by segment", s["totals"], ["segment", "seconds", "share"]),
        ], head))
    return "\n\n".join(parts)
