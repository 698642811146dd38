"""Where the analyzer keeps what it derived from a bundle, keyed by the bundle's content.

``$AKSNAP_CACHE_DIR``, else ``$XDG_CACHE_HOME/aksnap`` (``~/.cache/aksnap``); an empty
``AKSNAP_CACHE_DIR`` turns caching off. Entries are keyed by the tables' checksums, sizes and
row counts (the content, not the manifest's bytes, which a copied and edited bundle keeps), so
an entry may answer for a bundle only while its files are proven to be that content: by the
checksum verification every answer waits for (the default), or, with ``--no-verify``, by the
files' identity recorded beside the entry (``graph.py``) or not at all (the vocabulary marker).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

#: Bundles smaller than this many task and result rows are checked and built faster than a
#: cache round trip pays off: nothing is cached for them.
CACHE_MIN_ROWS = 200_000


def cache_root() -> Path | None:
    root = os.environ.get("AKSNAP_CACHE_DIR")
    if root == "":
        return None
    if root is None:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aksnap")
    return Path(root)


def content_key(manifest) -> str:
    """A short digest of the tables' checksums, sizes and row counts."""
    content = json.dumps([[t, e.sha256, e.bytes, e.rows] for t, e in sorted(manifest.tables.items())])
    return hashlib.sha256(content.encode()).hexdigest()[:24]


def cache_entry(manifest, kind: str) -> Path | None:
    """``<root>/<kind>-<content key>``, or None when caching is off."""
    root = cache_root()
    return None if root is None else root / f"{kind}-{content_key(manifest)}"


def _marker(manifest, check: str = "vocabulary") -> Path | None:
    return cache_entry(manifest, f"{check}-ok-v1")


def vocabulary_known_good(manifest, check: str = "vocabulary") -> bool:
    """Whether a bundle with exactly these tables' checksums already passed the vocabulary
    check (unknown statuses, nulls where the format forbids them), or with ``check=
    "statistics"`` the dictionary statistics check. Only for opens that verify the
    checksums: the marker says nothing about files that are not that content."""
    m = _marker(manifest, check)
    return m is not None and m.is_file()


def remember_vocabulary_good(manifest, check: str = "vocabulary") -> None:
    """Record that this content passed the vocabulary (or ``check``) check (large bundles
    only; best effort: a read-only cache directory costs the check next time, never an
    answer)."""
    m = _marker(manifest, check)
    if m is None or sum(e.rows or 0 for e in manifest.tables.values()) < CACHE_MIN_ROWS:
        return
    try:
        m.parent.mkdir(parents=True, exist_ok=True)
        m.touch()
    except OSError:
        pass


# -- the verification record: the SHA-256 of large files, not recomputed while they are unchanged

#: a file changed less than this long before its verification started is "racy" (git's word):
#: a write in the same clock tick as the one before would leave its timestamps as they were,
#: so no record vouches for it
RACY_NS = 2_000_000_000


def _record_path(manifest) -> Path | None:
    return cache_entry(manifest, "verified-v1")


def verification_start(bundle) -> tuple[int, list] | None:
    """(now, the files' identity) taken just before their checksums are computed, for
    :func:`remember_verified`; None when no record could be kept (caching off, small)."""
    m = bundle.manifest
    if _record_path(m) is None or sum(e.rows or 0 for e in m.tables.values()) < CACHE_MIN_ROWS:
        return None
    import time

    try:
        return time.time_ns(), bundle.file_identity()
    except OSError:
        return None


def remember_verified(bundle, start: tuple[int, list] | None) -> None:
    """Record, beside the index cache (never in the bundle), that the checksums of these files
    were just verified: each file's identity (device, inode, size, mtime, ctime: a user can
    set the mtime, not the ctime, which any write or ``touch`` moves) with the checksum it
    proved. Only when the identity is the same after the hashing as before it (nothing
    wrote the files meanwhile) and no file changed within :data:`RACY_NS` of the start.
    Best effort: a read-only cache directory costs the hashing next time, never an answer."""
    if start is None:
        return
    import time

    t0, before = start
    try:
        after = bundle.file_identity()
    except OSError:
        return
    if after != before or any(ctime > t0 - RACY_NS or mtime > t0 - RACY_NS
                              for _, _, _, mtime, ctime in after):
        return
    m = bundle.manifest
    from aksnap.bundle import TABLES

    record = {"verified_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0 / 1e9)),
              "files": {t: {"sha256": m.tables[t].sha256, "identity": list(i)}
                        for t, i in zip(TABLES, after)}}
    path = _record_path(m)
    try:
        import tempfile

        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    except OSError:
        pass


def verified_before(bundle) -> str | None:
    """When the files opened now were last verified (the record's time), if a record made
    by :func:`remember_verified` names this content and these very files unchanged since:
    every table, its checksum the manifest's, its identity (device, inode, size, mtime,
    ctime) the file's now. None on any doubt (no record, unreadable, another file, another
    checksum, a missing table): the checksums are then computed."""
    m = bundle.manifest
    path = _record_path(m)
    if path is None:
        return None
    try:
        record = json.loads(path.read_text())
        files = record["files"]
        when = record["verified_at"]
        now = bundle.file_identity()
        from aksnap.bundle import TABLES

        for t, ident in zip(TABLES, now):
            f = files[t]
            if f["sha256"] != m.tables[t].sha256 or f["identity"] != list(ident):
                return None
        if len(files) != len(TABLES) or not isinstance(when, str):
            return None
        return when
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
