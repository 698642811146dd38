"""``export --update`` trusts neither the endpoint nor the parent's rows blindly.

Item 6: a parent updated against a control plane that does not hold its sessions (an edited
endpoint, a server restarted with other data) is refused with a sentence that says which
evidence disagreed (no session left; a session's creation time or partitions; a task the
parent saw final that is gone), nothing is written and the parent is untouched; a session
deleted from the cluster while others remain is dropped and said, as ArmoniK users expect.

Item 7: the parent's final rows are only kept when the server's per-status counts allow them
(each session, each status that can only grow); a parent whose final rows were edited (and
its checksums recomputed) gets that session rescanned, and the manifest records the per-status
server counts of every session (``sessions[i].server_counts``).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap.bundle import (FORMAT_NAME, FORMAT_VERSION, MANIFEST, TASK_FINAL_STATUSES,
                           BundleError, Manifest, read_manifest, sha256_file, verify_bundle)
from aksnap.cli import app
from aksnap.exporter import export, update
from aksnap.exporter.client import SelectionError
from aksnap.fixtures.scenarios import build_scenario
from aksnap.fixtures.server import SimulatedControlPlane, StaticCluster

runner = CliRunner()
KEYS = {"sessions": "session_id", "tasks": "task_id", "results": "result_id",
        "partitions": "partition_id"}


def assert_same_content(a, b):
    for table, key in KEYS.items():
        ta = pq.read_table(a / f"{table}.parquet").sort_by(key)
        tb = pq.read_table(b / f"{table}.parquet").sort_by(key)
        assert ta.num_rows == tb.num_rows, f"{table}: {ta.num_rows} rows vs {tb.num_rows}"
        for col in ta.column_names:
            assert ta.column(col).equals(tb.column(col)), f"{table}.{col} differs"


def files(bundle):
    return {p.name: sha256_file(p) for p in bundle.iterdir()}


def reseal(bundle, table):
    """Recompute a table's checksum, size and rows in the manifest (what an attacker does)."""
    f = bundle / f"{table}.parquet"
    m = json.loads((bundle / MANIFEST).read_text())
    m["tables"][table].update(sha256=sha256_file(f), bytes=f.stat().st_size,
                              rows=pq.ParquetFile(f).metadata.num_rows)
    (bundle / MANIFEST).write_text(json.dumps(m))


def set_status(bundle, table, old, new, n):
    """Rewrite the first ``n`` rows of ``table`` in status ``old`` as ``new``, and reseal."""
    f = bundle / f"{table}.parquet"
    t = pq.read_table(f)
    status = t.column("status").to_pylist()
    hits = [i for i, s in enumerate(status) if s == old][:n]
    assert len(hits) == n, f"only {len(hits)} {table} rows are {old}"
    for i in hits:
        status[i] = new
    t = t.set_column(t.schema.get_field_index("status"), t.schema.field("status"),
                     pa.array(status, t.schema.field("status").type))
    pq.write_table(t, f)
    reseal(bundle, table)
    assert verify_bundle(bundle) == [], "the tampered bundle must look intact"


def status_counts(bundle, table, session):
    t = pq.read_table(bundle / f"{table}.parquet")
    t = t.filter(pc.equal(t.column("session_id"), session))
    return {d["values"]: d["counts"] for d in pc.value_counts(t.column("status")).to_pylist()}


def doppelganger(view, *, sessions=None, tasks=None, results=None):
    """A static cluster holding ``view``'s tables, some replaced (wire tables)."""
    return StaticCluster(tasks if tasks is not None else view.tasks,
                         results if results is not None else view.results,
                         sessions if sessions is not None else view.sessions, view.partitions)


def refused(r, *words):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("aksnap: error:")]
    assert len(errors) == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in errors[0], (w, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def htcmock():
    """An htcmock run frozen at 60 % (live: open tasks and results remain)."""
    scenario = build_scenario("htcmock", seed=5, tasks=600)
    with SimulatedControlPlane(scenario, at=0.6 * scenario.cluster.end_time) as cp:
        yield cp, cp.start()


@pytest.fixture(scope="module")
def parent(htcmock, tmp_path_factory):
    """The htcmock run exported once: (bundle, its session id, the raw wire view)."""
    cp, ep = htcmock
    b = tmp_path_factory.mktemp("trust") / "parent"
    s = export(ep, b, all_sessions=True, page_size=100)
    return b, s.sessions[0], cp.cluster.view(cp.now())


def copy_of(bundle, to):
    import shutil

    shutil.copytree(bundle, to)
    return to


# -- item 6: not the parent's cluster ------------------------------------------------------

def test_an_update_against_another_cluster_is_refused_and_writes_nothing(parent, tmp_path):
    """Given a parent exported from an htcmock run, and another control plane (another
    scenario, another seed), when the parent is updated with --endpoint pointing at the other
    one, then exit 2 with one sentence saying it does not hold the parent's session, nothing
    at --out, the parent byte for byte as it was."""
    b, session, _ = parent
    before = files(b)
    other = build_scenario("chain", seed=2, tasks=40)
    with SimulatedControlPlane(other) as cp:
        ep = cp.start()
        r = runner.invoke(app, ["export", "--update", str(b), "--endpoint", ep, "--out",
                                str(tmp_path / "u"), "-q"])
    refused(r, "does not hold the session of", ep, session, "not the cluster", "deleted")
    assert not (tmp_path / "u").exists()
    assert [p.name for p in tmp_path.iterdir()] == []
    assert files(b) == before


def test_an_edited_recorded_endpoint_is_refused_in_place_and_the_parent_is_untouched(parent,
                                                                                    tmp_path):
    """Given a parent whose manifest's source.endpoint was edited to another cluster's, when
    it is updated in place (no --out, no --endpoint), then exit 2, and the parent is exactly
    as it was (no partial directory beside it)."""
    b = copy_of(parent[0], tmp_path / "b")
    other = build_scenario("failures", seed=3)
    with SimulatedControlPlane(other) as cp:
        ep = cp.start()
        m = json.loads((b / MANIFEST).read_text())
        m["source"]["endpoint"] = ep
        (b / MANIFEST).write_text(json.dumps(m))
        before = files(b)
        r = runner.invoke(app, ["export", "--update", str(b), "-q"])
    refused(r, "does not hold the session of", ep, "not the cluster")
    assert files(b) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_a_session_with_the_same_id_but_another_creation_time_is_refused(parent, tmp_path):
    """Given a control plane holding a session with the parent's id but created a day later
    (another run that reused the id), when updated against it, then the sentence names the
    session and both creation times."""
    b, session, view = parent
    created = view.sessions.column("created_at")
    moved = view.sessions.set_column(view.sessions.schema.get_field_index("created_at"),
                                     "created_at", pc.add(created, pa.scalar(
                                         timedelta(days=1), pa.duration("us"))))
    before = files(b)
    with SimulatedControlPlane(doppelganger(view, sessions=moved)) as cp:
        ep = cp.start()
        with pytest.raises(SelectionError) as e:
            update(b, tmp_path / "u", endpoint=ep)
    msg = str(e.value)
    assert session in msg and "created at" in msg and "\n" not in msg
    old, new = created[0].as_py(), pc.add(created, pa.scalar(timedelta(days=1)))[0].as_py()
    assert old.isoformat() in msg and new.isoformat() in msg, msg
    assert not (tmp_path / "u").exists() and files(b) == before


def test_a_session_with_other_partitions_is_refused(parent, tmp_path):
    b, session, view = parent
    s = view.sessions
    other = s.set_column(s.schema.get_field_index("partition_ids"), s.schema.field("partition_ids"),
                         pa.array([["gpu"]] * s.num_rows, s.schema.field("partition_ids").type))
    with SimulatedControlPlane(doppelganger(view, sessions=other)) as cp:
        with pytest.raises(SelectionError, match="partitions") as e:
            update(b, tmp_path / "u", endpoint=cp.start())
    assert session in str(e.value) and "gpu" in str(e.value)


def test_a_session_whose_final_tasks_are_gone_is_refused(parent, tmp_path):
    """Given a control plane holding the parent's session (same id, same creation time) but
    none of the tasks the parent saw final (ArmoniK never removes a task from a session it
    keeps: it is another cluster's data), when updated against it, then refused naming a
    missing task."""
    b, session, view = parent
    final = pc.is_in(view.tasks.column("status"),
                     value_set=pa.array([f"TASK_STATUS_{s}" for s in TASK_FINAL_STATUSES]))
    kept = view.tasks.filter(pc.invert(final))
    gone = set(view.tasks.filter(final).column("id").to_pylist())
    with SimulatedControlPlane(doppelganger(view, tasks=kept)) as cp:
        with pytest.raises(SelectionError) as e:
            update(b, tmp_path / "u", endpoint=cp.start())
    msg = str(e.value)
    assert "absent" in msg and session in msg
    assert any(t in msg for t in gone), msg
    assert not (tmp_path / "u").exists()


def test_a_parent_of_several_sessions_none_of_which_is_there_is_refused(tmp_path):
    """Given a parent of several sessions and a cluster holding none of them (a control plane
    restarted with other data), then the sentence counts them and names the first ones."""
    with SimulatedControlPlane(build_scenario("failures", seed=1)) as cp:
        s = export(cp.start(), tmp_path / "p", all_sessions=True)
    with SimulatedControlPlane(build_scenario("failures", seed=2)) as cp:
        with pytest.raises(SelectionError) as e:
            update(tmp_path / "p", tmp_path / "u", endpoint=cp.start())
    msg = str(e.value)
    assert f"holds none of the {len(s.sessions)} sessions" in msg and s.sessions[0] in msg
    assert "every one of those sessions was deleted" in msg and not (tmp_path / "u").exists()


@pytest.mark.parametrize("by_id", [False, True], ids=["--all", "--session ids"])
def test_a_session_deleted_from_the_cluster_is_dropped_and_said(tmp_path, by_id):
    """Given a parent of two sessions, and the cluster after one of them was deleted (its
    session, tasks and results gone: ArmoniK's DeleteSession), when updated, then the update
    succeeds, equals a full export of what remains, and says the session was deleted (a
    manifest warning and update.deleted_sessions), whether the parent selected --all or ids."""
    scenario = build_scenario("failures", seed=1)
    with SimulatedControlPlane(scenario) as cp:
        ep = cp.start()
        view = cp.cluster.view(cp.now())
        ids = view.sessions.column("session_id").to_pylist()
        assert len(ids) >= 2
        kw = {"sessions": ids} if by_id else {"all_sessions": True}
        export(ep, tmp_path / "p", **kw)
    gone = ids[1]

    def without(t, col="session_id"):
        return t.filter(pc.not_equal(t.column(col), gone))

    rest = doppelganger(view, sessions=without(view.sessions), tasks=without(view.tasks),
                        results=without(view.results))
    with SimulatedControlPlane(rest) as cp:
        ep = cp.start()
        up = update(tmp_path / "p", tmp_path / "u", endpoint=ep)
        full = export(ep, tmp_path / "f", **({"sessions": [i for i in ids if i != gone]}
                                             if by_id else {"all_sessions": True}))
    assert up.update["dropped_sessions"] == [gone] and up.update["deleted_sessions"] == [gone]
    assert any(gone in w and "deleted" in w for w in up.warnings), up.warnings
    assert_same_content(up.path, full.path)


# -- item 7: the parent's final rows are checked against the server's counts ---------------

@pytest.mark.parametrize("table,old,new", [
    ("tasks", "COMPLETED", "ERROR"),        # final -> final: the row total is unchanged
    ("tasks", "PROCESSING", "COMPLETED"),   # open -> final: the row would never be fetched
    ("results", "COMPLETED", "ABORTED"),
], ids=["task COMPLETED->ERROR", "task PROCESSING->COMPLETED", "result COMPLETED->ABORTED"])
def test_a_tampered_parent_is_rescanned_and_the_bundle_matches_the_server(parent, htcmock,
                                                                          tmp_path, table, old,
                                                                          new):
    """Given a parent whose rows were edited (3 statuses changed, checksums recomputed so that
    check sees an intact bundle), when it is updated against its unchanged cluster, then the
    per-status counts disagree with the server's, the session is rescanned, the new bundle
    equals a full export, and its manifest records the server's per-status counts, equal to
    its rows'."""
    cp, ep = htcmock
    b = copy_of(parent[0], tmp_path / "b")
    session = parent[1]
    set_status(b, table, old, new, 3)
    up = update(b, tmp_path / "u", page_size=100)
    assert up.update["rescanned_sessions"] == [session]
    full = export(ep, tmp_path / "f", all_sessions=True, page_size=100)
    assert_same_content(up.path, full.path)
    entry = read_manifest(up.path).sessions[0]
    assert entry["server_counts"] == {"tasks": status_counts(up.path, "tasks", session),
                                      "results": status_counts(up.path, "results", session)}


def test_an_untampered_parent_is_not_rescanned_and_records_the_counts(parent, htcmock, tmp_path):
    """Given the same parent untouched, when updated, then nothing is rescanned (the counts
    agree), and the manifest of a plain export and of the update both record the per-status
    server counts (the selection's total too)."""
    cp, ep = htcmock
    b, session, _ = parent
    up = update(b, tmp_path / "u", page_size=100)
    assert up.update["rescanned_sessions"] == []
    for bundle in (b, up.path):
        m = read_manifest(bundle)
        want = {"tasks": status_counts(bundle, "tasks", session),
                "results": status_counts(bundle, "results", session)}
        assert m.sessions[0]["server_counts"] == want
        assert m.consistency["server_counts"] == want
        assert m.server_counts() == {session: want}


def test_a_live_run_tampered_parent_is_rescanned_after_the_run_moved_on(tmp_path):
    """Given a parent at 30 % of a run whose final task statuses were edited, when the run
    reaches 70 % and the parent is updated, then the session is rescanned and the bundle
    equals a full export at 70 % (the bounds hold for a cluster that moves)."""
    scenario = build_scenario("htcmock", seed=9, tasks=600)
    end = scenario.cluster.end_time
    with SimulatedControlPlane(scenario, at=0.3 * end) as cp:
        ep = cp.start()
        s = export(ep, tmp_path / "p", all_sessions=True, page_size=64)
        set_status(tmp_path / "p", "tasks", "COMPLETED", "CANCELLED", 2)
        cp.at = 0.7 * end
        up = update(tmp_path / "p", tmp_path / "u", page_size=64)
        full = export(ep, tmp_path / "f", all_sessions=True, page_size=64)
    assert up.update["rescanned_sessions"] == s.sessions
    assert_same_content(up.path, full.path)


def test_server_counts_are_optional_and_checked_when_present():
    """Old manifests (no server_counts) still read; a malformed one is a sentence."""
    base = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "tables": {t: {"file": f"{t}.parquet", "rows": 0, "bytes": 0, "sha256": "0" * 64}
                       for t in ("sessions", "tasks", "results", "partitions")}}
    old = Manifest.from_dict({**base, "sessions": [{"session_id": "s", "tasks": 0}]})
    assert old.server_counts() == {}
    ok = Manifest.from_dict({**base, "sessions": [
        {"session_id": "s", "server_counts": {"tasks": {"COMPLETED": 2}, "results": {}}}]})
    assert ok.server_counts() == {"s": {"tasks": {"COMPLETED": 2}, "results": {}}}
    for bad in ({"tasks": {"COMPLETED": -1}, "results": {}}, {"tasks": {}}, [1],
                {"tasks": {"COMPLETED": True}, "results": {}}):
        with pytest.raises(BundleError, match="server_counts"):
            Manifest.from_dict({**base, "sessions": [{"session_id": "s", "server_counts": bad}]})


def test_the_bounds_of_each_status_that_can_only_grow():
    """Given hand-made counts (before -> after: 2 tasks completed, 1 result deleted), then a
    merge inside every bound passes, and one outside any bound is named with its numbers;
    statuses that come and go (PENDING) are asked nothing."""
    from aksnap.exporter.counts import Counts, disagreement

    def c(tasks, results):
        x = Counts()
        x.by_status = {"tasks": tasks, "results": results}
        x.totals = {"tasks": sum(tasks.values()), "results": sum(results.values())}
        return x

    before = c({"COMPLETED": 5, "PENDING": 3}, {"COMPLETED": 4, "CREATED": 4})
    after = c({"COMPLETED": 7, "PENDING": 1}, {"COMPLETED": 5, "DELETED": 1, "CREATED": 2})
    assert disagreement(before, c({"COMPLETED": 6, "PENDING": 2},
                                  {"COMPLETED": 5, "CREATED": 3}), after) is None
    assert disagreement(before, c({"COMPLETED": 7, "PENDING": 0, "RUNNING": 1},
                                  {"COMPLETED": 4, "DELETED": 1, "CREATED": 3}), after) is None
    too_many = c({"COMPLETED": 8}, {"COMPLETED": 5, "CREATED": 3})
    assert disagreement(before, too_many, after) == (
        "8 tasks COMPLETED, the server counted 5 before and 7 after")
    lost = c({"COMPLETED": 4, "ERROR": 1, "PENDING": 3}, {"COMPLETED": 4, "CREATED": 4})
    assert disagreement(before, lost, after) == (
        "4 tasks COMPLETED, the server counted 5 before and 7 after")
    aborted = c({"COMPLETED": 6, "PENDING": 2}, {"COMPLETED": 4, "ABORTED": 2, "CREATED": 2})
    assert disagreement(before, aborted, after) == (
        "2 results ABORTED/DELETED, the server counted 0 before and 1 after")
    missed = c({"COMPLETED": 6}, {"COMPLETED": 5, "CREATED": 3})
    assert disagreement(before, missed, after) == (
        "6 tasks rows, the server had 8 before the fetches")
