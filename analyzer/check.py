"""Check: integrity (checksums, format version) and graph anomalies of a bundle.

Quick checks (vectorised over the graph's arrays, plus one row-level SQL query; what
``aksnap analyze`` counts): references to ids not in the bundle, results no task will produce,
tasks waiting on aborted results, results still CREATED although their owner COMPLETED,
statuses contradicting timestamps, rows contradicting the counts the manifest records (its own
per session, and the server's at the end of the export). Thorough checks (``aksnap check``) add
duplicate ids, cycles in the data DAG and tasks whose ``created_by`` disagrees with their
ancestry lists.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow.compute as pc

from aksnap.bundle import (
    RESULT_STATUSES,
    TASK_FINAL_STATUSES,
    TASK_STATUSES,
    TASK_WAITING_STATUSES,
)

from .common import Section, render_data, render_sections
from .graph import KIND_PRODUCES, np_index

WAITING = [TASK_STATUSES.index(s) for s in TASK_WAITING_STATUSES]
WAITING_CODE = np.isin(np.arange(len(TASK_STATUSES) + 1), WAITING)  # by status code (-1: last)
CREATED = RESULT_STATUSES.index("CREATED")
COMPLETED_TASK = TASK_STATUSES.index("COMPLETED")
MAX_PER_KIND = 1000  # beyond this, a kind is summarised by its count


def _row(g, kind: str, node: int, detail: str) -> dict[str, Any]:
    return {"kind": kind, "session_id": g.session_id(node), "object_id": g.node_id(node),
            "detail": detail}


def graph_anomalies(snap, mask: np.ndarray, thorough: bool) -> list[dict[str, Any]]:
    g = snap.graph
    T = g.n_tasks
    rows: list[dict[str, Any]] = []
    for node, text in g.missing_refs:
        if mask[node]:
            rows.append(_row(g, "missing_reference", node, text))

    # candidates first (a few rows), then their other conditions: every condition evaluated
    # over all 17M results or 40M edges of a 10M-task bundle was one full-size temporary
    created = np.flatnonzero((g.result_status == CREATED) & mask[T:])
    expected = np.zeros(g.n_results, dtype=bool)
    expected[g.expected_out_result] = True
    orphan = created[(g.producer[created] < 0) & ~expected[created]]
    del expected
    for j in orphan[:MAX_PER_KIND].tolist():
        rows.append(_row(g, "result_without_producer", T + j,
                         "CREATED result with no owner task, no creating task and no task "
                         "expecting it: only the client can complete it"))

    bad_in = np.flatnonzero(g.bad[g.src]) if T else np.zeros(0, dtype=np.int64)  # edge order
    dst = g.dst[bad_in]
    bad_in = bad_in[(g.kind[bad_in] != KIND_PRODUCES) & (dst < T)]
    dst = g.dst[bad_in]
    bad_in = bad_in[WAITING_CODE[g.task_status[dst]] & mask[dst]]
    waiting = {}
    for src, dst in zip(g.src[bad_in].tolist(), g.dst[bad_in].tolist()):
        waiting.setdefault(dst, []).append(src)
    for t, srcs in list(waiting.items())[:MAX_PER_KIND]:
        names = ", ".join(f"{g.node_id(r)} ({g.status_name(r)})" for r in sorted(srcs)[:3])
        rows.append(_row(g, "waiting_on_aborted", t,
                         f"task is {g.status_name(t)} but its input {names} will never complete"))

    owner = g.producer[created]
    stale = created[(owner >= 0) & (g.task_status[np.maximum(owner, 0)] == COMPLETED_TASK)]
    for j in stale[:MAX_PER_KIND].tolist():
        rows.append(_row(g, "status_timestamp", T + j,
                         f"result is still CREATED although its producer "
                         f"{g.node_id(int(g.producer[j]))} is COMPLETED"))

    if thorough:
        for ids, offset, what in ((g.task_ids, 0, "task"), (g.result_ids, T, "result")):
            first = np_index(pc.index_in(ids, value_set=ids))
            dup = np.flatnonzero(first != np.arange(len(first)))
            for i in dup[:MAX_PER_KIND].tolist():
                if mask[offset + i]:
                    rows.append(_row(g, "duplicate_id", offset + i,
                                     f"{what} id appears more than once (first at row {first[i]})"))
        cycle = g.find_cycle()
        if cycle and mask[cycle[0]]:
            ids = g.node_ids(np.array(cycle[:12]))
            rows.append({"kind": "cycle", "session_id": g.session_id(cycle[0]), "object_id": ids[0],
                         "detail": f"{len(cycle)} nodes depend on each other: " + ", ".join(ids)
                                   + (" ..." if len(cycle) > 12 else "")})
    return rows


# Sets of statuses a row never leaves once in them, per table: between the moment a row was
# read and the server's count at the end of the export, such a set can only gain rows. A task
# in a final status stays in it; a result COMPLETED or ABORTED can only be DELETED after.
_CLOSED_SETS: dict[str, list[tuple[str, ...]]] = {
    "tasks": [(s,) for s in TASK_FINAL_STATUSES],
    "results": [("DELETED",), ("COMPLETED", "DELETED"), ("ABORTED", "DELETED")],
}


def _recorded_counts(entry: dict[str, Any], table: str) -> Any:
    """The server's counts by status a manifest records for ``table`` in ``entry`` (a session
    entry or ``consistency``): ``server_counts.<table>``, or for tasks the older
    ``server_task_counts_at_end``; None when nothing is recorded."""
    both = entry.get("server_counts")
    if isinstance(both, dict) and both.get(table) is not None:
        return both[table]
    return entry.get("server_task_counts_at_end") if table == "tasks" else None


def _count_findings(where: str, table: str, rows: dict[str, int], server: Any,
                    session: str | None) -> list[dict[str, Any]]:
    """The rows (count by status) that contradict the server's ``server`` counts: more rows
    in a status set they never leave than the server counted at the end, or more rows in all
    than it held."""
    def finding(detail: str) -> dict[str, Any]:
        return {"kind": "server_counts", "session_id": session, "object_id": None,
                "detail": detail}

    if not isinstance(server, dict) or not all(isinstance(k, str) and type(v) is int and v >= 0
                                                for k, v in server.items()):
        return [finding(f"{where} records server {table} counts that are not counts by status "
                        "(status name -> count): they cannot be compared with the rows")]
    out = []
    for closed in _CLOSED_SETS[table]:
        have = sum(rows.get(s, 0) for s in closed)
        said = sum(server.get(s, 0) for s in closed)
        if have > said:
            name = " or ".join(closed)
            out.append(finding(
                f"the bundle holds {have} {name} {table} but the server counted {said} when the "
                f"export ended ({where}); a {table[:-1]} never leaves {name}, so rows were "
                "changed after they were read (a tampered bundle, or the parent of an update)"))
    have, said = sum(rows.values()), sum(server.values())
    if have > said:
        out.append(finding(f"the bundle holds {have} {table} but the server held {said} when the "
                           f"export ended ({where}): rows the server does not have"))
    return out


def _by_session_status(session_of: np.ndarray, status: np.ndarray, sessions: list[str],
                       statuses: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Rows counted by session and status (``{session: {status: n}}``), from code arrays."""
    ok = status >= 0
    if not ok.all():  # else no masked copies (17M results at 10M tasks)
        session_of, status = session_of[ok], status[ok]
    k = len(statuses)
    code = session_of.astype(np.int64)
    code *= k
    code += status
    m = np.bincount(code, minlength=len(sessions) * k).reshape(len(sessions), k)
    return {sessions[i]: {statuses[j]: int(m[i, j]) for j in np.flatnonzero(m[i])}
            for i in np.flatnonzero(m.sum(axis=1))}


def server_count_findings(snap, session_id: str | None = None) -> list[dict[str, Any]]:
    """The bundle's rows against the counts its manifest records: each session's own row
    counts (``tasks``, ``results``, ``non_final_tasks``: exact), and the server's counts by
    status at the end of the export (``server_counts`` or ``server_task_counts_at_end``, per
    session and over the selection: see :data:`_CLOSED_SETS` for what they prove). Silent when
    the manifest records nothing."""
    m = snap.manifest
    entries = [e for e in (m.sessions or []) if isinstance(e, dict)
               and isinstance(e.get("session_id"), str)]
    consistency = m.consistency if isinstance(m.consistency, dict) else {}
    if not entries and not any(_recorded_counts(consistency, t) is not None
                               for t in ("tasks", "results")):
        return []
    g = snap.graph  # its arrays: one node per row, with its session and status codes
    names = g.sessions.to_pylist()
    T = g.n_tasks
    counts = {"tasks": _by_session_status(g.session_of[:T], g.task_status, names, TASK_STATUSES),
              "results": _by_session_status(g.session_of[T:], g.result_status, names,
                                            RESULT_STATUSES)}
    out: list[dict[str, Any]] = []
    for i, e in enumerate(entries):
        sid = e["session_id"]
        if session_id is not None and sid != session_id:
            continue
        where = f"manifest sessions[{i}]"
        tasks, results = counts["tasks"].get(sid, {}), counts["results"].get(sid, {})
        open_tasks = sum(n for st, n in tasks.items() if st not in TASK_FINAL_STATUSES)
        for key, have in (("tasks", sum(tasks.values())), ("results", sum(results.values())),
                          ("non_final_tasks", open_tasks)):
            said = e.get(key)
            if type(said) is int and said != have:
                out.append({"kind": "manifest_counts", "session_id": sid, "object_id": None,
                            "detail": f"the manifest says this session has {said} "
                                      f"{key.replace('_', '-')}, but the bundle holds {have}"})
        for table, rows in (("tasks", tasks), ("results", results)):
            server = _recorded_counts(e, table)
            if server is not None:
                out += _count_findings(where, table, rows, server, sid)
    if session_id is None:
        for table in ("tasks", "results"):
            server = _recorded_counts(consistency, table)
            if server is not None:
                rows: dict[str, int] = {}
                for per in counts[table].values():
                    for st, n in per.items():
                        rows[st] = rows.get(st, 0) + n
                out += _count_findings("manifest consistency, over the selection", table, rows,
                                       server, None)
    return out


def build(snap, session_id: str | None = None, limit: int | None = 200,
          thorough: bool = True, object_ids: bool = True) -> dict[str, Any]:
    """The anomalies of ``snap`` (one session's with ``session_id``), the first ``limit``;
    ``object_ids=False``: the timestamp contradictions without their ids (for counts: at 10M
    tasks reading the ids is most of that query's time)."""
    integrity = [{"kind": "integrity", "session_id": None, "object_id": None, "detail": p}
                 for p in snap.integrity_problems]
    rows: list[dict[str, Any]] = []
    # A bundle whose files fail their checks is reported as such; its graph is not analysed
    # (answers computed from damaged files would be wrong, or fail half-way).
    if snap.usable and not integrity:
        snap.require_session(session_id)
        g = snap.graph
        mask = g.session_nodes(session_id)
        rows = graph_anomalies(snap, mask, thorough)
        p = {"session_id": session_id}
        rows += snap.query("timestamp_contradictions",
                           {**p, "count_only": None if object_ids else "true"}).to_pylist()
        rows += server_count_findings(snap, session_id)
        if thorough:
            rows += snap.query("spawn_mismatches", p).to_pylist()
    rows.sort(key=lambda r: (r["kind"], r["session_id"] or "", r["object_id"] or "", r["detail"]))
    counts = Counter(r["kind"] for r in integrity + rows)
    return {
        "bundle": str(snap.path),
        "format_version": snap.manifest.format_version if snap.manifest else None,
        "redaction": snap.manifest.redaction if snap.manifest else None,
        "checksums": "not checked (--no-verify)" if not snap.verified else
                     ("ok" if not snap.integrity_problems else "FAILED"),
        "checks": "thorough" if thorough else "quick",
        "integrity": integrity,
        "anomalies": rows[:limit] if limit else rows,
        "counts": dict(sorted(counts.items())),
        "total": sum(counts.values()),
    }


FINDING_COLUMNS = ["kind", "session_id", "object_id", "detail"]


def redaction_detail(r: dict[str, Any] | None) -> str:
    """The manifest's redaction record, for a line already titled "redaction" (``aksnap
    redact``; docs/sharing.md): how, with which key, what became of ids and messages."""
    if not r:
        return "none (original strings)"
    return (f"keyed pseudonyms ({r.get('method')}, key {r.get('key_fingerprint')}); ids: "
            f"{r.get('ids')}, messages: {r.get('messages')}")


def redaction_line(r: dict[str, Any] | None) -> str:
    """The manifest's redaction record in one line that says it is one (the report's header)."""
    return f"redacted: {redaction_detail(r)}" if r else redaction_detail(r)


def sections(data: dict[str, Any]) -> list[Section]:
    """One table: integrity problems first, then the anomalies (as many as ``build`` kept)."""
    return [Section("findings", data["integrity"] + data["anomalies"], FINDING_COLUMNS),
            Section("counts", [{"kind": k, "count": v} for k, v in data["counts"].items()],
                    ["kind", "count"])]


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)


def _table(data: dict[str, Any]) -> str:
    head = [("bundle", data["bundle"]), ("format version", data["format_version"]),
            ("checksums", data["checksums"]),
            ("redaction", redaction_detail(data.get("redaction"))),
            ("anomalies", data["total"] if data["total"] else "none")]
    head += [(f"  {k}", v) for k, v in data["counts"].items()]
    # Integrity problems are whole sentences: shown in full, before the findings table.
    head += [("problem", r["detail"]) for r in data["integrity"]]
    rows = data["anomalies"]
    if data["total"] > len(rows) + len(data["integrity"]):
        head.append(("shown", f"the first {len(rows)}; -o json or --session for the rest"))
    return render_sections([
        ("Findings", rows, FINDING_COLUMNS),
    ], head)
