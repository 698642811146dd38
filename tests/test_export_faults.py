"""The exporter against a control plane that changes, stalls, fails and caps responses.

Each test: given a simulated control plane with one fault knob turned, when ``export`` runs,
then the bundle is still exact where it can be (and says so in the manifest) or no bundle
is claimed at all.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from aksnap.bundle import MANIFEST, TASK_FINAL_STATUSES, read_manifest, verify_bundle
from aksnap.exporter import ExportError, RetryPolicy, SelectionError, export
from aksnap.exporter.testing import WIRE, bundle_rows
from aksnap.fixtures.scenarios import build_scenario
from aksnap.fixtures.server import Faults, SimulatedControlPlane, synthetic_cluster

FAST_RETRY = RetryPolicy(attempts=6, initial_s=0.01, max_s=0.05, budget_s=5.0)


def _assert_equals_view(path, view):
    for name in ("sessions", "tasks", "results", "partitions"):
        got = bundle_rows(pq.read_table(path / f"{name}.parquet"), name)
        assert got == WIRE[name](getattr(view, name)), name


def _leftovers(parent: Path, name: str):
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_rows_inserted_and_statuses_changing_during_the_export(tmp_path):
    """Given htcmock running in real time (x20) and 3 new tasks injected after every page,
    when exported with small pages, then no task id appears twice, every task that was final
    before the export began is present and exactly as it was, and the snapshot is live."""
    sc = build_scenario("htcmock", seed=1, tasks=1500)
    faults = Faults(insert_rows_between_pages=3)
    with SimulatedControlPlane(sc, at=30.0, realtime=True, speed=20.0, faults=faults) as cp:
        ep = cp.start()
        v0 = cp.cluster.view(cp.now())
        before, results_before = WIRE["tasks"](v0.tasks), WIRE["results"](v0.results)
        s = export(ep, tmp_path / "b", all_sessions=True, page_size=40, jobs=4)
        after = cp.cluster.view(cp.now())
    tasks = pq.read_table(s.path / "tasks.parquet")
    ids = tasks.column("task_id")
    assert pc.count_distinct(ids).as_py() == len(ids), "duplicate task ids"
    got = bundle_rows(tasks, "tasks")
    final_before = {k: v for k, v in before.items() if v["status"] in TASK_FINAL_STATUSES}
    assert final_before, "the scenario should have finished tasks at t=30"
    for k, row in final_before.items():
        assert got.get(k) == row, f"final task {k} missing or changed"
    # Rows that appeared during the export are there too, up to what the manifest admits.
    assert len(got) > len(before)
    c = s.manifest["consistency"]["tasks"]
    assert len(got) + c["missing_vs_reported_total"] >= len(before)
    assert s.snapshot == "live"
    results = pq.read_table(s.path / "results.parquet")
    assert pc.count_distinct(results.column("result_id")).as_py() == len(results)
    got_results = bundle_rows(results, "results")
    done = {k: v for k, v in results_before.items() if v["status"] in ("COMPLETED", "ABORTED")}
    assert done and all(got_results.get(k) == v for k, v in done.items())
    assert after.tasks.num_rows >= len(got)


def test_unavailable_bursts_and_latency_are_retried(tmp_path, caplog):
    """Given 10 ms latency, a burst of 4 UNAVAILABLE and then 5 % random UNAVAILABLE,
    when exported, then the bundle equals the view, the manifest counts the retries, and the
    outage is announced once (not once per refused call)."""
    # 1,000 tasks in pages of 400: 3 pages a table, the burst and the random failures
    # retried (each UNAVAILABLE also halves the capture's rate: at 15 %, 17 refusals and 3
    # slow-downs to 1 request/s took 20 s; at 5 %, 4 + 2 refusals, 8 s)
    cluster = synthetic_cluster(1000, n_sessions=1, seed=2)
    faults = Faults(latency_s=0.01, unavailable_burst=4, unavailable_rate=0.05, seed=7)
    with SimulatedControlPlane(cluster, faults=faults) as cp:
        ep = cp.start()
        s = export(ep, tmp_path / "b", all_sessions=True, page_size=400,
                   retry=RetryPolicy(attempts=10, initial_s=0.01, max_s=0.1, budget_s=30))
        view = cp.view()
    _assert_equals_view(s.path, view)
    assert s.manifest["consistency"]["retries"] >= 4
    notices = [r.getMessage() for r in caplog.records if "is unreachable" in r.getMessage()]
    assert len(notices) == 1, notices


def test_retries_are_bounded_and_the_error_is_a_sentence(tmp_path):
    """Given a control plane that is always UNAVAILABLE, when exported, then the export fails
    within its retry budget with one sentence, and neither the bundle nor a partial directory
    remains."""
    cluster = synthetic_cluster(100, seed=0)
    with SimulatedControlPlane(cluster, faults=Faults(unavailable_rate=1.0)) as cp:
        ep = cp.start()
        t0 = time.monotonic()
        with pytest.raises(ExportError) as e:
            export(ep, tmp_path / "b", all_sessions=True, retry=FAST_RETRY)
        assert time.monotonic() - t0 < 10
    msg = str(e.value)
    assert "UNAVAILABLE" in msg and "\n" not in msg and ep in msg
    assert not (tmp_path / "b").exists() and _leftovers(tmp_path, "b") == []


def test_outage_mid_export_leaves_the_old_bundle_untouched(tmp_path):
    """Given an existing bundle, and a control plane that goes down after a few pages,
    when re-exported with --overwrite, then it fails and the old bundle is byte for byte
    what it was, with no partial directory beside it."""
    cluster = synthetic_cluster(3000, seed=4)
    out = tmp_path / "b"
    with SimulatedControlPlane(cluster) as cp:
        ep = cp.start()
        export(ep, out, all_sessions=True)
        before = {p.name: p.read_bytes() for p in out.iterdir()}

        class Breaker:
            """After 500 task rows, the cluster becomes unreachable."""
            rows = 0
            def start(self, table, total): pass
            def advance(self, table, n):
                self.rows += n
                if self.rows >= 500:
                    cp.faults.unavailable_rate = 1.0
            def close(self): pass

        with pytest.raises(ExportError):
            export(ep, out, all_sessions=True, overwrite=True, page_size=100, jobs=2,
                   progress=Breaker(), retry=FAST_RETRY)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path, "b") == []


def test_an_exception_in_the_caller_aborts_cleanly(tmp_path):
    """A progress callback that raises (as Ctrl-C would) stops the export; nothing remains."""
    cluster = synthetic_cluster(3000, seed=5)

    class Interrupt:
        def start(self, table, total): pass
        def advance(self, table, n): raise KeyboardInterrupt
        def close(self): pass

    with SimulatedControlPlane(cluster) as cp:
        with pytest.raises(KeyboardInterrupt):
            export(cp.start(), tmp_path / "b", all_sessions=True, page_size=100,
                   progress=Interrupt())
    assert not (tmp_path / "b").exists() and _leftovers(tmp_path, "b") == []


def test_killed_export_never_claims_completeness(tmp_path):
    """Given an export running in a subprocess against a slow control plane, when it is
    killed with SIGKILL half-way, then --out does not exist (or holds the old bundle) and
    the temporary directory left behind has no manifest."""
    cluster = synthetic_cluster(4000, seed=6)
    out = tmp_path / "b"
    with SimulatedControlPlane(cluster, faults=Faults(latency_s=0.05)) as cp:
        ep = cp.start()
        code = textwrap.dedent(f"""
            from aksnap.exporter import export
            export({ep!r}, {str(out)!r}, all_sessions=True, page_size=50, jobs=1)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code])
        try:
            deadline = time.monotonic() + 30
            while not _leftovers(tmp_path, "b") and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            assert proc.poll() is None, "the export finished before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert not out.exists()
    partial = [tmp_path / n for n in _leftovers(tmp_path, "b")]
    assert partial and not any((p / MANIFEST).exists() for p in partial)
    with pytest.raises(Exception, match="no bundle"):
        read_manifest(out)


def test_response_size_cap_halves_the_page(tmp_path):
    """Given a server that refuses responses over 40 kB (RESOURCE_EXHAUSTED), when exported
    with 2,000-row pages, then pages are halved until they fit and the bundle is exact."""
    cluster = synthetic_cluster(1500, seed=8)
    with SimulatedControlPlane(cluster, faults=Faults(max_response_bytes=40_000)) as cp:
        s = export(cp.start(), tmp_path / "b", all_sessions=True, page_size=2000)
        _assert_equals_view(s.path, cp.view())
    assert s.manifest["consistency"]["resource_exhausted"] > 0


def test_client_receive_limit_halves_the_page(tmp_path):
    """Given a client receive limit of 64 KiB (grpc's own RESOURCE_EXHAUSTED), when exported,
    then the exporter keeps its pages under it and the bundle is exact."""
    cluster = synthetic_cluster(1500, seed=9)
    with SimulatedControlPlane(cluster) as cp:
        s = export(cp.start(), tmp_path / "b", all_sessions=True, page_size=2000,
                   max_receive=64 * 1024)
        _assert_equals_view(s.path, cp.view())
    assert s.manifest["consistency"]["resource_exhausted"] > 0


def test_unknown_session_is_refused_before_anything_is_written(tmp_path):
    cluster = synthetic_cluster(50, seed=0)
    with SimulatedControlPlane(cluster) as cp:
        with pytest.raises(SelectionError, match="unknown session id nope") as e:
            export(cp.start(), tmp_path / "b", sessions=["nope"])
    assert e.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def _fatal_server(code: grpc.StatusCode):
    from concurrent import futures

    def abort(request, context):
        context.abort(code, "simulated refusal")

    handler = grpc.method_handlers_generic_handler(
        "armonik.api.grpc.v1.versions.Versions",
        {"ListVersions": grpc.unary_unary_rpc_method_handler(abort)})
    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.mark.parametrize("code,words", [
    (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated"),
    (grpc.StatusCode.PERMISSION_DENIED, "denied permission"),
    (grpc.StatusCode.INVALID_ARGUMENT, "rejected the request"),
])
def test_fatal_status_codes_fail_at_once_with_a_sentence(tmp_path, code, words):
    server, ep = _fatal_server(code)
    try:
        t0 = time.monotonic()
        with pytest.raises(ExportError, match=words) as e:
            export(ep, tmp_path / "b", all_sessions=True)
        assert time.monotonic() - t0 < 2  # not retried
        assert "\n" not in str(e.value)
    finally:
        server.stop(0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_cli_cleans_up(tmp_path, sig):
    """Given `aksnap export` running against a slow control plane, when it gets Ctrl-C
    (SIGINT) or SIGTERM half-way, then it exits 130 and leaves neither --out nor a partial
    directory."""
    cluster = synthetic_cluster(4000, seed=12)
    out = tmp_path / "b"
    with SimulatedControlPlane(cluster, faults=Faults(latency_s=0.05)) as cp:
        ep = cp.start()
        proc = subprocess.Popen([sys.executable, "-m", "aksnap", "export", "--endpoint", ep,
                                 "--all", "--out", str(out), "--page-size", "50", "--jobs", "1",
                                 "--quiet"], stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not _leftovers(tmp_path, "b") and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            assert proc.poll() is None, "the export finished before it could be interrupted"
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert not out.exists() and _leftovers(tmp_path, "b") == []


def test_a_session_growing_faster_than_it_is_read_still_ends(tmp_path):
    """Given a 200-task session read 100 rows per page while 150 tasks (and 300 results) are
    inserted after every page, when exported, then each pass stops at 4x the rows it began
    with: the export ends, no task is there twice, and the manifest and a warning say that
    the units stopped (rows, even old ones, may be missing: the inserts shift them beyond)."""
    cluster = synthetic_cluster(200, seed=13)
    original = set(cluster.tasks.column("id").to_pylist())
    with SimulatedControlPlane(cluster, faults=Faults(insert_rows_between_pages=150)) as cp:
        t0 = time.monotonic()
        s = export(cp.start(), tmp_path / "b", all_sessions=True, page_size=100, jobs=1)
        assert time.monotonic() - t0 < 30
    ids = pq.read_table(s.path / "tasks.parquet").column("task_id")
    assert pc.count_distinct(ids).as_py() == len(ids)
    assert len(original & set(ids.to_pylist())) > 0
    c = s.manifest["consistency"]
    assert c["tasks"]["units_stopped_growing"] >= 1
    assert c["tasks"]["missing_vs_reported_total"] > 0
    assert any("grew faster than they could be read" in w for w in s.warnings)
