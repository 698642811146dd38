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


def _marker(manifest) -> Path | None:
    return cache_entry(manifest, "vocabulary-ok-v1")


def vocabulary_known_good(manifest) -> bool:
    """Whether a bundle with exactly these tables' checksums already passed the vocabulary
    check (unknown statuses, nulls where the format forbids them). Only for opens that verify
    the checksums: the marker says nothing about files that are not that content."""
    m = _marker(manifest)
    return m is not None and m.is_file()


def remember_vocabulary_good(manifest) -> None:
    """Record that this content passed the vocabulary check (large bundles only; best effort:
    a read-only cache directory costs the check next time, never an answer)."""
    m = _marker(manifest)
    if m is None or sum(e.rows or 0 for e in manifest.tables.values()) < CACHE_MIN_ROWS:
        return
    try:
        m.parent.mkdir(parents=True, exist_ok=True)
        m.touch()
    except OSError:
        pass
