"""The run as a Chrome/Perfetto trace (JSON trace event format), for ui.perfetto.dev and
chrome://tracing.

Layout of the file (``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``):

- one *process* per partition, one *thread* (track) per pod; a pod that held several tasks at
  once (an agent prefetching the next task) gets several tracks (``pod H #2``); tasks whose pod
  is unknown go on slots of their partition (``slot k``), assigned the same way;
- each task that ran is a slice from acquired to ended on its pod's track, named by its id
  (status, session, attempt, waiting and queued seconds in its args), holding the four on-pod
  phases of :data:`aksnap.bundle.TASK_PHASES` (dispatch, fetching, processing, finishing) as
  nested slices; a task still running at the snapshot ends at the snapshot time;
- the two off-pod phases (waiting, queued) are slices on queue lanes of their partition
  (``waiting/queued lane k``) when the trace holds at most :data:`QUEUE_SLICES_MAX` tasks,
  and always the counters ``tasks waiting``, ``queued``, ``running`` per partition over time;
- data dependencies are flow arrows (``ph`` ``s`` then ``f`` with ``bp: "e"``) from the end
  of the task that produced a result to the start of each task that read it; retries are flow
  arrows from the failed attempt to the next one; tasks that never ran are instant events on
  their partition's ``not run`` track;
- ``otherData`` says what was written and, when the trace was limited (``--session``,
  ``--result``, ``--max-tasks``), how; a global instant event at the start says it too.

Times are microseconds since the first event (``otherData.time_origin`` is that instant).
Every event line is built column-wise with Arrow string kernels and written straight from the
Arrow buffers, in chunks, so a million tasks cost no per-task Python; bundle strings are JSON
escaped in bulk (ASCII output), the rare string needing more than quotes goes through
``json.dumps``.
"""

from __future__ import annotations

import heapq
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aksnap.bundle import TASK_PHASES, TASK_STATUSES

from .describe import result_node
from .graph import NA, concat_ranges
from .graphfile import jstr, write_atomically  # noqa: F401 (jstr: part of this API)
from .graphfile import text_buffer as _buffer
from .snapshot import AnalysisError

MAX_TASKS = 200_000   # default cap on the tasks written (a 1M-task trace is ~0.8 GB of JSON)
QUEUE_SLICES_MAX = 5_000  # above this many tasks, waiting/queued are counters only
COUNTER_POINTS = 2_000    # samples of each counter track
CHUNK = 100_000

ON_POD = [p for p in TASK_PHASES if p[0] in ("dispatch", "fetching", "processing", "finishing")]
OFF_POD = [p for p in TASK_PHASES if p[0] in ("waiting", "queued")]


# -- JSON text, column-wise (the helpers of graphfile: Arrow kernels, no Python per row) ----------

def _num(a: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(a), pa.string())


def _seconds(us: np.ndarray) -> pa.Array:
    """µs durations as seconds text (6 decimals), ``null`` where unknown."""
    ok = us != NA
    txt = pc.cast(pa.array(np.round(np.where(ok, us, 0) / 1e6, 6)), pa.string())
    return pc.if_else(pa.array(ok), txt, "null")


def _join(*parts) -> pa.Array:
    """Concatenate literal strings and string arrays element-wise, each line ended by ",\n"."""
    return pc.binary_join_element_wise(*parts, ",\n", "")


# -- tracks ----------------------------------------------------------------------------------------

def lanes(group: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """A lane per interval so that intervals of one group on one lane never overlap (fewest
    lanes, greedy by start). Vectorised check first: groups with no overlap are all lane 0;
    only groups where intervals overlap are assigned one by one."""
    n = len(group)
    lane = np.zeros(n, dtype=np.int64)
    if n < 2:
        return lane
    order = np.lexsort((start, group))
    g, s, e = group[order], start[order], end[order]
    first = np.ones(n, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    # running max of the ends within each group (offset per group keeps groups apart)
    span = int(max(e.max() - min(s.min(), 0), 1)) + 1
    rank = np.cumsum(first) - 1
    shifted = e - s.min() + rank * span
    prev = np.maximum.accumulate(shifted)
    prevmax = np.empty(n, dtype=np.int64)
    prevmax[1:] = prev[:-1]
    overlap = ~first & (s - s.min() + rank * span < prevmax)
    if not overlap.any():
        return lane
    busy = np.unique(rank[overlap])
    rows = np.flatnonzero(np.isin(rank, busy))
    out = np.zeros(n, dtype=np.int64)
    busy_heap: list[tuple[int, int]] = []  # (end, lane) of the intervals still running
    free: list[int] = []                   # lanes released, smallest first
    used, current = 0, -1
    for i in rows.tolist():  # only the groups that need it, in start order
        if rank[i] != current:
            current, busy_heap, free, used = rank[i], [], [], 0
        while busy_heap and busy_heap[0][0] <= s[i]:
            heapq.heappush(free, heapq.heappop(busy_heap)[1])
        if free:
            k = heapq.heappop(free)
        else:
            k, used = used, used + 1
        out[i] = k
        heapq.heappush(busy_heap, (int(e[i]), k))
    lane[order] = out
    return lane


# -- selection -------------------------------------------------------------------------------------

def _select(snap, session_id, result_id, max_tasks) -> tuple[np.ndarray, int, list[str]]:
    """Task indices to write, the count before the cap, and the sentences saying the limits."""
    g = snap.graph
    limits = []
    if result_id is not None:
        node = result_node(snap, result_id)
        up = np.append(g.ancestors(node), node)
        tasks = up[up < g.n_tasks]
        prev = g.previous_attempt[tasks]  # keep the failed attempts of retried tasks in view
        tasks = np.union1d(tasks, prev[prev >= 0])
        limits.append(f"only the upstream of result {result_id}")
    elif session_id is not None:
        tasks = np.flatnonzero(g.session_nodes(session_id)[:g.n_tasks])
        limits.append(f"only session {session_id}")
    else:
        tasks = np.arange(g.n_tasks, dtype=np.int64)
    total = len(tasks)
    if max_tasks and total > max_tasks:
        ts = g.task_ts
        key = np.where(ts["acquired_at"][tasks] != NA, ts["acquired_at"][tasks], ts["created_at"][tasks])
        key = np.where(key == NA, np.iinfo(np.int64).max, key)
        tasks = np.sort(tasks[np.argsort(key, kind="stable")[:max_tasks]])
        limits.append(f"the first {max_tasks} of {total} tasks by start (--max-tasks 0 for every "
                      "one, --session or --result to choose)")
    return tasks, total, limits


# -- the events ------------------------------------------------------------------------------------

def _encode(col) -> tuple[np.ndarray, list[str]]:
    """A string column as (codes, distinct values); null counts as the empty string."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    enc = pc.dictionary_encode(pc.fill_null(arr.cast(pa.string()), ""))
    return (enc.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            enc.dictionary.to_pylist())


class _Builder:
    def __init__(self, snap, tasks: np.ndarray):
        g = snap.graph
        self.g, self.snap, self.tasks = g, snap, tasks
        ts = g.task_ts
        self.t = {c: ts[c][tasks] for c in ts}
        snap_us = _snapshot_us(snap)
        known = np.concatenate([v[v != NA] for v in self.t.values()] + [np.zeros(0, np.int64)])
        self.origin = int(known.min()) if len(known) else snap_us
        self.now = max(snap_us, int(known.max()) if len(known) else snap_us)
        det = g.details.take(pa.array(tasks)) if len(tasks) else g.details.slice(0, 0)
        self.part_code, self.partitions = _encode(det["partition_id"])
        self.pod_code, self.pod_names = _encode(det["pod_hostname"])
        acq, end = self.t["acquired_at"], self.t["ended_at"]
        self.ran = acq != NA
        self.end = np.where(end != NA, np.maximum(end, acq), self.now)
        # tracks: (partition, pod or slot, lane); pod "" = unknown -> slots of the partition
        unknown = np.array([not p for p in self.pod_names], dtype=bool)[self.pod_code] \
            if len(self.pod_names) else np.zeros(len(tasks), dtype=bool)
        grp = np.where(unknown, -1 - self.part_code, self.pod_code)
        r = np.flatnonzero(self.ran)
        lane = np.zeros(len(tasks), dtype=np.int64)
        lane[r] = lanes(grp[r], acq[r], self.end[r])
        key = np.stack([self.part_code, grp, lane], axis=1)
        self.tid = np.zeros(len(tasks), dtype=np.int64)
        names: list[tuple[int, str, int]] = []
        if len(r):
            uniq, inv = np.unique(key[r], axis=0, return_inverse=True)
            self.tid[r] = inv.reshape(-1) + 1
            for p, gcode, ln in uniq.tolist():
                label = (f"pod {self.pod_names[gcode]}" if gcode >= 0 else f"slot {ln + 1}")
                if gcode >= 0 and ln:
                    label += f" #{ln + 1}"
                names.append((p, label, len(names) + 1))
        self.thread_names = names
        self.notrun_tid = len(names) + 1  # one per partition, same number in each process
        self.pid = self.part_code + 1
        self.idx_of = np.full(g.n_tasks, -1, dtype=np.int64)
        self.idx_of[tasks] = np.arange(len(tasks))

    def rel(self, us: np.ndarray) -> np.ndarray:
        return us - self.origin

    def metadata(self) -> Iterator[pa.Array]:
        rows = []
        for k, p in enumerate(self.partitions):
            rows.append({"name": "process_name", "ph": "M", "pid": k + 1, "tid": 0,
                         "args": {"name": f"partition {p}"}})
            rows.append({"name": "thread_name", "ph": "M", "pid": k + 1, "tid": self.notrun_tid,
                         "args": {"name": "not run (never acquired by a pod)"}})
            rows.append({"name": "thread_sort_index", "ph": "M", "pid": k + 1,
                         "tid": self.notrun_tid, "args": {"sort_index": 10**6}})
        for p, label, tid in self.thread_names:
            rows.append({"name": "thread_name", "ph": "M", "pid": p + 1, "tid": tid,
                         "args": {"name": label}})
            rows.append({"name": "thread_sort_index", "ph": "M", "pid": p + 1, "tid": tid,
                         "args": {"sort_index": tid}})
        yield pa.array([json.dumps(r) + ",\n" for r in rows], pa.string())

    def slices(self, lo: int, hi: int) -> Iterator[pa.Array]:
        """Task slices with their on-pod phases (tasks lo..hi of the selection that ran)."""
        g, t = self.g, self.t
        sel = np.arange(lo, hi)
        sel = sel[self.ran[sel]]
        if not len(sel):
            return
        nodes = self.tasks[sel]
        pid, tid = _num(self.pid[sel]), _num(self.tid[sel])
        start = t["acquired_at"][sel]
        end = self.end[sel]
        ids = jstr(g.task_ids.take(pa.array(nodes)))
        status = jstr(pa.array(np.array(list(TASK_STATUSES) + ["UNKNOWN"], dtype=object)[g.task_status[nodes]], pa.string()))
        sess = jstr(g.sessions).take(pa.array(g.session_of[nodes].astype(np.int64)))
        wait = np.where((t["submitted_at"][sel] != NA) & (t["created_at"][sel] != NA),
                        t["submitted_at"][sel] - t["created_at"][sel], NA)
        queued = np.where((t["acquired_at"][sel] != NA) & (t["submitted_at"][sel] != NA),
                          t["acquired_at"][sel] - t["submitted_at"][sel], NA)
        running = t["ended_at"][sel] == NA
        yield _join('{"name":', ids, ',"cat":"task","ph":"X","ts":', _num(self.rel(start)),
                    ',"dur":', _num(np.maximum(end - start, 0)), ',"pid":', pid, ',"tid":', tid,
                    ',"args":{"status":', status, ',"session":', sess, ',"attempt":',
                    _num(g.attempt[nodes]), ',"waiting_s":', _seconds(wait), ',"queued_s":',
                    _seconds(queued), ',"running_at_snapshot":',
                    pc.if_else(pa.array(running), "true", "false"), "}}")
        for name, a, b in ON_POD:
            s = t[a][sel]
            e = np.where(t[b][sel] != NA, t[b][sel], np.where(running, end, NA))
            ok = (s != NA) & (e != NA) & (e >= s) & (s >= start) & (e <= end)
            if not ok.any():
                continue
            k = np.flatnonzero(ok)
            yield _join(f'{{"name":"{name}","cat":"phase","ph":"X","ts":', _num(self.rel(s[k])),
                        ',"dur":', _num(e[k] - s[k]), ',"pid":', pid.take(pa.array(k)),
                        ',"tid":', tid.take(pa.array(k)), "}")

    def not_run(self) -> Iterator[pa.Array]:
        g, t = self.g, self.t
        sel = np.flatnonzero(~self.ran)
        if not len(sel):
            return
        nodes = self.tasks[sel]
        when = np.where(t["ended_at"][sel] != NA, t["ended_at"][sel], t["created_at"][sel])
        when = np.where(when == NA, self.now, when)
        status = np.array(list(TASK_STATUSES) + ["UNKNOWN"], dtype=object)[g.task_status[nodes]]
        yield _join('{"name":', jstr(pa.array(status, pa.string())), ',"cat":"not_run","ph":"i","s":"t","ts":',
                    _num(self.rel(when)), ',"pid":', _num(self.pid[sel]), f',"tid":{self.notrun_tid}',
                    ',"args":{"task_id":', jstr(g.task_ids.take(pa.array(nodes))), ',"session":',
                    jstr(g.sessions).take(pa.array(g.session_of[nodes].astype(np.int64))), "}}")

    def queue_slices(self) -> Iterator[pa.Array]:
        """Waiting and queued phases as slices on lanes of each partition (small traces)."""
        t = self.t
        for name, a, b in OFF_POD:
            s = t[a]
            e = np.where(t[b] != NA, t[b], np.where(t["ended_at"] != NA, t["ended_at"], self.now))
            ok = (s != NA) & (e >= s)
            k = np.flatnonzero(ok)
            if not len(k):
                continue
            ln = lanes(self.part_code[k], s[k], e[k])
            base = 10**6 + (1 if name == "waiting" else 10**5)
            tids = base + ln
            for p, l in np.unique(np.stack([self.part_code[k], ln], axis=1), axis=0).tolist():
                yield pa.array([json.dumps({"name": "thread_name", "ph": "M", "pid": p + 1,
                                            "tid": int(base + l),
                                            "args": {"name": f"{name} lane {l + 1}"}}) + ",\n",
                                json.dumps({"name": "thread_sort_index", "ph": "M", "pid": p + 1,
                                            "tid": int(base + l), "args": {"sort_index": int(base + l)}})
                                + ",\n"], pa.string())
            yield _join(f'{{"name":"{name}","cat":"queue","ph":"X","ts":', _num(self.rel(s[k])),
                        ',"dur":', _num(e[k] - s[k]), ',"pid":', _num(self.pid[k]), ',"tid":',
                        _num(tids), ',"args":{"task_id":',
                        jstr(self.g.task_ids.take(pa.array(self.tasks[k]))), "}}")

    def counters(self) -> Iterator[pa.Array]:
        """Tasks waiting, queued and running per partition, sampled at COUNTER_POINTS instants."""
        t = self.t
        if not len(self.tasks):
            return
        grid = np.unique(np.linspace(self.origin, self.now,
                                       min(COUNTER_POINTS, 4 * len(self.tasks) + 2)).astype(np.int64))

        def level(a: np.ndarray, b: np.ndarray, part: np.ndarray, p: int) -> np.ndarray:
            m = (part == p) & (a != NA)
            s = np.sort(a[m])
            e = np.sort(np.where(b[m] != NA, b[m], np.iinfo(np.int64).max))
            return np.searchsorted(s, grid, side="right") - np.searchsorted(e, grid, side="right")

        ended = t["ended_at"]
        nxt_sub = np.where(t["submitted_at"] != NA, t["submitted_at"], ended)
        nxt_acq = np.where(t["acquired_at"] != NA, t["acquired_at"], ended)
        for p in range(len(self.partitions)):
            w = level(t["created_at"], nxt_sub, self.part_code, p)
            q = level(t["submitted_at"], nxt_acq, self.part_code, p)
            r = level(t["acquired_at"], ended, self.part_code, p)
            yield _join('{"name":"tasks","cat":"counter","ph":"C","ts":', _num(self.rel(grid)),
                        f',"pid":{p + 1},"tid":0,"args":{{"waiting":', _num(w), ',"queued":',
                        _num(q), ',"running":', _num(r), "}}")

    def flows(self, lo: int, hi: int, fid0: int) -> tuple[list[pa.Array], int]:
        """Data flows into tasks lo..hi (producer's end -> consumer's start), and retry flows."""
        g = self.g
        out = []
        cons_all = self.tasks[lo:hi]
        # data edges result -> consumer task, among the chunk's consumers
        lo_i = g.in_ptr[cons_all]
        cnt = g.in_ptr[cons_all + 1] - lo_i
        pos = concat_ranges(lo_i, cnt)
        res = g.in_src[pos]
        cons = np.repeat(np.arange(lo, hi), cnt)
        # keep data edges (not payloads): an input that is not the task's payload
        payload = g.payload_of[self.tasks[cons]]
        keep = (res >= g.n_tasks) & (res - g.n_tasks != payload)
        res, cons = res[keep], cons[keep]
        prod = g.producer[res - g.n_tasks]
        pi = np.where(prod >= 0, self.idx_of[np.maximum(prod, 0)], -1)
        ok = (pi >= 0) & self.ran[np.maximum(pi, 0)] & self.ran[cons]
        pi, ci = pi[ok], cons[ok]
        # retries: previous attempt -> this attempt
        prev = g.previous_attempt[cons_all]
        ri = np.where(prev >= 0, self.idx_of[np.maximum(prev, 0)], -1)
        r_ok = (ri >= 0) & self.ran[np.maximum(ri, 0)] & self.ran[lo:hi]
        fid = fid0
        for cat, a, b in (("data", pi, ci), ("retry", ri[r_ok], np.arange(lo, hi)[r_ok])):
            if not len(a):
                continue
            ids = _num(np.arange(fid, fid + len(a)))
            fid += len(a)
            s_end = self.end[a]
            s_start = self.t["acquired_at"][a]
            s_ts = np.maximum(s_start, s_end - 1)  # inside the producer's slice
            f_ts = self.t["acquired_at"][b]
            out.append(_join(f'{{"name":"{cat}","cat":"{cat}","ph":"s","id":', ids, ',"ts":',
                             _num(self.rel(s_ts)), ',"pid":', _num(self.pid[a]), ',"tid":',
                             _num(self.tid[a]), "}"))
            out.append(_join(f'{{"name":"{cat}","cat":"{cat}","ph":"f","bp":"e","id":', ids,
                             ',"ts":', _num(self.rel(f_ts)), ',"pid":', _num(self.pid[b]),
                             ',"tid":', _num(self.tid[b]), "}"))
        return out, fid


def _snapshot_us(snap) -> int:
    t = snap.snapshot_time
    if t is None:
        return 0
    from .common import micros

    return micros(t)


def _events(b: _Builder, queue_slices: bool) -> Iterator[pa.Array]:
    yield from b.metadata()
    fid = 1
    n = len(b.tasks)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        yield from b.slices(lo, hi)
        flows, fid = b.flows(lo, hi, fid)
        yield from flows
    yield from b.not_run()
    if queue_slices:
        yield from b.queue_slices()
    yield from b.counters()


def write(snap, out: str | os.PathLike, session_id: str | None = None,
          result_id: str | None = None, max_tasks: int | None = MAX_TASKS,
          overwrite: bool = False, sources=()) -> dict[str, Any]:
    """Write the trace of ``snap`` (one session, one result's upstream, or everything; at most
    ``max_tasks`` tasks, the first by start; 0 or None: no cap) to ``out``, atomically; an
    existing file at ``out`` is replaced only with ``overwrite``; ``sources``: other paths
    read, never written (the packed file the bundle came from). Returns what was written:
    path, tasks, tasks_total, events, bytes, limited and ``note`` (the sentence to show when
    limited)."""
    from aksnap import __version__
    from aksnap.output import check_output_file

    sources = (snap.path, *sources)
    check_output_file(out, overwrite=overwrite, sources=sources)  # before the work

    if session_id is not None:
        session_id = snap.resolve_id("session", session_id)
        snap.require_session(session_id)
    if result_id is not None:
        result_id = snap.resolve_id("result", result_id)
    if max_tasks is not None and max_tasks < 0:
        raise AnalysisError(f"--max-tasks {max_tasks} is negative; give a count, or 0 for no cap")
    tasks, total, limits = _select(snap, session_id, result_id, max_tasks)
    b = _Builder(snap, tasks)
    queue_slices = len(tasks) <= QUEUE_SLICES_MAX
    limited = "; ".join(limits) or None
    from .common import to_time

    other = {"generator": f"aksnap {__version__}", "bundle": str(snap.path),
             "time_origin": str(to_time(b.origin)) if len(tasks) else None,
             "snapshot_time": str(snap.snapshot_time), "tasks": int(len(tasks)),
             "tasks_total": int(total),
             "limited": limited,
             "waiting_and_queued": ("slices on lanes and counters" if queue_slices else
                                    f"counters only (more than {QUEUE_SLICES_MAX} tasks; "
                                    "--session or --result for slices)"),
             "tracks": "one process per partition, one track per pod (slots when unknown)"}
    counts = {"events": 0}

    def parts() -> Iterator:
        yield '{"displayTimeUnit":"ms","otherData":' + json.dumps(other) + ',\n"traceEvents":[\n'
        for arr in _events(b, queue_slices):
            counts["events"] += len(arr)
            yield _buffer(arr)
        last = {"name": f"limited: {limited}" if limited else "aksnap trace", "ph": "i", "s": "g",
                "ts": 0, "pid": 0, "tid": 0, "cat": "aksnap", "args": {"limited": limited}}
        counts["events"] += 1
        yield json.dumps(last) + "\n]}\n"

    size = write_atomically(Path(out), parts(), binary=True, overwrite=overwrite,
                            sources=sources)
    note = (f"aksnap: the trace holds {limited}" if limited else None)
    return {"path": str(out), "tasks": int(len(tasks)), "tasks_total": int(total),
            "events": counts["events"], "bytes": size, "limited": limited, "note": note}
