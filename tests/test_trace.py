"""`aksnap trace`: the run as a Chrome/Perfetto JSON trace, checked against the trace event
format (the required fields of each phase type, slices nesting per track, every flow bound to
a slice at both ends), with data dependencies and retries as flows, limits said, hostile
strings kept as text.

Perfetto's Python trace processor would be the independent parser, but it downloads its
binary (trace_processor_shell) on first use, which this machine cannot: the check below is
written from the format's specification instead (Trace Event Format, Google, 2016: "JSON
Object Format", "Complete Events", "Instant Events", "Counter Events", "Flow Events",
"Metadata Events").
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
from typer.testing import CliRunner

from aksnap.analyzer import api, trace
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import make_bundle, task, result
from aksnap.cli import app

runner = CliRunner()

NUMBER = (int, float)
METADATA_NAMES = {"process_name", "process_labels", "process_sort_index", "thread_name",
                  "thread_sort_index"}


def check_trace_event_format(doc: dict) -> dict:
    """Raise AssertionError where ``doc`` breaks the trace event format; return the events by
    kind. Per the specification: every event has ``ph``; all but metadata have ``name``,
    ``ts``, ``pid``, ``tid`` (counters: ``pid``); X has a non-negative ``dur``; i has scope
    g/p/t; C has numeric args; s/t/f have an ``id`` and a ``cat`` (the pair names the flow) and
    f a binding point "e" or none; M names one of the metadata kinds with its argument.
    Then what a viewer needs: complete slices on one track nest (never overlap partially),
    each flow starts inside a slice of its track and ends at the start of one."""
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list)
    assert doc.get("displayTimeUnit", "ms") in ("ms", "ns")
    by = defaultdict(list)
    for e in doc["traceEvents"]:
        ph = e["ph"]
        by[ph].append(e)
        if ph == "M":
            assert e["name"] in METADATA_NAMES and isinstance(e["pid"], int), e
            key = "name" if e["name"].endswith("name") else "sort_index"
            assert key in e["args"] or e["name"] == "process_labels", e
            continue
        assert isinstance(e["name"], str) and isinstance(e["ts"], NUMBER), e
        assert isinstance(e["pid"], int), e
        if ph != "C":
            assert isinstance(e["tid"], int), e
        if ph == "X":
            assert isinstance(e["dur"], NUMBER) and e["dur"] >= 0, e
        elif ph in ("i", "I"):
            assert e.get("s", "t") in ("g", "p", "t"), e
        elif ph == "C":
            assert e["args"] and all(isinstance(v, NUMBER) for v in e["args"].values()), e
        elif ph in ("s", "t", "f"):
            assert isinstance(e["id"], (int, str)) and isinstance(e["cat"], str), e
            assert e.get("bp", "e") == "e", e
        else:
            raise AssertionError(f"unexpected phase {ph!r}: {e}")
    # slices nest per track
    tracks = defaultdict(list)
    for e in by["X"]:
        tracks[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for key, spans in tracks.items():
        stack: list[float] = []
        for s, t in sorted(spans, key=lambda x: (x[0], -x[1])):
            while stack and stack[-1] <= s:
                stack.pop()
            assert not stack or t <= stack[-1], f"slices overlap partially on track {key}"
            stack.append(t)
    # flows: one start and one end per (cat, id), bound to slices
    flows = defaultdict(dict)
    for e in by["s"] + by["f"]:
        assert e["ph"] not in flows[(e["cat"], e["id"])], e
        flows[(e["cat"], e["id"])][e["ph"]] = e
    for key, pair in flows.items():
        assert set(pair) == {"s", "f"}, key
        s, f = pair["s"], pair["f"]
        assert any(a <= s["ts"] <= b for a, b in tracks[(s["pid"], s["tid"])]), s
        assert any(a == f["ts"] for a, _ in tracks[(f["pid"], f["tid"])]), f
    named = {(e["pid"], e["tid"]) for e in by["M"] if e["name"] == "thread_name"}
    assert set(tracks) <= named, "a track without a name"
    return by


def _trace(args, tmp_path, name="t.json"):
    out = tmp_path / name
    r = runner.invoke(app, ["trace", *map(str, args), "--out", str(out), "-o", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text()), json.loads(r.stdout), r.stderr


def test_demo_trace_follows_the_format_with_flows_and_the_retry_linked(demo_bundle, tmp_path):
    """Given the demo bundle (a retried leaf, a failure chain, a straggler), when traced, then
    the file follows the trace event format; every task that ran is a slice on its pod's track
    with its phases nested; data flows exist; the retried leaf's first attempt links to its
    retry; the straggler runs up to the snapshot; nothing says limited."""
    bundle, truth = demo_bundle
    doc, info, err = _trace([bundle], tmp_path)
    by = check_trace_event_format(doc)
    snap = Snapshot.open(bundle)
    g = snap.graph
    ran = int((g.task_ts["acquired_at"] != -2**63).sum())
    tasks = {e["name"]: e for e in by["X"] if e["cat"] == "task"}
    assert len(tasks) == ran and info["tasks"] == g.n_tasks and err == ""
    assert doc["otherData"]["limited"] is None
    assert {e["name"] for e in by["X"] if e["cat"] == "phase"} == {
        "dispatch", "fetching", "processing", "finishing"}
    pods = {e["args"]["name"] for e in by["M"] if e["name"] == "thread_name"}
    assert any(p.startswith("pod compute-plane-") for p in pods)
    assert len([e for e in by["s"] if e["cat"] == "data"]) > 10
    # the retry: from the RETRIED attempt's slice to the retry's start
    first = g.task_index(truth["retried_then_succeeded"][0])  # its first attempt
    failed = tasks[g.node_id(first)]
    retry = tasks[g.node_id(int(np.flatnonzero(g.previous_attempt == first)[0]))]
    assert failed["args"]["status"] == "RETRIED" and retry["args"]["attempt"] == 2
    rf = [e for e in by["f"] if e["cat"] == "retry"]
    assert len(rf) == 1 and rf[0]["ts"] == retry["ts"] and rf[0]["tid"] == retry["tid"]
    assert tasks[truth["straggler_task"]]["args"]["running_at_snapshot"] is True
    assert {tuple(sorted(c["args"])) for c in by["C"]} == {("queued", "running", "waiting")}


def test_every_data_flow_goes_from_the_producer_to_a_reader(demo_bundle, tmp_path):
    """Given the demo bundle traced, then each data flow starts on the track of a task that
    produced one of the inputs of the task it ends on (checked against the graph)."""
    bundle, _ = demo_bundle
    doc, _, _ = _trace([bundle], tmp_path)
    by = check_trace_event_format(doc)
    g = Snapshot.open(bundle).graph
    start_of = {(e["pid"], e["tid"], e["ts"]): e["name"] for e in by["X"] if e["cat"] == "task"}
    slices = [e for e in by["X"] if e["cat"] == "task"]
    pairs = {}
    for e in by["s"] + by["f"]:
        if e["cat"] == "data":
            pairs.setdefault(e["id"], {})[e["ph"]] = e
    assert pairs
    for p in pairs.values():
        consumer = start_of[(p["f"]["pid"], p["f"]["tid"], p["f"]["ts"])]
        s = p["s"]
        producer = [x["name"] for x in slices if (x["pid"], x["tid"]) == (s["pid"], s["tid"])
                    and x["ts"] <= s["ts"] <= x["ts"] + x["dur"]]
        c = g.task_index(consumer)
        inputs = [r for r in g.inputs(c) if r >= g.n_tasks]
        producers = {g.node_id(int(g.producer[r - g.n_tasks])) for r in inputs
                     if g.producer[r - g.n_tasks] >= 0}
        assert set(producer) & producers, (consumer, producer)


def test_limits_are_said_in_the_file_and_on_stderr(demo_bundle, tmp_path):
    """Given --result (upstream only) and --max-tasks, when traced, then otherData.limited and
    a global instant event say how, stderr says it once, and only the chosen tasks are in."""
    bundle, truth = demo_bundle
    doc, info, err = _trace([bundle, "--result", truth["failed_root_result"][:10]], tmp_path)
    check_trace_event_format(doc)
    assert "upstream of result" in doc["otherData"]["limited"] and err.startswith("aksnap: the trace holds")
    lin = api.lineage(Snapshot.open(bundle), truth["failed_root_result"])
    assert info["tasks"] == lin["upstream"]["tasks"]
    assert any(e["ph"] == "i" and e.get("s") == "g" and e["name"].startswith("limited:")
               for e in doc["traceEvents"])
    doc, info, err = _trace([bundle, "--max-tasks", "25"], tmp_path, "m.json")
    check_trace_event_format(doc)
    assert info["tasks"] == 25 and info["tasks_total"] > 25 and "--max-tasks 0" in err
    assert len({e["name"] for e in doc["traceEvents"] if e.get("cat") == "task"}) <= 25


def test_tasks_without_pods_go_on_slots_that_never_overlap(tmp_path):
    """Given three tasks of one partition with no pod host, two of them overlapping in time,
    when traced, then they land on two slot tracks and slices on a track never overlap::

        t1 [1..5]  t2 [2..6]  t3 [5..9]   -> slot 1: t1, t3; slot 2: t2
    """
    times = [(1, 5), (2, 6), (5, 9)]
    tasks = [task(f"t{i + 1}", outputs=[f"r{i + 1}"], pod_hostname="",
                  times=dict(created=0, submitted=0.5, acquired=a, fetched=a, started=a,
                             processed=b, ended=b)) for i, (a, b) in enumerate(times)]
    results = [result(f"r{i + 1}", owner=f"t{i + 1}", completed=9) for i in range(3)]
    b = make_bundle(tmp_path / "b", tasks=tasks, results=results)
    out = tmp_path / "t.json"
    info = trace.write(Snapshot.open(b), out)
    doc = json.loads(out.read_text())
    by = check_trace_event_format(doc)
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in by["M"] if e["name"] == "thread_name"}
    track = {e["name"]: names[(e["pid"], e["tid"])] for e in by["X"] if e["cat"] == "task"}
    assert track == {"t1": "slot 1", "t2": "slot 2", "t3": "slot 1"} and info["tasks"] == 3


def test_lanes_use_the_fewest_tracks():
    """Given intervals [0,3] [1,4] [2,3] [5,6] in one group and [0,2] [1,3] in another, then
    the first needs three lanes (lane 0 reused at 5), the second two."""
    lane = trace.lanes(np.array([0, 0, 0, 1, 1, 0]), np.array([0, 1, 5, 0, 1, 2]),
                       np.array([3, 4, 6, 2, 3, 3]))
    assert lane.tolist() == [0, 1, 0, 0, 1, 2]


def test_hostile_strings_stay_text_in_an_ascii_file(hostile_bundle, tmp_path):
    """Given the hostile scenario (a partition id with a non-ASCII letter, markup elsewhere),
    when traced, then the file is ASCII JSON in the trace event format and the partition's
    name decodes exactly."""
    bundle, _ = hostile_bundle
    out = tmp_path / "h.json"
    trace.write(Snapshot.open(bundle), out)
    raw = out.read_bytes()
    assert raw.isascii()
    doc = json.loads(raw)
    by = check_trace_event_format(doc)
    assert "partition gpu-secret-\u03bb" in {e["args"]["name"] for e in by["M"]
                                             if e["name"] == "process_name"}


def test_json_escaping_in_bulk_matches_json_dumps():
    """Given strings with quotes, backslashes, NUL, U+2028, bidi and plain GUIDs, when escaped
    column-wise, then each is exactly json.dumps of it (ASCII), nulls are empty strings."""
    values = ['a"b', "c\\d", "n\x00l", "ls\u2028", "\u202eevil", "3f2a9c1e-0000", None, "é"]
    out = trace.jstr(values).to_pylist()
    assert out == [json.dumps(v if v is not None else "") for v in values]


def test_bad_input_is_one_sentence(demo_bundle, tmp_path):
    bundle, _ = demo_bundle
    for args in (["--session", "nope"], ["--result", "nope"], ["--max-tasks", "-1"]):
        r = runner.invoke(app, ["trace", str(bundle), "--out", str(tmp_path / "x.json"), *args])
        assert r.exit_code == 2 and r.stderr.startswith("aksnap: error: "), r.output
    assert not list(tmp_path.iterdir())
