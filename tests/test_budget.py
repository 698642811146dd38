"""The load budget (``--max-rps``, ``--jobs``), its backpressure, and the cost a capture records
(docs/exporter.md, "The load budget"; the manifest's ``cost``, docs/bundle-format.md).

The suite's conftest sets ``AKSNAP_MAX_RPS=inf`` (its simulators serve nobody else); the tests
here set their own caps, and check the production default with the variable removed.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap.bundle import read_manifest, verify_bundle
from aksnap.cli import app
from aksnap.exporter import RetryPolicy, export
from aksnap.exporter.budget import (
    DEFAULT_JOBS,
    DEFAULT_MAX_RPS,
    Budget,
    BudgetError,
    Cost,
    Throttle,
    budget_of,
)
from aksnap.exporter.testing import WIRE, bundle_rows
from aksnap.fixtures.server import Faults, SimulatedControlPlane, synthetic_cluster

runner = CliRunner()
FAST_RETRY = RetryPolicy(attempts=8, initial_s=0.01, max_s=0.05, budget_s=5.0)


def _equals_truth(path, cp) -> None:
    view = cp.cluster.view(cp.now())
    for name in ("sessions", "tasks", "results", "partitions"):
        assert bundle_rows(pq.read_table(path / f"{name}.parquet"), name) == \
            WIRE[name](getattr(view, name)), name


# -- the budget's values --------------------------------------------------------------------


def test_the_default_budget_is_the_production_one(monkeypatch):
    """Given no --max-rps and no $AKSNAP_MAX_RPS, when the budget is built, then it is the
    production default (10 requests/s, 2 in flight), which `aksnap export --help` states;
    the variable (a site's figure, inf for the suite's simulators) overrides it."""
    monkeypatch.delenv("AKSNAP_MAX_RPS", raising=False)
    assert budget_of() == Budget(DEFAULT_MAX_RPS, DEFAULT_JOBS) == Budget(10.0, 2)
    assert budget_of().capped
    from aksnap.exporter.commands import CONNECTION

    helps = {p.dest: p.cli.help for p in CONNECTION}
    assert "else 10;" in helps["max_rps"] and "--jobs" not in helps["max_rps"]
    r = runner.invoke(app, ["export", "--help"])
    assert "--max-rps" in r.output and "--jobs" in r.output
    monkeypatch.setenv("AKSNAP_MAX_RPS", "inf")
    assert budget_of().max_rps == math.inf and not budget_of().capped
    monkeypatch.setenv("AKSNAP_MAX_RPS", "25")
    assert budget_of(None, 3) == Budget(25.0, 3)
    assert budget_of(5, None) == Budget(5.0, DEFAULT_JOBS)  # the option wins


@pytest.mark.parametrize("argv, env, words", [
    (["--max-rps", "0"], None, "--max-rps must be"),
    (["--max-rps", "-3"], None, "--max-rps must be"),
    (["--max-rps", "nan"], None, "--max-rps must be"),
    (["--jobs", "0"], None, "--jobs must be at least 1"),
    ([], "lots", "$AKSNAP_MAX_RPS must be"),
    ([], "0", "$AKSNAP_MAX_RPS must be"),
])
@pytest.mark.parametrize("command", ["export", "watch"])
def test_an_unusable_budget_is_one_sentence_before_any_call(tmp_path, monkeypatch, argv, env,
                                                           words, command):
    """Given a budget no capture can use (a rate of 0, negative, nan, 0 jobs, a bad
    $AKSNAP_MAX_RPS), when export or watch starts (against a port where nothing listens),
    then exit 2 with one sentence about the budget, not about the connection."""
    if env is not None:
        monkeypatch.setenv("AKSNAP_MAX_RPS", env)
    base = (["export", "--endpoint", "127.0.0.1:9", "--all", "--out", str(tmp_path / "b")]
            if command == "export" else
            ["watch", "--endpoint", "127.0.0.1:9", "--session", "s", "--once"])
    r = runner.invoke(app, base + argv)
    assert r.exit_code == 2, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("aksnap: error:") and words in lines[0], \
        r.stderr
    assert not (tmp_path / "b").exists()


# -- the throttle -----------------------------------------------------------------------------


def _hammer(throttle: Throttle, threads: int, seconds: float) -> list[float]:
    """``threads`` callers taking slots as fast as they can for ``seconds``: their start times."""
    starts: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds
    over = threading.Event()
    threading.Timer(seconds, over.set).start()

    def run():
        while time.monotonic() < end:
            throttle.acquire(over)
            if over.is_set():
                return  # the time is up: no slot was taken
            with lock:
                starts.append(time.monotonic())
            throttle.release("ListTasksDetailed", 0.001, 1000)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sorted(starts)


def _most_in_any_second(starts: list[float]) -> int:
    """The most starts in any window of one second (sliding: not only aligned seconds)."""
    best, j = 0, 0
    for i, s in enumerate(starts):
        while starts[j] <= s - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_the_cap_holds_in_every_sliding_second_whatever_the_callers():
    """Given --max-rps 30 and 8 threads calling as fast as they can (calls of 1 ms), when they
    run 2.5 s, then no window of one second, aligned or not, holds more than 30 starts, and the
    budget is used (not starved: at least 2/3 of it)."""
    starts = _hammer(Throttle(Budget(30.0, 8)), threads=8, seconds=2.5)
    assert _most_in_any_second(starts) <= 30
    assert len(starts) >= 30 * 2.5 * 2 / 3


def test_the_cap_below_one_request_a_second():
    """Given --max-rps 0.5, when 3 callers ask for 3 s, then 2 start, 2 s apart or more."""
    starts = _hammer(Throttle(Budget(0.5, 4)), threads=3, seconds=3.0)
    assert len(starts) == 2 and starts[1] - starts[0] >= 2.0


def test_jobs_caps_the_calls_in_flight():
    """Given --jobs 2 and 6 threads whose calls take 50 ms, then never more than 2 are in
    flight at once."""
    t = Throttle(Budget(math.inf, 2))
    inflight, peak, lock = [0], [0], threading.Lock()

    def run():
        for _ in range(5):
            t.acquire()
            with lock:
                inflight[0] += 1
                peak[0] = max(peak[0], inflight[0])
            time.sleep(0.05)
            with lock:
                inflight[0] -= 1
            t.release("ListResults", 0.05, 100)

    ts = [threading.Thread(target=run) for _ in range(6)]
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    assert peak[0] == 2


def test_a_latency_rise_halves_the_rate_once_and_says_so(caplog):
    """Given a capture whose pages took 10 ms, when two in a row take a second, then the rate
    and the window are halved (one warning naming the rise), a third slow call within the
    reaction time does not halve again, and the rate grows back by a tenth of the cap a second
    until the episode ends."""
    t = Throttle(Budget(20.0, 4), "cp:5001")
    cost = Cost(t.budget)
    t.listeners.append(cost)
    for _ in range(8):
        t.release("ListTasksDetailed", 0.01, 2_000_000, hold=False)
    assert not t.strained
    with caplog.at_level(logging.WARNING, logger="aksnap.exporter"):
        t.release("ListTasksDetailed", 1.0, 2_000_000, hold=False)
        assert not t.strained  # one slow call is noise
        t.release("ListTasksDetailed", 1.0, 2_000_000, hold=False)
        assert t.strained and t.rate == 10.0 and t.window == 2
        t.release("ListTasksDetailed", 1.0, 2_000_000, hold=False)
        t.release("ListTasksDetailed", 1.0, 2_000_000, hold=False)
        assert t.rate == 10.0  # the same strain: one decrease per reaction time
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "cp:5001 shows strain" in said[0] and "10.0 requests/s" in said[0]
    assert cost.episodes == 1 and cost.slowest_rps == 10.0
    t._last_increase -= 3.0  # three seconds without strain
    t._grow(time.monotonic())
    assert t.rate == 16.0 and t.window == 4 and t.strained
    t._last_increase -= 2.0
    t._grow(time.monotonic())
    assert t.rate == 20.0 and not t.strained


def test_a_latency_of_another_size_is_not_a_rise():
    """Given small pages at 10 ms, when a page 100 times larger takes 1 s, then no strain (the
    latency is judged per kind and size of call)."""
    t = Throttle(Budget(20.0, 4))
    for _ in range(8):
        t.release("ListTasksDetailed", 0.01, 20_000, hold=False)
    for _ in range(3):
        t.release("ListTasksDetailed", 1.0, 2_000_000, hold=False)
    assert not t.strained


# -- against the simulated control plane ----------------------------------------------------


def test_max_rps_20_no_second_counted_by_the_server_above_20_and_the_export_exact(tmp_path):
    """Given --max-rps 20 --jobs 4 and small pages (about 70 requests), when exported, then the
    server never counted more than 20 requests in one of its seconds, the bundle equals the
    truth, the manifest's cost counts exactly the requests the server received, and its
    busiest second is at most 20."""
    cluster = synthetic_cluster(400, n_sessions=1, seed=3)
    with SimulatedControlPlane(cluster) as cp:
        ep = cp.start()
        t0 = time.monotonic()
        s = export(ep, tmp_path / "b", all_sessions=True, page_size=32, jobs=4, max_rps=20)
        took = time.monotonic() - t0
        seen = cp.requests.snapshot()
        _equals_truth(s.path, cp)
    assert seen["requests"] >= 40
    assert seen["busiest_second"] <= 20, seen["per_second"]
    assert took >= (seen["requests"] - 20) / 20 * 0.9  # the cap did bind
    cost = s.manifest["cost"]
    assert sum(cost["calls"].values()) == seen["requests"]
    assert cost["calls"] == seen["by_method"]
    assert cost["busiest_second"] <= 20 and cost["budget"] == {"max_rps": 20.0, "jobs": 4}


def test_an_overloaded_gateway_is_met_by_slowing_down_not_by_retrying_at_full_speed(
        tmp_path, caplog):
    """Given a gateway that refuses (RESOURCE_EXHAUSTED, 'too many requests') every call past
    30 in a second, when exported with no cap and 4 jobs, then the export equals the truth,
    the strain is said once on the exporter's log (stderr in the CLI), the manifest counts the
    refusals and an episode, and the refusals stay a small share of the calls (the capture
    slowed down instead of hammering)."""
    cluster = synthetic_cluster(600, n_sessions=1, seed=4)
    with SimulatedControlPlane(cluster, faults=Faults(rate_limit_rps=30)) as cp, \
            caplog.at_level(logging.WARNING, logger="aksnap.exporter"):
        ep = cp.start()
        s = export(ep, tmp_path / "b", all_sessions=True, page_size=40, jobs=4,
                   max_rps=math.inf, retry=FAST_RETRY)
        _equals_truth(s.path, cp)
    cost = s.manifest["cost"]
    refused = cost["failed_calls"].get("RESOURCE_EXHAUSTED", 0)
    answered = sum(cost["calls"].values()) - sum(cost["failed_calls"].values())
    assert refused >= 1 and cost["backpressure"]["episodes"] >= 1
    assert refused <= answered * 0.5, cost
    strain = [r.getMessage() for r in caplog.records if "shows strain" in r.getMessage()]
    assert 1 <= len(strain) <= cost["backpressure"]["episodes"]
    assert "RESOURCE_EXHAUSTED" in strain[0]
    assert s.manifest["consistency"]["resource_exhausted"] == 0  # not taken for a page size


def test_overload_refusals_are_retried_not_taken_for_a_page_too_large(tmp_path):
    """Given 3 overload refusals in a row (RESOURCE_EXHAUSTED, no message size), when exported,
    then the calls are retried (the export equals the truth), the page size is not halved for
    them, and the cost counts them as failed calls."""
    cluster = synthetic_cluster(300, n_sessions=1, seed=5)
    with SimulatedControlPlane(cluster, faults=Faults(exhausted_burst=3)) as cp:
        ep = cp.start()
        s = export(ep, tmp_path / "b", all_sessions=True, retry=FAST_RETRY)
        _equals_truth(s.path, cp)
    assert s.manifest["cost"]["failed_calls"] == {"RESOURCE_EXHAUSTED": 3}
    assert s.manifest["consistency"]["resource_exhausted"] == 0


def test_the_cost_is_in_the_manifest_the_summary_and_check_accepts_it(tmp_path):
    """Given an export, then its manifest's cost has calls by method, rows and bytes received,
    the busiest second, ordered latency percentiles and the wall time; `aksnap check` passes;
    the summary (-o json and the table) shows it."""
    cluster = synthetic_cluster(400, n_sessions=1, seed=6)
    with SimulatedControlPlane(cluster) as cp:
        ep = cp.start()
        r = runner.invoke(app, ["export", "--endpoint", ep, "--all", "-q", "--out",
                                str(tmp_path / "b"), "-o", "json"])
        assert r.exit_code == 0, r.output
        r2 = runner.invoke(app, ["export", "--endpoint", ep, "--all", "-q", "--out",
                                 str(tmp_path / "c")])
    summary = json.loads(r.stdout)
    cost = read_manifest(tmp_path / "b").cost
    assert summary["cost"] == cost
    assert cost["rows_received"]["tasks"] == 400 and cost["rows_received"]["results"] == 800
    assert cost["bytes_received"] > 400 * 100 and cost["busiest_second"] >= 1
    assert {"ListTasksDetailed", "ListResults", "ListSessions", "ListPartitions",
            "ListVersions", "CountTasksByStatus"} <= set(cost["calls"])
    lat = cost["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert cost["wall_s"] > 0
    verify_bundle(tmp_path / "b")
    assert runner.invoke(app, ["check", str(tmp_path / "b")]).exit_code == 0
    assert "cost" in r2.stdout and "busiest second" in r2.stdout


# -- redaction of the cost ------------------------------------------------------------------


@pytest.fixture(scope="module")
def costed(tmp_path_factory):
    d = tmp_path_factory.mktemp("costed")
    with SimulatedControlPlane(synthetic_cluster(200, n_sessions=1, seed=7)) as cp:
        export(cp.start(), d / "b", all_sessions=True)
    (d / "key").write_bytes(b"k" * 32)
    return d


def _planted(costed, tmp_path, edit):
    import shutil

    b = tmp_path / "planted"
    shutil.copytree(costed / "b", b)
    m = json.loads((b / "manifest.json").read_text())
    edit(m["cost"])
    (b / "manifest.json").write_text(json.dumps(m))
    return b


def test_a_redacted_bundles_cost_keeps_numbers_and_call_names_only(costed, tmp_path):
    """Given an exported bundle, when redacted, then its cost is there, equal to the
    original's (numbers, ArmoniK's call names, gRPC status names, table names: nothing that
    identifies), and the endpoint appears nowhere in it."""
    from aksnap.redact import redact_bundle

    redact_bundle(costed / "b", tmp_path / "red", key_file=costed / "key")
    orig, red = read_manifest(costed / "b"), read_manifest(tmp_path / "red")
    assert red.cost == orig.cost
    text = json.dumps(red.cost)
    assert orig.source["endpoint"] not in text


@pytest.mark.parametrize("where, edit", [
    ("cost.calls", lambda c: c["calls"].update({"qxsecretsessionid": 1})),
    ("cost.failed_calls", lambda c: c["failed_calls"].update({"qxsecrethost": 2})),
    ("cost.latency_ms.p50", lambda c: c["latency_ms"].update(p50="qxsecretvalue")),
    ("cost.note", lambda c: c.update(note="qxsecretnote")),
    ("cost.budget.endpoint", lambda c: c["budget"].update(endpoint="qxsecrethost")),
    ("cost.rows_received", lambda c: c["rows_received"].update({"qxsecrettable": 1})),
])
def test_a_secret_planted_in_the_cost_stops_redaction(costed, tmp_path, where, edit):
    """Given a bundle whose manifest's cost holds a secret (an unknown call or status name, a
    text where a number goes, a field with no rule), when redacted, then redaction stops
    naming the place and writes nothing (fail closed: nothing is copied without a rule)."""
    from aksnap.bundle import BundleError
    from aksnap.redact import redact_bundle

    b = _planted(costed, tmp_path, edit)
    with pytest.raises(BundleError) as e:
        redact_bundle(b, tmp_path / "red", key_file=costed / "key")
    assert "qxsecret" not in str(e.value) or "cost" in str(e.value)
    assert "cost" in str(e.value), str(e.value)
    assert not (tmp_path / "red").exists()


@pytest.mark.parametrize("where, edit", [
    ("cost.bytes_received", lambda c: c.update(bytes_received="12 MiB")),
    ("cost.busiest_second", lambda c: c.update(busiest_second=-3)),
    ("cost.calls.ListResults", lambda c: c["calls"].update(ListResults=2.5)),
    ("cost.calls key", lambda c: c["calls"].update({"DeleteEverything": 1})),
    ("cost.failed_calls key", lambda c: c["failed_calls"].update({"OOPS": 1})),
    ("cost.rows_received key", lambda c: c["rows_received"].update({"secrets": 1})),
    ("cost.latency_ms.p99", lambda c: c["latency_ms"].update(p99=float("nan"))),
    ("cost.wall_s", lambda c: c.update(wall_s=-1.0)),
    ("cost.budget.max_rps", lambda c: c["budget"].update(max_rps=0)),
    ("cost.budget.jobs", lambda c: c["budget"].update(jobs=True)),
    ("cost.backpressure", lambda c: c.update(backpressure=[1, 2])),
    ("cost.latency_ms", lambda c: c.update(latency_ms="fast")),
])
def test_an_edited_cost_record_is_refused_by_check_and_every_reader(costed, tmp_path, where,
                                                                    edit):
    """Given a bundle whose manifest's cost was edited to lie about its kind (a text, a
    negative or fractional count, NaN, a call or status name aksnap never makes, a zero rate),
    when checked or read, then `aksnap check` exits 1 and `aksnap sessions` exits 2, each with
    one sentence naming the field; the same bundle with an unknown extra cost field (a newer
    writer's) still reads."""
    b = _planted(costed, tmp_path, edit)
    r = runner.invoke(app, ["check", str(b)])
    assert r.exit_code == 1 and where in r.output and "Traceback" not in r.output, r.output
    r = runner.invoke(app, ["sessions", str(b)])
    assert r.exit_code == 2 and where in r.stderr and "Traceback" not in r.output, r.output


def test_a_cost_field_a_newer_writer_adds_is_left_to_it(costed, tmp_path):
    """Given a cost record with a field this version does not know, when read, then it reads
    (readers ignore what they do not know) and check passes; redaction still refuses it."""
    b = _planted(costed, tmp_path, lambda c: c.update(server_cpu_s=1.5))
    assert runner.invoke(app, ["check", str(b)]).exit_code == 0
    assert runner.invoke(app, ["sessions", str(b)]).exit_code == 0


def test_the_strain_is_said_once_on_stderr_by_the_cli(tmp_path):
    """Given a gateway refusing calls past 30 a second, when `aksnap export --max-rps inf`
    runs, then it exits 0, and stderr has one line per strain episode (not per refusal), the
    warning naming the refusal, as many as the summary's cost line counts."""
    with SimulatedControlPlane(synthetic_cluster(600, n_sessions=1, seed=4),
                               faults=Faults(rate_limit_rps=30)) as cp:
        r = runner.invoke(app, ["export", "--endpoint", cp.start(), "--all", "-q", "--out",
                                str(tmp_path / "b"), "--max-rps", "inf", "--jobs", "4",
                                "--page-size", "40"])
    assert r.exit_code == 0, r.output
    import re

    lines = r.stderr.splitlines()
    episodes = int(re.search(r"slowed down (\d+) times for strain", r.stdout).group(1))
    assert 1 <= len(lines) == episodes  # once per episode, not once per refusal
    assert all(x.startswith("aksnap: warning: the control plane at ") for x in lines)
    assert "shows strain (RESOURCE_EXHAUSTED" in lines[0] and "slowing down to" in lines[0]


def test_every_export_reads_fewer_larger_pages_and_the_same_rows(tmp_path):
    """Given a session of 100,000 tasks and 200,000 results (16 shards per table, every unit
    planned before any page is read), when it is exported with a capped budget (the calls per
    second are what is scarce), without one, and without one but with the armonik client's
    4 MiB receive limit, then both the capped and the uncapped exports size their pages to a
    16 MiB receive limit (one rule: fewer calls cost the exporter less CPU too): pages of more
    rows than the 4 MiB export's largest (16,384), learnt from the first units' rows by the
    units that start later, and at least a fifth fewer pages for the same rows; the three
    bundles hold the same rows, every column."""
    from aksnap.exporter import api
    from aksnap.exporter.client import DEFAULT_MAX_RECEIVE, PAGE_MAX_RECEIVE

    assert api.PAGE_MAX_RECEIVE == PAGE_MAX_RECEIVE == 4 * DEFAULT_MAX_RECEIVE
    cluster = synthetic_cluster(100_000, n_sessions=1, seed=3)
    pages, largest, paths = {}, {}, {}
    with SimulatedControlPlane(cluster) as cp:
        ep = cp.start()
        sizes: list[tuple[str, int]] = []
        listing = cp.list_page

        def spy(kind, request, summary=False):
            sizes.append((kind, request.page_size))
            return listing(kind, request, summary)

        cp.list_page = spy
        for label, rps, receive in (("4 MiB", math.inf, DEFAULT_MAX_RECEIVE),
                                    ("uncapped", math.inf, None), ("capped", 1000.0, None)):
            sizes.clear()
            paths[label] = export(ep, tmp_path / label.replace(" ", ""), all_sessions=True,
                                  jobs=2, max_rps=rps, max_receive=receive).path
            pages[label] = sum(1 for kind, n in sizes if kind in ("tasks", "results") and n)
            largest[label] = max(n for kind, n in sizes if kind == "results")
    assert largest["4 MiB"] <= 16_384 < min(largest["capped"], largest["uncapped"]), largest
    assert max(pages["capped"], pages["uncapped"]) <= 0.8 * pages["4 MiB"], pages
    for table, key in (("tasks", "task_id"), ("results", "result_id")):
        a, *others = (pq.read_table(paths[k] / f"{table}.parquet").sort_by(key) for k in paths)
        assert a.num_rows == (100_000 if table == "tasks" else 200_000)
        assert all(a.equals(b) for b in others), table
