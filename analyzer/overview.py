"""Overview of each session of a bundle (``aksnap analyze``): counts by status, wall time,
throughput, phase breakdown, error classes, retries, top blockers, the critical path in one
line, and how many anomalies ``check`` finds.

Every per-session figure is computed for all sessions at once (grouped SQL, the blockers
ranking and the critical paths vectorised over every session, counts by ``bincount`` over the
graph's session codes). Up to ``SESSIONS_DETAILED`` sessions (or one ``--session``) are shown
in full; a bundle with more shows a summary: totals, and the sessions that stand out by
failures, by waiting and by duration, each with its critical path in one line.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import blockers as blockers_mod
from . import check as check_mod
from . import critical_path as critical_path_mod
from . import describe
from .common import Section, fmt_seconds, in_status_seconds, printable, render_data, render_sections
from aksnap.bundle import RESULT_STATUSES, TASK_STATUSES
from aksnap.output import render_kv

SESSIONS_DETAILED = 20  # more sessions than this (and no --session): a summary
TOP_SESSIONS = 5  # per ranking of the summary


def _grouped(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by session_id in one pass (order kept)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["session_id"], []).append(r)
    return out


def _retries(chains: pa.Table) -> dict[str, dict[str, Any]]:
    """Per session: retry chains, retries, most attempts, chains that recovered (Arrow group-by)."""
    if not chains.num_rows:
        return {}
    t = pa.table({"session_id": chains["session_id"], "attempts": chains["attempts"],
                  "retries": pc.subtract(chains["attempts"], 1),
                  "recovered": pc.cast(pc.equal(chains["final_status"], "COMPLETED"), pa.int64())})
    agg = t.group_by("session_id", use_threads=False).aggregate(
        [("attempts", "count"), ("retries", "sum"), ("attempts", "max"), ("recovered", "sum")])
    return {r["session_id"]: {"chains": r["attempts_count"], "retries": int(r["retries_sum"]),
                              "max_attempts": r["attempts_max"], "recovered": r["recovered_sum"]}
            for r in agg.to_pylist()}


NO_RETRIES = {"chains": 0, "retries": 0, "max_attempts": 1, "recovered": 0}


COUNT_SLICE = 1 << 20  # rows counted at once by status_counts


def status_counts(g, session_id: str | None = None) -> tuple[dict[str, dict[str, int]],
                                                              dict[str, dict[str, int]]]:
    """Tasks and results by status in each session (``session_id``: that one only), each
    session's statuses most numerous first, then by name: the counts of
    ``queries/status_counts.sql`` and ``queries/result_status_counts.sql`` (their definition;
    tests/test_analyzer.py proves these equal), counted by one ``bincount`` over the graph's
    status and session codes instead of decoding both tables' columns again (0.8 s at 10M
    tasks)."""
    names = g.sessions.to_pylist()
    session_of = np.asarray(g.session_of)
    T, S = g.n_tasks, len(names)

    def by_session(codes: np.ndarray, sess: np.ndarray, statuses) -> dict[str, dict[str, int]]:
        # counted a slice at a time: a few MB of temporaries reused, not a 10M-row int64 key
        # (fresh memory costs its page faults: 0.7 s for the results' 17M rows)
        K = len(statuses)
        n = np.zeros(S * K + 1, dtype=np.int64)  # the last slot: no session or no status
        for lo in range(0, len(codes), COUNT_SLICE):
            c = np.asarray(codes[lo:lo + COUNT_SLICE], dtype=np.int64)
            ss = np.asarray(sess[lo:lo + COUNT_SLICE], dtype=np.int64)
            key = ss * K + c
            key[(c < 0) | (c >= K) | (ss < 0) | (ss >= S)] = S * K
            n += np.bincount(key, minlength=S * K + 1)
        n = n[:S * K].reshape(S, K)
        out: dict[str, dict[str, int]] = {}
        for k in np.flatnonzero(n.sum(axis=1)).tolist():
            if session_id is not None and names[k] != session_id:
                continue
            row = [(statuses[c], int(n[k, c])) for c in np.flatnonzero(n[k]).tolist()]
            out[names[k]] = dict(sorted(row, key=lambda kv: (-kv[1], kv[0])))
        return out

    return (by_session(g.task_status, session_of[:T], TASK_STATUSES),
            by_session(g.result_status, session_of[T:], RESULT_STATUSES))


def _session_index(g, session_ids: list[str]) -> np.ndarray:
    """Graph session code -> position in ``session_ids`` (len(session_ids) when absent)."""
    code_of = {s: i for i, s in enumerate(g.sessions.to_pylist())}
    to_k = np.full(len(g.sessions) + 1, len(session_ids), dtype=np.int64)
    for k, s in enumerate(session_ids):
        if s in code_of:
            to_k[code_of[s]] = k
    return to_k


def _per_session_counts(g, to_k: np.ndarray, n_sessions: int, nodes: np.ndarray) -> np.ndarray:
    """How many of ``nodes`` each session holds (one bincount; ``to_k`` from _session_index)."""
    return np.bincount(to_k[g.session_of[nodes]], minlength=n_sessions + 1)[:n_sessions]


def _top_root_causes(snap, mask: np.ndarray, top: int) -> dict[int, list[dict[str, Any]]]:
    """The ``top`` failure origins of each session (by bad nodes explained, then id), keyed by
    session code: counted for every origin at once, described for the few shown."""
    g = snap.graph
    origins = g.origins(mask=mask)
    if not len(origins):
        return {}
    sums, _ = g.downstream_sums(origins, g.bad.astype(np.int64))
    explains = sums[:, 0]
    sess = g.session_of[origins]
    order = np.lexsort((g.id_rank(origins), -explains, sess))
    picked = _first_per_session(sess, order, top)
    out: dict[int, list[dict[str, Any]]] = {}
    for code in np.unique(sess[picked]).tolist():
        nodes = origins[picked[sess[picked] == code]]
        out[code] = describe.root_cause_rows(snap, nodes, None)[:top]
    return out


def _first_per_session(sess: np.ndarray, order: np.ndarray, top: int) -> np.ndarray:
    """The first ``top`` of ``order`` (grouped by session, ranked within) in each session."""
    sess_o = sess[order]
    first = np.r_[0, np.flatnonzero(sess_o[1:] != sess_o[:-1]) + 1]
    pos = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    return order[pos < top]


def _top_blockers(snap, r: blockers_mod.Ranking, top: int) -> dict[int, list[dict[str, Any]]]:
    """The ``top`` blockers of each session, keyed by session code (rank order kept)."""
    g = snap.graph
    if not len(r.nodes):
        return {}
    sess = g.session_of[r.nodes]
    order = np.argsort(sess, kind="stable")
    picked = _first_per_session(sess, order, top)
    out: dict[int, list[dict[str, Any]]] = {}
    for code in np.unique(sess[picked]).tolist():
        mine = picked[sess[picked] == code]
        rows = blockers_mod.rows(snap, r, mine)
        for i, row in enumerate(rows, 1):
            row["rank"] = i
        out[code] = rows
    return out


def _findings(snap, session_id: str | None, thresholds, fail_on, paths=None,
              ids=None) -> dict[str, Any]:
    """``findings.build`` (the critical paths computed here are reused)."""
    from . import findings as findings_mod

    return findings_mod.build(snap, session_id, thresholds, fail_on, paths=paths, path_ids=ids)


def _merge_findings(f: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The findings first, then the overview: ``findings`` (the list, ranked), ``verdict``
    (clean, summary, thresholds), and ``failing`` for ``--fail-on``."""
    verdict = {k: f[k] for k in ("clean", "summary", "counts", "omitted", "thresholds", "fail_on")}
    return {"verdict": verdict, "findings": f["findings"], **data, "failing": f["failing"]}


def _with_findings(snap, data: dict[str, Any], session_id: str | None, thresholds, fail_on,
                   paths=None, ids=None) -> dict[str, Any]:
    return _merge_findings(_findings(snap, session_id, thresholds, fail_on, paths, ids), data)


def _summary(snap, p: dict[str, Any]) -> list[dict[str, Any]]:
    return snap.query("session_summary", p).to_pylist()


def _detailed(session_id: str | None, summary: list[dict[str, Any]]) -> bool:
    """Whether the overview shows every session in full (else :func:`build_summary`)."""
    return session_id is not None or len(summary) <= SESSIONS_DETAILED


def _likely_detailed(g, session_id: str | None) -> bool:
    """:func:`_detailed` foreseen from the graph, before the summary is computed: the summary
    has a row per session having tasks (a guess only: the summary decides)."""
    if session_id is not None or len(g.sessions) <= SESSIONS_DETAILED:
        return True
    codes = np.asarray(g.session_of[:g.n_tasks])
    return int(np.count_nonzero(np.bincount(codes[codes >= 0], minlength=len(g.sessions)))) \
        <= SESSIONS_DETAILED


def _sql_sections(snap, p: dict[str, Any]) -> tuple:
    """The sections the SQL answers (by session): phase percentiles, error classes, retries;
    the phase percentiles first, the longest."""
    phases = _grouped(snap.query("phase_percentiles", p).to_pylist())
    errors = _grouped(snap.query("error_classes", p).to_pylist())
    retries = _retries(snap.query("retry_chains", p))
    return phases, errors, retries


def _anomalies(snap, session_id: str | None) -> dict[str, Any]:
    """The quick checks (``check.build``), counted by session (no object ids read)."""
    return check_mod.build(snap, session_id, limit=None, thorough=False, object_ids=False)


def _summary_then_anomalies(snap, p: dict[str, Any], session_id: str | None,
                            summary: Future) -> dict[str, Any]:
    """:func:`_summary` (into ``summary``, as soon as it is known), then :func:`_anomalies`."""
    try:
        summary.set_result(_summary(snap, p))
    except BaseException as e:
        summary.set_exception(e)
        raise
    return _anomalies(snap, session_id)


def build(snap, session_id: str | None = None, top: int = 3, thresholds=None,
          fail_on: str | None = None, with_findings: bool = True) -> dict[str, Any]:
    g = snap.graph  # first: it builds while the checksums are still being verified
    snap.require_session(session_id)
    p = {"session_id": session_id}
    # The SQL sections run in two threads, each on a connection of its own (Snapshot.twin):
    # the phase percentiles, error classes and retries; the sessions' summary then the quick
    # checks. Meanwhile this thread reads the timestamp columns every critical path needs,
    # then computes the graph's sections. DuckDB, Arrow and numpy release the GIL, and a
    # quantile's final sort, a walk over the graph or a column's conversion each keep one core
    # busy, not two. Each section's answer is the one it had alone; they are put together
    # below in one order. (Many sessions: the summary alone, as before.)
    twins = [t for t in (snap.twin(), snap.twin()) if t is not None] \
        if _likely_detailed(g, session_id) else []
    pool = ThreadPoolExecutor(2) if len(twins) == 2 else None
    try:
        if pool is not None:
            sql_sections = pool.submit(_sql_sections, twins[0], p)
            got_summary: Future = Future()
            checked = pool.submit(_summary_then_anomalies, twins[1], p, session_id, got_summary)
            critical_path_mod.read_columns(g)
            summary = got_summary.result()
        else:
            summary, sql_sections, checked = _summary(snap, p), None, None
        if not _detailed(session_id, summary):
            data = build_summary(snap, summary)
            return _with_findings(snap, data, None, thresholds, fail_on) if with_findings else data
        ids = [s["session_id"] for s in summary]
        mask = g.session_nodes(session_id)
        ranking = blockers_mod.rank(snap, mask)
        blocking = _per_session_counts(g, _session_index(g, ids), len(ids), ranking.frontier)
        top_blockers = _top_blockers(snap, ranking, top)
        causes = _top_root_causes(snap, mask, top)
        paths = critical_path_mod.compute(snap, ids)
        found = _findings(snap, session_id, thresholds, fail_on, paths, ids) if with_findings else None
        status, rstatus = status_counts(g, session_id)
        phases, errors, retries = sql_sections.result() if sql_sections else _sql_sections(snap, p)
        anomalies = checked.result() if checked else _anomalies(snap, session_id)
    except BaseException:
        for twin in twins:  # Ctrl-C or a failure: the SQL still running is not waited for
            twin.interrupt()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)  # never a query left running on a closed connection
        for twin in twins:
            twin.close_twin()
    per_session_anomalies: dict[str, int] = {}
    for a in anomalies["anomalies"]:
        per_session_anomalies[a["session_id"]] = per_session_anomalies.get(a["session_id"], 0) + 1
    code_of = {s: i for i, s in enumerate(g.sessions.to_pylist())}
    sessions = []
    for k, s in enumerate(summary):
        sid = s["session_id"]
        code = code_of.get(sid, -1)
        cp = critical_path_mod.session_detail(snap, paths, k)
        sessions.append({
            **s,
            "tasks_by_status": status.get(sid, {}),
            "results_by_status": rstatus.get(sid, {}),
            "phases": [{k2: r[k2] for k2 in ("partition_id", "phase", "tasks", "total_s", "mean_s", "p50_s",
                                              "p90_s", "max_s")} for r in phases.get(sid, [])],
            "error_classes": [{k2: r[k2] for k2 in ("status", "propagated", "error_class", "tasks", "example_task_id")}
                              for r in errors.get(sid, [])],
            "retries": retries.get(sid, NO_RETRIES),
            "top_blockers": [{k2: b[k2] for k2 in ("rank", "kind", "id", "status", "holds_results", "in_status_s")}
                             for b in top_blockers.get(code, [])],
            "blocking_nodes": int(blocking[k]),
            "root_causes": [{k2: r[k2] for k2 in ("kind", "id", "status", "explains", "message")}
                            for r in causes.get(code, [])],
            "critical_path": cp["line"],
            "anomalies": per_session_anomalies.get(sid, 0),
        })
    data = {"bundle": str(snap.path), "snapshot_time": snap.snapshot_time,
            "format_version": snap.manifest.format_version,
            "redacted": check_mod.redaction_detail(snap.manifest.redaction) if snap.manifest.redaction else None,
            "anomalies": anomalies["total"], "sessions": sessions}
    if found is None:  # the report builds them once for the whole page
        return data
    return _merge_findings(found, data)


def build_summary(snap, summary: list[dict[str, Any]], shown: int = TOP_SESSIONS) -> dict[str, Any]:
    """Many sessions: one flat row per session (vectorised), totals, and the sessions that
    stand out by failures, by waiting (their longest-waiting blocking node) and by duration.
    The anomaly count is left to ``aksnap check`` (its quick checks read the expected outputs
    of every task, the largest part of such a summary's time)."""
    g = snap.graph
    ids = [s["session_id"] for s in summary]
    mask = np.ones(g.n, dtype=bool)
    to_k = _session_index(g, ids)
    front = g.frontier(mask=mask)
    blocking = _per_session_counts(g, to_k, len(ids), front)
    front_waiting = front[~g.bad[front]]  # a failed node waits for nothing (see root causes)
    waiting = _per_session_counts(g, to_k, len(ids), front_waiting)
    waited = np.nan_to_num(in_status_seconds(snap, front_waiting), nan=0.0)
    longest_wait = np.zeros(len(ids) + 1)
    np.maximum.at(longest_wait, to_k[g.session_of[front_waiting]], waited)
    origins = g.origins(mask=mask)
    n_origins = _per_session_counts(g, to_k, len(ids), origins)
    rows = []
    for k, s in enumerate(summary):
        rows.append({**s, "blocking_nodes": int(blocking[k]),
                     "longest_wait_s": round(float(longest_wait[k]), 6) if waiting[k] else None,
                     "root_causes": int(n_origins[k])})
    by_status: dict[str, int] = {}
    for s in summary:
        name = s["session_status"] or "no session row"
        by_status[name] = by_status.get(name, 0) + 1

    def counts(codes: np.ndarray, names) -> dict[str, int]:
        c = np.bincount(codes[codes >= 0], minlength=len(names))
        return {names[i]: int(c[i]) for i in np.argsort(-c, kind="stable") if c[i]}

    def top_by(key: str) -> list[int]:
        v = np.array([r[key] if r[key] is not None else -1 for r in rows], dtype=float)
        order = np.argsort(-v, kind="stable")[:shown]
        return [int(i) for i in order if v[i] > 0]

    rankings = {"failures": top_by("failed"), "waiting": top_by("longest_wait_s"),
                "duration": top_by("elapsed_s")}
    picked = sorted({i for v in rankings.values() for i in v})
    paths = critical_path_mod.compute(snap, [ids[i] for i in picked])
    line = {i: critical_path_mod.session_detail(snap, paths, j)["line"] for j, i in enumerate(picked)}

    def brief(i: int) -> dict[str, Any]:
        r = rows[i]
        return {"session_id": r["session_id"], "session_status": r["session_status"], "tasks": r["tasks"],
                "failed": r["failed"], "running": r["running"], "elapsed_s": r["elapsed_s"],
                "longest_wait_s": r["longest_wait_s"], "blocking_nodes": r["blocking_nodes"],
                "critical_path": line[i]}

    return {"bundle": str(snap.path), "snapshot_time": snap.snapshot_time,
            "format_version": snap.manifest.format_version,
            "redacted": check_mod.redaction_detail(snap.manifest.redaction) if snap.manifest.redaction else None,
            "anomalies": None,
            "summary": {"sessions": len(rows), "sessions_by_status": by_status,
                        "tasks": sum(r["tasks"] for r in rows), "results": sum(r["results"] for r in rows),
                        "tasks_by_status": counts(g.task_status, TASK_STATUSES),
                        "results_by_status": counts(g.result_status, RESULT_STATUSES),
                        "sessions_with_failures": sum(1 for r in rows if r["failed"]),
                        "sessions_running": sum(1 for r in rows if r["running"]),
                        "blocking_nodes": int(len(front)), "root_causes": int(len(origins)),
                        "retried": sum(r["retried"] for r in rows)},
            "top_sessions": {k: [brief(i) for i in v] for k, v in rankings.items()},
            "sessions": rows}


def _counts(d: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in d.items())


def _render_summary(data: dict[str, Any], fmt: str) -> str:
    s = data["summary"]
    out = [render_kv([
        ("bundle", printable(data["bundle"])), ("snapshot time", data["snapshot_time"]),
        *([("redaction", data["redacted"])] if data.get("redacted") else []),
        ("sessions", f"{s['sessions']}  {_counts(s['sessions_by_status'])}"),
        ("tasks", f"{s['tasks']}  {_counts(s['tasks_by_status'])}"),
        ("results", f"{s['results']}  {_counts(s['results_by_status'])}"),
        ("with failures", f"{s['sessions_with_failures']} sessions, {s['root_causes']} root causes"),
        ("still running", f"{s['sessions_running']} sessions, {s['blocking_nodes']} blocking nodes"),
        ("retried attempts", s["retried"]),
        ("anomalies", "not counted over many sessions: aksnap check"),
        ("detail", "aksnap analyze BUNDLE --session SESSION_ID (or -o csv: one row per session)"),
    ])]
    cols = ["session_id", "session_status", "tasks", "failed", "running", "elapsed_s", "longest_wait_s",
            "critical_path"]
    titles = {"failures": "Most failed tasks", "waiting": "Longest waiting (a blocking node in its status)",
              "duration": "Longest wall time"}
    out.append(render_sections([(f"{titles[k]} (top {len(v)})", v, cols)
                                for k, v in data["top_sessions"].items()]))
    return "\n".join(out)


def _session_row(s: dict[str, Any]) -> dict[str, Any]:
    """A session of the detailed overview as one flat row (its lists are sections of their own)."""
    return ({k: v for k, v in s.items() if not isinstance(v, (list, dict))}
            | {"tasks_by_status": _counts(s["tasks_by_status"]),
               "results_by_status": _counts(s["results_by_status"]),
               "retry_chains": s["retries"]["chains"]})


def _findings_section(data: dict[str, Any]) -> list[Section]:
    from . import findings as findings_mod

    if "findings" not in data:
        return []
    return [Section("findings", findings_mod.rows(data), findings_mod.COLUMNS)]


def sections(data: dict[str, Any]) -> list[Section]:
    """sessions (one row per session: the main table), then the per-session lists, each one
    table with a ``session_id`` column (over many sessions: the sessions standing out), then
    the findings."""
    if "summary" in data:
        return [Section("sessions", data["sessions"])] + [
            Section(f"top_{k}", v) for k, v in data["top_sessions"].items()] + _findings_section(data)

    def each(key: str, columns: list[str]) -> Section:
        return Section(key, [{"session_id": s["session_id"], **r} for s in data["sessions"] for r in s[key]],
                       ["session_id", *columns])

    return [Section("sessions", [_session_row(s) for s in data["sessions"]]),
            each("phases", ["partition_id", "phase", "tasks", "total_s", "mean_s", "p50_s", "p90_s", "max_s"]),
            each("error_classes", ["status", "propagated", "error_class", "tasks", "example_task_id"]),
            each("root_causes", ["kind", "id", "status", "explains", "message"]),
            each("top_blockers", ["rank", "kind", "id", "status", "holds_results", "in_status_s"]),
            *_findings_section(data)]


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)


FINDINGS_SHOWN = 5  # the table shows the first few findings; `aksnap findings` shows them all


def _verdict(data: dict[str, Any]) -> str:
    """The findings, first: the verdict in one line, then the few that matter most."""
    from . import findings as findings_mod

    if "verdict" not in data:
        return ""
    out = [f"verdict: {printable(data['verdict']['summary'])}"]
    out += findings_mod.lines(data, FINDINGS_SHOWN)
    more = len(data["findings"]) - FINDINGS_SHOWN
    if more > 0:
        out.append(f"... {more} more: aksnap findings {printable(data['bundle'])}")
    return "\n".join(out) + "\n\n"


def _table(data: dict[str, Any]) -> str:
    return _verdict(data) + _detail(data)


def _detail(data: dict[str, Any]) -> str:
    if "summary" in data:
        return _render_summary(data, "table")
    out = [render_kv([("bundle", printable(data["bundle"])), ("snapshot time", data["snapshot_time"]),
                      *([("redaction", data["redacted"])] if data.get("redacted") else []),
                      ("sessions", len(data["sessions"])), ("anomalies", data["anomalies"])])]
    for s in data["sessions"]:
        rt = s["retries"]
        head = [
            ("session", f"{s['session_id']} ({s['session_status'] or 'no session row'})"),
            ("tasks", f"{s['tasks']}  {_counts(s['tasks_by_status'])}"),
            ("results", f"{s['results']}  {_counts(s['results_by_status'])}"),
            ("wall time", f"{fmt_seconds(s['elapsed_s'])}  ({s['first_created']} -> {s['last_ended']})"
             if s["elapsed_s"] is not None else "not started"),
            ("throughput", f"{s['avg_throughput']:.2f} tasks/s ended, {s['completed_throughput']:.2f} completed/s"
             if s["avg_throughput"] is not None else ""),
            ("retries", f"{rt['retries']} retries in {rt['chains']} chains, {rt['recovered']} recovered, "
                        f"up to {rt['max_attempts']} attempts" if rt["chains"] else "none"),
            ("critical path", s["critical_path"]),
            ("blocking nodes", s["blocking_nodes"]),
            ("anomalies", f"{s['anomalies']} (see: aksnap check)" if s["anomalies"] else "none"),
        ]
        phases = [r for r in s["phases"] if r["phase"] != "total"]
        out.append("\n" + "=" * 72 + "\n" + render_sections([
            ("Phases (seconds)", phases, ["partition_id", "phase", "tasks", "mean_s", "p50_s", "p90_s", "max_s", "total_s"]),
            ("Error classes", s["error_classes"], ["status", "propagated", "tasks", "error_class", "example_task_id"]),
            ("Root causes (failures with no failed input)", s["root_causes"],
             ["kind", "id", "status", "explains", "message"]),
            ("Top blockers", s["top_blockers"], ["rank", "kind", "id", "status", "holds_results", "in_status_s"]),
        ], head))
    return "\n".join(out)
