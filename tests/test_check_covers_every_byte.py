"""`aksnap check` accounts for every byte of a bundle's Parquet files, and for the counts its
manifest records (issue 17, items 4 and 7).

The attacker edits a table file and recomputes the manifest's SHA-256, size and rows
(``reseal``). Page checksums cover page data only; nothing a reader checks covered the footer
or the page headers, and DuckDB skips row groups by the footer's min/max statistics, so
replacing ``TIMEOUT`` by ``BBBBBBB`` in the footer made ``status = 'TIMEOUT'`` find nothing
while ``check`` said "anomalies none". Each test below attacks one kind of byte (footer
fields, page headers, page data, the marks, bytes hidden between structures) and expects a
sentence naming the file, and where it could, the row group and column. Check runs in
process (``verify_bundle(thorough=True)``) where many attacks are tried.
"""

import base64
import json
import random
import struct
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap.analyzer.testing import make_bundle, result, task
from aksnap.bundle import (
    FORMAT_VERSION,
    MANIFEST,
    SCHEMAS,
    TABLES,
    parquet_writer_options,
    schema_with_metadata,
    sha256_file,
    verify_bundle,
)
from aksnap.bundle_writer import BundleWriter
from aksnap.cli import app
from aksnap.exporter import export
from aksnap.fixtures.server import Faults, SimulatedControlPlane, synthetic_cluster
from aksnap.parquet_verify import same, writer_of
from aksnap.thrift_compact import BINARY, I32, I64, STRUCT, Struct, decode, encode

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def reseal(bundle: Path, table: str) -> None:
    """What an attacker does after an edit: the manifest's checksum, size and rows follow."""
    f = bundle / f"{table}.parquet"
    m = json.loads((bundle / MANIFEST).read_text())
    m["tables"][table].update(sha256=sha256_file(f), bytes=f.stat().st_size)
    try:
        m["tables"][table]["rows"] = pq.ParquetFile(f).metadata.num_rows
    except Exception:  # noqa: BLE001 - an unreadable file keeps its old row count
        pass
    (bundle / MANIFEST).write_text(json.dumps(m))


def copy_bundle(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


# -- the bundles ---------------------------------------------------------------------------------

def varied_tasks(n: int = 40) -> list[dict]:
    """Every shape a column takes: statuses up to TIMEOUT (the largest), empty and full lists,
    null and set maps, null timestamps, strings that are not ASCII."""
    statuses = ["COMPLETED", "ERROR", "TIMEOUT", "PROCESSING", "CANCELLED"]
    out = []
    for i in range(n):
        st = statuses[i % len(statuses)]
        out.append(task(f"t{i:03d}", status=st, outputs=[f"r{i:03d}"],
                        deps=[f"r{i - 1:03d}"] if i % 3 else [],
                        message="" if st == "COMPLETED" else f"échec n°{i}",
                        times={"created": i, "ended": i + 1 if st != "PROCESSING" else None},
                        options={"k": f"v{i}"} if i % 2 else None, priority=i % 4))
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A small bundle of every table, every column shape."""
    tasks = varied_tasks()
    results = [result(f"r{i:03d}", owner=f"t{i:03d}",
                      status="COMPLETED" if i % 4 else "ABORTED",
                      opaque_id=bytes([255 - i, i, 0])) for i in range(40)]
    sessions = [{"session_id": "s1", "status": "RUNNING", "partition_ids": ["default", "gpu"],
                 "options": {"max_retries": 2, "partition_id": "default",
                             "options": {"a": "1"}}},
                {"session_id": "s2", "status": "CLOSED", "partition_ids": [], "options": None}]
    partitions = [{"partition_id": "default", "parent_partition_ids": [], "pod_reserved": 1,
                   "pod_max": 10, "priority": 1, "preemption_percentage": 0,
                   "pod_configuration": {"cpu": "2"}},
                  {"partition_id": "gpu", "parent_partition_ids": ["default"], "pod_max": 2}]
    return make_bundle(tmp_path_factory.mktemp("small") / "b", tasks=tasks, results=results,
                       sessions=sessions, partitions=partitions)


def _col(n: int, typ: pa.DataType, values) -> pa.Array:
    return pa.array(values, typ) if values is not None else pa.nulls(n, typ)


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    """45,000 tasks in row groups of 30,000: several pages per column chunk (20,000 rows a
    page), a dictionary column whose writer falls back to plain pages (unique 60-byte error
    messages: more than the 1 MiB dictionary limit), a string longer than the statistics'
    limit (so no min/max)."""
    n = 45_000
    ids = [f"task-{i:06d}" for i in range(n)]
    given = {
        "task_id": ids, "session_id": ["s1"] * n,
        "status": ["COMPLETED" if i % 7 else "ERROR" for i in range(n)],
        "status_message": ["x" * 5000 if i == 7 else "" for i in range(n)],
        "initial_task_id": ids, "created_by": [""] * n, "payload_id": ids,
        "parent_task_ids": [["s1"]] * n, "data_dependencies": [[] if i % 2 else [ids[i - 1]]
                                                               for i in range(n)],
        "expected_output_ids": [[f"r{i}"] for i in range(n)], "retry_of_ids": [[]] * n,
        "output_error": [f"error {i:06d} " + "e" * 45 for i in range(n)],
        "priority": [i % 5 for i in range(n)],
        "created_at": pa.array(range(1_750_000_000_000_000, 1_750_000_000_000_000 + n),
                               pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    }
    schema = SCHEMAS["tasks"]
    tasks = pa.table({f.name: given[f.name] if isinstance(given.get(f.name), pa.Array)
                      else _col(n, f.type, given.get(f.name)) for f in schema}, schema=schema)
    out = tmp_path_factory.mktemp("wide") / "b"
    with BundleWriter(out, row_group_size=30_000) as w:
        w.write("tasks", tasks)
        w.commit({})
    return out


def test_fresh_bundles_check_clean(small, wide):
    """Given bundles the writer just wrote (every column shape; several row groups and pages,
    a dictionary fallback, a string too long for statistics), when checked, then nothing is
    reported: the writer's model in check is the writer's own behaviour."""
    assert verify_bundle(small, thorough=True) == []
    assert verify_bundle(wide, thorough=True) == []
    md = pq.ParquetFile(wide / "tasks.parquet").metadata
    assert md.num_row_groups == 2
    rg = md.row_group(0)
    names = [rg.column(i).path_in_schema for i in range(rg.num_columns)]
    error = rg.column(names.index("output_error"))
    assert error.has_dictionary_page and "PLAIN" in error.encodings  # the fallback is exercised
    assert not rg.column(names.index("status_message")).statistics.has_min_max
    # the fallback is real: the chunk holds plain-encoded data pages after dictionary ones
    _, fm, _ = footer_of(wide / "tasks.parquet")
    stats = fm[4][0][1][names.index("output_error")][3][13]
    assert {(s[1], s[2]) for s in stats} >= {(0, 0), (0, 8), (2, 0)}


# -- the attack ---------------------------------------------------------------------------

def footer_of(path: Path) -> tuple[bytes, Struct, int]:
    data = path.read_bytes()
    n = struct.unpack("<I", data[-8:-4])[0]
    start = len(data) - 8 - n
    fm, _ = decode(data[start:-8])
    return data, fm, start


def write_footer(path: Path, fm: Struct, junk: bytes = b"") -> None:
    data, _, start = footer_of(path)
    raw = encode(fm) + junk
    path.write_bytes(data[:start] + raw + struct.pack("<I", len(raw)) + b"PAR1")


def test_the_footer_statistics_attack_is_reported_and_refused(small, tmp_path):
    """Given TIMEOUT replaced by BBBBBBB in tasks.parquet's footer only (the status chunk's
    max), the manifest resealed, so that DuckDB skips the row group for status = 'TIMEOUT',
    when checked, then check exits 1 naming the file, the column and both values; and every
    other command refuses the bundle with a sentence instead of answering 0."""
    b = copy_bundle(small, tmp_path / "b")
    f = b / "tasks.parquet"
    data, _, start = footer_of(f)
    assert data[start:].count(b"TIMEOUT") == 1
    f.write_bytes(data[:start] + data[start:].replace(b"TIMEOUT", b"BBBBBBB"))
    reseal(b, "tasks")
    # the attack is real: DuckDB prunes with the footer
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{f}') WHERE status = 'TIMEOUT'").fetchall()
    assert n == [(0,)]
    r = cli("check", b)
    assert r.exit_code == 1, r.output
    for words in ("tasks.parquet", "column status", "'BBBBBBB'", "'TIMEOUT'"):
        assert words in r.output, (words, r.output)
    r = cli("analyze", b)
    assert r.exit_code == 2, r.output
    assert "column status" in r.output and "'TIMEOUT'" in r.output, r.output
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    # the statistics are checked before the first answer reading a table, not at the open
    # (issue 21): SQL reading tasks is refused, SQL reading no table answers
    for sql in (f"SELECT count(*) FROM tasks WHERE status = 'TIMEOUT'", "SELECT 1 AS x FROM tasks LIMIT 1"):
        r = cli("sql", b, sql)
        assert r.exit_code == 2 and "column status" in r.output, (sql, r.output)
    r = cli("sql", b, "SELECT 1 AS x", "-o", "csv")
    assert r.exit_code == 0 and r.stdout.split() == ["x", "1"], r.output


# -- every byte -----------------------------------------------------------------------------------

def regions(path: Path) -> dict[str, list[int]]:
    """The file's bytes by kind: marks (PAR1, footer length), footer, page headers, page data,
    and the copy of each ColumnChunk that writers before parquet-cpp-arrow 18 leave after its
    pages (its file_offset points at it)."""
    data, fm, start = footer_of(path)
    out = {"marks": [0, 1, 2, 3, *range(len(data) - 8, len(data))],
           "footer": list(range(start, len(data) - 8)), "page header": [], "page data": [],
           "column chunk copy": []}
    for rg in fm[4]:
        for cc in rg[1]:
            md = cc[3]
            pos = md.get(11, md[9])
            end = pos + md[7]
            while pos < end:
                h, e = decode(data, pos)
                out["page header"] += range(pos, e)
                out["page data"] += range(e, e + h[3])
                pos = e + h[3]
            if cc[2]:
                assert cc[2] == end
                _, e = decode(data, end)
                out["column chunk copy"] += range(end, e)
    out = {k: v for k, v in out.items() if v}
    covered = sum(len(v) for v in out.values())
    assert covered == len(data), "the regions must tile the file"
    return out


SAMPLE = {"marks": 12, "footer": 24, "page header": 24, "page data": 10, "column chunk copy": 10}


def another_version_of_the_same_writer(orig: bytes, flipped: bytes) -> bool:
    """Whether ``flipped`` differs from ``orig`` only in that its footer's created_by names
    another supported parquet-cpp-arrow version that writes the same fields ("26.0.1" ->
    "26.0.3"): no reader treats those apart (docs/bundle-format.md), so check accepts it."""
    try:
        a, fa, sa = footer_of_bytes(orig)
        b, fb, sb = footer_of_bytes(flipped)
    except Exception:  # noqa: BLE001 - an unreadable footer is no such flip
        return False
    wa, wb = writer_of(fa.get(6)), writer_of(fb.get(6))
    return (wa is not None and wb is not None and fa[6] != fb[6] and wb.writes_like(wa)
            and sa == sb and a[:sa] == b[:sb]
            and all(same(fa.get(k), fb.get(k)) for k in set(fa) | set(fb) if k != 6))


def footer_of_bytes(data: bytes) -> tuple[bytes, Struct, int]:
    n = struct.unpack("<I", data[-8:-4])[0]
    start = len(data) - 8 - n
    return data, decode(data[start:-8])[0], start


@pytest.mark.parametrize("table", TABLES)
def test_every_flipped_bit_is_reported(small, tmp_path, table):
    """Given one bit flipped (seeded, stratified: every mark byte, and samples of the footer,
    the page headers and the page data) in a table file, the manifest resealed, when
    checked, then a problem names the file, for every flip: none goes unnoticed, including
    those that change nothing decoded (an empty list's item type, a flag nobody reads), but
    for a flip that makes created_by another version of the same writing."""
    b = copy_bundle(small, tmp_path / "b")
    f = b / f"{table}.parquet"
    orig = f.read_bytes()
    rng = random.Random(f"flip-{table}")
    missed, tried = [], 0
    for kind, positions in regions(f).items():
        for pos in rng.sample(positions, min(SAMPLE[kind], len(positions))):
            bit = rng.randrange(8)
            data = bytearray(orig)
            data[pos] ^= 1 << bit
            f.write_bytes(bytes(data))
            reseal(b, table)
            problems = verify_bundle(b, thorough=True)
            tried += 1
            if not any(f"{table}.parquet" in p for p in problems) and \
                    not another_version_of_the_same_writer(orig, bytes(data)):
                missed.append((kind, pos, bit, problems))
    assert tried >= 50
    assert not missed, missed


# -- edits of each footer field -------------------------------------------------------------------

def put(s: Struct, fid: int, value, wire: int) -> None:
    s[fid] = value
    s.types[fid] = wire


def chunk(fm: Struct, name: bytes, rg: int = 0) -> Struct:
    """The column chunk of a top-level column in row group ``rg``."""
    return next(cc for cc in fm[4][rg][1] if cc[3][3][0] == name)


def _kv(fm: Struct, key: bytes) -> Struct:
    return next(kv for kv in fm[5] if kv[1] == key)


def _extra_kv(fm):
    kv = Struct()
    put(kv, 1, b"x", BINARY)
    put(kv, 2, b"y", BINARY)
    fm[5].append(kv)


def _arrow_schema_nullable_id(fm):
    s = schema_with_metadata("tasks")
    s = s.set(0, s.field(0).with_nullable(True))
    _kv(fm, b"ARROW:schema")[2] = base64.b64encode(s.serialize().to_pybytes())


def _rename(fm):
    for el in fm[2]:
        if el.get(4) == b"status":
            el[4] = b"statux"
    for rg in fm[4]:
        chunk(fm, b"status", fm[4].index(rg))[3][3][0] = b"statux"


def _unknown_stats_field(fm):
    put(chunk(fm, b"status")[3][12], 20, 1, I32)


def _page_index(fm):
    cc = chunk(fm, b"task_id")
    put(cc, 4, 4, I64)
    put(cc, 5, 10, I32)


def _created_at_max(fm):
    st = chunk(fm, b"created_at")[3][12]
    v = struct.unpack("<q", st[5])[0] - 1
    st[5] = st[1] = struct.pack("<q", v)


def _drop_column_order(fm):
    fm[7].pop()


FOOTER_EDITS = {
    "format version in the key-value metadata": (
        lambda fm: _kv(fm, b"aksnap.format_version").__setitem__(
            2, str(FORMAT_VERSION + 1).encode()), "format_version"),
    "an extra key-value pair": (_extra_kv, "unknown key"),
    "ARROW:schema with a nullable task_id": (_arrow_schema_nullable_id, "ARROW:schema"),
    "a renamed column": (_rename, "statu"),
    "created_by of a writer readers treat differently": (
        lambda fm: fm.__setitem__(6, b"parquet-mr version 1.8.0"), "created_by"),
    "one more row in the footer": (lambda fm: fm.__setitem__(3, fm[3] + 1), "rows"),
    "an unknown field in the footer": (lambda fm: put(fm, 100, 7, I32), "does not know"),
    "an unknown field in the statistics": (_unknown_stats_field, "does not know"),
    "a page index the writer never writes": (_page_index, "never writes"),
    "a null count": (lambda fm: chunk(fm, b"status")[3][12].__setitem__(3, 1), "nulls"),
    "a timestamp max one microsecond early": (_created_at_max, "column created_at"),
    "encodings reordered": (lambda fm: chunk(fm, b"task_id")[3][2].reverse(), "encodings"),
    # the ids carry no statistics (issue 21): ones added that lie would prune DuckDB's scans
    "statistics added to an id column": (
        lambda fm: put(chunk(fm, b"task_id")[3], 12, chunk(fm, b"status")[3][12], STRUCT),
        "statistics say"),
    "a min called inexact": (
        lambda fm: chunk(fm, b"status")[3][12].__setitem__(8, False), "inexact"),
    "a distinct count": (lambda fm: put(chunk(fm, b"status")[3][12], 4, 5, I64), "never writes"),
    "a column order dropped": (_drop_column_order, "ColumnOrder"),
    "the row group's size": (lambda fm: fm[4][0].__setitem__(2, fm[4][0][2] + 1), "uncompressed"),
    "a chunk's value count": (
        lambda fm: chunk(fm, b"priority")[3].__setitem__(5, chunk(fm, b"priority")[3][5] - 1),
        "values"),
}


@pytest.mark.parametrize("name", FOOTER_EDITS)
def test_an_edit_of_a_footer_field_is_reported(small, tmp_path, name):
    """Given one field of tasks.parquet's footer edited (re-encoded canonically, the manifest
    resealed), when checked, then check exits 1 with a sentence about that field."""
    edit, words = FOOTER_EDITS[name]
    b = copy_bundle(small, tmp_path / "b")
    _, fm, _ = footer_of(b / "tasks.parquet")
    edit(fm)
    write_footer(b / "tasks.parquet", fm)
    reseal(b, "tasks")
    problems = verify_bundle(b, thorough=True)
    assert any("tasks.parquet" in p and words in p for p in problems), problems
    r = cli("check", b)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output


def test_bytes_hidden_after_the_footer_or_before_it_are_reported(small, tmp_path):
    """Given bytes no structure accounts for (inside the footer's announced length after its
    end; between the last column chunk and the footer), when checked, then each is reported."""
    b = copy_bundle(small, tmp_path / "b")
    f = b / "tasks.parquet"
    _, fm, _ = footer_of(f)
    write_footer(f, fm, junk=b"\x00hidden")
    reseal(b, "tasks")
    assert any("follow the footer's end" in p for p in verify_bundle(b, thorough=True))
    data, _, start = footer_of(f)
    write_footer(f, fm)  # back to a clean footer, then bytes before it
    data, _, start = footer_of(f)
    f.write_bytes(data[:start] + b"hidden" + data[start:])
    reseal(b, "tasks")
    assert any("belong to no column chunk" in p for p in verify_bundle(b, thorough=True))


def _long_field_header(raw: bytes) -> bytes:
    """FileMetaData's first field (version, id 1, i32) with the long field header Thrift
    accepts but never writes (type byte, then the id as a zigzag varint)."""
    assert raw[0] == 0x15
    return b"\x05\x02" + raw[1:]


def _padded_varint(raw: bytes) -> bytes:
    """The version's value (zigzag 4, one byte) padded to two varint bytes: same number."""
    assert raw[:2] == b"\x15\x04"
    return b"\x15\x84\x00" + raw[2:]


@pytest.mark.parametrize("recode", [_long_field_header, _padded_varint])
def test_a_footer_encoded_otherwise_for_the_same_values_is_reported(small, tmp_path, recode):
    """Given tasks.parquet's footer re-encoded with the same values but bytes the writer never
    writes (every reader decodes the same footer), the manifest resealed, when checked, then
    it is reported: the footer's bytes, not only its values, are accounted for."""
    b = copy_bundle(small, tmp_path / "b")
    f = b / "tasks.parquet"
    data, fm, start = footer_of(f)
    raw = recode(data[start:-8])
    assert same(decode(raw)[0], fm)
    f.write_bytes(data[:start] + raw + struct.pack("<I", len(raw)) + b"PAR1")
    reseal(b, "tasks")
    assert pq.ParquetFile(f).metadata.num_rows == 40  # pyarrow reads it as before
    problems = verify_bundle(b, thorough=True)
    assert any("not written the way the writer writes it" in p for p in problems), problems


# -- page headers ---------------------------------------------------------------------------------

def pages_of(data: bytes, md: Struct) -> list[tuple[int, int, Struct]]:
    out, pos = [], md.get(11, md[9])
    while pos < md.get(11, md[9]) + md[7]:
        h, e = decode(data, pos)
        out.append((pos, e, h))
        pos = e + h[3]
    return out


def edit_pages(path: Path, column: bytes, edit) -> None:
    """Re-encode the headers of one column chunk (row group 0) after ``edit(headers)``; each
    header keeps its length, so no offset moves."""
    data, fm, _ = footer_of(path)
    pages = pages_of(data, chunk(fm, column)[3])
    edit([h for _, _, h in pages])
    out = bytearray(data)
    for pos, e, h in pages:
        raw = encode(h)
        assert len(raw) == e - pos, "the edit must keep the header's length"
        out[pos:e] = raw
    path.write_bytes(bytes(out))


def _move_values(hs):
    hs[0][5][1] += 1
    hs[1][5][1] -= 1


def _move_sizes(hs):
    hs[0][2] += 1
    hs[1][2] -= 1


def _page_max(hs):
    st = hs[1][5][5]
    st[5] = st[5][:-1] + b"0"


def _plain_dictionary(hs):
    hs[1][5][2] = 2  # PLAIN_DICTIONARY: read like RLE_DICTIONARY by every reader


def _sorted_dictionary(hs):
    hs[0][7][3] = True


PAGE_EDITS = {
    "values moved from one page to the next": (b"priority", _move_values),
    "uncompressed sizes moved from one page to the next": (b"task_id", _move_sizes),
    "a page's max": (b"status", _page_max),
    "an encoding every reader reads alike": (b"status", _plain_dictionary),
    "a dictionary said sorted": (b"status", _sorted_dictionary),
}


@pytest.mark.parametrize("name", PAGE_EDITS)
def test_an_edit_of_page_headers_is_reported(wide, tmp_path, name):
    """Given page headers of a chunk edited consistently with each other (the chunk's totals
    unchanged, so no single sum betrays them), the manifest resealed, when checked, then the
    edit is reported, even when no reader would decode anything differently."""
    column, edit = PAGE_EDITS[name]
    b = copy_bundle(wide, tmp_path / "b")
    edit_pages(b / "tasks.parquet", column, edit)
    reseal(b, "tasks")
    problems = verify_bundle(b, thorough=True)
    assert any("tasks.parquet" in p for p in problems), problems


# -- item 7: the rows against the counts the manifest records -----------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """Two sessions exported from a frozen simulated cluster: the manifest records each
    session's row counts and the server's counts by status at the end."""
    with SimulatedControlPlane(synthetic_cluster(200, n_sessions=2, seed=3)) as cp:
        s = export(cp.start(), tmp_path_factory.mktemp("exp") / "b", all_sessions=True)
    return s.path


def rewrite(bundle: Path, table: str, data: pa.Table) -> None:
    """Rewrite a table as the bundle writer would (a well-formed file), then reseal."""
    f = bundle / f"{table}.parquet"
    with pq.ParquetWriter(f, schema_with_metadata(table), **parquet_writer_options(table)) as w:
        w.write_table(data.cast(SCHEMAS[table]))
    reseal(bundle, table)


def findings(bundle: Path) -> list[dict]:
    r = cli("check", bundle, "-o", "json")
    assert "Traceback" not in r.output, r.output
    return json.loads(r.output)["anomalies"] if r.output.strip().startswith("{") else []


def test_final_rows_edited_against_the_server_counts_are_reported(exported, tmp_path):
    """Given a bundle whose final rows were edited (3 COMPLETED tasks of one session made
    ERROR, the file rewritten well-formed, checksums recomputed), when checked, then the
    files pass but check reports that the session holds more ERROR tasks than the server
    counted at the end, which a final task never leaves."""
    m = json.loads((exported / MANIFEST).read_text())
    victim = m["sessions"][0]["session_id"]
    assert m["sessions"][0]["server_task_counts_at_end"], "the export records server counts"
    b = copy_bundle(exported, tmp_path / "b")
    t = pq.read_table(b / "tasks.parquet")
    mine = pc.and_(pc.equal(t["session_id"], victim), pc.equal(t["status"], "COMPLETED"))
    idx = pc.indices_nonzero(mine)[:3].to_pylist()
    status = t["status"].to_pylist()
    for i in idx:
        status[i] = "ERROR"
    rewrite(b, "tasks", t.set_column(t.schema.get_field_index("status"), "status",
                                     pa.array(status)))
    assert verify_bundle(b, thorough=True) == []  # the files themselves are well-formed
    got = findings(b)
    hits = [f for f in got if f["kind"] == "server_counts" and f["session_id"] == victim]
    assert hits and "ERROR" in hits[0]["detail"], got
    assert not [f for f in got if f["kind"] == "manifest_counts"], got
    assert cli("check", b).exit_code == 1
    assert findings(exported) == []  # the honest bundle says nothing


def test_rows_moved_between_sessions_contradict_the_manifest(exported, tmp_path):
    """Given one task moved to the other session (rows rewritten, resealed), when checked,
    then both sessions' recorded row counts disagree with their rows, by name."""
    m = json.loads((exported / MANIFEST).read_text())
    a, other = m["sessions"][0]["session_id"], m["sessions"][1]["session_id"]
    b = copy_bundle(exported, tmp_path / "b")
    t = pq.read_table(b / "tasks.parquet")
    sess = t["session_id"].to_pylist()
    sess[sess.index(a)] = other
    rewrite(b, "tasks", t.set_column(t.schema.get_field_index("session_id"), "session_id",
                                     pa.array(sess)))
    got = [(f["kind"], f["session_id"]) for f in findings(b)]
    assert ("manifest_counts", a) in got and ("manifest_counts", other) in got, got
    assert ("server_counts", other) in got, got  # more rows than the server held


def test_per_status_result_counts_are_read_when_recorded(exported, tmp_path):
    """Given a manifest recording the server's counts per session in the form the exporter
    adds (``server_counts: {tasks: {...}, results: {...}}``) with one COMPLETED result fewer
    than the rows hold, when checked, then the results of that session are reported; with the
    counts equal to the rows, nothing is."""
    b = copy_bundle(exported, tmp_path / "b")
    r = pq.read_table(b / "results.parquet")
    m = json.loads((b / MANIFEST).read_text())
    for e in m["sessions"]:
        mine = r.filter(pc.equal(r["session_id"], e["session_id"]))
        counts = {d["values"]: d["counts"] for d in pc.value_counts(mine["status"]).to_pylist()}
        e["server_counts"] = {"tasks": e.pop("server_task_counts_at_end"), "results": counts}
    (b / MANIFEST).write_text(json.dumps(m))
    assert [f for f in findings(b) if f["kind"] == "server_counts"] == []
    m["sessions"][1]["server_counts"]["results"]["COMPLETED"] -= 1
    (b / MANIFEST).write_text(json.dumps(m))
    got = [f for f in findings(b) if f["kind"] == "server_counts"]
    assert {f["session_id"] for f in got} == {m["sessions"][1]["session_id"]}, got
    assert any("COMPLETED or DELETED results" in f["detail"] for f in got), got


def test_an_honest_export_of_a_running_cluster_is_not_flagged(tmp_path):
    """Given a cluster running x20 while it is exported (statuses change, rows are added
    between pages), when the bundle is checked, then the server's counts taken at the end
    contradict nothing: a final status only gains rows, the total only grows."""
    from aksnap.fixtures.scenarios import build_scenario

    sc = build_scenario("htcmock", seed=1, tasks=600)
    with SimulatedControlPlane(sc, at=20.0, realtime=True, speed=20.0,
                               faults=Faults(insert_rows_between_pages=2)) as cp:
        s = export(cp.start(), tmp_path / "b", all_sessions=True, page_size=50)
    assert s.snapshot == "live"
    assert [f for f in findings(s.path) if f["kind"] in ("server_counts", "manifest_counts")] == []
