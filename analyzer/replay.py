"""The replay engine of ``aksnap whatif``: a recorded run replayed under other pod counts and
scheduling policies, as a discrete-event simulation over the bundle's DAG.

The model (docs/whatif.md says it in full, with its measured error):

- **What a task costs.** Every task that got a pod in the recorded run (``acquired_at``) is
  replayed with its own *pod time*: from the instant it got its pod (its *dispatch*) to its
  ``ended_at``. The dispatch is not a column: a pod runs one task at a time, so a task got its
  pod when it was queued (``submitted_at``) or, if later, when the previous task on the same
  pod (``pod_hostname``) ended. The queue wait (``submitted_at`` -> dispatch) is what capacity
  changes; the pod time, agent latency included, is kept as recorded. A task still running at
  the snapshot is replayed with the time it had run (a lower bound, said as ``censored``); a
  task that never got a pod (failed by propagation, cancelled while waiting, still queued) does
  not run in the replay either.
- **When a task may start** (ArmoniK's rules, ARMONIK.md): when every input it reads (data
  dependencies and payload) is COMPLETED, and, for a subtask, when its parent has ended (a
  subtask is written when its parent succeeds), and, for a retry, when the failed attempt
  ended. A result completes when its owner (the last one: ownership moves to subtasks and
  retries) completes it, shifted with that owner's dispatch; a result no replayed task
  produces (the client's) completes when it did. A task the client submitted is created when it
  was. The recorded delay between the last of these and ``submitted_at`` (the control plane's
  latency, a paused session) is kept per task.
- **Pods.** Each partition has a pool of identical pods, one task per pod at a time. Its
  recorded capacity is the most pods that were busy at once (each pod busy from a dispatch to
  the task's end).
- **Which task gets a freed pod** (the policy): ``fifo``, ArmoniK's queue (higher task priority
  first, then the earliest queued; ties in recorded submission order); ``recorded``, the order
  the recorded run dispatched them in; ``critical-path``, the longest remaining path first.

The engine (:func:`replay`) advances time in *blocks*: every event up to the next instant an
event created inside the block could happen (the earliest ``dispatch + lookahead`` of the tasks
dispatched in it, a task's lookahead being the least of its pod time and the delays to its
dependents' releases) is independent of the block's own dispatches. With ``fifo`` and one
priority per partition, a block's dispatches are vectorised: the k-th task in queue order gets
the k-th pod to become free (``max(release, pod free)``), as in a FIFO multi-server queue;
the other policies match pods to tasks within a block with a heap. Ends, releases and the
propagation to dependents are numpy over each block's tasks.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aksnap.bundle import TASK_STATUSES

from .graph import NA, concat_ranges

POLICIES = ("fifo", "recorded", "critical-path", "lazy")
#: task statuses that can still run at the snapshot (their pod time is censored there)
_RUNNING = [TASK_STATUSES.index(s) for s in ("DISPATCHED", "PROCESSING", "CANCELLING")]
NEVER = np.iinfo(np.int64).max
_LOW = -(1 << 62)  # "no lower bound" on a release time


@dataclass
class Workload:
    """A bundle's tasks as the replay needs them: times in µs from ``origin`` (the earliest
    creation), one row per task of the bundle (graph order)."""

    origin: int                      # µs since the epoch of time 0
    ran: np.ndarray                  # bool: replayed (it got a pod in the recorded run)
    censored: np.ndarray             # bool: still running at the snapshot (pod time cut there)
    part: np.ndarray                 # partition code (-1: none)
    partitions: list[str]
    session: np.ndarray              # session code (graph.sessions)
    created: np.ndarray              # recorded, relative µs (NA: unknown)
    submitted: np.ndarray
    dispatch: np.ndarray             # recorded dispatch (got its pod)
    end: np.ndarray                  # recorded end (the snapshot for a censored task)
    work: np.ndarray                 # pod time: end - dispatch (>= 1 µs)
    floor: np.ndarray                # release no earlier than this (client creation, client inputs)
    lat: np.ndarray                  # recorded submitted_at - ready instant (>= 0)
    priority: np.ndarray             # the task's priority option (higher first)
    tie: np.ndarray                  # rank in recorded submission order (FIFO ties)
    rank: np.ndarray                 # rank in recorded dispatch order (policy recorded)
    # prerequisite edges pred -> succ between replayed tasks, CSR by pred: the succ's release
    # is no earlier than dispatch(pred) + off (a pair may repeat: a task reading two results
    # of another counts it twice)
    ptr: np.ndarray
    succ: np.ndarray
    off: np.ndarray
    pred: np.ndarray                 # the pred of each edge (same order as succ)
    capacity: np.ndarray             # per partition: the most pods busy at once (recorded)
    pods_seen: np.ndarray            # per partition: distinct pods named
    pod_max: np.ndarray              # per partition: pod_max of the partitions table (-1: none)
    snapshot: int                    # the snapshot instant, relative µs
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.ran)


def _codes(col) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes of a string column (-1 for null or empty) and its distinct values."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string()).dictionary_encode()
    values = arr.dictionary.cast(pa.string()).to_pylist()
    idx = np.asarray(pc.fill_null(arr.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    empty = np.array([v in (None, "") for v in values] + [True], dtype=bool)
    idx = np.where(empty[idx], -1, idx)
    return idx, values


def _concurrency(starts: np.ndarray, ends: np.ndarray, group: np.ndarray, k: int) -> np.ndarray:
    """The most intervals [start, end) of each group (0..k-1) open at once (an end at the
    instant of a start is closed first): at each start, the starts so far minus the ends so
    far, from two sorted arrays per group."""
    out = np.zeros(k, dtype=np.int64)
    for g in range(k):
        m = group == g
        if not m.any():
            continue
        s_, e_ = np.sort(starts[m]), np.sort(ends[m])
        out[g] = int((np.arange(1, len(s_) + 1) - np.searchsorted(e_, s_, "right")).max())
    return out


def _order(*keys: np.ndarray) -> np.ndarray:
    """The rows ordered by ``keys`` (the first most significant; NA last), then by row: one
    quicksort of a combined int64 key when the keys fit in it, else a lexsort."""
    n = len(keys[0])
    idx = np.arange(n, dtype=np.int64)
    bits = max(int(n).bit_length(), 1)
    parts = []
    for k in keys:
        valid = k != NA
        lo = int(k[valid].min()) if valid.any() else 0
        hi = int(k[valid].max()) if valid.any() else 0
        x = np.where(valid, k - lo, hi - lo + 1)
        parts.append((x, max(int(hi - lo + 1).bit_length(), 1)))
    if bits + sum(b for _, b in parts) <= 62:
        key = np.zeros(n, dtype=np.int64)
        for x, b in parts:
            key = (key << b) | x
        o = np.argsort((key << bits) | idx)
    else:
        o = np.lexsort((idx,) + tuple(x for x, _ in reversed(parts)))
    return o


def _rank(*keys: np.ndarray) -> np.ndarray:
    """The rank of each row in :func:`_order`."""
    o = _order(*keys)
    r = np.empty(len(o), dtype=np.int64)
    r[o] = np.arange(len(o), dtype=np.int64)
    return r


def prepare(snap) -> Workload:
    """The workload of a bundle (vectorised; cached on the snapshot: the report, the capacity
    curve and every policy replay the same one)."""
    cached = snap.__dict__.get("_whatif_workload")
    if cached is not None:
        return cached
    g = snap.graph
    T = g.n_tasks
    ts, rts = g.task_ts, g.result_ts
    cols = snap.read_columns("tasks", ["partition_id", "pod_hostname", "owner_pod_id", "priority"],
                             dictionary=["partition_id", "pod_hostname", "owner_pod_id"])
    part, partitions = _codes(cols["partition_id"])
    pod, _ = _codes(cols["pod_hostname"])
    pod_ip, _ = _codes(cols["owner_pod_id"])
    # one pod code: the host name, else the pod id (their codes kept apart)
    n_host = int(pod.max()) + 1 if len(pod) else 0
    pod = np.where(pod >= 0, pod, np.where(pod_ip >= 0, pod_ip + n_host, -1))
    priority = np.asarray(pc.fill_null(cols["priority"], 0).to_numpy(zero_copy_only=False),
                          dtype=np.int64)
    created, sub, acq, end = (ts[c].copy() for c in ("created_at", "submitted_at", "acquired_at",
                                                     "ended_at"))
    known = np.concatenate([x[x != NA] for x in (created, sub, acq, end)]
                           + [rts["completed_at"][rts["completed_at"] != NA]])
    origin = int(known.min()) if len(known) else 0
    from .common import micros

    snap_us = micros(snap.snapshot_time) if snap.snapshot_time is not None else NA
    latest = int(known.max()) if len(known) else origin
    snap_us = max(snap_us, latest) if snap_us != NA else latest

    def rel(x):
        return np.where(x == NA, NA, x - origin)

    created, sub, acq, end = rel(created), rel(sub), rel(acq), rel(end)
    snapshot = snap_us - origin
    status = g.task_status
    got_pod = (acq != NA) & (part >= 0)
    censored = got_pod & (end == NA) & np.isin(status, _RUNNING)
    ran = got_pod & ((end != NA) | censored)
    end = np.where(censored, snapshot, end)
    sub = np.where((sub == NA) | (sub > acq), np.where(acq != NA, acq, sub), sub)

    # the recorded dispatch: queued, or the previous task on its pod ended, whichever is later
    dispatch = np.where(ran, acq, NA)
    on_pod = np.flatnonzero(ran & (pod >= 0))
    o = on_pod[_order(acq[on_pod])]
    pc_ = pod[o]
    o = o[np.argsort(pc_.astype(np.int16 if pc_.max(initial=0) < 2**15 else np.int32),
                     kind="stable")]
    if len(o):
        same = np.r_[False, pod[o][1:] == pod[o][:-1]]
        prev_end = np.r_[NA, end[o][:-1]]
        dispatch[o] = np.minimum(np.where(same, np.maximum(sub[o], prev_end), sub[o]), acq[o])
    blind = ran & (pod < 0)
    notes = []
    if blind.any():
        # no pod named: the agent's latency (dispatch -> acquired) is the partition's tenth
        # percentile of submitted -> acquired
        lag = np.zeros(len(partitions), dtype=np.int64)
        for p in np.unique(part[blind]).tolist():
            x = (acq - sub)[blind & (part == p)]
            lag[p] = int(np.percentile(x, 10)) if len(x) else 0
        dispatch[blind] = np.maximum(sub[blind], acq[blind] - lag[part[blind]])
        notes.append(f"{int(blind.sum())} task(s) name no pod: their dispatch is estimated from "
                     "the partition's agent latency")
    work = np.where(ran, np.maximum(end - dispatch, 1), 0)

    # --- prerequisites: inputs (data dependencies, payload) and the creating task ------------
    ptr = np.asarray(g.in_ptr[:T + 1])
    n_in = int(ptr[T]) if T else 0
    res = np.asarray(g.in_src[:n_in]) - T
    cons = np.repeat(np.arange(T, dtype=np.int64), np.diff(ptr))
    prod = np.asarray(g.producer)[res]
    done = rel(rts["completed_at"][res])
    keep_in = ran[cons]
    inner = keep_in & (prod >= 0)
    inner[inner] = ran[prod[inner]] & (done[inner] != NA)
    floor = np.full(T, _LOW, dtype=np.int64)
    outer = keep_in & ~inner & (done != NA)
    np.maximum.at(floor, cons[outer], done[outer])
    previous, parent = np.asarray(g.previous_attempt), np.asarray(g.parent)
    creator = np.where(previous >= 0, previous, parent)
    spawned = ran & (creator >= 0)
    spawned[spawned] = ran[creator[spawned]]
    client = ran & ~spawned
    floor[client] = np.maximum(floor[client], np.where(created[client] != NA, created[client],
                                                       sub[client]))
    # the creator's edge (its end), merged with the inputs it produced (a subtask's payload):
    # the one duplicate pair of every subtask, dropped without sorting the edges
    j = np.flatnonzero(spawned)
    cr_off = np.zeros(T, dtype=np.int64)
    cr_off[j] = end[creator[j]] - dispatch[creator[j]]
    d_pred, d_succ = prod[inner], cons[inner]
    d_off = done[inner] - dispatch[d_pred]
    dup = spawned[d_succ] & (d_pred == creator[d_succ])
    np.maximum.at(cr_off, d_succ[dup], d_off[dup])
    pred = np.concatenate([d_pred[~dup], creator[j]])
    succ = np.concatenate([d_succ[~dup], j])
    off = np.maximum(np.concatenate([d_off[~dup], cr_off[j]]), 1)
    ready = floor.copy()
    np.maximum.at(ready, succ, dispatch[pred] + off)
    lonely = ran & (ready == _LOW)  # no prerequisite known: queued when it was
    floor[lonely] = sub[lonely]
    ready[lonely] = sub[lonely]
    lat = np.where(ran, np.maximum(sub - ready, 0), 0)
    order = np.argsort(pred)
    eptr = np.zeros(T + 1, dtype=np.int64)
    np.cumsum(np.bincount(pred, minlength=T), out=eptr[1:])

    tie = _rank(np.where(ran, sub, NA), np.where(ran, dispatch, NA))
    rank = _rank(np.where(ran, dispatch, NA), np.where(ran, tie, NA))

    K = len(partitions)
    r = np.flatnonzero(ran)
    capacity = _concurrency(dispatch[r], end[r], part[r], K)
    seen = np.zeros(K, dtype=np.int64)
    pp = np.flatnonzero(ran & (pod >= 0))
    if len(pp):
        pairs = np.unique(part[pp] * (int(pod.max()) + 1) + pod[pp])
        seen = np.bincount(pairs // (int(pod.max()) + 1), minlength=K).astype(np.int64)
    pod_max = np.full(K, -1, dtype=np.int64)
    prt = snap.sql("SELECT partition_id, pod_max FROM partitions").to_pylist()
    by_name = {row["partition_id"]: row["pod_max"] for row in prt}
    for k, name in enumerate(partitions):
        if by_name.get(name) is not None:
            pod_max[k] = int(by_name[name])
    wl = Workload(origin=origin, ran=ran, censored=censored, part=part, partitions=partitions,
                  session=np.asarray(g.session_of[:T]), created=created, submitted=sub,
                  dispatch=dispatch, end=end, work=work, floor=floor, lat=lat, priority=priority,
                  tie=tie, rank=rank, ptr=eptr, succ=succ[order], off=off[order],
                  pred=pred[order], capacity=capacity, pods_seen=seen, pod_max=pod_max,
                  snapshot=snapshot, notes=notes)
    snap.__dict__["_whatif_workload"] = wl
    return wl


# -- the policies' keys -----------------------------------------------------------------------

def bottom_levels(wl: Workload, keep: np.ndarray) -> np.ndarray:
    """The longest path from each kept task's dispatch to the end of the last kept task it
    leads to (µs): its pod time, or an edge's delay plus the dependent's latency and bottom
    level; peeled level by level from the sinks, vectorised."""
    T = wl.n
    e = keep[wl.pred] & keep[wl.succ]
    pred, succ, off = wl.pred[e], wl.succ[e], wl.off[e]
    b = np.where(keep, wl.work, 0).astype(np.int64)
    out_deg = np.bincount(pred, minlength=T)
    o = np.argsort(succ)
    in_ptr = np.zeros(T + 1, dtype=np.int64)
    np.cumsum(np.bincount(succ, minlength=T), out=in_ptr[1:])
    in_pred, in_off = pred[o], off[o]
    front = np.flatnonzero(keep & (out_deg == 0))
    left = out_deg.copy()
    while len(front):
        lo = in_ptr[front]
        cnt = in_ptr[front + 1] - lo
        idx = concat_ranges(lo, cnt)
        if not len(idx):
            break
        p = in_pred[idx]
        via = in_off[idx] + np.repeat(wl.lat[front] + b[front], cnt)
        np.maximum.at(b, p, via)
        np.subtract.at(left, p, 1)
        front = np.unique(p[left[p] == 0])
    return b


def lookahead(wl: Workload, keep: np.ndarray) -> np.ndarray:
    """For each task, the least delay from its dispatch to any event it causes: its end, or a
    dependent's release (edge delay plus the dependent's latency)."""
    lam = np.where(keep, wl.work, NEVER)
    if len(wl.succ):
        via = np.where(keep[wl.succ], wl.off + wl.lat[wl.succ], NEVER)
        has = np.diff(wl.ptr) > 0
        lam[has] = np.minimum(lam[has], np.minimum.reduceat(via, wl.ptr[:-1][has]))
    return np.maximum(lam, 1)


@dataclass
class Schedule:
    """One replay: per task, its release (queued), dispatch (got a pod) and end, µs from the
    workload's origin (-1 / NA when it did not run), and what decided its release (``why``:
    the binding prerequisite task, -1 when its own floor or nothing)."""

    keep: np.ndarray
    release: np.ndarray
    dispatch: np.ndarray
    end: np.ndarray
    why: np.ndarray
    capacity: np.ndarray
    blocks: int = 0


class _Pending:
    """Releases not yet reached, sorted by (time, tie): the ones known at the start (a sorted
    array read with a pointer) and those the replay adds (a small sorted array)."""

    def __init__(self, times: np.ndarray, tasks: np.ndarray, tie: np.ndarray):
        o = np.lexsort((tie[tasks], times))
        self.bt, self.bk, self.bi = times[o], tasks[o], 0
        self.dt = np.zeros(0, dtype=np.int64)
        self.dk = np.zeros(0, dtype=np.int64)
        self.tie = tie

    def first(self) -> int:
        a = int(self.bt[self.bi]) if self.bi < len(self.bt) else NEVER
        b = int(self.dt[0]) if len(self.dt) else NEVER
        return min(a, b)

    def window(self, m: int) -> tuple[np.ndarray, np.ndarray, int]:
        """About the next ``m`` releases (every release at the last one's instant too), sorted,
        and the instant of the next release after them (NEVER: none)."""
        bt, dt = self.bt, self.dt
        ca = int(bt[min(self.bi + m, len(bt)) - 1]) if self.bi < len(bt) else NEVER
        cb = int(dt[min(m, len(dt)) - 1]) if len(dt) else NEVER
        c = min(ca, cb)
        ha = int(np.searchsorted(bt, c, "right")) if self.bi < len(bt) else self.bi
        hb = int(np.searchsorted(dt, c, "right"))
        nxt = min(int(bt[ha]) if ha < len(bt) else NEVER, int(dt[hb]) if hb < len(dt) else NEVER)
        if self.bi == ha:
            return dt[:hb], self.dk[:hb], nxt
        if not hb:
            return bt[self.bi:ha], self.bk[self.bi:ha], nxt
        t = np.concatenate([bt[self.bi:ha], dt[:hb]])
        k = np.concatenate([self.bk[self.bi:ha], self.dk[:hb]])
        o = np.lexsort((self.tie[k], t))
        return t[o], k[o], nxt

    def consume(self, until: int) -> None:
        """Drop every release before ``until`` (they were taken)."""
        if self.bi < len(self.bt) and self.bt[self.bi] < until:
            self.bi = int(np.searchsorted(self.bt, until, "left"))
        if len(self.dt) and self.dt[0] < until:
            h = int(np.searchsorted(self.dt, until, "left"))
            self.dt, self.dk = self.dt[h:], self.dk[h:]

    def add(self, times: np.ndarray, tasks: np.ndarray) -> None:
        if not len(times):
            return
        o = np.lexsort((self.tie[tasks], times))
        times, tasks = times[o], tasks[o]
        if not len(self.dt) or times[0] > self.dt[-1]:
            self.dt = np.concatenate([self.dt, times])
            self.dk = np.concatenate([self.dk, tasks])
            return
        t = np.concatenate([self.dt, times])
        k = np.concatenate([self.dk, tasks])
        o = np.lexsort((self.tie[k], t))
        self.dt, self.dk = t[o], k[o]


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two arrays as one sorted array (``a`` sorted already; timsort merges the two runs)."""
    if not len(b):
        return a
    c = np.concatenate([a, np.sort(b)])
    c.sort(kind="stable")
    return c


class _Queue:
    """A partition's queue: task keys and tasks, sorted by key, in a buffer read from a head
    (dispatches take from the front; a release appends, or is merged in when its key is
    smaller than the last one)."""

    def __init__(self, size: int):
        self.k = np.zeros(size, dtype=np.int64)
        self.x = np.zeros(size, dtype=np.int64)
        self.h = self.t = 0

    def __len__(self) -> int:
        return self.t - self.h

    def put(self, keys: np.ndarray, tasks: np.ndarray, start: int | None = None) -> None:
        """Put ``keys`` (sorted) after dropping everything before ``start`` (default: the
        head): the queue stays sorted."""
        if start is not None:
            self.h = start
        n = len(keys)
        if not n:
            return
        if self.t == self.h or keys[0] >= self.k[self.t - 1]:
            self.k[self.t:self.t + n] = keys
            self.x[self.t:self.t + n] = tasks
            self.t += n
            return
        kk = np.concatenate([self.k[self.h:self.t], keys])
        xx = np.concatenate([self.x[self.h:self.t], tasks])
        o = np.argsort(kk, kind="stable")
        size = len(kk)
        self.k[self.h:self.h + size] = kk[o]
        self.x[self.h:self.h + size] = xx[o]
        self.t = self.h + size


def _sorted(a: np.ndarray) -> bool:
    return len(a) < 2 or bool((a[1:] >= a[:-1]).all())


def replay(wl: Workload, capacity, policy: str = "fifo", keep: np.ndarray | None = None,
           window: int = 256) -> Schedule:
    """Replay the workload with ``capacity`` pods per partition (an array, one per partition)
    under ``policy`` (fifo, recorded or critical-path; lazy is fifo over ``keep``). ``keep``:
    the tasks that run (default: every replayed task)."""
    T = wl.n
    K = len(wl.partitions)
    cap = np.asarray(capacity, dtype=np.int64)
    keep = wl.ran.copy() if keep is None else (np.asarray(keep, dtype=bool) & wl.ran)
    e = keep[wl.pred] & keep[wl.succ]
    if e.all():
        ptr, succ, off = wl.ptr, wl.succ, wl.off
    else:
        succ, off, pr = wl.succ[e], wl.off[e], wl.pred[e]
        ptr = np.zeros(T + 1, dtype=np.int64)
        np.cumsum(np.bincount(pr, minlength=T), out=ptr[1:])
    indeg = np.bincount(succ, minlength=T).astype(np.int64)
    lam = lookahead(wl, keep)
    part, work, lat = wl.part, wl.work, wl.lat
    relv = wl.floor.copy()
    why = np.full(T, -1, dtype=np.int64)
    disp = np.full(T, NA, dtype=np.int64)
    release = np.full(T, NA, dtype=np.int64)
    roots = np.flatnonzero(keep & (indeg == 0))
    relv[roots] = np.where(relv[roots] == _LOW, wl.submitted[roots], relv[roots])
    release[roots] = relv[roots] + lat[roots]
    pending = _Pending(release[roots], roots, wl.tie)

    # A task's queue key: its static part, plus (fifo) its release instant above the tie bits.
    SH = max(int(T).bit_length(), 1)
    MASK = (1 << SH) - 1
    fifo = policy in ("fifo", "lazy")
    QS = CB = 0
    if fifo:
        classes = [np.unique(-wl.priority[keep & (part == p)]) for p in range(K)]
        cls = np.zeros(T, dtype=np.int64)
        for p in range(K):
            m = keep & (part == p)
            if m.any():
                cls[m] = np.searchsorted(classes[p], -wl.priority[m])
        CB = max(max(len(c) - 1, 0).bit_length() for c in classes) if K else 0
        bound = int(max(relv[roots].max(initial=0), 0) + work[keep].sum() + lat[keep].sum()
                    + off.sum() + 1)
        TB = 62 - SH - CB
        QS = max(bound.bit_length() - TB, 0)  # time quantum (µs bits dropped) if it must be
        low = wl.tie
        stat = (cls << (TB + SH)) | low
    elif policy == "recorded":
        low = wl.rank
        stat = low
    elif policy == "critical-path":
        b = bottom_levels(wl, keep)
        low = _rank(np.where(keep, -b, NA), wl.tie)
        stat = low
    else:
        raise ValueError(f"unknown policy {policy!r}")

    def keys_of(tasks: np.ndarray, times: np.ndarray) -> np.ndarray:
        return stat[tasks] + ((times >> QS) << SH) if fifo else stat[tasks]

    order = np.empty(T, dtype=np.int64)
    order[low] = np.arange(T)
    # FIFO with one priority per partition: a release is never ahead of one queued earlier, so
    # a block's dispatches are a zip (sorted buffer queues); otherwise a heap per partition
    zip_mode = fifo and CB == 0
    free = cap.copy()
    busy = [np.zeros(0, dtype=np.int64) for _ in range(K)]
    queues = [_Queue(int((keep & (part == p)).sum())) for p in range(K)] if zip_mode else None
    heaps: list[list[int]] = [[] for _ in range(K)]
    blocks = 0
    m_win = window
    order_l = part_l = lam_l = None  # Python lists, made when a block needs the heaps
    # A static key (recorded, critical-path: a rank 0..T-1, no time in it): the queue is a
    # bitmap over the ranks with a count per chunk of ranks and partition; a block needs only
    # the m smallest queued (m: the pods that free up in it), and when every release of the
    # block ranks after them, the k-th freed pod takes the k-th smallest (no heap, vectorised)
    static = not fifo
    CH = 1024
    NCH = (T + CH - 1) // CH if static else 0
    inq = np.zeros(NCH * CH, dtype=bool)
    qcnt = np.zeros((K, NCH), dtype=np.int64)
    qlen = np.zeros(K, dtype=np.int64)

    def q_smallest(p: int, m: int) -> np.ndarray:
        """The ``m`` smallest ranks queued in partition ``p`` (fewer if fewer), sorted."""
        if m <= 0 or not qlen[p]:
            return np.zeros(0, dtype=np.int64)
        nz = np.flatnonzero(qcnt[p])
        j = int(np.searchsorted(np.cumsum(qcnt[p][nz]), m))
        chunks = nz[:j + 1]
        r = np.flatnonzero(inq.reshape(NCH, CH)[chunks])
        ranks = chunks[r // CH] * CH + r % CH
        if K > 1:
            ranks = ranks[part[order[ranks]] == p]
        return ranks[:m]

    def q_put(p: int, ranks: np.ndarray, on: bool) -> None:
        if len(ranks):
            inq[ranks] = on
            b = np.bincount(ranks // CH, minlength=NCH)
            if on:
                qcnt[p] += b
                qlen[p] += len(ranks)
            else:
                qcnt[p] -= b
                qlen[p] -= len(ranks)

    def waiting(p: int) -> bool:
        if zip_mode:
            return bool(len(queues[p]))
        return bool(qlen[p]) if static else bool(heaps[p])

    while True:
        t = pending.first()
        for p in range(K):
            if len(busy[p]) and waiting(p):
                t = min(t, int(busy[p][0]))
        if t == NEVER:
            break
        blocks += 1
        at, ak, t_hi = pending.window(m_win)
        if K == 1:
            groups = {0: (at, ak)}
        else:
            ap = part[ak]
            o = np.argsort(ap, kind="stable")
            cuts = np.searchsorted(ap[o], np.arange(K + 1))
            groups = {p: (at[o[cuts[p]:cuts[p + 1]]], ak[o[cuts[p]:cuts[p + 1]]])
                      for p in range(K)}
        plan = {}
        contended = []
        tau = t_hi
        for p, (gt, gk) in groups.items():
            if not len(gk) and not len(busy[p]) and not waiting(p):
                continue
            bz = busy[p]
            fr = int(free[p])
            if not waiting(p) and fr >= len(gk):  # no contention: each release gets a free pod
                cand, d, nq = gk, gt, 0
            elif not zip_mode:
                contended.append(p)
                continue
            else:
                q = queues[p]
                nb = int(np.searchsorted(bz, t_hi, "left"))
                n_av = fr + nb
                nq = min(len(q), n_av)
                mm = min(n_av, nq + len(gk))
                nf = min(fr, mm)
                avail = np.concatenate([np.full(nf, t, dtype=np.int64),
                                        np.maximum(bz[:mm - nf], t)])
                cand = np.concatenate([q.x[q.h:q.h + nq], gk])[:mm]
                ready = np.concatenate([np.full(nq, t, dtype=np.int64), gt])[:mm]
                d = np.maximum(ready, avail)
            if len(d):
                tau = min(tau, int((d + lam[cand]).min()))
            plan[p] = (gt, gk, nq, cand, d)
        D: list[np.ndarray] = []
        DT: list[np.ndarray] = []
        smallest = {}
        fast = bool(contended) and static
        if static:
            for p in contended:
                m = int(free[p]) + int(np.searchsorted(busy[p], tau, "left"))
                sm = smallest[p] = q_smallest(p, m)
                gk = groups[p][1]
                if free[p] or len(sm) < m or (m and len(gk) and int(stat[gk].min()) < int(sm[-1])):
                    fast = False
        if fast:
            # every release ranks after the m smallest queued: the pods freed in time order
            # take those, the releases queue; the block ends at the first dispatch's lookahead
            pt = np.concatenate([busy[p][:len(smallest[p])] for p in contended])
            ptask = np.concatenate([order[smallest[p]] for p in contended])
            pp = np.concatenate([np.full(len(smallest[p]), p, dtype=np.int64) for p in contended])
            o = np.argsort(pt, kind="stable")
            pt, ptask, pp = pt[o], ptask[o], pp[o]
            v = np.minimum.accumulate(pt + lam[ptask]) if len(pt) else pt
            before = np.minimum(np.r_[tau, v[:-1]], tau) if len(pt) else pt
            late = np.flatnonzero(pt >= before)
            k = int(late[0]) if len(late) else len(pt)
            bound = min(tau, int(v[k - 1])) if k else tau
            pt, ptask, pp = pt[:k], ptask[:k], pp[:k]
            for p in contended:
                sel = pp == p
                used_p = int(sel.sum())
                q_put(p, smallest[p][:used_p], False)
                gt, gk = groups[p]
                n_arr = int(np.searchsorted(gt, bound, "left"))
                q_put(p, stat[gk[:n_arr]], True)
                busy[p] = _merge_sorted(busy[p][used_p:], pt[sel] + work[ptask[sel]])
            tau = bound
            if k:
                D.append(ptask)
                DT.append(pt)
        elif contended:
            if static:
                for p in contended:  # the m smallest queued, sorted: a heap already
                    heaps[p] = smallest[p].tolist()
            # the greedy match, event by event: a freed pod takes the smallest key released so
            # far, a release takes a free pod if there is one
            if order_l is None:
                order_l, part_l, lam_l = order.tolist(), part.tolist(), lam.tolist()
            ev_t, ev_x, ev_k, ev_q = [], [], [], []
            for p in contended:
                gt, gk = groups[p]
                nb = int(np.searchsorted(busy[p], tau, "left"))
                ev_t += [busy[p][:nb], gt]
                ev_x += [np.full(nb, p, dtype=np.int64), gk]
                ev_k += [np.zeros(nb, dtype=np.int64), np.ones(len(gk), dtype=np.int64)]
                ev_q += [np.zeros(nb, dtype=np.int64), keys_of(gk, gt)]
            et, ex, ek, eq = (np.concatenate(v) for v in (ev_t, ev_x, ev_k, ev_q))
            o = np.lexsort((eq, ek, et))
            bound = tau
            used = dict.fromkeys(contended, 0)
            hk: list[int] = []
            ht: list[int] = []
            heappop, heappush = heapq.heappop, heapq.heappush
            for tm, kind, x, key in zip(et[o].tolist(), ek[o].tolist(), ex[o].tolist(),
                                        eq[o].tolist()):
                if tm >= bound:
                    break
                if kind == 0:
                    p = x
                    used[p] += 1
                    h = heaps[p]
                    if h:
                        j = order_l[heappop(h) & MASK]
                    else:
                        free[p] += 1
                        continue
                else:
                    j = x
                    p = part_l[j]
                    if free[p]:
                        free[p] -= 1
                    else:
                        heappush(heaps[p], key)
                        continue
                hk.append(j)
                ht.append(tm)
                b_ = tm + lam_l[j]
                if b_ < bound:
                    bound = b_
            tau = bound
            hk_a = np.array(hk, dtype=np.int64)
            ht_a = np.array(ht, dtype=np.int64)
            hp = part[hk_a]
            for p in contended:
                sel = hp == p
                busy[p] = _merge_sorted(busy[p][used[p]:], ht_a[sel] + work[hk_a[sel]])
                if static:
                    # the queue: less what was dispatched, plus the releases not dispatched
                    gt, gk = groups[p]
                    gk = gk[:int(np.searchsorted(gt, bound, "left"))]
                    taken = stat[hk_a[sel]]
                    q_put(p, taken[inq[taken]], False)
                    q_put(p, np.setdiff1d(stat[gk], taken), True)
                    heaps[p] = []
            if len(hk):
                D.append(hk_a)
                DT.append(ht_a)
        end = max(tau, t + 1)
        for p, (gt, gk, nq, cand, d) in plan.items():
            k = int(np.searchsorted(d, end, "left"))
            n_lt = int(np.searchsorted(busy[p], end, "left"))
            free[p] += n_lt - k
            if zip_mode:
                q = queues[p]
                used_q = min(k, nq)
                n_arr = int(np.searchsorted(gt, end, "left"))
                q.h += used_q
                if k - used_q < n_arr:
                    q.put(keys_of(gk[k - used_q:n_arr], gt[k - used_q:n_arr]),
                          gk[k - used_q:n_arr])
            if k:
                D.append(cand[:k])
                DT.append(d[:k])
                busy[p] = _merge_sorted(busy[p][n_lt:], d[:k] + work[cand[:k]])
            else:
                busy[p] = busy[p][n_lt:]
        pending.consume(end)
        if D:
            Dk = np.concatenate(D) if len(D) > 1 else D[0]
            Dt = np.concatenate(DT) if len(DT) > 1 else DT[0]
            disp[Dk] = Dt
            lo = ptr[Dk]
            cnt = ptr[Dk + 1] - lo
            idx = concat_ranges(lo, cnt)
            if len(idx):
                js = succ[idx]
                v = np.repeat(Dt, cnt) + off[idx]
                pr = np.repeat(Dk, cnt)
                o = np.lexsort((v, js))
                js, v, pr = js[o], v[o], pr[o]
                brk = np.empty(len(js), dtype=bool)
                brk[-1] = True
                np.not_equal(js[1:], js[:-1], out=brk[:-1])
                jj, vv, pp = js[brk], v[brk], pr[brk]
                # a prerequisite that ties with the task's own floor (created the instant
                # it was ready) is still what it waited for: the critical path goes through it
                up = vv >= relv[jj]
                relv[jj[up]] = vv[up]
                why[jj[up]] = pp[up]
                counts = np.diff(np.flatnonzero(brk), prepend=-1)
                indeg[jj] -= counts
                rdy = jj[indeg[jj] == 0]
                if len(rdy):
                    rt = relv[rdy] + lat[rdy]
                    release[rdy] = rt
                    pending.add(rt, rdy)
            m_win = int(min(max(64, 2 * len(Dk)), 1 << 16))
        else:
            m_win = int(min(m_win * 2, 1 << 16))
    ends = np.where(disp != NA, disp + work, NA)
    return Schedule(keep=keep, release=release, dispatch=disp, end=ends, why=why,
                    capacity=cap, blocks=blocks)


def upstream(wl: Workload, tasks: np.ndarray) -> np.ndarray:
    """Every replayed task the given tasks need (their prerequisites, transitively: the
    producers of what they read, their parents, their earlier attempts), themselves included,
    as a mask; one vectorised breadth-first level at a time."""
    T = wl.n
    o = np.argsort(wl.succ)
    in_ptr = np.zeros(T + 1, dtype=np.int64)
    np.cumsum(np.bincount(wl.succ, minlength=T), out=in_ptr[1:])
    in_pred = wl.pred[o]
    need = np.zeros(T, dtype=bool)
    front = np.unique(np.asarray(tasks, dtype=np.int64))
    front = front[wl.ran[front]]
    need[front] = True
    while len(front):
        lo = in_ptr[front]
        nxt = in_pred[concat_ranges(lo, in_ptr[front + 1] - lo)]
        nxt = np.unique(nxt[~need[nxt]])
        need[nxt] = True
        front = nxt
    return need


__all__ = ["Workload", "Schedule", "prepare", "replay", "bottom_levels", "lookahead", "upstream",
           "POLICIES", "NEVER"]
