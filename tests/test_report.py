"""`aksnap report`: one self-contained HTML page, opened in a real browser (Debian's chromium,
driven by Playwright for Python through the system binary): no console error, no network
request, the blocked result's frontier highlighted on a click, hostile strings shown as text.

The browser tests skip (saying why) when chromium or playwright is missing; `.ci/run` installs
both. Screenshots are saved in each test's tmp_path for a developer to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from aksnap.analyzer import report
from aksnap.analyzer.snapshot import Snapshot
from aksnap.cli import app

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _report(bundle, out, *args):
    r = runner.invoke(app, ["report", str(bundle), "--out", str(out), "-o", "json", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def demo_page(demo_bundle, tmp_path_factory):
    bundle, truth = demo_bundle
    out = tmp_path_factory.mktemp("report") / "demo.html"
    _report(bundle, out)
    return out, truth


@pytest.fixture(scope="module")
def hostile_page(hostile_bundle, tmp_path_factory):
    bundle, truth = hostile_bundle
    out = tmp_path_factory.mktemp("report") / "hostile.html"
    _report(bundle, out)
    return out, truth


@pytest.fixture(scope="module")
def browser():
    # skipped on a machine without them; under .ci/run (AKSNAP_REQUIRE_TOOLS) a failure instead
    required = bool(os.environ.get("AKSNAP_REQUIRE_TOOLS"))
    if CHROMIUM is None:
        (pytest.fail if required else pytest.skip)("chromium is not installed (.ci/run installs it with apt)")
    if required:
        import playwright.sync_api as sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                       "(the test extra)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """A page with every console message, page error, dialog and request recorded."""

    def __init__(self, browser, path):
        self.page = browser.new_page(viewport={"width": 1500, "height": 1000})
        self.console, self.errors, self.requests, self.dialogs = [], [], [], []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(path.as_uri())
        try:
            self.page.wait_for_selector("body[data-ready='1']", state="attached", timeout=20_000)
        except Exception:  # say why the page never finished drawing
            raise AssertionError(f"the page did not draw itself: {self.problems()}") from None

    def problems(self) -> list:
        return self.errors + [m for m in self.console if m[0] in ("error", "warning")] + self.dialogs


def test_demo_report_opens_offline_and_highlights_the_blocked_results_frontier(browser, demo_page,
                                                                             tmp_path):
    """Given the demo's report (a failure chain and a blocked result), when opened in Chromium,
    then there is no console error or warning and no request but the file itself; clicking the
    blocked result selects it and highlights its frontier node (the straggler, still
    running) and shows its detail."""
    path, truth = demo_page
    p = Page(browser, path)
    try:
        assert p.problems() == []
        assert p.requests == [path.as_uri()]
        blocked = p.page.locator(f"g.node[data-id='{truth['blocked_result']}']").first
        blocked.click()
        hl = p.page.eval_on_selector_all("g.node.hl", "els => els.map(e => e.getAttribute('data-id'))")
        assert truth["straggler_task"] in hl
        assert "selected" in blocked.get_attribute("class")
        assert truth["blocked_result"] in p.page.inner_text("#detail")
        p.page.screenshot(path=str(tmp_path / "blocked-result.png"))
        assert (tmp_path / "blocked-result.png").stat().st_size > 10_000
        assert p.problems() == [] and p.requests == [path.as_uri()]
    finally:
        p.page.close()


def test_failed_result_highlights_its_root_cause_and_search_finds_it(browser, demo_page, tmp_path):
    """Given the demo's report, when the failed task's id prefix is typed in the search box and
    the hit chosen, then its node is selected; clicking the failed root result highlights the
    root cause (the failed leaf) upstream."""
    path, truth = demo_page
    p = Page(browser, path)
    try:
        p.page.fill("#search", truth["failed_task"][:8].upper())
        p.page.locator("#hits div").first.click()
        sel = p.page.eval_on_selector_all("g.node.selected", "els => els.map(e => e.getAttribute('data-id'))")
        assert sel and sel[0] == truth["failed_task"]
        p.page.locator(f"g.node[data-id='{truth['failed_root_result']}']").first.click()
        hl = p.page.eval_on_selector_all("g.node.root.hl", "els => els.map(e => e.getAttribute('data-id'))")
        assert truth["failed_task"] in hl
        p.page.screenshot(path=str(tmp_path / "failed-result.png"))
        assert p.problems() == []
    finally:
        p.page.close()


def test_no_hostile_string_becomes_markup_or_script(browser, hostile_page, tmp_path):
    """Given the hostile scenario's report (<script>, <img onerror>, <b>, NUL, bidi overrides in
    application name, messages, result names), when opened, then no dialog opens, the DOM holds
    no element the page did not make (no img, b, extra script), and the markup is on the page
    as text."""
    path, _ = hostile_page
    p = Page(browser, path)
    try:
        assert p.dialogs == [] and p.errors == []
        counts = p.page.evaluate("""() => ({img: document.querySelectorAll('img').length,
            b: document.querySelectorAll('b').length,
            script: document.querySelectorAll('script').length,
            onerror: document.querySelectorAll('[onerror]').length})""")
        assert counts == {"img": 0, "b": 0, "script": 2, "onerror": 0}
        text = p.page.inner_text("main")
        assert "<img src=x onerror=alert(1)>" in text
        assert "\\u202e" in text and "\\u0000" in text  # shown, not obeyed
        p.page.screenshot(path=str(tmp_path / "hostile.png"))
        assert p.requests == [path.as_uri()]
    finally:
        p.page.close()


def test_page_is_one_file_that_loads_nothing(demo_page):
    """Given the demo's report, then it carries a CSP forbidding every load, its style and
    script are inline with the page's nonce, and nothing in it points elsewhere."""
    path, _ = demo_page
    text = path.read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text).group(1)
    assert "default-src &#x27;none&#x27;" in csp
    nonce = re.search(r"nonce-([A-Za-z0-9_-]+)", csp).group(1)
    assert text.count("<script") == 2 and text.count(f'<script nonce="{nonce}">') == 1
    assert text.count(f'<style nonce="{nonce}">') == 1
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    js = report._asset("report.js")
    assert js in text
    code = "\n".join(line for line in js.splitlines() if not line.lstrip().startswith("//"))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute(\"on", "setAttribute(\"style"):
        assert sink not in code, sink


def test_script_json_cannot_close_its_element():
    """Given strings holding </script>, <!--, & and U+2028/2029, when embedded, then the JSON
    text holds no < > & and no raw line separator, and decodes to the same strings."""
    data = {"a": "</script><script>alert(1)</script>", "b": "<!-- x", "c": "a&b\u2028\u2029"}
    text = report.script_json(data)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == data


def test_status_timeline_matches_the_status_over_time_query(demo_bundle):
    """Given the demo bundle, when the page's tasks-by-status timeline is computed with numpy,
    then at every instant it equals queries/status_over_time.sql run by DuckDB."""
    bundle, truth = demo_bundle
    snap = Snapshot.open(bundle)
    g = snap.graph
    tl = report.timeline(g, np.arange(g.n_tasks), 0, bins=20)
    rows = snap.query("status_over_time", {"buckets": 20, "session_id": truth["session"]}).to_pylist()
    times = sorted({r["time"] for r in rows})
    assert len(times) == len(tl["times_s"]) == 21
    for k, t in enumerate(times):
        want = {r["status"]: r["tasks"] for r in rows if r["time"] == t}
        got = {s: v[k] for s, v in tl["counts"].items() if v[k]}
        assert got == want, t


def test_a_redacted_bundle_gives_a_redacted_report(demo_bundle, demo_page, tmp_path):
    """Given the demo bundle redacted (keyed pseudonyms), when reported, then no original id
    of the session, the failed task or the blocked result is in the page, and the page says
    it is redacted."""
    bundle, truth = demo_bundle
    r = runner.invoke(app, ["redact", str(bundle), "--out", str(tmp_path / "red"), "--key-file",
                            str(tmp_path / "key"), "--new-key"])
    assert r.exit_code == 0, r.output
    _report(tmp_path / "red", tmp_path / "red.html")
    text = (tmp_path / "red.html").read_text()
    for original in (truth["session"], truth["failed_task"], truth["blocked_result"]):
        assert original not in text and original in demo_page[0].read_text()
    assert "redacted" in text


def test_result_option_draws_that_lineage_first(demo_bundle, tmp_path):
    """Given --result with a prefix, then the page's first lineage is that result's, marked as
    asked; an unknown result is one sentence and no file."""
    bundle, truth = demo_bundle
    info = _report(bundle, tmp_path / "r.html", "--result", truth["straggler_result"][:10])
    data = report.build(Snapshot.open(bundle), result_id=truth["straggler_result"])
    assert data["sessions"][0]["lineages"][0]["result_id"] == truth["straggler_result"]
    assert data["sessions"][0]["lineages"][0]["why"] == "asked" and info["lineages"] >= 1
    r = runner.invoke(app, ["report", str(bundle), "--out", str(tmp_path / "x.html"), "-r", "nope"])
    assert r.exit_code == 2 and r.stderr.startswith("aksnap: error: ")
    assert not (tmp_path / "x.html").exists()


@pytest.fixture(scope="module")
def recorded_series(tmp_path_factory):
    """A series as `aksnap watch --record` writes it: an export of a frozen htcmock run at 20 %
    of its span, then incremental updates at 60 % and at its end."""
    from aksnap.exporter import export, update
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    d = tmp_path_factory.mktemp("series") / "run"
    d.mkdir()
    sc = build_scenario("htcmock", seed=8, tasks=200)
    end = sc.cluster.end_time
    with SimulatedControlPlane(sc, at=0.2 * end) as cp:
        ep = cp.start()
        prev = export(ep, d / "00000-a", sessions=[sc.truth["session"]]).path
        for k, frac in enumerate((0.6, 1.0), 1):
            cp.at = frac * end
            prev = update(prev, d / f"{k:05d}-b").path
    out = tmp_path_factory.mktemp("report") / "series.html"
    info = _report(d, out)
    return d, out, info


def _page_data(path):
    text = path.read_text()
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def test_report_of_a_recorded_series_replays_its_states(recorded_series):
    """Given a recorded series of three states, when reported (CLI and Python API), then the
    page is the latest bundle's report plus the recorded states, whose rows equal what
    `aksnap analyze DIR` computes (analyzer/series.py), between the first and last instant."""
    from aksnap.analyzer import api, series

    d, out, info = recorded_series
    want = series.state_rows(series.build(d))
    data = _page_data(out)
    assert data["replay"]["rows"] == json.loads(json.dumps(want))
    assert data["replay"]["states"] == info["recorded_states"] == 3
    assert (data["replay"]["from"], data["replay"]["to"]) == (want[0]["at"], want[-1]["at"])
    assert want[0]["percent_complete"] < want[-1]["percent_complete"] == 100.0
    assert data["meta"]["bundle"].endswith("00002-b")  # the latest recorded bundle
    assert data["sessions"][0]["overview"]["tasks"] == want[-1]["tasks"]
    assert api.report_file(d, out.with_name("api.html"))["recorded_states"] == 3
    plain = _report(d / "00002-b", out.with_name("plain.html"))
    assert "recorded_states" not in plain and "replay" not in _page_data(out.with_name("plain.html"))


def test_recorded_states_section_renders_without_errors(browser, recorded_series, tmp_path):
    """Given the series' report in Chromium, then the recorded-states section says how many
    states it came from and between which instants, draws a point per state, and the page logs
    no error."""
    d, out, info = recorded_series
    p = Page(browser, out)
    try:
        assert p.problems() == []
        text = p.page.inner_text("#replay")
        assert f"From 3 recorded states between {info['recorded_from']} and {info['recorded_to']}" in text
        assert p.page.locator("#replay svg circle").count() == 3
        assert p.page.locator("#replay svg polygon").count() >= 2
        p.page.screenshot(path=str(tmp_path / "series.png"), full_page=True)
        assert p.requests == [out.as_uri()]
    finally:
        p.page.close()
