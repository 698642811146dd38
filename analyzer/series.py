"""A recorded series (``aksnap watch --record DIR``): tasks by status over time.

A series is a directory whose entries are bundles (one per recorded state of the watch, each
the incremental update of the one before) and ``states.jsonl``, one line per recorded state
(:func:`append_state`: its instant, tasks by session and status, what it cost the cluster).
``aksnap analyze DIR`` shows, per recorded state, its instant (the manifest's
``latest_timestamp``: the cluster's own clock; else ``exported_at``), the tasks by status and
the percent complete: the run replayed at the recording's resolution. A state whose bundle is
still in DIR is read from the bundle (its status column alone, Parquet projection, counted
with Arrow; checked as any reader checks a bundle); a state whose bundle the watch's
``--keep`` pruned comes from its line in ``states.jsonl``, so pruning loses no row of the
series (``kept`` says which states still have their bundle).
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from aksnap.bundle import MANIFEST, TASK_FINAL_STATUSES, TASK_STATUSES, TEMP_DIR, OpenBundle

from .common import Section, render_data
from .snapshot import AnalysisError

#: The file of a series holding one JSON line per recorded state.
STATES_FILE = "states.jsonl"
#: How the watch names a recorded bundle: its sequence number, then the UTC time.
_MEMBER = re.compile(r"^(\d+)-[0-9A-Za-z]+$")


def _order(name: str) -> tuple:
    """Recorded bundles sort by their number (00009 before 100000), others by name after."""
    m = _MEMBER.match(name)
    return (0, int(m.group(1)), name) if m else (1, 0, name)


def series_members(path: str | os.PathLike) -> list[Path] | None:
    """The bundles of a series directory, in recording order (the watch names them
    NNNNN-time), or None when ``path`` is not a series (a bundle, a packed file, a missing
    path)."""
    root = Path(path)
    if not root.is_dir() or (root / MANIFEST).exists():
        return None
    members = sorted((p for p in root.iterdir()
                      if p.is_dir() and not TEMP_DIR.match(p.name) and (p / MANIFEST).is_file()),
                     key=lambda p: _order(p.name))
    return members or None


def bundle_state(bundle: str | os.PathLike) -> dict[str, Any]:
    """One recorded state, as :data:`STATES_FILE` keeps it: ``bundle`` (its name), ``at``
    (the cluster's latest timestamp, else the export's time), ``tasks_by_session`` (session
    -> status -> count) and ``rows_fetched`` (what it cost the cluster: a full export's rows,
    or an update's refetched rows)."""
    p = Path(bundle)
    b = OpenBundle.open(p)
    try:
        cols = pq.read_table(b.file("tasks"), columns=["session_id", "status"])
        m = b.manifest
    finally:
        b.close()
    by: dict[str, dict[str, int]] = {}
    if cols.num_rows:
        g = cols.group_by(["session_id", "status"]).aggregate([([], "count_all")])
        for sid, st, n in zip(g.column("session_id").to_pylist(), g.column("status").to_pylist(),
                              g.column("count_all").to_pylist()):
            by.setdefault(sid, {})[st] = n
    t = _instant(m)
    return {"bundle": p.name, "at": t.isoformat() if t else None, "tasks_by_session": by,
            "rows_fetched": sum((m.update or {}).get("rows_fetched", {}).values())
            if m.update else m.tables["tasks"].rows + m.tables["results"].rows}


def append_state(series_dir: str | os.PathLike, bundle: str | os.PathLike) -> dict[str, Any]:
    """Append ``bundle``'s state (:func:`bundle_state`) to the series' :data:`STATES_FILE`, one
    line, flushed to disk (a crash leaves at most a torn last line, which readers skip: that
    state's bundle is still there). Returns the state."""
    state = bundle_state(bundle)
    line = (json.dumps(state, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(Path(series_dir) / STATES_FILE,
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return state


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _valid_state(s: Any) -> bool:
    if not isinstance(s, dict) or not isinstance(s.get("bundle"), str) \
            or not _MEMBER.match(s["bundle"]) or not _count(s.get("rows_fetched")):
        return False
    if s.get("at") is not None:
        try:
            datetime.fromisoformat(s["at"])
        except (TypeError, ValueError):
            return False
    by = s.get("tasks_by_session")
    return isinstance(by, dict) and all(
        isinstance(sid, str) and isinstance(c, dict)
        and all(st in TASK_STATUSES and _count(n) for st, n in c.items())
        for sid, c in by.items())


def recorded_states(series_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The lines of the series' :data:`STATES_FILE` (none when there is no such file). A line
    that is not a recorded state is an AnalysisError naming it; a torn last line (a crash
    while it was written) is skipped."""
    path = Path(series_dir) / STATES_FILE
    if not os.path.lexists(path):
        return []
    if not path.is_file() or path.is_symlink():
        raise AnalysisError(f"{path} is not a regular file; a series keeps its recorded states "
                            "there (aksnap watch --record writes it)")
    data = path.read_bytes()
    lines = data.split(b"\n")
    out = []
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            s = json.loads(raw)
        except ValueError:
            s = None
        if not _valid_state(s):
            if i == len(lines) and not data.endswith(b"\n"):
                break  # torn by a crash: its bundle is still in the series
            raise AnalysisError(f"{path} line {i} is not a recorded state; the file is written "
                                "by aksnap watch --record: remove that line (or the file, to "
                                "read only the bundles)")
        out.append(s)
    return out


def _instant(m) -> datetime | None:
    for v in (m.latest_timestamp, m.exported_at):
        if v:
            try:
                return datetime.fromisoformat(v)
            except ValueError:
                continue
    return None


def build(path: str | os.PathLike, session_id: str | None = None, thresholds=(),
          fail_on: str | None = None) -> dict[str, Any]:
    members = series_members(path)
    if members is None:
        raise AnalysisError(f"{path} is not a recorded series (a directory of bundles written "
                            "by aksnap watch --record)")
    if thresholds or fail_on:  # analyze's findings are of one bundle
        raise AnalysisError(f"--threshold and --fail-on judge one bundle's findings, and {path} is "
                            f"a recorded series: give one of its bundles, e.g. {members[-1]}")
    kept = {p.name for p in members}
    # pruned states from their lines; the bundles still there from the bundles themselves
    raw = {s["bundle"]: {**s, "kept": False} for s in recorded_states(path)
           if s["bundle"] not in kept}
    raw.update({p.name: {**bundle_state(p), "kept": True} for p in members})
    states = []
    statuses: list[str] = []
    first = None
    for name in sorted(raw, key=_order):
        r = raw[name]
        by = r["tasks_by_session"]
        counts: dict[str, int] = {}
        for sid, c in by.items():
            if session_id is None or sid == session_id:
                for st, n in c.items():
                    counts[st] = counts.get(st, 0) + n
        for st in counts:
            if st not in statuses:
                statuses.append(st)
        t = datetime.fromisoformat(r["at"]) if r["at"] else None
        first = first or t
        total = sum(counts.values())
        final = sum(n for st, n in counts.items() if st in TASK_FINAL_STATUSES)
        states.append({
            "bundle": name, "at": t.isoformat() if t else None,
            "elapsed_s": round((t - first).total_seconds(), 3) if t and first else None,
            "tasks": total, "percent_complete": round(100.0 * final / total, 2) if total else 0.0,
            "tasks_by_status": counts,
            # what the recording cost the cluster: a full export first, then updates
            "rows_fetched": r["rows_fetched"],
            "kept": r["kept"],
        })
    order = [s for s in TASK_STATUSES if s in statuses]
    return {"series": str(path), "session_id": session_id, "bundles": len(states),
            "kept": len(members), "statuses": order, "states": states}


def state_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per recorded state (what ``aksnap analyze DIR`` prints; the report draws
    the same rows): bundle, at, elapsed_s, tasks, percent_complete, a count per status,
    rows_fetched, kept (its bundle is still in the series; else pruned by ``--keep``)."""
    out = []
    for s in data["states"]:
        row = {k: s[k] for k in ("bundle", "at", "elapsed_s", "tasks", "percent_complete")}
        row.update({st: s["tasks_by_status"].get(st, 0) for st in data["statuses"]})
        row["rows_fetched"] = s["rows_fetched"]
        row["kept"] = s["kept"]
        out.append(row)
    return out


def sections(data: dict[str, Any]) -> list[Section]:
    cols = ["bundle", "at", "elapsed_s", "tasks", "percent_complete", *data["statuses"],
            "rows_fetched", "kept"]
    shown = ["elapsed_s", "tasks", "percent_complete", *data["statuses"], "rows_fetched"]
    if data["kept"] < data["bundles"]:
        shown.append("kept")  # some states' bundles were pruned by --keep
    return [Section("states", state_rows(data), cols, "tasks by status over time", shown)]


def _table(data: dict[str, Any]) -> str:
    from aksnap.output import render_rows

    s = sections(data)[0]
    pruned = data["bundles"] - data["kept"]
    head = (f"{data['bundles']} recorded states in {data['series']}"
            + (f" ({pruned} of them pruned by --keep: from {STATES_FILE})" if pruned else "")
            + (f", session {data['session_id']}" if data["session_id"] else ""))
    return head + "\n" + render_rows(s.rows, "table", list(s.table_columns))


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)
