"""Small helpers shared by the analyses: time conversions, detail look-ups, and the rendering
contract every analysis follows (``render_data``: JSON/YAML the plain data, CSV one table,
``--section`` to choose it, the table the analysis' own).

Nothing here imports the graph (rustworkx) at import time: ``aksnap sql`` loads this module's
siblings without needing a graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from aksnap.errors import AksnapError
from aksnap.output import render_kv, render_rows, to_json, to_yaml

if TYPE_CHECKING:  # annotations only: numpy is imported where the arrays are made
    import numpy as np


def micros(t: datetime | None) -> int:
    from .graph import NA

    if t is None:
        return NA
    return int(t.timestamp() * 1_000_000) if t.tzinfo else \
        int(t.replace(tzinfo=timezone.utc).timestamp() * 1_000_000)


def to_time(us: int) -> datetime | None:
    from .graph import NA

    if us == NA:
        return None
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)


def seconds_between(a_us: int, b_us: int) -> float | None:
    from .graph import NA

    if a_us == NA or b_us == NA:
        return None
    return round((b_us - a_us) / 1e6, 6)


def in_status_seconds(snap, nodes) -> "np.ndarray":
    """Seconds each node has been in its status at snapshot time (NaN when unknown), vectorised."""
    import numpy as np

    from .graph import NA

    g = snap.graph
    now = micros(snap.snapshot_time)
    entered = g.entered_status_at_many(nodes)
    if now == NA:
        return np.full(len(nodes), np.nan)
    return np.where(entered != NA, np.round((now - entered) / 1e6, 6), np.nan)


def longest_waiting_first(snap, nodes) -> "np.ndarray":
    """``nodes`` ordered by time in status (longest first; unknown counts as 0), then id."""
    import numpy as np

    waited = np.nan_to_num(in_status_seconds(snap, nodes), nan=0.0)
    return nodes[np.lexsort((snap.graph.id_rank(nodes), -waited))]


def task_details(snap, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A few columns of the named tasks, keyed by task id (one bound query, any number of ids)."""
    if not ids:
        return {}
    rows = snap.sql(
        "SELECT task_id, session_id, status, status_message, output_error, pod_hostname, "
        "partition_id, initial_task_id, created_by, len(retry_of_ids) + 1 AS attempt, "
        "parent_task_ids, created_at, submitted_at, acquired_at, fetched_at, started_at, "
        "processed_at, ended_at FROM tasks WHERE list_contains($ids, task_id)",
        {"ids": list(ids)}).to_pylist()
    return {r["task_id"]: r for r in rows}


def failure_message(t: dict[str, Any]) -> str:
    return (t.get("output_error") or t.get("status_message") or "").strip()


def printable(v: Any) -> Any:
    """Make a value safe to print in a terminal table: control characters (newlines, ANSI
    escapes, NULs) from messages or ids are shown escaped (``\\n``, ``\\x1b``), never
    interpreted; lists and dicts are walked."""
    if isinstance(v, str):
        if v.isprintable():
            return v
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in v)
    if isinstance(v, list):
        return [printable(x) for x in v]
    if isinstance(v, dict):
        return {k: printable(x) for k, x in v.items()}
    return v


def printable_rows(rows: Any) -> list[dict[str, Any]]:
    from aksnap.output import rows_of

    return [printable(r) for r in rows_of(rows)]


def render_table(rows: Any, fmt: str, columns: Sequence[str] | None = None, **kw: Any) -> str:
    """render_rows, with table cells made printable (JSON and CSV carry the data as is)."""
    if fmt == "table":
        rows = printable_rows(rows)
    return render_rows(rows, fmt, columns=columns, **kw)


def render_sections(sections: Iterable[tuple[str, Any, Sequence[str] | None]],
                    head: Iterable[tuple[str, Any]] = ()) -> str:
    """An analysis' layout for people (``-o table``): a key-value head, then titled row
    sections, every cell made printable. (JSON, YAML and CSV come from :func:`render_data`.)"""
    parts = []
    head = [(k, printable(v)) for k, v in head]
    if head:
        parts.append(render_kv(head))
    for title, rows, columns in sections:
        parts.append(f"\n{title}\n" + render_rows(printable_rows(rows), "table", columns=columns))
    return "\n".join(parts)


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 120:
        return f"{s:.1f}s"
    if s < 7200:
        return f"{s / 60:.1f}min"
    return f"{s / 3600:.1f}h"


# -- the rendering contract -----------------------------------------------------------------------
#
# Every analysis renders its plain data the same way: JSON and YAML are the data as is (maps stay
# objects, durations are seconds, times ISO 8601); CSV is ONE table a program reads
# (``pandas.read_csv``): the analysis' main section, or the one ``--section NAME`` picks; the table
# is the analysis' own layout for people. ``section`` also narrows JSON, YAML and table output to
# that one section's rows.

@dataclass
class Section:
    """One table of an analysis' answer: ``name`` for ``--section``, ``rows`` (dicts), and the
    columns a CSV gets when there are no rows (else every key of the rows, in order)."""
    name: str
    rows: list[dict[str, Any]]
    columns: Sequence[str] = ()
    title: str = ""
    table_columns: Sequence[str] | None = None

    def csv_columns(self) -> list[str]:
        cols = list(self.columns)
        for r in self.rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        return cols


class SectionError(AksnapError, ValueError):
    """``--section`` named a section the answer does not have; one sentence (exit code 2;
    still a ValueError for callers that catch one)."""


def counts_text(d: dict[str, Any] | None) -> str:
    """A status map as one CSV/table cell: ``COMPLETED=3 ERROR=1``."""
    return " ".join(f"{k}={v}" for k, v in (d or {}).items())


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """A row for CSV: maps become ``k=v`` cells, lists ``a -> b`` cells, so every cell is one
    scalar and the table is rectangular."""
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            v = counts_text(v)
        elif isinstance(v, (list, tuple)):
            v = " -> ".join(str(x) for x in v)
        out[k] = v
    return out


def pick_section(sections: Sequence[Section], name: str | None) -> Section:
    """The section called ``name`` (case-insensitive), or the first (the main one)."""
    if not sections:
        raise SectionError("this answer has no table to write")
    if name is None:
        return sections[0]
    for s in sections:
        if s.name == name.strip().lower().replace("-", "_"):
            return s
    raise SectionError(f"there is no section {name!r} in this answer; it has "
                       f"{', '.join(s.name for s in sections)}")


def render_data(data: Any, fmt: str, sections: Callable[[Any], Sequence[Section]],
                table: Callable[[Any], str], section: str | None = None) -> str:
    """Render an analysis' answer in ``fmt`` (see above): ``sections(data)`` lists its tables,
    the first being the main one; ``table(data)`` is its layout for people."""
    if section is not None:
        s = pick_section(sections(data), section)
        if fmt == "table":
            return render_rows([flat(r) for r in s.rows], "table",
                               columns=list(s.table_columns or s.csv_columns()) or None)
        if fmt in ("json", "yaml"):
            return to_json(s.rows) if fmt == "json" else to_yaml(s.rows)
        return _csv(s)
    if fmt == "json":
        return to_json(data)
    if fmt == "yaml":
        return to_yaml(data)
    if fmt == "csv":
        return _csv(pick_section(sections(data), None))
    return table(data)


def _csv(s: Section) -> str:
    return render_rows([flat(r) for r in s.rows], "csv", columns=s.csv_columns())
