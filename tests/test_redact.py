"""Redaction (``aksnap redact``, ``aksnap export --redact``): no identifying string survives, and
every analysis gives the original's answer with ids mapped (docs/sharing.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap.analyzer.testing import failure_bundle
from aksnap.bundle import TABLES, read_manifest, verify_bundle
from aksnap.cli import app
from aksnap.redact import MessageRedactor, Pseudonyms, redact_bundle

runner = CliRunner()
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}(###\d+)?$")
KEY = b"k" * 32


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AK_OUTPUT", raising=False)


def _ok(argv):
    r = runner.invoke(app, [str(a) for a in argv])
    assert r.exit_code in (0, 1), r.output
    return r


def _values(arr) -> list:
    """Every scalar string/bytes in a column, lists, maps and structs flattened."""
    t = arr.type
    if pa.types.is_struct(t):
        return [v for i in range(t.num_fields) for v in _values(arr.combine_chunks().field(i)
                                                                 if isinstance(arr, pa.ChunkedArray)
                                                                 else arr.field(i))]
    if pa.types.is_map(t):
        a = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        return _values(a.keys) + _values(a.items)
    if pa.types.is_list(t):
        a = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        return _values(a.flatten())
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return [v for v in arr.to_pylist() if v]
    return []


LISTED = {  # the identifying columns the issue lists
    "tasks": ["task_id", "session_id", "initial_task_id", "created_by", "payload_id",
              "parent_task_ids", "data_dependencies", "expected_output_ids", "retry_of_ids",
              "owner_pod_id", "pod_hostname", "partition_id", "application_name",
              "application_version", "application_namespace", "application_service",
              "engine_type", "options"],
    "results": ["result_id", "session_id", "owner_task_id", "created_by", "name", "opaque_id"],
    "sessions": ["session_id", "partition_ids", "options"],
    "partitions": ["partition_id", "parent_partition_ids", "pod_configuration"],
}


def _originals(bundle: Path) -> set:
    out = set()
    for t, cols in LISTED.items():
        table = pq.read_table(bundle / f"{t}.parquet")
        for c in cols:
            out.update(_values(table.column(c)))
    m = read_manifest(bundle)
    out.add(m.source["endpoint"])
    out.update(m.selection.get("sessions") or [])
    return {v for v in out if len(v) >= 6}  # shorter strings occur by chance in any file


def _every_byte_decoded(packed: Path, extracted: Path) -> tuple[bytes, str]:
    """The packed file's raw bytes, and every value of every column of every table (pages
    decompressed) plus the manifest and the Parquet metadata, as text."""
    raw = packed.read_bytes()
    parts = [(extracted / "manifest.json").read_text()]
    for t in TABLES:
        pf = pq.ParquetFile(extracted / f"{t}.parquet")
        parts.append(repr(pf.schema_arrow.metadata))
        table = pf.read()
        for c in table.column_names:
            parts += [v if isinstance(v, str) else v.decode("utf-8", "replace")
                      for v in _values(table.column(c))]
            parts.append(repr(table.column(c).to_pylist()))
    return raw, "\n".join(parts)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The hostile scenario served over real gRPC, exported, redacted (with --map), packed."""
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    d = tmp_path_factory.mktemp("hostile")
    sc = build_scenario("hostile", seed=1)
    with SimulatedControlPlane(sc) as cp:
        ep = cp.start()
        r = runner.invoke(app, ["export", "--endpoint", ep, "--all", "--quiet", "--out", str(d / "raw")])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["export", "--endpoint", ep, "--all", "--quiet", "--out",
                                str(d / "exported-redacted"), "--redact", "--key-file", str(d / "key")])
        assert r.exit_code == 2 and "key file" in r.stderr  # no key yet: one sentence
        _ok(["redact", d / "raw", "--out", d / "red", "--key-file", d / "key", "--new-key",
             "--map", d / "map.parquet"])
        r = runner.invoke(app, ["export", "--endpoint", ep, "--all", "--quiet", "--out",
                                str(d / "exported-redacted"), "--redact", "--key-file", str(d / "key")])
        assert r.exit_code == 0, r.output
    _ok(["pack", d / "red", "--out", d / "red.aksnap"])
    return {"dir": d, "truth": sc.truth, "raw": d / "raw", "red": d / "red",
            "packed": d / "red.aksnap", "map": d / "map.parquet"}


def test_no_identifying_string_survives_in_the_packed_file(hostile, tmp_path):
    """Given the hostile scenario (markup, NUL, unicode, 100 kB messages, host names and paths
    inside messages; hostile host names, application fields, option maps, result names)
    exported over gRPC, when redacted and packed, then no original value of the listed
    columns, no planted secret, no endpoint and no selection id is in the packed file's
    bytes, nor in any decompressed column of any table, nor in the manifest."""
    originals = _originals(hostile["raw"])
    assert len(originals) > 200  # ids, names, hosts... of the real export
    secrets = set(hostile["truth"]["secrets"])
    raw_text = "\n".join(_every_byte_decoded(hostile["raw"] / "tasks.parquet", hostile["raw"])[1:])
    assert all(s in raw_text for s in secrets), "the scenario planted its secrets"
    assert max(len(m) for m in pq.read_table(hostile["raw"] / "tasks.parquet")
               .column("status_message").to_pylist()) > 100_000
    r = _ok(["unpack", hostile["packed"], "--out", tmp_path / "x"])
    raw, text = _every_byte_decoded(hostile["packed"], tmp_path / "x")
    for s in sorted(originals | secrets):
        assert s not in text, f"{s!r} survived redaction"
        assert s.encode() not in raw, f"{s!r} is in the packed file's bytes"
    assert b"k" * 32 not in raw and (hostile["dir"] / "key").read_bytes().strip() not in raw


def test_ids_keep_their_shape_and_retries_their_number(hostile):
    red = pq.read_table(hostile["red"] / "tasks.parquet")
    ids = red.column("task_id").to_pylist()
    assert all(GUID.match(i) for i in ids)
    assert any("###1" in i for i in ids)  # the retried leaf
    for row in red.select(["task_id", "initial_task_id", "retry_of_ids"]).to_pylist():
        if "###" in row["task_id"]:
            assert row["task_id"].startswith(row["initial_task_id"] + "###")
            assert row["retry_of_ids"][0] == row["initial_task_id"]


def _unmap(obj, table: dict[str, str]):
    """Pseudonyms back to originals, in every string (whole or inside a sentence)."""
    pat = re.compile("|".join(re.escape(k) for k in sorted(table, key=len, reverse=True)))
    def go(v):
        if isinstance(v, str):
            return pat.sub(lambda m: table[m.group(0)], v)
        if isinstance(v, list):
            return [go(x) for x in v]
        if isinstance(v, dict):
            return {go(k): go(x) for k, x in v.items()}
        return v
    return go(obj)


IGNORED = {"bundle", "redacted", "message", "error_class", "example_message", "example_task_id",
           "status_message", "output_error", "path", "error_classes",
           "summary",  # lineage's one sentence quotes the root cause's message
           # a finding's sentence and subject quote the error class (redacted: a class of its
           # own), its key holds the subject, its next command the bundle's path
           "claim", "subject", "key", "next"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in IGNORED}
    if isinstance(obj, list):
        return [_strip(x) for x in obj]
    return obj


def _json(argv):
    r = _ok(argv + ["-o", "json"])
    return json.loads(r.stdout)


def test_analyses_give_the_same_answers_modulo_the_mapping(hostile):
    """Given the original bundle and its redacted, packed copy, then analyze, lineage,
    blockers, critical-path and task answer the same once pseudonyms are mapped back with
    --map's table (messages aside: they are redacted by design)."""
    m = pq.read_table(hostile["map"]).to_pylist()
    table = {r["pseudonym"]: r["original"] for r in m}
    assert {r["kind"] for r in m} >= {"id", "host", "pod", "partition", "name", "option_key"}
    raw, packed = str(hostile["raw"]), str(hostile["packed"])
    root = pq.read_table(raw + "/results.parquet").to_pylist()
    failed = hostile["truth"]["failed_task"]
    # the client's root output (aborted by the propagated failure)
    target = next(r["result_id"] for r in root if r["created_by"] == "" and r["status"] == "ABORTED")
    pseudo_target = Pseudonyms(hostile["dir"].joinpath("key").read_bytes().rstrip(b"\n")).id(target)
    pseudo_failed = Pseudonyms(hostile["dir"].joinpath("key").read_bytes().rstrip(b"\n")).id(failed)
    for argv, red_argv in (
            (["analyze", raw], ["analyze", packed]),
            (["blockers", raw], ["blockers", packed]),
            (["critical-path", raw], ["critical-path", packed]),
            (["lineage", raw, target], ["lineage", packed, pseudo_target]),
            (["task", raw, failed], ["task", packed, pseudo_failed])):
        a = _strip(_json(argv))
        b = _strip(_unmap(_json(red_argv), table))
        assert a == b, argv[0]
    an = _json(["analyze", packed])
    assert an["redacted"] and "hmac-sha256" in an["redacted"]
    errors = [e["tasks"] for s in _json(["analyze", raw])["sessions"] for e in s["error_classes"]]
    red_errors = [e["tasks"] for s in an["sessions"] for e in s["error_classes"]]
    assert sum(errors) == sum(red_errors)  # the same failures, still grouped into classes


def test_check_shows_the_redaction_and_the_key_fingerprint_not_the_key(hostile):
    r = _ok(["check", hostile["packed"]])
    assert "redaction       keyed pseudonyms (hmac-sha256, key sha256:" in r.stdout
    m = read_manifest(hostile["red"])
    assert m.redaction["key_fingerprint"].startswith("sha256:")
    assert m.redaction["messages"] == "classes" and m.redaction["ids"] == "pseudonyms"
    assert "tasks.pod_hostname" in m.redaction["columns"]
    assert (hostile["dir"] / "key").read_text().strip() not in (hostile["red"] / "manifest.json").read_text()


def test_export_redact_writes_what_redact_writes(hostile):
    """Given a frozen cluster, `export --redact` equals `export` then `redact` with that key."""
    a, b = hostile["red"], hostile["dir"] / "exported-redacted"
    assert verify_bundle(b) == []
    for t in TABLES:
        assert pq.read_table(a / f"{t}.parquet").equals(pq.read_table(b / f"{t}.parquet")), t
    assert read_manifest(b).redaction["key_fingerprint"] == read_manifest(a).redaction["key_fingerprint"]
    assert not list(b.parent.glob(".exported-redacted.unredacted-*"))  # the raw rows are gone


def test_same_key_same_pseudonyms_another_key_unlinkable(tmp_path):
    fb = failure_bundle(tmp_path / "fb")
    redact_bundle(fb, tmp_path / "a", key=KEY)
    redact_bundle(fb, tmp_path / "b", key=KEY)
    redact_bundle(fb, tmp_path / "c", key=b"o" * 32)
    ta, tb, tc = (pq.read_table(tmp_path / n / "tasks.parquet") for n in "abc")
    assert ta.equals(tb)
    assert not set(ta.column("task_id").to_pylist()) & set(tc.column("task_id").to_pylist())
    assert read_manifest(tmp_path / "a").redaction["key_fingerprint"] != \
        read_manifest(tmp_path / "c").redaction["key_fingerprint"]


def test_keep_ids_and_message_modes(tmp_path):
    fb = failure_bundle(tmp_path / "fb")
    redact_bundle(fb, tmp_path / "keep", key=KEY, keep_ids=True, messages="keep")
    redact_bundle(fb, tmp_path / "drop", key=KEY, messages="drop")
    orig = pq.read_table(fb / "tasks.parquet")
    keep = pq.read_table(tmp_path / "keep" / "tasks.parquet")
    drop = pq.read_table(tmp_path / "drop" / "tasks.parquet")
    assert keep.column("task_id").equals(orig.column("task_id"))
    assert keep.column("status_message").equals(orig.column("status_message"))
    assert keep.column("partition_id") != orig.column("partition_id")  # the rest is redacted
    assert set(drop.column("status_message").to_pylist()) <= {"", "<dropped>"}
    assert read_manifest(tmp_path / "keep").redaction["ids"] == "kept"


def test_message_classes_keep_the_shape_and_replace_what_identifies():
    p = Pseudonyms(KEY)
    red = MessageRedactor(p, {"node-7.hpc": "host-x", "t1": p.id("t1")})
    msg = ("task 3f2a9c1e-0000-4000-8000-000000000001###2 failed on node-7.hpc:5001 reading "
           "/data/jdoe/in.bin from 10.0.0.5 for jdoe@acme.example: 'secret' after 42 tries "
           "(https://acme.example/x?token=1) C:\\Users\\jdoe System.IO.IOException t1")
    out = red(msg)
    assert out.startswith("task ") and "failed on host-x:<n> reading <path> from <ip> for <email>" in out
    assert "<str> after <n> tries" in out and "<url>" in out and "System.IO.IOException" in out
    assert p.id("3f2a9c1e-0000-4000-8000-000000000001") + "###2" in out
    assert out.endswith(p.id("t1"))
    for s in ("jdoe", "acme", "secret", "10.0.0.5", "node-7"):
        assert s not in out


@pytest.mark.parametrize("argv, words", [
    (["redact", "{fb}", "--out", "{t}/o", "--key-file", "{t}/nokey"], "no key file"),
    (["redact", "{fb}", "--out", "{t}/o", "--key-file", "{t}/short"], "at least 16"),
    (["redact", "{fb}", "--out", "{t}/o", "--key-file", "{t}/key", "--messages", "some"], "--messages"),
    (["redact", "{fb}", "--out", "{t}/o", "--key-file", "{t}/key", "--map", "{t}/o/map.parquet"], "inside"),
    (["redact", "{t}/red", "--out", "{t}/o", "--key-file", "{t}/key"], "already redacted"),
    (["redact", "{t}/nothing", "--out", "{t}/o", "--key-file", "{t}/key"], "does not exist"),
    (["redact", "{fb}", "--out", "{fb}", "--key-file", "{t}/key"], "already exists"),
    (["export", "--endpoint", "127.0.0.1:1", "--all", "--out", "{t}/e", "--redact"], "--key-file"),
    (["export", "--endpoint", "127.0.0.1:1", "--all", "--out", "{t}/e", "--map", "{t}/m.parquet"],
     "go with --redact"),
])
def test_bad_input_is_one_sentence(tmp_path, argv, words):
    fb = failure_bundle(tmp_path / "fb")
    (tmp_path / "short").write_bytes(b"abc\n")
    (tmp_path / "key").write_bytes(KEY)
    redact_bundle(fb, tmp_path / "red", key=KEY)
    r = runner.invoke(app, [a.format(fb=fb, t=tmp_path) for a in argv])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("aksnap: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert words in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "e").exists()


def test_export_redact_map_traces_pseudonyms_back(tmp_path):
    """Given a live control plane, when `export --redact --key-file K --map M` runs, then the
    bundle holds pseudonyms only and M maps each back to the original id (for the sender)."""
    from aksnap.fixtures.server import SimulatedControlPlane, synthetic_cluster

    (tmp_path / "key").write_bytes(KEY)
    cluster = synthetic_cluster(50, seed=4)
    originals = set(cluster.tasks.column("id").to_pylist())
    with SimulatedControlPlane(cluster) as cp:
        r = runner.invoke(app, ["export", "--endpoint", cp.start(), "--all", "--out",
                                str(tmp_path / "b"), "--quiet", "--redact", "--key-file",
                                str(tmp_path / "key"), "--map", str(tmp_path / "map.parquet")])
    assert r.exit_code == 0, r.output
    redacted = set(pq.read_table(tmp_path / "b" / "tasks.parquet").column("task_id").to_pylist())
    assert not redacted & originals
    pairs = pq.read_table(tmp_path / "map.parquet").to_pylist()
    back = {p[c] for p in pairs for c in p if p[c] in originals}
    assert back == originals


def test_the_map_is_private_and_never_written_through_a_link(tmp_path):
    """Given a bundle, when `aksnap redact --map M` writes the pseudonym -> original table,
    then M is readable by its owner only (it undoes the redaction); and when M is a symbolic
    link, even with --overwrite, it is refused in one sentence and its target is untouched."""
    import stat as stat_

    fb = failure_bundle(tmp_path / "fb")
    (tmp_path / "key").write_bytes(KEY)
    args = ["redact", str(fb), "--key-file", str(tmp_path / "key")]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--map", str(tmp_path / "m.parquet")])
    assert r.exit_code == 0, r.output
    assert stat_.S_IMODE((tmp_path / "m.parquet").stat().st_mode) == 0o600
    (tmp_path / "victim").write_text("mine")
    (tmp_path / "l.parquet").symlink_to(tmp_path / "victim")
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "o2"), "--map", str(tmp_path / "l.parquet"),
                            "--overwrite"])
    assert r.exit_code == 2 and "symbolic link" in r.stderr, r.output
    assert (tmp_path / "victim").read_text() == "mine" and not (tmp_path / "o2").exists()
