"""The manifest an export writes: a typed :class:`aksnap.bundle.Manifest`, filled from what
the run learned (the selection, the writer's tallies, the units' reports, the client's
counters). The bundle writer adds the tables' entries and writes it last."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aksnap import __version__
from aksnap.bundle import Manifest, utc_now_iso
from aksnap.exporter.budget import Cost
from aksnap.exporter.client import CallStats, Connection
from aksnap.exporter.counts import Counts
from aksnap.exporter.plan import TABLES
from aksnap.exporter.runner import Tallies
from aksnap.exporter.scan import UnitReport
from aksnap.exporter.selection import SelectedSessions, Selection


@dataclass
class ExportRecord:
    """Everything the manifest says, gathered by ``export`` as it goes: the first fields
    before the scan, the others from it."""

    started_at: str
    versions: dict[str, str]
    connection: Connection
    selection: Selection
    sessions: SelectedSessions
    page_size: int | None
    jobs: int
    tallies: Tallies = field(default_factory=Tallies)
    reports: list[UnitReport] = field(default_factory=list)
    stats: CallStats = field(default_factory=CallStats)
    # What the capture cost the control plane (the client's, as the manifest is built).
    cost: Cost | None = None
    # The server's own counts by status after the scan, per plan group of sessions (a
    # single session each for a small selection).
    server_counts: dict[tuple[str, ...], Counts] = field(default_factory=dict)


def build_manifest(rec: ExportRecord) -> Manifest:
    """The typed manifest (its ``tables`` are filled by ``BundleWriter.commit``)."""
    consistency = {table: _consistency(table, rec.reports) for table in TABLES}
    total = Counts()
    for c in rec.server_counts.values():
        total.add(c)
    consistency["server_counts"] = total.as_manifest()
    consistency["server_task_counts_at_end"] = consistency["server_counts"]["tasks"]
    consistency["retries"] = rec.stats.retries
    consistency["resource_exhausted"] = rec.stats.resource_exhausted
    non_final = {s: rec.tallies.session_open.get(s, 0) for s in rec.sessions.ids}
    return Manifest(
        tables={},
        snapshot="final" if not any(non_final.values()) else "live",
        exported_at=rec.started_at,
        export_finished_at=utc_now_iso(),
        latest_timestamp=rec.tallies.latest.isoformat() if rec.tallies.latest else None,
        armonik_versions=rec.versions,
        source=rec.connection.describe(),
        selection=rec.selection.as_manifest(),
        sessions=_session_entries(rec, non_final),
        exporter={"tool": "aksnap", "version": __version__,
                  "page_size": rec.page_size or "auto", "jobs": rec.jobs},
        consistency=consistency,
        warnings=[w for table in TABLES if (w := _warning(table, consistency[table]))],
        cost=rec.cost.record() if rec.cost is not None else None,
    )


def _session_entries(rec: ExportRecord, non_final: dict[str, int]) -> list[dict[str, Any]]:
    status = rec.sessions.status_of()
    t = rec.tallies
    alone = {g[0]: c.as_manifest() for g, c in rec.server_counts.items() if len(g) == 1}
    return [{"session_id": s, "status": status.get(s),
             "tasks": t.session_tasks.get(s, 0),
             "non_final_tasks": non_final[s],
             Manifest.SERVER_COUNTS: alone.get(s),
             "server_task_counts_at_end": alone[s]["tasks"] if s in alone else None,
             "results": t.session_results.get(s, 0)} for s in rec.sessions.ids]


def _consistency(table: str, reports: list[UnitReport]) -> dict[str, int]:
    """How the table's scans went: pages, rows replaced or dropped, rescans, shortfalls."""
    reps = [r for r in reports if r.name.startswith(table + "/")]
    return {
        "units": len(reps),
        "pages": sum(r.pages for r in reps),
        "reported_total": sum(r.reported_total for r in reps
                              if not r.name.endswith("/residual")),
        "replaced_across_pages": sum(r.replaced for r in reps),
        "late_duplicates_dropped": sum(r.late_duplicates for r in reps),
        "rescans": sum(r.rescans for r in reps),
        "missing_vs_reported_total": sum(r.short for r in reps),
        "units_stopped_growing": sum(r.truncated for r in reps),
    }


def _warning(table: str, c: dict[str, int]) -> str | None:
    if c["units_stopped_growing"]:
        return (f"{c['units_stopped_growing']} {table} scans grew faster than they could "
                "be read and were stopped at 4 times their starting rows: rows may be "
                "missing, older ones included; export again when the sessions are "
                "calmer, or with a larger --page-size")
    if c["missing_vs_reported_total"]:
        return (f"{c['missing_vs_reported_total']} {table} arrived while the export ran "
                f"and are not in the bundle (after {c['rescans']} rescans)")
    return None
