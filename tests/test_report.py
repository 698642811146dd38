"""`aksnap report`: one self-contained HTML page, opened in a real browser (Debian's chromium,
driven by Playwright for Python through the system binary): no console error, no network
request, the blocked result's frontier highlighted on a click, hostile strings shown as text.

The browser tests skip (saying why) when chromium or playwright is missing; `.ci/run` installs
both. Screenshots are saved in each test's tmp_path for a developer to look at.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from aksnap.analyzer import report
from aksnap.analyzer.snapshot import Snapshot
from aksnap.cli import app

runner = CliRunner()


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


class Page:
    """A page with every console message, page error, dialog and request recorded."""

    def __init__(self, browser, path, width: int = 1500):
        self.page = browser.new_page(viewport={"width": width, "height": 1000})
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


def _utc(iso: str) -> str:
    """An ISO instant as the page writes it: 2026-01-02 14:03:07 UTC."""
    from datetime import datetime, timezone

    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


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
        assert (f"From 3 recorded states between {_utc(info['recorded_from'])} and "
                f"{_utc(info['recorded_to'])}") in text
        assert p.page.locator("#replay svg circle").count() == 3
        assert p.page.locator("#replay svg polygon").count() >= 2
        p.page.screenshot(path=str(tmp_path / "series.png"), full_page=True)
        assert p.requests == [out.as_uri()]
    finally:
        p.page.close()


# -- the page as an operator reads it (issue 19) -------------------------------------------------

@pytest.fixture(scope="module")
def failures_page(tmp_path_factory):
    """The `failures` scenario with seed 3 (the issue's run: session 379cfc88 cancelled with 17
    tasks), exported over real gRPC and reported: (page, truth)."""
    from aksnap.exporter import export
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    d = tmp_path_factory.mktemp("failures")
    sc = build_scenario("failures", seed=3)
    with SimulatedControlPlane(sc) as cp:
        bundle = export(cp.start("127.0.0.1", 0), d / "bundle", all_sessions=True).path
    truth = sc.truth
    out = d / "failures.html"
    _report(bundle, out)
    return out, truth


# Every check below runs in the page; each returns a list of problems (empty: none).
NO_CLIPPING = """() => {
  const vw = document.documentElement.clientWidth, bad = [];
  const sw = document.documentElement.scrollWidth;
  if (sw > vw + 1) bad.push("the page scrolls sideways: " + sw + " > " + vw);
  for (const e of document.querySelectorAll("main *")) {
    if (e.closest(".dagwrap, .tablewrap")) continue;  // boxes that scroll by design
    const r = e.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    if (r.right > vw + 0.5 || r.left < -0.5)
      bad.push(e.tagName + "." + e.getAttribute("class") + " spans " + r.left + ".." + r.right);
  }
  for (const c of document.querySelectorAll(".chart, section, .block, .lineage"))
    if (c.scrollWidth > c.clientWidth + 1)
      bad.push(c.tagName + "." + c.className + " cut: " + c.scrollWidth + " > " + c.clientWidth);
  return bad;
}"""
TARGETS_IN_BOX = """() => {
  const bad = [];
  for (const box of document.querySelectorAll(".dagwrap")) {
    const t = box.querySelector("g.node.target");
    if (!t) { bad.push("a DAG without its result"); continue; }
    const b = box.getBoundingClientRect(), r = t.getBoundingClientRect();
    const right = b.left + box.clientLeft + box.clientWidth;
    const bottom = b.top + box.clientTop + box.clientHeight;
    if (r.left < b.left - 0.5 || r.right > right + 0.5 || r.top < b.top - 0.5 || r.bottom > bottom + 0.5)
      bad.push(t.getAttribute("data-id") + " at " + [r.left, r.top, r.right, r.bottom].map(Math.round) +
               " outside its box " + [b.left, b.top, right, bottom].map(Math.round));
  }
  return bad;
}"""
LABELS_APART = """() => {
  const bad = [];
  for (const root of document.querySelectorAll("main svg")) {
    const boxes = [];
    for (const t of root.querySelectorAll("text")) {
      if (!t.textContent) continue;
      const r = t.getBoundingClientRect();
      if (r.width && r.height) boxes.push([r, t.textContent]);
    }
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const [a, ta] = boxes[i], [b, tb] = boxes[j];
      if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5)
        bad.push(root.getAttribute("class") + ": '" + ta + "' over '" + tb + "'");
    }
  }
  return bad;
}"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_page_fits_its_width_dag_results_stay_in_view_labels_never_overlap(browser, demo_page,
                                                                         failures_page, width,
                                                                         tmp_path):
    """Given the demo's and the failures scenario's pages, when opened 1280 and 1920 pixels
    wide, then nothing sticks out sideways (only the DAG boxes and wide tables scroll, by
    design), every DAG's result node is inside its box (the drawing scaled to the box, scrolled
    to the result when it is wider), and no two text labels of a chart, axis or DAG overlap;
    still true once the detail panel narrows the page and every node of the demo's first DAG
    is shown."""
    for path in (demo_page[0], failures_page[0]):
        p = Page(browser, path, width=width)
        try:
            assert p.problems() == []
            assert p.page.evaluate(NO_CLIPPING) == []
            assert p.page.evaluate(TARGETS_IN_BOX) == []
            assert p.page.evaluate(LABELS_APART) == []
            p.page.screenshot(path=str(tmp_path / f"{path.stem}-{width}.png"), full_page=True)
            p.page.locator("g.node.target").first.click()   # the detail panel opens beside
            p.page.locator("text=show every node in the page").first.click()
            p.page.wait_for_timeout(300)                      # the redraw after a resize
            assert p.page.evaluate(NO_CLIPPING) == []
            assert p.page.evaluate(TARGETS_IN_BOX) == []
            assert p.page.evaluate(LABELS_APART) == []
            assert p.problems() == []
        finally:
            p.page.close()


TIME_TICKS = """() => [...document.querySelectorAll("svg.timechart, svg.gantt")].map((s) => ({
  cls: s.getAttribute("class"),
  ticks: [...s.querySelectorAll("text.tick.time")].map((t) => t.textContent),
  caption: [...s.querySelectorAll("text.caption")].map((t) => t.textContent).join(" | ")}))"""


def test_time_axes_tick_at_wall_clock_instants_in_utc(browser, demo_page):
    """Given the demo's page, then every time chart (status over time, throughput,
    utilisation, the critical path) has at least 3 ticks labelled with UTC clock times
    (HH:MM:SS), increasing, inside the run's span, and says "time (UTC)" with the date."""
    from datetime import datetime, timedelta

    path, _ = demo_page
    data = _page_data(path)
    tl = data["sessions"][0]["timeline"]
    t0 = datetime.fromisoformat(tl["t0"])
    t1 = t0 + timedelta(seconds=tl["times_s"][-1])
    p = Page(browser, path)
    try:
        charts = p.page.evaluate(TIME_TICKS)
        assert {c["cls"].split()[0] for c in charts} >= {"timechart", "gantt"}
        assert len(charts) >= 4  # status, throughput, critical path, utilisation
        for c in charts:
            assert len(c["ticks"]) >= 3, c
            assert f"time (UTC) · {t0.date().isoformat()}" in c["caption"], c
            at = [datetime.combine(t0.date(), datetime.strptime(x, "%H:%M:%S").time(), t0.tzinfo)
                  for x in c["ticks"]]
            assert at == sorted(at) and len(set(at)) == len(at), c
            assert t0 - timedelta(seconds=1) <= at[0] and at[-1] <= t1 + timedelta(seconds=1), c
    finally:
        p.page.close()


def _slowest_rows(page, col: str) -> list:
    return page.evaluate("""(col) => { const sec = document.querySelector("[id^='stragglers-']");
      const keys = [...sec.querySelectorAll("th")].map((th) => th.getAttribute("data-key"));
      const k = keys.indexOf(col);
      return [...sec.querySelectorAll("tbody tr")].map((tr) => {
        const td = tr.children[k];
        return td.hasAttribute("data-v") ? (td.getAttribute("data-v") === "" ? null : Number(td.getAttribute("data-v")))
                                         : td.textContent; }); }""", col)


def test_slowest_tasks_table_sorts_and_filters(browser, demo_page):
    """Given the demo's page, then the slowest-tasks table starts sorted by total time, longest
    first; a click on "processing" sorts by it (longest first, a second click shortest first,
    tasks without that phase last); choosing a status keeps only that status, a text filter
    only the ids containing it, and the partition filter offers the partitions of the rows."""
    path, truth = demo_page
    p = Page(browser, path)
    page = p.page
    try:
        total = _slowest_rows(page, "total_s")
        assert len(total) > 10 and total == sorted(total, key=lambda v: -(v or 0))
        sec = page.locator("[id^='stragglers-']")
        sec.locator("th[data-key='processing_s']").click()
        proc = _slowest_rows(page, "processing_s")
        known = [v for v in proc if v is not None]
        assert known == sorted(known, reverse=True) and proc[:len(known)] == known
        sec.locator("th[data-key='processing_s']").click()
        proc = [v for v in _slowest_rows(page, "processing_s") if v is not None]
        assert proc == sorted(proc)
        assert sec.locator("th[data-key='processing_s']").get_attribute("aria-sort") == "ascending"
        sec.locator("select.f-status").select_option("COMPLETED")
        assert set(_slowest_rows(page, "status")) == {"COMPLETED"}
        sec.locator("select.f-status").select_option("PROCESSING")  # the straggler, still running
        assert _slowest_rows(page, "id") == [truth["straggler_task"]]
        sec.locator("select.f-status").select_option("")
        prefix = truth["straggler_task"][:6]
        sec.locator("input.f-text").fill(prefix)
        ids = _slowest_rows(page, "id")
        assert ids and all(prefix in i for i in ids) and truth["straggler_task"] in ids
        assert sec.locator("select.f-partition option").all_inner_texts()[1:] == ["htcmock"]
    finally:
        p.page.close()


def test_tiles_say_in_progress_never_running_and_counts_are_formatted(browser, demo_page,
                                                                      failures_page, tmp_path):
    """Given the demo's page (4 tasks PENDING, the straggler PROCESSING) and the failures
    scenario's, then no tile says RUNNING (ArmoniK has no such task status): "waiting" and "in
    progress" count the tasks of aksnap.columns' sets; no raw JSON is shown; and given a run of
    1,500 tasks, its counts carry thousands separators."""
    from aksnap.analyzer.testing import make_bundle, result, task
    from aksnap.bundle import STATUS_SETS

    def tile_pairs(p):
        return [tuple(c) for c in p.page.eval_on_selector_all(
            "main > section.session .card", "els => els.map(e => [e.children[0].innerText, e.children[1].innerText])")]

    for path in (demo_page[0], failures_page[0]):
        data = _page_data(path)
        p = Page(browser, path)
        try:
            tiles = tile_pairs(p)
            assert tiles and not [t for t in tiles if re.search(r"running", " ".join(t), re.I)]
            for s in data["sessions"]:
                by = s["overview"]["tasks_by_status"]
                for name, key in (("in progress", "in_progress"), ("waiting", "waiting")):
                    assert (name, f"{sum(by.get(x, 0) for x in STATUS_SETS['tasks'][key]):,}") in tiles
            text = p.page.inner_text("main")
            assert '{"' not in text and '":' not in text
        finally:
            p.page.close()
    assert ("in progress", "1") in tile_pairs(Page(browser, demo_page[0]))
    tasks = [task(f"t{k}", outputs=[f"r{k}"], times={"created": 0, "submitted": 1, "acquired": 2,
                                                    "fetched": 2, "started": 3, "processed": 4 + k / 1000,
                                                    "ended": 4 + k / 1000}) for k in range(1500)]
    b = make_bundle(tmp_path / "b", tasks=tasks,
                    results=[result(f"r{k}", owner=f"t{k}", completed=5) for k in range(1500)])
    _report(b, tmp_path / "big.html")
    p = Page(browser, tmp_path / "big.html")
    try:
        assert ("tasks", "1,500") in tile_pairs(p) and ("results", "3,000") in tile_pairs(p)
        assert "1,500 tasks, 3,000 results, 1 session" in p.page.inner_text("#meta")
        assert p.page.evaluate(LABELS_APART) == [] and p.page.evaluate(NO_CLIPPING) == []
    finally:
        p.page.close()


def test_failures_scenario_shows_one_lineage_section_per_root_cause(browser, failures_page,
                                                                   tmp_path):
    """Given the issue's failures run (seed 3: session 379cfc88 cancelled, its 17 results
    ABORTED), when reported, then that session shows one lineage section, for one cause
    ("session ... was cancelled", said once) listing the 17 results it explains (the first 10
    and "7 more"), its DAG drawing the 10 with each shared node once; the main session shows
    one section per root cause (X's error, Z's exhausted retries, T's timeout), not one per
    aborted result, and every section id the page's data names exists (verdict slot first)."""
    path, truth = failures_page
    sid = truth["cancelled_session"]
    assert sid.startswith("379cfc88") and len(truth["cancelled_tasks"]) == 17
    data = _page_data(path)
    p = Page(browser, path)
    try:
        assert p.problems() == []
        sec = p.page.locator(f"section[id='{report.anchor('session', sid)}']")
        sections = sec.locator(".lineage")
        assert sections.count() == 1
        cause = sections.first
        assert cause.get_attribute("id") == report.anchor("lineage-cause", sid, "session-cancelled")
        text = cause.inner_text()
        assert text.count("was cancelled at") == 1 and f"session {sid} was cancelled" in text
        assert "17 results lost" in text and "and 7 more" in text
        listed = cause.locator(".results a.idlink").all_inner_texts()
        assert len(listed) == 10
        lost = {r for r in data["sessions"][[s["overview"]["session_id"] for s in data["sessions"]].index(sid)]
                ["lineages"][0]["results"]}
        assert set(listed) == lost
        drawn = cause.locator("g.node").evaluate_all("els => els.map(e => e.getAttribute('data-id'))")
        assert len(drawn) == len(set(drawn))                 # shared upstream drawn once
        assert cause.locator("g.node.target").count() == 10
        assert set(cause.locator("g.node.root").evaluate_all(
            "els => els.map(e => e.getAttribute('data-id'))")) <= set(truth["cancelled_tasks"])
        main = p.page.locator(f"section[id='{report.anchor('session', truth['main_session'])}']")
        roots = main.locator(".lineage.cause g.node.root").evaluate_all(
            "els => els.map(e => e.getAttribute('data-id'))")
        assert main.locator(".lineage.cause").count() == 3
        assert set(roots) == set(truth["root_cause_tasks"])
        assert main.locator(".lineage:not(.cause)").count() == 0
        first = p.page.evaluate("document.getElementById('main').firstElementChild.id")
        assert first == report.anchor("verdict")
        ids = [data["anchors"]["utilisation"]] + [a for s in data["sessions"] for a in s["anchors"].values()] \
            + [lin["anchor"] for s in data["sessions"] for lin in s["lineages"]]
        missing = p.page.evaluate("ids => ids.filter(i => !document.getElementById(i))", ids)
        assert missing == []
        cause.screenshot(path=str(tmp_path / "cancelled-session-cause.png"))
    finally:
        p.page.close()


def test_verdict_panel_comes_first_and_each_finding_links_to_its_section(browser, failures_page,
                                                                      tmp_path):
    """Given the failures run reported, when opened in Chromium, then the first thing in the
    page is the verdict panel (above the fold, before any session), listing the findings in
    their rank; every finding of a session the page draws links to a section that exists: the
    cancelled session's to its one lineage section (said once), the failure classes' to the
    lineage section of their root cause; following the cancelled session's link brings that
    section into view."""
    path, truth = failures_page
    data = _page_data(path)
    v = data["verdict"]
    assert v["findings"] and not v["clean"]
    drawn = {s["overview"]["session_id"] for s in data["sessions"]}
    for f in v["findings"]:  # every finding of a drawn session has somewhere to go
        if f["session_id"] in drawn:
            assert f["anchor"], f
    sid = truth["cancelled_session"]
    cancelled = [f for f in v["findings"] if f["kind"] == "session_cancelled"]
    assert len(cancelled) == 1
    assert cancelled[0]["anchor"] == report.anchor("lineage-cause", sid, "session-cancelled")
    causes = {lin["anchor"] for s in data["sessions"] for lin in s["lineages"] if lin["why"] == "cause"}
    failed = [f for f in v["findings"] if f["kind"] == "failures_by_root_cause"]
    assert failed and all(f["anchor"] in causes for f in failed), failed
    p = Page(browser, path)
    try:
        assert p.problems() == []
        box = p.page.locator("#" + report.anchor("verdict"))
        assert box.is_visible()
        assert p.page.evaluate("document.getElementById('main').firstElementChild.id") == report.anchor("verdict")
        assert box.bounding_box()["y"] < 150  # the first thing read, under the header
        items = box.locator("li.finding")
        assert items.count() == len(v["findings"])
        assert items.evaluate_all("els => els.map(e => e.getAttribute('data-kind'))") == \
            [f["kind"] for f in v["findings"]]
        hrefs = box.locator("a.goto").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        assert hrefs == ["#" + f["anchor"] for f in v["findings"] if f["anchor"]]
        missing = p.page.evaluate("hs => hs.filter(h => !document.getElementById(h.slice(1)))", hrefs)
        assert missing == []
        link = box.locator(f"li[data-kind='session_cancelled'] a.goto")
        link.click()
        target = p.page.locator("#" + cancelled[0]["anchor"])
        p.page.wait_for_function("id => { const r = document.getElementById(id).getBoundingClientRect();"
                                 " return r.top >= 0 && r.top < innerHeight; }", arg=cancelled[0]["anchor"])
        assert "was cancelled" in target.inner_text()
        box.screenshot(path=str(tmp_path / "verdict.png"))
        assert p.problems() == []
    finally:
        p.page.close()


def test_a_clean_run_verdict_says_so_in_one_line(demo_bundle, tmp_path):
    """Given a bundle reported, then the page's verdict carries the findings of
    ``aksnap findings`` in the same order (one source), and a finding of a session the page
    does not draw has no link but its command."""
    from aksnap.analyzer import findings

    bundle, _ = demo_bundle
    snap = Snapshot.open(bundle)
    try:
        d = report.build(snap)
        want = findings.build(snap)
    finally:
        snap.close()
    assert [f["key"] for f in d["verdict"]["findings"]] == [f["key"] for f in want["findings"]]
    assert d["verdict"]["summary"] == want["summary"]
    drawn = {s["overview"]["session_id"] for s in d["sessions"]}
    for f in d["verdict"]["findings"]:
        if f["session_id"] is not None and f["session_id"] not in drawn:
            assert f["anchor"] is None and f["next"]


def test_whatif_section_replays_the_run_and_shows_the_capacity_curve(browser, demo_page, demo_bundle):
    """Given the demo's report, then its what-if section holds what ``whatif.report_data`` says
    (recorded against replayed per session, the capacity curve at 0.5x to 4x the pods) and
    draws it without a console error; above REPORT_MAX_TASKS the page replays nothing and
    names the command instead."""
    from aksnap.analyzer import whatif

    path, _ = demo_page
    data = _page_data(path)
    w = data["whatif"]
    bundle, _ = demo_bundle
    snap = Snapshot.open(bundle)
    try:
        assert w == json.loads(report.script_json(whatif.report_data(snap)))
    finally:
        snap.close()
    assert w["available"] and [r["factor"] for r in w["curve"]] == [0.5, 1.0, 2.0, 4.0]
    p = Page(browser, path)
    try:
        assert p.problems() == []
        sec = p.page.locator("#" + report.anchor("whatif"))
        assert sec.locator("table").count() == 2
        assert sec.locator("table").nth(1).locator("tr").count() == 1 + 4
    finally:
        p.page.close()


def test_whatif_section_of_a_big_bundle_names_the_command(demo_bundle, monkeypatch):
    """Given a bundle over the report's replay limit, then the section replays nothing, says
    why and names ``aksnap whatif ... --curve``."""
    from aksnap.analyzer import whatif

    monkeypatch.setattr(whatif, "REPORT_MAX_TASKS", 1)
    snap = Snapshot.open(demo_bundle[0])
    try:
        w = whatif.report_data(snap)
    finally:
        snap.close()
    assert w["available"] is False and "not replayed" in w["why"] and w["command"].endswith("--curve")


def test_lost_results_are_grouped_by_root_cause(tmp_path):
    """Given a hand-drawn bundle::

        session s1
          a1 ERROR "worker crashed on 10.0.0.1 after 3 s" -> ra1 ABORTED -> b1 ERROR (propagated) -> rb1 ABORTED
          a2 ERROR "worker crashed on 10.0.0.2 after 5 s" -> ra2 ABORTED
          c1 TIMEOUT "exceeded 5 s" -> rc1 ABORTED
          ok COMPLETED -> rok
        session s2, CANCELLED: x1, x2, x3 CANCELLED -> rx1, rx2, rx3 ABORTED

    when grouped, then s1 has two causes: the error class of a1 and a2 (2 root tasks, results
    rb1 and ra2), then c1's timeout (rc1); s2 has one: its cancellation (3 root tasks, 3
    results); each with its anchor, and nothing unexplained."""
    from aksnap.analyzer.testing import make_bundle, result, task

    def t(i, **kw):
        return task(i, times={"created": 0, "submitted": 1, "acquired": 2, "fetched": 2,
                              "started": 3, "processed": 6, "ended": 6}, **kw)

    tasks = [t("a1", status="ERROR", outputs=["ra1"], message="worker crashed on 10.0.0.1 after 3 s"),
             task("b1", status="ERROR", deps=["ra1"], outputs=["rb1"], message="input aborted",
                  times={"created": 0, "ended": 6}),
             t("a2", status="ERROR", outputs=["ra2"], message="worker crashed on 10.0.0.2 after 5 s"),
             t("c1", status="TIMEOUT", outputs=["rc1"], message="exceeded 5 s"),
             t("ok", outputs=["rok"])] + \
        [t(f"x{k}", session="s2", status="CANCELLED", outputs=[f"rx{k}"],
           message="Task cancelled: session s2 was cancelled") for k in (1, 2, 3)]
    results = [result(r, owner=o, status="ABORTED") for r, o in
               (("ra1", "a1"), ("rb1", "b1"), ("ra2", "a2"), ("rc1", "c1"))] + \
        [result("rok", owner="ok", completed=6)] + \
        [result(f"rx{k}", session="s2", owner=f"x{k}", status="ABORTED") for k in (1, 2, 3)]
    sessions = [{"session_id": "s1", "status": "RUNNING"},
                {"session_id": "s2", "status": "CANCELLED"}]
    b = make_bundle(tmp_path / "b", tasks=tasks, results=results, sessions=sessions)
    with Snapshot.open(b) as snap:
        s1 = report.lineage_causes(snap, "s1")
        s2 = report.lineage_causes(snap, "s2")
        sql = {(r["status"], r["propagated"]): r["error_class"]
               for r in snap.query("error_classes", {"session_id": "s1"}).to_pylist()}
    assert [(c["kind"], c["status"], c["roots_total"], sorted(c["results"])) for c in s1["causes"]] == [
        ("task_failures", "ERROR", 2, ["ra2", "rb1"]), ("task_failures", "TIMEOUT", 1, ["rc1"])]
    # the class of `aksnap analyze` (queries/error_classes.sql), computed in Arrow
    assert s1["causes"][0]["error_class"] == sql[("ERROR", False)] == "worker crashed on <n>.<n> after <n> s"
    assert {r["id"] for r in s1["causes"][0]["root_causes"]} == {"a1", "a2"}
    assert (s1["lost_results"], s1["unexplained"], s1["more_causes"]) == (3, 0, 0)
    [c] = s2["causes"]
    assert (c["kind"], c["roots_total"], sorted(c["results"])) == ("session_cancelled", 3, ["rx1", "rx2", "rx3"])
    assert c["claim"].startswith("session s2 was cancelled") and c["anchor"] == "lineage-cause-s2-session-cancelled"
    assert report.anchor("lineage-cause", "s 1<x>", "task-a###2") == "lineage-cause-s_1_x_-task-a___2"


def test_utilisation_counts_what_the_timeline_counts_against_the_pods(demo_bundle):
    """Given the demo bundle, then the utilisation per partition counts, at every instant, the
    tasks the status timeline has DISPATCHED or PROCESSING (in progress) and SUBMITTED
    (queued), and names the partition's pod_max and pod_reserved from the partitions table and
    the distinct pods its tasks ran on."""
    import pyarrow.parquet as pq

    bundle, _ = demo_bundle
    snap = Snapshot.open(bundle)
    g = snap.graph
    use = report.utilisation(snap)
    tl = report.timeline(g, np.arange(g.n_tasks), 0)
    [part] = use["partitions"]
    assert use["times_s"] == tl["times_s"]
    assert part["in_progress"] == [a + b for a, b in zip(tl["counts"].get("DISPATCHED", [0] * 121),
                                                         tl["counts"]["PROCESSING"])]
    assert part["queued"] == tl["counts"]["SUBMITTED"]
    row = pq.read_table(bundle / "partitions.parquet").to_pylist()[0]
    assert (part["pod_max"], part["pod_reserved"]) == (row["pod_max"], row["pod_reserved"])
    pods = set(pq.read_table(bundle / "tasks.parquet", columns=["pod_hostname"])["pod_hostname"].to_pylist())
    assert part["pods_observed"] == len(pods - {None, ""})
    assert 0 < part["peak_in_progress"] <= part["pods_observed"]


def test_durations_read_as_people_say_them():
    """Given durations at each unit's edges, then the page's words (the script's fmtS says
    the same) round each unit once: never "59 min 60 s" or "23 h 60 min"."""
    cases = {0.00085: "850 µs", 0.0124: "12.4 ms", 0.005: "5.00 ms", 0.99996: "1.00 s",
             3.214: "3.21 s", 12.4: "12.4 s", 59.99: "1 min", 252: "4 min 12 s", 3599.6: "1 h",
             11117: "3 h 5 min", 86399: "1 d", 29297000: "339 d 2 h", None: ""}
    assert {s: report.human_seconds(s) for s in cases} == cases


def test_page_script_and_python_say_a_duration_alike(browser, demo_page):
    """Given the demo's blocked result, held by the straggler: the summary line (Python) and
    the frontier table (the page's script) say its time in status in the same words."""
    path, truth = demo_page
    data = _page_data(path)
    [lin] = [x for x in data["sessions"][0]["lineages"] if x["why"] == "blocked"]
    words = report.human_seconds(lin["frontier"][0]["in_status_s"])
    assert lin["summary"].endswith(f"for {words}")
    p = Page(browser, path)
    try:
        cells = p.page.locator(f"[id='{lin['anchor']}'] td").all_inner_texts()
        assert words in cells
    finally:
        p.page.close()
