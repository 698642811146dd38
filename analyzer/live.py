"""The live state of a watched session, and what ``aksnap watch`` shows of it.

:class:`LiveState` keeps, for one session, every task's and result's status as a code in a
numpy array (columnar: counting by status is one ``bincount``), an id -> row dict to apply
events in O(1) each, and what the last reconcile (a bundle: the cluster's truth at that
time) said about end times. Events (plain tuples from the exporter's follower) move statuses
between reconciles; a reconcile replaces everything. Events are advisory: they may be lost,
repeated or stale, so one that would take a task out of a final status is ignored (ArmoniK
never does that), and the next reconcile corrects the rest.

:func:`analyze` opens a reconciled bundle and answers the slower questions with the
analyzer's own modules: the blocking frontier with wait times (``blockers``, or ``lineage``
for one result) and the root causes of the failures.

No gRPC here (``tests/test_layers.py``).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aksnap.bundle import (
    RESULT_FINAL_STATUSES,
    RESULT_LOST_STATUSES,
    RESULT_STATUSES,
    TASK_CANCELLED_STATUSES,
    TASK_FAILED_STATUSES,
    TASK_FINAL_STATUSES,
    TASK_LOST_STATUSES,
    TASK_RETRIED_STATUSES,
    TASK_STATUSES,
)

T_CODE = {s: i for i, s in enumerate(TASK_STATUSES)}
R_CODE = {s: i for i, s in enumerate(RESULT_STATUSES)}


def _mask(names: tuple[str, ...], codes: dict[str, int]) -> np.ndarray:
    """A status set as a lookup table over status codes (``mask[codes]``: vectorised)."""
    m = np.zeros(len(codes), dtype=bool)
    m[[codes[s] for s in names]] = True
    return m


# The vocabulary's sets (aksnap.columns), as lookup tables over the status codes.
_T_FINAL = _mask(TASK_FINAL_STATUSES, T_CODE)
_T_FAILED = _mask(TASK_FAILED_STATUSES, T_CODE)
_T_RETRIED = _mask(TASK_RETRIED_STATUSES, T_CODE)
_T_CANCELLED = _mask(TASK_CANCELLED_STATUSES, T_CODE)
_T_LOST = _mask(TASK_LOST_STATUSES, T_CODE)
_R_FINAL = _mask(RESULT_FINAL_STATUSES, R_CODE)
#: The throughput window: tasks ended this many seconds before the reconciled instant.
THROUGHPUT_WINDOW_S = 60.0
#: How many new failures the view keeps (the most recent).
FAILURES_KEPT = 50


class _Column:
    """Ids and status codes of one kind of object, growable."""

    def __init__(self, ids: list[str], codes: np.ndarray):
        self.ids = ids
        self.index = dict(zip(ids, range(len(ids))))
        self.codes = np.array(codes, dtype=np.int8)
        self.n = len(ids)

    def add(self, obj_id: str, code: int) -> int:
        if self.n == len(self.codes):
            self.codes = np.concatenate([self.codes, np.zeros(max(1024, self.n), np.int8)])
        i = self.n
        self.ids.append(obj_id)
        self.index[obj_id] = i
        self.codes[i] = code
        self.n += 1
        return i

    def counts(self, names: tuple[str, ...]) -> dict[str, int]:
        c = np.bincount(self.codes[:self.n], minlength=len(names))
        return {names[k]: int(v) for k, v in enumerate(c) if v}


class LiveState:
    """One session's tasks and results as the watcher knows them (see the module docstring)."""

    def __init__(self, session_id: str, result_id: str | None = None):
        self.session_id, self.result_id = session_id, result_id
        self.tasks = _Column([], np.zeros(0, np.int8))
        self.results = _Column([], np.zeros(0, np.int8))
        self.owner: dict[str, str] = {}
        self.reconciled_at: float | None = None     # wall clock of the last reconcile
        self.cluster_time: Any = None               # latest timestamp in it (cluster clock)
        self.ended_in_window = 0
        self.window_s = THROUGHPUT_WINDOW_S
        self.failures: deque = deque(maxlen=FAILURES_KEPT)
        self._failed_known: set[str] = set()
        self.started = time.time()
        self.events_applied = 0
        self.events_ignored = 0
        self.findings: list[dict[str, Any]] = []   # the last reconcile's, ranked
        # key -> (seconds into the watch when first seen, there at the first reconcile)
        self._findings_seen: dict[str, tuple[float, bool]] = {}
        self._findings_reconciles = 0

    # -- truth: a reconcile ------------------------------------------------------------------

    def load(self, tasks: pa.Table, results: pa.Table, at: float | None = None) -> None:
        """Replace the state with a reconcile's rows (bundle schema: at least ``task_id``,
        ``session_id``, ``status``, ``ended_at``, ``created_at`` and ``result_id``,
        ``session_id``, ``status``, ``owner_task_id``); rows of other sessions are ignored."""
        tasks = tasks.filter(pc.equal(tasks.column("session_id"), self.session_id))
        results = results.filter(pc.equal(results.column("session_id"), self.session_id))
        t_codes = _codes(tasks.column("status"), TASK_STATUSES)
        r_codes = _codes(results.column("status"), RESULT_STATUSES)
        self.tasks = _Column(tasks.column("task_id").to_pylist(), t_codes)
        self.results = _Column(results.column("result_id").to_pylist(), r_codes)
        if self.result_id is not None:
            i = self.results.index.get(self.result_id)
            self.owner = ({self.result_id: results.column("owner_task_id")[i].as_py()}
                          if i is not None else {})
        first = self.reconciled_at is None
        self.reconciled_at = time.time() if at is None else at
        self._throughput(tasks)
        failed = np.flatnonzero(_T_FAILED[t_codes.astype(np.int64)]) if len(t_codes) else []
        for i in np.asarray(failed).tolist():
            # failures already there when the watch began are not new
            self._note_failure(self.tasks.ids[i], TASK_STATUSES[t_codes[i]], initial=first)

    def _throughput(self, tasks: pa.Table) -> None:
        latest = None
        for c in ("ended_at", "created_at", "started_at", "submitted_at"):
            if c in tasks.column_names and tasks.num_rows:
                m = pc.max(tasks.column(c)).as_py()
                if m is not None and (latest is None or m > latest):
                    latest = m
        self.cluster_time = latest
        if latest is None or "ended_at" not in tasks.column_names:
            self.ended_in_window = 0
            return
        ended = tasks.column("ended_at")
        lo = pa.scalar(latest.timestamp() - self.window_s, pa.float64())
        secs = pc.divide(pc.cast(pc.cast(ended, pa.int64()), pa.float64()), 1e6)
        self.ended_in_window = int(pc.sum(pc.greater_equal(secs, lo)).as_py() or 0)
        first = pc.min(tasks.column("created_at")).as_py() if "created_at" in tasks.column_names else None
        if first is not None:
            self.window_s = max(1e-3, min(THROUGHPUT_WINDOW_S, (latest - first).total_seconds()))

    # -- events ------------------------------------------------------------------------------

    def apply(self, batch, changed: tuple[set, set] | None = None) -> None:
        """Apply a batch of events (``(kind, id, value)`` tuples from the follower). With
        ``changed`` (a set of task ids, a set of result ids): add the ids whose status the
        batch changed or that were unknown (a watch refetches those)."""
        tasks, results = self.tasks, self.results
        ct, cr = changed if changed is not None else (None, None)
        tcode, rcode = T_CODE, R_CODE
        final_t, final_r = _T_FINAL, _R_FINAL
        failed_t = _T_FAILED
        ignored = 0
        for kind, obj, value in batch:
            if kind == "task":
                code = tcode.get(value, 0)
                i = tasks.index.get(obj)
                if i is None:
                    tasks.add(obj, code)
                    if ct is not None:
                        ct.add(obj)
                else:
                    old = tasks.codes[i]
                    if final_t[old] and not final_t[code]:
                        ignored += 1  # stale: a final task never changes again
                        continue
                    if ct is not None and old != code:
                        ct.add(obj)
                    tasks.codes[i] = code
                if failed_t[code]:
                    # before the first reconcile the events replay the session: its failures
                    # are not new
                    self._note_failure(obj, value, initial=self.reconciled_at is None)
            elif kind == "result":
                code = rcode.get(value, 0)
                i = results.index.get(obj)
                if i is None:
                    results.add(obj, code)
                    if cr is not None:
                        cr.add(obj)
                else:
                    if final_r[results.codes[i]] and not final_r[code]:
                        ignored += 1
                        continue
                    if cr is not None and results.codes[i] != code:
                        cr.add(obj)
                    results.codes[i] = code
            elif kind == "owner":
                if cr is not None:
                    cr.add(obj)
                if obj == self.result_id:
                    self.owner[obj] = value
        self.events_applied += len(batch) - ignored
        self.events_ignored += ignored

    def _note_failure(self, task_id: str, status: str, initial: bool = False) -> None:
        if task_id in self._failed_known:
            return
        self._failed_known.add(task_id)
        if not initial:
            self.failures.append({"task_id": task_id, "status": status,
                                  "seen_at": round(time.time() - self.started, 1)})

    def note_findings(self, found: list[dict[str, Any]]) -> None:
        """A reconcile's findings (:func:`analyze`'s ``findings``): each is kept with when it
        first appeared; those of the first reconcile were there when the watch began (not new),
        a finding gone from a later reconcile is resolved and dropped."""
        at = round(time.time() - self.started, 1)
        first = self._findings_reconciles == 0
        self._findings_reconciles += 1
        shown = []
        for f in found:
            seen, initial = self._findings_seen.setdefault(f["key"], (at, first))
            shown.append({**f, "seen_at": seen, "new": not initial})
        self._findings_seen = {f["key"]: self._findings_seen[f["key"]] for f in found}
        self.findings = shown

    # -- answers -----------------------------------------------------------------------------

    @property
    def result_status(self) -> str | None:
        if self.result_id is None:
            return None
        i = self.results.index.get(self.result_id)
        return None if i is None else RESULT_STATUSES[self.results.codes[i]]

    def outcome(self) -> int | None:
        """The watch's exit code once it is decided (None: still running). A result: 0 when
        COMPLETED, 1 when lost (ABORTED, DELETED or NOTFOUND). A session: when every task is
        final, 1 if any is lost (failed: ERROR, TIMEOUT; or CANCELLED), else 0."""
        if self.result_id is not None:
            st = self.result_status
            if st == "COMPLETED":
                return 0
            if st in RESULT_LOST_STATUSES:
                return 1
            return None
        n = self.tasks.n
        if n == 0:
            return None
        codes = self.tasks.codes[:n].astype(np.int64)
        if not _T_FINAL[codes].all():
            return None
        return 1 if _T_LOST[codes].any() else 0

    def view(self) -> dict[str, Any]:
        """Plain data: counts, percent complete, throughput and ETA with their basis."""
        n = self.tasks.n
        codes = self.tasks.codes[:n].astype(np.int64)
        final = int(_T_FINAL[codes].sum()) if n else 0
        open_ = n - final
        rate = self.ended_in_window / self.window_s if self.window_s else 0.0
        eta = round(open_ / rate, 1) if rate > 0 and open_ else (0.0 if not open_ else None)
        when = self.cluster_time.isoformat() if self.cluster_time is not None else None
        basis = (f"{self.ended_in_window} tasks ended in the {self.window_s:.0f} s before "
                 f"{when} (cluster clock, last reconcile); ETA = {open_} non-final tasks / "
                 "that rate (tasks submitted later are not counted)"
                 if when else "no reconciled timestamps yet")
        return {
            "session_id": self.session_id,
            "result_id": self.result_id,
            "result_status": self.result_status,
            "result_owner": self.owner.get(self.result_id) if self.result_id else None,
            "tasks": n,
            "results": self.results.n,
            "percent_complete": round(100.0 * final / n, 2) if n else 0.0,
            "tasks_by_status": self.tasks.counts(TASK_STATUSES),
            "results_by_status": self.results.counts(RESULT_STATUSES),
            # the vocabulary's sets: failed (ERROR, TIMEOUT), retried attempts, cancelled,
            # open (not final: what the ETA waits for)
            "failed_tasks": int(_T_FAILED[codes].sum()),
            "retried_tasks": int(_T_RETRIED[codes].sum()),
            "cancelled_tasks": int(_T_CANCELLED[codes].sum()),
            "open_tasks": open_,
            "throughput_tasks_per_s": round(rate, 3),
            "eta_s": eta,
            "eta_basis": basis,
            "new_failures": list(self.failures)[-10:],
            # ranked, each with seen_at (seconds into the watch) and new (appeared since)
            "findings": list(self.findings),
            "outcome": self.outcome(),
        }


def _codes(col: pa.ChunkedArray | pa.Array, names: tuple[str, ...]) -> np.ndarray:
    """Status names -> codes, one hash lookup per distinct value (vectorised)."""
    if len(col) == 0:
        return np.zeros(0, np.int8)
    idx = pc.index_in(col, value_set=pa.array(names))
    return np.asarray(pc.fill_null(idx, 0).to_numpy(zero_copy_only=False), dtype=np.int8)


#: findings a watch shows (the most severe first)
FINDINGS_SHOWN = 5


def _findings(snap, session_id: str) -> list[dict[str, Any]]:
    """The session's findings (``findings.build``), each as a few fields (not ``next``: it
    names the reconcile's bundle, which the next reconcile replaces)."""
    from .findings import build

    return [{k: f[k] for k in ("kind", "severity", "claim", "key")}
            for f in build(snap, session_id)["findings"][:FINDINGS_SHOWN]]


def analyze(path, session_id: str, result_id: str | None = None, limit: int = 5) -> dict[str, Any]:
    """The blocking frontier (with wait times), the failures' root causes and the findings of
    a reconciled bundle: for ``result_id`` its lineage's, else the session's (the findings are
    the session's either way)."""
    from .snapshot import Snapshot

    snap = Snapshot.open(path, verify=False)
    try:
        return {**_analysis(snap, session_id, result_id, limit), "findings": _findings(snap, session_id)}
    finally:
        snap.close()


def _analysis(snap, session_id: str, result_id: str | None, limit: int) -> dict[str, Any]:
    """The frontier and root causes: of ``result_id``'s lineage, else the session's."""
    if result_id is not None:
        from . import lineage

        d = lineage.build(snap, result_id, frontier_limit=limit)
        return {
            "snapshot_time": _iso(d["snapshot_time"]),
            "lineage_percent_complete": d["upstream"]["percent_complete"],
            "frontier_total": d["frontier_total"],
            "frontier": [_front(r) for r in d["frontier"][:limit]],
            "root_causes": [_cause(r) for r in d["root_causes"][:limit]],
        }
    from . import blockers
    from .describe import root_cause_rows

    d = blockers.build(snap, session_id, limit=limit)
    g = snap.graph
    origins = g.origins(mask=g.session_nodes(session_id))
    causes = root_cause_rows(snap, origins, None)[:limit] if len(origins) else []
    # shown as the view titles it: the longest waiting first (blockers ranks by what
    # each holds up; ties and unknown waits keep that rank)
    front = sorted(d["blockers"], key=lambda r: -(r.get("in_status_s") or 0.0))
    return {
        "snapshot_time": _iso(d["snapshot_time"]),
        "frontier_total": d["blocking_nodes"],
        "frontier": [{**_front(r), "holds_results": r["holds_results"]} for r in front],
        "root_causes": [_cause(r) for r in causes],
    }


def _iso(t) -> str | None:
    return t.isoformat() if t is not None else None


def _front(r: dict[str, Any]) -> dict[str, Any]:
    return {"kind": r.get("kind"), "id": r.get("id"), "status": r.get("status"),
            "waiting_s": r.get("in_status_s"), "waiting_for": r.get("waiting_for")}


def _cause(r: dict[str, Any]) -> dict[str, Any]:
    return {"kind": r["kind"], "id": r["id"], "status": r["status"], "explains": r["explains"],
            "message": r["message"]}
