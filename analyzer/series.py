"""A recorded series (``aksnap watch --record DIR``): tasks by status over time.

A series is a directory whose entries are bundles (one per reconcile of the watch, each the
incremental update of the one before). ``aksnap analyze DIR`` shows, per recorded state, its
instant (the manifest's ``latest_timestamp``: the cluster's own clock; else ``exported_at``),
the tasks by status and the percent complete: the run replayed at the recording's resolution.
Each bundle's status column is read alone (Parquet projection) and counted with Arrow; the
bundles are checked as any reader checks them (manifest, schema, row counts).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from aksnap.bundle import MANIFEST, TASK_FINAL_STATUSES, TASK_STATUSES, TEMP_DIR, OpenBundle

from .common import Section, render_data
from .snapshot import AnalysisError


def series_members(path: str | os.PathLike) -> list[Path] | None:
    """The bundles of a series directory, in name order (the watch names them NNNNN-time), or
    None when ``path`` is not a series (a bundle, a packed file, a missing path)."""
    root = Path(path)
    if not root.is_dir() or (root / MANIFEST).exists():
        return None
    members = sorted(p for p in root.iterdir()
                     if p.is_dir() and not TEMP_DIR.match(p.name) and (p / MANIFEST).is_file())
    return members or None


def _instant(m) -> datetime | None:
    for v in (m.latest_timestamp, m.exported_at):
        if v:
            try:
                return datetime.fromisoformat(v)
            except ValueError:
                continue
    return None


def build(path: str | os.PathLike, session_id: str | None = None) -> dict[str, Any]:
    members = series_members(path)
    if members is None:
        raise AnalysisError(f"{path} is not a recorded series (a directory of bundles written "
                            "by aksnap watch --record)")
    states = []
    statuses: list[str] = []
    first = None
    for p in members:
        b = OpenBundle.open(p)
        try:
            cols = pq.read_table(b.file("tasks"), columns=["session_id", "status"])
            m = b.manifest
        finally:
            b.close()
        if session_id is not None:
            cols = cols.filter(pc.equal(cols.column("session_id"), session_id))
        vc = pc.value_counts(cols.column("status").combine_chunks()) if cols.num_rows else None
        counts = dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist())) if vc else {}
        for s in counts:
            if s not in statuses:
                statuses.append(s)
        t = _instant(m)
        first = first or t
        total = sum(counts.values())
        final = sum(n for s, n in counts.items() if s in TASK_FINAL_STATUSES)
        states.append({
            "bundle": p.name, "at": t.isoformat() if t else None,
            "elapsed_s": round((t - first).total_seconds(), 3) if t and first else None,
            "tasks": total, "percent_complete": round(100.0 * final / total, 2) if total else 0.0,
            "tasks_by_status": counts,
            # what the recording cost the cluster: a full export first, then updates
            "rows_fetched": sum((m.update or {}).get("rows_fetched", {}).values())
            if m.update else m.tables["tasks"].rows + m.tables["results"].rows,
        })
    order = [s for s in TASK_STATUSES if s in statuses]
    return {"series": str(path), "session_id": session_id, "bundles": len(states),
            "statuses": order, "states": states}


def state_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per recorded state (what ``aksnap analyze DIR`` prints; the report draws
    the same rows): bundle, at, elapsed_s, tasks, percent_complete, a count per status,
    rows_fetched."""
    out = []
    for s in data["states"]:
        row = {k: s[k] for k in ("bundle", "at", "elapsed_s", "tasks", "percent_complete")}
        row.update({st: s["tasks_by_status"].get(st, 0) for st in data["statuses"]})
        row["rows_fetched"] = s["rows_fetched"]
        out.append(row)
    return out


def sections(data: dict[str, Any]) -> list[Section]:
    cols = ["bundle", "at", "elapsed_s", "tasks", "percent_complete", *data["statuses"],
            "rows_fetched"]
    return [Section("states", state_rows(data), cols, "tasks by status over time",
                    ["elapsed_s", "tasks", "percent_complete", *data["statuses"], "rows_fetched"])]


def _table(data: dict[str, Any]) -> str:
    from aksnap.output import render_rows

    s = sections(data)[0]
    head = (f"{data['bundles']} recorded states in {data['series']}"
            + (f", session {data['session_id']}" if data["session_id"] else ""))
    return head + "\n" + render_rows(s.rows, "table", list(s.table_columns))


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)
