"""One formatter for every command: rows (list of dicts) or Arrow tables to table/json/csv."""

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


def to_json(obj: Any) -> str:
    return json.dumps(_jsonable(obj), indent=2)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1e6 else f"{v:.4g}"
    if isinstance(v, timedelta):
        return f"{v.total_seconds():.3f}s"
    if isinstance(v, datetime):
        return v.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(v, (list, tuple)):
        return ",".join(_cell(x) for x in v)
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
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in columns])
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not rows:
        return "(no rows)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    cells = [[s if len(s) <= max_width else s[: max_width - 1] + "…" for s in row] for row in cells]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(s.ljust(w) for s, w in zip(row, widths)) for row in cells]
    return "\n".join([line, sep, *body])


def render_kv(pairs: Iterable[tuple[str, Any]]) -> str:
    pairs = list(pairs)
    if not pairs:
        return ""
    w = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(w)}  {_cell(v)}" for k, v in pairs)
