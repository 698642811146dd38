"""`aksnap demo`: no cluster, no argument, a few seconds, a real bundle."""

import json
import time

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


def test_demo_keep_refuses_an_existing_bundle_unless_overwrite(tmp_path):
    """Given a bundle at DIR from an earlier demo, when `aksnap demo --keep DIR` runs again,
    then it is refused as `export` refuses (exit 2, one sentence, the bundle untouched); with
    --overwrite, then it is replaced."""
    mine = tmp_path / "mine"
    assert runner.invoke(app, ["demo", "--keep", str(mine)]).exit_code == 0
    first = read_manifest(mine).exported_at
    r = runner.invoke(app, ["demo", "--keep", str(mine)])
    assert r.exit_code == 2 and "already exists; pass --overwrite" in r.stderr
    assert r.stderr.count("\n") == 1 and r.stdout == ""
    assert read_manifest(mine).exported_at == first
    r = runner.invoke(app, ["demo", "--keep", str(mine), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert read_manifest(mine).exported_at != first


def test_demo_never_replaces_a_folder_that_is_not_a_bundle(tmp_path):
    """Given a folder of the user's at DIR, when `aksnap demo --keep DIR [--overwrite]`, then
    exit 2 and the folder is untouched (--overwrite replaces only a bundle)."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    r = runner.invoke(app, ["demo", "--keep", str(precious)])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(app, ["demo", "--keep", str(precious), "--overwrite"])
    assert r.exit_code == 2 and "is not an aksnap bundle" in r.output
    assert "--keep DIR" in r.output
    assert (precious / "notes.txt").read_text() == "mine"


def test_the_default_folder_is_replaced_only_if_it_is_a_bundle(tmp_path, monkeypatch):
    """Given ./aksnap-demo/bundle holding a file of the user's, when `aksnap demo` runs with no
    argument, then exit 2 and the file is kept."""
    monkeypatch.chdir(tmp_path)
    default = tmp_path / "aksnap-demo" / "bundle"
    default.mkdir(parents=True)
    (default / "notes.txt").write_text("mine")
    r = runner.invoke(app, ["demo"])
    assert r.exit_code == 2 and "is not an aksnap bundle" in r.output
    assert (default / "notes.txt").read_text() == "mine"


def test_demo_output_json_is_one_document(tmp_path, monkeypatch):
    """Given `aksnap demo -o JSON` (any case), then stdout is one JSON document: the export's
    summary, the overview and the lineage of the blocked and of the failed result."""
    monkeypatch.delenv("AK_OUTPUT", raising=False)
    r = runner.invoke(app, ["demo", "--keep", str(tmp_path / "b"), "-o", "JSON"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["export"]["rows"]["tasks"] > 0 and doc["export"]["path"] == str(tmp_path / "b")
    assert set(doc["analysis"]) >= {"overview", "blocked_result", "failed_result"}
    assert doc["analysis"]["blocked_result"]["result_id"]


def test_demo_bad_output_format_is_refused_before_any_work(tmp_path):
    r = runner.invoke(app, ["demo", "--keep", str(tmp_path / "b"), "-o", "xml"])
    assert r.exit_code == 2 and "unknown output format 'xml'" in r.stderr
    assert not (tmp_path / "b").exists()
