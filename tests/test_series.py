"""``aksnap analyze DIR`` of a recorded series: tasks by status over time.

Given a directory of bundles as ``aksnap watch --record`` writes them (an export, then the
incremental update of the previous bundle at later instants of a frozen htcmock run), the
analysis has one row per bundle, in order, whose counts are the bundle's own, complete grows,
and each row says what it cost the cluster.
"""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap.analyzer import series
from aksnap.cli import app
from aksnap.exporter import export, update
from aksnap.fixtures.scenarios import build_scenario
from aksnap.fixtures.server import SimulatedControlPlane

runner = CliRunner()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    d = tmp_path_factory.mktemp("series") / "run"
    d.mkdir()
    sc = build_scenario("htcmock", seed=8, tasks=300)
    end = sc.cluster.end_time
    with SimulatedControlPlane(sc, at=0.2 * end) as cp:
        ep = cp.start()
        prev = export(ep, d / "00000-a", sessions=[sc.truth["session"]]).path
        for k, frac in enumerate((0.5, 0.8, 1.0), 1):
            cp.at = frac * end
            prev = update(prev, d / f"{k:05d}-b").path
    (d / ".00004-c.partial-abc123-1-xyz").mkdir()  # an unfinished export's working directory
    return d, sc.truth["session"]


def counts(bundle):
    t = pq.read_table(bundle / "tasks.parquet", columns=["status"])
    vc = pc.value_counts(t.column("status").combine_chunks())
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))


def test_series_has_one_row_per_bundle_with_its_own_counts(recorded):
    d, session = recorded
    data = series.build(d)
    assert [s["bundle"] for s in data["states"]] == ["00000-a", "00001-b", "00002-b", "00003-b"]
    for s in data["states"]:
        assert s["tasks_by_status"] == counts(d / s["bundle"])
    pct = [s["percent_complete"] for s in data["states"]]
    assert pct == sorted(pct) and pct[-1] == 100.0 and pct[0] < 50
    elapsed = [s["elapsed_s"] for s in data["states"]]
    assert elapsed[0] == 0 and elapsed == sorted(elapsed) and elapsed[-1] > 0
    # the first state cost a full export, the next ones only what changed
    first, *rest = [s["rows_fetched"] for s in data["states"]]
    assert all(r < first + 1000 for r in rest) and first >= data["states"][0]["tasks"]
    assert series.build(d, session_id="another")["states"][0]["tasks"] == 0


def test_cli_analyze_of_a_series_in_every_format(recorded):
    d, _ = recorded
    r = runner.invoke(app, ["analyze", str(d)])
    assert r.exit_code == 0, r.output
    assert "4 recorded states" in r.stdout and "COMPLETED" in r.stdout
    r = runner.invoke(app, ["analyze", str(d), "-o", "json"])
    assert json.loads(r.stdout)["bundles"] == 4
    r = runner.invoke(app, ["analyze", str(d), "-o", "csv"])
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("bundle,at,elapsed_s,tasks")


def test_a_directory_that_is_no_series_is_still_a_bundle_error(tmp_path):
    (tmp_path / "empty").mkdir()
    assert series.series_members(tmp_path / "empty") is None
    r = runner.invoke(app, ["analyze", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "manifest.json" in r.output


@pytest.fixture()
def pruned(recorded, tmp_path):
    """The recorded series with a states.jsonl line per bundle (as the watch appends them),
    then its two oldest bundles removed (as --keep 2 prunes them)."""
    import shutil

    d, session = recorded
    copy = tmp_path / "run"
    shutil.copytree(d, copy)
    for p in series.series_members(copy):
        series.append_state(copy, p)
    full = series.build(copy)
    for p in series.series_members(copy)[:2]:
        shutil.rmtree(p)
    return copy, full


def test_pruned_bundles_keep_their_rows_from_states_jsonl(pruned):
    """Given a series whose two oldest bundles were pruned, then `analyze DIR` has the same
    rows as before pruning (counts, instants, elapsed, cost), saying which bundles are
    kept; the table says how many states came from states.jsonl."""
    d, full = pruned
    data = series.build(d)
    strip = [{k: v for k, v in s.items() if k != "kept"} for s in data["states"]]
    assert strip == [{k: v for k, v in s.items() if k != "kept"} for s in full["states"]]
    assert [s["kept"] for s in data["states"]] == [False, False, True, True]
    assert data["bundles"] == 4 and data["kept"] == 2
    r = runner.invoke(app, ["analyze", str(d)])
    assert r.exit_code == 0 and "2 of them pruned by --keep" in r.stdout
    r = runner.invoke(app, ["analyze", str(d), "-o", "csv"])
    assert r.stdout.splitlines()[0].endswith(",rows_fetched,kept")


def test_a_torn_last_line_is_skipped_and_a_forged_line_is_a_sentence(pruned):
    """Given a crash while a line was appended (a torn last line), then the series reads as
    before (that state's bundle is still there); given a line that is no recorded state (a
    status aksnap does not know, a negative count, a path for a name), then one sentence
    naming the file and the line, exit 2."""
    d, full = pruned
    f = d / series.STATES_FILE
    good = f.read_text()
    f.write_text(good + '{"bundle": "00004-x", "at": nu')
    assert len(series.build(d)["states"]) == 4
    for bad in ('{"bundle": "00009-x", "at": null, "rows_fetched": 1, '
                '"tasks_by_session": {"s": {"HACKED": 1}}}',
                '{"bundle": "00009-x", "at": null, "rows_fetched": 1, '
                '"tasks_by_session": {"s": {"COMPLETED": -5}}}',
                '{"bundle": "../../etc", "at": null, "rows_fetched": 1, "tasks_by_session": {}}',
                'not json'):
        f.write_text(good + bad + "\n" + good.splitlines()[-1] + "\n")
        r = runner.invoke(app, ["analyze", str(d)])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert f"{f} line 5 is not a recorded state" in r.stderr


def test_members_sort_by_their_number_past_99999(tmp_path, recorded):
    """Given bundles 99999-... and 100000-... (a week of 5 s reconciles), then 100000 comes
    last."""
    import shutil

    d, _ = recorded
    src = series.series_members(d)[0]
    for name in ("99999-a", "100000-b"):
        shutil.copytree(src, tmp_path / name)
    assert [p.name for p in series.series_members(tmp_path)] == ["99999-a", "100000-b"]
