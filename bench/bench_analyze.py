"""Benchmark of the analyzer on a synthetic HtcMock-shaped bundle (prints figures; not a test).

    python bench/bench_analyze.py                 # 1,000,000 tasks, the issue's targets
    python bench/bench_analyze.py --tasks 100000  # quicker
    python bench/bench_analyze.py --keep /tmp/b   # keep (or reuse) the bundle

The bundle is generated vectorised (numpy/pyarrow, no per-row Python) and written with
``aksnap.bundle.write_bundle``: a random fork-join tree as HtcMock builds it. A node with
children submits them (each its own payload and output) plus an aggregation task reading the
children's outputs and taking over the node's own output (ownership transfer); leaves return a
constant. Ancestry lists are full (``[session, ..., parent]``), 0.5% of leaves were retried
once, one deep leaf is a straggler still PROCESSING (the aggregators above it PENDING) and one
deep leaf failed with an error output (ERROR propagated up, outputs ABORTED).

Each measurement runs in a fresh process, so its peak memory (ru_maxrss) is its own:
  analyzer  open (manifest, checksums) + build the full graph; lineage of a deep result;
            `analyze` (overview of every session, from a fresh open)
  baseline  the first prototypes' way: rows as Python dicts into networkx, edge by edge,
            then nx.ancestors for the same lineage question
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def guids(n: int, rng: np.random.Generator) -> pa.Array:
    """n random GUID strings (36 chars), vectorised."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    hx = np.empty((n, 32), dtype=np.uint8)
    hx[:, 0::2] = HEX[raw >> 4]
    hx[:, 1::2] = HEX[raw & 15]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    out[:, 0:8], out[:, 9:13], out[:, 14:18] = hx[:, 0:8], hx[:, 8:12], hx[:, 12:16]
    out[:, 19:23], out[:, 24:36] = hx[:, 16:20], hx[:, 20:32]
    data = pa.py_buffer(out.tobytes())
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * 36).tobytes())
    return pa.Array.from_buffers(pa.string(), n, [None, offsets, data])


def list_array(offsets: np.ndarray, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def generate(out: Path, n_tasks: int, seed: int = 7) -> dict:
    """Write the bundle; return the ids the benchmark asks about."""
    from aksnap.bundle import write_bundle

    rng = np.random.default_rng(seed)
    # --- the tree: random recursive tree on N nodes; tasks = N nodes + one aggregator per
    # internal node (+ retries); about 60% of nodes are internal, so N ~ n_tasks / 1.6
    N = max(10, int(n_tasks / 1.6))
    parent = np.empty(N, dtype=np.int64)
    parent[0] = -1
    # a parent drawn among the earlier nodes, biased to recent ones: a deeper, HtcMock-like tree
    u = rng.random(N - 1)
    idx = np.arange(1, N)
    parent[1:] = np.minimum((idx * np.sqrt(u)).astype(np.int64), idx - 1)
    depth = _depths(parent)
    nchild = np.bincount(parent[1:], minlength=N)
    internal = np.flatnonzero(nchild > 0)
    leaves = np.flatnonzero(nchild == 0)
    A = len(internal)
    agg_of = np.full(N, -1, dtype=np.int64)
    agg_of[internal] = N + np.arange(A)  # task index of u's aggregator
    # retries: 0.5% of leaves have a first RETRIED attempt
    retried = rng.choice(leaves, size=max(1, len(leaves) // 200), replace=False)
    Rt = len(retried)
    T = N + A + Rt  # task rows: nodes, aggregators, retried first attempts
    session = "00000000-0000-4000-8000-000000000001"
    task_ids = guids(T, rng)
    # first attempts (RETRIED) are rows N+A .. T-1; the node row is the second attempt, whose
    # id becomes "<first attempt id>###1"

    # --- results: one output per node; one payload per task row (retries share the first's)
    out_ids = guids(N, rng)
    pay_ids = guids(N + A, rng)
    R = N + (N + A)

    # --- times (seconds), bottom-up so an aggregator waits for its children
    created = np.zeros(T)
    submitted = np.zeros(T)
    acquired = np.zeros(T)
    fetched = np.zeros(T)
    started = np.zeros(T)
    processed = np.zeros(T)
    ended = np.zeros(T)
    # node tasks: created when the parent node ends (root at 0), processing lognormal
    proc = np.exp(rng.normal(np.log(1.0), 0.5, size=T))
    queue = rng.exponential(2.0, size=T)
    order = np.argsort(depth, kind="stable")
    node_end = np.zeros(N)
    for lvl in range(int(depth.max()) + 1):  # top-down: node tasks
        nodes = order[np.searchsorted(depth[order], lvl):np.searchsorted(depth[order], lvl, side="right")]
        par = parent[nodes]
        c = np.where(par >= 0, node_end[np.maximum(par, 0)], 0.0)
        created[nodes] = c
        submitted[nodes] = c + 0.01
        acquired[nodes] = submitted[nodes] + queue[nodes]
        fetched[nodes] = acquired[nodes] + 0.01
        started[nodes] = fetched[nodes] + 0.005
        processed[nodes] = started[nodes] + proc[nodes]
        ended[nodes] = processed[nodes] + 0.02
        node_end[nodes] = ended[nodes]
    # retried leaves: the first attempt ran and crashed; the node row (second attempt) starts after
    fa = N + A + np.arange(Rt)
    created[fa], submitted[fa], acquired[fa] = created[retried], submitted[retried], acquired[retried]
    fetched[fa], started[fa] = fetched[retried], started[retried]
    processed[fa] = started[fa] + proc[fa]
    ended[fa] = processed[fa] + 0.01
    shift = ended[fa] - created[retried] + 0.01
    for a in (created, submitted, acquired, fetched, started, processed, ended):
        a[retried] += shift
    # aggregators bottom-up: ready when every child's output is complete
    out_done = np.zeros(N)
    out_done[leaves] = ended[leaves]
    for lvl in range(int(depth.max()), -1, -1):
        nodes = order[np.searchsorted(depth[order], lvl):np.searchsorted(depth[order], lvl, side="right")]
        inner = nodes[nchild[nodes] > 0]
        if len(inner):
            ag = agg_of[inner]
            ready = np.zeros(N)
            kids = np.flatnonzero(np.isin(parent, inner))
            np.maximum.at(ready, parent[kids], out_done[kids])
            created[ag] = ended[inner]
            submitted[ag] = np.maximum(ready[inner], created[ag]) + 0.01
            acquired[ag] = submitted[ag] + queue[ag]
            fetched[ag] = acquired[ag] + 0.01
            started[ag] = fetched[ag] + 0.005
            processed[ag] = started[ag] + 0.1 * proc[ag]
            ended[ag] = processed[ag] + 0.02
            out_done[inner] = ended[ag]

    task_status = np.array(["COMPLETED"] * T, dtype=object)
    task_status[N + A:] = "RETRIED"
    res_status = np.array(["COMPLETED"] * R, dtype=object)
    message = np.array([""] * T, dtype=object)
    # a straggler (deepest leaf) and a failure (another deep leaf), and what waits above them
    deep = leaves[np.argsort(-depth[leaves], kind="stable")]
    straggler, failed = int(deep[0]), int(deep[1])
    snapshot = float(np.max(ended)) + 1.0

    def chain_up(leaf):
        x, out = int(parent[leaf]), []
        while x >= 0:
            out.append(x)
            x = int(parent[x])
        return out

    task_status[straggler] = "PROCESSING"
    processed[straggler] = ended[straggler] = np.nan
    res_status[straggler] = "CREATED"
    for x in chain_up(straggler):
        task_status[agg_of[x]] = "PENDING"
        res_status[x] = "CREATED"
        for a in (submitted, acquired, fetched, started, processed, ended):
            a[agg_of[x]] = np.nan
    task_status[failed] = "ERROR"
    message[failed] = "Output error: HtcMock simulated application error"
    res_status[failed] = "ABORTED"
    fail_end = ended[failed]
    for x in chain_up(failed):
        if task_status[agg_of[x]] == "PENDING":
            break  # the branch shared with the straggler stays waiting
        task_status[agg_of[x]] = "ERROR"
        message[agg_of[x]] = "One of the input data is aborted"
        res_status[x] = "ABORTED"
        created_x = created[agg_of[x]]
        for a in (submitted, acquired, fetched, started, processed):
            a[agg_of[x]] = np.nan
        ended[agg_of[x]] = fail_end
        created[agg_of[x]] = min(created_x, fail_end)

    # --- id columns
    ids_obj = np.asarray(task_ids.to_numpy(zero_copy_only=False), dtype=object)
    ids_obj[retried] = np.char.add(np.asarray(ids_obj[N + A:], dtype=str), "###1").astype(object)
    tid = pa.array(ids_obj, type=pa.string())
    initial = ids_obj.copy()
    initial[retried] = ids_obj[N + A:]
    created_by = np.full(T, "", dtype=object)
    node_par = parent.copy()
    has_par = node_par >= 0
    created_by[:N][has_par] = ids_obj[node_par[has_par]]
    created_by[N:N + A] = ids_obj[internal]
    created_by[N + A:] = created_by[retried]
    created_by[retried] = ids_obj[N + A:]
    # payloads: node i -> pay i; aggregator of u -> pay N + k; first attempts share the node's
    pay_of = np.concatenate([np.arange(N), N + np.arange(A), retried])
    payload = pay_ids.take(pa.array(pay_of))
    # expected outputs: node i -> out i; aggregator of u -> out u; first attempt -> out of leaf
    eo = np.concatenate([np.arange(N), internal, retried])
    expected = list_array(np.arange(T + 1), out_ids.take(pa.array(eo)))
    # data dependencies: aggregator of u reads the outputs of u's children
    kids = np.argsort(parent[1:], kind="stable") + 1  # children grouped by parent (in order)
    kid_par = parent[kids]
    counts = np.zeros(T, dtype=np.int64)
    counts[N:N + A] = nchild[internal]
    dep_off = np.concatenate([[0], np.cumsum(counts)])
    # order children by their parent's aggregator row (= internal order)
    rank = np.zeros(N, dtype=np.int64)
    rank[internal] = np.arange(A)
    kids = kids[np.argsort(rank[kid_par], kind="stable")]
    deps = list_array(dep_off, out_ids.take(pa.array(kids)))
    # ancestry: [session, root, ..., parent]; aggregators and first attempts share the node's
    anc_lists = _ancestry(parent, depth)
    node_anc_len = depth
    anc_owner = np.concatenate([np.arange(N), internal, retried])
    lens = node_anc_len[anc_owner] + 1
    # aggregator of u: parent chain of u's children = [session, ..., u] (it is u's subtask)
    lens[N:N + A] = depth[internal] + 2
    offs = np.concatenate([[0], np.cumsum(lens)])
    flat = np.empty(offs[-1], dtype=np.int64)  # node indices; -1 = the session
    for row_block in (np.arange(N), N + np.arange(A), N + A + np.arange(Rt)):
        src = anc_owner[row_block]
        base = offs[row_block]
        flat[base] = -1
        L = depth[src]
        # positions base+1 .. base+L hold the ancestors of src, root first
        pos = np.repeat(base + 1, L) + _ranges(L)
        flat[pos] = anc_lists[1][np.repeat(anc_lists[0][src], L) + _ranges(L)]
        if row_block[0] == N and A:
            flat[base + 1 + L] = src  # the aggregator's direct parent is u itself
    ids_with_session = pa.concat_arrays([pa.array([session]), pa.array(ids_obj[:N], type=pa.string())])
    parents_col = list_array(offs, ids_with_session.take(pa.array(flat + 1)))
    retry_off = np.zeros(T + 1, dtype=np.int64)
    rcount = np.zeros(T, dtype=np.int64)
    rcount[retried] = 1
    retry_off[1:] = np.cumsum(rcount)
    order_r = np.argsort(retried)
    retry_vals = pa.array(ids_obj[N + A:][order_r], type=pa.string())
    retry_col = list_array(retry_off, retry_vals)

    t0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def ts(a):
        us = np.round((a + t0) * 1e6)
        mask = np.isnan(a)
        return pa.array(np.where(mask, 0, us).astype(np.int64), mask=mask, type=pa.timestamp("us", tz="UTC"))

    agg_part = np.array(["htcmock"] * T, dtype=object)
    tasks = pa.table({
        "task_id": tid, "session_id": pa.array(np.full(T, session, dtype=object), pa.string()),
        "status": pa.array(task_status, pa.string()), "status_message": pa.array(message, pa.string()),
        "owner_pod_id": pa.nulls(T, pa.string()), "pod_hostname": pa.nulls(T, pa.string()),
        "initial_task_id": pa.array(initial, pa.string()), "created_by": pa.array(created_by, pa.string()),
        "payload_id": payload, "parent_task_ids": parents_col, "data_dependencies": deps,
        "expected_output_ids": expected, "retry_of_ids": retry_col,
        "output_success": pa.array(task_status == "COMPLETED"),
        "output_error": pa.array(message, pa.string()), "partition_id": pa.array(agg_part, pa.string()),
        "priority": pa.array(np.ones(T, dtype=np.int32)), "max_retries": pa.array(np.full(T, 2, np.int32)),
        "created_at": ts(created), "submitted_at": ts(submitted), "received_at": ts(submitted),
        "acquired_at": ts(acquired), "fetched_at": ts(fetched), "started_at": ts(started),
        "processed_at": ts(processed), "ended_at": ts(ended), "pod_ttl": ts(started),
    })
    # results: outputs (owner = node for leaves, the aggregator for internal nodes), payloads
    owner = ids_obj[:N].copy()
    owner[internal] = ids_obj[agg_of[internal]]
    out_created_by = np.full(N, "", dtype=object)
    out_created_by[has_par] = ids_obj[node_par[has_par]]
    out_done_t = np.where(res_status[:N] == "COMPLETED", out_done, np.nan)
    pay_created_by = np.concatenate([out_created_by, ids_obj[internal]])
    pay_created = np.concatenate([created[:N], created[N:N + A]])
    results = pa.table({
        "result_id": pa.concat_arrays([out_ids, pay_ids]),
        "session_id": pa.array(np.full(R, session, dtype=object), pa.string()),
        "name": pa.nulls(R, pa.string()),
        "status": pa.array(res_status, pa.string()),
        "owner_task_id": pa.array(np.concatenate([owner, np.full(N + A, "", dtype=object)]), pa.string()),
        "created_by": pa.array(np.concatenate([out_created_by, pay_created_by]), pa.string()),
        "created_at": ts(np.concatenate([created[:N], pay_created])),
        "completed_at": ts(np.concatenate([out_done_t, pay_created])),
        "size": pa.array(np.full(R, 8, dtype=np.int64)),
    })
    sessions = pa.table({"session_id": [session], "status": ["RUNNING"]})
    partitions = pa.table({"partition_id": ["htcmock"], "pod_max": pa.array([100], pa.int64())})
    write_bundle(out, {"tasks": _full(tasks, "tasks"), "results": _full(results, "results"),
                       "sessions": _full(sessions, "sessions"), "partitions": _full(partitions, "partitions")},
                 manifest_fields={"exported_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t0 + snapshot))},
                 overwrite=True)
    # a deep result: the straggler's own output, and the output of the node two levels up
    deep_result = out_ids[straggler].as_py()
    return {"tasks": T, "results": R, "depth": int(depth.max()), "deep_result": deep_result,
            "straggler_task": ids_obj[straggler], "failed_task": ids_obj[failed],
            "failed_result": out_ids[int(parent[failed])].as_py()}


def _full(t: pa.Table, name: str) -> pa.Table:
    from aksnap.bundle import SCHEMAS

    schema = SCHEMAS[name]
    cols = [t[f.name].cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """concat(arange(l) for l in lengths), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - starts


def _depths(parent: np.ndarray) -> np.ndarray:
    """Depth of each node; parents come before children, so one pass in index order."""
    depth = np.zeros(len(parent), dtype=np.int64)
    # chunked: a node's depth is its parent's + 1; parent < node, so resolve in rounds
    unresolved = np.arange(1, len(parent))
    known = np.zeros(len(parent), dtype=bool)
    known[0] = True
    while len(unresolved):
        ok = known[parent[unresolved]]
        nodes = unresolved[ok]
        depth[nodes] = depth[parent[nodes]] + 1
        known[nodes] = True
        unresolved = unresolved[~ok]
    return depth


def _ancestry(parent: np.ndarray, depth: np.ndarray):
    """(offsets, flat) where flat[offsets[i]:offsets[i]+depth[i]] are i's ancestors, root first."""
    N = len(parent)
    off = np.concatenate([[0], np.cumsum(depth)])[:-1]
    flat = np.empty(int(depth.sum()), dtype=np.int64)
    # the last slot of i's list is parent[i]; the slots before are parent's list
    for lvl in range(1, int(depth.max()) + 1):
        nodes = np.flatnonzero(depth == lvl)
        p = parent[nodes]
        L = lvl - 1
        if L:
            src = np.repeat(off[p], L) + _ranges(np.full(len(nodes), L))
            dst = np.repeat(off[nodes], L) + _ranges(np.full(len(nodes), L))
            flat[dst] = flat[src]
        flat[off[nodes] + L] = p
    return off, flat


# ---------------------------------------------------------------------------------------------

def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_analyzer(bundle: str, deep_result: str) -> dict:
    import gc

    from aksnap.analyzer import lineage, overview
    from aksnap.analyzer.snapshot import Snapshot

    out = {}
    t, c = time.perf_counter(), time.process_time()
    snap = Snapshot.open(bundle)
    out["open_s"] = time.perf_counter() - t
    t1 = time.perf_counter()
    g = snap.graph  # cold: no index cache yet (the child runs with an empty AKSNAP_CACHE_DIR)
    out["graph_s"] = time.perf_counter() - t1
    out["open_and_graph_s"] = time.perf_counter() - t
    out["open_and_graph_cpu_s"] = time.process_time() - c
    out["nodes"], out["edges"] = g.n, g.dag.num_edges()
    snap.close()
    del snap, g
    gc.collect()
    t, c = time.perf_counter(), time.process_time()
    snap = Snapshot.open(bundle)
    g = snap.graph  # warm: integer indices from the cache written by the cold build
    out["warm_open_and_graph_s"] = time.perf_counter() - t
    out["warm_open_and_graph_cpu_s"] = time.process_time() - c
    lineage.build(snap, deep_result)  # warm the per-result paths once
    times = []
    for _ in range(5):
        t = time.perf_counter()
        d = lineage.build(snap, deep_result)
        times.append(time.perf_counter() - t)
    out["lineage_ms"] = 1000 * min(times)
    out["lineage_ms_median"] = 1000 * sorted(times)[2]
    out["lineage_upstream"] = d["upstream"]["tasks"] + d["upstream"]["results"]
    times = []
    for _ in range(5):  # the same question as the baseline answers: ancestors + frontier
        t = time.perf_counter()
        node = g.n_tasks + g.result_index(deep_result)
        anc = g.ancestors(node)
        g.frontier(np.append(anc, node))
        times.append(time.perf_counter() - t)
    out["ancestors_frontier_ms"] = 1000 * min(times)
    out["lineage_frontier"] = [f["id"] for f in d["frontier"]]
    snap.close()
    del snap, g
    gc.collect()
    t, c = time.perf_counter(), time.process_time()
    snap = Snapshot.open(bundle)
    ov = overview.build(snap)
    out["analyze_s"] = time.perf_counter() - t
    out["analyze_cpu_s"] = time.process_time() - c
    s = ov["sessions"][0]
    out["analyze_top_blocker"] = s["top_blockers"][0]["id"] if s["top_blockers"] else None
    out["analyze_root_cause"] = s["root_causes"][0]["id"] if s["root_causes"] else None
    out["peak_rss_mib"] = _rss_mib()
    return out


def run_baseline(bundle: str, deep_result: str) -> dict:
    """The first prototypes: Python dicts per row, networkx edge by edge."""
    import networkx as nx
    import pyarrow.parquet as pq

    out = {}
    t = time.perf_counter()
    tasks = pq.read_table(Path(bundle) / "tasks.parquet").to_pylist()
    results = pq.read_table(Path(bundle) / "results.parquet").to_pylist()
    G = nx.DiGraph()
    for r in results:
        G.add_node(("result", r["result_id"]), **r)
    for tk in tasks:
        G.add_node(("task", tk["task_id"]), **tk)
    for tk in tasks:
        for dep in tk["data_dependencies"] or []:
            if ("result", dep) in G:
                G.add_edge(("result", dep), ("task", tk["task_id"]))
        if tk["payload_id"] and ("result", tk["payload_id"]) in G:
            G.add_edge(("result", tk["payload_id"]), ("task", tk["task_id"]))
    for r in results:
        p = r["owner_task_id"] or r["created_by"]
        if p and ("task", p) in G:
            G.add_edge(("task", p), ("result", r["result_id"]))
    out["open_and_graph_s"] = time.perf_counter() - t
    t = time.perf_counter()
    anc = nx.ancestors(G, ("result", deep_result))
    front = [n for n in anc | {("result", deep_result)}
             if G.nodes[n]["status"] != "COMPLETED"
             and all(G.nodes[p]["status"] == "COMPLETED" for p in G.predecessors(n))]
    out["lineage_ms"] = 1000 * (time.perf_counter() - t)
    out["lineage_frontier"] = len(front)
    out["peak_rss_mib"] = _rss_mib()
    return out


def _child(kind: str, bundle: str, deep: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--keep", bundle, "--deep", deep]
    cache = tempfile.TemporaryDirectory(prefix="aksnap-bench-cache-")
    env = {**os.environ, "AKSNAP_CACHE_DIR": cache.name}
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--keep", help="bundle directory to write (or reuse when it exists)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--baseline-timeout", type=float, default=900)
    ap.add_argument("--child", choices=["analyzer", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--deep", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        fn = run_analyzer if a.child == "analyzer" else run_baseline
        print(json.dumps(fn(a.keep, a.deep), default=str))
        return
    tmp = None
    if a.keep:
        bundle = Path(a.keep)
        bundle.parent.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="aksnap-bench-")
        bundle = Path(tmp.name) / "bench.aksnap"
    info_path = bundle.with_name(bundle.name + ".bench.json")
    if bundle.exists() and info_path.exists():
        info = json.loads(info_path.read_text())
        print(f"reusing {bundle}")
    else:
        t = time.perf_counter()
        info = generate(bundle, a.tasks)
        info["generate_s"] = time.perf_counter() - t
        info_path.write_text(json.dumps(info))
    size = sum(f.stat().st_size for f in bundle.iterdir()) / 2**20
    print(f"bundle: {info['tasks']:,} tasks, {info['results']:,} results, tree depth {info['depth']}, "
          f"{size:.0f} MiB on disk" + (f", generated in {info['generate_s']:.1f} s" if "generate_s" in info else ""))
    an = _child("analyzer", str(bundle), info["deep_result"], 600)
    if "error" in an:
        print("analyzer failed:", an["error"])
        sys.exit(1)
    ok = lambda v, lim: "ok" if v <= lim else "OVER"  # noqa: E731
    print(f"analyzer  open (manifest + checksums) {an['open_s']:.2f} s, graph {an['graph_s']:.2f} s "
          f"({an['nodes']:,} nodes, {an['edges']:,} edges): open+graph {an['open_and_graph_s']:.2f} s "
          f"(CPU {an['open_and_graph_cpu_s']:.2f} s) [target 3 s: {ok(an['open_and_graph_s'], 3)}]")
    print(f"analyzer  open+graph again, indices from the cache: {an['warm_open_and_graph_s']:.2f} s "
          f"(CPU {an['warm_open_and_graph_cpu_s']:.2f} s) [target 3 s: {ok(an['warm_open_and_graph_s'], 3)}]")
    print(f"analyzer  lineage of a deep result ({an['lineage_upstream']} upstream nodes): "
          f"{an['lineage_ms']:.1f} ms best, {an['lineage_ms_median']:.1f} ms median [target 100 ms: {ok(an['lineage_ms'], 100)}]; "
          f"frontier = straggler: {an['lineage_frontier'] == [info['straggler_task']]}; "
          f"ancestors + frontier alone {an['ancestors_frontier_ms']:.1f} ms")
    print(f"analyzer  analyze (fresh open + overview): {an['analyze_s']:.2f} s (CPU {an['analyze_cpu_s']:.2f} s) "
          f"[target 5 s: {ok(an['analyze_s'], 5)}]; "
          f"top blocker = straggler: {an['analyze_top_blocker'] == info['straggler_task']}, "
          f"root cause = failed task: {an['analyze_root_cause'] == info['failed_task']}")
    load = os.getloadavg()[0]
    print(f"machine   {os.cpu_count()} cores, load average {load:.1f} at the end (other processes "
          "inflate wall times; CPU times are less sensitive)")
    print(f"analyzer  peak memory {an['peak_rss_mib']:.0f} MiB [target 2048 MiB: {ok(an['peak_rss_mib'], 2048)}]")
    if not a.no_baseline:
        bl = _child("baseline", str(bundle), info["deep_result"], a.baseline_timeout)
        if "error" in bl:
            print("baseline  (networkx, row by row):", bl["error"])
        else:
            sp = bl["open_and_graph_s"] / an["open_and_graph_s"]
            print(f"baseline  networkx row by row: load+graph {bl['open_and_graph_s']:.1f} s, lineage "
                  f"{bl['lineage_ms']:.1f} ms, peak {bl['peak_rss_mib']:.0f} MiB")
            print(f"speed-up  load+graph {sp:.1f}x [target 10x: {'ok' if sp >= 10 else 'UNDER'}], "
                  f"same lineage question (ancestors + frontier) {bl['lineage_ms']:.1f} ms vs "
                  f"{an['ancestors_frontier_ms']:.1f} ms, "
                  f"memory {bl['peak_rss_mib'] / an['peak_rss_mib']:.1f}x less")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
