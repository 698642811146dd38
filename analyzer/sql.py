"""``aksnap sql``, ``aksnap query`` and ``aksnap queries``: SQL over a bundle's views.

The SQL a user types or names runs sandboxed (:meth:`Snapshot.sandbox`: DuckDB holds no
path, writes nothing, configuration locked) unless ``allow_external``; parameters are bound,
never pasted. Imports no analysis and no graph: `aksnap sql` never loads rustworkx, and
`aksnap queries` not even DuckDB.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Optional


def parse_params(pairs: Iterable[str]) -> Optional[dict[str, str]]:
    """``--param k=v`` (repeatable) as a mapping (None when there is none)."""
    from .snapshot import AnalysisError

    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k.strip():
            raise AnalysisError(f"--param {p!r} is not k=v; write e.g. --param session_id=abc")
        out[k.strip()] = v
    return out or None


def sql(snap, query: str, params: Optional[Mapping[str, Any]] = None,
        allow_external: bool = False, memory_limit: str = "4GB"):
    """The answer of ``query`` (DuckDB SQL over the bundle's views, ``$k`` bound from
    ``params``) as an Arrow table. ``snap`` is sandboxed first (for good) unless
    ``allow_external``."""
    if not allow_external:
        snap.sandbox(memory_limit)
    answer = snap.sql(query, params or None)
    if getattr(snap, "answered_unverified", False):
        # said, never silent: what this answer rests on (docs/analyzer.md, "Trust")
        import sys

        print(f"aksnap: note: this SQL reads no table, so it was answered without waiting for "
              f"the checksums of {snap.path} (its manifest, file sizes, schemas and row counts "
              f"were checked)", file=sys.stderr)
    return answer


#: a parameter named like an id (``session_id``, ``parent_task_id``...): the kind it names
_ID_PARAM = re.compile(r"^(?:\w+_)?(task|result|session|partition)_id$")


def query(snap, name: str, params: Optional[Mapping[str, Any]] = None, memory_limit: str = "4GB"):
    """The answer of the named query ``name`` of ``queries/`` (its parameters checked, then
    bound), sandboxed as :func:`sql`. A parameter named like an id (``session_id``) takes a
    unique prefix of one, as every command does (:meth:`Snapshot.resolve_id`)."""
    snap.sandbox(memory_limit)
    params = dict(params or {})
    for key, value in params.items():
        m = _ID_PARAM.match(key)
        if m and isinstance(value, str) and value:
            params[key] = snap.resolve_id(m.group(1), value)
            if not snap.has_id(m.group(1), params[key]):
                from .snapshot import AnalysisError

                raise AnalysisError(f"--param {key}={value!r}: no {m.group(1)} of {snap.path} "
                                    f"has this id or begins with it")
    return snap.query(name, params)


def list_queries() -> list[dict[str, Any]]:
    """The named queries: name, parameters, purpose, output columns."""
    from aksnap import queries

    return [{"name": q.name, "params": q.params, "purpose": q.purpose, "columns": q.columns}
            for q in map(queries.info, queries.names())]


def render(data, fmt: str = "table", section: Optional[str] = None) -> str:
    """An answer (an Arrow table, or rows) in ``fmt``."""
    from aksnap.output import render_rows

    return render_rows(data, fmt)


def render_queries(rows: list[dict[str, Any]], fmt: str = "table",
                   section: Optional[str] = None) -> str:
    """The list of queries; the table leaves their output columns to the other formats."""
    from aksnap.output import render_rows

    return render_rows(rows, fmt, columns=["name", "params", "purpose"] if fmt == "table" else None,
                       max_width=100)
