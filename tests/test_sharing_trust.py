"""Trust in sharing (issue 17, items 5, 9, 10, 11 and 13): the pack cache answers only about
the packed file it was handed; a full cache disk is a sentence, never a traceback or a
half-extracted entry; redaction fails closed: a secret planted anywhere in a bundle survives
only where the mode keeps it by design, and whatever has no rule stops it (docs/sharing.md)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap import packed as pack_mod  # reading a packed file: its cache, its private copies
from aksnap.analyzer.testing import anomaly_bundle, failure_bundle
from aksnap.bundle import (SCHEMAS, TABLES, TASK_OPTIONS_STRUCT, BundleError, Manifest,
                           read_manifest, sha256_file)
from aksnap.cli import app
from aksnap.pack import open_packed, pack
from aksnap.redact import MANIFEST_PLAN, PLAN, redact_bundle

runner = CliRunner()
MEMBERS = ["manifest.json"] + [f"{t}.parquet" for t in TABLES]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AK_OUTPUT", raising=False)


@pytest.fixture
def packed(tmp_path):
    """(the packed file of the failure bundle, its cache entry's path, the seed: another bundle)."""
    fb = failure_bundle(tmp_path / "fb")
    s = pack(fb, tmp_path / "fb.aksnap")
    other = anomaly_bundle(tmp_path / "other")
    return s.path, tmp_path / "cache" / f"packed-{s.sha256}", other


def _tasks(argv) -> int:
    r = runner.invoke(app, [*argv, "-o", "json"])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


def _seed(entry: Path, src: Path, files=MEMBERS) -> None:
    entry.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(src / name, entry / name)


# -- item 5: a pre-seeded cache entry ---------------------------------------------------------

def test_a_seeded_cache_entry_does_not_answer_for_the_packed_file(packed):
    """Given the cache pre-seeded with another, intact bundle at the packed file's entry name
    (packed-<sha of the file>), when analyze and check read the packed file, then they answer
    about the packed bundle (14 tasks), not the seeded one, and the entry now holds the packed
    file's members."""
    f, entry, other = packed
    _seed(entry, other)
    assert read_manifest(entry).tables["tasks"].rows != 14  # the seed is another bundle
    a = _tasks(["analyze", str(f)])
    assert sum(s["tasks"] for s in a["sessions"]) == 14, a["sessions"]
    c = _tasks(["check", str(f)])
    assert c["checksums"] == "ok" and c["anomalies"] == []  # the seed has every anomaly
    assert read_manifest(entry).tables["tasks"].rows == 14
    with zipfile.ZipFile(f) as z:
        want = z.read("manifest.json")
    assert (entry / "manifest.json").read_bytes() == want


@pytest.mark.parametrize("how", ["another bundle", "the right manifest, another table",
                                 "a table edited in place", "an extra file"])
def test_a_cache_entry_that_does_not_match_the_file_is_extracted_again(packed, how):
    """Given an entry at the right name that differs from the packed file in any member (its
    manifest, a table behind the right manifest, a byte edited in place) or holds something
    else, when the packed file is opened, then the entry is replaced by the file's members and
    every table's SHA-256 is the one the packed manifest says."""
    f, entry, other = packed
    good = open_packed(f)
    assert good == entry
    if how == "another bundle":
        shutil.rmtree(entry)
        _seed(entry, other)
    elif how == "the right manifest, another table":
        os.unlink(entry / "results.parquet")
        shutil.copyfile(other / "results.parquet", entry / "results.parquet")
    elif how == "a table edited in place":
        p = entry / "tasks.parquet"
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))  # same size: only its checksum tells
    else:
        (entry / "notes.txt").write_text("hi")
    d = open_packed(f)
    assert d == entry
    m = read_manifest(d)
    assert all(sha256_file(d / e.file) == e.sha256 for e in m.tables.values())
    assert m.tables["tasks"].rows == 14 and sorted(p.name for p in d.iterdir()) == sorted(MEMBERS)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # nothing left aside


def test_a_cache_entry_that_is_a_symbolic_link_is_not_followed(packed, tmp_path):
    """Given the entry name taken by a symlink to another bundle, when the packed file is
    opened, then the link is not used: the answer is about the packed file, and the linked
    bundle is untouched."""
    f, entry, other = packed
    entry.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(other, entry)
    before = {p.name: p.read_bytes() for p in other.iterdir()}
    d = open_packed(f)
    assert read_manifest(d).tables["tasks"].rows == 14
    assert not d.is_symlink() and d.resolve() != other.resolve()
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before


def test_a_cache_entry_owned_by_another_user_is_not_trusted(packed, monkeypatch):
    """Given an entry that matches the file byte for byte but belongs to another user (who may
    change it after it is checked), when the packed file is opened, then aksnap does not
    read it: it extracts its own copy."""
    f, entry, _ = packed
    assert open_packed(f) == entry
    theirs = (entry / "tasks.parquet").stat().st_ino
    real = os.getuid()
    monkeypatch.setattr(pack_mod.os, "getuid", lambda: real + 1)  # the entry is now "theirs"
    d = open_packed(f)
    assert (d / "tasks.parquet").stat().st_ino != theirs  # its own copy, wherever it lies
    assert read_manifest(d).tables["tasks"].rows == 14


# -- item 13: a full disk in the cache --------------------------------------------------------

def _full_disk_after(monkeypatch, budget: int) -> None:
    """Writes into the cache fail with ENOSPC once ``budget`` bytes were written."""
    written = [0]

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            written[0] += len(b)
            if written[0] > budget:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return self.f.__exit__(*a)

    real_fdopen = os.fdopen
    monkeypatch.setattr(pack_mod.os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))


@pytest.mark.parametrize("budget", [0, 4000, 15000])
def test_a_full_cache_disk_is_one_sentence_and_leaves_nothing(packed, tmp_path, monkeypatch, budget):
    """Given a cache on a file system that fills up after ``budget`` bytes (ENOSPC on write),
    when analyze and check read the packed file, then each exits non-zero with one sentence
    naming the cache and AKSNAP_CACHE_DIR, no traceback, and the cache holds no entry and no
    partial directory; once space is back, the file opens and answers."""
    f, entry, _ = packed
    _full_disk_after(monkeypatch, budget)
    r = runner.invoke(app, ["analyze", str(f)])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("aksnap: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "No space left on device" in r.stderr and "AKSNAP_CACHE_DIR" in r.stderr
    assert str(tmp_path / "cache") in r.stderr and "Traceback" not in r.output
    r = runner.invoke(app, ["check", str(f)])
    assert r.exit_code != 0 and "Traceback" not in r.output and "No space left" in r.output
    assert not entry.exists() and list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(BundleError, match="AKSNAP_CACHE_DIR"):
        open_packed(f)
    monkeypatch.undo()
    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    assert read_manifest(open_packed(f)).tables["tasks"].rows == 14


def test_a_full_temporary_directory_with_the_cache_off_is_one_sentence(packed, monkeypatch):
    """Given AKSNAP_CACHE_DIR="" (a private temporary directory) on a full disk, then one
    sentence naming the temporary directory, and it is removed."""
    f, _, _ = packed
    monkeypatch.setenv("AKSNAP_CACHE_DIR", "")
    _full_disk_after(monkeypatch, 100)
    earlier = set(pack_mod._private_dirs)  # other tests' private copies live until exit
    with pytest.raises(BundleError, match="No space left on device") as e:
        open_packed(f)
    assert "TMPDIR" in str(e.value) or "AKSNAP_CACHE_DIR" in str(e.value)
    assert not [d for d in pack_mod._private_dirs if d not in earlier and os.path.exists(d)]


# -- items 9, 10, 11: redaction fails closed --------------------------------------------------
#
# A secret is planted in every place of a bundle that can hold text: every string, list, map,
# struct and binary column (each a secret of its own), every text field of the manifest, the
# Parquet key-value metadata, column names, field metadata, fields aksnap does not know. Each
# mode then redacts it, and every byte of the output (raw, and every column read back, pages
# decompressed) is searched. What survives by design: the messages in `keep` and `classes`
# (plain words stay: docs/sharing.md), the ids with --keep-ids. A place with no rule stops
# redaction, naming it, with nothing written.

KEY = b"k" * 32
MESSAGE_PLACES = {"tasks.status_message", "tasks.output_error", "manifest.warnings"}


def secret(place: str) -> str:
    """A plain word, letters only (no digit or dot for the message rules to replace), one per
    place, so a survivor names where it came from."""
    return "qx" + "".join(chr(97 + b % 26) for b in hashlib.sha256(place.encode()).digest()[:12])


def _plant_value(typ: pa.DataType, place: str, n: int, places: dict[str, str]):
    """A column of ``n`` values of ``typ`` whose every text is the place's secret."""
    if pa.types.is_string(typ):
        places[place] = secret(place)
        return pa.array([secret(place)] * n, typ)
    if pa.types.is_binary(typ):
        places[place] = secret(place)
        return pa.array([secret(place).encode()] * n, typ)
    if pa.types.is_list(typ):
        vals = _plant_value(typ.value_type, place, 2 * n, places)
        return pa.ListArray.from_arrays(pa.array(range(0, 2 * n + 1, 2), pa.int32()), vals, type=typ)
    if pa.types.is_map(typ):
        keys = _plant_value(typ.key_type, place + ".key", n, places)
        items = _plant_value(typ.item_type, place + ".value", n, places)
        return pa.MapArray.from_arrays(pa.array(range(n + 1), pa.int32()), keys, items, type=typ)
    if pa.types.is_struct(typ):
        return pa.StructArray.from_arrays(
            [_plant_value(f.type, f"{place}.{f.name}", n, places) or pa.nulls(n, f.type)
             for f in typ], fields=list(typ))
    return None  # numbers, times, flags: no text


def _write_table(bundle: Path, name: str, table: pa.Table) -> None:
    """Rewrite one table file and its manifest entry (size, rows, SHA-256): a planted bundle
    passes every checksum."""
    pq.write_table(table, bundle / f"{name}.parquet")
    m = json.loads((bundle / "manifest.json").read_text())
    m["tables"][name].update(rows=table.num_rows, bytes=(bundle / f"{name}.parquet").stat().st_size,
                             sha256=sha256_file(bundle / f"{name}.parquet"))
    (bundle / "manifest.json").write_text(json.dumps(m))


def _edit_manifest(bundle: Path, edit) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    edit(m)
    (bundle / "manifest.json").write_text(json.dumps(m))


def full_manifest(places: dict[str, str]) -> dict:
    """Every field an export (and an update) writes, each text a secret of its own."""
    def s(place):
        places["manifest." + place] = secret("manifest." + place)
        return secret("manifest." + place)

    digest = hashlib.sha256(b"the parent's manifest").hexdigest()  # a digest has no words
    places["manifest.update.parent.digest"] = digest
    counts = {"units": 1, "pages": 2, "reported_total": 3, "replaced_across_pages": 0,
              "late_duplicates_dropped": 0, "rescans": 0, "missing_vs_reported_total": 0,
              "units_stopped_growing": 0}
    return {
        "snapshot": "final", "exported_at": "2026-01-01T12:01:40+00:00",
        "export_finished_at": "2026-01-01T12:01:41.500000+00:00", "latest_timestamp": None,
        "armonik_versions": {"core": s("armonik_versions.core"), "api": s("armonik_versions.api")},
        "source": {"endpoint": s("source.endpoint"), "tls": True, "mutual_tls": False},
        "selection": {"sessions": [s("selection.sessions")], "all": False, "status": "RUNNING",
                      "created_after": "2026-01-01T00:00:00+00:00", "created_before": None},
        "sessions": [{"session_id": s("sessions.session_id"), "status": "RUNNING", "tasks": 14,
                      "non_final_tasks": 3, "results": 25,
                      "server_task_counts_at_end": {"COMPLETED": 5, "ERROR": 1}}],
        "exporter": {"tool": "aksnap", "version": s("exporter.version"), "page_size": "auto",
                     "jobs": 4},
        "consistency": {"tasks": counts, "results": counts, "retries": 0, "resource_exhausted": 0,
                        "server_task_counts_at_end": {"COMPLETED": 5}},
        "warnings": [s("warnings")],
        "update": {"parent": {"digest": digest,
                              "exported_at": "2026-01-01T12:00:00+00:00",
                              "export_finished_at": "2026-01-01T12:00:01+00:00",
                              "latest_timestamp": "2026-01-01T12:00:00+00:00", "snapshot": "live",
                              "rows": {t: 1 for t in TABLES}, "generation": 0},
                   "generation": 1, "created_since": "2026-01-01T11:59:00+00:00",
                   "refetched_by_id": {t: 0 for t in TABLES}, "mostly_open_sessions": [s("update.mostly_open_sessions")],
                   "rows_fetched": {t: 1 for t in TABLES}, "rows_kept": {t: 1 for t in TABLES},
                   "deleted_results_refetched": [s("update.deleted_results_refetched")],
                   "new_sessions": [s("update.new_sessions")],
                   "dropped_sessions": [s("update.dropped_sessions")],
                   "rescanned_sessions": [s("update.rescanned_sessions")]},
    }


ID_PLACES = {"tasks.task_id", "tasks.session_id", "tasks.initial_task_id", "tasks.created_by",
             "tasks.payload_id", "tasks.parent_task_ids", "tasks.data_dependencies",
             "tasks.expected_output_ids", "tasks.retry_of_ids", "results.result_id",
             "results.session_id", "results.owner_task_id", "results.created_by",
             "sessions.session_id", "manifest.selection.sessions", "manifest.sessions.session_id",
             "manifest.update.mostly_open_sessions", "manifest.update.deleted_results_refetched",
             "manifest.update.new_sessions", "manifest.update.dropped_sessions",
             "manifest.update.rescanned_sessions"}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The failure bundle with a secret in every place that can hold text (statuses aside:
    they are a vocabulary, attacked below) and every manifest field filled."""
    d = tmp_path_factory.mktemp("planted")
    b = failure_bundle(d / "b")
    places: dict[str, str] = {}
    for name in TABLES:
        t = pq.read_table(b / f"{name}.parquet")
        cols = []
        for f in SCHEMAS[name]:
            col = None if f.name == "status" else _plant_value(f.type, f"{name}.{f.name}", t.num_rows, places)
            cols.append(col if col is not None else t.column(f.name))
        _write_table(b, name, pa.Table.from_arrays(cols, schema=t.schema))
    _edit_manifest(b, lambda m: m.update(full_manifest(places)))
    (d / "key").write_bytes(KEY)
    return b, places, d / "key"


def _every_text(root: Path) -> str:
    """Every byte under ``root``: the raw files, and every value of every column of every
    Parquet file read back (pages decompressed), its schema, field and key-value metadata."""
    parts = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        raw = p.read_bytes()
        parts.append(raw.decode("latin-1"))
        if p.suffix == ".parquet":
            pf = pq.ParquetFile(p)
            parts.append(repr(pf.metadata.metadata) + repr(pf.schema_arrow))
            parts += [repr(f.metadata) for f in pf.schema_arrow]
            t = pf.read()
            parts += [repr(t.column(c).to_pylist()) for c in t.column_names]
    return "\n".join(parts)


MODES = [("classes", False), ("drop", False), ("keep", False), ("classes", True), ("drop", True)]


@pytest.mark.parametrize("messages, keep_ids", MODES)
def test_no_planted_secret_survives_redaction_unless_its_mode_keeps_it(planted, tmp_path, messages, keep_ids):
    """Given a secret in every column and every manifest field (each its own), when redacted
    with each --messages mode (and --keep-ids), then a secret survives anywhere in the output's
    bytes or decoded values exactly where the mode keeps it by design: messages (plain words)
    in classes and keep, ids with --keep-ids; nowhere else (not the endpoint, versions, host
    names, options, the update's ids, the warnings with --messages drop)."""
    b, places, key = planted
    out = tmp_path / "red"
    r = runner.invoke(app, ["redact", str(b), "--out", str(out), "--key-file", str(key),
                            "--messages", messages, *(["--keep-ids"] if keep_ids else [])])
    assert r.exit_code == 0, r.output
    text = _every_text(out)
    survived = {p for p, s in places.items() if s in text}
    allowed = set()
    if messages != "drop":
        allowed |= {p for p in places if p in MESSAGE_PLACES}
    if keep_ids:
        allowed |= {p for p in places if p in ID_PLACES}
    assert survived == allowed
    assert len(places) > 40  # every text place of the format was planted


def _refused(b: Path, key: Path, out: Path, name: str, value: str | None = None):
    r = runner.invoke(app, ["redact", str(b), "--out", str(out), "--key-file", str(key)])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("aksnap: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert name in r.stderr, r.stderr
    assert "Traceback" not in r.output and not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))
    if value is not None:
        assert value not in r.stderr  # the sentence names the place, never shows the secret
    return r.stderr


NESTED = [
    ("exporter", "hostname"), ("armonik_versions", "cluster_name"), ("selection", "user"),
    ("source", "user"), ("consistency", "operator"), ("update", "note"),
]


@pytest.mark.parametrize("parent, field", NESTED)
def test_an_unknown_nested_manifest_field_stops_redaction_with_its_name(planted, tmp_path, parent, field):
    """Given a field aksnap does not know inside a known object of the manifest (exporter,
    armonik_versions, selection, source, consistency, update), when redacted, then redaction
    stops with its name (`exporter.hostname`), exit 2, nothing at --out: it is neither
    copied (it could hold anything) nor dropped unseen."""
    b, _, key = planted
    c = tmp_path / "b"
    shutil.copytree(b, c)
    _edit_manifest(c, lambda m: m[parent].__setitem__(field, secret("nested")))
    _refused(c, key, tmp_path / "red", f"{parent}.{field}", secret("nested"))


@pytest.mark.parametrize("edit, name", [
    (lambda m: m.__setitem__("build_host", secret("top")), "build_host"),
    (lambda m: m["sessions"][0].__setitem__("owner", secret("top")), "sessions[0].owner"),
    (lambda m: m["update"]["parent"].__setitem__("endpoint", secret("top")), "update.parent.endpoint"),
    (lambda m: m["consistency"]["tasks"].__setitem__("note", secret("top")), "consistency.tasks.note"),
    (lambda m: m.__setitem__("exported_at", secret("top")), "exported_at"),
    (lambda m: m["sessions"][0].__setitem__("status", secret("top")), "sessions[0].status"),
    (lambda m: m["consistency"]["server_task_counts_at_end"].__setitem__(secret("top"), 1),
     "consistency.server_task_counts_at_end"),
    (lambda m: m["selection"].__setitem__("all", secret("top")), "selection.all"),
    (lambda m: m["exporter"].__setitem__("jobs", secret("top")), "exporter.jobs"),
])
def test_a_manifest_field_without_a_rule_or_of_the_wrong_shape_stops_redaction(planted, tmp_path, edit, name):
    """Given an unknown field (top level, in a session entry, in the update record) or a known
    field holding text where the format has a time, a status, a flag or a count, then
    redaction stops naming the field; the value is not shown."""
    b, _, key = planted
    c = tmp_path / "b"
    shutil.copytree(b, c)
    _edit_manifest(c, edit)
    _refused(c, key, tmp_path / "red", name, secret("top"))


def test_an_extra_column_stops_redaction_with_its_name(planted, tmp_path):
    """Given tasks.parquet with a column the format does not have (an attacker's, or a newer
    format's), then redaction stops naming it."""
    b, _, key = planted
    c = tmp_path / "b"
    shutil.copytree(b, c)
    t = pq.read_table(c / "tasks.parquet")
    _write_table(c, "tasks", t.append_column("notes", pa.array([secret("col")] * t.num_rows)))
    _refused(c, key, tmp_path / "red", "notes", secret("col"))


@pytest.mark.parametrize("where", ["key-value metadata", "field metadata", "status value"])
def test_parquet_metadata_and_statuses_without_a_rule_stop_redaction(planted, tmp_path, where):
    """Given a Parquet key-value metadata entry the format does not write, metadata on a
    field, or a status outside ArmoniK's vocabulary (text where the format has a word of a
    closed list), then redaction stops naming it."""
    b, _, key = planted
    c = tmp_path / "b"
    shutil.copytree(b, c)
    t = pq.read_table(c / "tasks.parquet")
    if where == "key-value metadata":
        t = t.replace_schema_metadata({**t.schema.metadata, b"owner": secret("kv").encode()})
        name = "owner"
    elif where == "field metadata":
        i = t.schema.get_field_index("priority")
        t = t.cast(t.schema.set(i, t.schema.field(i).with_metadata({"note": secret("kv")})))
        name = "priority"
    else:
        i = t.schema.get_field_index("status")
        t = t.set_column(i, t.schema.field(i), pa.array([secret("kv")] * t.num_rows))
        name = "tasks.status"
    _write_table(c, "tasks", t)
    _refused(c, key, tmp_path / "red", name, secret("kv"))


def test_the_redaction_plan_covers_every_column_and_manifest_field_of_the_format():
    """The plan is total over the format: every column of every table (and every field of the
    session options struct) has a rule, and so has every field of the typed Manifest; a
    column or field added to core/bundle.py without a rule fails here."""
    for t in TABLES:
        assert list(PLAN[t]) == SCHEMAS[t].names, t
        assert all(PLAN[t][c] for c in PLAN[t]), t
    from aksnap.redact import STRUCT_PLAN

    assert list(STRUCT_PLAN) == [f.name for f in TASK_OPTIONS_STRUCT]
    fields = {"format", "format_version", "tables", *Manifest._OPTIONAL}
    assert set(MANIFEST_PLAN) == fields


def test_warnings_follow_the_message_mode(tmp_path):
    """Given a manifest warning naming a host and an application ("rows missing on <host> for
    <app>"), then --messages drop drops it, classes replaces the names, keep keeps it."""
    fb = failure_bundle(tmp_path / "fb")
    w = "412 tasks rows missing on node-7.hpc.acme for app-payroll-prod"
    _edit_manifest(fb, lambda m: m.__setitem__("warnings", [w]))
    got = {}
    for mode in ("drop", "classes", "keep"):
        redact_bundle(fb, tmp_path / mode, key=KEY, messages=mode)
        got[mode] = read_manifest(tmp_path / mode).warnings
    assert got["drop"] == ["<dropped>"]
    assert "node-7" not in got["classes"][0] and "rows missing on" in got["classes"][0]
    assert got["keep"] == [w]


def _leaves(obj, where=""):
    """Every leaf path of a JSON document (list indices and map keys generalised)."""
    if isinstance(obj, dict):
        return {p for k, v in obj.items() for p in _leaves(v, f"{where}.{k}" if where else k)}
    if isinstance(obj, list):
        return {p for v in obj for p in _leaves(v, where + "[]")} or {where}
    return {where}


def test_every_field_a_real_export_and_update_write_has_a_rule_and_reaches_the_output(tmp_path):
    """Given a bundle exported over gRPC and then refreshed by `export --update` (whose
    manifest has every field the exporter writes, the update record included), when
    redacted, then redaction succeeds and every field of the input manifest is in the output
    (nothing dropped unseen), but the ones the writer writes anew; a field the exporter gains
    without a rule fails here."""
    from aksnap.exporter import export, update
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario("htcmock", seed=3, tasks=120)
    end = sc.cluster.end_time
    with SimulatedControlPlane(sc, at=0.3 * end) as cp:
        ep = cp.start()
        export(ep, tmp_path / "p", all_sessions=True)
        cp.at = 0.7 * end
        update(tmp_path / "p", tmp_path / "u")
    raw = json.loads((tmp_path / "u" / "manifest.json").read_text())
    assert raw["update"]["parent"]["digest"] and raw["sessions"] and raw["consistency"]
    redact_bundle(tmp_path / "u", tmp_path / "red", key=KEY)
    red = json.loads((tmp_path / "red" / "manifest.json").read_text())
    regenerated = {"format", "format_version", "written_at", "tables", "redaction"}
    mine = {p for p in _leaves(raw) if p.split(".")[0].split("[")[0] not in regenerated}
    theirs = _leaves(red)
    assert mine <= theirs, mine - theirs
    assert red["update"]["new_sessions"] == [] or red["update"]["new_sessions"][0] not in raw["update"]["new_sessions"]
    assert red["source"]["endpoint"].startswith("endpoint-")


def test_the_table_redactor_itself_refuses_a_column_or_struct_field_without_a_rule():
    """The redactor does not rely on the bundle reader's schema check: handed a row group with
    an extra column, an extra text field in the session options, or text where the format
    keeps numbers, it raises naming it instead of copying it."""
    from aksnap.redact import Pseudonyms, TableRedactor

    red = TableRedactor(Pseudonyms(KEY), "classes", None)
    t = SCHEMAS["tasks"].empty_table()
    with pytest.raises(BundleError, match=r"the column tasks\.notes has no redaction rule"):
        red.table("tasks", t.append_column("notes", pa.array([], pa.string())))
    i = t.schema.get_field_index("priority")
    with pytest.raises(BundleError, match=r"tasks\.priority holds text"):
        red.table("tasks", t.set_column(i, "priority", pa.array([], pa.string())))
    options = pa.struct(list(TASK_OPTIONS_STRUCT) + [pa.field("owner", pa.string())])
    s = SCHEMAS["sessions"].empty_table()
    j = s.schema.get_field_index("options")
    with pytest.raises(BundleError, match=r"sessions\.options\.owner has no redaction rule"):
        red.table("sessions", s.set_column(j, "options", pa.array([], options)))


def test_the_update_record_of_a_rescan_is_redacted_by_id_and_a_forged_reason_stops_it(tmp_path):
    """Given a parent whose final rows were edited (checksums recomputed), so that
    `export --update` rescans its session and records why under the session's id, when the
    update is redacted, then the record's key is the session's pseudonym and the reason (counts
    and statuses written by aksnap) is kept; and when the reason was forged to carry other text,
    redaction stops naming the field and writes nothing."""
    from aksnap.exporter import export, update
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    with SimulatedControlPlane(build_scenario("htcmock", seed=3, tasks=120)) as cp:
        export(cp.start(), tmp_path / "p", all_sessions=True)
        t = pq.read_table(tmp_path / "p" / "tasks.parquet")
        st = t.column("status").to_pylist()
        st[st.index("COMPLETED")] = "ERROR"
        i = t.schema.get_field_index("status")
        pq.write_table(t.set_column(i, t.schema.field(i), pa.array(st, t.schema.field(i).type))
                       .replace_schema_metadata(t.schema.metadata), tmp_path / "p" / "tasks.parquet")
        m = json.loads((tmp_path / "p" / "manifest.json").read_text())
        f = tmp_path / "p" / "tasks.parquet"
        m["tables"]["tasks"].update(sha256=hashlib.sha256(f.read_bytes()).hexdigest(),
                                    bytes=f.stat().st_size)
        (tmp_path / "p" / "manifest.json").write_text(json.dumps(m))
        update(tmp_path / "p", tmp_path / "u")
    raw = json.loads((tmp_path / "u" / "manifest.json").read_text())
    (sid, why), = raw["update"]["rescanned_because"].items()
    redact_bundle(tmp_path / "u", tmp_path / "red", key=KEY)
    red = json.loads((tmp_path / "red" / "manifest.json").read_text())
    pseudonym = red["sessions"][0]["session_id"]
    assert pseudonym != sid and red["update"]["rescanned_because"] == {pseudonym: why}
    assert red["update"]["rescanned_sessions"] == [pseudonym]

    raw["update"]["rescanned_because"][sid] = why + " on node-7.acme.corp"
    (tmp_path / "u" / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=r"update\.rescanned_because\.<id> is not a phrase of counts"):
        redact_bundle(tmp_path / "u", tmp_path / "red2", key=KEY, verify=False)
    assert not (tmp_path / "red2").exists()
