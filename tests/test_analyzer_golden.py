"""Golden outputs of the analyzer's commands on the hand-drawn bundles.

A change in what a command prints shows up here as a diff. When the change is intended,
regenerate every golden file with ONE command, then review the diff in git:

    AKSNAP_REGEN_GOLDEN=1 python -m pytest tests/test_analyzer_golden.py

The bundle path is replaced by ``<BUNDLE>`` so the files do not depend on where tests run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aksnap.analyzer.testing import anomaly_bundle, failure_bundle
from aksnap.cli import app

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("AKSNAP_REGEN_GOLDEN") == "1"

CASES = {
    "analyze": (["analyze", "{fb}"], 0),
    "analyze_json": (["analyze", "{fb}", "-o", "json"], 0),
    "lineage_failed_r6": (["lineage", "{fb}", "r6"], 0),
    "lineage_blocked_r7": (["lineage", "{fb}", "r7"], 0),
    "lineage_owner_r8": (["lineage", "{fb}", "r8", "-o", "json"], 0),
    "blockers": (["blockers", "{fb}"], 0),
    "critical_path": (["critical-path", "{fb}"], 0),
    "task_retry": (["task", "{fb}", "t2###1"], 0),
    "task_propagated": (["task", "{fb}", "t4", "-o", "csv"], 0),
    "check_clean": (["check", "{fb}"], 0),
    "check_anomalies": (["check", "{ab}"], 1),
    "query_phase_percentiles": (["query", "{fb}", "phase_percentiles", "-o", "csv"], 0),
    "query_stragglers": (["query", "{fb}", "stragglers"], 0),
    "queries": (["queries", "-o", "csv"], 0),
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("golden")
    return {"fb": failure_bundle(d / "failure.aksnap"), "ab": anomaly_bundle(d / "anomaly.aksnap")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_command_output_matches_golden(bundles, name):
    argv, code = CASES[name]
    r = CliRunner().invoke(app, [a.format(**{k: str(v) for k, v in bundles.items()}) for a in argv])
    assert r.exit_code == code, r.output
    out = r.stdout
    for v in bundles.values():
        out = out.replace(str(v), "<BUNDLE>")
    path = GOLDEN / f"{name}.txt"
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(out)
    assert path.exists(), f"no golden file {path.name}: run AKSNAP_REGEN_GOLDEN=1 python -m pytest {Path(__file__).name}"
    assert out == path.read_text(), (f"{name} changed; if intended, regenerate with "
                                     "AKSNAP_REGEN_GOLDEN=1 python -m pytest tests/test_analyzer_golden.py")
