"""``aksnap export --update``: a refreshed bundle equals a full export taken at the same instant.

Given a seeded scenario served over real gRPC with its simulated clock frozen, a bundle is
exported at one instant; the clock is moved on (tasks end, new tasks and results appear,
ownership moves); then ``update`` and a full ``export`` run at the new instant. Every table
of the two bundles, sorted by id, must be equal, while the update fetched fewer rows.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap.bundle import read_manifest, verify_bundle
from aksnap.cli import app
from aksnap.exporter import export, update
from aksnap.exporter.client import SelectionError
from aksnap.fixtures.scenarios import build_scenario
from aksnap.fixtures.server import SimulatedControlPlane

KEYS = {"sessions": "session_id", "tasks": "task_id", "results": "result_id",
        "partitions": "partition_id"}


def assert_same_content(a, b):
    for table, key in KEYS.items():
        ta = pq.read_table(a / f"{table}.parquet").sort_by(key)
        tb = pq.read_table(b / f"{table}.parquet").sort_by(key)
        assert ta.num_rows == tb.num_rows, f"{table}: {ta.num_rows} rows vs {tb.num_rows}"
        for col in ta.column_names:
            assert ta.column(col).equals(tb.column(col)), f"{table}.{col} differs"


@pytest.fixture(scope="module")
def htcmock():
    scenario = build_scenario("htcmock", seed=5, tasks=1500)
    end = scenario.cluster.end_time
    with SimulatedControlPlane(scenario, at=0.25 * end) as cp:
        yield cp, cp.start(), end


def test_update_equals_a_full_export_at_the_same_instant(htcmock, tmp_path):
    """Given a bundle at 25 % of an htcmock run, when the run reaches 60 % and the bundle is
    updated, then the update equals a full export at 60 %, fetched fewer rows than it holds,
    and its manifest names its parent and what was fetched."""
    cp, ep, end = htcmock
    cp.at = 0.25 * end
    parent = export(ep, tmp_path / "p", all_sessions=True, page_size=100)
    assert parent.snapshot == "live"
    cp.at = 0.6 * end
    up = update(tmp_path / "p", tmp_path / "u", page_size=100)
    full = export(ep, tmp_path / "f", all_sessions=True, page_size=100)
    assert up.rows == full.rows and up.rows["tasks"] > parent.rows["tasks"]
    assert_same_content(up.path, full.path)
    assert verify_bundle(up.path) == []

    u = read_manifest(up.path).update
    pm = read_manifest(tmp_path / "p")
    assert u["parent"]["digest"] == pm.digest()
    assert u["parent"]["exported_at"] == pm.exported_at and u["generation"] == 1
    fetched = sum(u["rows_fetched"].values())
    held = up.rows["tasks"] + up.rows["results"]
    assert 0 < fetched < held
    assert sum(u["rows_kept"].values()) > 0
    assert u["rescanned_sessions"] == [] and u["new_sessions"] == []
    # the parent's non-final rows were asked for by id: as many as the parent had open
    open_tasks = sum(s["non_final_tasks"] for s in pm.sessions)
    assert u["refetched_by_id"]["tasks"] == open_tasks
    assert up.update == u and up.as_dict()["update"] == u


def test_a_session_caught_early_is_exported_whole_not_by_id(htcmock, tmp_path, monkeypatch):
    """Given a parent where more than WHOLE_SESSION_SHARE of a session's rows are still open,
    when it is updated, then that session is read whole (one scan, not thousands of by-id
    calls), the manifest says so, and the bundle still equals a full export; below the share
    the same update asks by id."""
    from aksnap.exporter import incremental

    cp, ep, end = htcmock
    cp.at = 0.25 * end
    export(ep, tmp_path / "p", all_sessions=True, page_size=100)
    cp.at = 0.5 * end
    monkeypatch.setattr(incremental, "IDS_PER_REQUEST", 10)
    monkeypatch.setattr(incremental, "WHOLE_SESSION_SHARE", 0.0)
    up = update(tmp_path / "p", tmp_path / "u", page_size=100)
    full = export(ep, tmp_path / "f", all_sessions=True, page_size=100)
    assert_same_content(up.path, full.path)
    u = read_manifest(up.path).update
    assert u["mostly_open_sessions"] == [read_manifest(tmp_path / "p").sessions[0]["session_id"]]
    assert u["refetched_by_id"] == {t: 0 for t in u["refetched_by_id"]}
    assert sum(u["rows_kept"].values()) == 0

    monkeypatch.setattr(incremental, "WHOLE_SESSION_SHARE", 1.0)
    again = read_manifest(update(tmp_path / "p", tmp_path / "u2", page_size=100).path).update
    assert again["mostly_open_sessions"] == [] and again["refetched_by_id"]["tasks"] > 0


def test_update_in_place_replaces_the_bundle_and_chains_generations(htcmock, tmp_path):
    """Without --out the bundle is replaced (atomically, by the writer's exchange); a second
    update names the first as its parent; a final run fetches nothing new by id."""
    cp, ep, end = htcmock
    cp.at = 0.3 * end
    export(ep, tmp_path / "b", all_sessions=True)
    first = read_manifest(tmp_path / "b").digest()
    cp.at = 0.5 * end
    update(tmp_path / "b")
    m1 = read_manifest(tmp_path / "b")
    assert m1.update["parent"]["digest"] == first and m1.update["generation"] == 1
    cp.at = end + 1
    s = update(tmp_path / "b")
    m2 = read_manifest(tmp_path / "b")
    assert m2.update["parent"]["digest"] == m1.digest() and m2.update["generation"] == 2
    assert s.snapshot == "final"
    export(ep, tmp_path / "f", all_sessions=True)
    assert_same_content(tmp_path / "b", tmp_path / "f")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # nothing is open any more: the next update asks for no row by id
    again = update(tmp_path / "b", tmp_path / "again")
    assert again.update["refetched_by_id"] == {"tasks": 0, "results": 0}


def test_a_wrong_cutoff_is_caught_by_the_counts_and_the_session_read_whole(htcmock, tmp_path,
                                                                          monkeypatch):
    """Given a cutoff after every new row (as a cluster clock far ahead would give), when
    updated, then the rows the created-since query missed show in the server's counts, the
    session is exported whole instead, and the result still equals a full export."""
    from datetime import datetime, timezone

    from aksnap.exporter import incremental

    cp, ep, end = htcmock
    cp.at = 0.2 * end
    export(ep, tmp_path / "p", all_sessions=True)
    cp.at = 0.7 * end
    monkeypatch.setattr(incremental, "cutoff_of",
                        lambda m: datetime(2200, 1, 1, tzinfo=timezone.utc))
    up = update(tmp_path / "p", tmp_path / "u")
    assert up.update["rescanned_sessions"] == up.sessions
    export(ep, tmp_path / "f", all_sessions=True)
    assert_same_content(up.path, tmp_path / "f")


def test_sessions_created_since_are_exported_whole(tmp_path):
    """Given 20 sessions created 0.1 s apart (read in groups: more than 16) and a bundle of
    --all taken when 8 existed, when updated at the end, then the 12 new sessions are read
    whole and the bundle equals a full export."""
    scenario = build_scenario("many", seed=2, sessions=20, tasks=400)
    with SimulatedControlPlane(scenario, at=0.75) as cp:
        ep = cp.start()
        parent = export(ep, tmp_path / "p", all_sessions=True)
        cp.at = scenario.cluster.end_time
        up = update(tmp_path / "p", tmp_path / "u")
        export(ep, tmp_path / "f", all_sessions=True)
    assert len(parent.sessions) == 8 and len(up.sessions) == 20
    assert len(up.update["new_sessions"]) == 12
    assert_same_content(up.path, tmp_path / "f")


def test_a_failed_update_leaves_the_bundle_untouched(tmp_path):
    """Given a bundle whose cluster is gone, when updated in place, then the sentence names the
    endpoint and the bundle is exactly as it was."""
    from aksnap.exporter.client import ExportError, RetryPolicy

    scenario = build_scenario("chain", seed=1, tasks=30)
    with SimulatedControlPlane(scenario) as cp:
        ep = cp.start()
        export(ep, tmp_path / "b", all_sessions=True)
    before = read_manifest(tmp_path / "b").digest()
    with pytest.raises(ExportError) as err:
        update(tmp_path / "b", retry=RetryPolicy(attempts=2, initial_s=0.01, max_s=0.02))
    assert ep in str(err.value)
    assert read_manifest(tmp_path / "b").digest() == before and verify_bundle(tmp_path / "b") == []


def test_bundles_that_cannot_be_updated_are_refused_with_a_sentence(tmp_path):
    from aksnap.bundle_writer import write_bundle

    write_bundle(tmp_path / "hand", {})
    with pytest.raises(SelectionError, match="records no selection"):
        update(tmp_path / "hand", tmp_path / "x")
    write_bundle(tmp_path / "red", {}, {"redaction": {"method": "hmac-sha256"},
                                        "selection": {"all": True}})
    with pytest.raises(SelectionError, match="redacted"):
        update(tmp_path / "red", tmp_path / "x")
    write_bundle(tmp_path / "noep", {}, {"selection": {"all": True}})
    with pytest.raises(SelectionError, match="--endpoint"):
        update(tmp_path / "noep", tmp_path / "x")
    with pytest.raises(SelectionError, match="no bundle"):
        update(tmp_path / "missing", tmp_path / "x")


def test_cli_update_prints_the_rows_fetched_and_refuses_a_new_selection(htcmock, tmp_path):
    cp, ep, end = htcmock
    cp.at = 0.4 * end
    runner = CliRunner()
    r = runner.invoke(app, ["export", "--endpoint", ep, "--all", "--out", str(tmp_path / "b"),
                            "-q"])
    assert r.exit_code == 0, r.output
    cp.at = 0.5 * end
    r = runner.invoke(app, ["export", "--update", str(tmp_path / "b"), "-q"])
    assert r.exit_code == 0, r.output
    assert "rows fetched" in r.output and "updated from" in r.output
    r = runner.invoke(app, ["export", "--update", str(tmp_path / "b"), "--out",
                            str(tmp_path / "c"), "-q", "-o", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["update"]["generation"] == 2 and doc["path"] == str(tmp_path / "c")
    r = runner.invoke(app, ["export", "--update", str(tmp_path / "b"), "--session", "x"])
    assert r.exit_code == 2 and "--session does not go with it" in r.output
    r = runner.invoke(app, ["export", "--all"])
    assert r.exit_code == 2 and "missing option --out DIR" in r.output


def test_update_through_outages_still_equals_a_full_export(tmp_path):
    """Given a control plane failing 20 % of calls UNAVAILABLE (seeded), when a bundle is
    updated, then the retried calls give the same bundle as a full export (also retried)."""
    from aksnap.fixtures.server import Faults

    # pages of 400 (still several a table): every refusal also halves the capture's rate
    # (the AIMD), so each page more costs the suite about a second (pages of 200: 23 s)
    scenario = build_scenario("htcmock", seed=9, tasks=600)
    end = scenario.cluster.end_time
    with SimulatedControlPlane(scenario, at=0.3 * end) as cp:
        ep = cp.start()
        export(ep, tmp_path / "p", all_sessions=True, page_size=400)
        cp.at = 0.7 * end
        cp.faults = Faults(unavailable_rate=0.2, seed=3)
        up = update(tmp_path / "p", tmp_path / "u", page_size=400)
        full = export(ep, tmp_path / "f", all_sessions=True, page_size=400)
    assert read_manifest(up.path).consistency["retries"] > 0
    assert_same_content(up.path, full.path)


def _changed_between(parent, full) -> dict:
    """The ids whose row differs between two bundles (what a watch's events name), and the
    open results those tasks owned in ``parent`` (the watch adds them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    for table, key in (("tasks", "task_id"), ("results", "result_id")):
        a = {r[key]: r for r in pq.read_table(parent / f"{table}.parquet").to_pylist()}
        b = {r[key]: r for r in pq.read_table(full / f"{table}.parquet").to_pylist()}
        out[table] = {k for k in a if k in b and a[k] != b[k]}
    res = pq.read_table(parent / "results.parquet")
    owned = res.filter(pc.and_(pc.equal(res.column("status"), "CREATED"),
                               pc.is_in(res.column("owner_task_id"),
                                        value_set=pa.array(sorted(out["tasks"]), pa.string()))))
    out["results"] |= set(owned.column("result_id").to_pylist())
    return out


def test_an_update_of_the_changed_rows_only_equals_a_full_export(htcmock, tmp_path):
    """Given a bundle at 25 % and the ids that changed by 30 % (what a watch's events name),
    when updated with ``changed``, then only those open rows are refetched by id (far fewer
    than every open row), the manifest says ``changed_only``, and the bundle equals a full
    export at 30 %."""
    cp, ep, end = htcmock
    cp.at = 0.25 * end
    export(ep, tmp_path / "p", all_sessions=True)
    every = update(tmp_path / "p", tmp_path / "every")  # every open row, for comparison
    cp.at = 0.30 * end
    full = export(ep, tmp_path / "f", all_sessions=True)
    changed = _changed_between(tmp_path / "p", full.path)
    assert changed["tasks"]
    up = update(tmp_path / "p", tmp_path / "u", changed={k: sorted(v) for k, v in changed.items()})
    assert_same_content(up.path, full.path)
    u = up.update
    assert u["changed_only"] is True and not u["rescanned_sessions"]
    assert u["refetched_by_id"]["tasks"] <= len(changed["tasks"])
    assert sum(u["refetched_by_id"].values()) < sum(every.update["refetched_by_id"].values()) / 2


def test_a_changed_row_left_unnamed_is_caught_by_the_counts(htcmock, tmp_path):
    """Given a changed-only update told about none of the tasks that ended (a lost event, an
    attacker's list), when run, then the server's counts disagree with the merge, the session
    is read whole (``rescanned_because`` says why), and the bundle still equals a full
    export."""
    cp, ep, end = htcmock
    cp.at = 0.25 * end
    export(ep, tmp_path / "p", all_sessions=True)
    cp.at = 0.30 * end
    full = export(ep, tmp_path / "f", all_sessions=True)
    up = update(tmp_path / "p", tmp_path / "u", changed={"tasks": [], "results": []})
    assert up.update["changed_only"] is True and up.update["rescanned_sessions"]
    assert_same_content(up.path, full.path)
