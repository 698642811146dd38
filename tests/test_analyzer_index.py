"""The cold open streams (issue 21): the index built row group by row group equals, array for
array, the one built from whole columns; the id lookup answers exactly what Arrow's hash join
answers, even for ids crafted to collide.
"""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from aksnap.analyzer import idindex
from aksnap.analyzer.graph import TaskGraph
from aksnap.analyzer.idindex import IdIndex
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import result, table, task
from aksnap.bundle import TABLES
from aksnap.bundle_writer import BundleWriter


def _messy_rows(seed: int, n: int = 300, guids: bool = False):
    """Tasks and results with everything the index meets: GUIDs and short ids, retries
    (``ID###n``), two sessions, missing references of every kind, empty owners,
    non-ASCII ids, a duplicate result id. ``guids``: every id a GUID (one width, the fast
    paths) but for the retries, which come last."""
    rnd = random.Random(seed)

    def guid() -> str:
        return "%08x-%04x-%04x-%04x-%012x" % tuple(rnd.getrandbits(b) for b in (32, 16, 16, 16, 48))

    tids = [guid() if i % 3 or guids else f"t{i}" for i in range(n)]
    if not guids:
        tids[5] = "tâche-é"  # multi-byte: the lookup falls back to Arrow for such batches
    rids = [guid() if i % 4 or guids else f"r{i}" for i in range(2 * n)]
    tasks, results = [], []
    for i, tid in enumerate(tids):
        deps = [rnd.choice(rids) for _ in range(rnd.randrange(3))]
        if i % 17 == 0:
            deps.append("no-such-result")
        creator = rnd.choice(tids[:i]) if i and i % 5 else ("ghost-task" if i % 10 == 0 else "")
        tasks.append(task(tid, session="s1" if i % 2 else "s2", deps=deps,
                          payload=rnd.choice(rids) if i % 7 else ("missing-payload" if i % 14 else ""),
                          outputs=[rids[2 * i], rids[2 * i + 1]], created_by=creator,
                          status=rnd.choice(["COMPLETED", "PROCESSING", "ERROR", "RETRIED"])))
        if i % 11 == 0 and i and not guids:  # a retry of the task before it
            tasks.append(task(f"{tids[i - 1]}###1", initial=tids[i - 1], created_by=tids[i - 1],
                              session="s1", outputs=[rids[2 * i - 1]]))
    for j, rid in enumerate(rids):
        owner = rnd.choice([tids[j // 2], "", "ghost-owner"]) if j % 9 else tids[j // 2]
        results.append(result(rid, session="s2" if j % 3 else "s3", owner=owner,
                              created_by=rnd.choice(tids + [""]),
                              status=rnd.choice(["COMPLETED", "CREATED", "ABORTED"])))
    results.append(result(rids[3], owner=tids[0]))  # a duplicate id: the first row answers
    if guids:  # retries at the end: the task ids change width in the last row group
        tasks += [task(f"{tids[i]}###1", initial=tids[i], created_by=tids[i], session="s1",
                       outputs=[rids[2 * i + 1]]) for i in range(1, n, 37)]
    return tasks, results


def _bundle(path, tasks, results, row_group_size: int):
    with BundleWriter(path, overwrite=True, row_group_size=row_group_size) as w:
        data = {"tasks": table("tasks", tasks), "results": table("results", results)}
        for name in TABLES:
            w.write(name, data.get(name, table(name, [])))
        return w.commit({})


def _whole(snap) -> TaskGraph:
    g = TaskGraph.__new__(TaskGraph)
    g._snap = snap
    g._build(snap.read_columns("tasks", TaskGraph.TASK_COLUMNS, dictionary=TaskGraph.DICTIONARY_COLUMNS),
             snap.read_columns("results", TaskGraph.RESULT_COLUMNS, dictionary=TaskGraph.DICTIONARY_COLUMNS))
    g._finish()
    return g


def _streamed(snap) -> TaskGraph:
    g = TaskGraph.__new__(TaskGraph)
    g._snap = snap
    seen = []
    g._build_streamed(snap, lambda done, total: seen.append((done, total)))
    g._finish()
    # progress reaches the end: the rows streamed, the tasks twice (their expected outputs apart)
    assert seen and seen[-1][0] == seen[-1][1] == g.n + g.n_tasks
    return g


def _assert_same(a: TaskGraph, b: TaskGraph) -> None:
    for k in TaskGraph._CACHED:
        if k == "_missing_nodes":
            continue
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype and np.array_equal(x, y), k
    assert a.sessions.equals(b.sessions)
    assert a.missing_refs == b.missing_refs
    assert a.task_ids.equals(b.task_ids) and a.result_ids.equals(b.result_ids)
    for k in ("spawn", "retry"):
        assert np.array_equal(getattr(a, k).src, getattr(b, k).src)
        assert np.array_equal(getattr(a, k).dst, getattr(b, k).dst)


@pytest.mark.parametrize("row_group_size,stream_rows", [(7, 7), (7, 20), (64, 1000), (100_000, 131_072)])
def test_streamed_index_equals_the_whole_column_build(tmp_path, monkeypatch, row_group_size, stream_rows):
    """Given a bundle with retries, missing references of every kind, empty owners,
    two sessions, a duplicate id and non-ASCII ids, written in row groups of 7 rows (read one
    or three at a time) or in one, when its index is built by streaming row groups, then every
    array, the sessions, the ids and the missing references equal the whole-column build's."""
    tasks, results = _messy_rows(seed=row_group_size)
    monkeypatch.setattr(Snapshot, "STREAM_ROWS", stream_rows)
    b = _bundle(tmp_path / "b", tasks, results, row_group_size)
    with Snapshot.open(b, verify=False) as snap:
        streamed = _streamed(snap)
        assert streamed.missing_refs  # the rows do miss references: the comparison covers them
        assert (streamed.previous_attempt >= 0).any()
        _assert_same(streamed, _whole(snap))


@pytest.mark.parametrize("row_group_size,stream_rows", [(7, 7), (64, 1000), (100_000, 131_072)])
def test_streamed_index_of_guids_equals_the_whole_column_build(tmp_path, monkeypatch, row_group_size,
                                                                stream_rows):
    """Given a bundle whose ids are all GUIDs (one width: the ids are read into their final
    buffer, the references compared as rows of words) but for retries in the last rows
    (the task ids change width there), when its index is streamed, then it equals the
    whole-column build, and the ids read equal Arrow's whole-column read."""
    from aksnap.analyzer.graph import _read_ids

    tasks, results = _messy_rows(seed=row_group_size, guids=True)
    monkeypatch.setattr(Snapshot, "STREAM_ROWS", stream_rows)
    b = _bundle(tmp_path / "b", tasks, results, row_group_size)
    with Snapshot.open(b, verify=False) as snap:
        _assert_same(_streamed(snap), _whole(snap))
        for t, c in (("tasks", "task_id"), ("results", "result_id")):
            ids = _read_ids(snap, t, c)
            assert ids.type == pa.string() and ids.equals(snap.read_columns(t, [c])[c].combine_chunks())


@pytest.mark.parametrize("count", [1, -5, 2**40])
def test_streamed_index_does_not_trust_the_footer_counts(tmp_path, monkeypatch, count):
    """Given a footer that counts fewer list elements than the file holds, a negative count or
    an absurd one (the arrays the stream fills are sized by it), when the index is streamed,
    then the arrays are capped and grow as needed, and the index still equals the
    whole-column build."""
    tasks, results = _messy_rows(seed=2)
    monkeypatch.setattr(Snapshot, "STREAM_ROWS", 7)
    monkeypatch.setattr(Snapshot, "leaf_values", lambda self, table, column: count)
    b = _bundle(tmp_path / "b", tasks, results, 7)
    with Snapshot.open(b, verify=False) as snap:
        _assert_same(_streamed(snap), _whole(snap))


def test_streamed_index_is_exact_when_every_hash_collides(tmp_path, monkeypatch):
    """Given ids crafted so that every one has the same 64-bit hash (here the hash itself is
    replaced by a constant), when the index is streamed, then it still equals the
    whole-column build: a hash only proposes, the strings decide."""
    tasks, results = _messy_rows(seed=3)
    b = _bundle(tmp_path / "b", tasks, results, 16)
    real = idindex._hash_words

    def colliding(a):
        got = real(a)
        return None if got is None else (np.zeros_like(got[0]), got[1])

    monkeypatch.setattr(idindex, "_hash_words", colliding)
    with Snapshot.open(b, verify=False) as snap:
        _assert_same(_streamed(snap), _whole(snap))


@pytest.mark.parametrize("seed", range(4))
def test_lookup_answers_what_index_in_answers(seed):
    """Given ids of mixed lengths (with duplicates, empty strings, word-aligned and not) and
    references drawn from them and from outside (nulls included), when looked up, then the
    rows are ``index_in``'s: first occurrence, -1 for absent or null."""
    rnd = random.Random(seed)
    alphabet = "ab#-0123456789"
    ids = ["".join(rnd.choice(alphabet) for _ in range(rnd.choice([0, 3, 4, 8, 36, 40, 41])))
           for _ in range(500)]
    refs = [rnd.choice(ids) if rnd.random() < 0.7 else
            (None if rnd.random() < 0.2 else "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(42))))
            for _ in range(2000)]
    ix = IdIndex(pa.array(ids))
    want = pc.fill_null(pc.index_in(pa.array(refs, pa.string()), value_set=pa.array(ids)), -1)
    assert ix.lookup(pa.array(refs, pa.string())).tolist() == want.to_pylist()
    same = [i for i in ids if len(i) == 36][:50]  # one width on both sides: the word compare
    ix = IdIndex(pa.array(same))
    assert ix.lookup(pa.array(same[::-1])).tolist() == list(range(len(same)))[::-1]


@pytest.mark.parametrize("n", [3, 70_000, 3_000_000])
def test_the_csr_order_is_numpys_stable_argsort(n):
    """Given edge keys in [0, n), random (sorted by radix passes) or in a few ascending runs
    (merged), when ordered for a CSR, then the order is ``np.argsort(kind="stable")``'s:
    the neighbours of a node stay in edge order."""
    from aksnap.analyzer.graph import _stable_order

    rng = np.random.default_rng(n)
    for m in (0, 1, 1000, 100_000):
        k = rng.integers(0, n, m)
        assert np.array_equal(_stable_order(k, n), np.argsort(k, kind="stable"))
        runs = np.concatenate([np.sort(k), np.sort(k[: m // 2])])
        assert np.array_equal(_stable_order(runs, n), np.argsort(runs, kind="stable"))


def test_hash_is_the_same_for_a_string_in_any_array():
    """Given the same strings inside arrays of other widths (padded differently), when hashed,
    then their hashes are equal: a reference and its id meet whatever their neighbours."""
    words = ["ab", "abcd", "abcde", "x###1", ""]
    alone = [int(idindex.hash64(pa.array([w]))[0]) for w in words]
    together = idindex.hash64(pa.array(words + ["a" * 40])).tolist()[:-1]
    assert alone == together
    assert len(set(alone)) == len(alone)


def _twins(tmp_path):
    """A bundle ``a`` (t1 reads rA), and ``forged``: a's manifest and checksums over a tasks
    file of the same size in which t1 reads rB (what an edited copy of ``a`` looks like)."""
    import shutil

    from aksnap.analyzer.testing import make_bundle

    def mk(p, dep):
        return make_bundle(p, tasks=[task("t1", deps=[dep], outputs=["o1"])],
                           results=[result("rA"), result("rB"), result("o1", owner="t1")])

    a, b = mk(tmp_path / "a", "rA"), mk(tmp_path / "b", "rB")
    assert (a / "tasks.parquet").stat().st_size == (b / "tasks.parquet").stat().st_size
    forged = tmp_path / "forged"
    shutil.copytree(a, forged)
    shutil.copyfile(b / "tasks.parquet", forged / "tasks.parquet")
    return a, forged


def _reads(snap) -> list[str]:
    g = snap.graph
    return g.node_ids(g.inputs(g.task_index("t1")))


@pytest.mark.parametrize("forged_open", [{"verify": True}, {"verify": False},
                                         {"verify": False, "collect_problems": True}])
def test_an_edited_copy_never_writes_the_index_cache_of_the_genuine_bundle(tmp_path, monkeypatch,
                                                                          forged_open):
    """Given a genuine bundle and an edited copy that keeps its manifest (the same checksums,
    so the same cache key), when the copy is opened first (verified: it fails; --no-verify;
    or by `aksnap check`) and its graph built, then a later verified open of the genuine
    bundle answers from the genuine content, not from an index built from the edited one."""
    from aksnap.errors import BundleError

    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(TaskGraph, "CACHE_MIN_TASKS", 0)
    a, forged = _twins(tmp_path)
    with Snapshot.open(forged, **forged_open) as snap:
        try:
            assert _reads(snap) == ["rB", "t1-payload"]
        except BundleError:
            assert forged_open["verify"]
    with Snapshot.open(a) as snap:
        assert _reads(snap) == ["rA", "t1-payload"]
    with Snapshot.open(a) as snap:  # and the genuine content's own cache serves it
        assert _reads(snap) == ["rA", "t1-payload"]


def test_check_leaves_the_bundle_warm(tmp_path, monkeypatch):
    """Given a bundle never opened, when `aksnap check` has read every byte of it and found
    nothing, then its index cache is written: the next verified open answers without
    building the index (building is made to fail here)."""
    from typer.testing import CliRunner

    from aksnap.analyzer.testing import failure_bundle
    from aksnap.cli import app

    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(TaskGraph, "CACHE_MIN_TASKS", 0)
    b = failure_bundle(tmp_path / "b")
    r = CliRunner().invoke(app, ["check", str(b), "--quiet"])
    assert "Traceback" not in r.output and r.exit_code in (0, 1), r.output
    assert list((tmp_path / "cache").glob("graph-*"))

    def no_build(self, snap, progress=None):
        raise AssertionError("the index was built again")

    monkeypatch.setattr(TaskGraph, "_build_streamed", no_build)
    with Snapshot.open(b) as snap:
        assert snap.graph.n_tasks == snap.manifest.tables["tasks"].rows


def test_progress_shows_only_on_a_terminal_and_never_with_quiet(monkeypatch):
    """Given the command line's choice, then a cold open reports progress only when stderr
    is a terminal and --quiet was not given; the bar waits 2 s before it appears."""
    import sys

    from aksnap.analyzer import progress

    for tty, quiet, shown in ((True, False, True), (True, True, False), (False, False, False)):
        monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
        progress.enable(quiet)
        assert (progress.cold_open("x") is not None) is shown
    progress.enable(True)
    bar = progress.ColdOpen("x")
    bar(1, 10)  # within the delay: nothing started
    assert bar._p is None


@pytest.mark.parametrize("seed", range(3))
def test_frontier_and_origins_over_a_big_scope_equal_the_edge_by_edge_answer(tmp_path, monkeypatch, seed):
    """Given the messy graph (missing references, retries, bad and incomplete nodes), when the
    frontier and the origins of random node sets and of the whole graph are asked through the
    path big scopes take (a mask, inputs OR-reduced along the in-edge CSR: issue 21), then they
    equal a brute force over the edge list, node by node, and the small-scope path's answer."""
    tasks, results = _messy_rows(seed=seed)
    b = _bundle(tmp_path / "b", tasks, results, 64)
    rnd = random.Random(seed)
    with Snapshot.open(b, verify=False) as snap:
        g = _streamed(snap)
        src, dst = g.src.tolist(), g.dst.tolist()
        preds = {v: [] for v in range(g.n)}
        for u, v in zip(src, dst):
            preds[v].append(u)

        def brute(nodes, candidate, spoils):
            return sorted(v for v in set(nodes) if candidate[v] and not any(spoils[u] for u in preds[v]))

        for nodes in [list(range(g.n))] + [rnd.sample(range(g.n), rnd.randrange(1, g.n)) for _ in range(5)]:
            arr = np.array(nodes, dtype=np.int64)
            want_f = brute(nodes, ~g.complete & ~g.retried, ~g.complete)
            for small in (0, 10 ** 9):  # the mask path, then the in-edge walk
                monkeypatch.setattr(TaskGraph, "SMALL_SCOPE", small)
                assert sorted(g.frontier(arr).tolist()) == want_f
            mask = np.zeros(g.n, dtype=bool)
            mask[arr] = True
            assert sorted(g.frontier(mask=mask).tolist()) == want_f  # the edge-list path
            monkeypatch.setattr(TaskGraph, "SMALL_SCOPE", 0)
            got_o = sorted(g.origins(arr).tolist())
            monkeypatch.setattr(TaskGraph, "SMALL_SCOPE", 10 ** 9)
            assert got_o == sorted(g.origins(arr).tolist())
        assert sorted(g.frontier().tolist()) == brute(range(g.n), ~g.complete & ~g.retried, ~g.complete)


@pytest.mark.parametrize("limit", [1, 2, 4096])
def test_depth_and_attempt_of_a_few_tasks_equal_the_whole_arrays(tmp_path, monkeypatch, limit):
    """Given the messy graph (spawn chains, retries of retries), when the depth and attempt of
    every task are asked a few at a time by walking up (issue 21: owner chains at 10M tasks),
    also with a walk cut short (then the whole arrays answer), then they equal the whole
    arrays built by pointer jumping."""
    tasks, results = _messy_rows(seed=5)
    b = _bundle(tmp_path / "b", tasks, results, 64)
    real = TaskGraph._chain_of
    monkeypatch.setattr(TaskGraph, "_chain_of", lambda self, p, w, n, plus=0: real(self, p, w, n, plus, limit))
    with Snapshot.open(b, verify=False) as snap:
        g = _streamed(snap)
        every = np.arange(g.n_tasks)
        got_d, got_a = g.depth_of(every), g.attempt_of(every)
        g2 = _streamed(snap)
        assert g2.depth.max() >= 2 and g2.attempt.max() >= 2  # the walk has somewhere to go
        assert np.array_equal(got_d, g2.depth) and np.array_equal(got_a, g2.attempt)


@pytest.mark.parametrize("dense", [0, 10 ** 9])
@pytest.mark.parametrize("seed", range(4))
def test_the_walk_over_big_levels_reaches_what_a_node_by_node_walk_reaches(monkeypatch, dense, seed):
    """Given random graphs (fan-in and fan-out, chains, cycles, self-loops, nodes with no
    edge), when the nodes upstream of one node or of several are asked with big levels
    marked in a mask of every node (issue 21: the 27M-node root lineage at 10M tasks) and
    with every level sorted, then both equal a breadth-first walk node by node, and the
    list answer is the mask's, sorted."""
    from aksnap.analyzer import graph as G

    monkeypatch.setattr(G, "DENSE_LEVEL", dense)
    rnd = random.Random(seed)
    n = rnd.choice([1, 50, 3000])
    e = rnd.randrange(0, 4 * n)
    src = np.array([rnd.randrange(n) for _ in range(e)], dtype=np.int64)
    dst = np.array([rnd.randrange(n) for _ in range(e)], dtype=np.int64)
    if seed % 2:  # acyclic: edges go from lower to higher nodes
        src, dst = np.minimum(src, dst), np.maximum(src, dst)
        keep = src != dst
        src, dst = src[keep], dst[keep]
    chain = np.arange(min(n, 400))  # and a long chain
    src = np.concatenate([src, chain[:-1]])
    dst = np.concatenate([dst, chain[1:]])
    ptr, nbr = G._csr(dst, src, n)  # in-edges: walking them reaches the ancestors
    preds: dict[int, list[int]] = {v: [] for v in range(n)}
    for u, v in zip(src.tolist(), dst.tolist()):
        preds[v].append(u)

    def brute(starts):
        seen, todo = set(), list(starts)
        while todo:
            for u in preds[todo.pop()]:
                if u not in seen:
                    seen.add(u)
                    todo.append(u)
        return sorted(seen)

    for starts in [[n - 1], [0], rnd.sample(range(n), min(n, 5)), list(range(n))]:
        want = brute(starts)
        mask = G._reach_mask(ptr, nbr, n, np.array(starts))
        assert np.flatnonzero(mask).tolist() == want
        assert G._reach(ptr, nbr, n, np.array(starts)).tolist() == want
        assert sorted(G._reach(ptr, nbr, n, np.array(starts), G._Scratch(n)).tolist()) == want


@pytest.mark.parametrize("failure", ["write", "read", "read-back"])
def test_a_cache_that_fails_leaves_the_built_index_whole(tmp_path, monkeypatch, failure):
    """Given a cold open that releases each index array once written to the cache (the CSR
    sorts, the peak of a 10M-task cold open, then run beside the edges only), when the write
    fails midway (disk full), or the cache written cannot be read, or the released arrays
    cannot be read back either, then the graph that answers is whole: array for array what
    the build computed (read back, or built again), never a graph with arrays missing."""
    from aksnap.analyzer import graph as G

    tasks, results = _messy_rows(seed=2)
    b = _bundle(tmp_path / "b", tasks, results, 64)
    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(TaskGraph, "CACHE_MIN_TASKS", 0)
    with Snapshot.open(b, verify=False) as snap:
        want = _streamed(snap)
    if failure == "write":
        real = G._write_npy

        def write(path, a):
            if path.name == "in_ptr.npy":  # after every releasable array was written
                raise OSError(28, "No space left on device")
            real(path, a)
        monkeypatch.setattr(G, "_write_npy", write)
    else:
        monkeypatch.setattr(TaskGraph, "_load_cache", lambda self, path: False)
    if failure == "read-back":
        def no_load(*a, **k):
            raise OSError("unreadable")
        monkeypatch.setattr(G.np, "load", no_load)
    with Snapshot.open(b, verify=False) as snap:
        g = TaskGraph.from_snapshot(snap)
        assert not g.__dict__.get("_released")
        _assert_same(g, want)
    assert not list((tmp_path / "cache").glob("*.tmp-*"))  # no half-written entry left
