"""A strict reader and canonical writer of Thrift's compact protocol, for Parquet's metadata.

Parquet stores its footer (``FileMetaData``), its page headers and its page index in Thrift's
compact protocol. ``aksnap check`` parses them here into generic structures (no Parquet
knowledge in this module: :class:`Struct` maps field ids to values and remembers each field's
wire type) and then proves that it saw every byte: :func:`encode` writes a structure back in
the one canonical form Thrift's own writer produces, and the caller compares that with the
bytes it read. Anything a lenient reader would accept but a canonical writer never writes (a
long varint, a field id out of order or repeated, a boolean encoded as 0, bytes after the
struct's end) therefore shows up as a difference, never as a hidden byte.

Pure Python: a footer is tens of KiB and a page header a few dozen bytes.
"""

from __future__ import annotations

import struct as _struct

# Compact protocol wire types.
STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)
BOOL = TRUE  # a boolean field's declared type (its value decides TRUE or FALSE on the wire)
TYPE_NAMES = {TRUE: "bool", FALSE: "bool", BYTE: "i8", I16: "i16", I32: "i32", I64: "i64",
              DOUBLE: "double", BINARY: "binary", LIST: "list", SET: "set", MAP: "map",
              STRUCT: "struct"}
MAX_DEPTH = 32
MAX_ITEMS = 1 << 24


class ThriftError(ValueError):
    """The bytes are not a well-formed compact-protocol structure; the message says where."""


class Struct(dict):
    """A decoded struct: ``{field_id: value}`` in wire order, and ``types[field_id]``."""

    __slots__ = ("types",)

    def __init__(self) -> None:
        super().__init__()
        self.types: dict[int, int] = {}


class List(list):
    """A decoded list (or set): its items and ``etype``, the items' wire type."""

    __slots__ = ("etype", "kind")

    def __init__(self, etype: int, kind: int = LIST) -> None:
        super().__init__()
        self.etype, self.kind = etype, kind


class _Reader:
    """Reads at ``pos``; running past the end raises IndexError (``decode`` says it)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | memoryview, pos: int = 0):
        self.data, self.pos = data, pos

    def varint(self) -> int:
        data, pos = self.data, self.pos
        b = data[pos]
        pos += 1
        if b < 0x80:
            self.pos = pos
            return b
        out, shift = b & 0x7F, 7
        while True:
            b = data[pos]
            pos += 1
            out |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = pos
                return out
            shift += 7
            if shift > 63:
                raise ThriftError(f"has a varint longer than 10 bytes (at byte {pos})")

    def take(self, n: int) -> bytes:
        pos = self.pos
        if n < 0 or pos + n > len(self.data):
            raise ThriftError(f"ends early: {n} bytes announced at byte {pos}, "
                              f"{len(self.data) - pos} left")
        self.pos = pos + n
        out = self.data[pos:pos + n]
        return out if type(out) is bytes else bytes(out)

    def value(self, t: int, depth: int):
        if t == I32 or t == I64 or t == I16:
            n = self.varint()
            return (n >> 1) ^ -(n & 1)
        if t == BINARY:
            return self.take(self.varint())
        if t == STRUCT:
            return self.struct(depth + 1)
        if t == LIST or t == SET:
            return self.list(depth + 1, t)
        if t == TRUE or t == FALSE:  # a boolean inside a list: one byte
            b = self.data[self.pos]
            self.pos += 1
            if b not in (TRUE, FALSE, 0):
                raise ThriftError(f"has a boolean byte {b} (at byte {self.pos - 1})")
            return b == TRUE
        if t == BYTE:
            b = self.data[self.pos]
            self.pos += 1
            return b - 256 if b > 127 else b
        if t == DOUBLE:
            return _struct.unpack("<d", self.take(8))[0]
        if t == MAP:
            raise ThriftError(f"has a map (at byte {self.pos}), which Parquet's metadata "
                              "never holds")
        raise ThriftError(f"has an unknown wire type {t} (at byte {self.pos})")

    def list(self, depth: int, kind: int = LIST) -> List:
        if depth > MAX_DEPTH:
            raise ThriftError("is nested too deeply")
        head = self.data[self.pos]
        self.pos += 1
        size, etype = head >> 4, head & 0x0F
        if size == 15:
            size = self.varint()
        if size > MAX_ITEMS or size > len(self.data) - self.pos:
            raise ThriftError(f"announces a list of {size} items (at byte {self.pos})")
        out = List(TRUE if etype == FALSE else etype, kind)
        value = self.value
        for _ in range(size):
            out.append(value(etype, depth))
        return out

    def struct(self, depth: int = 0) -> Struct:
        if depth > MAX_DEPTH:
            raise ThriftError("is nested too deeply")
        out = Struct()
        types = out.types
        data = self.data
        last = 0
        while True:
            head = data[self.pos]
            self.pos += 1
            if head == STOP:
                return out
            delta, t = head >> 4, head & 0x0F
            if delta:
                fid = last + delta
            else:
                n = self.varint()
                fid = (n >> 1) ^ -(n & 1)
            if fid in out:
                raise ThriftError(f"repeats field {fid} (at byte {self.pos})")
            if t == TRUE or t == FALSE:
                out[fid] = t == TRUE
                types[fid] = TRUE
            else:
                out[fid] = self.value(t, depth)
                types[fid] = t
            last = fid


def decode(data: bytes | memoryview, pos: int = 0) -> tuple[Struct, int]:
    """The struct that starts at ``pos``, and the position just after it."""
    r = _Reader(data, pos)
    try:
        s = r.struct()
    except IndexError:
        raise ThriftError(f"ends early (at byte {len(data)})") from None
    except RecursionError:
        raise ThriftError("is nested too deeply") from None
    return s, r.pos


# -- the canonical writer ----------------------------------------------------------------------

def _varint(n: int, out: bytearray) -> None:
    while True:
        if n < 0x80:
            out.append(n)
            return
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def _zigzag(n: int, bits: int, out: bytearray) -> None:
    _varint(((n << 1) ^ (n >> (bits - 1))) & ((1 << bits) - 1), out)


_BITS = {I16: 16, I32: 32, I64: 64}


def _value(t: int, v, out: bytearray) -> None:
    if t in (TRUE, FALSE):
        out.append(TRUE if v else FALSE)
    elif t == BYTE:
        out.append(v & 0xFF)
    elif t in _BITS:
        _zigzag(v, _BITS[t], out)
    elif t == DOUBLE:
        out += _struct.pack("<d", v)
    elif t == BINARY:
        _varint(len(v), out)
        out += v
    elif t in (LIST, SET):
        n = len(v)
        out.append((n << 4 | v.etype) if n < 15 else (0xF0 | v.etype))
        if n >= 15:
            _varint(n, out)
        for item in v:
            _value(v.etype, item, out)
    elif t == STRUCT:
        _struct_into(v, out)
    else:  # pragma: no cover - the reader never builds another type
        raise ThriftError(f"cannot write wire type {t}")


def _struct_into(s: Struct, out: bytearray) -> None:
    last = 0
    for fid in sorted(s):
        t = s.types[fid]
        wire = (TRUE if s[fid] else FALSE) if t in (TRUE, FALSE) else t
        if 0 < fid - last <= 15:
            out.append((fid - last) << 4 | wire)
        else:
            out.append(wire)
            _zigzag(fid, 16, out)
        if t not in (TRUE, FALSE):
            _value(t, s[fid], out)
        last = fid
    out.append(STOP)


def encode(s: Struct) -> bytes:
    """``s`` as Thrift's compact protocol writes it: fields in increasing id order, the short
    field header whenever the id grows by 1 to 15, minimal varints, booleans as 1 or 2."""
    out = bytearray()
    _struct_into(s, out)
    return bytes(out)
