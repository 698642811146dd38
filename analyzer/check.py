"""Check: integrity (checksums, format version) and graph anomalies of a bundle.

Anomalies come from ``queries/anomalies.sql`` (duplicate ids, results no task will produce,
references to ids not in the bundle, tasks waiting on aborted results, statuses contradicting
timestamps) and from the graph (cycles in the data DAG).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .common import render_sections


def build(snap, session_id: str | None = None, limit: int | None = 200) -> dict[str, Any]:
    snap.require_session(session_id)
    integrity = [{"kind": "integrity", "session_id": None, "object_id": None, "detail": p}
                 for p in snap.integrity_problems]
    rows = snap.query("anomalies", {"session_id": session_id}).to_pylist()
    g = snap.graph
    cycle = g.find_cycle()
    if cycle:
        ids = g.node_ids(cycle[:12])
        sess = g.session_id(cycle[0])
        if session_id is None or sess == session_id:
            rows.append({"kind": "cycle", "session_id": sess, "object_id": ids[0],
                         "detail": f"{len(cycle)} nodes depend on each other: "
                                   + " , ".join(ids) + (" ..." if len(cycle) > 12 else "")})
    counts = Counter(r["kind"] for r in integrity + rows)
    return {
        "bundle": str(snap.path),
        "format_version": snap.manifest.get("format_version"),
        "checksums": "not checked (--no-verify)" if not snap.verified else
                     ("ok" if not snap.integrity_problems else "FAILED"),
        "integrity": integrity,
        "anomalies": rows[:limit] if limit else rows,
        "counts": dict(sorted(counts.items())),
        "total": sum(counts.values()),
    }


def render(data: dict[str, Any], fmt: str = "table") -> str:
    head = [("bundle", data["bundle"]), ("format version", data["format_version"]),
            ("checksums", data["checksums"]),
            ("anomalies", data["total"] if data["total"] else "none")]
    head += [(f"  {k}", v) for k, v in data["counts"].items()]
    rows = data["integrity"] + data["anomalies"]
    return render_sections(data, fmt, [
        ("Findings", rows, ["kind", "session_id", "object_id", "detail"]),
    ], head)
