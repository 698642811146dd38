"""Pathological shapes for the analyzer: each must answer in seconds (prints a table; not a test).

    python bench/bench_shapes.py                   # the issue's sizes
    python bench/bench_shapes.py --small           # a quick run (tenth of the sizes)
    python bench/bench_shapes.py --keep /tmp/shapes  # keep (or reuse) the bundles

Shapes, each written vectorised (numpy/pyarrow, no per-row Python) with
``aksnap.bundle.write_bundle``:

  fanout    N map tasks, all PENDING (their payloads uploaded), one reduce task reading the N
            outputs: `aksnap blockers` ranks N blocking nodes that share one fan-in task
  chain     L levels, task k reads the output of task k-1; every level COMPLETED but the last
            (PROCESSING): `aksnap query ancestors`, `lineage`, `critical-path` walk L levels
  sessions  S sessions of 100 tasks (99 maps and a reduce; some sessions failed, retried,
            still running): `aksnap analyze` and `critical-path` over every session
  wide      one task reading M inputs (70% COMPLETED): `aksnap task`

Each command runs as a whole `aksnap ...` process (the CLI entry point, a fresh interpreter);
wall time from the parent, CPU time and peak RSS of that process from /usr/bin/time (else
``os.wait4``, whose peak RSS includes this generator's, inherited across exec). Bundles
of 200,000 tasks or more leave an index cache on their first open: such commands run "cold"
(fresh cache directory) and then "warm" (the cache of the cold run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aksnap.bundle import SCHEMAS, TS, write_bundle

T0_US = 1_767_268_800_000_000  # 2026-01-01T12:00:00Z in µs
TASK_TS = ("created_at", "submitted_at", "received_at", "acquired_at", "fetched_at",
           "started_at", "processed_at", "ended_at")


# -- building tables, vectorised ------------------------------------------------------------------

def ids(prefix: str, n: int, start: int = 0) -> pa.Array:
    """prefix0, prefix1, ... as a string array."""
    return pc.binary_join_element_wise(prefix, pa.array(np.arange(start, start + n)).cast(pa.string()), "")


def ts(seconds: np.ndarray) -> pa.Array:
    """Seconds after T0 (NaN = unset) -> timestamps."""
    s = np.asarray(seconds, dtype=float)
    us = T0_US + np.nan_to_num(s * 1e6).astype(np.int64)
    return pa.array(us, type=pa.int64(), mask=np.isnan(s)).cast(TS)


def lists(offsets: np.ndarray, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.asarray(offsets, dtype=np.int32)), values)


def empty_lists(n: int) -> pa.Array:
    return lists(np.zeros(n + 1, dtype=np.int32), pa.array([], pa.string()))


def singleton_lists(values: pa.Array) -> pa.Array:
    return lists(np.arange(len(values) + 1, dtype=np.int32), values)


def full(name: str, cols: dict[str, pa.Array], n: int) -> pa.Table:
    """A table of the bundle schema: the given columns, nulls elsewhere."""
    schema = SCHEMAS[name]
    arrays = []
    for f in schema:
        a = cols.get(f.name)
        if a is None:
            a = pa.nulls(n, f.type)
        elif not isinstance(a, (pa.Array, pa.ChunkedArray)):
            a = pa.array(np.full(n, a) if not isinstance(a, (list, np.ndarray)) else a, f.type)
        arrays.append(a.cast(f.type) if a.type != f.type else a)
    return pa.Table.from_arrays(arrays, schema=schema)


def const(v, n: int, type_=pa.string()) -> pa.Array:
    return pa.array(np.full(n, v, dtype=object), type_)


def write(out: Path, sessions: list[str], tasks: pa.Table, results: pa.Table,
          snapshot_s: float, session_status: str = "RUNNING") -> Path:
    S = len(sessions)
    sess = full("sessions", {"session_id": pa.array(sessions, pa.string()),
                             "status": const(session_status, S),
                             "created_at": ts(np.zeros(S)),
                             "partition_ids": singleton_lists(const("default", S))}, S)
    parts = full("partitions", {"partition_id": pa.array(["default"]), "pod_reserved": pa.array([1]),
                                "pod_max": pa.array([100]), "priority": pa.array([1]),
                                "parent_partition_ids": empty_lists(1),
                                "preemption_percentage": pa.array([0])}, 1)
    at = (T0_US + int(snapshot_s * 1e6)) / 1e6
    from datetime import datetime, timezone
    exported = datetime.fromtimestamp(at, tz=timezone.utc).isoformat()
    return write_bundle(out, {"sessions": sess, "tasks": tasks, "results": results,
                              "partitions": parts},
                        manifest_fields={"exported_at": exported}, overwrite=True)


def task_table(task_id: pa.Array, session: pa.Array, status: pa.Array, payload: pa.Array,
               deps: pa.Array, outputs: pa.Array, times: dict[str, np.ndarray],
               created_by: pa.Array | None = None, initial: pa.Array | None = None,
               retry_of: pa.Array | None = None, message: pa.Array | None = None) -> pa.Table:
    n = len(task_id)
    cols = {"task_id": task_id, "session_id": session, "status": status, "payload_id": payload,
            "data_dependencies": deps, "expected_output_ids": outputs,
            "created_by": created_by if created_by is not None else const("", n),
            "initial_task_id": initial if initial is not None else task_id,
            "retry_of_ids": retry_of if retry_of is not None else empty_lists(n),
            "parent_task_ids": singleton_lists(session),
            "status_message": message if message is not None else const("", n),
            "output_error": message if message is not None else const("", n),
            "partition_id": const("default", n), "max_retries": pa.array(np.full(n, 2, np.int32)),
            "priority": pa.array(np.ones(n, np.int32)), "pod_hostname": const("pod-0", n)}
    for c in TASK_TS:
        cols[c] = ts(times.get(c, np.full(n, np.nan)))
    return full("tasks", cols, n)


def result_table(result_id: pa.Array, session: pa.Array, status: pa.Array, owner: pa.Array,
                 created: np.ndarray, completed: np.ndarray) -> pa.Table:
    n = len(result_id)
    return full("results", {"result_id": result_id, "session_id": session, "name": result_id,
                            "status": status, "owner_task_id": owner, "created_by": const("", n),
                            "created_at": ts(created), "completed_at": ts(completed),
                            "size": pa.array(np.full(n, 8, np.int64))}, n)


def _phases(start: np.ndarray, run: np.ndarray) -> dict[str, np.ndarray]:
    """Timestamps of tasks created at ``start`` that ran ``run`` seconds (NaN run = not run)."""
    return {"created_at": start, "submitted_at": start + 0.01, "received_at": start + 0.01,
            "acquired_at": start + 0.05, "fetched_at": start + 0.06, "started_at": start + 0.07,
            "processed_at": start + 0.07 + run, "ended_at": start + 0.08 + run}


# -- shapes ------------------------------------------------------------------------------------

def fanout(out: Path, n: int) -> dict:
    """N PENDING map tasks (payloads uploaded) and one reduce task reading their N outputs."""
    S = "fanout-session"
    maps = ids("m", n)
    task_id = pa.concat_arrays([maps, pa.array(["reduce"])])
    outs = ids("o", n)
    status = const("PENDING", n + 1)
    created = np.arange(n + 1) * 1e-4
    times = {"created_at": created}
    deps = pa.concat_arrays([empty_lists(n), lists(np.array([0, n]), outs)])
    tasks = task_table(task_id, const(S, n + 1), status,
                       pa.concat_arrays([ids("p", n), pa.array(["p-reduce"])]), deps,
                       pa.concat_arrays([singleton_lists(outs), singleton_lists(pa.array(["final"]))]),
                       times)
    rid = pa.concat_arrays([ids("p", n), pa.array(["p-reduce"]), outs, pa.array(["final"])])
    R = 2 * n + 2
    rstatus = pa.concat_arrays([const("COMPLETED", n + 1), const("CREATED", n + 1)])
    owner = pa.concat_arrays([const("", n + 1), maps, pa.array(["reduce"])])
    results = result_table(rid, const(S, R), rstatus, owner, np.zeros(R),
                           np.concatenate([np.zeros(n + 1), np.full(n + 1, np.nan)]))
    write(out, [S], tasks, results, snapshot_s=600)
    return {"session": S, "tasks": n + 1}


def chain(out: Path, levels: int) -> dict:
    """Task k reads r(k-1) and writes r(k); all COMPLETED but the last level (PROCESSING)."""
    S = "chain-session"
    L = levels
    task_id = ids("c", L)
    rs = ids("r", L)
    deps = lists(np.concatenate([[0], np.arange(L)]), rs.slice(0, L - 1))
    status = pa.concat_arrays([const("COMPLETED", L - 1), pa.array(["PROCESSING"])])
    start = np.arange(L, dtype=float)
    run = np.full(L, 0.8)
    run[-1] = np.nan
    times = _phases(start, run)
    for c in ("processed_at", "ended_at"):
        times[c][-1] = np.nan
    tasks = task_table(task_id, const(S, L), status, ids("cp", L), deps, singleton_lists(rs), times)
    rid = pa.concat_arrays([ids("cp", L), rs])
    rstatus = pa.concat_arrays([const("COMPLETED", 2 * L - 1), pa.array(["CREATED"])])
    owner = pa.concat_arrays([const("", L), task_id])
    completed = np.concatenate([np.zeros(L), start + 0.08 + 0.8])
    completed[-1] = np.nan
    results = result_table(rid, const(S, 2 * L), rstatus, owner,
                           np.concatenate([np.zeros(L), start]), completed)
    write(out, [S], tasks, results, snapshot_s=L + 10)
    return {"session": S, "tasks": L, "last_result": f"r{L - 1}"}


def sessions(out: Path, n_sessions: int, per: int = 100, seed: int = 3) -> dict:
    """S sessions of ``per`` tasks: per-1 maps (each its payload and output) and a reduce reading
    every output. 80% complete, 10% failed (map 0 ERROR, the reduce ERROR by propagation),
    5% with a retried map that recovered, 5% still running (maps 0-9 PROCESSING, reduce PENDING)."""
    rng = np.random.default_rng(seed)
    S, M = n_sessions, per - 1
    kind = rng.choice(4, size=S, p=[0.80, 0.10, 0.05, 0.05])  # 0 ok, 1 failed, 2 retried, 3 running
    sid = pc.binary_join_element_wise("sess-", pa.array(np.arange(S)).cast(pa.string()), "")
    # task rows, session-major: maps 0..M-1, the reduce, then (retried sessions) the retry
    retried = np.flatnonzero(kind == 2)
    base = np.repeat(np.arange(S), per)
    col = np.tile(np.arange(per), S)  # 0..M-1 maps, M the reduce
    sess_of = np.concatenate([base, retried])
    col = np.concatenate([col, np.full(len(retried), per)])  # per = the retry attempt row
    order = np.lexsort((col, sess_of))
    sess_of, col = sess_of[order], col[order]
    T = len(sess_of)
    k = kind[sess_of]
    sid_t = sid.take(pa.array(sess_of))
    names = np.where(col < M, np.char.add("m", col.astype(str)),
                     np.where(col == M, "reduce", "m0###1")).astype(object)
    task_id = pc.binary_join_element_wise(sid_t, pa.array(names, pa.string()), ":")
    sess_offset = rng.uniform(0, 3600, size=S)
    offset = sess_offset[sess_of]
    run = np.exp(rng.normal(0, 0.5, size=T)) * np.where(col == M, 0.2, 1.0)
    status = np.full(T, "COMPLETED", dtype=object)
    msg = np.full(T, "", dtype=object)
    is_map, is_red, is_retry = col < M, col == M, col == per
    map_end = offset + 0.08 + run
    # the reduce starts when its last input completes (the retry's output for retried sessions)
    last = np.zeros(S)
    np.maximum.at(last, sess_of[is_map], map_end[is_map])
    r_first = np.flatnonzero(is_retry)
    retry_start = map_end[np.flatnonzero(is_map & (col == 0) & (k == 2))]
    start = np.where(is_map, offset, np.nan)
    start[r_first] = retry_start
    retry_end_s = np.zeros(S)
    retry_end_s[sess_of[r_first]] = retry_start + 0.08 + run[r_first]
    red_start = np.maximum(last, retry_end_s)[sess_of]
    start[is_red] = red_start[is_red]
    times = _phases(start, run)
    failed_map = is_map & (col == 0) & (k == 1)
    status[failed_map], msg[failed_map] = "ERROR", "Output error: simulated application error"
    red_fail = is_red & (k == 1)
    status[red_fail], msg[red_fail] = "ERROR", "One of the input data is aborted"
    for c in TASK_TS[1:-1]:
        times[c][red_fail] = np.nan
    times["ended_at"][red_fail] = map_end[failed_map][np.searchsorted(sess_of[failed_map], sess_of[red_fail])]
    retried_first = is_map & (col == 0) & (k == 2)
    status[retried_first], msg[retried_first] = "RETRIED", "worker crashed"
    running_map = is_map & (col < 10) & (k == 3)
    status[running_map] = "PROCESSING"
    status[is_red & (k == 3)] = "PENDING"
    for c in ("processed_at", "ended_at"):
        times[c][running_map] = np.nan
    for c in TASK_TS[1:]:
        times[c][is_red & (k == 3)] = np.nan
    times["created_at"][is_red & (k == 3)] = offset[is_red & (k == 3)]
    # outputs: map j -> o j (the retry owns o0 in retried sessions); reduce -> final
    out_name = np.where(is_red, "final", np.where(is_retry, "o0", np.char.add("o", col.astype(str)))).astype(object)
    outputs = singleton_lists(pc.binary_join_element_wise(sid_t, pa.array(out_name, pa.string()), ":"))
    pay_name = np.where(is_red, "p-reduce", np.where(is_retry, "p0", np.char.add("p", col.astype(str)))).astype(object)
    payload = pc.binary_join_element_wise(sid_t, pa.array(pay_name, pa.string()), ":")
    red_rows = np.flatnonzero(is_red)
    dep_sess = np.repeat(sess_of[red_rows], M)
    dep_vals = pc.binary_join_element_wise(sid.take(pa.array(dep_sess)),
                                           ids("o", M).take(pa.array(np.tile(np.arange(M), len(red_rows)))), ":")
    dep_len = np.where(is_red, M, 0)
    deps = lists(np.concatenate([[0], np.cumsum(dep_len)]), dep_vals)
    first_id = pc.binary_join_element_wise(sid_t, pa.array(np.full(T, "m0", dtype=object), pa.string()), ":")
    created_by = pc.if_else(pa.array(is_retry), first_id, const("", T))
    initial = pc.if_else(pa.array(is_retry), first_id, task_id)
    rlen = is_retry.astype(np.int32)
    retry_of = lists(np.concatenate([[0], np.cumsum(rlen)]), pc.filter(first_id, pa.array(is_retry)))
    tasks = task_table(task_id, sid_t, pa.array(status, pa.string()), payload, deps, outputs, times,
                       created_by=created_by, initial=initial, retry_of=retry_of,
                       message=pa.array(msg, pa.string()))
    # results: per session p0..p{M-1}, p-reduce (COMPLETED, client), o0..o{M-1}, final
    per_r = 2 * M + 2
    rs = np.repeat(np.arange(S), per_r)
    rc = np.tile(np.arange(per_r), S)
    rk = kind[rs]
    rname = np.where(rc < M, np.char.add("p", rc.astype(str)),
                     np.where(rc == M, "p-reduce",
                              np.where(rc < 2 * M + 1, np.char.add("o", (rc - M - 1).astype(str)), "final"))).astype(object)
    sid_r = sid.take(pa.array(rs))
    rid = pc.binary_join_element_wise(sid_r, pa.array(rname, pa.string()), ":")
    oj = rc - M - 1  # output index (valid for outputs)
    is_out = (rc > M) & (rc < 2 * M + 1)
    is_final = rc == 2 * M + 1
    owner_name = np.where(is_out, np.char.add("m", oj.astype(str)), np.where(is_final, "reduce", "")).astype(object)
    owner_name[is_out & (oj == 0) & (rk == 2)] = "m0###1"
    owner = pc.if_else(pa.array(owner_name != ""),
                       pc.binary_join_element_wise(sid_r, pa.array(owner_name, pa.string()), ":"), const("", len(rs)))
    rstatus = np.full(len(rs), "COMPLETED", dtype=object)
    rstatus[(is_out & (oj == 0) | is_final) & (rk == 1)] = "ABORTED"
    rstatus[(is_out & (oj < 10) | is_final) & (rk == 3)] = "CREATED"
    # completion times: the producer's end
    ended = times["ended_at"]
    row_of = np.zeros((S, per + 1), dtype=np.int64) - 1
    row_of[sess_of, col] = np.arange(T)
    prod_col = np.where(is_out, oj, np.where(is_final, M, -1))
    prod_col[is_out & (oj == 0) & (rk == 2)] = per
    completed = np.where(prod_col >= 0, ended[row_of[rs, np.maximum(prod_col, 0)]], 0.0)
    completed[rstatus != "COMPLETED"] = np.nan
    results = result_table(rid, sid_r, pa.array(rstatus, pa.string()), owner,
                           sess_offset[rs], completed)
    snapshot = float(np.nanmax(times["ended_at"])) + 60
    write(out, sid.to_pylist(), tasks, results, snapshot_s=snapshot)
    return {"tasks": T, "sessions": S, "first_session": "sess-0"}


def wide(out: Path, n: int) -> dict:
    """One PENDING task reading n inputs uploaded by the client, 70% of them COMPLETED."""
    S = "wide-session"
    inputs = ids("in", n)
    tasks = task_table(pa.array(["gather"]), pa.array([S]), pa.array(["PENDING"]),
                       pa.array(["p-gather"]), lists(np.array([0, n]), inputs),
                       singleton_lists(pa.array(["gathered"])), {"created_at": np.zeros(1)})
    done = np.arange(n) % 10 < 7
    rid = pa.concat_arrays([inputs, pa.array(["p-gather", "gathered"])])
    rstatus = pa.array(np.concatenate([np.where(done, "COMPLETED", "CREATED"), ["COMPLETED", "CREATED"]]).astype(object))
    owner = pa.concat_arrays([const("", n + 1), pa.array(["gather"])])
    completed = np.concatenate([np.where(done, 1.0, np.nan), [0.0, np.nan]])
    results = result_table(rid, const(S, n + 2), rstatus, owner, np.zeros(n + 2), completed)
    write(out, [S], tasks, results, snapshot_s=600)
    return {"tasks": 1, "task": "gather"}


# -- measuring ---------------------------------------------------------------------------------

def run(argv: list[str], cache: Path) -> dict:
    """Run `aksnap ...` as a whole process: wall time from here, CPU time and peak RSS of that
    process alone. Through /usr/bin/time when present: a child forked straight from this (large)
    process would inherit its high-water RSS (Linux keeps it across exec)."""
    exe = shutil.which("aksnap")
    cmd = [exe, *argv] if exe else [sys.executable, "-m", "aksnap", *argv]
    env = {**os.environ, "AKSNAP_CACHE_DIR": str(cache)}
    timer = Path("/usr/bin/time")
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as stats:
        if timer.exists():
            cmd = [str(timer), "-o", stats.name, "-f", "%U %S %M", *cmd]
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read().decode() if p.stderr else ""
        out.seek(0)
        lines = sum(1 for _ in out)
        cpu, rss_kib = ru.ru_utime + ru.ru_stime, ru.ru_maxrss
        if timer.exists():
            fields = stats.read().split()[-3:]
            cpu, rss_kib = float(fields[0]) + float(fields[1]), int(fields[2])
    return {"wall": wall, "cpu": cpu, "rss_mib": rss_kib / 1024, "lines": lines,
            "code": p.returncode, "err": err.strip().splitlines()[-1:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="a tenth of the sizes (quick)")
    ap.add_argument("--keep", type=Path, help="directory to keep (or reuse) the bundles in")
    ap.add_argument("--only", help="comma-separated shapes to run (fanout,chain,sessions,sessions100k,wide)")
    args = ap.parse_args()
    f = 10 if args.small else 1
    sizes = {"fanout": 200_000 // f, "chain": 100_000 // f, "sessions": 10_000 // f,
             "sessions100k": 100_000 // f, "wide": 1_000_000 // f}
    only = set(args.only.split(",")) if args.only else set(sizes)
    root = args.keep or Path(tempfile.mkdtemp(prefix="aksnap-shapes-"))
    root.mkdir(parents=True, exist_ok=True)
    builders = {"fanout": lambda p: fanout(p, sizes["fanout"]),
                "chain": lambda p: chain(p, sizes["chain"]),
                "sessions": lambda p: sessions(p, sizes["sessions"]),
                "sessions100k": lambda p: sessions(p, sizes["sessions100k"], per=10),
                "wide": lambda p: wide(p, sizes["wide"])}
    cases = {
        "fanout": [("blockers", ["blockers", "{b}"], 5.0)],
        "chain": [("query ancestors", ["query", "{b}", "ancestors", "-p", "result_id=r{last}"], 5.0),
                  ("lineage", ["lineage", "{b}", "r{last}"], 5.0),
                  ("critical-path", ["critical-path", "{b}"], 5.0)],
        "sessions": [("analyze", ["analyze", "{b}"], 5.0),
                     ("critical-path", ["critical-path", "{b}"], 5.0)],
        "sessions100k": [("analyze", ["analyze", "{b}"], None),
                         ("critical-path", ["critical-path", "{b}"], None)],
        "wide": [("task", ["task", "{b}", "gather"], 5.0),
                 ("task --all", ["task", "{b}", "gather", "--all", "--format", "csv"], None)],
    }
    labels = {"fanout": f"fan-out, {sizes['fanout']:,} PENDING maps",
              "chain": f"chain, {sizes['chain']:,} levels",
              "sessions": f"{sizes['sessions']:,} sessions x 100 tasks",
              "sessions100k": f"{sizes['sessions100k']:,} sessions x 10 tasks",
              "wide": f"task with {sizes['wide']:,} inputs"}
    rows = []
    for shape in [s for s in sizes if s in only]:
        b = root / f"{shape}-{sizes[shape]}.aksnap"
        t = time.perf_counter()
        if not (b / "manifest.json").exists():
            info = builders[shape](b)
            print(f"built {b.name} in {time.perf_counter() - t:.1f} s ({info})", file=sys.stderr, flush=True)
        big = shape in ("sessions", "sessions100k") and sizes[shape] * (100 if shape == "sessions" else 10) >= 200_000
        for name, argv, bar in cases[shape]:
            argv = [a.format(b=b, last=sizes["chain"] - 1) for a in argv]
            cache = Path(tempfile.mkdtemp(prefix="aksnap-cache-"))
            for temp in (["cold", "warm"] if big else [""]):
                r = run(argv, cache)
                ok = "-" if bar is None else ("met" if r["wall"] <= bar and r["code"] == 0 else "NOT met")
                if r["code"] != 0:
                    ok += f" (exit {r['code']}: {r['err']})"
                rows.append((labels[shape], f"aksnap {name}" + (f" ({temp})" if temp else ""),
                             f"{r['wall']:.2f}", f"{r['cpu']:.2f}", f"{r['rss_mib']:.0f}",
                             f"{r['lines']:,}", f"<= {bar:.0f} s" if bar else "bounded", ok))
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
            shutil.rmtree(cache, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    head = ("shape", "command (whole process)", "wall s", "CPU s", "peak RSS MiB", "lines out", "bar", "result")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
