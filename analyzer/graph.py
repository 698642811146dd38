"""The task/data graph of a bundle, built once from Arrow arrays, vectorised.

Node index = row index: task ``i`` of ``tasks.parquet`` is node ``i``; result ``j`` of
``results.parquet`` is node ``n_tasks + j``. Ids are mapped to indices with
``pyarrow.compute.index_in`` over ``list_flatten`` / ``list_parent_indices``, and every edge goes
into the rustworkx graph in one ``extend_from_edge_list`` call; no Python loop runs per row.

The data DAG (:attr:`TaskGraph.dag`) holds
  result -> task   the task reads the result (data dependency or payload)
  task -> result   the task produces the result: ``owner_task_id`` (after ownership transfers
                   and retries), else ``created_by``; a result with neither comes from the client.
The spawn tree (parent -> subtask, from ``parent_task_ids[-1]`` when it is a task) and the retry
chains (attempt -> next attempt) are kept apart as index arrays: they explain *when* a task came
to exist, not what it reads.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import rustworkx as rx

from aksnap.bundle import RESULT_STATUSES, TASK_STATUSES

NA = np.iinfo(np.int64).min  # a missing timestamp, in the int64 microsecond arrays

TASK_TS = ("created_at", "submitted_at", "received_at", "acquired_at", "fetched_at",
           "started_at", "processed_at", "ended_at")
RESULT_TS = ("created_at", "completed_at")

TASK_CODE = {s: i for i, s in enumerate(TASK_STATUSES)}
RESULT_CODE = {s: i for i, s in enumerate(RESULT_STATUSES)}

# A task or result is *bad* when it will never deliver: the origin of a failure, or its
# propagation. RETRIED is not bad: the next attempt carries on.
TASK_BAD = ("ERROR", "TIMEOUT", "CANCELLED", "CANCELLING")
RESULT_BAD = ("ABORTED", "DELETED", "NOTFOUND")
# Which timestamp a task entered its current status at (for "how long in this status").
_ENTERED = {
    "CREATING": "created_at", "PENDING": "created_at", "PAUSED": "created_at",
    "SUBMITTED": "submitted_at", "DISPATCHED": "acquired_at", "PROCESSING": "started_at",
}

KIND_DATA, KIND_PAYLOAD, KIND_PRODUCES = 0, 1, 2
KIND_NAMES = ("data", "payload", "produces")


def _single(a: pa.ChunkedArray | pa.Array) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _np_index(a: pa.Array) -> np.ndarray:
    """index_in output (int32 with nulls) -> int64 numpy with -1 for 'not found'."""
    return pc.fill_null(a, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _last_of_lists(lists: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(row indices having a non-empty list, the last element of each of those lists)."""
    lists = _single(lists)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(lengths > 0)
    offsets = lists.offsets.to_numpy()
    # offsets are relative to lists.values (combine_chunks keeps a shared value buffer)
    last = offsets[1:][rows] - 1
    return rows, lists.values.take(pa.array(last))


def _ts_micro(col: pa.ChunkedArray) -> np.ndarray:
    c = _single(col).cast(pa.int64())
    return pc.fill_null(c, NA).to_numpy(zero_copy_only=False)


def _codes(col: pa.ChunkedArray, names: tuple[str, ...]) -> np.ndarray:
    return _np_index(pc.index_in(_single(col), value_set=pa.array(names))).astype(np.int16)


@dataclass
class Edges:
    src: np.ndarray
    dst: np.ndarray


class TaskGraph:
    """See the module docstring. Built by :meth:`from_tables` (or ``Snapshot.graph``)."""

    TASK_COLUMNS = ["task_id", "session_id", "status", "payload_id", "parent_task_ids",
                    "data_dependencies", "expected_output_ids", "retry_of_ids",
                    *TASK_TS]
    RESULT_COLUMNS = ["result_id", "session_id", "status", "owner_task_id", "created_by",
                      *RESULT_TS]

    @classmethod
    def from_snapshot(cls, snap) -> "TaskGraph":
        return cls.from_tables(snap.read_columns("tasks", cls.TASK_COLUMNS),
                               snap.read_columns("results", cls.RESULT_COLUMNS))

    @classmethod
    def from_tables(cls, tasks: pa.Table, results: pa.Table) -> "TaskGraph":
        g = cls.__new__(cls)
        g._build(tasks, results)
        return g

    # -- building --------------------------------------------------------------------------------

    def _build(self, tasks: pa.Table, results: pa.Table) -> None:
        T, R = tasks.num_rows, results.num_rows
        self.n_tasks, self.n_results, self.n = T, R, T + R
        self.task_ids = _single(tasks["task_id"])
        self.result_ids = _single(results["result_id"])

        sessions = pc.unique(pa.concat_arrays([_single(tasks["session_id"]),
                                               _single(results["session_id"])]))
        self.sessions = sessions
        self.session_of = np.concatenate([
            _np_index(pc.index_in(tasks["session_id"], value_set=sessions)),
            _np_index(pc.index_in(results["session_id"], value_set=sessions))]).astype(np.int32)

        self.task_status = _codes(tasks["status"], TASK_STATUSES)
        self.result_status = _codes(results["status"], RESULT_STATUSES)
        self.task_ts = {c: _ts_micro(tasks[c]) for c in TASK_TS}
        self.result_ts = {c: _ts_micro(results[c]) for c in RESULT_TS}

        # --- ids -> indices, one hash build per side ---
        deps = _single(tasks["data_dependencies"])
        dep_rows = _single(pc.list_parent_indices(deps)).to_numpy().astype(np.int64)
        dep_vals = _single(pc.list_flatten(deps))
        payload = _single(tasks["payload_id"])
        outs = _single(tasks["expected_output_ids"])
        out_rows = _single(pc.list_parent_indices(outs)).to_numpy().astype(np.int64)
        out_vals = _single(pc.list_flatten(outs))
        res_query = pa.concat_arrays([dep_vals.cast(pa.string()), payload.cast(pa.string()),
                                      out_vals.cast(pa.string())])
        res_idx = _np_index(pc.index_in(res_query, value_set=self.result_ids))
        nd, npay = len(dep_vals), len(payload)
        dep_r, pay_r, out_r = res_idx[:nd], res_idx[nd:nd + npay], res_idx[nd + npay:]

        owner = _single(results["owner_task_id"])
        owner = pc.if_else(pc.equal(pc.fill_null(owner, ""), ""),
                           _single(results["created_by"]), owner)
        par_rows, par_vals = _last_of_lists(tasks["parent_task_ids"])
        ret_rows, ret_vals = _last_of_lists(tasks["retry_of_ids"])
        task_query = pa.concat_arrays([owner.cast(pa.string()), par_vals.cast(pa.string()),
                                       ret_vals.cast(pa.string())])
        task_idx = _np_index(pc.index_in(task_query, value_set=self.task_ids))
        own_t = task_idx[:R]
        par_t = task_idx[R:R + len(par_rows)]
        ret_t = task_idx[R + len(par_rows):]

        # --- edges ---
        ok = dep_r >= 0
        self.missing_dependencies = int((~ok).sum())
        data = Edges(T + dep_r[ok], dep_rows[ok])
        pay_rows = np.flatnonzero(pay_r >= 0)
        pay = Edges(T + pay_r[pay_rows], pay_rows)
        prod_rows = np.flatnonzero(own_t >= 0)
        prod = Edges(own_t[prod_rows], T + prod_rows)
        self.producer = np.full(R, -1, dtype=np.int64)  # task index producing result j, or -1
        self.producer[prod_rows] = own_t[prod_rows]
        self.payload_of = np.full(T, -1, dtype=np.int64)  # result index of task i's payload
        self.payload_of[pay_rows] = pay_r[pay_rows]
        okp = par_t >= 0
        self.spawn = Edges(par_t[okp], par_rows[okp])
        self.parent = np.full(T, -1, dtype=np.int64)
        self.parent[self.spawn.dst] = self.spawn.src
        okr = ret_t >= 0
        self.retry = Edges(ret_t[okr], ret_rows[okr])
        self.previous_attempt = np.full(T, -1, dtype=np.int64)
        self.previous_attempt[self.retry.dst] = self.retry.src
        oko = out_r >= 0
        order = np.argsort(out_r[oko], kind="stable")
        self.expected_out_result = out_r[oko][order]  # sorted by result index
        self.expected_out_task = out_rows[oko][order]

        self.src = np.concatenate([data.src, pay.src, prod.src])
        self.dst = np.concatenate([data.dst, pay.dst, prod.dst])
        self.kind = np.concatenate([
            np.full(len(data.src), KIND_DATA, np.int8), np.full(len(pay.src), KIND_PAYLOAD, np.int8),
            np.full(len(prod.src), KIND_PRODUCES, np.int8)])

        # --- node state ---
        self.complete = np.concatenate([self.task_status == TASK_CODE["COMPLETED"],
                                        self.result_status == RESULT_CODE["COMPLETED"]])
        self.bad = np.concatenate([np.isin(self.task_status, [TASK_CODE[s] for s in TASK_BAD]),
                                   np.isin(self.result_status, [RESULT_CODE[s] for s in RESULT_BAD])])
        self.retried = np.concatenate([self.task_status == TASK_CODE["RETRIED"],
                                       np.zeros(R, dtype=bool)])

        # --- the rustworkx graph: one extend_from_edge_list call ---
        was_enabled = gc.isenabled()
        gc.disable()  # millions of small tuples: the cyclic GC would rescan them for nothing
        try:
            pairs = np.empty(len(self.src), dtype=[("s", np.int64), ("d", np.int64)])
            pairs["s"], pairs["d"] = self.src, self.dst
            self.dag = rx.PyDiGraph(multigraph=True, node_count_hint=self.n,
                                    edge_count_hint=len(self.src))
            self.dag.add_nodes_from([None] * self.n)
            self.dag.extend_from_edge_list(pairs.tolist())
            del pairs
        finally:
            if was_enabled:
                gc.enable()

    # -- lookups ---------------------------------------------------------------------------------

    def is_task(self, node: int | np.ndarray):
        return node < self.n_tasks

    def task_index(self, task_id: str) -> int:
        hit = np.flatnonzero(pc.equal(self.task_ids, task_id).to_numpy(zero_copy_only=False))
        return int(hit[0]) if len(hit) else -1

    def result_index(self, result_id: str) -> int:
        hit = np.flatnonzero(pc.equal(self.result_ids, result_id).to_numpy(zero_copy_only=False))
        return int(hit[0]) if len(hit) else -1

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

    def entered_status_at(self, node: int) -> int:
        """When the node entered its current status (µs since epoch, or NA)."""
        if node >= self.n_tasks:
            j = node - self.n_tasks
            col = "completed_at" if self.result_status[j] == RESULT_CODE["COMPLETED"] else "created_at"
            v = self.result_ts[col][j]
            return int(v if v != NA else self.result_ts["created_at"][j])
        col = _ENTERED.get(self.status_name(node), "ended_at")
        v = int(self.task_ts[col][node])
        if v != NA:
            return v
        latest = max(int(self.task_ts[c][node]) for c in TASK_TS)
        return latest

    # -- traversals ------------------------------------------------------------------------------

    def ancestors(self, node: int) -> np.ndarray:
        """Every node upstream of ``node`` in the data DAG (sorted, excluding itself)."""
        a = rx.ancestors(self.dag, node)
        return np.sort(np.fromiter(a, dtype=np.int64, count=len(a)))

    def descendants(self, node: int) -> np.ndarray:
        d = rx.descendants(self.dag, node)
        return np.sort(np.fromiter(d, dtype=np.int64, count=len(d)))

    def inputs(self, node: int) -> list[int]:
        return sorted(self.dag.predecessor_indices(node))

    def outputs(self, node: int) -> list[int]:
        return sorted(self.dag.successor_indices(node))

    def frontier(self, nodes: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        """The blocking frontier of a node set: its incomplete nodes whose own inputs are all
        complete. RETRIED attempts are left out: their outputs moved to the next attempt."""
        if mask is None:
            mask = np.zeros(self.n, dtype=bool)
            if nodes is None:
                mask[:] = True
            else:
                mask[nodes] = True
        candidate = mask & ~self.complete & ~self.retried
        edge_in = candidate[self.dst]
        blocked = np.zeros(self.n, dtype=bool)
        blocked[self.dst[edge_in & ~self.complete[self.src]]] = True
        return np.flatnonzero(candidate & ~blocked)

    def origins(self, nodes: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        """Bad nodes (failed, timed-out, cancelled tasks; aborted, deleted results) with no bad
        input: where a failure started, before it propagated downstream."""
        if mask is None:
            mask = np.zeros(self.n, dtype=bool)
            if nodes is None:
                mask[:] = True
            else:
                mask[nodes] = True
        candidate = mask & self.bad
        edge_in = candidate[self.dst]
        propagated = np.zeros(self.n, dtype=bool)
        propagated[self.dst[edge_in & self.bad[self.src]]] = True
        return np.flatnonzero(candidate & ~propagated)

    def expected_by(self, result_node: int) -> np.ndarray:
        """Tasks that list the result among their expected outputs (ownership history)."""
        j = result_node - self.n_tasks
        lo = np.searchsorted(self.expected_out_result, j, side="left")
        hi = np.searchsorted(self.expected_out_result, j, side="right")
        return self.expected_out_task[lo:hi]

    def is_dag(self) -> bool:
        return rx.is_directed_acyclic_graph(self.dag)

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
