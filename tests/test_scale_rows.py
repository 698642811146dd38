"""No row too big: an aggregation reading 199,999 results (about 8 MB as one TaskDetailed row,
twice the armonik client's default 4 MiB receive limit, about the 8 MiB byte target of the
exporter's pages: a page of it holds that row alone) exports through the CLI, and the bundle
equals the server's truth, the fan-in row's inputs included. A row over the receive limit
itself (raised for that row) is tested through the CLI by tests/test_export_limits.py."""

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap.cli import app
from aksnap.fixtures.scenarios import build_scenario
from aksnap.fixtures.server import SimulatedControlPlane


@pytest.mark.slow
def test_a_200k_input_fan_in_exports_through_the_cli(tmp_path):
    """Given `fanout --tasks 200000` served over gRPC, when `aksnap export --all` runs with the
    default limits, then it exits 0, and every table equals the server's view; the reduce task's
    row holds its 199,999 data dependencies, in order."""
    sc = build_scenario("fanout", seed=1, tasks=200_000)
    with SimulatedControlPlane(sc) as cp:
        ep = cp.start()
        r = CliRunner().invoke(app, ["export", "--endpoint", ep, "--all", "--out",
                                     str(tmp_path / "b"), "--quiet"])
        assert r.exit_code == 0, r.output
        view = cp.view()
    tasks = pq.read_table(tmp_path / "b" / "tasks.parquet")
    reduce_row = tasks.filter(pc.equal(tasks["task_id"], sc.truth["reduce_task"]))
    deps = reduce_row["data_dependencies"][0].as_py()
    assert len(deps) == 199_999
    expected_deps = view.tasks.filter(pc.equal(view.tasks["id"], sc.truth["reduce_task"]))
    assert deps == expected_deps["data_dependencies"][0].as_py()
    # every id once, the same ids as the server (row-by-row equality of whole tables is proven
    # on smaller scenarios by tests/test_export_roundtrip.py)
    for name, key, wire_key in (("tasks", "task_id", "id"), ("results", "result_id", "result_id")):
        got = pq.read_table(tmp_path / "b" / f"{name}.parquet", columns=[key])[key]
        want = getattr(view, name)[wire_key]
        assert len(got) == len(want) == pc.count_distinct(got).as_py(), name
        assert sorted(got.to_pylist()) == sorted(want.to_pylist()), name
