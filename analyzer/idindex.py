"""Ids to row numbers: one hash table per kind of id, built once, probed batch by batch.

``pyarrow.compute.index_in`` hashes its whole value set again at every call (0.25 s for a
million task ids, 0.7 s for 1.7 million result ids on the project's machine), so a join
streamed row group by row group cannot use it: it would pay the table once per row group.
:class:`IdIndex` hashes the ids once, to 64 bits in numpy (their bytes read as 32-bit words,
folded by multiply-xorshift rounds, vectorised over every id at once), and keeps them in an
open-addressing table (linear probing, at most :data:`MAX_LOAD` full): a slot holds a row
number and 32 bits of its id's hash, the hash's top bits say where its probe starts. A batch
of references is hashed and probed in vectorised rounds, each reading one slot per reference
still looking (1.3 slots a reference on average): no sort of the references, no binary search
(the earlier sorted-hash design spent 0.33 us a reference sorting and searching, this one
about 0.05).

A hash is a candidate, never an answer: a slot whose 32 bits match is confirmed by comparing
the two strings (rows of 32-bit words when the ids all have one width, Arrow's ``equal``
otherwise), and a slot that is another id only moves the probe on. So :meth:`IdIndex.lookup`
answers exactly what ``index_in`` answers, the first occurrence of each id or -1, whatever the
ids are, crafted to collide or not.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_P1 = np.uint64(0x9E3779B97F4A7C15)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SEED = np.uint64(0x27D4EB2F165667C5)
_S29, _S32 = np.uint64(29), np.uint64(32)
#: ids longer than this (bytes) are looked up by ``index_in`` (no GUID is; a hash of long
#: strings word by word would cost more than Arrow's)
MAX_HASHED_BYTES = 128


def _plain(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One string array (chunks combined, a dictionary decoded, large offsets narrowed)."""
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks() if a.num_chunks != 1 else a.chunk(0)
    if pa.types.is_dictionary(a.type):
        a = a.dictionary_decode()
    if not pa.types.is_string(a.type):
        a = a.cast(pa.string())
    return a


def hash64(a: pa.Array) -> np.ndarray | None:
    """A 64-bit hash of every string of ``a`` (a null hashes as the empty string), the same
    for equal strings whatever array they are in: the bytes, zero-padded to whole 32-bit
    words, folded word by word (``h = mix(h ^ w)``) from a seed that holds the length. None
    when the strings are too long, or cannot be laid out as one matrix of bytes (non-ASCII
    ids of mixed lengths): the caller then uses ``index_in``."""
    hashed = _hash_words(a)
    return None if hashed is None else hashed[0]


def _hash_words(a: pa.Array) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(the hashes, the strings as a matrix of 32-bit words when they all have one length
    that is a whole number of words, else None): see :func:`hash64`."""
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=np.uint64), None
    if a.null_count:
        a = pc.fill_null(a, "")
    off = np.frombuffer(a.buffers()[1], dtype=np.int32)[a.offset:a.offset + n + 1]
    lengths = np.diff(off)
    width = int(lengths.max())
    if width > MAX_HASHED_BYTES:
        return None
    mixed = bool(width and int(lengths.min()) != width)
    if mixed:
        # mixed lengths (a retry's id is its first attempt's plus ``###n``): padded with zero
        # bytes to one width by Arrow; rounds past a string's own words are skipped below
        a = pc.utf8_rpad(a, width=width, padding="\x00")
        off = np.frombuffer(a.buffers()[1], dtype=np.int32)[a.offset:a.offset + n + 1]
        if int(off[-1] - off[0]) != n * width:
            return None  # multi-byte characters: not one width in bytes
    h = lengths.astype(np.uint64)
    h *= _P2
    h += _SEED
    w = None
    if width:
        data = np.frombuffer(a.buffers()[2], dtype=np.uint8)
        mat = data[off[0]:off[0] + n * width].reshape(n, width)
        words = -(-width // 4)
        if width % 4:
            whole = np.zeros((n, 4 * words), dtype=np.uint8)
            whole[:, :width] = mat
            mat = whole
        w = mat.view("<u4")
        tmp = np.empty(n, dtype=np.uint64)
        keep = np.empty(n, dtype=np.uint64) if mixed else None
        for k in range(words):
            if mixed:
                short = lengths <= 4 * k  # this string has no k-th word: its hash stays
                keep[short] = h[short]
            np.bitwise_xor(h, w[:, k], out=h, casting="unsafe")
            h *= _P1
            np.right_shift(h, _S29, out=tmp)
            h ^= tmp
            if mixed:
                h[short] = keep[short]
        if mixed or width % 4:
            w = None
    tmp = h >> _S32
    h ^= tmp
    h *= _P2
    np.right_shift(h, _S29, out=tmp)
    h ^= tmp
    return h, w


#: the share of a table's slots that hold an id, at most: linear probing reads about
#: (1 + 1 / (1 - load)) / 2 slots for an id found, 1.75 at 0.6
MAX_LOAD = 0.6
_LOW = np.uint64(0xFFFFFFFF)


class IdIndex:
    """The row number of each id of one kind (task ids, result ids), built once from the
    whole id column; :meth:`lookup` maps any batch of references, as ``index_in`` would."""

    #: ids hashed and inserted this many at a time: the temporaries of a step (a dozen arrays
    #: of 8 bytes an id) are those of a slice, not of the column (at 17M result ids, 1.4 GB)
    STEP = 1 << 20

    def __init__(self, ids: pa.Array | pa.ChunkedArray):
        self.ids = _plain(ids)
        self._table = self._words = None
        n = len(self.ids)
        if self.ids.null_count or n >= 2**32 - 1:  # rows are stored in 32 bits
            return
        self._words = _word_rows(self.ids)
        bits = max(int(np.ceil(np.log2(max(n, 1) / MAX_LOAD))), 4)
        self._table = np.zeros(1 << bits, dtype=np.uint64)  # 0: empty (a slot holds row + 1)
        self._shift = np.uint64(64 - bits)
        dup_at: list[np.ndarray] = []
        dup_key: list[np.ndarray] = []
        for r0 in range(0, n, self.STEP):
            hashed = _hash_words(self.ids.slice(r0, self.STEP))
            if hashed is None:  # too long, or not one width in bytes: Arrow's hash join
                self._table = self._words = None
                return
            self._insert(hashed[0], r0, dup_at, dup_key)
        if dup_at:  # of several rows with one id, the first answers
            np.minimum.at(self._table, np.concatenate(dup_at), np.concatenate(dup_key))

    def _same(self, rows: np.ndarray, q: pa.Array, qwords: np.ndarray | None,
              at: np.ndarray) -> np.ndarray:
        """Whether id ``rows[i]`` is the string ``q[at[i]]``, for every i."""
        if qwords is not None:
            return _rows(self._words, rows, void=True) == _rows(qwords, at, void=True)
        same = pc.equal(self.ids.take(pa.array(rows)), q.take(pa.array(at)))
        return np.asarray(pc.fill_null(same, False).to_numpy(zero_copy_only=False), dtype=bool)

    def _insert(self, h: np.ndarray, r0: int, dup_at: list, dup_key: list) -> None:
        """Insert rows ``r0``, ``r0 + 1``... (``h``: their hashes): each in the slot its probe
        reaches first; a row whose id is already in the table (a duplicate) is not inserted,
        its slot and key go to ``dup_at`` and ``dup_key`` (the first row wins, by the caller's
        ``minimum.at``). In vectorised rounds: each row still looking tries its slot; of
        several claiming one free slot one wins and the others try it again (so a duplicate
        meets its twin there); a slot held by another id sends it on to the next."""
        table, shift = self._table, self._shift
        wrap = len(table) - 1
        key = h & _LOW
        key <<= _S32
        key |= np.arange(r0 + 1, r0 + len(h) + 1, dtype=np.uint64)
        pos = (h >> shift).astype(np.int64)
        todo = np.arange(len(h), dtype=np.int64)
        while len(todo):
            e = np.take(table, pos)
            free = e == 0
            move = ~free  # the slot holds another id: on to the next one
            busy = np.flatnonzero(move)
            if len(busy):
                same = busy[(e[busy] >> _S32) == (key[todo[busy]] >> _S32)]
                if len(same):  # 32 bits of the hash agree: the same id, or another one
                    there = (e[same] & _LOW).astype(np.int64) - 1
                    twin = same[self._same(there, self.ids, self._words, todo[same] + r0)]
                    if len(twin):
                        dup_at.append(pos[twin])
                        dup_key.append(key[todo[twin]])
                        move[twin] = False
            stay = move.copy()
            claim = np.flatnonzero(free)
            if len(claim):
                kc = key[todo[claim]]
                at = pos[claim]
                table[at] = kc
                stay[claim[np.take(table, at) != kc]] = True  # another won it: try it again
            pos += move
            pos &= wrap
            todo, pos = todo[stay], pos[stay]

    def _index_in(self, q: pa.Array) -> np.ndarray:
        return _np_index(pc.index_in(q, value_set=self.ids))

    def lookup(self, refs: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """int64 row of each reference in the ids (its first occurrence), -1 when absent or
        null: exactly ``index_in(refs, value_set=ids)`` with nulls as -1."""
        q = _plain(refs)
        n = len(q)
        if not n:
            return np.zeros(0, dtype=np.int64)
        if self._table is None:
            return self._index_in(q)
        if self._words is not None:
            # the ids have one width: a reference of another width (or null) is none of them,
            # and those of that width are read as rows of words (no padding, no Arrow compare)
            width = 4 * self._words.shape[1]
            off = np.frombuffer(q.buffers()[1], dtype=np.int32)[q.offset:q.offset + n + 1]
            fit = np.diff(off) == width
            if q.null_count:
                fit &= np.asarray(q.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            if fit.all():
                return self._probe(*_hash_words(q), q)
            at = np.flatnonzero(fit)
            found = np.full(n, -1, dtype=np.int64)
            if len(at):
                sub = q.take(pa.array(at))
                found[at] = self._probe(*_hash_words(sub), sub)
            return found
        hashed = _hash_words(q)
        if hashed is None:
            return self._index_in(q)
        found = self._probe(hashed[0], None, q)
        if q.null_count:  # a null hashed as "" and compared as null: never found
            found[~np.asarray(q.is_valid().to_numpy(zero_copy_only=False), dtype=bool)] = -1
        return found

    def _probe(self, h: np.ndarray, qwords: np.ndarray | None, q: pa.Array) -> np.ndarray:
        """The row of each hashed reference, -1 when absent: in rounds, every reference still
        looking reads its slot; an empty one ends its probe (absent), one whose 32 bits match
        and whose string is the reference's ends it (found), any other moves it on."""
        table, wrap = self._table, len(self._table) - 1
        found = np.full(len(h), -1, dtype=np.int64)
        pos = (h >> self._shift).astype(np.int64)
        tag = h & _LOW
        todo = np.arange(len(h), dtype=np.int64)
        words = qwords if qwords is not None and self._words is not None else None
        while len(todo):
            e = np.take(table, pos)
            go = e != 0
            cand = np.flatnonzero(go & ((e >> _S32) == tag))
            if len(cand):
                rows = (e[cand] & _LOW).astype(np.int64) - 1
                ok = self._same(rows, q, words, todo[cand])
                hit = cand[ok]
                found[todo[hit]] = rows[ok]
                go[hit] = False
            keep = np.flatnonzero(go)
            if len(keep) < len(todo):
                todo, pos, tag = todo[keep], pos[keep], tag[keep]
            pos += 1
            pos &= wrap
        return found


def _word_rows(a: pa.Array) -> np.ndarray | None:
    """The strings of ``a`` as a matrix of 32-bit words (a view of its bytes) when they all
    have one length, a whole number of words; else None."""
    n = len(a)
    if not n or a.null_count:
        return None
    off = np.frombuffer(a.buffers()[1], dtype=np.int32)[a.offset:a.offset + n + 1]
    width = int(off[1] - off[0])
    if not width or width % 4 or width > MAX_HASHED_BYTES or int(off[-1] - off[0]) != n * width:
        return None
    for r0 in range(0, n, 1 << 22):  # every length (in slices: no n-sized temporary)
        if (np.diff(off[r0:r0 + (1 << 22) + 1]) != width).any():
            return None
    data = np.frombuffer(a.buffers()[2], dtype=np.uint8)
    return data[off[0]:off[0] + n * width].reshape(n, width).view("<u4")


def _rows(words: np.ndarray, at: np.ndarray, void: bool = False) -> np.ndarray:
    """``words[at]`` for a C-contiguous matrix, each row taken as one opaque item (numpy's
    row-by-row fancy indexing of a 2-D array costs 4x more: the confirmation of every hit of
    a cold open, 60M rows at 10M tasks); with ``void``, the rows as opaque items (what ``==``
    compares whole)."""
    k = words.shape[1]
    if not words.flags.c_contiguous:
        words = np.ascontiguousarray(words)
    flat = words.view(np.dtype((np.void, 4 * k))).reshape(len(words))
    got = np.take(flat, at)
    return got if void else got.view(words.dtype).reshape(len(at), k)


def _np_index(a) -> np.ndarray:
    """index_in output (int32 with nulls) -> int64 numpy with -1 for 'not found'."""
    return pc.fill_null(a, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
