"""`aksnap graph`: the task/data graph as DOT, GraphML or JSON, read back by tools no one here
wrote (Graphviz, networkx), with hostile strings kept as text and a cut said on stderr."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.dom.minidom

import networkx as nx
import pytest
from typer.testing import CliRunner

from aksnap.analyzer import api, graphfile
from aksnap.analyzer.snapshot import Snapshot
from aksnap.cli import app

runner = CliRunner()
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# skipped on a machine without Graphviz; under .ci/run (AKSNAP_REQUIRE_TOOLS) a failure instead
needs_dot = pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("AKSNAP_REQUIRE_TOOLS"),
                               reason="Graphviz is not installed (.ci/run installs it)")


def _graph(args, tmp_path, name):
    out = tmp_path / name
    r = runner.invoke(app, ["graph", *map(str, args), "--out", str(out), "-o", "json"])
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout), r.stderr


@needs_dot
def test_graphviz_lays_out_the_blocked_results_upstream(demo_bundle, tmp_path):
    """Given the demo bundle, when `aksnap graph --result BLOCKED --out b.dot` runs (the format
    taken from the suffix), then Graphviz parses the file, finds every node and edge written,
    the SVG is well-formed XML."""
    bundle, truth = demo_bundle
    out, info, _ = _graph([bundle, "--result", truth["blocked_result"][:8]], tmp_path, "b.dot")
    r = subprocess.run(["dot", "-Tjson"], input=out.read_text(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    g = json.loads(r.stdout)
    assert len(g["objects"]) == info["nodes"] and len(g["edges"]) == info["edges"] > 0
    svg = subprocess.run(["dot", "-Tsvg", str(out)], capture_output=True, text=True, timeout=60)
    assert svg.returncode == 0, svg.stderr
    xml.dom.minidom.parseString(svg.stdout)


def test_graphml_of_a_session_reads_in_networkx_with_its_edge_kinds(demo_bundle, tmp_path):
    """Given the demo bundle, when written as GraphML for its session, then networkx reads a
    directed graph with every node and edge of the session, the bundle ids as the `id` field
    and the five edge kinds among data, payload, produces, spawn, retry."""
    bundle, truth = demo_bundle
    out, info, err = _graph([bundle, "--session", truth["session"], "--format", "graphml",
                             "--max-nodes", "0"], tmp_path, "s.graphml")
    g = nx.read_graphml(out)
    snap = Snapshot.open(bundle)
    assert g.is_directed() and err == ""
    assert g.number_of_nodes() == info["nodes"] == snap.graph.n
    assert g.number_of_edges() == info["edges"]
    kinds = {d["kind"] for _, _, d in g.edges(data=True)}
    assert {"data", "payload", "produces", "spawn", "retry"} == kinds
    ids = {d["id"] for _, d in g.nodes(data=True)}
    assert truth["blocked_result"] in ids and truth["failed_task"] in ids


def test_json_upstream_is_exactly_the_lineage_and_round_trips_in_networkx(demo_bundle, tmp_path):
    """Given the failed root result, when written as JSON with --result, then its nodes are the
    result and its ancestors (what `lineage` counts) and networkx builds the graph from it."""
    bundle, truth = demo_bundle
    out, info, _ = _graph([bundle, "-r", truth["failed_root_result"], "--format", "json"], tmp_path,
                          "f.json")
    doc = json.loads(out.read_text())
    lin = api.lineage(Snapshot.open(bundle), truth["failed_root_result"])
    assert len(doc["nodes"]) == lin["upstream"]["tasks"] + lin["upstream"]["results"] + 1
    assert doc["graph"]["truncated"] is False
    g = nx.node_link_graph({"directed": True, "multigraph": True, "graph": doc["graph"],
                            "nodes": doc["nodes"], "edges": doc["edges"]}, edges="edges")
    assert g.number_of_edges() == info["edges"]
    assert truth["failed_task"] in g and nx.has_path(g, truth["failed_task"],
                                                     truth["failed_root_result"])


def test_a_cut_graph_says_so_on_stderr_and_in_the_file(demo_bundle, tmp_path):
    """Given a 50-node cap on a bigger bundle, when written, then stderr has one sentence naming
    the totals and how to get everything, and the file records the cut."""
    bundle, _ = demo_bundle
    out, info, err = _graph([bundle, "--format", "json", "--max-nodes", "50"], tmp_path, "cut.json")
    assert info["truncated"] and info["nodes"] <= 50 < info["nodes_total"]
    assert err.startswith("aksnap: the graph of the bundle has ") and "--max-nodes 0" in err
    assert len(err.strip().splitlines()) == 1
    doc = json.loads(out.read_text())
    assert doc["graph"]["truncated"] and doc["graph"]["nodes_total"] == info["nodes_total"]


def test_lineage_dot_goes_through_the_graph_writer_and_says_when_cut(demo_bundle, tmp_path):
    """Given `lineage --dot`, then its file is what graphfile writes for the result with data
    edges only; over the cap, stderr says so."""
    bundle, truth = demo_bundle
    snap = Snapshot.open(bundle)
    dot = tmp_path / "l.dot"
    r = runner.invoke(app, ["lineage", str(bundle), truth["blocked_result"], "--dot", str(dot)])
    assert r.exit_code == 0 and r.stderr == ""
    sel = graphfile.select(snap, result_id=truth["blocked_result"], extra_edges=False)
    assert dot.read_text() == graphfile.to_dot(snap, sel, title=f"lineage of {truth['blocked_result']}")
    sel = graphfile.select(snap, result_id=truth["blocked_result"], max_nodes=10)
    assert sel.truncated and "nearest the result" in sel.cut_sentence()


@pytest.mark.parametrize("fmt", graphfile.FORMATS)
def test_hostile_strings_survive_every_format(hostile_bundle, tmp_path, fmt):
    """Given the hostile scenario (markup, NUL, bidi overrides in messages and result names),
    when written in each format, then the file holds no raw control character and parses
    (Graphviz, an XML parser, JSON); JSON keeps the exact strings, GraphML shows the markup
    as text."""
    bundle, truth = hostile_bundle
    out, info, _ = _graph([bundle, "--format", fmt, "--max-nodes", "0"], tmp_path, f"h.{fmt}")
    text = out.read_text()
    assert RAW.findall(text.replace("\n", "")) == []
    if fmt == "json":
        names = {n["name"] for n in json.loads(text)["nodes"] if n["name"]}
        assert any("<b>" in n and "\x00" in n for n in names)
    elif fmt == "graphml":
        doc = xml.dom.minidom.parseString(text.encode())
        assert not doc.getElementsByTagName("b") and not doc.getElementsByTagName("img")
        g = nx.read_graphml(out)
        assert any("<img src=x" in (d.get("message") or "") for _, d in g.nodes(data=True))
        assert any(d.get("name", "").startswith("<b>") for _, d in g.nodes(data=True))
    elif shutil.which("dot"):
        r = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        xml.dom.minidom.parseString(r.stdout)


def test_bad_input_is_one_sentence_and_leaves_no_file(demo_bundle, tmp_path):
    """Given an unknown format, an unknown result, a missing directory: exit 2, one sentence,
    and nothing is written (an existing file stays as it was)."""
    bundle, _ = demo_bundle
    keep = tmp_path / "keep.dot"
    keep.write_text("mine")
    for args in (["--format", "svg"], ["-r", "nope"], ["--max-nodes", "-5"]):
        r = runner.invoke(app, ["graph", str(bundle), "--out", str(keep), *args])
        assert r.exit_code == 2 and r.stderr.startswith("aksnap: error: "), r.output
        assert keep.read_text() == "mine"
    r = runner.invoke(app, ["graph", str(bundle), "--out", str(tmp_path / "no" / "g.dot")])
    assert r.exit_code == 2 and "cannot write" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.dot"]
