"""SQL queries, one per file, loaded with importlib.resources.

Each file starts with a header comment:

    -- name: status_counts
    -- purpose: ...
    -- params: $session_id (optional) ...
    -- columns: session_id, status, tasks
"""

from __future__ import annotations

from importlib import resources


def names() -> list[str]:
    return sorted(p.name[:-4] for p in resources.files(__name__).iterdir() if p.name.endswith(".sql"))


def text(name: str) -> str:
    path = resources.files(__name__) / f"{name}.sql"
    if not path.is_file():
        raise KeyError(name)
    return path.read_text()
