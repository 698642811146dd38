"""The critical path at scale: walked back from the last results over the few nodes it visits
(``critical_path._walk_lazy``), not from a binding edge computed for every node of a 10M-task
graph, and the per-session figures reduced without sorting every completed result.

The answers must be the ones the whole-graph computation gives: these tests draw random
graphs (several sessions, ties in the completion times, missing timestamps, retries, subtasks,
cycles) and compare the walk with the whole-graph walk (``_binding`` + ``_walk``, kept for a
graph with a cycle) and the sessions' last result, start, end and wall time with a plain
per-session Python reading of the same arrays.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from aksnap.analyzer import critical_path
from aksnap.analyzer.graph import NA
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import make_bundle, result, task

SESSIONS = ("s1", "s2", "s3")


def _random_bundle(path, seed: int, cyclic: bool):
    """About 60 tasks over three sessions: each writes one or two results; reads up to three
    results (earlier ones only, unless ``cyclic``: then any, so some chains loop); some retry
    an earlier task of their session or are its subtask; times are whole seconds in a small
    range (ties are common) and about one in eight is missing."""
    rnd = random.Random(seed)
    tasks, results, by_session = [], [], {s: [] for s in SESSIONS}
    outs: list[str] = []
    n = 60
    planned = [f"r{i}" for i in range(2 * n)]
    for i in range(n):
        sess = rnd.choice(SESSIONS)
        mine = [f"r{2 * i}"] + ([f"r{2 * i + 1}"] if rnd.random() < .4 else [])
        pool = planned if cyclic else outs
        deps = rnd.sample(pool, min(len(pool), rnd.randint(0, 3))) if pool else []
        deps = [d for d in deps if d not in mine]
        earlier = by_session[sess]
        extra = {}
        if earlier and rnd.random() < .25:
            extra["retry_of"] = [rnd.choice(earlier)]
            extra["created_by"] = extra["retry_of"][0]
        elif earlier and rnd.random() < .3:
            p = rnd.choice(earlier)
            extra["parents"] = [sess, p]
            extra["created_by"] = p

        def t(v):
            return None if rnd.random() < .12 else v

        c = rnd.randint(0, 20)
        times = {"created": t(c), "submitted": t(c + rnd.randint(0, 3)),
                 "acquired": t(c + rnd.randint(0, 5)), "fetched": t(c + rnd.randint(0, 6)),
                 "started": t(c + rnd.randint(0, 7)), "processed": t(c + rnd.randint(0, 9)),
                 "ended": t(c + rnd.randint(0, 10))}
        status = rnd.choice(("COMPLETED", "COMPLETED", "COMPLETED", "ERROR", "PROCESSING"))
        tasks.append(task(f"t{i}", session=sess, status=status, deps=deps, outputs=mine,
                          times=times, **extra))
        for r in mine:
            done = rnd.random() < .8
            # completions 16-22 s, a different range per session (so one session's latest
            # time is an ordinary time of another): ties within a session are common
            at = 16 + 2 * SESSIONS.index(sess) + rnd.randint(0, 2)
            results.append(result(r, session=sess, owner=f"t{i}",
                                  status="COMPLETED" if done else "CREATED",
                                  created=t(c), completed=t(at) if done else None))
        outs += mine
        by_session[sess].append(f"t{i}")
    return make_bundle(path, tasks=tasks, results=results, snapshot=60)


def _whole_graph_walk(g, lasts, scope):
    pred, edge = critical_path._binding(g, scope)
    k, node = critical_path._walk(g, pred, lasts)
    return k, node, edge[node]


def _reference_sessions(g, ids):
    """last result, start, end and session end of each session, one session at a time."""
    T = g.n_tasks
    names = g.sessions.to_pylist()
    rts, tts = g.result_ts, g.task_ts
    out = []
    for sid in ids:
        code = names.index(sid) if sid in names else -2
        tasks = [i for i in range(T) if g.session_of[i] == code]
        res = [j for j in range(g.n_results) if g.session_of[T + j] == code]
        done = [j for j in res if g.result_status[j] == critical_path.COMPLETED
                and rts["completed_at"][j] != NA]
        last, end = -1, NA
        if done:
            end = max(int(rts["completed_at"][j]) for j in done)
            last = T + min(j for j in done if rts["completed_at"][j] == end)
        made = [int(tts["created_at"][i]) for i in tasks if tts["created_at"][i] != NA]
        start = min(made) if made else NA
        if last >= 0 and (start == NA or start > end):
            start = int(rts["created_at"][last - T])
        ends = [int(tts["ended_at"][i]) for i in tasks if tts["ended_at"][i] != NA] + \
            [int(rts["completed_at"][j]) for j in res if rts["completed_at"][j] != NA]
        s_end = max(ends) if ends else NA
        if end != NA and (s_end == NA or s_end < end):
            s_end = end
        out.append((last, start, end, s_end))
    return out


@pytest.mark.parametrize("few", [8, 0], ids=["per-session-reductions", "ufunc-at"])
@pytest.mark.parametrize("cyclic", [False, True], ids=["dag", "with-cycles"])
@pytest.mark.parametrize("seed", range(6))
def test_the_walk_over_visited_nodes_is_the_whole_graph_walk(tmp_path, seed, cyclic, few, monkeypatch):
    """Given random graphs of three sessions (ties, missing times, retries, subtasks; cycles in
    half of them), when the critical paths of all sessions, of two, and of one are walked from
    the nodes visited only, then every chain step, its order and its edge are the ones the
    whole-graph binding gives, and last result, start, end and wall time of each session are
    the plain per-session reading of the arrays. A graph with a cycle, and half the acyclic
    ones, are walked past the step where the walk turns to the whole graph (3 steps here). The per-session
    reductions are checked both ways: a masked reduction per session (few sessions) and one
    ufunc.at over all rows (many)."""
    snap = Snapshot.open(_random_bundle(tmp_path / "b.aksnap", seed, cyclic), verify=False)
    g = snap.graph
    monkeypatch.setattr(critical_path, "FEW_SESSIONS", few)
    if cyclic or seed % 2:  # past 3 steps, the whole-graph walk (a cycle must take it)
        monkeypatch.setattr(critical_path, "WALK_STEPS_LAZY", 3)
    for ids in (list(SESSIONS), ["s3", "s1"], ["s2"], ["s1", "nope"]):
        p = critical_path.compute(snap, ids)
        ref = _reference_sessions(g, ids)
        assert p.last.tolist() == [r[0] for r in ref]
        assert p.start.tolist() == [r[1] for r in ref]
        assert p.end.tolist() == [r[2] for r in ref]
        want_wall = [(e - s) / 1e6 if last >= 0 and e != NA and s != NA else None
                     for last, s, _, e in ref]
        assert [None if np.isnan(w) else w for w in p.wall.tolist()] == want_wall
        codes = {s: i for i, s in enumerate(g.sessions.to_pylist())}
        scope = np.isin(g.session_of[:g.n_tasks], [codes[s] for s in ids if s in codes])
        with_path = np.flatnonzero(p.last >= 0)
        k, node, edge = _whole_graph_walk(g, p.last[with_path], scope)
        assert p.k.tolist() == with_path[k].tolist() and p.node.tolist() == node.tolist()
        first = np.r_[True, k[1:] != k[:-1]] if len(k) else np.zeros(0, dtype=bool)
        assert p.prev_edge.tolist() == np.where(first, 0, edge).tolist()
        if cyclic and not g.is_dag():
            assert len(p.node)  # the fallback was walked


def test_timestamps_at_a_few_rows_are_the_whole_columns_values(tmp_path):
    """Given a bundle whose tasks table has many row groups and missing timestamps, when a
    timestamp column not read yet is asked for at a few rows (unsorted, repeated, spread over
    the row groups), then the values are those of the whole column at those rows (NA where
    missing), the column is still not read whole, and a row beyond the table is refused."""
    import pyarrow.parquet as pq

    from aksnap.analyzer.snapshot import BundleError

    rnd = random.Random(5)
    tasks = [task(f"t{i}", outputs=[f"r{i}"],
                  times={"created": i, "submitted": None if i % 7 == 0 else i + rnd.random()})
             for i in range(3000)]
    results = [result(f"r{i}", owner=f"t{i}", completed=i + 1) for i in range(3000)]
    from aksnap.analyzer.testing import payloads_for, table
    from aksnap.bundle_writer import BundleWriter

    with BundleWriter(tmp_path / "b.aksnap", row_group_size=500) as w:  # six row groups
        w.write("tasks", table("tasks", tasks))
        w.write("results", table("results", results + payloads_for(tasks)))
        for name in ("sessions", "partitions"):
            w.write(name, table(name, []))
        b = w.commit({})
    groups = pq.ParquetFile(b / "tasks.parquet").metadata.num_row_groups
    snap = Snapshot.open(b, verify=False)
    ts = snap.graph.task_ts
    rows = np.array([2999, 0, 7, 1500, 7, 2048, 1023, 1024, 14], dtype=np.int64)
    got = ts.at("submitted_at", rows)
    assert "submitted_at" not in ts._got
    whole = ts["submitted_at"]
    assert got.tolist() == whole[rows].tolist() and (got == NA).sum() == 4
    assert ts.at("submitted_at", rows).tolist() == got.tolist()  # now from the column read whole
    with pytest.raises(BundleError):
        Snapshot.open(b, verify=False).graph.task_ts.at("created_at", np.array([3000]))
    assert groups == 6
