"""``export()``: the exporter's Python API; the CLI is a thin shell over it.

Read top to bottom, an export is:

1. the request checked (:class:`~aksnap.exporter.selection.Selection`, page size, jobs,
   ``out``) before any call;
2. ``Versions.ListVersions`` (recorded, and the first reachability check);
3. the selection resolved once (:func:`~aksnap.exporter.selection.resolve_sessions`):
   unknown ids fail before anything is written;
4. the partitions, read whole;
5. the plan and the scan (:mod:`aksnap.exporter.plan`, :mod:`aksnap.exporter.runner`):
   units on ``jobs`` threads, rows streamed by one writer thread into the bundle;
6. the typed manifest (:mod:`aksnap.exporter.manifest`), written last by
   :class:`~aksnap.bundle_writer.BundleWriter`, which moves the directory into place;
7. the summary, read back from the manifest on disk.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pyarrow as pa

from aksnap.bundle import SCHEMAS, read_manifest, utc_now_iso
from aksnap.bundle_writer import BundleWriter, replaceable_problem
from aksnap.exporter.budget import DEFAULT_JOBS, DEFAULT_MAX_RPS, Throttle, budget_of
from aksnap.exporter.client import (
    MAX_RECEIVE_CEILING,
    PAGE_MAX_RECEIVE,
    Connection,
    ConnectionOptions,
    RawClient,
    RetryPolicy,
    SelectionError,
    TlsFiles,
    connection_of,
)
from aksnap.exporter.counts import Counts, server_counts
from aksnap.exporter.decode import versions_from_raw
from aksnap.exporter.manifest import ExportRecord, build_manifest
from aksnap.exporter.plan import session_groups
from aksnap.exporter.requests import all_partitions_filters, versions_request
from aksnap.exporter.runner import Progress, ScanContext, scan_sessions
from aksnap.exporter.selection import STATUS_NAMES, Selection, read_whole, resolve_sessions

if TYPE_CHECKING:
    from aksnap.redact import Redaction

__all__ = ["export", "ExportSummary", "ExportInterrupted", "Progress", "STATUS_NAMES",
           "DEFAULT_PAGE_SIZE", "DEFAULT_JOBS", "DEFAULT_MAX_RPS", "DEFAULT_MAX_RECEIVE_CEILING"]

DEFAULT_PAGE_SIZE = None  # automatic: see scan.AUTO_*
#: How far aksnap raises its own receive limit for a single heavy row (``--max-message-size``).
DEFAULT_MAX_RECEIVE_CEILING = MAX_RECEIVE_CEILING
MIN_MESSAGE_SIZE = 1024


class ExportInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the export (still a KeyboardInterrupt for Python callers);
    its message says truthfully which bundle is at ``out``."""


@dataclass
class ExportSummary:
    path: Path
    rows: dict[str, int]
    bytes: int
    seconds: float
    snapshot: str                     # "final" or "live"
    sessions: list[str]
    warnings: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)  # as written (JSON)
    update: dict[str, Any] | None = None  # export --update: the manifest's update record

    @property
    def cost(self) -> dict[str, Any] | None:
        """What the capture cost the control plane (the manifest's ``cost`` record)."""
        return self.manifest.get("cost")

    @property
    def rows_per_s(self) -> float:
        return sum(self.rows.values()) / self.seconds if self.seconds > 0 else 0.0

    @property
    def tasks_per_s(self) -> float:
        return self.rows.get("tasks", 0) / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "snapshot": self.snapshot, "rows": self.rows,
                "bytes": self.bytes, "seconds": round(self.seconds, 3),
                "rows_per_s": round(self.rows_per_s), "tasks_per_s": round(self.tasks_per_s),
                "sessions": self.sessions, "warnings": self.warnings,
                **({"update": self.update} if self.update is not None else {}),
                **({"cost": self.cost} if self.cost is not None else {})}


def export(endpoint: "str | Connection | ConnectionOptions | None",
           out: str | os.PathLike, *,
           sessions: Sequence[str] = (), all_sessions: bool = False, status: str | None = None,
           created_after: datetime | str | None = None, created_before: datetime | str | None = None,
           tls: TlsFiles | None = None, page_size: int | None = DEFAULT_PAGE_SIZE,
           jobs: int = DEFAULT_JOBS, overwrite: bool = False, progress: Progress | None = None,
           retry: RetryPolicy | None = None, max_receive: int | None = None,
           max_receive_ceiling: int = DEFAULT_MAX_RECEIVE_CEILING,
           max_rescans: int = 2, redaction: "Redaction | None" = None,
           max_rps: float | None = None,
           throttle: Throttle | None = None) -> ExportSummary:
    """Export the selected sessions' tasks, results, the sessions and the partitions to a bundle.

    ``endpoint`` is ``HOST:PORT`` (plaintext unless ``tls`` is given), the command's
    :class:`ConnectionOptions`, a resolved :class:`Connection`, or None (``AK_ENDPOINT``,
    ``AKCONFIG``, armonik-cli's config file): all but the last through
    :func:`~aksnap.exporter.client.resolve_connection`.
    The selection is ``sessions`` (ids), ``all_sessions``, or filters on the session
    ``status`` and creation date; filters combine with ids. ``max_receive`` is aksnap's
    receive limit per response, which pages are sized to (default 16 MiB, pages of about 8 MiB:
    :data:`~aksnap.exporter.client.PAGE_MAX_RECEIVE`); a single row over it raises it, up to
    ``max_receive_ceiling`` bytes. The load budget: at most ``max_rps`` requests started per
    second (None: ``$AKSNAP_MAX_RPS``, else :data:`DEFAULT_MAX_RPS`; ``math.inf``: no cap)
    and ``jobs`` in flight, slower while the server shows strain
    (:mod:`aksnap.exporter.budget`); ``throttle`` shares one budget between several captures
    (a watch's). The manifest's ``cost`` (``summary.cost``) says what it cost.
    Raises :class:`SelectionError` (nothing written) when an id is unknown or the selection is empty, :class:`ExportError` when the cluster cannot be
    read; in every failure the existing ``out`` is untouched and no partial directory remains.
    With ``redaction`` (:class:`aksnap.redact.Redaction`) ``out`` is the redacted bundle.
    """
    if redaction is not None:
        return _export_redacted(redaction, endpoint, out, overwrite, dict(
            sessions=sessions, all_sessions=all_sessions, status=status,
            created_after=created_after, created_before=created_before, tls=tls,
            page_size=page_size, jobs=jobs, progress=progress, retry=retry,
            max_receive=max_receive, max_receive_ceiling=max_receive_ceiling,
            max_rescans=max_rescans, max_rps=max_rps, throttle=throttle))
    started, started_at = time.perf_counter(), utc_now_iso()
    selection = Selection.of(sessions, all_sessions, status, created_after, created_before)
    check_sizes(page_size, jobs, max_receive_ceiling, max_rps)
    out = check_out(out, overwrite)
    conn = connection_of(endpoint, tls)
    path, chosen = run_into_bundle(conn, selection, started_at, out, overwrite, _write_bundle,
                                   page_size=page_size, jobs=jobs, progress=progress,
                                   retry=retry, max_receive=max_receive,
                                   max_receive_ceiling=max_receive_ceiling,
                                   max_rescans=max_rescans, max_rps=max_rps,
                                   throttle=throttle)
    return read_summary(path, time.perf_counter() - started, chosen.ids)


def run_into_bundle(conn: Connection, selection: Selection, started_at: str,
                    out: Path, overwrite: bool, write, *, page_size: int | None, jobs: int,
                    progress: Progress | None, retry: RetryPolicy | None,
                    max_receive: int | None, max_receive_ceiling: int, max_rescans: int,
                    resolve=resolve_sessions, max_rps: float | None = None,
                    throttle: Throttle | None = None):
    """What every export shares: connect (through ``throttle``, else a budget of its own:
    ``max_rps``, ``jobs``), read the versions, resolve the selection
    (``resolve(client, selection, cancelled)``, before anything is written) and the
    partitions, then ``write(writer, ctx, record, partitions) -> path`` into a
    :class:`BundleWriter` at ``out``, aborted on any failure (Ctrl-C: a sentence saying which
    bundle is there). Returns (path, chosen sessions)."""
    cancelled = threading.Event()
    budget = throttle.budget if throttle is not None else budget_of(max_rps, jobs)
    # Pages are sized to the receive limit: never above the ceiling the user allows.
    receive = min(max_receive or PAGE_MAX_RECEIVE, max_receive_ceiling)
    with RawClient(conn, retry=retry, cancelled=cancelled, max_receive=receive,
                   max_receive_ceiling=max_receive_ceiling, budget=budget,
                   throttle=throttle) as client:
        ctx = ScanContext(client, page_size, jobs, max_rescans, cancelled, progress)
        versions = versions_from_raw(client.call("versions", versions_request()))
        chosen = resolve(client, selection, cancelled)
        selection = chosen.selection or selection  # ids given by their beginning made whole
        partitions = read_whole(client, "partitions", all_partitions_filters(), cancelled)
        record = ExportRecord(started_at, versions, conn, selection, chosen, page_size, jobs)
        writer = BundleWriter(out, overwrite=overwrite, row_group_size=256 * 1024)
        try:
            path = write(writer, ctx, record, partitions)
        except KeyboardInterrupt:
            writer.abort()
            raise ExportInterrupted(writer.interruption_sentence()) from None
        except BaseException:
            writer.abort()
            raise
    return path, chosen


def _export_redacted(redaction: "Redaction", endpoint, out, overwrite: bool,
                     kwargs: dict[str, Any]) -> ExportSummary:
    """``export --redact``: the rows go to a hidden sibling of ``out`` (this machine already
    sees the cluster), the redacted copy is written to ``out`` by :func:`aksnap.redact.
    redact_bundle` (the manifest's ``redaction`` record included), the sibling is removed
    whatever happens: what reaches ``out`` is exactly what ``aksnap redact`` would write."""
    import secrets

    from aksnap.bundle_writer import pid_alive, remove_bundle_dir
    from aksnap.redact import redact_bundle

    started = time.perf_counter()
    out = check_out(out, overwrite)
    for leftover in out.parent.glob(f".{out.name}.unredacted-*"):  # of killed exports
        pid = leftover.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not pid_alive(int(pid)):
            remove_bundle_dir(leftover)
    raw = out.with_name(f".{out.name}.unredacted-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        try:
            export(endpoint, raw, **kwargs)
        except ExportInterrupted:
            raise ExportInterrupted(f"the export was interrupted; nothing was written to {out}"
                                    + (" (the existing bundle is untouched)"
                                       if os.path.lexists(out) else "")) from None
        red = redact_bundle(raw, out, key=redaction.key, messages=redaction.messages,
                            keep_ids=redaction.keep_ids, map_out=redaction.map_out,
                            overwrite=overwrite)
    finally:
        remove_bundle_dir(raw)
    summary = read_summary(red.path, time.perf_counter() - started, [])
    summary.sessions = [s.get("session_id") for s in summary.manifest.get("sessions", [])]
    return summary


def check_sizes(page_size: int | None, jobs: int, max_receive_ceiling: int,
                max_rps: float | None = None) -> None:
    """Refuse a page size, a budget (``jobs``, ``max_rps``) or a receive ceiling no export can
    use (a :class:`SelectionError`, before any call): shared by export and update."""
    if page_size is not None and page_size < 1:
        raise SelectionError(f"--page-size must be at least 1, not {page_size}")
    budget_of(max_rps, jobs)  # BudgetError, exit 2
    if max_receive_ceiling < MIN_MESSAGE_SIZE:
        raise SelectionError(f"--max-message-size must be at least {MIN_MESSAGE_SIZE} bytes, "
                             f"not {max_receive_ceiling}")


def check_out(out: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse a bad ``out`` before touching the cluster (the writer checks again when it
    starts, and its final rename is what actually guarantees nothing is lost); the absolute
    path to write. Shared by export and update."""
    out = Path(os.path.abspath(out))
    if os.path.lexists(out):
        why = (f"{out} already exists; pass --overwrite to replace it" if not overwrite
               else replaceable_problem(out))
        if why:
            raise SelectionError(why)
    return out


def _write_bundle(bundle: BundleWriter, ctx: ScanContext, record: ExportRecord,
                  partitions: pa.Table) -> Path:
    """Sessions and partitions first, then the scan, then the manifest, last."""
    ids = record.sessions.ids
    bundle.write("sessions", record.sessions.table)
    bundle.write("partitions", partitions)
    record.tallies, record.reports = scan_sessions(ctx, bundle, ids)
    record.server_counts = group_server_counts(ctx.client, ids)
    record.stats = ctx.client.stats
    record.cost = ctx.client.cost
    return bundle.commit(build_manifest(record))


def group_server_counts(client: RawClient, sessions: list[str]) -> dict[tuple[str, ...], Counts]:
    """The server's own counts by status after the scan, per plan group (per session for a
    small selection; for many sessions a call per session would cost more than the scan):
    what the manifest records, for a reader to compare with the rows (they differ only by
    tasks created or changed meanwhile)."""
    return {tuple(g): server_counts(client, g) for g in session_groups(sessions)}


def read_summary(path: Path, seconds: float, sessions: list[str]) -> ExportSummary:
    """The :class:`ExportSummary` the CLI prints, read back from the manifest on disk (what a
    reader will see); shared by export and update."""
    manifest = read_manifest(path)
    return ExportSummary(
        path=path,
        rows={t: manifest.tables[t].rows for t in SCHEMAS},
        bytes=sum(manifest.tables[t].bytes for t in SCHEMAS),
        seconds=seconds,
        snapshot=manifest.snapshot,
        sessions=sessions,
        warnings=manifest.warnings,
        manifest=manifest.to_dict(),
    )
