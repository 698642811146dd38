"""Every byte of a Parquet file, accounted for: what ``aksnap check`` proves about a table file.

Page checksums cover page data only. The footer (schema, row groups, column chunk metadata,
statistics, key-value metadata) and the page headers are not covered by anything a reader
checks, and DuckDB skips row groups by the footer's min/max statistics: an edited statistic
is a silently wrong answer (``status = 'TIMEOUT'`` finds nothing). :func:`verify_file`
therefore accounts for every byte of the file:

- the layout: ``PAR1``, the column chunks one after the other with no gap (each followed by
  its ColumnChunk's copy, for writers before 18), the footer, its length, ``PAR1``: no byte
  outside a column chunk, a copy or the footer;
- every Thrift structure (the footer, each page header) is parsed by
  :mod:`aksnap.thrift_compact` and written back canonically: the bytes must come back
  exactly (no hidden, repeated or trailing bytes); every field id must be one listed in
  :data:`SPEC` with its wire type (an unknown field fails closed); a field the bundle writer
  never writes (page index, bloom filters, encryption, sorting columns...) is a problem;
- the writer: ``created_by`` names a supported Parquet writer (parquet-cpp-arrow 15 or later,
  :func:`writer_of`), whichever pyarrow runs the check; its version decides the fields that
  changed across writers (the ColumnChunk copies of writers before 18, ordinals, size
  statistics, exactness flags), each required where that version writes it, a problem
  elsewhere;
- every field is checked: the file-wide fields (format version, schema, key-value metadata
  with aksnap's keys, column orders) against the footer the writer produces for the same
  schema and options (:func:`reference_footer`; the same from every supported writer), and
  ``ARROW:schema`` by value, every byte of its IPC message accounted for
  (:func:`arrow_schema_problem`); sizes,
  offsets, page types, encodings and encoding statistics against the walk of the pages; the
  page CRCs against the page bytes; row and value counts, statistics (min, max, null count
  per page and per column chunk) and size statistics (bytes, level histograms) against the
  values decoded by pyarrow.

What is *not* proven: that the values are the ones the cluster held. Whoever can rewrite
the manifest's checksums can write another valid bundle; ``check`` proves that every reader
(pyarrow, DuckDB with its pruning) reads the same values, and that no byte says otherwise.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aksnap.thrift_compact import (
    BINARY, BOOL, I16, I32, I64, LIST, STRUCT, TYPE_NAMES, List, Struct, ThriftError, decode,
    encode,
)

MAGIC = b"PAR1"
# parquet.thrift's enums (the values aksnap meets)
PLAIN, RLE, DELTA_LENGTH_BYTE_ARRAY, RLE_DICTIONARY = 0, 3, 6, 8
ENCODINGS = {"PLAIN": PLAIN, "DELTA_LENGTH_BYTE_ARRAY": DELTA_LENGTH_BYTE_ARRAY}
DATA_PAGE, DICTIONARY_PAGE = 0, 2
BOOLEAN, INT32, INT64, INT96, FLOAT, DOUBLE, BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY = range(8)
REQUIRED, OPTIONAL, REPEATED = range(3)
CODECS = {"none": 0, "uncompressed": 0, "snappy": 1, "gzip": 2, "brotli": 4, "lz4": 7,
          "zstd": 6}
MAX_FOOTER = 64 << 20
MAX_PROBLEMS = 25  # per file: past this, a count

NEVER = None  # a known field the bundle writer never writes
# struct -> {field id: (name, wire type or NEVER, nested struct or list item struct)}
SPEC: dict[str, dict[int, tuple]] = {
    "FileMetaData": {1: ("version", I32), 2: ("schema", LIST), 3: ("num_rows", I64),
                     4: ("row_groups", LIST, "RowGroup"), 5: ("key_value_metadata", LIST),
                     6: ("created_by", BINARY), 7: ("column_orders", LIST),
                     8: ("encryption_algorithm", NEVER), 9: ("footer_signing_key_metadata", NEVER)},
    "RowGroup": {1: ("columns", LIST, "ColumnChunk"), 2: ("total_byte_size", I64),
                 3: ("num_rows", I64), 4: ("sorting_columns", NEVER), 5: ("file_offset", I64),
                 6: ("total_compressed_size", I64), 7: ("ordinal", I16)},
    "ColumnChunk": {1: ("file_path", NEVER), 2: ("file_offset", I64),
                    3: ("meta_data", STRUCT, "ColumnMetaData"),
                    4: ("offset_index_offset", NEVER), 5: ("offset_index_length", NEVER),
                    6: ("column_index_offset", NEVER), 7: ("column_index_length", NEVER),
                    8: ("crypto_metadata", NEVER), 9: ("encrypted_column_metadata", NEVER)},
    "ColumnMetaData": {1: ("type", I32), 2: ("encodings", LIST), 3: ("path_in_schema", LIST),
                       4: ("codec", I32), 5: ("num_values", I64),
                       6: ("total_uncompressed_size", I64), 7: ("total_compressed_size", I64),
                       8: ("key_value_metadata", NEVER), 9: ("data_page_offset", I64),
                       10: ("index_page_offset", NEVER), 11: ("dictionary_page_offset", I64),
                       12: ("statistics", STRUCT, "Statistics"),
                       13: ("encoding_stats", LIST, "PageEncodingStats"),
                       14: ("bloom_filter_offset", NEVER), 15: ("bloom_filter_length", NEVER),
                       16: ("size_statistics", STRUCT, "SizeStatistics"),
                       17: ("geospatial_statistics", NEVER)},
    "Statistics": {1: ("max", BINARY), 2: ("min", BINARY), 3: ("null_count", I64),
                   4: ("distinct_count", NEVER), 5: ("max_value", BINARY),
                   6: ("min_value", BINARY), 7: ("is_max_value_exact", BOOL),
                   8: ("is_min_value_exact", BOOL)},
    "PageEncodingStats": {1: ("page_type", I32), 2: ("encoding", I32), 3: ("count", I32)},
    "SizeStatistics": {1: ("unencoded_byte_array_data_bytes", I64),
                       2: ("repetition_level_histogram", LIST),
                       3: ("definition_level_histogram", LIST)},
    "PageHeader": {1: ("type", I32), 2: ("uncompressed_page_size", I32),
                   3: ("compressed_page_size", I32), 4: ("crc", I32),
                   5: ("data_page_header", STRUCT, "DataPageHeader"),
                   6: ("index_page_header", NEVER),
                   7: ("dictionary_page_header", STRUCT, "DictionaryPageHeader"),
                   8: ("data_page_header_v2", NEVER)},
    "DataPageHeader": {1: ("num_values", I32), 2: ("encoding", I32),
                       3: ("definition_level_encoding", I32),
                       4: ("repetition_level_encoding", I32),
                       5: ("statistics", STRUCT, "Statistics")},
    "DictionaryPageHeader": {1: ("num_values", I32), 2: ("encoding", I32),
                             3: ("is_sorted", BOOL)},
}
# fields without which a structure means nothing (parquet.thrift's ``required``, plus the
# CRC the bundle writer always writes)
REQUIRED_FIELDS = {
    "FileMetaData": (1, 2, 3, 4), "RowGroup": (1, 2, 3), "ColumnChunk": (2, 3),
    "ColumnMetaData": (1, 2, 3, 4, 5, 6, 7, 9), "PageEncodingStats": (1, 2, 3),
    "PageHeader": (1, 2, 3, 4), "DataPageHeader": (1, 2, 3, 4), "DictionaryPageHeader": (1, 2),
}
# list fields: the wire type of their items
LIST_ITEMS = {("FileMetaData", 2): STRUCT, ("FileMetaData", 4): STRUCT,
              ("FileMetaData", 5): STRUCT, ("FileMetaData", 7): STRUCT,
              ("RowGroup", 1): STRUCT, ("ColumnMetaData", 2): I32, ("ColumnMetaData", 3): BINARY,
              ("ColumnMetaData", 13): STRUCT, ("SizeStatistics", 2): I64,
              ("SizeStatistics", 3): I64}


class _Problems:
    """The problems of one file, each a sentence beginning with the file's name. The same
    problem in many places (a file another writer wrote differs everywhere) is said once,
    where it is first seen, with the count of the other places."""

    def __init__(self, what: str):
        self.what = what
        self.seen: dict[str, list] = {}   # text -> [where, count]
        self.sentences: list[str] = []    # whole sentences of other checks (never capped)

    def add(self, where: str, text: str) -> None:
        entry = self.seen.get(text)
        if entry is not None:
            entry[1] += 1
        elif len(self.seen) < MAX_PROBLEMS:
            self.seen[text] = [where, 0]
        else:
            self.seen.setdefault("", ["", 0])[1] += 1

    def sentence(self, text: str) -> None:
        """A whole sentence of another check (it names the file itself)."""
        self.sentences.append(text)

    def finish(self) -> list[str]:
        out = []
        for text, (where, more) in self.seen.items():
            if not text:
                continue
            also = (f" (and in {more} more place{'s' if more > 1 else ''})" if more else "")
            out.append(f"{self.what}{', ' + where if where else ''}: {text}{also}")
        if "" in self.seen:
            out.append(f"{self.what}: and {self.seen[''][1]} more problems of the same file")
        return out + self.sentences


def _shape(s: Any, kind: str, where: str, out: _Problems) -> bool:
    """``s`` is a ``kind`` struct holding only known fields, each of its wire type, the required
    ones present; nested structs of :data:`SPEC` checked too. False if anything is off."""
    if not isinstance(s, Struct):
        out.add(where, f"the {kind} is not a struct")
        return False
    ok = True
    spec = SPEC[kind]
    for fid, value in s.items():
        known = spec.get(fid)
        if known is None:
            out.add(where, f"the {kind} has field {fid}, which aksnap does not know: it cannot "
                           "vouch for what a reader makes of it")
            ok = False
            continue
        name, wire = known[0], known[1]
        if wire is NEVER:
            out.add(where, f"the {kind} has {name}, which the bundle writer never writes")
            ok = False
            continue
        if s.types[fid] != wire:
            out.add(where, f"the {kind}'s {name} is a {TYPE_NAMES.get(s.types[fid], '?')}, "
                           f"expected a {TYPE_NAMES[wire]}")
            ok = False
            continue
        if wire == LIST:
            item = LIST_ITEMS.get((kind, fid))
            if item is not None and value.etype != item:  # even when empty
                out.add(where, f"the {kind}'s {name} holds {TYPE_NAMES.get(value.etype, '?')} "
                               f"items, expected {TYPE_NAMES[item]}")
                ok = False
                continue
            if len(known) > 2:
                for i, v in enumerate(value):
                    inner = (f"row group {i}" if kind == "FileMetaData" else
                             f"{where}, column chunk {i}" if kind == "RowGroup" else where)
                    ok &= _shape(v, known[2], inner, out)
        elif wire == STRUCT and len(known) > 2:
            ok &= _shape(value, known[2], where, out)
    for fid in REQUIRED_FIELDS.get(kind, ()):
        if fid not in s:
            out.add(where, f"the {kind} has no {spec[fid][0]}")
            ok = False
    return ok


def same(a: Any, b: Any) -> bool:
    """Deep equality of decoded Thrift values, wire types included (``True != 1`` here)."""
    if isinstance(a, Struct) or isinstance(b, Struct):
        return (isinstance(a, Struct) and isinstance(b, Struct) and a.keys() == b.keys()
                and a.types == b.types and all(same(a[k], b[k]) for k in a))
    if isinstance(a, List) or isinstance(b, List):
        return (isinstance(a, List) and isinstance(b, List) and a.etype == b.etype
                and a.kind == b.kind and len(a) == len(b) and all(map(same, a, b)))
    return type(a) is type(b) and a == b


def _show(v: Any, limit: int = 60) -> str:
    """A decoded value, quoted safely for a terminal (no control characters)."""
    if isinstance(v, (Struct, List)):
        text = repr(_plain(v))
    elif isinstance(v, bytes):
        try:
            text = repr(v.decode("utf-8"))
        except UnicodeDecodeError:
            text = repr(v)
    else:
        text = repr(v)
    text = text.encode("ascii", "backslashreplace").decode()
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _plain(v: Any) -> Any:
    if isinstance(v, Struct):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, List):
        return [_plain(x) for x in v]
    return v


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    """Where two decoded values first differ, as ``path: got ..., expected ...``."""
    if same(a, b):
        return None
    if isinstance(a, Struct) and isinstance(b, Struct):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                return f"{path}.{k} is missing (expected {_show(b[k])})"
            if k not in b:
                return f"{path}.{k} is {_show(a[k])}, which the writer does not write there"
            if a.types[k] != b.types[k]:
                return (f"{path}.{k} is a {TYPE_NAMES.get(a.types[k])}, expected a "
                        f"{TYPE_NAMES.get(b.types[k])}")
            d = _first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
    if isinstance(a, List) and isinstance(b, List) and len(a) == len(b) and a.etype == b.etype:
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
    return f"{path} is {_show(a)}, expected {_show(b)}"


def _kv_difference(got: Any, want: Any, arrow_schema: str | None) -> str | None:
    """How the footer's key-value metadata differs from the writer's, by key; ``ARROW:schema``
    is compared by value (``arrow_schema``: what :func:`arrow_schema_problem` says of the
    file's, None when it holds the format's schema), every other value by bytes."""
    if same(got, want):
        return None
    if not (isinstance(got, List) and got.etype == STRUCT
            and all(isinstance(kv, Struct) and set(kv) <= {1, 2} and kv.types.get(1) == BINARY
                    and kv.types.get(2, BINARY) == BINARY for kv in got)):
        return _first_difference(got, want, "key-value metadata")
    g = [(kv[1], kv.get(2)) for kv in got]
    w = [(kv[1], kv.get(2)) for kv in want]
    gk, wk = [k for k, _ in g], [k for k, _ in w]
    for k in gk:
        if k not in wk or gk.count(k) > 1:
            return (f"key-value metadata has {'a repeated' if k in wk else 'an unknown'} key "
                    f"{_show(k)}")
    for k in wk:
        if k not in gk:
            return f"key-value metadata has no {_show(k)}"
    gd, wd = dict(g), dict(w)
    for k in wk:
        if k == b"ARROW:schema":
            if arrow_schema is not None:
                return f"key-value metadata ARROW:schema {arrow_schema}"
        elif gd[k] != wd[k]:
            return (f"key-value metadata {_show(k)} is {_show(gd[k])}, expected "
                    f"{_show(wd[k])}")
    if gk != wk:
        return f"key-value metadata lists its keys in the order {gk}, expected {wk}"
    return None


def _schema_difference(schema: pa.Schema, ref: pa.Schema) -> str:
    for f in ref:
        if f.name not in schema.names:
            return f"has no field {f.name}"
        g = schema.field(f.name)
        if not g.equals(f, check_metadata=True):
            return f"describes field {f.name} as {_show(str(g), 120)}, expected {f}"
    extra = [n for n in schema.names if n not in ref.names]
    if extra:
        return f"has an unknown field {_show(extra[0])}"
    return "differs from the format's (field order or metadata)"


# -- ARROW:schema: by value, every byte accounted for -------------------------------------------
#
# pyarrow decodes a table file's columns with the Arrow schema stored base64-encoded under
# ``ARROW:schema``: an Arrow IPC schema message (a continuation mark, a length, a flatbuffer).
# Writers lay the same schema out differently (parquet-cpp-arrow 15 and 16 order a key-value's
# strings otherwise than 17 and later), so the schema is compared by value; and, because
# pyarrow ignores bytes after the message and bytes of the flatbuffer nothing points at, the
# message is read here with every byte accounted for: its framing exact, every byte of the
# flatbuffer either part of a table, vector or string that Arrow's Message.fbs and Schema.fbs
# define, or zero (alignment), and no field a schema message does not hold.

# Flatbuffer tables a schema message holds, their fields in slot order: a scalar's size, "str",
# "table:X", "tables:X" (a vector of tables), "longs" (a vector of int64), "union:U" (a union's
# value; its type is the slot before, a u8).
_FB_TABLES: dict[str, tuple[Any, ...]] = {
    "Message": (2, 1, "union:MessageHeader", 8, "tables:KeyValue"),
    "Schema": (2, "tables:Field", "tables:KeyValue", "longs"),
    "Field": ("str", 1, 1, "union:Type", "table:DictionaryEncoding", "tables:Field",
              "tables:KeyValue"),
    "KeyValue": ("str", "str"),
    "DictionaryEncoding": (8, "table:Int", 1, 2),
    "Int": (4, 1), "FloatingPoint": (2,), "Decimal": (4, 4, 4), "Date": (2,), "Time": (2, 4),
    "Timestamp": (2, "str"), "Interval": (2,), "FixedSizeBinary": (4,), "FixedSizeList": (4,),
    "Map": (1,), "Duration": (2,), "Empty": (),
}
_FB_UNIONS = {
    "MessageHeader": {1: "Schema"},
    # Null, Int, FloatingPoint, Binary, Utf8, Bool, Decimal, Date, Time, Timestamp, Interval,
    # List, Struct_, (Union: not here), FixedSizeBinary, FixedSizeList, Map, Duration,
    # LargeBinary, LargeUtf8, LargeList
    "Type": {1: "Empty", 2: "Int", 3: "FloatingPoint", 4: "Empty", 5: "Empty", 6: "Empty",
             7: "Decimal", 8: "Date", 9: "Time", 10: "Timestamp", 11: "Interval", 12: "Empty",
             13: "Empty", 15: "FixedSizeBinary", 16: "FixedSizeList", 17: "Map", 18: "Duration",
             19: "Empty", 20: "Empty", 21: "Empty"},
}
_METADATA_V5 = 4


class _FlatbufferError(ValueError):
    pass


class _Flatbuffer:
    """Walks an Arrow schema message's flatbuffer from its root, marking each byte it reads."""

    def __init__(self, buf: bytes):
        self.buf = buf
        self.covered = bytearray(len(buf))
        self.tables = 0
        #: (start, end) of the alignment padding tables claim after their last field
        self.padding: list[tuple[int, int]] = []

    def take(self, pos: int, n: int) -> int:
        if pos < 0 or n < 0 or pos + n > len(self.buf):
            raise _FlatbufferError("points outside its message")
        self.covered[pos:pos + n] = b"\x01" * n
        return int.from_bytes(self.buf[pos:pos + n], "little", signed=n in (2, 4, 8))

    def target(self, pos: int) -> int:
        """The position an unsigned offset at ``pos`` points at (always further on)."""
        off = self.take(pos, 4) & 0xFFFFFFFF
        if off == 0:
            raise _FlatbufferError("holds an offset of 0")
        return pos + off

    def vector(self, pos: int, width: int) -> tuple[int, int]:
        at = self.target(pos)
        n = self.take(at, 4) & 0xFFFFFFFF
        self.take(at + 4, n * width)
        return at + 4, n

    def table(self, pos: int, name: str, depth: int = 0) -> dict[int, Any]:
        self.tables += 1
        if depth > 64 or self.tables > 100_000:
            raise _FlatbufferError("is nested too deeply")
        vt = pos - self.take(pos, 4)
        vsize, tsize = self.take(vt, 2), self.take(vt + 2, 2)
        if vsize < 4 or vsize % 2 or tsize < 4:
            raise _FlatbufferError(f"has a malformed {name} table")
        self.take(vt + 4, vsize - 4)
        kinds = _FB_TABLES[name]
        out: dict[int, Any] = {}
        # the table's size is where its last field ends (a builder writes nothing after it):
        # a size claiming more would hide bytes no field accounts for
        end = 4
        for i in range(min((vsize - 4) // 2, len(kinds))):
            off = int.from_bytes(self.buf[vt + 4 + 2 * i:vt + 6 + 2 * i], "little")
            if off:
                end = max(end, off + (kinds[i] if isinstance(kinds[i], int) else 4))
        if not end <= tsize < end + 8:
            raise _FlatbufferError(f"has a {name} table of {tsize} bytes whose fields end at "
                                   f"byte {end}")
        if tsize > end:  # alignment padding inside the table: zeros that nothing else is
            self.padding.append((pos + end, pos + tsize))
        for i in range((vsize - 4) // 2):
            off = int.from_bytes(self.buf[vt + 4 + 2 * i:vt + 6 + 2 * i], "little")
            if not off:
                continue
            if i >= len(kinds):
                raise _FlatbufferError(f"has a {name} field {i}, which Arrow's schema messages "
                                       "do not hold")
            kind, at = kinds[i], pos + off
            if off + (kind if isinstance(kind, int) else 4) > tsize:
                raise _FlatbufferError(f"has a {name} field outside its table")
            if isinstance(kind, int):
                out[i] = self.take(at, kind)
            elif kind == "str":
                start, n = self.vector(at, 1)
                if self.take(start + n, 1) != 0:
                    raise _FlatbufferError("has a string without its terminating zero")
                out[i] = self.buf[start:start + n]
            elif kind == "longs":
                start, n = self.vector(at, 8)
                out[i] = [int.from_bytes(self.buf[start + 8 * j:start + 8 * j + 8], "little",
                                         signed=True) for j in range(n)]
            elif kind.startswith("table:"):
                out[i] = self.table(self.target(at), kind[6:], depth + 1)
            elif kind.startswith("tables:"):
                start, n = self.vector(at, 4)
                out[i] = [self.table(self.target(start + 4 * j), kind[7:], depth + 1)
                          for j in range(n)]
            else:  # a union: its type is the previous slot
                member = _FB_UNIONS[kind[6:]].get(out.get(i - 1, 0))
                if member is None:
                    raise _FlatbufferError(f"holds a {kind[6:]} of kind {out.get(i - 1, 0)}, "
                                           "which aksnap does not know")
                out[i] = self.table(self.target(at), member, depth + 1)
        return out


def _flatbuffer_coverage(buf: bytes) -> bytearray:
    """Which bytes of a schema message's flatbuffer the walk from its root reads (for tests)."""
    fb = _Flatbuffer(buf)
    fb.table(fb.target(0), "Message")
    return fb.covered


def _ipc_schema(raw: bytes) -> tuple[str | None, dict[int, Any]]:
    """What is wrong with ``raw`` as one Arrow IPC schema message (None when nothing), and the
    values its flatbuffer holds, by table and slot, whatever their layout."""
    if len(raw) < 8 or raw[:4] != b"\xff\xff\xff\xff":
        return "is not an Arrow IPC message (no continuation mark)", {}
    n = int.from_bytes(raw[4:8], "little", signed=True)
    if n <= 0 or n % 8 or 8 + n > len(raw):
        return f"announces a message of {n} bytes in {len(raw) - 8}", {}
    if len(raw) != 8 + n:
        return f"has {len(raw) - 8 - n} bytes after its message, which pyarrow ignores", {}
    fb = _Flatbuffer(raw[8:])
    try:
        tree = fb.table(fb.target(0), "Message")
    except _FlatbufferError as e:
        return f"is not a well-formed schema message: it {e}", {}
    for a, b in fb.padding:  # a table's padding is its own: zeros, read by nothing else
        if any(fb.buf[a:b]) or any(fb.covered[a:b]):
            return (f"has a table claiming bytes {a + 8} to {b + 8} as its padding, which hold "
                    "something else"), tree
    # bytes nothing points at: alignment, zeros, fewer than 8 in a row (flatbuffers align to
    # 8 bytes at most)
    for run in re.finditer(rb"\x00+", bytes(fb.covered)):
        a, b = run.span()
        if b - a >= 8 or any(fb.buf[a:b]):
            return (f"has bytes that nothing points at (bytes {a + 8} to {b + 8}), which "
                    "pyarrow ignores"), tree
    return None, tree


@lru_cache(maxsize=16)
def _format_tree(schema_bytes: bytes) -> dict[int, Any]:
    return _ipc_schema(schema_bytes)[1]


def _tree_difference(got: Any, want: Any, path: str) -> str:
    if isinstance(got, dict) and isinstance(want, dict):
        for k in sorted(set(got) | set(want)):
            if got.get(k) != want.get(k):
                return _tree_difference(got.get(k), want.get(k), f"{path}.{k}")
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for i, (x, y) in enumerate(zip(got, want)):
            if x != y:
                return _tree_difference(x, y, f"{path}[{i}]")
    return f"{path} is {_show(got)}, expected {_show(want)}"


def arrow_schema_problem(value: Any, schema: pa.Schema) -> str | None:
    """What is wrong with a table file's ``ARROW:schema`` value, as the end of a sentence; None
    when it is the canonical base64 of one Arrow schema message, every byte accounted for,
    whose flatbuffer holds the values of ``schema``'s (the format's, with its metadata). The
    layout is not compared: each pyarrow lays the same schema out its own way."""
    if not isinstance(value, bytes):
        return "has no value"
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "is not base64"
    if base64.b64encode(raw) != value:
        return "is not base64 as writers write it (padding or unused bits)"
    problem, tree = _ipc_schema(raw)
    if problem:
        return problem
    want = _format_tree(schema.serialize().to_pybytes())
    if tree == want:
        return None
    try:
        got = pa.ipc.read_schema(pa.py_buffer(raw))
        if not got.equals(schema, check_metadata=True):
            return _schema_difference(got, schema)
    except (OSError, pa.ArrowException, ValueError) as e:  # names that are not UTF-8 too
        return f"is not a readable Arrow schema ({_first_line(e)})"
    return ("holds the format's schema as pyarrow reads it, but a value pyarrow does not read "
            f"differs ({_tree_difference(tree, want, 'message')})")


# -- the writer's model ------------------------------------------------------------------------

@lru_cache(maxsize=16)
def _reference(schema_bytes: bytes, options: tuple) -> Struct:
    schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))
    sink = io.BytesIO()
    pq.ParquetWriter(sink, schema, **{k: dict(v) if k == "column_encoding" else v
                                      for k, v in options}).close()
    data = sink.getvalue()
    n = struct.unpack("<I", data[-8:-4])[0]
    return decode(data[-8 - n:-8])[0]


def reference_footer(schema: pa.Schema, options: dict[str, Any]) -> Struct:
    """The footer the running pyarrow writes for ``schema`` with ``options`` and no rows: what
    every file-wide field of a table file must be (schema, key-value metadata, version...)."""
    opts = tuple(sorted((k, tuple(sorted(v.items())) if isinstance(v, dict) else
                         tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    return _reference(schema.serialize().to_pybytes(), opts)


@dataclass
class Leaf:
    """One leaf column of the Parquet schema, as the footer's schema describes it."""

    path: tuple[bytes, ...]
    physical: int
    max_def: int
    max_rep: int


def schema_leaves(elements: List) -> list[Leaf]:
    """The leaf columns of a flattened Parquet schema (depth first, as column chunks go)."""
    leaves: list[Leaf] = []

    def walk(i: int, path: tuple, d: int, r: int) -> int:
        el = elements[i]
        rep = el.get(3, REQUIRED) if i else REQUIRED
        d, r = d + (rep != REQUIRED), r + (rep == REPEATED)
        here = path + (el[4],) if i else path
        n = el.get(5, 0)
        i += 1
        if not n:
            leaves.append(Leaf(here, el.get(1, -1), d, r))
            return i
        for _ in range(n):
            i = walk(i, here, d, r)
        return i

    walk(0, (), 0, 0)
    return leaves


# -- the values: each leaf column, level by level --------------------------------------------------

@dataclass
class Slots:
    """A leaf column of a decoded row group, seen level by level (a Parquet page holds a run
    of levels): ``values`` are the leaf values that levels hold, in order; ``present`` counts,
    before each level, the levels that hold one (None when every level does: a flat column);
    and how many levels have each definition and repetition level (the size statistics)."""

    values: pa.Array
    present: np.ndarray | None
    def_hist: list[int]
    rep_hist: list[int]
    max_def: int
    max_rep: int

    @property
    def levels(self) -> int:
        return len(self.values) if self.present is None else len(self.present) - 1

    def stats(self, start: int = 0, stop: int | None = None) -> "Raw":
        """Min, max and null count of levels ``start`` to ``stop``."""
        stop = self.levels if stop is None else stop
        if self.present is None:
            v, absent = self.values.slice(start, stop - start), 0
        else:
            a, b = int(self.present[start]), int(self.present[stop])
            v, absent = self.values.slice(a, b - a), (stop - start) - (b - a)
        nulls = absent + v.null_count
        if v.null_count == len(v):
            return None, None, nulls
        mm = pc.min_max(_comparable(v))
        return mm["min"].as_py(), mm["max"].as_py(), nulls


def _hist(levels: np.ndarray, top: int) -> list[int]:
    return np.bincount(levels, minlength=top + 1).tolist() if top else []


# Arrays cross between numpy and Arrow through their buffers: ``pa.array`` and
# ``to_numpy(zero_copy_only=False)`` import pandas when it is installed (most of a second).

def _valid(arr: pa.Array) -> np.ndarray:
    """The validity of ``arr``'s slots as booleans."""
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    bits = np.frombuffer(arr.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little")[arr.offset:arr.offset + len(arr)].astype(bool)


def _offsets(arr: pa.Array) -> np.ndarray:
    """A list or map array's offsets (absolute positions in its values), as int64."""
    wide = pa.types.is_large_list(arr.type)
    raw = np.frombuffer(arr.buffers()[1], dtype=np.int64 if wide else np.int32)
    return raw[arr.offset:arr.offset + len(arr) + 1].astype(np.int64)


def _indices(idx: np.ndarray) -> pa.Array:
    """``idx`` as an Arrow int64 array, null where negative (for ``take``)."""
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    absent = idx < 0
    n_absent = int(absent.sum())
    validity = pa.py_buffer(np.packbits(~absent, bitorder="little")) if n_absent else None
    return pa.Array.from_buffers(pa.int64(), len(idx), [validity, pa.py_buffer(idx)],
                                 null_count=n_absent)


def _expand(idx: np.ndarray, d: np.ndarray, r: np.ndarray, offsets: np.ndarray, rep: int):
    """One repeated level: each slot pointing at a (present) list becomes one slot per item,
    an empty or absent list stays one absent slot."""
    present = idx >= 0
    safe = np.where(present, idx, 0)
    lens = np.where(present, offsets[safe + 1] - offsets[safe], 0)
    counts = np.maximum(lens, 1)
    total = int(counts.sum())
    first = np.zeros(total, dtype=bool)
    starts = np.cumsum(counts) - counts
    first[starts] = True
    within = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
    new_idx = np.where(np.repeat(lens > 0, counts), np.repeat(offsets[safe], counts) + within, -1)
    new_d = np.repeat(d + (lens > 0), counts)
    new_r = np.where(first, np.repeat(r, counts), rep)
    return new_idx, new_d, new_r


def leaf_slots(column: pa.ChunkedArray | pa.Array, nullable: bool) -> Iterator[Slots]:
    """The leaves of one top-level column, depth first (Parquet's column chunk order)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    t = arr.type
    if not (pa.types.is_struct(t) or pa.types.is_map(t) or pa.types.is_list(t)
            or pa.types.is_large_list(t)):
        # a flat column: its levels are its rows (the common case, without level arrays)
        nulls = arr.null_count
        yield Slots(arr, None, [nulls, n - nulls] if nullable else [], [], int(nullable), 0)
        return
    yield from _walk(arr, nullable, np.arange(n, dtype=np.int64), np.zeros(n, np.int16),
                     np.zeros(n, np.int16), 0, 0)


def _walk(arr: pa.Array, nullable: bool, idx, d, r, max_def: int,
          max_rep: int) -> Iterator[Slots]:
    t = arr.type
    if nullable:
        max_def += 1
        if arr.null_count:
            ok = (idx >= 0) & _valid(arr)[np.where(idx >= 0, idx, 0)]
            idx = np.where(ok, idx, -1)
        else:
            ok = idx >= 0
        d = d + ok
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from _walk(arr.field(i), t.field(i).nullable, idx, d, r, max_def, max_rep)
        return
    if pa.types.is_map(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        offsets = _offsets(arr)
        idx, d, r = _expand(idx, d, r, offsets, max_rep + 1)
        max_def, max_rep = max_def + 1, max_rep + 1
        if pa.types.is_map(t):
            entries = arr.values  # absolute positions, like the offsets
            for i, f in enumerate((t.key_field, t.item_field)):
                yield from _walk(entries.field(i), f.nullable, idx, d, r, max_def, max_rep)
        else:
            yield from _walk(arr.values, t.value_field.nullable, idx, d, r, max_def, max_rep)
        return
    held = idx >= 0
    positions = idx[held]
    present = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(held, out=present[1:])
    if len(positions) and (positions[-1] - positions[0] + 1 != len(positions)
                           or (np.diff(positions) != 1).any()):
        # the held values are not one run of the child (a null list spanning values): copy
        values = arr.take(_indices(positions))
    else:
        values = arr.slice(int(positions[0]) if len(positions) else 0, len(positions))
    yield Slots(values, present, _hist(d, max_def), _hist(r, max_rep), max_def, max_rep)


# -- statistics ----------------------------------------------------------------------------------

def _plain_bytes(v: Any, physical: int) -> bytes:
    """A min or max as Parquet's statistics store it (plain encoding of the physical type)."""
    if physical == BOOLEAN:
        return b"\x01" if v else b"\x00"
    if physical == INT32:
        return struct.pack("<i", v)
    if physical == INT64:
        return struct.pack("<q", v)
    if isinstance(v, str):
        return v.encode("utf-8")
    return bytes(v)


def _comparable(values: pa.Array) -> pa.Array:
    t = values.type
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_date(t) \
            or pa.types.is_time(t):
        return values.view(pa.int64()) if t.bit_width == 64 else values.view(pa.int32())
    if pa.types.is_dictionary(t):
        return _comparable(values.dictionary_decode())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return values.view(pa.binary() if pa.types.is_string(t) else pa.large_binary())
    return values


Raw = tuple  # (smallest value, largest value, null count): None, None when every value is null


def _merge_stats(parts: list[Raw]) -> Raw:
    """The statistics of pages put together: those of their column chunk."""
    los = [p[0] for p in parts if p[0] is not None]
    his = [p[1] for p in parts if p[1] is not None]
    return (min(los) if los else None, max(his) if his else None, sum(p[2] for p in parts))


def _check_statistics(stats: Struct, raw: Raw, physical: int, where: str,
                      whose: str, w: Writer, out: _Problems) -> None:
    lo, hi, nulls = raw
    lo = None if lo is None else _plain_bytes(lo, physical)
    hi = None if hi is None else _plain_bytes(hi, physical)
    if 3 in stats and stats[3] != nulls:
        out.add(where, f"the {whose} statistics count {stats[3]} nulls, but the values hold "
                       f"{nulls}")
    for fid, flag, want, name in ((6, 8, lo, "min"), (5, 7, hi, "max")):
        got = stats.get(fid)
        if got is None:
            if flag in stats:
                out.add(where, f"the {whose} statistics say whether a {name} is exact but "
                               f"hold no {name}")
            continue
        if want is None:
            out.add(where, f"the {whose} statistics say {name} {_show_value(got, physical)}, "
                           "but every value is null")
        elif got != want:
            out.add(where, f"the {whose} statistics say {name} {_show_value(got, physical)}, "
                           f"but the {'smallest' if name == 'min' else 'largest'} value is "
                           f"{_show_value(want, physical)}")
        if w.exactness and stats.get(flag) is not True:
            said = (f"call their {name} inexact" if flag in stats else
                    f"do not say whether their {name} is exact")
            out.add(where, f"the {whose} statistics {said}; parquet-cpp-arrow {w.major} writes "
                           "exact ones, and says so")
        elif not w.exactness and flag in stats:
            out.add(where, f"the {whose} statistics say whether their {name} is exact, which "
                           f"parquet-cpp-arrow {w.major} does not write")
    for fid, name, new in ((2, "min", 6), (1, "max", 5)):  # the deprecated pair
        if fid in stats:
            if physical == BYTE_ARRAY:
                out.add(where, f"the {whose} statistics hold a deprecated {name} for a byte "
                               "array column, which the writer never writes (readers order "
                               "it differently)")
            elif stats[fid] != stats.get(new):
                out.add(where, f"the {whose} statistics' deprecated {name} "
                               f"{_show_value(stats[fid], physical)} differs from their "
                               f"{name} {_show_value(stats.get(new), physical)}")


def _show_value(b: bytes | None, physical: int) -> str:
    if b is None:
        return "none"
    if physical == INT32 and len(b) == 4:
        return str(struct.unpack("<i", b)[0])
    if physical == INT64 and len(b) == 8:
        return str(struct.unpack("<q", b)[0])
    if physical == BOOLEAN and len(b) == 1 and b in (b"\x00", b"\x01"):
        return "true" if b == b"\x01" else "false"
    return _show(b, 50)


def _check_size_statistics(ss: Struct, slots: Slots, physical: int, where: str,
                           out: _Problems) -> None:
    if 1 in ss:
        if physical != BYTE_ARRAY:
            out.add(where, "the size statistics count byte-array bytes in a column that holds "
                           "no byte arrays")
        else:
            v = slots.values
            n = pc.sum(pc.binary_length(v.dictionary_decode() if pa.types.is_dictionary(v.type)
                                        else v)).as_py() or 0
            if ss[1] != n:
                out.add(where, f"the size statistics say {ss[1]} bytes of values, but the "
                               f"values hold {n}")
    for fid, want, name in ((2, slots.rep_hist, "repetition"),
                            (3, slots.def_hist, "definition")):
        if fid not in ss:
            continue
        if list(ss[fid]) != want:
            out.add(where, f"the size statistics' {name} level histogram is "
                           f"{_show(ss[fid], 40)}, but the levels give {_show(want, 40)}")


# -- pages ---------------------------------------------------------------------------------------

@dataclass
class Page:
    offset: int
    header_size: int
    header: Struct

    @property
    def kind(self) -> int:
        return self.header.get(1, -1)

    @property
    def num_values(self) -> int:
        sub = self.header.get(5) if self.kind == DATA_PAGE else self.header.get(7)
        return sub.get(1, 0) if isinstance(sub, Struct) else 0


def _walk_pages(buf: bytes, start: int, where: str, out: _Problems) -> list[Page] | None:
    """The pages of one column chunk (its bytes ``buf`` begin at file offset ``start``):
    every header canonical and of known fields, every page's CRC right, the pages filling
    the chunk exactly. None if the walk could not finish."""
    pages: list[Page] = []
    pos, n = 0, len(buf)
    view = memoryview(buf)
    while pos < n:
        at = f"{where}, page {len(pages)}"
        try:
            h, end = decode(view, pos)
        except ThriftError as e:
            out.add(at, f"the page header at byte {start + pos} is not readable: it {e}")
            return None
        if encode(h) != buf[pos:end]:
            out.add(at, f"the page header at byte {start + pos} is not written the way the "
                        "writer writes it (extra, repeated or reordered bytes)")
            return None
        if not _shape(h, "PageHeader", at, out):
            return None
        size = h[3]
        if size < 0 or end + size > n or h[2] < 0:
            out.add(at, f"the page header at byte {start + pos} announces {size} bytes, beyond "
                        "its column chunk")
            return None
        crc = zlib.crc32(view[end:end + size])
        crc = crc - (1 << 32) if crc >= 1 << 31 else crc
        if h[4] != crc:
            out.add(at, f"the page at byte {start + pos} is corrupt: it fails its CRC (header "
                        f"{h[4]}, data {crc})")
        pages.append(Page(start + pos, end - pos, h))
        pos = end + size
    return pages


def _check_pages(pages: list[Page], md: Struct, dictionary: bool, where: str,
                 out: _Problems, encoded: tuple[int, ...] = ()) -> bool:
    """Page types, encodings and counts against the chunk's metadata and the writer's model:
    with ``dictionary``, one dictionary page first, then dictionary-encoded data pages, then
    (after a fallback) plain ones; else plain data pages only, or for a column the writer
    encodes otherwise (``encoded``: the GUID columns' encoding), pages of that encoding only
    (plain ones too: the writers before it)."""
    ok = True
    data_enc: list[int] = []
    for i, p in enumerate(pages):
        at = f"{where}, page {i}"
        h = p.header
        want = DICTIONARY_PAGE if dictionary and i == 0 else DATA_PAGE
        if p.kind != want:
            out.add(at, f"the page is of type {p.kind}, expected "
                        f"{'a dictionary page' if want == DICTIONARY_PAGE else 'a data page (v1)'}")
            ok = False
            continue
        sub_id, other = (7, 5) if want == DICTIONARY_PAGE else (5, 7)
        if sub_id not in h or other in h:
            out.add(at, "the page header does not describe its page type")
            ok = False
            continue
        sub = h[sub_id]
        if sub[1] < 0:
            out.add(at, f"the page holds {sub[1]} values")
            ok = False
        if want == DICTIONARY_PAGE:
            if sub[2] != PLAIN or sub.get(3, False) is not False:
                out.add(at, f"the dictionary page says encoding {sub[2]}"
                            f"{', sorted' if sub.get(3) else ''}; the writer writes plain, "
                            "unsorted dictionaries")
            continue
        enc = sub[2]
        allowed = (RLE_DICTIONARY, PLAIN) if dictionary else (PLAIN, *encoded)
        if enc not in allowed or (data_enc and data_enc[-1] == PLAIN and enc != PLAIN) \
                or (encoded and data_enc and enc != data_enc[-1]):
            out.add(at, f"the data page says encoding {enc}, which the writer does not use "
                        "there")
            ok = False
        if sub[3] != RLE or sub[4] != RLE:
            out.add(at, f"the data page says level encodings {sub[3]} and {sub[4]}; the "
                        "writer writes RLE (3)")
            ok = False
        data_enc.append(enc)
    if dictionary and len(pages) > 0 and (len(pages) < 2 or data_enc[:1] != [RLE_DICTIONARY]):
        out.add(where, "the dictionary page is not followed by dictionary-encoded pages")
        ok = False
    if not data_enc and pages:
        out.add(where, "the column chunk has no data page")
        ok = False
    # what the chunk's metadata must say about them
    total_c = sum(p.header_size + p.header[3] for p in pages)
    total_u = sum(p.header_size + p.header[2] for p in pages)
    if md[6] != total_u:
        out.add(where, f"the column chunk says {md[6]} bytes uncompressed, but its pages add "
                       f"up to {total_u}")
    if md[7] != total_c:  # the walk covered md[7] bytes; kept for clarity
        out.add(where, f"the column chunk says {md[7]} bytes, but its pages add up to {total_c}")
    n_values = sum(p.num_values for p in pages if p.kind == DATA_PAGE)
    if md[5] != n_values:
        out.add(where, f"the column chunk says {md[5]} values, but its pages hold {n_values}")
        ok = False
    first_data = next((p.offset for p in pages if p.kind == DATA_PAGE), None)
    if first_data is not None and md[9] != first_data:
        out.add(where, f"the column chunk says its first data page is at byte {md[9]}, but it "
                       f"is at byte {first_data}")
    has_dict = bool(pages) and pages[0].kind == DICTIONARY_PAGE
    if (11 in md) != has_dict or (has_dict and md[11] != pages[0].offset):
        out.add(where, f"the column chunk's dictionary page offset {md.get(11, 'none')} does "
                       "not match its pages")
    # encodings: dictionary page's, then RLE (levels), then data pages' in enum order; the
    # encoding statistics: dictionary page first, then data pages by encoding
    encodings: list[int] = []
    for e in ([PLAIN] if has_dict else []) + [RLE] + sorted(set(data_enc)):
        if e not in encodings:
            encodings.append(e)
    if list(md[2]) != encodings:
        out.add(where, f"the column chunk lists encodings {list(md[2])}, but its pages use "
                       f"{encodings}")
    if 13 in md:
        want = ([(DICTIONARY_PAGE, PLAIN, 1)] if has_dict else []) + [
            (DATA_PAGE, e, data_enc.count(e)) for e in sorted(set(data_enc))]
        got = [(s.get(1), s.get(2), s.get(3)) for s in md[13]]
        if got != want:
            out.add(where, f"the column chunk's encoding statistics say {got}, but its pages "
                           f"give {want}")
    return ok


# -- the file --------------------------------------------------------------------------------------

@dataclass
class Model:
    """What the writer makes of one table: its Arrow schema (with the format's key-value
    metadata), the writer options, and which columns it dictionary-encodes."""

    schema: pa.Schema
    options: dict[str, Any]
    dictionary_columns: tuple[str, ...] = ()
    codec: int = field(init=False)

    #: leaf path -> the encoding the writer gives it (its ``column_encoding``)
    encoded: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.codec = CODECS[str(self.options.get("compression", "snappy")).lower()]
        self.encoded = {path: ENCODINGS[enc] for path, enc in
                        (self.options.get("column_encoding") or {}).items()}


def _read_exact(fd: int, n: int, offset: int) -> bytes:
    parts, got = [], 0
    while got < n:
        b = os.pread(fd, min(n - got, 64 << 20), offset + got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


# -- the writers ----------------------------------------------------------------------------------
#
# Bundles travel between machines: every parquet-cpp-arrow writer from 15 on (pyproject allows
# pyarrow >= 15) writes a bundle check must vouch for. What they write differs in a few places,
# each tied here to the versions that write it (arrow's git history, checked on the bundles of
# tests/fixtures-pyarrow/, written by 15.0.2, 18.1.0, 20.0.0 and 26.0.1):
OLDEST_WRITER = 15
CHUNK_COPY_BEFORE = 18      # GH-43427: before 18.0.0, a copy of each ColumnChunk follows its
#                             pages and ColumnChunk.file_offset points at it; from 18, 0
ORDINAL_BEFORE = 20         # GH-44042: before 20.0.0, RowGroup.ordinal; from 20, none
SIZE_STATISTICS_FROM = 20   # GH-45227: from 20.0.0, ColumnMetaData.size_statistics
EXACTNESS_FROM = 22         # GH-46905: from 22.0.0, is_{min,max}_value_exact (true) with a min
#                             or max, in the column chunks' and the pages' statistics
# A version's digits change nothing else a reader sees: arrow's reader (ApplicationVersion)
# special-cases parquet-mr and parquet-cpp before 2.0 only, DuckDB never reads created_by.
_CREATED_BY = re.compile(rb"parquet-cpp-arrow version (0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})"
                         rb"\.(0|[1-9][0-9]{0,3})(-[0-9A-Za-z.]{1,32})?")


@dataclass(frozen=True)
class Writer:
    """A supported Parquet writer (``created_by``), and what its version writes."""

    created_by: str
    major: int

    @property
    def chunk_copy(self) -> bool:
        return self.major < CHUNK_COPY_BEFORE

    @property
    def ordinal(self) -> bool:
        return self.major < ORDINAL_BEFORE

    @property
    def size_statistics(self) -> bool:
        return self.major >= SIZE_STATISTICS_FROM

    @property
    def exactness(self) -> bool:
        return self.major >= EXACTNESS_FROM

    def writes_like(self, other: "Writer") -> bool:
        """Whether both write the same fields (they differ in ``created_by`` only)."""
        return (self.chunk_copy, self.ordinal, self.size_statistics, self.exactness) == (
            other.chunk_copy, other.ordinal, other.size_statistics, other.exactness)


def writer_of(created_by: Any) -> Writer | None:
    """The writer a footer's ``created_by`` names, if aksnap vouches for its files
    (``parquet-cpp-arrow version X.Y.Z``, X >= 15, with an optional ``-suffix`` such as
    ``-SNAPSHOT``); None otherwise."""
    if not isinstance(created_by, bytes):
        return None
    m = _CREATED_BY.fullmatch(created_by)
    if m is None or int(m[1]) < OLDEST_WRITER:
        return None
    return Writer(created_by.decode(), int(m[1]))


# what the running pyarrow writes: the model when created_by names no supported writer
_RUNNING = Writer(f"parquet-cpp-arrow version {pa.__version__}",
                  int(pa.__version__.split(".")[0]))


MAX_CHUNK_COPY = 1 << 20  # a ColumnChunk's copy: its statistics are at most 4 KiB each


def _check_chunk_copy(fd: int, pos: int, footer_at: int, cc: Struct, col: str,
                      out: _Problems) -> int:
    """The copy of ColumnChunk ``cc`` that writers before 18 leave at ``pos``, after the
    chunk's pages (no reader reads it): written canonically, the footer's exactly. Where the
    next column chunk begins."""
    buf = _read_exact(fd, min(footer_at - pos, MAX_CHUNK_COPY), pos)
    try:
        copy, end = decode(buf)
    except ThriftError as e:
        out.add(col, f"the copy of the column chunk's metadata after its pages (byte {pos}) is "
                     f"not readable: it {e}")
        return pos
    if encode(copy) != buf[:end]:
        out.add(col, f"the copy of the column chunk's metadata after its pages (byte {pos}) is "
                     "not written the way the writer writes it")
    elif not same(copy, cc):
        diff = _first_difference(copy, cc, "copy")
        out.add(col, f"the copy of the column chunk's metadata after its pages (byte {pos}) "
                     f"differs from the footer's: {diff}")
    return pos + end


def _check_size_statistics_fields(ss: Any, leaf: "Leaf", w: Writer, where: str,
                                  out: _Problems) -> None:
    """Size statistics where the writer writes them (from 20: every column chunk, the byte
    count for byte arrays only, both level histograms, empty when the level is always 0);
    their values are checked against the decoded values."""
    if not w.size_statistics:
        if ss is not None:
            out.add(where, f"the column chunk has size statistics, which parquet-cpp-arrow "
                           f"{w.major} does not write")
        return
    want = {1, 2, 3} if leaf.physical == BYTE_ARRAY else {2, 3}
    if ss is None or set(ss) != want:
        out.add(where, f"the column chunk's size statistics hold fields "
                       f"{sorted(ss) if ss is not None else 'none'}; parquet-cpp-arrow "
                       f"{w.major} writes {sorted(want)}")


def verify_file(fd: int, path: str, model: Model, what: str,
                on_row_group: Callable[[int, pa.Table], list[str]] | None = None) -> list[str]:
    """Every problem of the Parquet file open at ``fd`` (``path`` reopens it) against the
    writer's ``model``, as sentences beginning with ``what``; empty when every byte is
    accounted for. ``on_row_group`` sees each decoded row group (more checks of the values)."""
    out = _Problems(what)
    size = os.fstat(fd).st_size
    if size < 12:
        out.add("", f"the file is {size} bytes, too short to be Parquet")
        return out.finish()
    head, tail = _read_exact(fd, 4, 0), _read_exact(fd, 8, size - 8)
    if head != MAGIC or tail[4:] != MAGIC:
        out.add("", "the file does not begin and end with Parquet's PAR1 marks")
        return out.finish()
    n = struct.unpack("<I", tail[:4])[0]
    footer_at = size - 8 - n
    if n > MAX_FOOTER or footer_at < 4:
        out.add("", f"the footer length {n} does not fit in the file")
        return out.finish()
    raw = _read_exact(fd, n, footer_at)
    try:
        fm, end = decode(raw)
    except ThriftError as e:
        out.add("footer", f"the footer is not readable: it {e}")
        return out.finish()
    if end != n:
        out.add("footer", f"{n - end} bytes follow the footer's end, inside its announced length")
    if encode(fm) != raw[:end]:
        out.add("footer", "the footer is not written the way the writer writes it (extra, "
                          "repeated or reordered bytes)")
    if not _shape(fm, "FileMetaData", "footer", out):
        return out.finish()

    # file-wide fields: the writer's footer for this table's schema (the same from every
    # supported writer), but for created_by (a supported writer, which decides the fields
    # below) and ARROW:schema (by value)
    ref = reference_footer(model.schema, model.options)
    writer = writer_of(fm.get(6))
    kv = fm.get(5)
    arrow_schema = [x.get(2) for x in kv if isinstance(x, Struct) and x.get(1) == b"ARROW:schema"]\
        if isinstance(kv, List) else []
    schema_problem = (arrow_schema_problem(arrow_schema[0], model.schema)
                      if len(arrow_schema) == 1 else None)
    names = {1: "format version", 2: "schema", 5: "key-value metadata", 6: "created_by",
             7: "column orders"}
    # the values are compared with the statistics only when pyarrow decodes them as the
    # format says (same schema, same ARROW:schema); otherwise the difference is the problem
    comparable = True
    for fid in sorted(set(fm) | set(ref)):
        if fid in (3, 4):
            continue
        if fid == 6:
            if writer is None:
                out.add("footer", f"the footer's created_by is {_show(fm.get(6))}: aksnap vouches "
                                  f"for files of parquet-cpp-arrow {OLDEST_WRITER} or later "
                                  "(pyarrow's Parquet writer), whose created_by is "
                                  "'parquet-cpp-arrow version X.Y.Z'")
            continue
        diff = (_kv_difference(fm.get(fid), ref.get(fid), schema_problem) if fid == 5 else
                _first_difference(fm.get(fid), ref.get(fid), names.get(fid, str(fid))))
        if diff:
            comparable &= fid not in (2, 5)
            out.add("footer", f"the footer's {diff}")
    w = writer or _RUNNING
    by = f"parquet-cpp-arrow {w.major}"
    leaves = schema_leaves(ref[2])
    dict_leaf = [len(lf.path) == 1 and lf.path[0].decode() in model.dictionary_columns
                 for lf in leaves]
    leaf_encoding = [model.encoded.get(b".".join(lf.path).decode(errors="replace"))
                     for lf in leaves]

    # layout: column chunks one after the other from byte 4 to the footer (each followed by
    # its ColumnChunk's copy, for writers before 18)
    pos = 4
    total_rows = 0
    chunks: list[list[tuple[int, int, Struct] | None]] = []
    for g, rg in enumerate(fm[4]):
        at = f"row group {g}"
        row = []
        total_rows += rg[3]
        if len(rg[1]) != len(leaves):
            out.add(at, f"the row group has {len(rg[1])} column chunks, expected {len(leaves)}")
            chunks.append([None] * len(leaves))
            continue
        if w.ordinal and rg.get(7) != g:
            out.add(at, f"the row group says it is number {rg.get(7, 'none')}; {by} writes "
                        f"its ordinal, {g}")
        elif not w.ordinal and 7 in rg:
            out.add(at, f"the row group has an ordinal, which {by} does not write")
        first = pos
        for c, (cc, leaf) in enumerate(zip(rg[1], leaves)):
            md = cc[3]
            col = f"{at}, column {b'.'.join(leaf.path).decode(errors='replace')}"
            if list(md[3]) != list(leaf.path):
                out.add(col, f"the column chunk names column {_show(b'.'.join(md[3]))}")
            if md[1] != leaf.physical:
                out.add(col, f"the column chunk says physical type {md[1]}, the schema "
                             f"{leaf.physical}")
            if md[4] != model.codec:
                out.add(col, f"the column chunk says compression codec {md[4]}; the writer "
                             f"uses {model.codec}")
            _check_size_statistics_fields(md.get(16), leaf, w, col, out)
            start = md.get(11, md[9])
            if start != pos or md[7] < 0 or start + md[7] > footer_at:
                out.add(col, f"the column chunk spans bytes {start} to {start + md[7]}, but the "
                             f"previous one ends at byte {pos} (and the footer begins at byte "
                             f"{footer_at}): bytes are unaccounted for or overlap")
                row.append(None)
                pos = max(pos, start + max(md[7], 0))
                continue
            row.append((start, md[7], md))
            pos = start + md[7]
            if not w.chunk_copy:
                if cc[2] != 0:
                    out.add(col, f"the column chunk's file offset is {cc[2]}; {by} writes 0")
                continue
            if cc[2] != pos:
                out.add(col, f"the column chunk's file offset is {cc[2]}; {by} writes the "
                             f"chunk's end, {pos}, where it copies the chunk's metadata")
            pos = _check_chunk_copy(fd, pos, footer_at, cc, col, out)
        chunks.append(row)
        if rg.get(5) != first:
            out.add(at, f"the row group says it begins at byte {rg.get(5)}, its first column "
                        f"chunk begins at byte {first}")
        sizes = [ch[2] for ch in row if ch is not None]
        if len(sizes) == len(leaves):
            if rg[2] != sum(m[6] for m in sizes):
                out.add(at, f"the row group says {rg[2]} bytes uncompressed, its column chunks "
                            f"{sum(m[6] for m in sizes)}")
            if rg.get(6) is not None and rg[6] != sum(m[7] for m in sizes):
                out.add(at, f"the row group says {rg[6]} bytes, its column chunks "
                            f"{sum(m[7] for m in sizes)}")
    if pos != footer_at:
        out.add("", f"bytes {pos} to {footer_at} belong to no column chunk (the footer begins "
                    f"at byte {footer_at})")
    if fm[3] != total_rows:
        out.add("footer", f"the footer says {fm[3]} rows, its row groups hold {total_rows}")

    # pages, then values, row group by row group
    try:
        pf = pq.ParquetFile(path)
    except (OSError, *_VALUE_ERRORS) as e:
        out.add("", f"pyarrow cannot read the file ({_first_line(e)})")
        return out.finish()
    for g, row in enumerate(chunks):
        walked: list[list[Page] | None] = []
        for c, ch in enumerate(row):
            where = f"row group {g}, column {b'.'.join(leaves[c].path).decode(errors='replace')}"
            if ch is None:
                walked.append(None)
                continue
            start, length, md = ch
            buf = _read_exact(fd, length, start)
            pages = _walk_pages(buf, start, where, out)
            encoded = (leaf_encoding[c],) if leaf_encoding[c] is not None else ()
            if pages is not None and not _check_pages(pages, md, dict_leaf[c], where, out, encoded):
                pages = None
            walked.append(pages)
        try:
            data = pf.read_row_group(g)
        except (OSError, *_VALUE_ERRORS) as e:
            out.add(f"row group {g}", f"its pages cannot be decoded ({_first_line(e)})")
            continue
        if data.num_rows != fm[4][g][3]:
            out.add(f"row group {g}", f"the row group says {fm[4][g][3]} rows, its pages hold "
                                      f"{data.num_rows}")
        try:
            if on_row_group is not None:
                for p in on_row_group(g, data):
                    out.sentence(p)
            if comparable:
                _check_values(data, model.schema, leaves, row, walked, g, w, out)
        except _VALUE_ERRORS as e:
            out.add(f"row group {g}", f"its values cannot be checked ({_first_line(e)}): its "
                                      "pages are corrupt")
    return out.finish()


# what odd decoded values (a corrupt page, bytes that are not UTF-8) can raise
_VALUE_ERRORS = (pa.ArrowException, ValueError, IndexError, KeyError, struct.error)


def _check_values(data: pa.Table, schema: pa.Schema, leaves: list[Leaf], row, walked, g: int,
                  w: Writer, out: _Problems) -> None:
    """Counts, statistics and size statistics of each column chunk and page against the
    decoded values of row group ``g``."""
    slots_of: list[Slots] = []
    for i, f in enumerate(schema):
        slots_of.extend(leaf_slots(data.column(i), f.nullable))
    if len(slots_of) != len(leaves):  # pragma: no cover - schema already compared
        out.add(f"row group {g}", "its columns do not match the schema's leaves")
        return
    for c, (slots, leaf) in enumerate(zip(slots_of, leaves)):
        ch = row[c] if c < len(row) else None
        if ch is None:
            continue
        md = ch[2]
        where = f"row group {g}, column {b'.'.join(leaf.path).decode(errors='replace')}"
        if (slots.max_def, slots.max_rep) != (leaf.max_def, leaf.max_rep):  # pragma: no cover
            out.add(where, "its levels do not match the schema")
            continue
        if md[5] != slots.levels:
            out.add(where, f"the column chunk says {md[5]} values, but the rows hold "
                           f"{slots.levels} levels")
            continue
        # page by page (pages whose walk failed: the chunk as a whole); the chunk's
        # statistics are those of its pages put together
        pages = walked[c]
        data_pages = [p for p in pages or () if p.kind == DATA_PAGE]
        if data_pages and sum(p.num_values for p in data_pages) == slots.levels:
            at, parts = 0, []
            for i, p in enumerate(pages):
                if p.kind != DATA_PAGE:
                    continue
                raw = slots.stats(at, at + p.num_values)
                parts.append(raw)
                if p.header[5].get(5) is not None:
                    _check_statistics(p.header[5][5], raw, leaf.physical, f"{where}, page {i}",
                                      "page's", w, out)
                at += p.num_values
            raw = _merge_stats(parts)
            if pages[0].kind == DICTIONARY_PAGE:
                _check_dictionary_size(pages, slots, where, out)
        else:
            raw = slots.stats()
        if 12 in md:
            _check_statistics(md[12], raw, leaf.physical, where, "column chunk's", w, out)
        if 16 in md:
            _check_size_statistics(md[16], slots, leaf.physical, where, out)


# -- the quick check every open runs ------------------------------------------------------------

_U32 = struct.Struct("<I")
# The quick check reads dictionaries of up to this many entries (statuses, session, partition
# and application names, pods: the columns analyses group and filter by).
QUICK_MAX_ENTRIES = 4096
_CODEC_NAMES = {1: "snappy", 2: "gzip", 4: "brotli", 6: "zstd", 7: "lz4"}


def _plain_values(data: bytes, physical: int, n: int) -> list | None:
    """A dictionary page's ``n`` entries (plain encoding; when they all have one length, only
    the smallest and the largest), or None if they do not fit."""
    if physical == BYTE_ARRAY:
        if n > 0 and len(data) >= 4:
            k = int.from_bytes(data[:4], "little")
            if len(data) == n * (4 + k):  # entries of one length (ids, names): no loop
                rows = np.frombuffer(data, dtype=np.uint8).reshape(n, 4 + k)
                if (rows[:, :4].copy().view("<u4") == k).all():
                    if not k:
                        return [b""]
                    order = np.lexsort(rows[:, :3:-1].T)  # bytewise, first byte first
                    return [rows[order[0], 4:].tobytes(), rows[order[-1], 4:].tobytes()]
        out, pos, end = [], 0, len(data)
        length = _U32.unpack_from
        for _ in range(n):
            if pos + 4 > end:
                return None
            k = length(data, pos)[0]
            pos += 4 + k
            if pos > end:
                return None
            out.append(data[pos - k:pos])
        return out if pos == end else None
    width = {INT32: 4, INT64: 8}.get(physical)
    if width is None or len(data) != n * width:
        return None
    return np.frombuffer(data, dtype=np.int32 if width == 4 else np.int64).tolist()


def dictionary_statistics_problems(fd: int, what: str) -> list[str]:
    """The cheap check of the statistics readers prune with, for every open: in each
    dictionary-encoded column chunk (statuses, session and partition ids: what the analyses
    group and filter by), the footer's min and max must be the dictionary's smallest and
    largest entries. Reads the footer and the dictionary pages, no data page. Chunks whose
    writer fell back to plain pages or whose dictionary holds more than
    :data:`QUICK_MAX_ENTRIES` entries are left to :func:`verify_file`; so are every other
    column, the null counts, and everything else about the file (``aksnap check``)."""
    out = _Problems(what)
    size = os.fstat(fd).st_size
    if size < 12:
        return []  # the structure check says what is wrong
    n = struct.unpack("<I", _read_exact(fd, 4, size - 8))[0]
    if n > MAX_FOOTER or size - 8 - n < 4:
        return []
    try:
        fm, _ = decode(_read_exact(fd, n, size - 8 - n))
    except ThriftError as e:
        out.add("footer", f"the footer is not readable: it {e}")
        return out.finish()
    try:
        for g, rg in enumerate(fm.get(4) or ()):
            for cc in rg.get(1) or ():
                _check_dictionary_chunk(fd, size, cc.get(3), g, out)
    except (AttributeError, TypeError, KeyError, ValueError, OSError, pa.ArrowException):
        out.add("footer", "the footer does not describe its row groups the way Parquet does")
    return out.finish()


def _check_dictionary_chunk(fd: int, size: int, md: Any, g: int, out: _Problems) -> None:
    if not isinstance(md, Struct) or 11 not in md or not isinstance(md.get(12), Struct):
        return
    stats = md[12]
    if 5 not in stats and 6 not in stats:
        return
    if any(not isinstance(es, Struct) or (es.get(1) == DATA_PAGE and es.get(2) != RLE_DICTIONARY)
           for es in md.get(13) or [None]):
        return  # no encoding statistics, or a fallback to plain pages: not exact here
    where = f"row group {g}, column {b'.'.join(md.get(3) or []).decode(errors='replace')}"
    start, end, physical = md[11], md.get(9, 0), md.get(1)
    if not 4 <= start < end <= size:
        out.add(where, f"the dictionary page offset {start} does not fit in the file")
        return
    buf = _read_exact(fd, min(end - start, 64 << 20), start)
    try:
        h, at = decode(buf)
    except ThriftError as e:
        out.add(where, f"the dictionary page header is not readable: it {e}")
        return
    dph = h.get(7)
    if h.get(1) != DICTIONARY_PAGE or not isinstance(dph, Struct) or not isinstance(h.get(3), int):
        out.add(where, "the chunk's first page is not the dictionary page its footer says")
        return
    body = buf[at:at + h[3]]
    crc = zlib.crc32(body)
    if h.get(4) is not None and h[4] != (crc - (1 << 32) if crc >= 1 << 31 else crc):
        out.add(where, "the dictionary page is corrupt: it fails its CRC")
        return
    codec = md.get(4)
    if codec != 0:
        if codec not in _CODEC_NAMES:
            return
        try:
            body = pa.Codec(_CODEC_NAMES[codec]).decompress(
                body, decompressed_size=h.get(2, 0)).to_pybytes()
        except (pa.ArrowException, OSError, ValueError, OverflowError) as e:
            out.add(where, f"the dictionary page does not decompress ({_first_line(e)})")
            return
    if dph.get(1, 0) > QUICK_MAX_ENTRIES:
        return  # a large dictionary (names, messages): left to verify_file
    entries = _plain_values(body, physical, dph.get(1, -1))
    if entries is None:
        out.add(where, "the dictionary page does not hold the entries its header announces")
        return
    if not entries:
        return
    for fid, name, want in ((6, "min", min(entries)), (5, "max", max(entries))):
        got, want = stats.get(fid), _plain_bytes(want, physical)
        if got is not None and got != want:
            out.add(where, f"the footer's statistics say {name} {_show_value(got, physical)}, but "
                           f"the {'smallest' if name == 'min' else 'largest'} value of the "
                           f"column's dictionary is {_show_value(want, physical)}")


def _check_dictionary_size(pages: list[Page], slots: Slots, where: str, out: _Problems) -> None:
    """The writer's dictionary holds each distinct value of its dictionary-encoded pages once,
    and nothing else (no entry nobody uses)."""
    n = sum(p.num_values for p in pages if p.kind == DATA_PAGE and p.header[5][2] == RLE_DICTIONARY)
    v = slots.values.slice(0, n) if slots.present is None else \
        slots.values.slice(0, int(slots.present[n]))
    distinct = pc.count_distinct(_comparable(v), mode="only_valid").as_py()
    if distinct != pages[0].num_values:
        out.add(where, f"the dictionary page holds {pages[0].num_values} entries, but its pages "
                       f"use {distinct} distinct values")


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else type(e).__name__
