"""One formatter for every command: rows (list of dicts) or Arrow tables to table/json/csv.

Every sink escapes what it shows, because ids and messages come from a cluster or a bundle
and may hold terminal escapes (``ESC]0;...BEL`` retitles a terminal), NULs or bidi overrides
(U+202E reverses the text after it):

- table and key-value output: a character that is not printable (C0, DEL, C1, format
  characters such as U+202E, line and paragraph separators) is shown as its Python escape,
  ``\\x1b``, ``\\u202e``, ``\\n``; a cell stays on one line;
- CSV: the same, so that ``cat`` of a CSV file is safe and each row is one line; the cell
  keeps every other character. Use ``--format json`` for the exact text;
- JSON: ``json.dumps`` with ``ensure_ascii`` writes every non-ASCII and control character as
  ``\\uXXXX``, so the document is exact and plain ASCII.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable, Sequence

FORMATS = ("table", "json", "csv")


def _jsonable(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def safe_text(s: str, keep: str = "") -> str:
    """``s`` with every non-printable character (except those in ``keep``) shown as its
    Python escape (``\\x1b``, ``\\x00``, ``\\u202e``), so that printing it cannot drive a
    terminal. Printable text, backslashes included, is returned as is."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in s)


def to_json(obj: Any) -> str:
    # ensure_ascii (the default, said out loud): control characters and bidi overrides are
    # written as \uXXXX escapes, never raw.
    return json.dumps(_jsonable(obj), indent=2, ensure_ascii=True)


def _cell(v: Any) -> str:
    return safe_text(_text(v))


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1e6 else f"{v:.4g}"
    if isinstance(v, timedelta):
        return f"{v.total_seconds():.3f}s"
    if isinstance(v, datetime):
        return v.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(v, (list, tuple)):
        return ",".join(_text(x) for x in v)
    return str(v)


def rows_of(data: Any) -> list[dict[str, Any]]:
    """Accept a pyarrow Table, a list of dicts or a single dict."""
    if hasattr(data, "to_pylist") and hasattr(data, "schema"):
        return data.to_pylist()
    if isinstance(data, dict):
        return [data]
    return list(data)


def render_rows(data: Any, fmt: str = "table", columns: Sequence[str] | None = None,
                max_width: int = 60) -> str:
    rows = rows_of(data)
    if columns is None:
        columns = list(rows[0].keys()) if rows else []
    if fmt == "json":
        return to_json([{c: r.get(c) for c in columns} for r in rows])
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([safe_text(str(c)) for c in columns])
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in columns])
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not rows:
        return "(no rows)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    columns = [safe_text(str(c)) for c in columns]
    cells = [[s if len(s) <= max_width else s[: max_width - 1] + "…" for s in row] for row in cells]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(s.ljust(w) for s, w in zip(row, widths)) for row in cells]
    return "\n".join([line, sep, *body])


def render_kv(pairs: Iterable[tuple[str, Any]]) -> str:
    pairs = [(safe_text(str(k)), v) for k, v in pairs]
    if not pairs:
        return ""
    w = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(w)}  {_cell(v)}" for k, v in pairs)
