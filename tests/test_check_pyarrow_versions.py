"""`aksnap check` vouches for bundles of every supported pyarrow writer, not only the running
one (issue 17, item 4, follow-up).

Bundles travel: an exporter pod writes with one pyarrow, a laptop checks with another. Each
bundle of tests/fixtures-pyarrow/ is the same rows written through aksnap's ``BundleWriter``
under one pyarrow (15.0.2, 18.1.0, 20.0.0, 26.0.1: one per range of versions whose Parquet
writer differs; README.md there). Before this, check reported 94 problems on the 15.0.2
bundle (its ``created_by``, its ``ARROW:schema`` bytes, the ColumnChunk copies after the pages
that writers before 18 leave, ...). Each must check clean, and every attack of
tests/test_check_covers_every_byte.py must still be reported on each: the writer's version
decides which fields must be there, never whether a byte is checked.
"""

import base64
import random
import struct
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from aksnap.bundle import (
    DICTIONARY_COLUMNS,
    TABLES,
    parquet_writer_options,
    schema_with_metadata,
    verify_bundle,
)
from aksnap.cli import app
from aksnap.parquet_verify import Model, arrow_schema_problem, verify_file
from aksnap.thrift_compact import BOOL, I16, I64, STRUCT, Struct

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: the sibling helpers
from test_check_covers_every_byte import (  # noqa: E402
    another_version_of_the_same_writer,
    chunk,
    copy_bundle,
    footer_of,
    put,
    regions,
    reseal,
    write_footer,
)

FIXTURES = Path(__file__).parent / "fixtures-pyarrow"
VERSIONS = ["15.0.2", "18.1.0", "20.0.0", "26.0.1"]
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def bundle(request, tmp_path) -> Path:
    """A copy of the fixture of pyarrow ``request.param`` (tests never touch the originals)."""
    return copy_bundle(FIXTURES / f"pyarrow-{request.param}", tmp_path / "b")


def problems_of(b: Path, table: str) -> list[str]:
    return [p for p in verify_bundle(b, thorough=True) if f"{table}.parquet" in p]


def test_the_fixtures_are_what_their_names_say():
    """Given the fixtures, then each was written by the pyarrow its name gives, and each range
    of writers is there: with and without ColumnChunk copies, ordinals, size statistics,
    exactness flags (so that the tests below exercise every variant)."""
    seen = {}
    for v in VERSIONS:
        _, fm, _ = footer_of(FIXTURES / f"pyarrow-{v}" / "tasks.parquet")
        assert fm[6] == f"parquet-cpp-arrow version {v}".encode()
        md = chunk(fm, b"task_id")[3]
        seen[v] = (chunk(fm, b"task_id")[2] != 0, 7 in fm[4][0], 16 in md, 7 in md[12])
    assert seen == {"15.0.2": (True, True, False, False), "18.1.0": (False, True, False, False),
                    "20.0.0": (False, False, True, False), "26.0.1": (False, False, True, True)}


@pytest.mark.parametrize("bundle", VERSIONS, indirect=True)
def test_a_bundle_of_each_supported_writer_checks_clean(bundle):
    """Given an honest bundle written by pyarrow 15.0.2, 18.1.0, 20.0.0 or 26.0.1 (whatever
    pyarrow runs the test), when checked, then check exits 0 with no anomaly and analyze reads
    it."""
    assert verify_bundle(bundle, thorough=True) == []
    r = cli("check", bundle)
    assert r.exit_code == 0, r.output
    assert "anomalies       none" in r.output, r.output
    r = cli("analyze", bundle)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("bundle", VERSIONS, indirect=True)
def test_the_footer_statistics_attack_is_reported_on_each_writer(bundle):
    """Given TIMEOUT replaced by BBBBBBB in tasks.parquet's footer (the status chunk's max),
    the manifest resealed, so that DuckDB skips the row group for status = 'TIMEOUT', when
    checked, then check exits 1 naming the column and both values, whichever pyarrow wrote
    the file."""
    f = bundle / "tasks.parquet"
    data, _, start = footer_of(f)
    assert data[start:].count(b"TIMEOUT") == 1
    f.write_bytes(data[:start] + data[start:].replace(b"TIMEOUT", b"BBBBBBB"))
    reseal(bundle, "tasks")
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{f}') WHERE status = 'TIMEOUT'").fetchall()
    assert n == [(0,)]  # the attack is real
    r = cli("check", bundle)
    assert r.exit_code == 1, r.output
    for words in ("tasks.parquet", "column status", "'BBBBBBB'", "'TIMEOUT'"):
        assert words in r.output, (words, r.output)


SAMPLE = {"marks": 12, "footer": 16, "page header": 8, "page data": 4,
          "column chunk copy": 8}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("table", TABLES)
def test_every_flipped_bit_is_reported_on_each_writer(tmp_path, version, table):
    """Given one bit flipped (seeded, stratified: every mark byte; samples of the footer, the
    page headers, the page data and, for writers before 18, the ColumnChunk copies after the
    pages) in a table file of each writer's fixture, when the file is verified, then a problem
    is reported for every flip, except one that turns created_by into another supported
    parquet-cpp-arrow version of the same writing (no reader treats those apart: see
    docs/bundle-format.md)."""
    src = FIXTURES / f"pyarrow-{version}" / f"{table}.parquet"
    orig = src.read_bytes()
    f = tmp_path / f"{table}.parquet"
    model = Model(schema_with_metadata(table), parquet_writer_options(table),
                  tuple(DICTIONARY_COLUMNS[table]))
    rng = random.Random(f"flip-{version}-{table}")
    missed, tried = [], 0
    for kind, positions in regions(src).items():
        for pos in rng.sample(positions, min(SAMPLE[kind], len(positions))):
            bit = rng.randrange(8)
            data = bytearray(orig)
            data[pos] ^= 1 << bit
            f.write_bytes(bytes(data))
            with open(f, "rb") as fh:
                problems = verify_file(fh.fileno(), str(f), model, f.name)
            tried += 1
            if not problems and not another_version_of_the_same_writer(orig, bytes(data)):
                missed.append((kind, pos, bit))
    assert tried >= 40
    assert not missed, missed


# -- what changed across writers, attacked on the files of each -----------------------------------

def _edit_footer(b: Path, table: str, edit) -> list[str]:
    f = b / f"{table}.parquet"
    _, fm, _ = footer_of(f)
    edit(fm)
    write_footer(f, fm)
    reseal(b, table)
    return problems_of(b, table)


def _claim(version: str):
    return lambda fm: fm.__setitem__(6, f"parquet-cpp-arrow version {version}".encode())


def _add_ordinal(fm):
    for g, rg in enumerate(fm[4]):
        put(rg, 7, g, I16)


def _drop_ordinal(fm):
    for rg in fm[4]:
        rg.pop(7)
        rg.types.pop(7)


def _drop_flags(fm):
    for rg in fm[4]:
        for cc in rg[1]:
            st = cc[3].get(12)
            for fid in (7, 8):
                if st is not None and fid in st:
                    st.pop(fid)
                    st.types.pop(fid)


def _add_flags(fm):
    st = chunk(fm, b"task_id")[3][12]
    put(st, 7, True, BOOL)
    put(st, 8, True, BOOL)


def _add_size_statistics(fm):
    ss = Struct()
    put(ss, 1, 0, I64)
    put(chunk(fm, b"task_id")[3], 16, ss, STRUCT)


def _drop_size_statistics(fm):
    md = chunk(fm, b"priority")[3]
    md.pop(16)
    md.types.pop(16)


def _file_offset(fm):
    cc = chunk(fm, b"status")
    cc[2] += 1


VERSION_EDITS = {
    # (fixture, edit, words of the problem)
    "a pre-15 writer claimed": ("26.0.1", _claim("14.0.2"), "created_by"),
    "parquet-mr claimed": ("18.1.0", lambda fm: fm.__setitem__(6, b"parquet-mr version 1.13.1"),
                           "created_by"),
    "a version with a leading zero": ("26.0.1", _claim("026.0.1"), "created_by"),
    "a build suffix with a space": ("26.0.1", _claim("26.0.1 (build x)"), "created_by"),
    "an older writer claimed on a newer file": ("26.0.1", _claim("18.1.0"), "exact"),
    "a newer writer claimed on an older file": ("15.0.2", _claim("26.0.1"), "ordinal"),
    "an ordinal added where the writer writes none": ("20.0.0", _add_ordinal, "ordinal"),
    "the ordinal dropped where the writer writes it": ("18.1.0", _drop_ordinal, "ordinal"),
    "exactness flags dropped": ("26.0.1", _drop_flags, "exact"),
    "exactness flags added": ("20.0.0", _add_flags, "exact"),
    "size statistics added": ("18.1.0", _add_size_statistics, "size statistics"),
    "size statistics dropped": ("20.0.0", _drop_size_statistics, "size statistics"),
    "a legacy file offset moved": ("15.0.2", _file_offset, "file offset"),
    "a legacy file offset set to 0": (
        "15.0.2", lambda fm: chunk(fm, b"status").__setitem__(2, 0), "file offset"),
    "a file offset on a newer file": ("18.1.0", _file_offset, "file offset"),
}


@pytest.mark.parametrize("name", VERSION_EDITS)
def test_what_a_writer_version_does_not_write_is_reported(tmp_path, name):
    """Given a footer edited so that it no longer is what the writer it names writes (a field
    that version never writes, one it always writes dropped, a writer aksnap does not
    support), the manifest resealed, when checked, then a sentence names the problem: the
    version chooses the writing, it never lets a field go unchecked."""
    version, edit, words = VERSION_EDITS[name]
    b = copy_bundle(FIXTURES / f"pyarrow-{version}", tmp_path / "b")
    problems = _edit_footer(b, "tasks", edit)
    assert any(words in p for p in problems), problems


def test_a_changed_version_digit_of_the_same_writing_is_accepted(tmp_path):
    """Given created_by 26.0.1 changed to 26.0.2 or 23.1.0 (writers that write the same fields),
    when checked, then nothing is reported: no reader treats parquet-cpp-arrow versions apart
    (arrow's ApplicationVersion checks parquet-mr and parquet-cpp < 2.0 only, DuckDB never
    reads created_by), so the digit changes nothing any reader sees."""
    for claimed in ("26.0.2", "23.1.0", "22.0.0-SNAPSHOT"):
        b = copy_bundle(FIXTURES / "pyarrow-26.0.1", tmp_path / claimed)
        assert _edit_footer(b, "tasks", _claim(claimed)) == [], claimed


def test_the_column_chunk_copy_of_an_older_writer_is_checked(tmp_path):
    """Given a 15.0.2 file (its writer leaves a copy of each ColumnChunk after its pages, which
    no reader reads) whose copy of the status chunk says BBBBBBB instead of TIMEOUT, the
    manifest resealed, when checked, then the copy is reported: those bytes are accounted for
    like every other."""
    b = copy_bundle(FIXTURES / "pyarrow-15.0.2", tmp_path / "b")
    f = b / "tasks.parquet"
    data, fm, start = footer_of(f)
    md = chunk(fm, b"status")[3]
    copy = md[11] + md[7]  # after the chunk's pages
    assert chunk(fm, b"status")[2] == copy
    at = data.index(b"TIMEOUT", copy)
    assert at < start  # in the copy, not in the footer
    f.write_bytes(data[:at] + b"BBBBBBB" + data[at + 7:])
    reseal(b, "tasks")
    problems = problems_of(b, "tasks")
    assert any("copy" in p and "column status" in p for p in problems), problems


# -- ARROW:schema: by value, every byte accounted for ---------------------------------------------

def _arrow_schema(fm: Struct) -> Struct:
    return next(kv for kv in fm[5] if kv[1] == b"ARROW:schema")


def test_arrow_schema_is_compared_by_value(tmp_path):
    """Given a 26.0.1 file whose ARROW:schema is the 15.0.2 writer's serialization of the same
    schema (other bytes, same value), when checked, then nothing is reported; the strict
    reading of the same bytes accepts both serializations."""
    _, old, _ = footer_of(FIXTURES / "pyarrow-15.0.2" / "tasks.parquet")
    _, new, _ = footer_of(FIXTURES / "pyarrow-26.0.1" / "tasks.parquet")
    assert _arrow_schema(old)[2] != _arrow_schema(new)[2]
    for fm in (old, new):
        assert arrow_schema_problem(_arrow_schema(fm)[2], schema_with_metadata("tasks")) is None
    b = copy_bundle(FIXTURES / "pyarrow-26.0.1", tmp_path / "b")
    assert _edit_footer(b, "tasks", lambda fm: _arrow_schema(fm).__setitem__(
        2, _arrow_schema(old)[2])) == []


def _raw(fm: Struct) -> bytes:
    return base64.b64decode(_arrow_schema(fm)[2])


def _with_raw(raw: bytes):
    return lambda fm: _arrow_schema(fm).__setitem__(2, base64.b64encode(raw))


def _padding_byte(raw: bytes) -> bytes:
    """A zero byte of the flatbuffer that nothing points at (alignment), set to 1."""
    from aksnap.parquet_verify import _flatbuffer_coverage

    covered = _flatbuffer_coverage(raw[8:])
    pos = next(i for i, c in enumerate(covered) if not c and raw[8 + i] == 0)
    return raw[:8 + pos] + b"\x01" + raw[8 + pos + 1:]


def _nullable_task_id(raw: bytes) -> bytes:
    s = schema_with_metadata("tasks")
    return s.set(0, s.field(0).with_nullable(True)).serialize().to_pybytes()


def _larger_empty_table(raw: bytes) -> bytes:
    """The inline size of a table with no field (its vtable reads ``04 00 04 00``) claimed as 6
    bytes: the next object's 2 bytes become the table's, unread (pyarrow reads it alike)."""
    i = next(i for i in range(8, len(raw) - 4, 2) if raw[i:i + 4] == b"\x04\x00\x04\x00")
    return raw[:i + 2] + b"\x06" + raw[i + 3:]


SCHEMA_EDITS = {
    "an empty table's size grown": (_larger_empty_table, "padding"),
    "bytes after the message": (lambda raw: raw + b"\x00" * 8, "after"),
    "a longer announced length": (
        lambda raw: raw[:4] + struct.pack("<i", len(raw) - 8 + 8) + raw[8:] + b"\x00" * 8,
        "nothing points at"),
    "a padding byte set": (_padding_byte, "nothing points at"),
    "a nullable task_id": (_nullable_task_id, "task_id"),
    "no continuation mark": (lambda raw: raw[4:], "message"),
}


@pytest.mark.parametrize("name", SCHEMA_EDITS)
@pytest.mark.parametrize("version", ["15.0.2", "26.0.1"])
def test_an_arrow_schema_edit_is_reported(tmp_path, version, name):
    """Given tasks.parquet's ARROW:schema edited (bytes hidden after the IPC message or in its
    flatbuffer's padding, which pyarrow ignores; the schema's value changed; the framing
    broken), the manifest resealed, when checked, then a sentence names ARROW:schema."""
    recode, words = SCHEMA_EDITS[name]
    b = copy_bundle(FIXTURES / f"pyarrow-{version}", tmp_path / "b")
    _, fm, _ = footer_of(b / "tasks.parquet")
    raw = recode(_raw(fm))
    try:
        readable = pa.ipc.read_schema(pa.py_buffer(raw)) is not None
    except (pa.ArrowException, ValueError):
        readable = False
    assert readable or name == "no continuation mark"  # pyarrow itself reads most of them
    problems = _edit_footer(b, "tasks", _with_raw(raw))
    assert any("ARROW:schema" in p and words in p for p in problems), problems


def test_a_non_canonical_base64_arrow_schema_is_reported(tmp_path):
    """Given ARROW:schema's base64 with its last character's unused bits set (it decodes to
    the same bytes), when checked, then it is reported."""
    b = copy_bundle(FIXTURES / "pyarrow-26.0.1", tmp_path / "b")
    _, fm, _ = footer_of(b / "tasks.parquet")
    text = _arrow_schema(fm)[2]
    raw = base64.b64decode(text)
    assert len(raw) % 3, "the test needs a partial last group (the tasks schema has one)"
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = text.rstrip(b"=")[-1:]
    bumped = text.rstrip(b"=")[:-1] + alphabet[alphabet.index(last) + 1:][:1]
    bumped += b"=" * (len(text) - len(bumped))
    assert base64.b64decode(bumped) == raw
    problems = _edit_footer(b, "tasks", lambda fm: _arrow_schema(fm).__setitem__(2, bumped))
    assert any("ARROW:schema" in p and "base64" in p for p in problems), problems

