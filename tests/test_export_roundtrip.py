"""Round trip: what the simulated control plane serves is what the bundle holds, field by field.

Given a cluster served over real gRPC, when ``export`` runs, then every table of the bundle
equals the server's own view (normalised independently by ``aksnap.exporter.testing``), the
manifest is complete and the checksums hold.
"""

import importlib.util
import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from armonik.protogen.common import objects_pb2, sessions_common_pb2, tasks_common_pb2

from aksnap.bundle import FORMAT_VERSION, META_VERSION_KEY, read_manifest, verify_bundle
from aksnap.exporter import export
from aksnap.exporter.testing import WIRE, bundle_rows
from aksnap.fixtures.server import SimulatedControlPlane, StaticCluster, synthetic_cluster

HAVE_SCENARIOS = importlib.util.find_spec("aksnap.fixtures.scenarios") is not None
SCENARIOS = ["htcmock", "failures", "stuck", "fanout", "chain", "demo"]


def assert_bundle_equals_view(path, view, sessions=None):
    """Every table equals the view (tasks and results restricted to the exported sessions)."""
    for name in ("sessions", "tasks", "results", "partitions"):
        wire = getattr(view, name)
        expected = WIRE[name](wire)
        if sessions is not None and name != "partitions":
            expected = {k: v for k, v in expected.items() if v["session_id"] in sessions}
        got = bundle_rows(pq.read_table(path / f"{name}.parquet"), name)
        assert len(pq.read_table(path / f"{name}.parquet")) == len(got), f"{name}: duplicate ids"
        assert got.keys() == expected.keys(), f"{name}: ids differ"
        for k in expected:
            assert got[k] == expected[k], f"{name} row {k} differs"


def test_synthetic_cluster_round_trip_with_shards(tmp_path):
    """Given 3,000 tasks in 2 sessions and a page size of 100 (so each session is sharded 16
    ways), when exported, then the bundle equals the server's view and the manifest says how."""
    cluster = synthetic_cluster(3000, n_sessions=2, seed=3)
    with SimulatedControlPlane(cluster) as cp:
        ep = cp.start()
        s = export(ep, tmp_path / "b", all_sessions=True, page_size=100, jobs=3)
        view = cp.view()
    assert s.rows["tasks"] == 3000 and s.rows["results"] == 6000
    assert_bundle_equals_view(s.path, view)
    m = read_manifest(s.path).to_dict()
    assert verify_bundle(s.path) == []
    assert m["format_version"] == FORMAT_VERSION
    assert m["armonik_versions"]["core"] and m["armonik_versions"]["api"]
    assert m["selection"]["all"] is True and m["source"]["tls"] is False
    assert m["consistency"]["tasks"]["units"] == 32  # 2 sessions x 16 shards
    assert {x["session_id"] for x in m["sessions"]} == set(s.sessions)
    for x in m["sessions"]:  # a frozen cluster: the server's counts match the rows
        assert sum(x["server_task_counts_at_end"].values()) == x["tasks"]
    # Some synthetic tasks are PROCESSING: the snapshot is live, and the manifest says why.
    assert s.snapshot == "live" and any(x["non_final_tasks"] for x in m["sessions"])
    for name in ("tasks", "results"):
        meta = pq.read_schema(s.path / f"{name}.parquet").metadata
        assert meta[META_VERSION_KEY] == str(FORMAT_VERSION).encode()


def test_many_sessions_are_listed_in_groups(tmp_path, monkeypatch):
    """Given 40 small sessions (more than ALONE_SESSIONS) and groups of 8 with room for 2 pages
    of 50 rows, when exported with --all, then sessions are listed a group at a time (OR
    filters; a group over 100 rows halved until it fits), every row is there once, and the
    server's counts are the selection's total instead of one call per session."""
    from aksnap.exporter import plan

    monkeypatch.setattr(plan, "GROUP_SESSIONS", 8)
    monkeypatch.setattr(plan, "GROUP_PAGES", 2)
    cluster = synthetic_cluster(2000, n_sessions=40, seed=5)
    with SimulatedControlPlane(cluster) as cp:
        ep = cp.start()
        s = export(ep, tmp_path / "b", all_sessions=True, page_size=50, jobs=3)
        view = cp.view()
    assert_bundle_equals_view(s.path, view)
    m = read_manifest(s.path).to_dict()
    units = m["consistency"]["tasks"]["units"]
    assert 5 <= units < 40  # 5 groups of 8 (50 tasks a session: halved to fit 100 rows)
    assert m["consistency"]["tasks"]["rescans"] == 0
    assert sum(m["consistency"]["server_task_counts_at_end"].values()) == s.rows["tasks"]
    assert all(x["server_task_counts_at_end"] is None for x in m["sessions"])
    # per-status counts: the selection's total only (one set of calls per group)
    assert all(x["server_counts"] is None for x in m["sessions"])
    for table in ("tasks", "results"):
        rows = pq.read_table(s.path / f"{table}.parquet", columns=["status"]).column("status")
        want = {d["values"]: d["counts"] for d in pc.value_counts(rows).to_pylist()}
        assert m["consistency"]["server_counts"][table] == want, table
    assert sum(x["tasks"] for x in m["sessions"]) == s.rows["tasks"] == 2000


def test_selection_exports_only_the_named_session(tmp_path):
    cluster = synthetic_cluster(400, n_sessions=3, seed=1)
    with SimulatedControlPlane(cluster) as cp:
        ep = cp.start()
        one = cluster.sessions.column("session_id")[1].as_py()
        s = export(ep, tmp_path / "b", sessions=[one])
        view = cp.view()
    assert s.sessions == [one]
    assert_bundle_equals_view(s.path, view, sessions={one})
    assert json.loads((s.path / "manifest.json").read_text())["selection"]["sessions"] == [one]


def _odd_ids_cluster():
    """Ids that start with no lowercase hex digit live in no shard: the residual scan finds them."""
    ts = {"seconds": 1_750_000_000}
    sess = sessions_common_pb2.SessionRaw(session_id="sess", status="SESSION_STATUS_CLOSED",
                                          created_at=ts, closed_at=ts, partition_ids=["default"],
                                          options=objects_pb2.TaskOptions(partition_id="default"))
    ids = [f"{c}{i:04d}" for c in "0123456789abcdef" for i in range(12)]
    ids += [f"task-{i}" for i in range(20)] + [f"ABC{i}" for i in range(5)] + ["zz", "_x"]
    tasks = [tasks_common_pb2.TaskDetailed(
        id=t, session_id="sess", initial_task_id=t, parent_task_ids=["sess"],
        status="TASK_STATUS_COMPLETED", created_at=ts, ended_at=ts,
        options=objects_pb2.TaskOptions(partition_id="default", max_retries=1),
        output=tasks_common_pb2.TaskDetailed.Output(success=True)) for t in ids]
    return StaticCluster.from_messages(tasks=tasks, sessions=[sess]), len(ids)


def test_ids_outside_the_hex_shards_are_exported_once(tmp_path):
    """Given 192 hex-prefixed ids and 27 others, with pages small enough to shard,
    when exported, then all 219 tasks are there exactly once, and the snapshot is final."""
    cluster, n = _odd_ids_cluster()
    with SimulatedControlPlane(cluster) as cp:
        s = export(cp.start(), tmp_path / "b", sessions=["sess"], page_size=10)
        view = cp.view()
    assert s.rows["tasks"] == n
    assert_bundle_equals_view(s.path, view)
    assert s.snapshot == "final"


@pytest.mark.skipif(not HAVE_SCENARIOS, reason="aksnap.fixtures.scenarios not written yet")
@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_round_trips(tmp_path, name):
    """Given each seeded scenario at its snapshot time (small size), when exported with
    --all, then sessions, tasks, results and partitions equal the server's truth exactly."""
    from aksnap.fixtures.scenarios import build_scenario

    sc = build_scenario(name, seed=0, tasks=300)
    with SimulatedControlPlane(sc) as cp:
        s = export(cp.start(), tmp_path / "b", all_sessions=True, page_size=50)
        view = cp.cluster.view(cp.now())
    assert_bundle_equals_view(s.path, view)
    assert verify_bundle(s.path) == []
    open_tasks = sum(x["non_final_tasks"] for x in s.manifest["sessions"])
    assert s.snapshot == ("final" if open_tasks == 0 else "live")


def test_session_filters_select_by_status_and_creation_date(tmp_path):
    """Given the failures scenario (two RUNNING sessions created at 0 s and 0.3 s, one
    CANCELLED at 0.2 s), when selecting by status or creation date, then exactly the matching
    sessions (and their tasks) are exported; an empty selection is refused."""
    from aksnap.exporter import SelectionError
    from aksnap.fixtures.scenarios import build_scenario

    sc = build_scenario("failures", seed=0, tasks=300)
    with SimulatedControlPlane(sc) as cp:
        ep = cp.start()
        sessions = cp.view().sessions.to_pylist()
        by_status = {}
        for s in sessions:
            by_status.setdefault(s["status"].removeprefix("SESSION_STATUS_"), set()).add(s["session_id"])
        got = export(ep, tmp_path / "a", status="cancelled")
        assert set(got.sessions) == by_status["CANCELLED"]
        assert got.manifest["selection"]["status"] == "CANCELLED"
        tasks = pq.read_table(got.path / "tasks.parquet").column("session_id").to_pylist()
        assert set(tasks) == by_status["CANCELLED"]
        got = export(ep, tmp_path / "b", status="RUNNING", created_after="2026-01-01T00:00:00.25Z")
        late = {s["session_id"] for s in sessions
                if s["created_at"].isoformat() >= "2026-01-01T00:00:00.250000"}
        assert set(got.sessions) == by_status["RUNNING"] & late and got.sessions
        with pytest.raises(SelectionError, match="no session matches"):
            export(ep, tmp_path / "c", created_before="2000-01-01")
    assert not (tmp_path / "c").exists()
