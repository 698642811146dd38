"""Overview of each session of a bundle (``aksnap analyze``): counts by status, wall time,
throughput, phase breakdown, error classes, retries, top blockers, the critical path in one
line, and how many anomalies ``check`` finds."""

from __future__ import annotations

from typing import Any

from . import blockers as blockers_mod
from . import check as check_mod
from . import critical_path as critical_path_mod
from . import lineage as lineage_mod
from .common import fmt_seconds, printable, render_sections
from aksnap.output import render_kv, render_rows, to_json


def build(snap, session_id: str | None = None, top: int = 3) -> dict[str, Any]:
    snap.graph  # first: it builds while the checksums are still being verified
    snap.require_session(session_id)
    p = {"session_id": session_id}
    summary = snap.query("session_summary", p).to_pylist()
    status = snap.query("status_counts", p).to_pylist()
    rstatus = snap.query("result_status_counts", p).to_pylist()
    phases = snap.query("phase_percentiles", p).to_pylist()
    errors = snap.query("error_classes", p).to_pylist()
    chains = snap.query("retry_chains", p).to_pylist()
    retries: list[dict[str, Any]] = []
    for sid in dict.fromkeys(c["session_id"] for c in chains):
        mine = [c for c in chains if c["session_id"] == sid]
        retries.append({"session_id": sid, "chains": len(mine),
                        "retries": sum(c["attempts"] - 1 for c in mine),
                        "max_attempts": max(c["attempts"] for c in mine),
                        "recovered": sum(c["final_status"] == "COMPLETED" for c in mine)})
    anomalies = check_mod.build(snap, session_id, limit=None, thorough=False)
    per_session_anomalies: dict[str, int] = {}
    for a in anomalies["anomalies"]:
        per_session_anomalies[a["session_id"]] = per_session_anomalies.get(a["session_id"], 0) + 1
    sessions = []
    for s in summary:
        sid = s["session_id"]
        ph = [{k: r[k] for k in ("partition_id", "phase", "tasks", "total_s", "mean_s", "p50_s", "p90_s", "max_s")}
              for r in phases if r["session_id"] == sid]
        blk = blockers_mod.build(snap, sid, limit=top)
        cp = critical_path_mod.build_session(snap, sid)
        rt = next((r for r in retries if r["session_id"] == sid), None)
        smask = snap.graph.session_nodes(sid)
        rc = lineage_mod.root_cause_rows(snap, snap.graph.origins(mask=smask), None)[:top]
        sessions.append({
            **s,
            "tasks_by_status": {r["status"]: r["tasks"] for r in status if r["session_id"] == sid},
            "results_by_status": {r["status"]: r["results"] for r in rstatus if r["session_id"] == sid},
            "phases": ph,
            "error_classes": [{k: r[k] for k in ("status", "propagated", "error_class", "tasks", "example_task_id")}
                              for r in errors if r["session_id"] == sid],
            "retries": {"chains": rt["chains"], "retries": int(rt["retries"]),
                        "max_attempts": rt["max_attempts"], "recovered": rt["recovered"]}
            if rt else {"chains": 0, "retries": 0, "max_attempts": 1, "recovered": 0},
            "top_blockers": [{k: b[k] for k in ("rank", "kind", "id", "status", "holds_results", "in_status_s")}
                             for b in blk["blockers"]],
            "blocking_nodes": blk["blocking_nodes"],
            "root_causes": [{k: r[k] for k in ("kind", "id", "status", "explains", "message")} for r in rc],
            "critical_path": cp["line"],
            "anomalies": per_session_anomalies.get(sid, 0),
        })
    return {"bundle": str(snap.path), "snapshot_time": snap.snapshot_time,
            "format_version": snap.manifest.format_version,
            "anomalies": anomalies["total"], "sessions": sessions}


def _counts(d: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in d.items())


def render(data: dict[str, Any], fmt: str = "table") -> str:
    if fmt == "json":
        return to_json(data)
    if fmt == "csv":
        flat = [{k: v for k, v in s.items() if not isinstance(v, (list, dict))}
                | {"tasks_by_status": _counts(s["tasks_by_status"]),
                   "results_by_status": _counts(s["results_by_status"]),
                   "retry_chains": s["retries"]["chains"]}
                for s in data["sessions"]]
        return render_rows(flat, "csv")
    out = [render_kv([("bundle", printable(data["bundle"])), ("snapshot time", data["snapshot_time"]),
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
        out.append("\n" + "=" * 72 + "\n" + render_sections(s, "table", [
            ("Phases (seconds)", phases, ["partition_id", "phase", "tasks", "mean_s", "p50_s", "p90_s", "max_s", "total_s"]),
            ("Error classes", s["error_classes"], ["status", "propagated", "tasks", "error_class", "example_task_id"]),
            ("Root causes (failures with no failed input)", s["root_causes"],
             ["kind", "id", "status", "explains", "message"]),
            ("Top blockers", s["top_blockers"], ["rank", "kind", "id", "status", "holds_results", "in_status_s"]),
        ], head))
    return "\n".join(out)
