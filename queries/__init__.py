"""SQL queries, one per file, loaded with importlib.resources.

Each file starts with a header comment::

    -- name: status_counts
    -- purpose: ...
    -- params: $session_id (optional) ...
    -- columns: session_id, status, tasks

Files whose name starts with ``_`` are not queries a user runs by name (``_views.sql`` holds
the edge views every snapshot creates). Parameters are always bound (DuckDB ``$name``); no
query is ever assembled from strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class QueryInfo:
    name: str
    purpose: str
    params: str
    columns: str
    sql: str

    @property
    def required_params(self) -> list[str]:
        """Parameters the header marks ``(required)``."""
        return [m.group(1) for m in re.finditer(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*\(required", self.params)]

    @property
    def param_names(self) -> list[str]:
        """Every ``$name`` the SQL body binds, in order of first use."""
        seen: list[str] = []
        for line in self.sql.splitlines():
            if line.lstrip().startswith("--"):
                continue
            for m in _PARAM.finditer(line):
                if m.group(1) not in seen:
                    seen.append(m.group(1))
        return seen


#: queries over an archive of many runs (``aksnap compare``), not over one bundle: kept out of
#: ``aksnap queries``, which lists what ``aksnap query BUNDLE NAME`` runs
ARCHIVE_PREFIX = "compare_"


def names() -> list[str]:
    return sorted(p.name[:-4] for p in resources.files(__name__).iterdir()
                  if p.name.endswith(".sql") and not p.name.startswith(("_", ARCHIVE_PREFIX)))


def text(name: str) -> str:
    path = resources.files(__name__) / f"{name}.sql"
    if not path.is_file():
        raise KeyError(name)
    return path.read_text()


def _header(sql: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in sql.splitlines():
        s = line.strip()
        if not s.startswith("--"):
            break
        body = s[2:].strip()
        m = re.match(r"^([a-z_]+):\s*(.*)$", body)
        if m and m.group(1) in ("name", "purpose", "params", "columns", "views"):
            key = m.group(1)
            fields[key] = m.group(2)
        elif key and body:
            fields[key] += " " + body
    return fields


@lru_cache(maxsize=None)
def info(name: str) -> QueryInfo:
    sql = text(name)
    h = _header(sql)
    return QueryInfo(name=name, purpose=h.get("purpose", ""), params=h.get("params", "none"),
                     columns=h.get("columns", h.get("views", "")), sql=sql)
