"""Which sessions an export covers: the user's selection, checked, then resolved once.

:class:`Selection` holds what the user asked for (ids, ``--all``, a status, a creation
window) and refuses a malformed request before any call. :func:`resolve_sessions` asks
``Sessions.ListSessions`` once: an id the cluster does not have is an error before anything
is written, and sessions created later are not exported.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import pyarrow as pa

from aksnap.bundle import SCHEMAS, SESSION_STATUSES
from aksnap.exporter.client import RawClient, SelectionError
from aksnap.exporter.decode import decode_page
from aksnap.exporter.requests import list_request, session_filters
from aksnap.exporter.scan import Unit, UnitScan

STATUS_NAMES = tuple(s for s in SESSION_STATUSES if s != "UNSPECIFIED")
# ListSessions filters are an OR of ids: ask for this many at a time.
IDS_PER_CALL = 100


#: a time ago, as armonik-cli users write one: ``30m``, ``2h``, ``1d``, ``1h30m``, ``90s``, ``1w``
_AGO = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*([wdhms]))+\s*$", re.I)
_AGO_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])", re.I)
_UNIT_S = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def _utc(dt: datetime | str | None, what: str, now: datetime | None = None) -> datetime | None:
    """A ``--created-after``/``--created-before`` value as an aware UTC datetime: an ISO date
    or date-time (UTC if it has no zone), or a time ago (``30m``, ``2h``, ``1d``, ``1h30m``)
    counted back from ``now`` (this machine's clock)."""
    if dt is None:
        return None
    if isinstance(dt, str):
        if _AGO.match(dt):
            ago = sum(float(n) * _UNIT_S[u.lower()] for n, u in _AGO_PART.findall(dt))
            return (now or datetime.now(timezone.utc)) - timedelta(seconds=ago)
        try:
            dt = datetime.fromisoformat(dt.strip().replace("Z", "+00:00")
                                        if dt.strip().endswith("Z") else dt.strip())
        except ValueError:
            raise SelectionError(f"{what} {dt!r} is neither a time ago nor an ISO date; use e.g. "
                                 "2h, 30m, 1d, 2025-01-31 or 2025-01-31T12:00:00Z") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Selection:
    """What the user selected; filters combine with ids (``--session A --status RUNNING``
    exports A only if it is running)."""

    sessions: tuple[str, ...] = ()
    all_sessions: bool = False
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    @classmethod
    def of(cls, sessions: Sequence[str] = (), all_sessions: bool = False,
           status: str | None = None, created_after: datetime | str | None = None,
           created_before: datetime | str | None = None) -> "Selection":
        """The selection, checked: raises :class:`SelectionError` with a sentence."""
        if status is not None:
            status = status.upper().removeprefix("SESSION_STATUS_")
            if status not in STATUS_NAMES:
                raise SelectionError(f"unknown session status {status!r}; use one of "
                                     f"{', '.join(STATUS_NAMES)}")
        sel = cls(tuple(dict.fromkeys(sessions)), bool(all_sessions), status,
                  _utc(created_after, "--created-after"), _utc(created_before, "--created-before"))
        if not (sel.sessions or sel.all_sessions or sel.status or sel.created_after
                or sel.created_before):
            raise SelectionError("nothing selected; pass --session ID (repeatable), --all, or "
                                 "a filter such as --status RUNNING")
        if sel.all_sessions and sel.sessions:
            raise SelectionError("--all and --session exclude each other; pass one of them")
        return sel

    def filters(self, ids: Sequence[str] = ()):
        return session_filters(ids, self.status, self.created_after, self.created_before)

    def as_manifest(self) -> dict[str, Any]:
        """The manifest's ``selection``: what was asked, so a reader knows what is missing."""
        return {
            "sessions": list(self.sessions),
            "all": self.all_sessions,
            "status": self.status,
            "created_after": self.created_after.isoformat() if self.created_after else None,
            "created_before": self.created_before.isoformat() if self.created_before else None,
        }


@dataclass(frozen=True)
class SelectedSessions:
    """The sessions the export covers: their rows (the bundle's sessions table) and ids;
    ``selection``: the selection with each id given by its beginning made whole (what the
    manifest records, so that ``--update`` selects the same sessions), None when unchanged."""

    table: pa.Table
    ids: list[str]
    selection: Selection | None = None

    def status_of(self) -> dict[str, str]:
        return dict(zip(self.table.column("session_id").to_pylist(),
                        self.table.column("status").to_pylist()))


def count(client: RawClient, table: str, filters) -> int:
    """Rows matching ``filters`` (a ``page_size = 0`` query: Core counts without listing)."""
    return decode_page(table, client.call(table, list_request(table, filters, 0, 0))).total


def read_whole(client: RawClient, table: str, filters,
               cancelled: threading.Event | None = None) -> pa.Table:
    """Read a small table (sessions, partitions) whole, with the scans' paging and dedup."""
    batches: list[pa.RecordBatch] = []
    UnitScan(client, Unit(table, None, filters), lambda t, b: batches.append(b), 1000,
             cancelled=cancelled).run()
    schema = SCHEMAS[table]
    return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()


def resolve_sessions(client: RawClient, selection: Selection,
                     cancelled: threading.Event | None = None,
                     missing_ok: bool = False) -> SelectedSessions:
    """The selection, resolved once with ListSessions; unknown ids and an empty result are a
    :class:`SelectionError` naming them (nothing is written yet). With ``missing_ok`` (an
    update, whose caller judges what is gone) they are not: the sessions found are returned,
    maybe none."""
    ids = list(selection.sessions)
    tables = [read_whole(client, "sessions", selection.filters(ids[i:i + IDS_PER_CALL]), cancelled)
              for i in range(0, max(1, len(ids)), IDS_PER_CALL)]
    table = pa.concat_tables(tables)
    found = table.column("session_id").to_pylist()
    if missing_ok:
        return SelectedSessions(table, list(dict.fromkeys(found)))
    resolved = None
    missing = [s for s in ids if s not in set(found)]
    if missing:
        # an id given by its beginning (as armonik-cli's tables show them): made whole with
        # one ListSessions call each, an ambiguous one refused naming candidates
        from aksnap.exporter.listing import resolve_session_prefix

        whole = {s: resolve_session_prefix(client, s) for s in missing}
        more = [w for s, w in whole.items() if w != s and w not in set(found)]
        if more:
            table = pa.concat_tables([table, read_whole(client, "sessions",
                                                        selection.filters(more), cancelled)])
            found = table.column("session_id").to_pylist()
        if any(w != s for s, w in whole.items()):
            resolved = replace(selection, sessions=tuple(dict.fromkeys(
                whole.get(s, s) for s in selection.sessions)))
            selection = resolved
    chosen = list(dict.fromkeys(found))
    _refuse_missing(client, selection, set(found))
    if not chosen:
        raise SelectionError(nothing_selected(client))
    return SelectedSessions(table, chosen, resolved)


def nothing_selected(client: RawClient) -> str:
    return f"no session matches the selection at {client.conn.endpoint}; nothing to export"


def _refuse_missing(client: RawClient, selection: Selection, found: set[str]) -> None:
    """An id the user named that was not listed: unknown, or filtered out by the filters."""
    missing = [s for s in selection.sessions if s not in found]
    if not missing:
        return
    exist = {s for s in missing if count(client, "sessions", session_filters([s])) > 0}
    unknown = [s for s in missing if s not in exist]
    if unknown:
        raise SelectionError(
            f"unknown session id{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} at "
            f"{client.conn.endpoint}; list its sessions with `aksnap sessions --endpoint "
            f"{client.conn.endpoint}` and check the id")
    raise SelectionError(f"session{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         "exist but do not match the --status/--created-* filters")
