"""`aksnap serve`: the report's page served on loopback, opened in a real browser (Debian's
chromium driven by Playwright, as tests/test_report.py does): it draws with no console error
and no request leaving the server; a drill-down is what `aksnap lineage -o json` prints; a
live session pushed by Server-Sent Events ends equal to the simulated control plane's truth;
hostile strings are shown, never run. Then the server itself, as an adversary would try it:
POST, a foreign Host header, a missing token, bad command lines, SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from aksnap.cli import app
from aksnap.cli.serve import BundleSource, LiveSource, SeriesSource, serve

runner = CliRunner()


class Page:
    """A served page with every console message, page error, dialog and request recorded."""

    def __init__(self, browser, url: str, ready: str = "body[data-ready='1']"):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.console, self.errors, self.requests, self.dialogs = [], [], [], []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(url)
        try:
            self.page.wait_for_selector(ready, state="attached", timeout=20_000)
        except Exception:
            raise AssertionError(f"the page did not draw itself: {self.problems()}") from None

    def problems(self) -> list:
        return self.errors + [m for m in self.console if m[0] in ("error", "warning")] + self.dialogs

    def off_server(self, url: str) -> list[str]:
        """Requests to anything but the server (scheme, host and port)."""
        base = re.match(r"https?://[^/]+/", url).group(0)
        return [r for r in self.requests if not r.startswith(base)]


@pytest.fixture(scope="module")
def demo_served(demo_bundle):
    bundle, truth = demo_bundle
    s = serve(BundleSource(bundle), port=0, background=True)
    yield s, bundle, truth
    s.stop()


def _get(url: str, method: str = "GET", headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _cli_json(*args) -> dict:
    r = runner.invoke(app, [*args, "-o", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


# -- a bundle ------------------------------------------------------------------------------------

def test_bundle_page_draws_without_error_and_asks_only_its_server(browser, demo_served, tmp_path):
    """Given the demo bundle served, when its page is opened in Chromium and the blocked result
    clicked, then the report draws with no console error or warning, the click's drill-down
    (asked of the server) shows the lineage's summary and frontier, and no request went
    anywhere but the server."""
    s, bundle, truth = demo_served
    p = Page(browser, s.url)
    try:
        assert p.problems() == []
        p.page.locator(f"g.node[data-id='{truth['blocked_result']}']").first.click()
        p.page.wait_for_selector("#detail .drill[data-done='1']", timeout=10_000)
        text = p.page.inner_text("#detail .drill")
        want = _cli_json("lineage", str(bundle), truth["blocked_result"])
        assert want["summary"] in text and "lineage (from the server" in text
        assert truth["straggler_task"] in text  # its frontier, listed
        p.page.screenshot(path=str(tmp_path / "drill.png"))
        assert p.problems() == [] and p.off_server(s.url) == []
        assert any("/api/lineage?" in r for r in p.requests)
    finally:
        p.page.close()


def test_drill_down_equals_aksnap_lineage_and_task_json(browser, demo_served):
    """Given the demo bundle served, when the page fetches the lineage of the blocked result
    and the failed task by an 8-character upper-case prefix, then each answer equals what
    `aksnap lineage|task BUNDLE ID -o json` prints; and the search box, given a task prefix,
    lists the server's hit and opens its detail."""
    s, bundle, truth = demo_served
    p = Page(browser, s.url)
    try:
        fetch = "async (u) => { const r = await fetch(u); return [r.status, await r.json()]; }"
        status, got = p.page.evaluate(fetch, f"/api/lineage?id={truth['blocked_result'][:8].upper()}")
        assert status == 200 and got == _cli_json("lineage", str(bundle), truth["blocked_result"])
        status, got = p.page.evaluate(fetch, f"/api/task?id={truth['failed_task'][:8]}")
        assert status == 200 and got == _cli_json("task", str(bundle), truth["failed_task"])
        p.page.fill("#search", truth["failed_task"][:6])
        hit = p.page.locator(f"#hits div[data-server-id='{truth['failed_task']}']")
        hit.wait_for(timeout=10_000)
        hit.click()
        p.page.wait_for_selector("#detail .drill[data-done='1']", timeout=10_000)
        assert "task (from the server" in p.page.inner_text("#detail .drill")
        assert p.problems() == [] and p.off_server(s.url) == []
    finally:
        p.page.close()


def test_hostile_strings_are_shown_never_run(browser, hostile_bundle):
    """Given the hostile scenario served (<script>, <img onerror>, NUL, bidi overrides in
    messages and names), when the failed task's detail (its message holds the markup) is
    asked of the server and a hostile prefix is searched, then no dialog opens, the DOM holds
    no element the page did not make, and the markup is on the page as text."""
    bundle, truth = hostile_bundle
    s = serve(BundleSource(bundle), port=0, background=True)
    p = Page(browser, s.url)
    try:
        p.page.evaluate("id => document.dispatchEvent(new CustomEvent('aksnap:select', "
                        "{detail: {kind: 'task', id}}))", truth["failed_task"])
        p.page.wait_for_selector("#detail .drill[data-done='1']", state="attached", timeout=10_000)
        text = p.page.inner_text("#detail .drill")
        assert "<img src=x onerror=alert(1)>" in text and "\\u202e" in text
        p.page.fill("#search", "<img src=x onerror=alert(1)>")
        p.page.wait_for_selector("#hits .serve-head", timeout=10_000)
        status, body = _get(s.url + "api/lineage?id=%3Cscript%3Ealert(1)%3C/script%3E")
        assert status == 404 and b"<" not in body and "<script>" in json.loads(body)["error"]
        counts = p.page.evaluate("""() => ({img: document.querySelectorAll('img').length,
            b: document.querySelectorAll('b').length,
            script: document.querySelectorAll('script').length,
            onerror: document.querySelectorAll('[onerror]').length})""")
        assert counts == {"img": 0, "b": 0, "script": 3, "onerror": 0}
        assert p.dialogs == [] and p.errors == [] and p.off_server(s.url) == []
    finally:
        p.page.close()
        s.stop()


def test_series_page_has_a_slider_over_the_recorded_states(browser, tmp_path):
    """Given a series of 4 bundles (a session exported, then updated as its clock moved on),
    when served, then the page has a slider over the 4 states, at the last at first; moving
    it to the first shows that state's tasks by status (its row of `aksnap analyze DIR`)."""
    from aksnap.analyzer import series
    from aksnap.exporter import export, update
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    d = tmp_path / "run"
    d.mkdir()
    sc = build_scenario("htcmock", seed=8, tasks=200)
    end = sc.cluster.end_time
    with SimulatedControlPlane(sc, at=0.2 * end) as cp:
        prev = export(cp.start(), d / "00000-a", sessions=[sc.truth["session"]]).path
        for k, frac in enumerate((0.5, 0.8, 1.0), 1):
            cp.at = frac * end
            prev = update(prev, d / f"{k:05d}-b").path
    rows = series.state_rows(series.build(d))
    s = serve(SeriesSource(d), port=0, background=True)
    p = Page(browser, s.url)
    try:
        assert p.problems() == []
        slider = p.page.locator("#replay-slider")
        assert slider.get_attribute("max") == "3" and slider.input_value() == "3"
        slider.fill("0")
        table = p.page.locator("table[data-state='0']")
        assert table.count() == 1
        want = {k: rows[0][k] for k in series.build(d)["statuses"] if rows[0].get(k)}
        heads = table.locator("th").all_inner_texts()
        cells = [int(c.replace(",", "")) for c in table.locator("td").all_inner_texts()]
        assert dict(zip(heads, cells)) == want
        # the drill-downs now answer at that state: the final result, not ready then
        rid = sc.truth["final_result"]
        p.page.fill("#search", rid[:8])
        p.page.locator(f"#hits div[data-server-id='{rid}']").click()
        p.page.wait_for_selector("#detail .drill[data-done='1']", timeout=10_000)
        then = _cli_json("lineage", str(d / "00000-a"), rid)
        assert then["status"] != "COMPLETED" and then["summary"] in p.page.inner_text("#detail .drill")
        # asked directly, state by state (each bundle chosen under the drill's lock)
        for at in ("00000-a", "00002-b", "00000-a", "00003-b"):
            status, body = _get(s.url + f"api/lineage?id={rid}&at={at}")
            assert status == 200 and json.loads(body) == _cli_json("lineage", str(d / at), rid)
        status, body = _get(s.url + f"api/lineage?id={rid}&at=../../etc")
        assert status == 404 and "no bundle" in json.loads(body)["error"]
        assert p.problems() == [] and p.off_server(s.url) == []
    finally:
        p.page.close()
        s.stop()


# -- live ----------------------------------------------------------------------------------------

def _page_counts(page) -> dict[str, int]:
    return {k: int(v.replace(",", "")) for k, v in page.evaluate(
        "() => [...document.querySelectorAll('#live-progress td[data-status]')]"
        ".map(td => [td.getAttribute('data-status'), td.textContent])")}


def _truth_counts(cp, session) -> dict[str, int]:
    import collections

    import pyarrow.compute as pc

    v = cp.view()
    t = v.tasks.filter(pc.equal(v.tasks.column("session_id"), session))
    return dict(collections.Counter(s.removeprefix("TASK_STATUS_") for s in
                                    t.column("status").to_pylist()))


def _until(check, timeout: float, what: str):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: never true (last: {last!r})")


def test_live_page_follows_the_session_and_ends_equal_to_the_servers_truth(browser):
    """Given a simulated htcmock session served live (the watch engine reconciling every
    0.6 s, real gRPC), when the page is open and the cluster's clock moves on twice, the
    second time past the end, then each time the page's tasks by status come to equal the
    server's, it says the watch ended with the last state, it showed the findings panel first
    and its freshness, no request left the server, and once the page is closed its event
    stream is dropped."""
    from aksnap.exporter.client import connection_of
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario("htcmock", seed=6, tasks=300)
    session, end = sc.truth["session"], sc.cluster.end_time
    with SimulatedControlPlane(sc, at=0.2 * end) as cp:
        ep = cp.start()
        src = LiveSource(connection_of(ep, None), session[:8], None, interval=0.6)
        src.resolve()
        s = serve(src, port=0, background=True)
        p = Page(browser, s.url, ready="body[data-reconciles]:not([data-reconciles='0'])")
        try:
            ids = p.page.evaluate("() => [...document.querySelectorAll('#live > div')].map(d => d.id)")
            assert ids[:3] == ["live-health", "", "live-findings"] or ids.index("live-findings") < ids.index("live-progress")
            assert "reconcile" in p.page.inner_text("#live-health")
            for at in (0.6 * end, end + 1):
                cp.at = at
                want = _truth_counts(cp, session)
                _until(lambda: _page_counts(p.page) == want, 15, f"the page equals the server at {at}")
            _until(lambda: p.page.get_attribute("body", "data-ended") is not None, 15, "the watch ended")
            assert _page_counts(p.page) == _truth_counts(cp, session)
            assert "the watch ended" in p.page.inner_text("#live")
            assert p.problems() == [] and p.off_server(s.url) == []
            assert src.broadcaster.clients == 1
        finally:
            p.page.close()
        try:
            _until(lambda: src.broadcaster.clients == 0, 15, "the closed page's stream dropped")
        finally:
            s.stop()


def test_live_result_lineage_in_full_equals_aksnap_lineage_of_the_reconciled_bundle(browser):
    """Given a result followed live (`--result` by a prefix; the session frozen half way, the
    result not ready), when the page's "lineage in full" is clicked, then its drill-down is
    asked of the server, and what the server answers equals `aksnap lineage BUNDLE ID -o
    json` on the bundle of the last reconcile."""
    from aksnap.exporter.client import connection_of
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario("htcmock", seed=6, tasks=300)
    rid = sc.truth["final_result"]
    with SimulatedControlPlane(sc, at=0.5 * sc.cluster.end_time) as cp:
        src = LiveSource(connection_of(cp.start(), None), None, rid[:10].upper(), interval=30)
        src.resolve()
        assert src.result_id == rid and src.session_id == sc.truth["session"]
        s = serve(src, port=0, background=True)
        p = Page(browser, s.url, ready="#live-lineage-full")
        try:
            assert "Live: result" in p.page.inner_text("#live")
            p.page.click("#live-lineage-full")
            p.page.wait_for_selector("#detail .drill[data-done='1']", timeout=15_000)
            assert "lineage (from the server" in p.page.inner_text("#detail .drill")
            got = p.page.evaluate("async (u) => (await fetch(u)).json()", f"/api/lineage?id={rid}")
            assert got == _cli_json("lineage", src.drill.path, rid)
            assert p.problems() == [] and p.off_server(s.url) == []
        finally:
            p.page.close()
            s.stop()


def test_live_page_says_when_the_cluster_or_the_server_stops_answering(browser):
    """Given a session followed live (reconciles every 0.5 s), when the control plane stops,
    then the page says the cluster's last refresh failed (the state it shows stays); when the
    server stops too, then the page says its connection to the server is lost."""
    from aksnap.exporter.client import RetryPolicy, connection_of
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario("htcmock", seed=6, tasks=100)
    cp = SimulatedControlPlane(sc, at=0.5 * sc.cluster.end_time)
    try:
        src = LiveSource(connection_of(cp.start(), None), sc.truth["session"], None,
                         interval=0.5, retry=RetryPolicy(attempts=1, budget_s=0.5, deadline_s=2))
        src.resolve()
        s = serve(src, port=0, background=True)
        p = Page(browser, s.url, ready="body[data-reconciles]:not([data-reconciles='0'])")
        try:
            assert "the cluster answers" in p.page.inner_text("#live-health")
            counts = _page_counts(p.page)
            cp.stop()
            _until(lambda: "last refresh failed" in p.page.inner_text("#live-health"), 30,
                   "the page says the cluster does not answer")
            assert _page_counts(p.page) == counts
            s.stop()
            _until(lambda: "connection to aksnap serve lost" in p.page.inner_text("#live-health"),
                   15, "the page says the server is gone")
            assert p.errors == [] and p.dialogs == [] and p.off_server(s.url) == []
        finally:
            p.page.close()
            s.stop()
    finally:
        cp.stop()


def test_live_hostile_messages_are_text(browser):
    """Given the hostile scenario live (its failure's message holds <img onerror>, NUL, a
    bidi override), when the page shows the root causes pushed by the server, then the
    markup is text and nothing ran."""
    from aksnap.exporter.client import connection_of
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario("hostile", seed=1)
    with SimulatedControlPlane(sc, at=sc.snapshot_at) as cp:
        src = LiveSource(connection_of(cp.start(), None), sc.truth["session"], None, interval=0.5)
        src.resolve()
        s = serve(src, port=0, background=True)
        p = Page(browser, s.url, ready="body[data-ended]")
        try:
            text = p.page.inner_text("#live")
            assert "<img src=x onerror=alert(1)>" in text
            assert p.page.evaluate("() => document.querySelectorAll('img, b, [onerror]').length") == 0
            assert p.dialogs == [] and p.errors == [] and p.off_server(s.url) == []
        finally:
            p.page.close()
            s.stop()


# -- the server, attacked --------------------------------------------------------------------------

def test_only_get_is_answered(demo_served):
    """Given the server, when POST, PUT, DELETE, PATCH or OPTIONS is sent to the page or an
    API route, then each is 405 with a sentence, and GET still answers."""
    s, bundle, truth = demo_served
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for path in ("", "api/lineage?id=x", "api/nothing"):
            status, body = _get(s.url + path, method)
            assert status == 405, (method, path)
            assert "read-only" in json.loads(body)["error"]
    assert _get(s.url)[0] == 200


def test_a_foreign_host_header_is_refused_on_loopback(demo_served):
    """Given the server on 127.0.0.1, when a request names another host (a page of another
    site reaching it by DNS rebinding), then it is 403; 127.0.0.1 and localhost answer."""
    s, _, _ = demo_served
    port = s.url.split(":")[2].rstrip("/")
    assert _get(s.url, headers={"Host": f"evil.example:{port}"})[0] == 403
    assert _get(s.url + "api/search?q=a", headers={"Host": "evil.example"})[0] == 403
    assert _get(s.url, headers={"Host": f"localhost:{port}"})[0] == 200


def test_bad_drill_down_inputs_are_a_sentence(demo_served):
    """Given the server, when a drill-down has no id, an id too long, or an unknown one, then
    each is a JSON sentence (400, 400, 404), never a traceback."""
    s, _, _ = demo_served
    for path, code in (("api/lineage", 400), ("api/task?id=" + "a" * 600, 400),
                       ("api/lineage?id=nope", 404), ("api/search?q=", 400)):
        status, body = _get(s.url + path)
        assert status == code, path
        assert "Traceback" not in body.decode() and json.loads(body)["error"]


def test_a_non_loopback_host_needs_the_token(demo_bundle):
    """Given the server on 0.0.0.0 (any interface), then a token is made; a request without
    it, or with a wrong one, is 401; with it (header or ?token=) the page and the API
    answer."""
    bundle, truth = demo_bundle
    s = serve(BundleSource(bundle), host="0.0.0.0", port=0, background=True)
    try:
        assert s.token and f"?token={s.token}" in s.url
        port = s.url.split(":")[2].split("/")[0]
        base = f"http://127.0.0.1:{port}/"
        assert _get(base)[0] == 401
        assert _get(base + "api/search?q=a")[0] == 401
        assert _get(base + "api/search?q=a&token=wrong")[0] == 401
        assert _get(base + "api/search?q=a", headers={"X-Aksnap-Token": s.token[:-1]})[0] == 401
        assert _get(base + f"?token={s.token}")[0] == 200
        assert _get(base + "api/search?q=a", headers={"X-Aksnap-Token": s.token})[0] == 200
    finally:
        s.stop()


def test_bad_command_lines_are_one_sentence_exit_2(tmp_path, demo_bundle):
    """Given bad inputs (a missing bundle, a port out of range, a port in use, a bundle and
    --endpoint both, nothing to serve), then each is one sentence on stderr, exit 2."""
    bundle, _ = demo_bundle
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        cases = [
            (["serve", str(tmp_path / "nope")], "no bundle at"),
            (["serve", str(bundle), "--port", "70000"], "'--port'"),
            (["serve", str(bundle), "--port", "http"], "'--port'"),
            (["serve", str(bundle), "--port", str(busy.getsockname()[1])], "cannot listen"),
            (["serve", str(bundle), "--endpoint", "127.0.0.1:1", "--session", "x"], "not both"),
            (["serve"], "give a BUNDLE"),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("AK_ENDPOINT", "AKCONFIG")}
        for args, words in cases:
            r = subprocess.run([sys.executable, "-m", "aksnap", *args], capture_output=True,
                               text=True, timeout=60, env=env)
            assert r.returncode == 2, (args, r.stderr)
            assert r.stderr.startswith("aksnap: error: ") and words in r.stderr, (args, r.stderr)
            assert "Traceback" not in r.stderr
    finally:
        busy.close()


def test_bad_live_command_lines_are_one_sentence_exit_2():
    """Given a simulated control plane, when `aksnap serve --endpoint` names an unknown
    session, no session nor result, or a zero interval, then each is one sentence, exit 2,
    before anything is served."""
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario("htcmock", seed=6, tasks=40)
    with SimulatedControlPlane(sc) as cp:
        ep = cp.start()
        for extra, words in ((["--session", "no-such-session"], "unknown session id"),
                             ([], "--session ID or --result ID"),
                             (["--session", sc.truth["session"], "--interval", "0"], "--interval")):
            r = subprocess.run([sys.executable, "-m", "aksnap", "serve", "--endpoint", ep,
                                "--port", "0", *extra], capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 2, (extra, r.stderr)
            assert r.stderr.startswith("aksnap: error: ") and words in r.stderr, r.stderr
            assert "serving" not in r.stderr


def test_sigterm_stops_the_command_cleanly_and_the_token_is_printed_once(demo_bundle):
    """Given `aksnap serve BUNDLE --host 0.0.0.0 --port 0` running, then stderr names the
    address with the token once and the page answers with it only; on SIGTERM the command
    ends, exit 0, saying it stopped."""
    bundle, _ = demo_bundle
    proc = subprocess.Popen([sys.executable, "-m", "aksnap", "serve", str(bundle), "--host",
                             "0.0.0.0", "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        m = re.search(r"at (http://0\.0\.0\.0:(\d+)/\?token=(\S+)) ", line)
        assert m, line
        port, token = m.group(2), m.group(3)
        assert _get(f"http://127.0.0.1:{port}/")[0] == 401
        assert _get(f"http://127.0.0.1:{port}/?token={token}")[0] == 200
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=20) == 0
        assert "serve stopped" in rest and token not in rest and "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_served_page_loads_nothing_and_its_script_writes_no_markup(demo_served, demo_page_text):
    """Given the page served and the same bundle's offline report, then the served page's
    policy (meta and header, one nonce, fresh per response) adds only `connect-src 'self'`
    (and, as a header, frame-ancestors) to the report's, the offline file's policy is
    unchanged (no connect-src), both scripts run by the nonce, and serve.js holds no sink
    that turns a string into markup or code."""
    from aksnap.cli.serve import _asset  # noqa: PLC2701 - the test reads the asset it checks

    s, _, _ = demo_served
    req = urllib.request.Request(s.url)
    with urllib.request.urlopen(req, timeout=10) as r:
        text, header = r.read().decode(), r.headers["content-security-policy"]
    meta = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text).group(1)
    meta = meta.replace("&#x27;", "'")
    nonce = re.search(r"nonce-([A-Za-z0-9_-]+)", meta).group(1)
    assert meta == (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'")
    assert header == meta.replace("form-action 'none'", "form-action 'none'; frame-ancestors 'none'")
    assert text.count("<script") == 3 and text.count(f'<script nonce="{nonce}">') == 2
    again = urllib.request.urlopen(s.url, timeout=10).read().decode()
    assert f"nonce-{nonce}" not in again  # a nonce per response
    offline = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', demo_page_text).group(1)
    assert "connect-src" not in offline and demo_page_text.count("<script") == 2
    code = "\n".join(line for line in _asset("serve.js").splitlines()
                     if not line.lstrip().startswith("//"))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute(\"on", "setAttribute(\"style", "http:", "https:"):
        assert sink not in code, sink


@pytest.fixture(scope="module")
def demo_page_text(demo_bundle, tmp_path_factory):
    bundle, _ = demo_bundle
    out = tmp_path_factory.mktemp("offline") / "demo.html"
    r = runner.invoke(app, ["report", str(bundle), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out.read_text()


class _Still:
    """A live source that never moves: a broadcaster and nothing behind it."""

    mode = "endpoint"
    drill = None

    def __init__(self):
        from aksnap.cli.serve_app import Broadcaster

        self.broadcaster = Broadcaster()

    def page(self, nonce):
        return "<!DOCTYPE html><title>still</title>"

    def start(self):
        self.broadcaster.publish('{"reconciles": 1}')

    def stop(self):
        pass


def test_streams_are_bounded_and_a_gone_client_costs_nothing():
    """Given a live server, when 16 pages follow it, then a 17th stream is refused (503) and
    a thousand states published meanwhile leave one text in memory, whatever the clients
    read; when the clients go away (connections closed mid-stream), the count falls back
    to 0 and a new page is served."""
    import http.client

    src = _Still()
    s = serve(src, port=0, background=True)
    port = int(s.url.split(":")[2].rstrip("/"))
    conns = []
    try:
        for _ in range(16):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/api/events")
            r = c.getresponse()
            assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
            conns.append((c, r))
        _until(lambda: src.broadcaster.clients == 16, 10, "16 streams counted")
        assert _get(s.url + "api/events")[0] == 503
        for k in range(1000):
            src.broadcaster.publish(json.dumps({"reconciles": k, "pad": "x" * 1000}))
        _until(lambda: json.loads(src.broadcaster.text)["reconciles"] == 999, 10, "the last state")
        got = []  # what the first client reads: the newest state, not a backlog of each
        while not got or got[-1] != 999:
            line = conns[0][1].fp.readline()
            if line.startswith(b"data:"):
                got.append(json.loads(line[5:])["reconciles"])
        assert len(got) < 1000 and got[-1] == 999  # 11 of 1001 states, the newest last
        for c, _ in conns:
            c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
        conns.clear()
        _until(lambda: src.broadcaster.clients == 0, 30, "the gone clients dropped")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/api/events")
        assert c.getresponse().status == 200
        c.close()
    finally:
        for c, _ in conns:
            c.close()
        s.stop()
