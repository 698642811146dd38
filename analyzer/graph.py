"""The task/data graph of a bundle, built once from Arrow arrays, vectorised.

Node index = row index: task ``i`` of ``tasks.parquet`` is node ``i``; result ``j`` of
``results.parquet`` is node ``n_tasks + j``. Ids are mapped to indices by one hash table per
kind of id, built once and probed batch by batch (:mod:`aksnap.analyzer.idindex`; the
whole-column reference build uses ``pyarrow.compute.index_in``) over ``list_flatten`` /
``list_parent_indices``; the rustworkx graph, when an analysis needs it, takes every edge in one
``extend_from_edge_list`` call; no Python loop runs per row.

The data DAG (:attr:`TaskGraph.dag`) holds
  result -> task   the task reads the result (data dependency or payload)
  task -> result   the task produces the result: ``owner_task_id`` (after ownership transfers
                   and retries), else ``created_by``; a result with neither comes from the client.
The spawn tree (parent -> subtask) and the retry chains (attempt -> next attempt) are kept apart
as index arrays: they explain *when* a task came to exist, not what it reads. Both come from
``created_by`` (see ``_build``), which equals ``parent_task_ids[-1]`` for a subtask and
``retry_of_ids[-1]`` for a retry; ``queries/spawn_mismatches.sql`` checks it.
"""

from __future__ import annotations

import gc
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from collections.abc import Mapping
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import rustworkx as rx

from aksnap.analyzer.cache import cache_entry
from aksnap.bundle import (
    RESULT_LOST_STATUSES,
    RESULT_STATUSES,
    RESULT_TIMESTAMPS,
    TASK_LOST_STATUSES,
    TASK_STATUS_ENTERED,
    TASK_STATUSES,
    TASK_TIMESTAMPS,
)

NA = np.iinfo(np.int64).min  # a missing timestamp, in the int64 microsecond arrays

TASK_TS = TASK_TIMESTAMPS
RESULT_TS = RESULT_TIMESTAMPS

TASK_CODE = {s: i for i, s in enumerate(TASK_STATUSES)}
RESULT_CODE = {s: i for i, s in enumerate(RESULT_STATUSES)}

# A task or result is *bad* when it will never deliver: the origin of a failure or of a
# cancellation, or its propagation (the vocabulary's lost sets: failed, cancelled, CANCELLING;
# aborted, deleted). RETRIED is not bad: the next attempt carries on.
TASK_BAD = TASK_LOST_STATUSES
RESULT_BAD = RESULT_LOST_STATUSES
_ENTERED = TASK_STATUS_ENTERED

KIND_DATA, KIND_PAYLOAD, KIND_PRODUCES = 0, 1, 2
KIND_NAMES = ("data", "payload", "produces")


def _single(a: pa.ChunkedArray | pa.Array) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def np_index(a) -> np.ndarray:
    """index_in output (int32 with nulls) -> int64 numpy with -1 for 'not found'."""
    return _np(pc.fill_null(a, -1)).astype(np.int64, copy=False)


def _chunks(a) -> list:
    return list(a.chunks) if isinstance(a, pa.ChunkedArray) else [a]


def _ts_micro(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp column as int64 µs (NA for null), written chunk by chunk into one array:
    no combined copy of the column, no filled copy (at 10M rows each is 80 MB of page faults)."""
    out = np.empty(len(col), dtype=np.int64)
    pos = 0
    for ch in _chunks(col):
        n = len(ch)
        if not n:
            continue
        v = ch.cast(pa.int64())
        out[pos:pos + n] = np.frombuffer(v.buffers()[1], dtype=np.int64, count=n, offset=v.offset * 8)
        if v.null_count:
            out[pos:pos + n][~v.is_valid().to_numpy(zero_copy_only=False)] = NA
        pos += n
    return out


class _TimestampColumns(Mapping):
    """A table's timestamp columns as int64 µs arrays, each read from its Parquet file (alone)
    the first time it is asked for: an answer reads the columns it uses, not all of them."""

    #: reads at a few rows of one column before it is read whole: each opens the file and
    #: decodes a row group (about a millisecond), a long chain asks once per step (a
    #: 20,000-step chain made 40,000 of them: 50 s), and the whole column is one read
    PARTIAL_READS = 32

    def __init__(self, snap, table: str, names: tuple[str, ...]):
        self._snap, self._table, self._names = snap, table, tuple(names)
        self._read = snap.read_columns
        self._got: dict[str, np.ndarray] = {}
        self._partial: dict[str, int] = {}

    def at(self, name: str, rows: np.ndarray) -> np.ndarray:
        """``self[name][rows]``; for a column not read yet, read at those rows only (their row
        groups), not whole: the few steps of a critical path, say. After
        :attr:`PARTIAL_READS` such reads of a column, it is read whole."""
        if name in self._got:
            return self[name][rows]
        if name not in self._names:
            raise KeyError(name)
        self._partial[name] = self._partial.get(name, 0) + 1
        if self._partial[name] > self.PARTIAL_READS:
            return self[name][rows]
        return _ts_micro(self._snap.read_rows(self._table, name, np.asarray(rows, dtype=np.int64)))

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._got:
            if name not in self._names:
                raise KeyError(name)
            self._got[name] = _ts_micro(self._read(self._table, [name]).column(0))
        return self._got[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _np(a) -> np.ndarray:
    return a.to_numpy(zero_copy_only=False) if isinstance(a, pa.Array) else \
        (np.concatenate([c.to_numpy(zero_copy_only=False) for c in a.chunks])
         if a.num_chunks else np.zeros(0, dtype=np.int64))


def _dictionary_values(col: pa.ChunkedArray) -> pa.Array:
    """The distinct values of a (possibly dictionary-encoded) string column."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    if chunks and pa.types.is_dictionary(chunks[0].type):
        return pc.unique(pa.concat_arrays([c.dictionary.cast(pa.string()) for c in chunks])) \
            if chunks else pa.array([], pa.string())
    return pc.unique(_single(col).cast(pa.string())) if len(col) else pa.array([], pa.string())


def _codes(col: pa.ChunkedArray, names: pa.Array) -> np.ndarray:
    """Index of each value in ``names`` (-1 when absent); cheap on dictionary-encoded chunks."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    out = []
    for c in chunks:
        if pa.types.is_dictionary(c.type):
            m = np_index(pc.index_in(c.dictionary.cast(pa.string()), value_set=names))
            idx = _np(pc.fill_null(c.indices, 0)).astype(np.int64)
            out.append(m[idx] if len(m) else np.full(len(c), -1, dtype=np.int64))
        else:
            out.append(np_index(pc.index_in(c.cast(pa.string()), value_set=names)))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _csr(key: np.ndarray, other: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Adjacency in CSR form: for node v, ``other[ptr[v]:ptr[v + 1]]`` are its neighbours
    (in edge order)."""
    order = _stable_order(key, n)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=n), out=ptr[1:])
    return ptr, np.asarray(other, dtype=np.int64)[order]


#: keys with more descents than this are sorted by radix rather than by merging their runs
_RUNS = 64


def _stable_order(key: np.ndarray, n: int) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` for keys in [0, n). Keys made of a few ascending
    runs (the in-edges' targets: one run per kind of edge) are merged by numpy's timsort, in
    about linear time; random ones (the out-edges' sources) by two stable radix passes over
    16-bit halves, linear too, where timsort's comparisons cost n log n (34M edges at 10M
    tasks: 6.3 s against 4.3 s)."""
    if n >= 2**32 or len(key) < 2:
        return np.argsort(key, kind="stable")
    if n <= 2**16:
        return np.argsort(key.astype(np.uint16), kind="stable")
    if np.count_nonzero(key[1:] < key[:-1]) <= _RUNS:
        return np.argsort(key.astype(np.int32) if n < 2**31 else key, kind="stable")
    order = np.argsort(key.astype(np.uint16), kind="stable")  # the low half (modulo 2**16)
    high = np.take(key, order)
    high >>= 16
    order = np.take(order, np.argsort(high.astype(np.uint16), kind="stable"))
    return order


def concat_ranges(lo: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """The positions lo[i] .. lo[i] + cnt[i] - 1 of every i, concatenated (a CSR gather)."""
    total = int(cnt.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    starts = np.cumsum(cnt) - cnt
    return np.repeat(lo - starts, cnt) + np.arange(total, dtype=np.int64)


class _Scratch:
    """Work arrays for many traversals of one graph: allocated once, left clean after each."""

    def __init__(self, n: int):
        self.seen = np.zeros(n, dtype=bool)
        self.slot = np.empty(n, dtype=np.int64)


#: a traversal level of at least this many neighbours (and n / 64) is marked in a mask of
#: every node rather than sorted (:func:`_reach_mask`)
DENSE_LEVEL = 4096


def _follow_chain(ptr: np.ndarray, nbr: np.ndarray, seen: np.ndarray, x: int,
                  steps: list[int] | None = None) -> int:
    """From ``x``, follow nodes with exactly one neighbour not yet ``seen``, marking each (and
    appending it to ``steps``); the node where the chain ends (several neighbours, none, or
    one already seen). A chain costs its nodes, not a level's array overhead each."""
    while True:
        lo = int(ptr[x])
        if int(ptr[x + 1]) - lo != 1:
            return x
        y = int(nbr[lo])
        if seen[y]:
            return x
        seen[y] = True
        if steps is not None:
            steps.append(y)
        x = y


def _reach_mask(ptr: np.ndarray, nbr: np.ndarray, n: int, start) -> np.ndarray:
    """A boolean mask of every node reachable from ``start`` along the CSR adjacency (the start
    nodes only when a cycle leads back to them): :func:`_reach` without the list.

    Level by level. A small level is one vectorised gather, filtered by the mask and sorted
    (``np.unique``); a big one (at least ``n / 64`` neighbours: the whole-session lineages of
    a big bundle, a few million nodes a level) is marked in a second mask of every node and
    read back with ``flatnonzero``: no sort, no duplicate kept, and the next level comes out
    sorted, so its CSR gathers read the arrays in order (a 10M-task session's root lineage,
    27M nodes in 11 levels: 5.0 s by per-level sort-free slot dedupe, now about 1.5 s). A
    stretch of nodes with exactly one neighbour (a chain) is followed step by step without
    the per-level array overhead, so a 100,000-level chain costs what its nodes cost."""
    seen = np.zeros(n, dtype=bool)
    mark: np.ndarray | None = None
    dense = max(n >> 6, DENSE_LEVEL)
    front = np.unique(np.atleast_1d(np.asarray(start, dtype=np.int64)))
    while len(front):
        if len(front) == 1:
            front = np.array([_follow_chain(ptr, nbr, seen, int(front[0]))], dtype=np.int64)
        lo = np.take(ptr, front)
        cnt = np.take(ptr[1:], front)
        cnt -= lo
        one = cnt == 1  # mostly (a result's producer, a task's payload): gathered directly
        if one.all():
            parts = [np.take(nbr, lo)]
        else:
            many = ~one
            parts = [np.take(nbr, lo[one]), np.take(nbr, concat_ranges(lo[many], cnt[many]))]
        del lo, cnt, one
        total = sum(len(p) for p in parts)
        if total and total >= dense:
            if mark is None:
                mark = np.zeros(n, dtype=bool)
            # only the span the level reached is scanned (a level is mostly tasks or mostly
            # results, a part of the node range): the mask is left clean for the next level
            a = min(int(p.min()) for p in parts if len(p))
            b = max(int(p.max()) for p in parts if len(p)) + 1
            for p in parts:
                mark[p] = True
            del parts
            m, sn = mark[a:b], seen[a:b]
            np.greater(m, sn, out=m)  # reached now and not before
            sn |= m
            front = np.flatnonzero(m)
            m.fill(False)
            if a:
                front += a
        else:
            nxt = np.concatenate(parts) if len(parts) > 1 else parts[0]
            nxt = np.unique(nxt[~seen[nxt]])
            seen[nxt] = True
            front = nxt
    return seen


def _reach(ptr: np.ndarray, nbr: np.ndarray, n: int, start,
           scratch: _Scratch | None = None) -> np.ndarray:
    """Every node reachable from ``start`` along the CSR adjacency (sorted; unsorted when a
    ``scratch`` is passed, for callers that traverse many times and only sum or count).

    Without ``scratch``: :func:`_reach_mask`, read back. With it (many small traversals of one
    graph), level by level, duplicates dropped by marking (no sort), the cost is what is
    reached, not the graph's size. The start nodes are not in the answer unless a cycle
    leads back to them."""
    if scratch is None:
        return np.flatnonzero(_reach_mask(ptr, nbr, n, start))
    seen, slot = scratch.seen, scratch.slot
    parts: list[np.ndarray] = []
    front = np.unique(np.atleast_1d(np.asarray(start, dtype=np.int64)))
    while len(front):
        if len(front) == 1:
            steps: list[int] = []
            x = _follow_chain(ptr, nbr, seen, int(front[0]), steps)
            if steps:
                parts.append(np.array(steps, dtype=np.int64))
            front = np.array([x], dtype=np.int64)
        lo = ptr[front]
        nxt = nbr[concat_ranges(lo, ptr[front + 1] - lo)]
        nxt = nxt[~seen[nxt]]
        if len(nxt) > 1:
            slot[nxt] = np.arange(len(nxt))
            nxt = nxt[slot[nxt] == np.arange(len(nxt))]
        seen[nxt] = True
        if len(nxt):
            parts.append(nxt)
        front = nxt
    found = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    seen[found] = False  # clean for the next traversal
    return found


def _peels_completely(ptr: np.ndarray, nbr: np.ndarray, n: int) -> bool:
    """Kahn's algorithm, one vectorised step per level: whether removing nodes with no
    remaining input empties the graph (it does exactly when there is no cycle)."""
    indeg = np.bincount(nbr, minlength=n).astype(np.int64)
    front = np.flatnonzero(indeg == 0)
    removed = 0
    while len(front):
        removed += len(front)
        lo = ptr[front]
        succ = nbr[concat_ranges(lo, ptr[front + 1] - lo)]
        if not len(succ):
            break
        u, c = np.unique(succ, return_counts=True)
        indeg[u] -= c
        front = u[indeg[u] == 0]
    return removed == n


def _chain_length(pointer: np.ndarray) -> np.ndarray:
    """For a forest given as pointer[i] = parent or -1: the number of steps to the root, by
    pointer jumping (about log2(depth) vectorised rounds; capped, so a cycle cannot hang)."""
    hop = np.asarray(pointer, dtype=np.int64).copy()
    dist = (hop >= 0).astype(np.int64)
    for _ in range(64):
        live = np.flatnonzero(hop >= 0)
        if not len(live):
            break
        nxt = hop[live]
        new_dist = dist[live] + dist[nxt]
        new_hop = hop[nxt]
        dist[live] = new_dist
        hop[live] = new_hop
    return dist


def _give_back() -> None:
    """Return the memory the allocators hold free to the system, between the phases of a
    cold open (what one phase freed is not what the next allocates: the peak of the next
    would count it twice). Best effort: a libc without ``malloc_trim`` keeps it.

    The allocators are otherwise left as they are (glibc's own mmap threshold, Arrow's
    mimalloc pool). The cold open used to fix glibc's mmap threshold at 1 MiB and move Arrow
    to the system pool, so that the memory freed by the thousands of per-batch arrays went
    back to the system (the 1M bundle's peak 0.89 -> 0.68 GiB). But then every array of a
    MiB or more was a fresh mapping, and every Parquet page decoded grew its buffers by
    copies onto fresh pages (the system allocator cannot grow aligned memory in place):
    640,000 page faults, 2.5 GB of new pages for a 0.66 GiB peak, 2.2 s of system time at
    1M. Now the arrays that live to the end are allocated once, whole
    (:meth:`TaskGraph._build_streamed`, :func:`_read_ids`), the per-batch ones are reused by
    the allocators (about 120,000 faults at 1M), and what they keep free is returned here."""
    try:
        pa.default_memory_pool().release_unused()
    except (pa.ArrowException, AttributeError):
        pass
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def _read_ids(snap, table: str, column: str) -> pa.Array:
    """An id column whole, as one string array. While every id has one width (GUIDs), each
    row group's bytes are copied straight into the column's final buffer, allocated once
    (the offsets are then arithmetic): a whole-column read grows its buffers by doubling
    (each step a copy onto fresh pages), shrinks them at the end (another) and combines its
    chunks (another): 1 GB of ids at 10M tasks written about four times, and their peak
    twice. Ids of several widths (retries, ``ID###n``) are gathered batch by batch and
    joined once."""
    n = snap.row_count(table)
    data: np.ndarray | None = None
    width = done = 0
    rest: list[pa.Array] = []  # once a batch is not of the one width: the arrays, joined at the end
    for _, batch in snap.iter_row_groups(table, [column]):
        for ch in batch.column(0).chunks:
            m = len(ch)
            if not m:
                continue
            if not rest:
                if ch.type == pa.string() and not ch.null_count:
                    off = np.frombuffer(ch.buffers()[1], dtype=np.int32)[ch.offset:ch.offset + m + 1]
                    if data is None:
                        width = int(off[1] - off[0])
                        if width and n * width < 2**31 - 1:
                            data = np.empty(n * width, dtype=np.uint8)
                    if data is not None and done + m <= n and \
                            int(off[-1] - off[0]) == m * width and (np.diff(off) == width).all():
                        raw = np.frombuffer(ch.buffers()[2], dtype=np.uint8)
                        data[done * width:(done + m) * width] = raw[off[0]:off[-1]]
                        done += m
                        continue
                if data is not None and done:  # the rows so far, as an array over their bytes
                    rest.append(_fixed_width(data[:done * width], done, width))
                data = None
            rest.append(ch)
    if not rest:
        return _fixed_width(data[:done * width], done, width) if data is not None \
            else pa.array([], pa.string())
    rest = [c if c.type == pa.string() else c.cast(pa.string()) for c in rest]
    return rest[0] if len(rest) == 1 else pa.concat_arrays(rest)


def _fixed_width(data: np.ndarray, n: int, width: int) -> pa.Array:
    """``n`` strings of ``width`` bytes each laid end to end in ``data``, as a string array
    over those bytes (no copy)."""
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _grown(a: np.ndarray, need: int) -> np.ndarray:
    """``a`` in a bigger array (at least ``need``, twice its size), its values kept."""
    out = np.empty(max(need, 2 * len(a)), dtype=a.dtype)
    out[:len(a)] = a
    return out


def _prefetched(batches):
    """The items of an iterator, the next one read in a thread while the caller works on
    the current one (Parquet decoding releases the GIL)."""
    it = iter(batches)
    with ThreadPoolExecutor(max_workers=1) as pool:
        nxt = pool.submit(next, it, None)
        while True:
            item = nxt.result()
            if item is None:
                return
            nxt = pool.submit(next, it, None)
            yield item


CACHE_VERSION = "graph-v5"  # v5: meta says whether the content was proven (v4: ids as two batches)


def _cache_path(snap) -> Path | None:
    """Where this bundle's index cache lives (:mod:`aksnap.analyzer.cache`): a directory of
    ``.npy`` arrays read memory-mapped, the ids in Arrow IPC and a ``meta.json``; None when
    caching is off (``AKSNAP_CACHE_DIR=""``). A cache is used only when the files are proven to
    be the content it was built for: by the checksum verification every answer waits for, or,
    with ``--no-verify``, by the files' identity (device, inode, size, mtime) recorded at build."""
    return cache_entry(snap.manifest, CACHE_VERSION)


def _write_npy(path: Path, a: np.ndarray) -> None:
    """``np.save`` through one raw ``write`` of the array's bytes (no intermediate copy)."""
    from numpy.lib import format as npy

    a = np.ascontiguousarray(a)
    with open(path, "wb", buffering=0) as f:
        npy.write_array_header_1_0(f, npy.header_data_from_array_1_0(a))
        view = memoryview(a.reshape(-1).view(np.uint8))
        while view:
            view = view[f.write(view):]


def _cache_trusted(snap, meta: dict) -> bool:
    """Whether a cache built for these checksums may answer for the files opened now: for a
    verified open, a cache built from content proven to be these checksums (the verification
    then proves the files opened now are that content); for --no-verify, the very files it
    was built from (device, inode, size, mtime)."""
    if snap.verified:
        return meta.get("proven") is True
    return meta.get("identity") == [list(i) for i in snap.bundle.identity()]


def index_cached(snap) -> bool:
    """Whether :meth:`TaskGraph.from_snapshot` would map this bundle's index from its cache
    (an open of a fraction of a second) rather than build it."""
    path = _cache_path(snap)
    if path is None:
        return False
    try:
        return _cache_trusted(snap, json.loads((path / "meta.json").read_text()))
    except (OSError, ValueError, AttributeError):
        return False


def _meta_proven(path: Path) -> bool:
    try:
        return json.loads((path / "meta.json").read_text()).get("proven") is True
    except (OSError, ValueError, AttributeError):
        return False


def _content_proven(snap) -> bool | None:
    """Whether the files the graph was just built from are proven to be the content their
    manifest's checksums name: True once the verification passed (waiting for it: a failure
    raises its BundleError, as the answer would); False for --no-verify; None when a check
    found problems (no cache is written from such files)."""
    if getattr(snap, "integrity_problems", None):
        return None
    deferred = getattr(snap, "_deferred_checks", None)
    if deferred is not None:
        deferred()  # the statuses and statistics: no cache from a bundle that fails them
    if not snap.verified:
        return False
    snap.wait_verified()
    return True


def _checks_beside(snap) -> threading.Thread | None:
    """The content checks every answer waits for (:meth:`Snapshot._deferred_checks`: the
    dictionary statistics and the statuses, DuckDB scans, seconds at 10M tasks), started in a
    thread beside the index build, which keeps one core busy, not two; None when there are
    none left. A failure is left for the caller's own call, which raises it."""
    if not getattr(snap, "_pending_checks", None) or not hasattr(snap, "_deferred_checks"):
        return None

    def run() -> None:
        try:
            snap._deferred_checks()
        except Exception:  # noqa: BLE001 - raised again by the call the answer makes
            pass
    t = threading.Thread(target=run, name="aksnap-checks", daemon=True)
    t.start()
    return t


def _missing_refs(T, R, dep_r, dep_rows, dep_vals, pay_r, payload, own_t, owner, creator_t,
                  t_creator) -> list[tuple[int, str]]:
    """(node, sentence) for every id referenced but absent; vectorised, strings only for misses."""
    out: list[tuple[int, str]] = []

    def named(values, positions):
        return _single(values).take(pa.array(positions)).to_pylist() if len(positions) else []

    miss = np.flatnonzero(dep_r < 0)
    for row, rid in zip(dep_rows[miss].tolist(), named(dep_vals, miss)):
        out.append((row, f"data dependency {rid} is not in the bundle"))
    pay_set = _np(pc.fill_null(pc.not_equal(payload, ""), False)).astype(bool)
    miss = np.flatnonzero((pay_r < 0) & pay_set)
    for row, rid in zip(miss.tolist(), named(payload, miss)):
        out.append((row, f"payload {rid} is not in the bundle"))
    own_set = _np(pc.fill_null(pc.not_equal(owner, ""), False)).astype(bool)
    miss = np.flatnonzero((own_t < 0) & own_set)
    for j, tid in zip(miss.tolist(), named(owner, miss)):
        out.append((T + j, f"owner (or creating) task {tid} is not in the bundle"))
    cre_set = _np(pc.fill_null(pc.not_equal(t_creator, ""), False)).astype(bool)
    miss = np.flatnonzero((creator_t < 0) & cre_set)
    for row, tid in zip(miss.tolist(), named(t_creator, miss)):
        out.append((row, f"created_by task {tid} (parent or previous attempt) is not in the bundle"))
    return out


@dataclass
class Edges:
    src: np.ndarray
    dst: np.ndarray


class TaskGraph:
    """See the module docstring. Built by :meth:`from_snapshot` (``Snapshot.graph``)."""

    TASK_COLUMNS = ["task_id", "session_id", "status", "payload_id", "data_dependencies",
                    "expected_output_ids",
                    "created_by", "initial_task_id"]
    RESULT_COLUMNS = ["result_id", "session_id", "status", "owner_task_id", "created_by"]
    DETAIL_COLUMNS = ["status_message", "output_error", "pod_hostname", "partition_id"]
    DICTIONARY_COLUMNS = ["session_id", "status"]  # few distinct values: read them encoded

    # Arrays worth caching beside nothing else: everything _build derives from the id columns.
    _CACHED = ("task_status", "result_status", "session_of", "src", "dst", "kind", "producer",
               "payload_of", "parent", "previous_attempt", "_missing_nodes",
               "expected_out_result", "expected_out_task", "result_creator",
               "in_ptr", "in_src", "out_ptr", "out_dst")
    CACHE_MIN_TASKS = 200_000  # smaller bundles build faster than a cache round trip pays off

    @classmethod
    def from_snapshot(cls, snap, progress=None) -> "TaskGraph":
        """The graph of ``snap``: from its index cache when there is one, else built by
        streaming the id columns (:meth:`_build_streamed`) and cached. ``progress``: called
        as ``progress(rows done, rows in all)`` while a cold open streams."""
        g = cls.__new__(cls)
        g._snap = snap
        cache = _cache_path(snap)
        if cache is not None and g._load_cache(cache):
            return g
        checks = _checks_beside(snap)
        try:
            g._build_streamed(snap, progress, checks)
        finally:
            if checks is not None:
                checks.join()  # a build that failed leaves the connection to the caller too
        g._finish()
        proven = _content_proven(snap) if cache is not None and g.n_tasks >= cls.CACHE_MIN_TASKS \
            else None
        if proven is not None and g._save_cache(cache, proven):
            # answer from the cache just written, memory-mapped, as every later open will:
            # the arrays built in memory are released before the answer is computed
            warm = cls.__new__(cls)
            warm._snap = snap
            if warm._load_cache(cache):
                if "_acyclic" in g.__dict__:
                    warm._acyclic = g._acyclic
                return warm
            g._take_back(cache)  # the cache written cannot be read: the built arrays answer
        if g.__dict__.get("_released"):  # neither read back: built again (never a half graph)
            g = cls.__new__(cls)
            g._snap = snap
            g._build_streamed(snap, progress)
            g._finish()
        return g

    def _take_back(self, where: Path) -> None:
        """Read back the arrays :meth:`_save_cache` released once written (from ``where``, the
        cache or its temporary directory); on failure they stay listed in ``_released``."""
        try:
            for k in list(self.__dict__.get("_released", ())):
                setattr(self, k, np.load(where / f"{k}.npy"))
                self._released.remove(k)
        except (OSError, ValueError):
            pass

    # -- the index cache: integer node indices computed once per bundle (content-addressed by
    # the manifest, which holds every table's SHA-256), so later opens skip the id joins ------

    def _save_cache(self, path: Path, proven: bool) -> bool:
        """Write the index arrays (computed once) so that later opens map them instead;
        whether the cache at ``path`` is there now (written by this process or another).
        ``proven``: the files were proven to be the manifest's content (see
        :func:`_content_proven`); only such a cache answers verified opens, and it replaces
        one that was not."""
        import shutil
        import tempfile

        tmp = None
        self._released: list[str] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
            self._missing_nodes = np.array([n for n, _ in self.missing_refs], dtype=np.int64)
            for k in self._CACHED:
                _write_npy(tmp / f"{k}.npy", getattr(self, k))
                if k in ("in_ptr", "in_src", "out_ptr", "out_dst"):
                    # derived from src and dst (recomputed on use): each CSR pair is dropped
                    # once written, so the second is never computed beside the first (at 10M
                    # tasks one pair is 0.5 GB); the answer reads them from the cache
                    self.__dict__.pop(k, None)
                elif k not in ("src", "dst"):
                    # written whole, so released: the CSR sorts below, the peak of a cold open,
                    # run beside src and dst only (0.9 GiB less at 10M tasks); the answer maps
                    # the cache, and a cache that fails is read back (:meth:`_take_back`)
                    self.__dict__.pop(k, None)
                    self._released.append(k)
            # the two id arrays as two record batches of one file: no 100 MB concatenation
            tids, rids = (a if a.type == pa.string() else a.cast(pa.string())
                          for a in (self.task_ids, self.result_ids))
            schema = pa.schema([("id", pa.string())])
            with pa.OSFile(str(tmp / "ids.arrow"), "wb") as f, pa.ipc.new_file(f, schema) as w:
                w.write_batch(pa.record_batch([tids], schema=schema))
                w.write_batch(pa.record_batch([rids], schema=schema))
            meta = {"n_tasks": self.n_tasks, "n_results": self.n_results,
                    "identity": [list(i) for i in self._snap.bundle.identity()],
                    "sessions": self.sessions.to_pylist(),
                    "acyclic": self.__dict__.get("_acyclic"),  # known only if computed
                    "missing_texts": [t for _, t in self.missing_refs], "proven": bool(proven)}
            (tmp / "meta.json").write_text(json.dumps(meta))
            if proven and path.is_dir() and not _meta_proven(path):
                # built by a --no-verify open: a verified open may not use it; ours replaces it
                old = Path(tempfile.mkdtemp(prefix=path.name + ".old-", dir=path.parent))
                try:
                    os.rename(path, old / "entry")
                except OSError:
                    pass
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.rename(tmp, path)
            except OSError:  # another process cached it first: theirs is as good
                self._take_back(tmp)
                shutil.rmtree(tmp, ignore_errors=True)
            return path.is_dir()
        except OSError:
            # a cache is an optimisation: a read-only home must not fail an analysis
            if tmp is not None:
                self._take_back(tmp)
                shutil.rmtree(tmp, ignore_errors=True)
            return False

    def _load_cache(self, path: Path) -> bool:
        try:
            meta = json.loads((path / "meta.json").read_text())
            if not _cache_trusted(self._snap, meta):
                return False
            # plain ndarray views of the maps: np.memmap's Python-level __getitem__ would make
            # every scalar access of a traversal step slow
            arrays = {k: np.load(path / f"{k}.npy", mmap_mode="r").view(np.ndarray)
                      for k in self._CACHED}
            reader = pa.ipc.open_file(pa.memory_map(str(path / "ids.arrow")))
            batches = [reader.get_batch(i).column(0) for i in range(reader.num_record_batches)]
        except (OSError, ValueError, KeyError, pa.ArrowException):
            return False
        T, R = meta["n_tasks"], meta["n_results"]
        if [len(b) for b in batches] != [T, R]:
            return False  # not this cache version's layout: rebuilt (and rewritten) instead
        for k, v in arrays.items():
            setattr(self, k, v)
        self.n_tasks, self.n_results, self.n = T, R, T + R
        self.task_ids, self.result_ids = batches
        self.sessions = pa.array(meta["sessions"], pa.string())
        self.missing_refs = list(zip(self._missing_nodes.tolist(), meta["missing_texts"]))
        self._acyclic = meta.get("acyclic")
        self._result_created_by = None
        self._finish()  # the spawn and retry links: derived on first use (:attr:`spawn`)
        return True

    @cached_property
    def spawn(self) -> Edges:
        """The spawn tree as edges (parent -> subtask), from :attr:`parent`."""
        sp = np.flatnonzero(self.parent >= 0)
        return Edges(self.parent[sp], sp)

    @cached_property
    def retry(self) -> Edges:
        """The retry chains as edges (attempt -> next attempt), from :attr:`previous_attempt`."""
        rt = np.flatnonzero(self.previous_attempt >= 0)
        return Edges(self.previous_attempt[rt], rt)

    # -- lazily loaded columns (timestamps, messages): not needed to build the graph ------------

    def _read(self, table: str, columns: list[str]) -> pa.Table:
        return self._snap.read_columns(table, columns)  # Snapshot: the only Parquet reader

    @cached_property
    def task_ts(self) -> Mapping[str, np.ndarray]:
        return _TimestampColumns(self._snap, "tasks", TASK_TS)

    @cached_property
    def result_ts(self) -> Mapping[str, np.ndarray]:
        return _TimestampColumns(self._snap, "results", RESULT_TS)

    @cached_property
    def details(self) -> pa.Table:
        """Messages, pod and partition of every task (row order), for the few rows shown."""
        return self._read("tasks", self.DETAIL_COLUMNS).combine_chunks()

    @cached_property
    def depth(self) -> np.ndarray:
        """Spawn depth of every task (0 = submitted by the client), by pointer jumping."""
        return _chain_length(self.parent)

    @cached_property
    def attempt(self) -> np.ndarray:
        """Attempt number of every task (1 = first try), by pointer jumping on retries."""
        return _chain_length(self.previous_attempt) + 1

    def depth_of(self, nodes: np.ndarray) -> np.ndarray:
        """``depth[nodes]`` for a few tasks, walking up from them only (a 10M-task session's
        whole :attr:`depth` is seconds of pointer jumping, for one answer's handful of rows)."""
        return self._chain_of(self.parent, "depth", nodes)

    def attempt_of(self, nodes: np.ndarray) -> np.ndarray:
        """``attempt[nodes]``, as :meth:`depth_of`."""
        return self._chain_of(self.previous_attempt, "attempt", nodes, plus=1)

    def _chain_of(self, pointer: np.ndarray, whole: str, nodes, plus: int = 0,
                  limit: int = 4096) -> np.ndarray:
        nodes = np.asarray(nodes, dtype=np.int64)
        if whole not in self.__dict__:
            cur, dist = nodes.copy(), np.zeros(len(nodes), dtype=np.int64)
            for _ in range(limit):
                up = pointer[cur]
                live = up >= 0
                if not live.any():
                    return dist + plus
                dist += live
                cur = np.where(live, up, cur)
        return np.asarray(getattr(self, whole))[nodes]  # deeper than ``limit`` (or a cycle)

    def _expected_outputs(self) -> tuple[np.ndarray, np.ndarray]:
        """(result index, task index) of every expected output, sorted by result: ownership
        history, needed by owner chains and checks only, so read on first use (and cached)."""
        outs = self._read("tasks", ["expected_output_ids"])["expected_output_ids"]
        rows = _np(pc.list_parent_indices(outs)).astype(np.int64)
        res = np_index(pc.index_in(pc.list_flatten(outs), value_set=self.result_ids))
        ok = res >= 0
        order = np.argsort(res[ok], kind="stable")
        return res[ok][order], rows[ok][order]

    def __getattr__(self, name: str):
        # Arrays derived on first use, then kept (and saved in the index cache): the
        # expected outputs, each result's creator, and the adjacency in CSR form.
        if name in ("expected_out_result", "expected_out_task"):
            self.expected_out_result, self.expected_out_task = self._expected_outputs()
        elif name == "result_creator":
            created_by = self.__dict__.get("_result_created_by")
            if created_by is None:
                created_by = self._read("results", ["created_by"])["created_by"]
            self.result_creator = np_index(pc.index_in(created_by, value_set=self.task_ids))
        elif name in ("in_ptr", "in_src"):
            self.in_ptr, self.in_src = _csr(self.dst, self.src, self.n)
        elif name in ("out_ptr", "out_dst"):
            self.out_ptr, self.out_dst = _csr(self.src, self.dst, self.n)
        else:
            raise AttributeError(name)
        return self.__dict__[name]

    # -- building --------------------------------------------------------------------------------

    #: what the cold open streams, beside the two id columns it reads whole
    TASK_STREAM = ["session_id", "status", "payload_id", "data_dependencies",
                   "created_by", "initial_task_id"]  # the expected outputs: a stream of their own
    RESULT_STREAM = ["session_id", "status", "owner_task_id", "created_by"]

    def _build_streamed(self, snap, progress=None, checks=None) -> None:
        """The index, streamed (the cold open). The two id columns are read whole (they are
        kept: the cache and every answer name nodes by them) and hashed once each
        (:class:`~aksnap.analyzer.idindex.IdIndex`); then the other id columns of the tasks and
        of the results are read row group by row group (the two tables side by side, in two
        threads), every reference mapped to a row number as it is read, and only the integers
        kept, written into arrays allocated once, whole. Memory: the ids, their two hash
        tables, the integer arrays and a batch of strings per table, never every id column
        whole. ``checks``: the thread running the snapshot's content checks beside the build
        (:func:`_checks_beside`), joined before the connection is needed. Array for array
        equal to :meth:`_build` over whole columns (tests/test_analyzer_index.py proves it)."""
        from aksnap.analyzer.idindex import IdIndex

        with ThreadPoolExecutor(max_workers=2) as pool:  # Arrow and numpy release the GIL
            tj = pool.submit(lambda: IdIndex(_read_ids(snap, "tasks", "task_id")))
            rj = pool.submit(lambda: IdIndex(_read_ids(snap, "results", "result_id")))
            tix, rix = tj.result(), rj.result()
            del tj, rj  # a finished future still holds its result: the hash tables (0.44 GB at 10M)
        self.task_ids, self.result_ids = tix.ids, rix.ids
        _give_back()
        T, R = len(tix.ids), len(rix.ids)
        self.n_tasks, self.n_results, self.n = T, R, T + R
        self._result_created_by = None
        # every array the stream fills is allocated once, whole, and each batch writes its
        # slice: no per-batch parts kept and joined at the end (a join is the parts and the
        # whole at once), nor long-lived small blocks pinning the heap. A list column's
        # elements are at most its Parquet leaf values (one per element or empty list): the
        # pages past the last element written are never touched, so never resident.
        # (the footer is not trusted beyond reason: an edited one saying 2**40 would be an
        # allocation error, not a sentence; past the cap, the arrays grow as they fill)
        cap = 8 * T + 65_536
        n_deps = min(max(snap.leaf_values("tasks", "data_dependencies"), 0), cap)
        n_outs = min(max(snap.leaf_values("tasks", "expected_output_ids"), 0), cap)
        session_of = np.empty(T + R, dtype=np.int32)
        task_status, result_status = np.empty(T, dtype=np.int16), np.empty(R, dtype=np.int16)
        dep_r, dep_rows = np.empty(n_deps, dtype=np.int64), np.empty(n_deps, dtype=np.int64)
        out_r, out_rows = np.empty(n_outs, dtype=np.int64), np.empty(n_outs, dtype=np.int64)
        pay_r, creator_t = np.empty(T, dtype=np.int64), np.empty(T, dtype=np.int64)
        is_retry, first_attempt = np.empty(T, dtype=bool), np.empty(T, dtype=np.int64)
        own_t, result_creator = np.empty(R, dtype=np.int64), np.empty(R, dtype=np.int64)
        total, done, nd, no = 2 * T + R, 0, 0, 0  # rows: the tasks twice (their outputs apart)

        lock = threading.Lock()

        def advance(n: int) -> None:
            nonlocal done
            with lock:  # both streams report; the bar is started once
                done += n
                if progress is not None:
                    progress(done, total)

        def session_codes(col, seen: list) -> np.ndarray:
            """Codes in ``seen[0]``, the sessions of one stream in order of first appearance."""
            vals = _dictionary_values(col)
            new = vals if not len(seen[0]) else \
                vals.filter(pc.invert(pc.is_in(vals, value_set=seen[0])))
            if len(new):
                seen[0] = pa.concat_arrays([seen[0], new.cast(pa.string())])
            return _codes(col, seen[0])

        task_names, result_names = pa.array(TASK_STATUSES), pa.array(RESULT_STATUSES)
        missing: dict[str, list] = {k: [] for k in ("miss_dep", "miss_pay", "miss_own", "miss_cre")}

        def misses(key: str, found: np.ndarray, values, rows: np.ndarray, text: str,
                   only_set: bool) -> None:
            """(node, sentence) of the references not found (strings read for misses only)."""
            miss = found < 0
            if only_set and miss.any():
                miss &= _np(pc.fill_null(pc.not_equal(values, ""), False)).astype(bool)
            at = np.flatnonzero(miss)
            if len(at):
                named = _single(values).take(pa.array(at)).to_pylist()
                missing[key].extend((int(r), text.format(v)) for r, v in zip(rows[at].tolist(), named))

        def stream_tasks() -> None:
            nonlocal nd, dep_r, dep_rows
            for r0, b in _prefetched(snap.iter_row_groups("tasks", self.TASK_STREAM,
                                                          dictionary=self.DICTIONARY_COLUMNS)):
                n = b.num_rows
                rows = slice(r0, r0 + n)
                session_of[rows] = session_codes(b["session_id"], t_sessions)
                task_status[rows] = _codes(b["status"], task_names)
                deps = _single(b["data_dependencies"])
                dep_vals = pc.list_flatten(deps)
                k = len(dep_vals)
                if nd + k > len(dep_r):  # more than the footer counts (never, but not trusted)
                    dep_r, dep_rows = _grown(dep_r, nd + k), _grown(dep_rows, nd + k)
                np.add(_np(pc.list_parent_indices(deps)), r0, out=dep_rows[nd:nd + k], casting="unsafe")
                dep_r[nd:nd + k] = rix.lookup(dep_vals)
                misses("miss_dep", dep_r[nd:nd + k], dep_vals, dep_rows[nd:nd + k],
                       "data dependency {} is not in the bundle", False)
                nd += k
                payload = _single(b["payload_id"])
                pay_r[rows] = rix.lookup(payload)
                misses("miss_pay", pay_r[rows], payload, np.arange(r0, r0 + n), "payload {} is not in the bundle", True)
                creator = _single(b["created_by"])
                creator_t[rows] = tix.lookup(creator)
                misses("miss_cre", creator_t[rows], creator, np.arange(r0, r0 + n),
                       "created_by task {} (parent or previous attempt) is not in the bundle", True)
                initial = _single(b["initial_task_id"])
                retry = is_retry[rows]
                retry[:] = _np(pc.fill_null(pc.and_(pc.not_equal(initial, self.task_ids.slice(r0, n)),
                                                    pc.not_equal(initial, "")), False))
                first = first_attempt[rows]
                first[:] = np.arange(r0, r0 + n)
                if retry.any():
                    at = np.flatnonzero(retry)
                    fa = tix.lookup(pc.filter(initial, pa.array(retry)))
                    fa[fa < 0] = at[fa < 0] + r0
                    first[at] = fa
                advance(n)

        def stream_outputs(stop: threading.Event) -> None:
            """The expected outputs, a stream of their own (the tasks' column read again, alone):
            run after the results, it gives the two threads about as much work each."""
            nonlocal no, out_r, out_rows
            for r0, b in _prefetched(snap.iter_row_groups("tasks", ["expected_output_ids"])):
                if stop.is_set():
                    return
                outs = _single(b["expected_output_ids"])
                out_vals = pc.list_flatten(outs)
                k = len(out_vals)
                if no + k > len(out_r):
                    out_r, out_rows = _grown(out_r, no + k), _grown(out_rows, no + k)
                np.add(_np(pc.list_parent_indices(outs)), r0, out=out_rows[no:no + k], casting="unsafe")
                out_r[no:no + k] = rix.lookup(out_vals)
                no += k
                advance(b.num_rows)

        def stream_results(stop: threading.Event) -> None:
            for r0, b in _prefetched(snap.iter_row_groups("results", self.RESULT_STREAM,
                                                          dictionary=self.DICTIONARY_COLUMNS)):
                if stop.is_set():
                    return
                n = b.num_rows
                rows = slice(r0, r0 + n)
                session_of[T + r0:T + r0 + n] = session_codes(b["session_id"], r_sessions)
                result_status[rows] = _codes(b["status"], result_names)
                created = _single(b["created_by"])
                owner = _single(b["owner_task_id"])
                owner = pc.if_else(pc.equal(pc.fill_null(owner, ""), ""), created, owner)
                creator = result_creator[rows]
                creator[:] = tix.lookup(created)
                # the owner is mostly the creator: look up only the rows where it is another task
                other = _np(pc.fill_null(pc.not_equal(owner, created), True)).astype(bool)
                own = own_t[rows]
                own[:] = creator
                if other.any():
                    own[other] = tix.lookup(pc.filter(owner, pa.array(other)))
                misses("miss_own", own, owner, np.arange(T + r0, T + r0 + n),
                       "owner (or creating) task {} is not in the bundle", True)
                advance(n)
            stream_outputs(stop)

        # the streams are independent (each reads its table and the hash tables, writes its
        # own rows): the results, then the tasks' expected outputs, are streamed in a thread
        # beside the rest of the tasks. Each numbers
        # the sessions it meets in order; the results' are renumbered after the tasks' below,
        # as one stream through both tables would have numbered them
        t_sessions, r_sessions = [pa.array([], pa.string())], [pa.array([], pa.string())]
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=1) as pool:
            results_done = pool.submit(stream_results, stop)
            try:
                stream_tasks()
            except BaseException:
                stop.set()  # the tasks' error is the one raised, as in one stream; the results
                wait([results_done])  # stream stops at its next batch
                raise
            results_done.result()
        sessions = t_sessions[0]
        if len(r_sessions[0]):
            extra = r_sessions[0] if not len(sessions) else \
                r_sessions[0].filter(pc.invert(pc.is_in(r_sessions[0], value_set=sessions)))
            sessions = pa.concat_arrays([sessions, extra]) if len(extra) else sessions
            renumber = np_index(pc.index_in(r_sessions[0], value_set=sessions)).astype(np.int32)
            codes = session_of[T:]
            known = codes >= 0
            codes[known] = renumber[codes[known]]
        del tix, rix  # the hash tables (0.4 GB at 10M): released before the edges are made
        if checks is not None:
            checks.join()  # the snapshot's connection is the build's again (_parents_from_lists)
        _give_back()

        self.sessions = sessions
        self.session_of = session_of
        self.task_status, self.result_status = task_status, result_status
        self.result_creator = result_creator
        out_r, out_rows = out_r[:no], out_rows[:no]
        ok = out_r >= 0
        order = np.argsort(out_r[ok], kind="stable")
        self.expected_out_result, self.expected_out_task = out_r[ok][order], out_rows[ok][order]
        del out_r, out_rows, ok, order
        self.missing_refs = missing["miss_dep"] + missing["miss_pay"] + missing["miss_own"] + missing["miss_cre"]
        refs = dict(dep_r=dep_r[:nd], dep_rows=dep_rows[:nd], pay_r=pay_r, own_t=own_t,
                    creator_t=creator_t, is_retry=is_retry, first_attempt=first_attempt)
        del dep_r, dep_rows, pay_r, own_t, creator_t, is_retry, first_attempt
        self._edges(refs)  # takes them: each is released as soon as it is used
        _give_back()

    def _build(self, tasks: pa.Table, results: pa.Table) -> None:
        """The index from whole columns in memory: the cold open before issue 21, kept as
        the reference :meth:`_build_streamed` is proven equal to (tests/test_graph.py)."""
        T, R = tasks.num_rows, results.num_rows
        self.n_tasks, self.n_results, self.n = T, R, T + R
        self.task_ids = _single(tasks["task_id"])
        self.result_ids = _single(results["result_id"])
        self._result_created_by = results["created_by"]

        t_sess, r_sess = tasks["session_id"], results["session_id"]
        self.sessions = pc.unique(pa.concat_arrays(
            [_dictionary_values(t_sess), _dictionary_values(r_sess)]))
        self.session_of = np.concatenate([_codes(t_sess, self.sessions),
                                          _codes(r_sess, self.sessions)]).astype(np.int32)
        self.task_status = _codes(tasks["status"], pa.array(TASK_STATUSES)).astype(np.int16)
        self.result_status = _codes(results["status"], pa.array(RESULT_STATUSES)).astype(np.int16)

        # --- result ids -> indices: one hash of the result ids, probed once ---
        deps = tasks["data_dependencies"]
        dep_rows = _np(pc.list_parent_indices(deps)).astype(np.int64)
        dep_vals = pc.list_flatten(deps)
        payload = tasks["payload_id"]
        outs = tasks["expected_output_ids"]
        out_vals = pc.list_flatten(outs)
        # every result-id lookup in one probe of one hash table: dependencies, payloads, and
        # the expected outputs (ownership history, for owner chains and checks)
        res_query = pa.chunked_array(_chunks(dep_vals) + _chunks(payload) + _chunks(out_vals),
                                     type=pa.string())

        # --- task ids -> indices: one hash of the task ids, probed once ---
        # Producer: owner_task_id, else created_by. Spawn parent and previous attempt come from
        # the task's created_by: Core sets it to the submitting task, or for a retry to the
        # previous attempt (a retry is told apart by initial_task_id != task_id); a retry keeps
        # its first attempt's parents. This avoids reading the full ancestry lists, the
        # biggest column of a bundle. `aksnap check` reports any task where created_by and
        # parent_task_ids[-1] disagree.
        owner = results["owner_task_id"]
        owner = pc.if_else(pc.equal(pc.fill_null(owner, ""), ""), results["created_by"], owner)
        t_creator = tasks["created_by"]
        # every task-id lookup in one probe: producers, creators of tasks and of results
        task_query = pa.chunked_array(_chunks(owner) + _chunks(t_creator)
                                      + _chunks(results["created_by"]), type=pa.string())
        # The two hash joins are independent and Arrow releases the GIL: run them side by side.
        with ThreadPoolExecutor(max_workers=2) as pool:
            res_job = pool.submit(lambda: np_index(pc.index_in(res_query, value_set=self.result_ids)))
            task_job = pool.submit(lambda: np_index(pc.index_in(task_query, value_set=self.task_ids)))
            res_idx, task_idx = res_job.result(), task_job.result()
        nd = len(dep_vals)
        dep_r, pay_r, out_r = res_idx[:nd], res_idx[nd:nd + T], res_idx[nd + T:]
        own_t, creator_t = task_idx[:R], task_idx[R:R + T]
        self.result_creator = task_idx[R + T:]
        out_rows = _np(pc.list_parent_indices(outs)).astype(np.int64)
        ok = out_r >= 0
        order = np.argsort(out_r[ok], kind="stable")
        self.expected_out_result, self.expected_out_task = out_r[ok][order], out_rows[ok][order]
        initial = tasks["initial_task_id"]
        is_retry = _np(pc.fill_null(pc.and_(pc.not_equal(initial, tasks["task_id"]),
                                            pc.not_equal(initial, "")), False)).astype(bool)
        first_attempt = np.arange(T)
        if is_retry.any():
            rows = np.flatnonzero(is_retry)
            fa = np_index(pc.index_in(pc.filter(initial, pa.array(is_retry)),
                                       value_set=self.task_ids))
            fa[fa < 0] = rows[fa < 0]
            first_attempt[rows] = fa

        # --- references to ids the bundle does not hold (reported by `aksnap check`) ---
        self.missing_refs = _missing_refs(T, R, dep_r, dep_rows, dep_vals, pay_r, payload,
                                          own_t, owner, creator_t, t_creator)

        self._edges(dict(dep_r=dep_r, dep_rows=dep_rows, pay_r=pay_r, own_t=own_t,
                         creator_t=creator_t, is_retry=is_retry, first_attempt=first_attempt))

    def _edges(self, refs: dict) -> None:
        """The edges, the producers and the spawn and retry links, from the row numbers
        (``refs``: dep_r, dep_rows, pay_r, own_t, creator_t, is_retry, first_attempt, taken
        out of the dict as they are used, so a caller that keeps no other reference frees
        each one as early as it can)."""
        T = self.n_tasks
        dep_r, dep_rows = refs.pop("dep_r"), refs.pop("dep_rows")
        pay_r, own_t = refs.pop("pay_r"), refs.pop("own_t")
        ok = dep_r >= 0
        pay_rows = np.flatnonzero(pay_r >= 0)
        prod_rows = np.flatnonzero(own_t >= 0)
        # the edge arrays written in place, part by part: no per-kind copies joined at the end
        nd, npay, nprod = int(ok.sum()), len(pay_rows), len(prod_rows)
        e = nd + npay + nprod
        self.src, self.dst = np.empty(e, dtype=np.int64), np.empty(e, dtype=np.int64)
        np.compress(ok, dep_r, out=self.src[:nd])
        self.src[:nd] += T
        np.compress(ok, dep_rows, out=self.dst[:nd])
        del ok, dep_r, dep_rows
        np.take(pay_r, pay_rows, out=self.src[nd:nd + npay])
        self.src[nd:nd + npay] += T
        self.dst[nd:nd + npay] = pay_rows
        np.take(own_t, prod_rows, out=self.src[nd + npay:])
        np.add(prod_rows, T, out=self.dst[nd + npay:])
        del pay_rows, prod_rows
        self.kind = np.empty(e, dtype=np.int8)
        self.kind[:nd], self.kind[nd:nd + npay], self.kind[nd + npay:] = \
            KIND_DATA, KIND_PAYLOAD, KIND_PRODUCES
        self.producer = own_t  # task index producing result j, or -1 (the client)
        self.payload_of = pay_r  # result index of task i's payload, or -1
        creator_t, is_retry = refs.pop("creator_t"), refs.pop("is_retry")
        first_attempt = refs.pop("first_attempt")
        self.previous_attempt = np.where(is_retry, creator_t, -1)
        spawned_by = np.where(is_retry, -1, creator_t)
        self.parent = spawned_by[first_attempt]  # a retry keeps its first attempt's parent
        if T and not (creator_t >= 0).any():
            # No task names its creator (a Core too old to fill created_by, or a bundle that
            # dropped it): fall back to the tails of the id lists, whatever they cost to read.
            self._parents_from_lists(T)
        sp = np.flatnonzero(self.parent >= 0)
        self.spawn = Edges(self.parent[sp], sp)
        rt = np.flatnonzero(self.previous_attempt >= 0)
        self.retry = Edges(self.previous_attempt[rt], rt)


    def _parents_from_lists(self, T: int) -> None:
        tails = self._snap.con.sql(
            "SELECT parent_task_ids[-1] AS parent, retry_of_ids[-1] AS previous FROM tasks"
        ).to_arrow_table()
        parent, previous = tails["parent"], tails["previous"]
        idx = np_index(pc.index_in(pa.chunked_array(
            _chunks(parent) + _chunks(previous), type=pa.string()), value_set=self.task_ids))
        self.parent, self.previous_attempt = idx[:T], idx[T:]

    def _finish(self) -> None:
        """Node state and the rustworkx graph, from the index arrays."""
        R = self.n_results
        # --- node state ---
        self.complete = np.concatenate([self.task_status == TASK_CODE["COMPLETED"],
                                        self.result_status == RESULT_CODE["COMPLETED"]])
        self.bad = np.concatenate([np.isin(self.task_status, [TASK_CODE[s] for s in TASK_BAD]),
                                   np.isin(self.result_status, [RESULT_CODE[s] for s in RESULT_BAD])])
        self.retried = np.concatenate([self.task_status == TASK_CODE["RETRIED"],
                                       np.zeros(R, dtype=bool)])


    @cached_property
    def dag(self) -> rx.PyDiGraph:
        """The data DAG in rustworkx, built on first use (one extend_from_edge_list call) by the
        few analyses that need its algorithms (cycles, shortest propagation paths). Lineage,
        ancestors, descendants and frontiers walk the CSR arrays instead: at a million tasks
        building this graph alone costs more than a whole answer (docs/analyzer.md)."""
        was_enabled = gc.isenabled()
        gc.disable()  # millions of small tuples: the cyclic GC would rescan them for nothing
        try:
            pairs = np.empty(len(self.src), dtype=[("s", np.int64), ("d", np.int64)])
            pairs["s"], pairs["d"] = self.src, self.dst
            dag = rx.PyDiGraph(multigraph=True, node_count_hint=self.n,
                               edge_count_hint=len(self.src))
            dag.add_nodes_from([None] * self.n)
            dag.extend_from_edge_list(pairs.tolist())
            del pairs
        finally:
            if was_enabled:
                gc.enable()
        return dag

    # -- lookups ---------------------------------------------------------------------------------

    def is_task(self, node: int | np.ndarray):
        return node < self.n_tasks

    def task_index(self, task_id: str) -> int:
        return self._row_of(self.task_ids, "t", task_id)

    def result_index(self, result_id: str) -> int:
        return self._row_of(self.result_ids, "r", result_id)

    def _row_of(self, ids: pa.Array, kind: str, value: str) -> int:
        """The first row of ``ids`` equal to ``value`` (-1: none), remembered for the few ids an
        answer asks twice (an id resolved, then its node found: 0.2 s each at 10M tasks)."""
        memo = self.__dict__.setdefault("_row_memo", {})
        key = (kind, value)
        if key not in memo:
            hit = np.flatnonzero(pc.equal(ids, value).to_numpy(zero_copy_only=False))
            memo[key] = int(hit[0]) if len(hit) else -1
        return memo[key]

    def node_id(self, node: int) -> str:
        return (self.task_ids[node] if node < self.n_tasks
                else self.result_ids[node - self.n_tasks]).as_py()

    def node_ids(self, nodes: np.ndarray) -> list[str]:
        nodes = np.asarray(nodes, dtype=np.int64)
        t = nodes < self.n_tasks
        out: list[str | None] = [None] * len(nodes)
        tid = self.task_ids.take(pa.array(nodes[t])).to_pylist()
        rid = self.result_ids.take(pa.array(nodes[~t] - self.n_tasks)).to_pylist()
        for pos, v in zip(np.flatnonzero(t).tolist(), tid):
            out[pos] = v
        for pos, v in zip(np.flatnonzero(~t).tolist(), rid):
            out[pos] = v
        return out  # type: ignore[return-value]

    def status_name(self, node: int) -> str:
        if node < self.n_tasks:
            c = self.task_status[node]
            return TASK_STATUSES[c] if c >= 0 else "UNKNOWN"
        c = self.result_status[node - self.n_tasks]
        return RESULT_STATUSES[c] if c >= 0 else "UNKNOWN"

    def session_id(self, node: int) -> str:
        return self.sessions[int(self.session_of[node])].as_py()

    def session_nodes(self, session_id: str | None) -> np.ndarray:
        """A boolean mask of the nodes of one session (all nodes for None)."""
        if session_id is None:
            return np.ones(self.n, dtype=bool)
        hit = np.flatnonzero(pc.equal(self.sessions, session_id).to_numpy(zero_copy_only=False))
        if not len(hit):
            return np.zeros(self.n, dtype=bool)
        return self.session_of == hit[0]

    def ts(self, node: int, column: str) -> int:
        """A timestamp of a node in µs since the epoch, or NA."""
        if node < self.n_tasks:
            arr = self.task_ts.get(column)
            return int(arr[node]) if arr is not None else NA
        arr = self.result_ts.get(column)
        return int(arr[node - self.n_tasks]) if arr is not None else NA

    # -- traversals ------------------------------------------------------------------------------

    def ancestors(self, node: int | np.ndarray) -> np.ndarray:
        """Every node upstream of ``node`` (or of any of several nodes) in the data DAG
        (sorted, excluding the starting nodes unless a cycle leads back to them)."""
        return _reach(self.in_ptr, self.in_src, self.n, node)

    def ancestors_mask(self, node: int | np.ndarray) -> np.ndarray:
        """:meth:`ancestors` as a boolean mask of every node (no list of a lineage that may be
        the whole session: what counts, frontiers and origins read)."""
        return _reach_mask(self.in_ptr, self.in_src, self.n, node)

    def descendants(self, node: int | np.ndarray) -> np.ndarray:
        return _reach(self.out_ptr, self.out_dst, self.n, node)

    # -- vectorised, over many nodes at once -----------------------------------------------------

    def node_id_array(self, nodes: np.ndarray) -> pa.Array:
        """The ids of ``nodes`` (in that order) as one Arrow string array."""
        nodes = np.asarray(nodes, dtype=np.int64)
        t = nodes < self.n_tasks
        pos = np.empty(len(nodes), dtype=np.int64)
        pos[t] = np.arange(int(t.sum()))
        pos[~t] = int(t.sum()) + np.arange(int((~t).sum()))
        both = pa.concat_arrays([_single(self.task_ids.take(pa.array(nodes[t]))).cast(pa.string()),
                                 _single(self.result_ids.take(pa.array(nodes[~t] - self.n_tasks))).cast(pa.string())])
        return both.take(pa.array(pos))

    def id_rank(self, nodes: np.ndarray) -> np.ndarray:
        """Rank of each node's id among ``nodes`` (ties: the same rank), for id tie-breaks."""
        if not len(nodes):
            return np.zeros(0, dtype=np.int64)
        return _np(pc.rank(self.node_id_array(nodes), sort_keys="ascending",
                           tiebreaker="min")).astype(np.int64)

    def entered_status_at_many(self, nodes: np.ndarray) -> np.ndarray:
        """When each node entered its current status (µs since epoch, NA when unknown): a
        task at its status' timestamp (``TASK_STATUS_ENTERED``; ``ended_at`` for the others),
        else its latest timestamp; a result at ``completed_at`` when COMPLETED, else (or when
        that is missing) ``created_at``."""
        nodes = np.asarray(nodes, dtype=np.int64)
        out = np.full(len(nodes), NA, dtype=np.int64)
        t = nodes < self.n_tasks
        tn = nodes[t]
        if len(tn):
            ts = self.task_ts
            latest = np.max(np.stack([ts[c][tn] for c in TASK_TS]), axis=0)
            v = ts["ended_at"][tn].copy()
            st = self.task_status[tn]
            for status, col in _ENTERED.items():
                sel = st == TASK_CODE[status]
                v[sel] = ts[col][tn[sel]]
            out[t] = np.where(v != NA, v, latest)
        rn = nodes[~t] - self.n_tasks
        if len(rn):
            rts = self.result_ts
            done = self.result_status[rn] == RESULT_CODE["COMPLETED"]
            v = np.where(done, rts["completed_at"][rn], rts["created_at"][rn])
            out[~t] = np.where(v != NA, v, rts["created_at"][rn])
        return out

    @cached_property
    def out_degree(self) -> np.ndarray:
        return np.bincount(self.src, minlength=self.n).astype(np.int64)

    @cached_property
    def complete_inputs(self) -> np.ndarray:
        """How many of each node's input edges come from a complete node."""
        return np.bincount(self.dst, weights=self.complete[self.src], minlength=self.n).astype(np.int64)

    @cached_property
    def single_successor(self) -> np.ndarray:
        """The successor of each node with exactly one out-edge in the data DAG, else -1."""
        succ = np.full(self.n, -1, dtype=np.int64)
        e = (self.out_degree == 1)[self.src]
        succ[self.src[e]] = self.dst[e]
        return succ

    @staticmethod
    def _jump(succ: np.ndarray, weights: np.ndarray, rounds: int = 64):
        """Pointer jumping along ``succ`` (-1 = stop), about log2(length) vectorised rounds:
        the end of each node's chain and the sums of ``weights`` (shape (n, k)) over the nodes
        after it up to and including the end. Nodes still moving after ``rounds`` rounds are
        flagged (only a cycle does that)."""
        nxt = succ.copy()
        end = np.where(succ >= 0, succ, np.arange(len(succ)))
        acc = np.zeros_like(weights)
        s = succ >= 0
        acc[s] = weights[succ[s]]
        live = np.flatnonzero(s)
        for _ in range(rounds):
            if not len(live):
                break
            j = nxt[live]
            acc[live] += acc[j]
            end[live] = end[j]
            nxt[live] = nxt[j]
            live = live[nxt[live] >= 0]
        stuck = np.zeros(len(succ), dtype=bool)
        stuck[live] = True
        return end, acc, stuck

    def downstream_sums(self, sources: np.ndarray, weights: np.ndarray,
                        max_traversals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For each source node, the sums (per column of ``weights``, shape (n, k)) over every
        node downstream of it in the data DAG, exactly, without one traversal per source.

        A node with a single out-edge has as descendants its successor and the successor's
        descendants (disjoint, in a DAG), so chains of such nodes are summed by weighted pointer
        jumping; one traversal runs per distinct chain end with several out-edges (where paths
        fan out and may meet again). With ``max_traversals``, chain ends beyond that many, in
        the order of ``sources``, are not traversed and their sources are not exact. A graph
        with a cycle is walked from each source. Returns (sums (len(sources), k), exact)."""
        sources = np.asarray(sources, dtype=np.int64)
        w = np.asarray(weights, dtype=np.int64)
        w = w[:, None] if w.ndim == 1 else w
        k = w.shape[1]
        if not len(sources):  # nothing blocks: no pointer jumping over the whole graph
            return np.zeros((0, k), dtype=np.int64), np.ones(0, dtype=bool)
        acyclic = self.is_dag()
        if acyclic:
            end, acc, _ = self._jump(self.single_successor, w)
            out, ends = acc[sources], end[sources]
        else:
            out, ends = np.zeros((len(sources), k), dtype=np.int64), sources
        exact = np.ones(len(sources), dtype=bool)
        need = np.flatnonzero(self.out_degree[ends] >= (2 if acyclic else 1))
        if len(need):
            _, first = np.unique(ends[need], return_index=True)
            keep = np.sort(first)  # positions (in need) of each anchor's first source
            if max_traversals is not None:
                keep = keep[:max_traversals]
            walk = ends[need][keep]
            sums = np.zeros((len(walk) + 1, k), dtype=np.int64)  # last row: not walked
            scratch = _Scratch(self.n)
            for i, a in enumerate(walk.tolist()):
                sums[i] = w[_reach(self.out_ptr, self.out_dst, self.n, a, scratch)].sum(axis=0)
            srt = np.argsort(walk)
            pos = np.searchsorted(walk[srt], ends[need])
            pos = np.minimum(pos, max(len(walk) - 1, 0))
            hit = (walk[srt][pos] == ends[need]) if len(walk) else np.zeros(len(need), dtype=bool)
            row = np.where(hit, srt[pos] if len(walk) else 0, len(walk))
            out[need] += sums[row]
            exact[need[~hit]] = False
        return out, exact

    def inputs(self, node: int) -> list[int]:
        return sorted(self.in_src[self.in_ptr[node]:self.in_ptr[node + 1]].tolist())

    def outputs(self, node: int) -> list[int]:
        return sorted(self.out_dst[self.out_ptr[node]:self.out_ptr[node + 1]].tolist())

    SMALL_SCOPE = 50_000  # below this many nodes, walk their in-edges instead of all edges

    def _scope(self, nodes, mask) -> tuple[np.ndarray | None, np.ndarray]:
        if mask is None:
            if nodes is None:
                return None, np.ones(self.n, dtype=bool)
            nodes = np.asarray(nodes, dtype=np.int64)
            if len(nodes) < self.SMALL_SCOPE:
                return nodes, None
            mask = np.zeros(self.n, dtype=bool)
            mask[nodes] = True
        return None, mask

    def _select(self, nodes, mask, candidate: np.ndarray, spoils: np.ndarray,
                csr: bool | None = None) -> np.ndarray:
        """Candidates (a node mask) having no input marked in ``spoils``, sorted.

        The inputs are read along the in-edge CSR, for the candidates only (a lineage has
        read that CSR already; a complete session has no candidate at all), unless the scope
        is a mask and ``csr`` is not asked (sessions: analyze, blockers), which reads the
        edge list those answers read anyway (mapping the CSR as well would add its pages)."""
        via_csr = (mask is None) if csr is None else csr
        small, mask = self._scope(nodes, mask)
        if small is not None:
            small = np.unique(small)
            return self._unspoiled(small[candidate[small]], spoils)
        if via_csr:
            return self._unspoiled(np.flatnonzero(mask & candidate), spoils)
        cand = mask & candidate
        if not cand.any():  # a complete session: no gather over every edge (0.4 s at 10M tasks)
            return np.zeros(0, dtype=np.int64)
        edge_in = cand[self.dst]
        spoiled = np.zeros(self.n, dtype=bool)
        spoiled[self.dst[edge_in & spoils[self.src]]] = True
        return np.flatnonzero(cand & ~spoiled)

    def _unspoiled(self, cand: np.ndarray, spoils: np.ndarray) -> np.ndarray:
        """The nodes of ``cand`` (sorted) none of whose inputs is marked in ``spoils``: their
        in-edges gathered from the CSR, the spoiled ones found and traced back to their node
        by a binary search over the running counts (work in the candidates' in-edges)."""
        cand = np.asarray(cand, dtype=np.int64)
        if not len(cand):
            return cand
        lo = self.in_ptr[cand]
        cnt = self.in_ptr[cand + 1] - lo
        bad = np.flatnonzero(spoils[self.in_src[concat_ranges(lo, cnt)]])
        if not len(bad):
            return cand
        ends = np.cumsum(cnt)
        spoiled = np.zeros(len(cand), dtype=bool)
        spoiled[np.searchsorted(ends, bad, side="right")] = True
        return cand[~spoiled]

    def frontier(self, nodes: np.ndarray | None = None, mask: np.ndarray | None = None,
                 csr: bool | None = None) -> np.ndarray:
        """The blocking frontier of a node set: its incomplete nodes whose own inputs are all
        complete. RETRIED attempts are left out: their outputs moved to the next attempt.
        ``csr``: read the inputs along the in-edge CSR even for a ``mask`` (a lineage)."""
        return self._select(nodes, mask, ~self.complete & ~self.retried, ~self.complete, csr)

    def origins(self, nodes: np.ndarray | None = None, mask: np.ndarray | None = None,
                csr: bool | None = None) -> np.ndarray:
        """Bad nodes (failed, timed-out, cancelled tasks; aborted, deleted results) with no bad
        input: where a failure started, before it propagated downstream (``csr``: as
        :meth:`frontier`)."""
        return self._select(nodes, mask, self.bad, self.bad, csr)

    def expected_by(self, result_node: int) -> np.ndarray:
        """Tasks that list the result among their expected outputs (ownership history)."""
        j = result_node - self.n_tasks
        lo = np.searchsorted(self.expected_out_result, j, side="left")
        hi = np.searchsorted(self.expected_out_result, j, side="right")
        return self.expected_out_task[lo:hi]

    def is_dag(self) -> bool:
        acyclic = self.__dict__.get("_acyclic")
        if acyclic is None:
            if self.n <= 1_000_000:  # small: rustworkx's check, graph build included, is cheap
                acyclic = bool(rx.is_directed_acyclic_graph(self.dag))
            else:  # large and, in ArmoniK, shallow: peel sources level by level in numpy
                acyclic = _peels_completely(self.out_ptr, self.out_dst, self.n)
            self._acyclic = acyclic
        return acyclic

    def find_cycle(self) -> list[int]:
        """Nodes of one cycle in the data DAG (empty when acyclic)."""
        if self.is_dag():
            return []
        for comp in rx.strongly_connected_components(self.dag):
            if len(comp) > 1:
                return sorted(comp)
        return []

    def subgraph_edges(self, nodes: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mask = np.zeros(self.n, dtype=bool)
        mask[np.fromiter(nodes, dtype=np.int64)] = True
        e = mask[self.src] & mask[self.dst]
        return self.src[e], self.dst[e], self.kind[e]
