"""`aksnap demo`: no cluster, no argument, a few seconds, a real bundle."""

import sys
import time
import types

from typer.testing import CliRunner

from aksnap.bundle import read_manifest, verify_bundle
from aksnap.cli import app

runner = CliRunner()


def test_demo_with_no_argument_writes_the_default_bundle(tmp_path, monkeypatch):
    """Given an empty working directory, when `aksnap demo` runs (twice), then it exports the
    demo scenario to ./aksnap-demo/bundle, replaces it the second time, and finishes fast."""
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    r = runner.invoke(app, ["demo"])
    assert r.exit_code == 0, r.output
    assert time.monotonic() - t0 < 15
    out = tmp_path / "aksnap-demo" / "bundle"
    m = read_manifest(out)
    assert verify_bundle(out) == [] and m.tables["tasks"].rows > 0
    assert "simulated control plane on 127.0.0.1:" in r.output
    assert "ERROR" in r.output  # the failure chain shows up
    first = m.exported_at
    r = runner.invoke(app, ["demo"])
    assert r.exit_code == 0, r.output
    assert read_manifest(out).exported_at != first
    assert [p.name for p in (tmp_path / "aksnap-demo").iterdir()] == ["bundle"]


def test_demo_keep_dir(tmp_path):
    r = runner.invoke(app, ["demo", "--keep", str(tmp_path / "mine")])
    assert r.exit_code == 0, r.output
    assert read_manifest(tmp_path / "mine").snapshot in ("final", "live")


def test_demo_never_replaces_a_folder_that_is_not_a_bundle(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    r = runner.invoke(app, ["demo", "--keep", str(precious)])
    assert r.exit_code == 2 and "is not an aksnap bundle" in r.output
    assert (precious / "notes.txt").read_text() == "mine"


def test_demo_uses_the_analyzer_api_when_present(tmp_path, monkeypatch):
    """When aksnap.analyzer.api offers overview and lineage, the demo prints their answers."""
    calls = []
    fake = types.ModuleType("aksnap.analyzer.api")
    fake.overview = lambda path: calls.append(("overview", path)) or "OVERVIEW-TEXT"
    fake.lineage = lambda path, rid: calls.append(("lineage", rid)) or f"LINEAGE {rid}"
    monkeypatch.setitem(sys.modules, "aksnap.analyzer.api", fake)
    import aksnap.analyzer as analyzer

    monkeypatch.setattr(analyzer, "api", fake, raising=False)
    r = runner.invoke(app, ["demo", "--keep", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert "OVERVIEW-TEXT" in r.output and "LINEAGE" in r.output
    assert [c[0] for c in calls] == ["overview", "lineage", "lineage"]
