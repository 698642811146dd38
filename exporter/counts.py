"""The server's own counts by status, and what they allow a bundle's rows to be.

Per plan group of sessions (one session for a small selection): ``Tasks.CountTasksByStatus``
(one call) and ``Results.ListResults`` counted per status (``page_size = 0``, one call per
status: ArmoniK has no results count by status) plus the results' total. A plain export
records them in its manifest (``sessions[i].server_counts``, ``consistency.server_counts``);
an update takes them before and after its fetches and checks its merge against them.

What the check may rely on (ArmoniK.Core): a task in a final status never changes, and a
result leaves COMPLETED or ABORTED only for DELETED, which it never leaves. So the rows in a
final task status, and the results in {COMPLETED, DELETED}, {ABORTED, DELETED} or {DELETED},
can only grow in number: a merge that is a true picture of the cluster between the two counts
has, for each of these, at least the count before and at most the count after. Other
statuses come and go (PENDING rises and falls), so nothing is asked of them; the parent's
rows in them are fetched again anyway.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from aksnap.bundle import TASK_FINAL_STATUSES
from aksnap.exporter.client import RawClient
from aksnap.exporter.decode import status_counts_from_raw
from aksnap.exporter.plan import TABLES
from aksnap.exporter.requests import (count_tasks_request, row_filters, sessions_filters,
                                     status_filters)
from aksnap.exporter.selection import count

#: The result statuses Core stores (NOTFOUND exists only in watch replies).
RESULT_COUNTED = ("CREATED", "COMPLETED", "ABORTED", "DELETED")
#: Sets of statuses whose number of rows can only grow (see the module's docstring).
MONOTONE = {"tasks": tuple((s,) for s in TASK_FINAL_STATUSES),
            "results": (("COMPLETED", "DELETED"), ("ABORTED", "DELETED"), ("DELETED",))}


@dataclass
class Counts:
    """Rows by status, per table, of a session or a group of sessions; ``totals`` the rows
    whatever their status (the results' is its own count: a status outside
    ``RESULT_COUNTED`` would be missed by the sum)."""

    by_status: dict[str, dict[str, int]] = field(default_factory=lambda: {t: {} for t in TABLES})
    totals: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TABLES})

    def add(self, other: "Counts") -> None:
        for t in TABLES:
            for s, n in other.by_status[t].items():
                self.by_status[t][s] = self.by_status[t].get(s, 0) + n
            self.totals[t] += other.totals[t]

    def as_manifest(self) -> dict[str, dict[str, int]]:
        """The manifest's shape: ``{"tasks": {STATUS: n}, "results": {STATUS: n}}``, statuses
        with no row left out, sorted."""
        return {t: {s: n for s, n in sorted(self.by_status[t].items()) if n}
                for t in TABLES}


def server_counts(client: RawClient, group: list[str]) -> Counts:
    """The server's counts of one plan group of sessions: ``2 + len(RESULT_COUNTED)`` calls,
    sent together (each is a count over the group's rows on the server: together they take
    about as long as the slowest)."""
    one = group[0] if len(group) == 1 else None
    with ThreadPoolExecutor(max_workers=2 + len(RESULT_COUNTED),
                            thread_name_prefix="aksnap-count") as pool:
        tasks = pool.submit(lambda: status_counts_from_raw(
            client.call("count_tasks", count_tasks_request(one or group))))
        total = pool.submit(count, client, "results", row_filters("results", one) if one
                            else sessions_filters("results", group))
        results = {s: pool.submit(count, client, "results", status_filters("results", group, s))
                   for s in RESULT_COUNTED}
        c = Counts()
        by_task = tasks.result()
        c.by_status["tasks"] = {s: n for s, n in by_task.items() if n}
        c.totals["tasks"] = sum(by_task.values())
        c.by_status["results"] = {s: n for s, f in results.items() if (n := f.result())}
        c.totals["results"] = total.result()
    return c


def rows_counts(rows: dict[str, pa.Table],
                groups: list[list[str]]) -> dict[tuple[str, ...], Counts]:
    """The same counts for rows in hand (``session_id`` and ``status`` columns), per group:
    one ``group_by`` per table, no Python per row."""
    group_of = {s: tuple(g) for g in groups for s in g}
    out = {tuple(g): Counts() for g in groups}
    for table in TABLES:
        t = rows[table].select(["session_id", "status"])
        if not t.num_rows:
            continue
        agg = t.group_by(["session_id", "status"]).aggregate([("status", "count")])
        for s, status, n in zip(agg.column("session_id").to_pylist(),
                                agg.column("status").to_pylist(),
                                agg.column("status_count").to_pylist()):
            g = group_of.get(s)
            if g is None:
                continue
            c = out[g]
            c.by_status[table][status] = c.by_status[table].get(status, 0) + n
            c.totals[table] += n
    return out


def disagreement(before: Counts, merged: Counts, after: Counts) -> str | None:
    """Why ``merged`` cannot be the cluster between the counts ``before`` and ``after`` (a
    phrase), or None. Row totals: never fewer than before (a row was missed), never more than
    after (rows were deleted); each status set that can only grow: within its two counts."""
    for table in TABLES:
        if merged.totals[table] < before.totals[table]:
            return (f"{merged.totals[table]} {table} rows, the server had "
                    f"{before.totals[table]} before the fetches")
        if merged.totals[table] > after.totals[table]:
            return (f"{merged.totals[table]} {table} rows, the server has "
                    f"{after.totals[table]} after them")
        for statuses in MONOTONE[table]:
            lo, got, hi = (sum(c.by_status[table].get(s, 0) for s in statuses)
                           for c in (before, merged, after))
            if not lo <= got <= hi:
                return (f"{got} {table} {'/'.join(statuses)}, the server counted {lo} before "
                        f"and {hi} after")
    return None
