"""``update()``: refresh a bundle from its cluster, fetching only what can have changed.

A full export of a 1M-task session reads every row again although most of them are final and
cannot change any more (ArmoniK never changes a task in a final status, nor a result that is
COMPLETED or ABORTED except by deleting it). An update reads, per session of the previous
bundle (the *parent*):

1. the tasks and results that were not final in the parent, by id (``TASK_ID EQ`` alternatives,
   ``IDS_PER_REQUEST`` ids a request, each narrowed by the session); a session with more than
   ``WHOLE_SESSION_SHARE`` of a table's rows still open (a run caught early) is exported whole
   instead: one scan costs less than thousands of calls of 500 alternatives each
   (``update.mostly_open_sessions``);
2. the tasks and results created since the parent was taken (``CREATED_AT >= cutoff``); the
   cutoff is on the cluster's clock, computed from the parent alone, so the exporter's clock
   never matters: ``latest_timestamp`` (a timestamp the cluster wrote, so at most the
   cluster's time when the parent's export ended) minus the parent's export duration minus
   ``CLOCK_MARGIN_S``: at most the cluster's time when the parent's export began, so a row
   the parent could not have seen is always after it;
3. the results DELETED since (a count by status; the rows only when it grew).

It merges them with the parent's other rows (Arrow: ``is_in`` on the ids, row group by row
group, no Python per row) and writes a new bundle through :class:`BundleWriter`, atomically.
Sessions that the selection now covers and the parent did not are exported whole; sessions it
no longer covers are dropped (a full export with the same selection would do the same).

Before anything is written, the cluster must be the parent's (:func:`_check_same_cluster`):
it holds the parent's sessions, the same ones (creation time, partitions, the tasks the
parent saw final); a session deleted while others remain is dropped and said.

Each updated session is checked against the server's counts by status, taken before and after
the fetches (:mod:`aksnap.exporter.counts`): fewer merged rows than the server had before
means a row was missed, more than it had after means rows were deleted, and a final status
(which can only grow) outside its two counts means a parent row lies: either way that session
is exported whole instead, and the manifest says so (``update.rescanned_sessions``, and why).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aksnap.bundle import (
    ID_COLUMN,
    RESULT_OPEN_STATUSES,
    TASK_FINAL_STATUSES,
    BundleError,
    OpenBundle,
    utc_now_iso,
)
from aksnap.bundle_writer import BundleWriter, replaceable_problem
from aksnap.exporter.api import (
    DEFAULT_JOBS,
    DEFAULT_MAX_RECEIVE_CEILING,
    ExportSummary,
    check_out,
    check_sizes,
    group_server_counts,
    read_summary,
    run_into_bundle,
)
from aksnap.exporter.budget import Throttle
from aksnap.exporter.client import (
    Connection,
    ConnectionOptions,
    RawClient,
    RetryPolicy,
    SelectionError,
    TlsFiles,
    connection_of,
)
from aksnap.exporter.counts import Counts, disagreement, rows_counts, server_counts
from aksnap.exporter.manifest import ExportRecord, build_manifest
from aksnap.exporter.plan import TABLES, session_groups
from aksnap.exporter.requests import (
    created_since_filters,
    ids_filters,
    pairs_filters,
    row_filters,
    session_filters,
    sessions_filters,
    status_filters,
)
from aksnap.exporter.runner import Progress, ScanContext, Tallies, scan_sessions
from aksnap.exporter.scan import Unit, UnitReport, UnitScan
from aksnap.exporter.selection import (
    IDS_PER_CALL,
    SelectedSessions,
    Selection,
    count,
    nothing_selected,
    read_whole,
    resolve_sessions,
)

__all__ = ["update", "CLOCK_MARGIN_S", "IDS_PER_REQUEST"]

#: Ids per ``TASK_ID EQ`` request: about 100 bytes of filter each (50 KiB a request).
IDS_PER_REQUEST = 500
# Above this share of a session's rows (of one table) still open in the parent, those rows are
# read with the session's scan instead of by id. Measured on a live 1M-task htcmock session a
# third open: by id 109 s (1,800 calls the server evaluates as 500-way ORs), whole 28 s.
WHOLE_SESSION_SHARE = 0.25
#: Slack on the cluster's clock for the created-since cutoff (clocks of Core's pods differ).
CLOCK_MARGIN_S = 5.0
#: Final tasks per session whose presence on the cluster is checked (one count per 500).
FINAL_SAMPLE = 4
#: Old rows are merged this many at a time.
MERGE_BATCH_ROWS = 128 * 1024
#: A result in one of these statuses cannot change, except to DELETED (counted separately).
_RESULT_SETTLED = ("COMPLETED", "ABORTED")


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        dt = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def cutoff_of(manifest) -> datetime | None:
    """The cluster-clock instant at or before which the parent's export began (None: the
    parent holds no timestamp, so every row is fetched again)."""
    latest = _parse(manifest.latest_timestamp)
    if latest is None:
        return None
    began, ended = _parse(manifest.exported_at), _parse(manifest.export_finished_at)
    took = (ended - began).total_seconds() if began and ended and ended >= began else 0.0
    return latest - timedelta(seconds=took + CLOCK_MARGIN_S)


def _selection_of(manifest, where: Path) -> Selection:
    sel = manifest.selection or {}
    try:
        return Selection.of(sel.get("sessions") or (), bool(sel.get("all")), sel.get("status"),
                            sel.get("created_after"), sel.get("created_before"))
    except SelectionError:
        raise SelectionError(f"{where} records no selection of sessions (it was not written by "
                             "aksnap export), so it cannot be updated; export it again with "
                             "--session or --all") from None


def _target(bundle: Path, out: str | os.PathLike | None, overwrite: bool,
            packed: bool) -> tuple[Path, bool]:
    """Where the new bundle goes, and whether it replaces one: ``out``, else ``bundle``."""
    if out is not None:
        return check_out(out, overwrite), overwrite
    if packed:
        raise SelectionError(f"{bundle} is a packed file; an update writes a bundle "
                             "directory: pass --out DIR")
    target = Path(os.path.abspath(bundle))
    why = replaceable_problem(target)
    if why:
        raise SelectionError(why)
    return target, True


class _Collector:
    """Batches handed over by the units' threads, per table."""

    def __init__(self) -> None:
        self.batches: dict[str, list[pa.RecordBatch]] = {t: [] for t in TABLES}
        self.lock = threading.Lock()

    def __call__(self, table: str, batch: pa.RecordBatch) -> None:
        with self.lock:
            self.batches[table].append(batch)

    def table(self, table: str, schema: pa.Schema) -> pa.Table:
        got = self.batches[table]
        return pa.Table.from_batches(got, schema=schema) if got else schema.empty_table()


def _last_per_id(rows: pa.Table, id_col: str) -> pa.Table:
    """One row per id, the last one fetched (rows arrive in fetch order)."""
    if rows.num_rows <= 1:
        return rows
    idx = pa.table({"id": rows.column(id_col),
                    "i": pa.array(np.arange(rows.num_rows, dtype=np.int64))})
    last = idx.group_by("id").aggregate([("i", "max")]).column("i_max")
    if len(last) == rows.num_rows:
        return rows
    return rows.take(pa.array(np.sort(last.to_numpy())))


def _counts_by(values: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    if len(values) == 0:
        return {}
    vc = pc.value_counts(values)
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))


def _run_units(ctx: ScanContext, units: list[Unit], sink) -> list[UnitReport]:
    if not units:
        return []
    on_rows = ctx.progress.advance if ctx.progress is not None else None
    with ThreadPoolExecutor(max_workers=ctx.jobs, thread_name_prefix="aksnap-update") as pool:
        futures = [pool.submit(UnitScan(ctx.client, u, sink, ctx.page_size, ctx.max_rescans,
                                        on_rows, ctx.cancelled).run) for u in units]
        try:
            return [f.result() for f in futures]
        except BaseException:
            ctx.cancelled.set()
            for f in futures:
                f.cancel()
            raise


def _per_session(rows: pa.Table):
    """(session id, its rows) for each session of ``rows``: one sort, no Python per row."""
    if not rows.num_rows:
        return
    enc = rows.column("session_id").combine_chunks().dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(enc.dictionary) + 1))
    ordered = rows.take(pa.array(order))
    for k, s in enumerate(enc.dictionary.to_pylist()):
        yield s, ordered.slice(bounds[k], bounds[k + 1] - bounds[k])


def _sample_per_session(rows: pa.Table, n: int) -> dict[str, list[tuple[str, str]]]:
    """Up to ``n`` (task id, status) of each session, spread over its rows."""
    out = {}
    for s, part in _per_session(rows):
        picks = np.unique(np.linspace(0, part.num_rows - 1, min(n, part.num_rows)).astype(int))
        taken = part.take(pa.array(picks))
        out[s] = list(zip(taken.column("task_id").to_pylist(), taken.column("status").to_pylist()))
    return out


class _Parent:
    """What the update needs of the parent bundle: per table, the ids that can still change,
    per session, and the row counts per session."""

    def __init__(self, opened: OpenBundle, changed: dict[str, Any] | None = None):
        self.opened = opened
        self.manifest = opened.manifest
        # Only these ids can have changed (a watch's events said so): None, any open row.
        self.changed_only = changed is not None
        # Who the sessions are: checked against the cluster before anything is written.
        self.session_rows = pq.read_table(opened.file("sessions"),
                                          columns=["session_id", "created_at", "partition_ids"])
        self.sessions = self.session_rows.column("session_id").to_pylist()
        self.open_ids: dict[str, dict[str, pa.Array]] = {}
        self.deleted: dict[str, dict[str, int]] = {}
        self.final_sample: dict[str, list[tuple[str, str]]] = {}
        # The parent's sessions the cluster no longer has (set when the update connects).
        self.gone: list[str] = []
        self.ids: dict[str, pa.Table] = {}   # id, session and status of every row, read once
        for table in TABLES:
            key = ID_COLUMN[table]
            cols = pq.read_table(opened.file(table), columns=[key, "session_id", "status"])
            self.ids[table] = cols
            status = cols.column("status")
            if table == "tasks":
                final = pc.is_in(status, value_set=pa.array(TASK_FINAL_STATUSES))
                can_change = pc.invert(final)
                self.final_sample = _sample_per_session(cols.filter(final), FINAL_SAMPLE)
            else:
                can_change = pc.is_in(status, value_set=pa.array(RESULT_OPEN_STATUSES))
                self.deleted = {"results": _counts_by(
                    cols.filter(pc.equal(status, "DELETED")).column("session_id")
                    .combine_chunks())}
            if changed is not None:
                can_change = pc.and_(can_change, pc.is_in(cols.column(key), value_set=pa.array(
                    sorted(set(changed.get(table, ()))), pa.string())))
            self.open_ids[table] = {s: rows.column(key).combine_chunks()
                                    for s, rows in _per_session(cols.filter(can_change))}

    def mostly_open(self, sessions: list[str]) -> list[str]:
        """Sessions with more than ``WHOLE_SESSION_SHARE`` of a table's rows still open (and
        more than one request's worth): exported whole, which is cheaper than by id."""
        out = []
        for table in TABLES:
            rows = _counts_by(self.ids[table].column("session_id"))
            for s in sessions:
                n_open = len(self.open_ids[table].get(s, ()))
                if n_open > IDS_PER_REQUEST and n_open > WHOLE_SESSION_SHARE * rows.get(s, 0) \
                        and s not in out:
                    out.append(s)
        return out


def update(bundle: str | os.PathLike, out: str | os.PathLike | None = None, *,
           endpoint: "str | Connection | ConnectionOptions | None" = None,
           tls: TlsFiles | None = None,
           page_size: int | None = None, jobs: int = DEFAULT_JOBS, overwrite: bool = False,
           progress: Progress | None = None, retry: RetryPolicy | None = None,
           max_receive: int | None = None,
           max_receive_ceiling: int = DEFAULT_MAX_RECEIVE_CEILING,
           max_rescans: int = 2, max_rps: float | None = None,
           throttle: Throttle | None = None,
           changed: dict[str, Any] | None = None) -> ExportSummary:
    """Refresh ``bundle`` from its cluster into ``out`` (default: replace ``bundle``, only once
    the new one is complete). The new bundle holds what a full export with the parent's
    selection would hold now; its manifest's ``update`` record names the parent (digest,
    export times) and what was fetched. ``endpoint`` (a ``HOST:PORT``, the command's
    :class:`ConnectionOptions`, or a resolved :class:`Connection`) defaults to the one the
    parent records; the certificates come from the options, ``AK_*`` or the config file
    (:func:`~aksnap.exporter.client.resolve_connection`, as every command).
    Raises :class:`SelectionError` (nothing written) for a bundle that cannot be updated,
    :class:`ExportError` when the cluster cannot be read; ``bundle`` is never harmed.
    ``max_rps``, ``jobs`` and ``throttle``: the load budget, as :func:`~aksnap.exporter.export`.

    ``changed`` (``{"tasks": ids, "results": ids}``): only these of the parent's open rows can
    have changed since it was taken (a watch whose event stream ran without a gap since the
    parent's export began knows which): only they are refetched by id, besides the rows created
    since. The server's counts still check the merge (a final status that grew past the rows
    gets the session read whole); a change between two open statuses that the caller did not
    report stays unseen, and the manifest says the update relied on it
    (``update.changed_only``)."""
    started, started_at = time.perf_counter(), utc_now_iso()
    check_sizes(page_size, jobs, max_receive_ceiling, max_rps)
    src = Path(bundle)
    try:
        opened = OpenBundle.open(src)
    except BundleError as e:
        raise SelectionError(str(e)) from None
    try:
        m = opened.manifest
        if m.redaction is not None:
            raise SelectionError(f"{src} is a redacted bundle: its ids are pseudonyms the "
                                 "cluster does not know; update the original bundle, then "
                                 "redact the result")
        selection = _selection_of(m, src)
        target, replace = _target(src, out, overwrite, packed=src.is_file())
        conn = connection_of(endpoint, tls, recorded=m.source or {}, bundle=src)
        parent = _Parent(opened, changed)
        path, chosen = run_into_bundle(
            conn, selection, started_at, target, replace,
            lambda writer, ctx, record, partitions: _write(writer, ctx, record, partitions, parent),
            page_size=page_size, jobs=jobs, progress=progress, retry=retry,
            max_receive=max_receive, max_receive_ceiling=max_receive_ceiling,
            max_rescans=max_rescans, max_rps=max_rps, throttle=throttle,
            resolve=lambda client, sel, cancelled: _resolve(client, sel, cancelled, parent, src))
    finally:
        opened.close()
    summary = read_summary(path, time.perf_counter() - started, chosen.ids)
    summary.update = summary.manifest.get("update")
    return summary


def _resolve(client: RawClient, selection: Selection, cancelled: threading.Event,
             parent: _Parent, where: Path) -> SelectedSessions:
    """The parent's selection at the cluster, once the cluster is shown to be the parent's
    (:func:`_check_same_cluster`); sessions the parent named that the cluster deleted are
    dropped (``parent.gone``), not refused. Nothing is written before this returns."""
    chosen = resolve_sessions(client, selection, cancelled, missing_ok=True)
    parent.gone = _check_same_cluster(client, parent, chosen, cancelled, where)
    if not chosen.ids:
        raise SelectionError(nothing_selected(client))
    return chosen


def _not_the_cluster(ep: str, where: Path) -> str:
    return (f"the control plane at {ep} is not the cluster {where} was exported from (an "
            "edited endpoint, or a control plane restarted with other data); pass --endpoint "
            "HOST:PORT of the cluster it came from, or export anew to another --out")


def _check_same_cluster(client: RawClient, parent: _Parent, chosen: SelectedSessions,
                        cancelled: threading.Event, where: Path) -> list[str]:
    """Refuse (:class:`SelectionError`, one sentence saying which evidence) a cluster that
    does not hold the parent's sessions; return the parent's sessions it no longer has.

    ArmoniK deletes a session with its tasks and results (DeleteSession), so one session gone
    while others remain is a deletion: dropped, and said. None of them left is another
    cluster (or everything deleted: the sentence says both). A session that is there must be
    the same one: its creation time and partitions never change, and the tasks the parent saw
    final are still there (Core removes tasks only with their session: a sample of
    ``FINAL_SAMPLE`` per session, in one count per 500)."""
    ep = client.conn.endpoint
    ids = parent.sessions
    if not ids:
        return []
    cols = ["session_id", "created_at", "partition_ids"]
    theirs = {r["session_id"]: r for r in chosen.table.select(cols).to_pylist()}
    look = [s for s in ids if s not in theirs]
    for k in range(0, len(look), IDS_PER_CALL):
        found = read_whole(client, "sessions", session_filters(look[k:k + IDS_PER_CALL]),
                           cancelled)
        theirs.update((r["session_id"], r) for r in found.select(cols).to_pylist())
    gone = [s for s in ids if s not in theirs]
    if len(gone) == len(ids):
        shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        what = (f"holds none of the {len(ids)} sessions of {where} ({shown})" if len(ids) > 1
                else f"does not hold the session of {where} ({shown})")
        raise SelectionError(
            f"the control plane at {ep} {what}: it is not the cluster the bundle was exported "
            "from (an edited endpoint, or a control plane restarted with other data), or "
            f"{'every one of those sessions was' if len(ids) > 1 else 'the session was'} "
            "deleted; pass --endpoint HOST:PORT of the cluster it came from, or export anew to "
            "another --out")
    for mine in parent.session_rows.to_pylist():
        s, other = mine["session_id"], theirs.get(mine["session_id"])
        if other is None:
            continue
        if other["created_at"] != mine["created_at"]:
            raise SelectionError(
                f"session {s} at {ep} was created at {_iso(other['created_at'])}, but {where} "
                f"says it was created at {_iso(mine['created_at'])}: the same id names "
                f"another session, so {_not_the_cluster(ep, where)}")
        if sorted(other["partition_ids"] or []) != sorted(mine["partition_ids"] or []):
            raise SelectionError(
                f"session {s} at {ep} runs on partitions {_names(other['partition_ids'])}, but "
                f"{where} says {_names(mine['partition_ids'])}: the same id names another "
                f"session, so {_not_the_cluster(ep, where)}")
    pairs = [(s, t, st) for s in ids if s in theirs for t, st in parent.final_sample.get(s, ())]
    for k in range(0, len(pairs), IDS_PER_REQUEST):
        chunk = pairs[k:k + IDS_PER_REQUEST]
        if count(client, "tasks", pairs_filters("tasks", [(s, t) for s, t, _ in chunk])) \
                == len(chunk):
            continue
        for s, t, st in chunk:  # rare: name the first task that is gone
            if count(client, "tasks", pairs_filters("tasks", [(s, t)])) == 0:
                raise SelectionError(
                    f"task {t} of session {s}, {st} in {where}, is absent from {ep} (ArmoniK "
                    f"removes tasks only with their session), so {_not_the_cluster(ep, where)}")
    return gone


def _iso(ts) -> str:
    return ts.isoformat() if ts is not None else "an unknown time"


def _names(partitions) -> str:
    return ", ".join(partitions) if partitions else "none"


def _write(writer: BundleWriter, ctx: ScanContext, record: ExportRecord, partitions: pa.Table,
           parent: _Parent) -> Path:
    chosen = record.sessions.ids
    before = set(parent.sessions)
    busy = parent.mostly_open([s for s in chosen if s in before])
    known = [s for s in chosen if s in before and s not in busy]
    cutoff = cutoff_of(parent.manifest)
    refetch = _Refetch(ctx, parent, known, cutoff)
    fetched = refetch.run()
    rescan = refetch.inconsistent(fetched)  # session -> why
    known = [s for s in known if s not in rescan]
    whole = [s for s in chosen if s not in before or s in rescan or s in busy]

    writer.write("sessions", record.sessions.table)
    writer.write("partitions", partitions)
    tallies = Tallies()
    kept: dict[str, int] = {}
    keep = pa.array(known, pa.string())
    for table in TABLES:
        key = ID_COLUMN[table]
        new = fetched[table].filter(pc.is_in(fetched[table].column("session_id"), value_set=keep))
        fresh_ids = new.column(key).combine_chunks()
        kept[table] = 0
        pf = pq.ParquetFile(parent.opened.file(table))
        for batch in pf.iter_batches(batch_size=MERGE_BATCH_ROWS):
            mask = pc.is_in(batch.column("session_id"), value_set=keep)
            if len(fresh_ids):
                mask = pc.and_(mask, pc.invert(pc.is_in(batch.column(key), value_set=fresh_ids)))
            rows = batch.filter(mask)
            if rows.num_rows:
                writer.write(table, rows)
                tallies.add(table, rows)
                kept[table] += rows.num_rows
        if new.num_rows:
            writer.write(table, new)
            tallies.add(table, new)
    reports = list(refetch.reports)
    if whole:
        more, scan_reports = scan_sessions(ctx, writer, whole)
        _merge_tallies(tallies, more)
        reports += scan_reports
    elif ctx.progress is not None:
        ctx.progress.close()
    record.tallies, record.reports = tallies, reports
    if not whole and known == chosen and refetch.after:
        record.server_counts = refetch.after  # taken after every fetch already: 6 calls saved
    else:
        record.server_counts = group_server_counts(ctx.client, chosen)
    record.stats = ctx.client.stats
    record.cost = ctx.client.cost
    manifest = build_manifest(record)
    fetched_rows = {t: sum(r.rows for r in reports if r.name.startswith(t + "/")) for t in TABLES}
    pm = parent.manifest
    manifest.update = {
        "parent": {"digest": pm.digest(), "exported_at": pm.exported_at,
                   "export_finished_at": pm.export_finished_at,
                   "latest_timestamp": pm.latest_timestamp, "snapshot": pm.snapshot,
                   "rows": {t: pm.tables[t].rows for t in TABLES},
                   "generation": int((pm.update or {}).get("generation", 0))},
        "generation": int((pm.update or {}).get("generation", 0)) + 1,
        "created_since": cutoff.isoformat() if cutoff else None,
        "refetched_by_id": {t: refetch.asked[t] for t in TABLES},
        "mostly_open_sessions": busy,
        "rows_fetched": fetched_rows,
        "rows_kept": kept,
        "deleted_results_refetched": refetch.deleted_sessions,
        "new_sessions": [s for s in chosen if s not in before],
        "dropped_sessions": [s for s in parent.sessions if s not in set(chosen)],
        "deleted_sessions": parent.gone,
        "rescanned_sessions": sorted(rescan),
        "rescanned_because": {s: rescan[s] for s in sorted(rescan)},
        "changed_only": parent.changed_only,
    }
    if parent.gone:
        n = len(parent.gone)
        manifest.warnings.append(
            f"{n} session{'s' if n > 1 else ''} of the parent bundle "
            f"{'are' if n > 1 else 'is'} no longer on the cluster (deleted from it) and "
            f"dropped: {', '.join(parent.gone[:5])}{', ...' if n > 5 else ''}")
    return writer.commit(manifest)


def _merge_tallies(into: Tallies, other: Tallies) -> None:
    for name in ("session_tasks", "session_open", "session_results"):
        d = getattr(into, name)
        for k, v in getattr(other, name).items():
            d[k] = d.get(k, 0) + v
    if other.latest is not None and (into.latest is None or other.latest > into.latest):
        into.latest = other.latest


class _Refetch:
    """The fetches of an update, and the counts that check them."""

    def __init__(self, ctx: ScanContext, parent: _Parent, sessions: list[str],
                 cutoff: datetime | None):
        self.ctx, self.parent, self.sessions, self.cutoff = ctx, parent, sessions, cutoff
        self.reports: list[UnitReport] = []
        self.asked = {t: 0 for t in TABLES}
        self.deleted_sessions: list[str] = []
        self.before: dict[tuple[str, ...], Counts] = {}
        self.after: dict[tuple[str, ...], Counts] = {}

    def _units(self) -> list[Unit]:
        units = []
        for table in TABLES:
            per = self.parent.open_ids[table]
            for s in self.sessions:
                ids = per.get(s)
                if ids is None or not len(ids):
                    continue
                for k in range(0, len(ids), IDS_PER_REQUEST):
                    chunk = ids.slice(k, IDS_PER_REQUEST).to_pylist()
                    self.asked[table] += len(chunk)
                    units.append(Unit(table, s, ids_filters(table, s, chunk),
                                      f"ids{k // IDS_PER_REQUEST}", len(chunk)))
            for group in session_groups(self.sessions):
                if self.cutoff is None:
                    f = (row_filters(table, group[0]) if len(group) == 1
                         else sessions_filters(table, group))
                else:
                    f = created_since_filters(table, group, self.cutoff)
                units.append(Unit(table, group[0] if len(group) == 1 else None, f,
                                  "created-since", 0, group=() if len(group) == 1 else tuple(group)))
        # Results deleted since the parent (COMPLETED -> DELETED): only when their count grew.
        was = self.parent.deleted.get("results", {})
        for group in session_groups(self.sessions):
            now = self.before[tuple(group)].by_status["results"].get("DELETED", 0)
            if now > sum(was.get(s, 0) for s in group):
                self.deleted_sessions += group
                units.append(Unit("results", group[0] if len(group) == 1 else None,
                                  status_filters("results", group, "DELETED"), "deleted", now,
                                  group=() if len(group) == 1 else tuple(group)))
        return units

    def run(self) -> dict[str, pa.Table]:
        from aksnap.bundle import SCHEMAS

        if not self.sessions:
            return {t: SCHEMAS[t].empty_table() for t in TABLES}
        self.before = self._server_counts()
        units = self._units()
        if self.ctx.progress is not None:
            for table in TABLES:
                self.ctx.progress.start(table, sum(u.expected for u in units if u.table == table))
        sink = _Collector()
        self.reports = _run_units(self.ctx, units, sink)
        return {t: _last_per_id(sink.table(t, SCHEMAS[t]), ID_COLUMN[t]) for t in TABLES}

    def _server_counts(self) -> dict[tuple[str, ...], Counts]:
        return {tuple(g): server_counts(self.ctx.client, g)
                for g in session_groups(self.sessions)}

    def inconsistent(self, fetched: dict[str, pa.Table]) -> dict[str, str]:
        """Sessions whose merged rows disagree with the server's counts, taken before and
        after the fetches, and why (:func:`aksnap.exporter.counts.disagreement`): per table,
        fewer rows than the server had before (a row was missed), more than it has after
        (rows were deleted), or a status that can only grow outside its two counts (a parent
        row that lies: its final rows are kept without being read again)."""
        if not self.sessions:
            return {}
        self.after = after = self._server_counts()
        merged_rows = {}
        for table in TABLES:
            key = ID_COLUMN[table]
            old = self.parent.ids[table]
            stale = pc.is_in(old.column(key), value_set=fetched[table].column(key).combine_chunks())
            merged_rows[table] = pa.concat_tables([
                old.filter(pc.invert(stale)).select(["session_id", "status"]),
                fetched[table].select(["session_id", "status"]).cast(
                    old.select(["session_id", "status"]).schema)])
        groups = session_groups(self.sessions)
        merged = rows_counts(merged_rows, groups)
        bad: dict[str, str] = {}
        for group in map(tuple, groups):
            why = disagreement(self.before[group], merged[group], after[group])
            if why is not None:
                bad.update({s: why for s in group})
        return bad
