"""Message size limits: whose limit refused a page, and an answer in seconds either way.

A RESOURCE_EXHAUSTED comes from one of two sides: the client's own receive limit (grpc says
``CLIENT: Received message larger than max (N vs. M)``) or the control plane's send limit (the
status it sent; the simulated one says ``Received message larger than max (N vs. M)`` with its
own M). The exporter names the right side, raises its own limit when a single row does not fit
it, and stops at once, with a sentence, when the server's limit cannot serve the export.

The scenario: htcmock with 1,500 tasks, whose task rows are about 700 bytes and the heaviest
12,362 bytes (an aggregation task with many data dependencies).
"""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap.cli import app
from aksnap.exporter import ExportError, export
from aksnap.exporter.client import PAGE_MAX_RECEIVE, PageTooLarge
from aksnap.exporter.testing import WIRE, bundle_rows
from aksnap.fixtures.scenarios import build_scenario
from aksnap.fixtures.server import Faults, SimulatedControlPlane

runner = CliRunner()
HEAVIEST_TASK_ROW = 12_362


@pytest.fixture(scope="module")
def served():
    """One htcmock control plane for the module; each test sets its own size limit."""
    faults = Faults()
    with SimulatedControlPlane(build_scenario("htcmock", seed=1, tasks=1500),
                               faults=faults) as cp:
        yield cp, cp.start(), faults
        faults.max_response_bytes = None


@pytest.fixture
def limit(served):
    cp, ep, faults = served

    def set_limit(n):
        faults.max_response_bytes = n
        return ep

    yield set_limit
    faults.max_response_bytes = None


def _exact(path, view):
    for name in ("sessions", "tasks", "results", "partitions"):
        got = bundle_rows(pq.read_table(path / f"{name}.parquet"), name)
        assert got == WIRE[name](getattr(view, name)), name


# -- whose limit ---------------------------------------------------------------------------------

@pytest.mark.parametrize("details,max_receive,side,size,limit", [
    ("Stream removed (CLIENT: Received message larger than max (5000 vs. 1000))", 1000,
     "client", 5000, 1000),
    ("Received message larger than max (5000 vs. 4194304)", 4194304, "client", 5000, 4194304),
    ("Received message larger than max (5000 vs. 100)", 4194304, "server", 5000, 100),
    ("Sending message exceeds the maximum configured message size.", 4194304, "server", None, None),
])
def test_a_size_refusal_names_whose_limit_it_was(details, max_receive, side, size, limit):
    """Given grpc's own receive-limit message (with or without its CLIENT tag), a server's
    status carrying its limit, and grpc-dotnet's send-limit message, when classified, then the
    side, the size and the limit are read from the words, and the sentence says the side."""
    e = PageTooLarge("h:1", "tasks", details, max_receive)
    assert (e.side, e.size, e.limit) == (side, size, limit)
    assert isinstance(e, ExportError)
    assert ("server's limit" in str(e)) == (side == "server")
    assert ("aksnap's receive limit of" in str(e)) == (side == "client")


# -- the server's send limit -----------------------------------------------------------------------

@pytest.mark.parametrize("cap", [100, 2000])
def test_a_tiny_server_limit_fails_in_seconds_naming_the_server(tmp_path, limit, cap):
    """Given a control plane that refuses responses over 100 bytes (no row fits) or 2,000
    bytes (most task rows fit alone, the heaviest do not), when exported with automatic pages,
    then the export stops within seconds with a sentence naming the server's send limit and
    its size, never aksnap's 16 MiB receive limit, and nothing is written."""
    ep = limit(cap)
    started = time.monotonic()
    with pytest.raises(ExportError) as e:
        export(ep, tmp_path / "b", all_sessions=True)
    assert time.monotonic() - started < 5
    msg = str(e.value)
    assert f"server's {cap} byte send limit" in msg or f"its {cap} byte send limit" in msg
    assert str(PAGE_MAX_RECEIVE) not in msg and "4194304" not in msg
    assert "raise the control plane's maximum send message size" in msg
    assert list(tmp_path.iterdir()) == []


def test_a_limit_below_the_versions_reply_is_a_sentence_not_a_traceback(tmp_path, limit):
    """Given a control plane that refuses every response over 10 bytes, when `aksnap export`
    runs, then its first call (ListVersions) is refused and the CLI prints one sentence naming
    the server's limit, exit code 1 (it was an uncaught PageTooLarge traceback)."""
    ep = limit(10)
    r = runner.invoke(app, ["export", "--endpoint", ep, "--all", "--out", str(tmp_path / "b"),
                            "-q"])
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert r.stderr.startswith("aksnap: error: the control plane at")
    assert "ListVersions" in r.stderr and "send limit of 10 bytes" in r.stderr


def test_a_single_row_over_the_server_limit_is_named(tmp_path, limit, monkeypatch):
    """Given a server limit of 12,000 bytes, which holds typical task rows (about 700 bytes)
    but not the heaviest (12,362 bytes), and the typical-row rule relaxed so that 17 rows a
    page is enough, when exported, then the export stops in seconds naming a single tasks
    row, its size and the row after which it sits."""
    from aksnap.exporter import scan

    monkeypatch.setattr(scan, "MIN_SERVER_PAGE_ROWS", 2)
    ep = limit(HEAVIEST_TASK_ROW - 362)
    started = time.monotonic()
    with pytest.raises(ExportError) as e:
        export(ep, tmp_path / "b", all_sessions=True)
    assert time.monotonic() - started < 10
    msg = str(e.value)
    assert "tasks row" in msg and "12000 byte send limit" in msg
    assert f"{HEAVIEST_TASK_ROW} bytes" in msg or "at least one of them" in msg


def test_a_server_limit_that_holds_every_row_exports_exactly_and_quickly(tmp_path, served,
                                                                           limit):
    """Given a server limit of 64 kB, over every single row but under the automatic first
    page, when exported, then pages are sized to the server's limit (a few refusals, not one
    ladder per unit), the page size grows back after the heavy rows, and the bundle is exact."""
    cp = served[0]
    ep = limit(64_000)
    started = time.monotonic()
    s = export(ep, tmp_path / "b", all_sessions=True)
    assert time.monotonic() - started < 10
    _exact(s.path, cp.view())
    c = s.manifest["consistency"]
    assert 0 < c["resource_exhausted"] <= 12
    assert c["tasks"]["pages"] < 1500 / 10  # not one row per call


# -- the client's receive limit ------------------------------------------------------------------

def test_a_row_over_the_client_limit_raises_the_client_limit(tmp_path, served):
    """Given a client receive limit of 8 KiB, below the heaviest task row (12,362 bytes), when
    exported, then a single-row page refused by the client reopens the channel with a larger
    limit (it said 'does not fit the receive limit' before) and the bundle is exact."""
    cp, ep, _ = served
    s = export(ep, tmp_path / "b", all_sessions=True, max_receive=8 * 1024)
    _exact(s.path, cp.view())
    assert s.manifest["consistency"]["resource_exhausted"] > 0


def test_the_client_limit_stops_at_its_ceiling_with_a_sentence(tmp_path, served):
    """Given a receive limit that may not rise above 8 KiB (export's max_receive_ceiling), when
    a 12 kB row comes, then the export stops with a sentence naming aksnap's receive limit, not
    the server's, and leaves nothing at out."""
    cp, ep, _ = served
    with pytest.raises(ExportError) as e:
        export(ep, tmp_path / "b", all_sessions=True, max_receive=8 * 1024,
               max_receive_ceiling=8 * 1024)
    msg = str(e.value)
    assert "aksnap's receive limit" in msg and "8192 bytes" in msg and "server's" not in msg
    assert "a single tasks row" in msg
    assert not (tmp_path / "b").exists()


def test_max_message_size_reaches_the_client_from_the_cli(tmp_path, served, monkeypatch):
    """Given `aksnap export --max-message-size 8192` (below the 12 kB heaviest row), when run,
    then the CLI's ceiling is the client's: exit 1 and a sentence naming aksnap's 8192 byte
    receive limit and the option to raise; with the default (256 MiB) the same export works,
    also when the receive limit its pages are sized to (16 MiB, here made 8 KiB) is below the
    row: the CLI raises it for that row."""
    from aksnap.exporter import api

    cp, ep, _ = served
    r = runner.invoke(app, ["export", "--endpoint", ep, "--all", "--out", str(tmp_path / "b"),
                            "-q", "--max-message-size", "8192"])
    assert r.exit_code == 1, r.output
    assert "aksnap's receive limit" in r.stderr and "8192 bytes" in r.stderr
    assert "--max-message-size" in r.stderr and "Traceback" not in r.output
    ok = runner.invoke(app, ["export", "--endpoint", ep, "--all", "--out", str(tmp_path / "c"),
                             "-q"])
    assert ok.exit_code == 0, ok.output
    monkeypatch.setattr(api, "PAGE_MAX_RECEIVE", 8 * 1024)
    raised = runner.invoke(app, ["export", "--endpoint", ep, "--all", "--out",
                                 str(tmp_path / "d"), "-q"])
    assert raised.exit_code == 0, raised.output
    _exact(tmp_path / "d", cp.view())
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["consistency"]["resource_exhausted"] > 0  # refused by aksnap, then raised


def test_a_capped_export_still_meets_the_servers_send_limit(tmp_path, served, limit):
    """Given a server send limit of 64 kB and a capped budget (whose pages are sized, as
    uncapped, to a 16 MiB receive limit: 8 MiB pages), when exported, then the server's
    refusals size the pages to its limit as they do uncapped (a few refusals, not one per
    page) and the bundle is exact."""
    cp = served[0]
    ep = limit(64_000)
    s = export(ep, tmp_path / "b", all_sessions=True, max_rps=1000.0)
    _exact(s.path, cp.view())
    c = s.manifest["consistency"]
    assert 0 < c["resource_exhausted"] <= 12
    assert c["tasks"]["pages"] < 1500 / 10
    assert s.manifest["cost"]["budget"]["max_rps"] == 1000.0
