"""Ids to row numbers: one hash table per kind of id, built once, probed batch by batch.

``pyarrow.compute.index_in`` hashes its whole value set again at every call (0.25 s for a
million task ids, 0.7 s for 1.7 million result ids on the project's machine), so a join
streamed row group by row group cannot use it: it would pay the table once per row group.
:class:`IdIndex` hashes the ids once, to 64 bits in numpy (their bytes read as 32-bit words,
folded by multiply-xorshift rounds, vectorised over every id at once), and keeps them sorted.
A batch of references is hashed, sorted and matched with one ``searchsorted`` (sorted probes
walk the table in order: about 0.13 us a reference against 0.6 us for a random probe).

A hash is a candidate, never an answer: every hit is confirmed by comparing the two strings,
and a reference whose candidate differs (two ids with one hash: only crafted ids do that) is
looked up again by ``index_in``. A miss needs no confirmation (equal strings have equal
hashes). So :meth:`IdIndex.lookup` answers exactly what ``index_in`` answers, the first
occurrence of each id or -1, whatever the ids are.
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


class IdIndex:
    """The row number of each id of one kind (task ids, result ids), built once from the
    whole id column; :meth:`lookup` maps any batch of references, as ``index_in`` would."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray):
        self.ids = _plain(ids)
        hashed = _hash_words(self.ids) if not self.ids.null_count else None
        if hashed is None:
            self._order = self._sorted = self._words = None
            return
        h, self._words = hashed
        self._order = np.argsort(h, kind="stable")  # equal hashes: the first row first
        self._sorted = h[self._order]

    def _index_in(self, q: pa.Array) -> np.ndarray:
        return _np_index(pc.index_in(q, value_set=self.ids))

    def lookup(self, refs: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """int64 row of each reference in the ids (its first occurrence), -1 when absent or
        null: exactly ``index_in(refs, value_set=ids)`` with nulls as -1."""
        q = _plain(refs)
        n = len(q)
        if not n:
            return np.zeros(0, dtype=np.int64)
        if self._sorted is None or not len(self._sorted):
            return self._index_in(q)
        hashed = _hash_words(q)
        if hashed is None:
            return self._index_in(q)
        h, qwords = hashed
        o = np.argsort(h)
        hq = h[o]
        pos = np.searchsorted(self._sorted, hq)
        np.minimum(pos, len(self._sorted) - 1, out=pos)
        hit = self._sorted[pos] == hq
        found = np.full(n, -1, dtype=np.int64)
        found[o[hit]] = self._order[pos[hit]]
        if q.null_count:
            found[~np.asarray(q.is_valid().to_numpy(zero_copy_only=False), dtype=bool)] = -1
        # confirm every candidate by its string; a candidate that is another id (a collision)
        # is asked of Arrow's hash join, which knows
        if qwords is not None and self._words is not None and qwords.shape[1] == self._words.shape[1]:
            # one width on both sides (GUIDs): compare the rows of words, no strings built
            at = np.flatnonzero(found >= 0)
            same = (_rows(self._words, found[at]) == (qwords if len(at) == n else _rows(qwords, at))).all(axis=1)
            wrong = at[~same]
        elif qwords is not None and self._words is not None:
            wrong = np.flatnonzero(found >= 0)  # other lengths: any hit is a collision
        else:
            cand = pa.array(found, mask=found < 0)
            same = pc.fill_null(pc.equal(self.ids.take(cand), q), True)
            wrong = np.flatnonzero(~np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool))
        if len(wrong):
            found[wrong] = self._index_in(q.take(pa.array(wrong)))
        return found


def _rows(words: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``words[at]`` for a C-contiguous matrix, each row taken as one opaque item (numpy's
    row-by-row fancy indexing of a 2-D array costs 4x more: the confirmation of every hit of
    a cold open, 60M rows at 10M tasks)."""
    k = words.shape[1]
    if not words.flags.c_contiguous:
        return words[at]
    flat = words.view(np.dtype((np.void, 4 * k))).reshape(len(words))
    return np.take(flat, at).view(words.dtype).reshape(len(at), k)


def _np_index(a) -> np.ndarray:
    """index_in output (int32 with nulls) -> int64 numpy with -1 for 'not found'."""
    return pc.fill_null(a, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
