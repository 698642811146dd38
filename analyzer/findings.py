"""Findings: what is wrong with a run, why, and what to do, ranked (``aksnap findings``; first in
``aksnap analyze``, in ``aksnap watch`` as they appear, and new or resolved in ``aksnap diff``).

A catalogue of rules (:data:`RULES`), each named after what an operator would say and grounded
in ArmoniK's semantics (docs/findings.md: the facts, the thresholds, the scenario where each is
the top finding). Each rule turns the snapshot into findings::

    {kind, severity, claim, impact: {results, tasks, time_lost_s}, evidence, next, anchor,
     session_id, subject, key}

``kind`` is the rule's stable id; ``claim`` one sentence; ``next`` the aksnap command that shows
the detail; ``session_id`` and ``subject`` (what the finding is about, with no id of the run in
it: an error class, a partition) say which findings of two runs are the same one (``diff``),
``key`` joins them (``watch``). Findings are ranked by severity, then by the results, the tasks
and the time they affect.

Said once: the rules run in order, most specific first, and a rule *claims* the failure origins
(graph nodes that are bad with no bad input) it explains, so that the general rule
(``failures_by_root_cause``) groups only what is left: a cancelled session is one finding, not
one per aborted result; tasks that ran out of retries on a bad pod are that pod's finding.

Everything is vectorised over the graph's arrays (statuses, timestamps, the CSR edges): per-row
Python runs only over the few nodes a finding names. On a clean 1M-task bundle the rules read
the partition and pod columns and walk nothing.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aksnap.bundle import (
    RESULT_LOST_STATUSES,
    RESULT_STATUSES,
    TASK_FAILED_STATUSES,
    TASK_FINAL_STATUSES,
    TASK_IN_PROGRESS_STATUSES,
    TASK_STATUSES,
    TASK_WAITING_STATUSES,
)

from .common import Section, fmt_seconds, micros, printable, render_data, render_sections
from .snapshot import AnalysisError

SEVERITIES = ("error", "warning", "info")
FAIL_ON = ("warning", "error")
#: findings of one rule beyond this many are counted, not listed
MAX_PER_RULE = 20
#: ids named in a finding's evidence (the rest are counted)
IDS_SHOWN = 10


def _codes(names: Iterable[str], vocabulary: tuple[str, ...]) -> np.ndarray:
    return np.array([vocabulary.index(s) for s in names], dtype=np.int64)


def _lookup(names: Iterable[str], vocabulary: tuple[str, ...]) -> np.ndarray:
    """A status set as a lookup table over status codes (``table[codes]``; -1 maps to False)."""
    m = np.zeros(len(vocabulary) + 1, dtype=bool)
    m[_codes(names, vocabulary)] = True
    return m


_T = {s: i for i, s in enumerate(TASK_STATUSES)}
_R = {s: i for i, s in enumerate(RESULT_STATUSES)}
T_FAILED = _lookup(TASK_FAILED_STATUSES, TASK_STATUSES)
T_FINAL = _lookup(TASK_FINAL_STATUSES, TASK_STATUSES)
T_OPEN = ~T_FINAL
T_OPEN[-1] = False
T_WAITING = _lookup(TASK_WAITING_STATUSES, TASK_STATUSES)
T_IN_PROGRESS = _lookup(TASK_IN_PROGRESS_STATUSES, TASK_STATUSES)
T_CANCELLED = _lookup(("CANCELLED", "CANCELLING"), TASK_STATUSES)
R_LOST = _lookup(RESULT_LOST_STATUSES, RESULT_STATUSES)
#: a task still waiting for its inputs (SUBMITTED already has them all)
T_AWAITING_INPUTS = _lookup(("CREATING", "PENDING"), TASK_STATUSES)


# -- the catalogue ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Threshold:
    """A number a rule compares with, stated and overridable (``--threshold NAME=VALUE``); a
    count's default is an int (and so is its value, when whole)."""
    name: str
    default: float | int
    unit: str        # s (seconds), x (times), share (0..1), tasks, p (a probability)
    help: str


@dataclass(frozen=True)
class Rule:
    """One rule of the catalogue: its stable ``kind``, its usual severity, what an operator
    would say, its thresholds, the function that finds it, and the seeded scenario
    (``aksnap.fixtures.scenarios``) where it is the top finding."""
    kind: str
    severity: str
    says: str
    thresholds: tuple[Threshold, ...]
    check: Callable[["Context"], list[dict[str, Any]]]
    scenario: str


# -- what every rule reads, computed once -------------------------------------------------------


class Context:
    """The snapshot as the rules read it: the graph's arrays, the scope (``--session``), the
    thresholds, "now", and what earlier rules claimed (explained failure origins, explained
    waiting tasks)."""

    def __init__(self, snap, session_id: str | None, thresholds: dict[str, float],
                 baseline: Mapping[str, set[str]] | set[str] | None = None, paths=None,
                 path_ids: list[str] | None = None):
        from .graph import NA

        self.snap = snap
        self.g = g = snap.graph
        self.T = g.n_tasks
        self.session_id = session_id
        self.th = thresholds
        self.baseline = baseline
        self.mask = g.session_nodes(session_id)
        self.tmask = self.mask[:self.T]
        self.now = micros(snap.snapshot_time)
        self.NA = NA
        self.claimed = np.zeros(g.n, dtype=bool)        # failure origins explained already
        self.explained = np.zeros(self.T, dtype=bool)   # waiting work explained already
        self.found: list[dict[str, Any]] = []
        self.omitted: dict[str, int] = {}
        self._paths, self._path_ids = paths, path_ids

    # -- columns ---------------------------------------------------------------------------------

    @cached_property
    def status(self) -> np.ndarray:
        return np.asarray(self.g.task_status, dtype=np.int64)

    @cached_property
    def ts(self) -> dict[str, np.ndarray]:
        return self.g.task_ts

    @cached_property
    def rts(self) -> dict[str, np.ndarray]:
        return self.g.result_ts

    @cached_property
    def session_of(self) -> np.ndarray:
        return np.asarray(self.g.session_of)  # int32 codes: index and count with them as they are

    @cached_property
    def session_names(self) -> list[str]:
        return self.g.sessions.to_pylist()

    @cached_property
    def _place(self) -> dict[str, tuple[np.ndarray, list[str]]]:
        """The tasks' partition and pod as (code per task, names): both columns read at once,
        dictionary-encoded as stored (a few distinct values over a million rows); null and ""
        share one code."""
        cols = ["partition_id", "pod_hostname"]
        t = self.snap.read_columns("tasks", cols, dictionary=cols).unify_dictionaries()
        out = {}
        for c in cols:
            col = t[c]
            if not col.num_chunks:
                out[c] = (np.zeros(0, np.int64), [])
                continue
            if not pa.types.is_dictionary(col.type):  # stored plain: encode it here
                col = pa.chunked_array([pc.dictionary_encode(col.combine_chunks())])
            names = pc.fill_null(col.chunk(0).dictionary.cast(pa.string()), "").to_pylist()
            idx = pa.chunked_array([ch.indices for ch in col.chunks]).combine_chunks()
            codes = np.asarray(pc.fill_null(idx, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
            if idx.null_count:  # a null is ""
                if "" not in names:
                    names.append("")
                codes[np.asarray(idx.is_null().to_numpy(zero_copy_only=False))] = names.index("")
            out[c] = (codes, names)
        return out

    @property
    def partition(self) -> tuple[np.ndarray, list[str]]:
        return self._place["partition_id"]

    @property
    def pod(self) -> tuple[np.ndarray, list[str]]:
        return self._place["pod_hostname"]

    @cached_property
    def first_attempt(self) -> np.ndarray:
        """Each task's first attempt (itself for a first attempt), by following the retries."""
        prev = np.asarray(self.g.previous_attempt, dtype=np.int64)
        first = np.arange(self.T)
        live = np.flatnonzero(prev >= 0)
        for _ in range(256):  # retries are few per task (max_retries); a cycle cannot hang
            if not len(live):
                break
            first[live] = prev[first[live]]
            live = live[prev[first[live]] >= 0]
        return first

    @cached_property
    def sessions(self) -> dict[str, dict[str, Any]]:
        """The sessions that are not plainly RUNNING (status, cancelled_at), by id: the rules
        ask about paused, cancelled and closed ones; a session not here is RUNNING (or has no
        row). Few rows, however many sessions the bundle holds."""
        return {r["session_id"]: r for r in self.snap.sql(
            "SELECT session_id, status, cancelled_at FROM sessions "
            "WHERE status <> 'RUNNING' OR cancelled_at IS NOT NULL").to_pylist()}

    def session_codes(self, statuses: tuple[str, ...]) -> np.ndarray:
        """A lookup over session codes (``table[code]``): the sessions whose row has one of
        ``statuses`` (CANCELLED also when it has cancelled_at)."""
        table = np.zeros(len(self.session_names) + 1, dtype=bool)
        code_of = {sid: i for i, sid in enumerate(self.session_names)}
        for sid, row in self.sessions.items():
            if sid in code_of and (row["status"] in statuses or
                                   ("CANCELLED" in statuses and row.get("cancelled_at") is not None)):
                table[code_of[sid]] = True
        return table

    @cached_property
    def partitions(self) -> dict[str, dict[str, Any]]:
        return {r["partition_id"]: r for r in self.snap.sql(
            "SELECT partition_id, pod_max, pod_reserved FROM partitions").to_pylist()}

    @cached_property
    def origins(self) -> np.ndarray:
        """Failure origins in scope: bad nodes with no bad input (graph.origins); none without
        a bad node (no walk over the edges of a clean run)."""
        if not self.g.bad[self.mask].any():
            return np.zeros(0, dtype=np.int64)
        return self.g.origins(mask=self.mask)

    @cached_property
    def messages(self) -> tuple[pa.Array, pa.Array]:
        """(output_error, status_message) of every task, read when a rule names a failure."""
        d = self.g.details
        return pc.fill_null(_single(d["output_error"]), ""), pc.fill_null(_single(d["status_message"]), "")

    def failure_messages(self, tasks: np.ndarray) -> list[str]:
        err, msg = self.messages
        idx = pa.array(np.asarray(tasks, dtype=np.int64))
        e, m = pc.utf8_trim_whitespace(err.take(idx)), pc.utf8_trim_whitespace(msg.take(idx))
        return pc.if_else(pc.equal(e, ""), pc.if_else(pc.equal(m, ""), "(no message)", m), e).to_pylist()

    def _class_array(self, tasks: np.ndarray) -> pa.Array:
        err, msg = self.messages
        idx = pa.array(np.asarray(tasks, dtype=np.int64))
        e, m = pc.utf8_trim_whitespace(err.take(idx)), pc.utf8_trim_whitespace(msg.take(idx))
        return error_class(pc.if_else(pc.equal(e, ""), pc.if_else(pc.equal(m, ""), "(no message)", m), e))

    def classes(self, tasks: np.ndarray) -> list[str]:
        """The error class of each task's failure message (``error_class``)."""
        return self._class_array(tasks).to_pylist()

    def class_codes(self, tasks: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The error classes of the tasks as (code of each, the distinct classes): Arrow's
        dictionary encoding, no Python per task."""
        enc = pc.dictionary_encode(self._class_array(tasks))
        return (np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64),
                enc.dictionary.to_pylist())

    @property
    def paths(self):
        """The critical paths of the sessions in scope (``critical_path.compute``), shared with
        ``analyze`` when it computed them already."""
        if self._paths is None:
            from . import critical_path

            self._path_ids = [self.session_id] if self.session_id else self.snap.session_ids()
            self._paths = critical_path.compute(self.snap, self._path_ids)
        return self._paths

    # -- words -----------------------------------------------------------------------------------

    @cached_property
    def bundle(self) -> str:
        return shlex.quote(str(self.snap.path))

    def command(self, *words: str) -> str:
        return "aksnap " + " ".join([words[0], self.bundle, *(shlex.quote(w) for w in words[1:])])

    def session_scope(self, sid: str | None) -> list[str]:
        return ["--session", sid] if sid else []

    def seconds(self, a: int, b: int) -> float | None:
        if a == self.NA or b == self.NA:
            return None
        return round((b - a) / 1e6, 3)

    def descendants(self, nodes: np.ndarray) -> np.ndarray:
        nodes = np.asarray(nodes, dtype=np.int64)
        if not len(nodes):
            return nodes
        return np.union1d(nodes, self.g.descendants(nodes))

    def affected(self, nodes: np.ndarray) -> dict[str, int]:
        """What ``nodes`` and everything downstream of them hold: lost (will never deliver)
        and waiting (CREATED) results, lost and open tasks."""
        g, T = self.g, self.T
        every = self.descendants(nodes)
        t, r = every[every < T], every[every >= T] - T
        rs = np.asarray(g.result_status, dtype=np.int64)[r]
        return {"lost_results": int(R_LOST[rs].sum()), "waiting_results": int((rs == _R["CREATED"]).sum()),
                "lost_tasks": int(g.bad[t].sum()), "open_tasks": int(T_OPEN[self.status[t]].sum()),
                "results": int(len(r)), "tasks": int(len(t))}

    def pod_seconds(self, tasks: np.ndarray) -> float:
        """Seconds the tasks ran on a worker (started -> processed, else ended)."""
        tasks = np.asarray(tasks, dtype=np.int64)
        if not len(tasks):
            return 0.0
        s = self.ts["started_at"][tasks]
        e = np.where(self.ts["processed_at"][tasks] != self.NA, self.ts["processed_at"][tasks],
                     self.ts["ended_at"][tasks])
        ok = (s != self.NA) & (e != self.NA) & (e >= s)
        return round(float((e[ok] - s[ok]).sum()) / 1e6, 3)


def _single(a) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def groups(keys: np.ndarray) -> list[tuple[Any, np.ndarray]]:
    """(key, positions) for each distinct key, in key order: one stable sort, not one pass
    over ``keys`` per key (a bundle of 100,000 sessions has as many groups)."""
    keys = np.asarray(keys)
    if not len(keys):
        return []
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.r_[0, np.flatnonzero(k[1:] != k[:-1]) + 1]
    return list(zip(k[starts].tolist(), np.split(order, starts[1:])))


def error_class(messages: pa.Array) -> pa.Array:
    """Messages -> classes, as ``queries/error_classes.sql`` makes them: the first 300
    characters, ids (GUIDs, with a ``###n`` retry suffix) -> ``<id>``, long hex strings ->
    ``<hex>``, numbers -> ``<n>``, so that "task 3f2a... failed" is one class."""
    m = pc.utf8_slice_codeunits(messages, 0, 300)
    m = pc.replace_substring_regex(m, r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
                                      r"-[0-9a-fA-F]{12}(###[0-9]+)?", "<id>")
    m = pc.replace_substring_regex(m, r"\b[0-9a-fA-F]{16,}\b", "<hex>")
    return pc.replace_substring_regex(m, r"[0-9]+(\.[0-9]+)?", "<n>")


def _short(i: str | None) -> str:
    return "" if i is None else i[:8]


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _quote(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return '"' + (text if len(text) <= limit else text[:limit - 1] + "…") + '"'


def where(c: Context, codes) -> tuple[str, str | None, dict[str, Any]]:
    """Where a finding is, said once however many sessions share it: ("in session 6f1c2a9b",
    its id, {}) for one session; ("in 992 sessions", None, {"sessions": the first few,
    "sessions_total": 992}) for several (a finding per session would say the same thing
    992 times)."""
    codes = np.unique(np.asarray(codes, dtype=np.int64))
    if len(codes) == 1:
        sid = c.session_names[int(codes[0])]
        return f"in session {_short(sid)}", sid, {}
    names = [c.session_names[int(k)] for k in codes[:IDS_SHOWN]]
    return (f"in {len(codes)} sessions", None,
            {"sessions": names, "sessions_total": int(len(codes))})


def finding(c: Context, kind: str, severity: str, claim: str, *, session_id: str | None,
            subject: str = "", results: int | None = None, tasks: int | None = None,
            time_lost_s: float | None = None, evidence: dict[str, Any] | None = None,
            next: str | None = None, anchor: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "severity": severity, "claim": claim,
            "impact": {"results": results, "tasks": tasks,
                       "time_lost_s": None if time_lost_s is None else round(float(time_lost_s), 3)},
            "evidence": evidence or {}, "next": next, "anchor": anchor,
            "session_id": session_id, "subject": subject,
            "key": f"{kind}:{session_id or '*'}:{subject}"}


# -- the rules -------------------------------------------------------------------------------------

def _session_cancelled(c: Context) -> list[dict[str, Any]]:
    """A session the client cancelled: its CANCELLED tasks and ABORTED results are one fact.
    Counted for every cancelled session at once (bincount over the session codes)."""
    g, T = c.g, c.T
    is_c = c.session_codes(("CANCELLED",))
    if not is_c.any():
        return []
    in_c = is_c[c.session_of] & c.mask
    o = c.origins[in_c[c.origins]]
    ot = o[o < T]
    c.claimed[np.concatenate([ot[T_CANCELLED[c.status[ot]]], o[o >= T]])] = True
    S = len(c.session_names)
    tcode, rcode = c.session_of[:T], c.session_of[T:]
    tin = in_c[:T]
    rs = np.asarray(g.result_status, dtype=np.int64)
    gone = tin & T_CANCELLED[c.status]
    cancelled = np.bincount(tcode[gone], minlength=S)
    completed = np.bincount(tcode[tin & (c.status == _T["COMPLETED"])], minlength=S)
    aborted = np.bincount(rcode[in_c[T:] & R_LOST[rs]], minlength=S)
    ran = np.flatnonzero(gone & (c.ts["started_at"] != c.NA))
    first = np.full(S, np.iinfo(np.int64).max, dtype=np.int64)
    made = tin & (c.ts["created_at"] != c.NA)
    np.minimum.at(first, tcode[made], c.ts["created_at"][made])
    codes = np.flatnonzero(is_c[:S] & (np.bincount(c.session_of[c.mask], minlength=S) > 0))
    if not len(codes):
        return []
    codes = codes[np.argsort(-aborted[codes], kind="stable")]
    n_c, n_a, n_done = (int(x[codes].sum()) for x in (cancelled, aborted, completed))
    per = []
    for code in codes[:IDS_SHOWN].tolist():
        sid = c.session_names[code]
        row = c.sessions.get(sid) or {}
        began = int(first[code]) if first[code] != np.iinfo(np.int64).max else c.NA
        per.append({"session_id": sid, "cancelled_at": row.get("cancelled_at"),
                    "after_s": c.seconds(began, micros(row.get("cancelled_at"))),
                    "tasks_cancelled": int(cancelled[code]), "results_aborted": int(aborted[code]),
                    "tasks_completed": int(completed[code])})
    if len(codes) == 1:
        after = per[0]["after_s"]
        when = f" {fmt_seconds(after)} after it started" if after is not None else ""
        who, sid = f"session {_short(per[0]['session_id'])} was cancelled{when}", per[0]["session_id"]
    else:
        who, sid = f"{len(codes)} sessions were cancelled", None
    claim = (f"{who}: {_plural(n_c, 'task')} cancelled, {_plural(n_a, 'result')} aborted "
             f"({n_done} tasks had completed)")
    mine = ran[np.isin(tcode[ran], codes)]
    return [finding(c, "session_cancelled", "warning", claim, session_id=sid,
                    results=n_a, tasks=n_c, time_lost_s=c.pod_seconds(mine),
                    evidence={**(per[0] if len(codes) == 1 else {"sessions": per,
                                                                "sessions_total": int(len(codes))}),
                              "tasks_cancelled": n_c, "results_aborted": n_a, "tasks_completed": n_done,
                              "cancelled_while_running": int(len(mine))},
                    next=c.command("analyze", "--session", per[0]["session_id"]))]


def _retry_cleanup(c: Context) -> list[dict[str, Any]]:
    """Not a finding: what a retried attempt leaves behind is claimed silently (ArmoniK cancels
    the subtasks a failed attempt created and aborts the results it created; the next attempt
    carries on). A chain that never recovered is ``retries_never_recover``."""
    g, T = c.g, c.T
    o = c.origins
    res = o[o >= T]
    retried = _T["RETRIED"]
    prod = np.asarray(g.producer, dtype=np.int64)[res - T]
    crea = np.asarray(g.result_creator, dtype=np.int64)[res - T]
    by_retry = ((prod >= 0) & (c.status[np.maximum(prod, 0)] == retried)) | \
               ((crea >= 0) & (c.status[np.maximum(crea, 0)] == retried))
    c.claimed[res[by_retry]] = True
    tk = o[o < T]
    parent = np.asarray(g.parent, dtype=np.int64)[tk]
    kids = T_CANCELLED[c.status[tk]] & (parent >= 0) & (c.status[np.maximum(parent, 0)] == retried)
    c.claimed[tk[kids]] = True
    return []


def _unsatisfiable(c: Context) -> list[dict[str, Any]]:
    """Open tasks reading an input that will never be there."""
    from .graph import KIND_PRODUCES

    g, T = c.g, c.T
    if not T or not (T_AWAITING_INPUTS[c.status] & c.tmask).any():
        return []
    e = np.flatnonzero(g.kind != KIND_PRODUCES)  # result -> task: data dependency or payload
    dst, src = np.asarray(g.dst)[e], np.asarray(g.src)[e]
    keep = T_AWAITING_INPUTS[c.status[dst]] & c.tmask[dst]
    dst, src = dst[keep], src[keep] - T
    if not len(dst):
        return []
    rs = np.asarray(g.result_status, dtype=np.int64)[src]
    prod = np.asarray(g.producer, dtype=np.int64)[src]
    pst = np.where(prod >= 0, c.status[np.maximum(prod, 0)], -1)
    created = rs == _R["CREATED"]
    lost = R_LOST[rs]
    dead_owner = created & (prod >= 0) & ((pst == _T["COMPLETED"]) | g.bad[np.maximum(prod, 0)]) & (prod >= 0)
    nobody = created & (prod < 0)
    entered = g.entered_status_at_many(dst)
    waited = np.where(entered != c.NA, (c.now - entered) / 1e6, 0.0) if c.now != c.NA else np.zeros(len(dst))
    nobody &= waited >= c.th["unsatisfiable_wait_s"]
    out = []
    for reason, sel in (("lost", lost), ("owner", dead_owner), ("nobody", nobody)):
        if not sel.any():
            continue
        d, src_sel = dst[sel], src[sel]
        tasks, inputs = np.unique(d), np.unique(src_sel)
        inside, sid, more = where(c, c.session_of[tasks])
        c.explained[tasks] = True
        aff = c.affected(tasks)
        in_ids = g.node_ids(T + inputs[:IDS_SHOWN])
        in_status = [g.status_name(T + int(j)) for j in inputs[:IDS_SHOWN]]
        t_ids = g.node_ids(tasks[:IDS_SHOWN])
        longest = float(waited[sel].max())
        one = len(inputs) == 1
        it = "it" if one else "them"
        their = "its" if len(tasks) == 1 else "their"
        inputs_said = (f"{their} input {_short(in_ids[0])}" if one
                       else f"{_plural(len(inputs), 'input')} {'it reads' if len(tasks) == 1 else 'they read'}")
        if reason == "lost":
            severity = "error"
            why = (f"{inputs_said} {'is' if one else 'are'} {'/'.join(sorted(set(in_status)))} "
                   "and a lost result never comes back")
        elif reason == "owner":
            owners = np.unique(prod[sel])
            o_status = sorted({g.status_name(int(p)) for p in owners[:IDS_SHOWN]})
            severity = "error"
            why = (f"{inputs_said} {'is' if one else 'are'} still CREATED but the task that owns "
                   f"{it} ended {'/'.join(o_status)}: no task will complete {it}")
        else:
            closed = sorted({(c.sessions.get(c.session_names[int(k)]) or {}).get("status") or "RUNNING"
                             for k in np.unique(c.session_of[tasks]).tolist()} - {"RUNNING", "PAUSED"})
            severity = "error" if closed else "warning"
            why = (f"{inputs_said} {'has' if one else 'have'} no owner: no task will produce "
                   f"{it}, only the client can upload {it}"
                   + (f", and the session is {'/'.join(closed)}" if closed else ""))
        claim = (f"{_plural(len(tasks), 'task')} {inside} can never start: {why} "
                 f"(waiting {fmt_seconds(longest)}); {_plural(aff['waiting_results'], 'result')} "
                 f"wait on {'it' if len(tasks) == 1 else 'them'}")
        out.append(finding(c, "unsatisfiable_dependency", severity, claim, session_id=sid,
                           subject=reason, results=aff["waiting_results"], tasks=aff["open_tasks"],
                           time_lost_s=longest,
                           evidence={"reason": {"lost": "input aborted or deleted",
                                                "owner": "input's owner ended without it",
                                                "nobody": "input owned by nobody"}[reason],
                                     "tasks": t_ids, "tasks_total": int(len(tasks)),
                                     "inputs": [{"result_id": i, "status": st}
                                                for i, st in zip(in_ids, in_status)],
                                     "inputs_total": int(len(inputs)),
                                     "longest_wait_s": round(longest, 3), **more},
                           next=c.command("task", t_ids[0])))
    return out


def _kl_tail(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Chernoff's bound of P(X >= k) for X ~ Binomial(n, p): exp(-n KL(k/n || p)) when k/n >
    p (else 1). An upper bound, so a pod it flags is at least that unlikely to be chance."""
    q = np.clip(k / np.maximum(n, 1), 1e-12, 1 - 1e-12)
    p = np.clip(p, 1e-12, 1 - 1e-12)
    kl = q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p))
    return np.where(q > p, np.exp(-n * kl), 1.0)


def _bad_node(c: Context) -> list[dict[str, Any]]:
    """Failures concentrated on one pod: many different tasks failed there, far more often
    than on the other pods, beyond chance."""
    T = c.T
    started = c.ts["started_at"] != c.NA if T else np.zeros(0, dtype=bool)
    st = c.status
    failed_ran = started & np.isin(st, [_T["ERROR"], _T["TIMEOUT"], _T["RETRIED"]]) & c.tmask
    if failed_ran.sum() < c.th["bad_node_min_tasks"]:
        return []
    pod, names = c.pod
    ran = started & (np.asarray([bool(n) for n in names], dtype=bool)[pod] if names else False)
    failed_ran &= ran
    first = c.first_attempt
    H = len(names)

    def distinct(sel: np.ndarray) -> np.ndarray:
        key = np.unique(pod[sel] * np.int64(T + 1) + first[sel])
        return np.bincount(key // (T + 1), minlength=H)

    n_h, k_h = distinct(ran & c.tmask), distinct(failed_ran)
    used = np.flatnonzero(n_h > 0)
    N, K = int(n_h.sum()), int(k_h.sum())
    rest_rate = (K - k_h + 1) / (N - n_h + 2)
    rate = k_h / np.maximum(n_h, 1)
    cand = np.flatnonzero((k_h >= c.th["bad_node_min_tasks"]) & (rate >= c.th["bad_node_ratio"] * rest_rate))
    if not len(cand):
        return []
    p = _kl_tail(k_h[cand], n_h[cand], rest_rate[cand]) * max(len(used), 1)
    cand = cand[p <= c.th["bad_node_p"]]
    p = p[p <= c.th["bad_node_p"]]
    out = []
    for h, pv in zip(cand.tolist(), p.tolist()):
        on = np.flatnonzero(failed_ran & (pod == h))
        lost_here = on[c.g.bad[on]]
        origins = lost_here[np.isin(lost_here, c.origins)]
        c.claimed[origins] = True
        aff = c.affected(origins) if len(origins) else {"lost_results": 0, "lost_tasks": 0}
        sessions = np.unique(c.session_of[on])
        sid = c.session_names[int(sessions[0])] if len(sessions) == 1 else None
        others = len(used) - 1
        ran_out = int(len(lost_here))
        tail = (f"; {_plural(ran_out, 'task')} ran out of retries there, "
                f"{_plural(aff['lost_results'], 'result')} aborted" if ran_out else
                "; they were retried elsewhere")
        claim = (f"pod {names[h]} failed {int(k_h[h])} of the {int(n_h[h])} tasks it ran "
                 f"({100 * rate[h]:.0f}%) against {100 * rest_rate[h]:.1f}% on the "
                 f"{_plural(others, 'other pod')}: a bad node{tail}")
        classes = c.classes(on[:200])
        top = max(set(classes), key=classes.count) if classes else ""
        out.append(finding(c, "bad_node", "error" if ran_out else "warning", claim, session_id=sid,
                           subject=names[h], results=aff["lost_results"] or None,
                           tasks=int(k_h[h]), time_lost_s=c.pod_seconds(on),
                           evidence={"pod_hostname": names[h], "tasks_ran": int(n_h[h]),
                                     "tasks_failed": int(k_h[h]), "failure_rate": round(float(rate[h]), 4),
                                     "other_pods": others, "other_pods_failure_rate": round(float(rest_rate[h]), 4),
                                     "chance_bound": float(f"{pv:.3g}"), "attempts_failed": int(len(on)),
                                     "tasks_lost": ran_out, "error_class": top,
                                     "example_task_ids": c.g.node_ids(on[:IDS_SHOWN])},
                           next=c.command("sql", "SELECT task_id, status, started_at, output_error "
                                          "FROM tasks WHERE pod_hostname = $pod ORDER BY started_at",
                                          "--param", f"pod={names[h]}")))
    return out


def _retries(c: Context) -> list[dict[str, Any]]:
    """Tasks whose every attempt failed: the last one ran out of retries (or timed out)."""
    g, T = c.g, c.T
    if not T:
        return []
    # attempt >= 2 is having a previous attempt: those few first, not every task's attempt
    # number (pointer jumping over 10M tasks)
    cand = np.flatnonzero(np.asarray(g.previous_attempt) >= 0)
    st = c.status[cand]
    ran = c.ts["started_at"][cand] != c.NA
    last = cand[T_FAILED[st] & (ran | (st == _T["TIMEOUT"])) & c.tmask[cand] & ~c.claimed[cand]]
    if not len(last):
        return []
    cls_code, names = c.class_codes(last)
    c.claimed[last[np.isin(last, c.origins)]] = True
    out = []
    first = c.first_attempt
    found = sorted(groups(cls_code), key=lambda kv: -len(kv[1]))
    if len(found) > MAX_PER_RULE:
        c.omitted["retries_never_recover"] = len(found) - MAX_PER_RULE
    for k, pos in found[:MAX_PER_RULE]:
        cls = names[int(k)]
        mine = last[pos]
        inside, sid, more = where(c, c.session_of[mine])
        aff = c.affected(mine)
        chains = np.flatnonzero(np.isin(first, first[mine]))
        ids = g.node_ids(first[mine][:IDS_SHOWN])
        most = int(g.attempt_of(mine).max())
        claim = (f"{_plural(len(mine), 'task')} {inside} failed every attempt "
                 f"(up to {most}): {_quote(cls)}; {_plural(aff['lost_results'], 'result')} aborted")
        out.append(finding(c, "retries_never_recover", "error", claim, session_id=sid, subject=cls,
                           results=aff["lost_results"], tasks=aff["lost_tasks"],
                           time_lost_s=c.pod_seconds(chains),
                           evidence={"error_class": cls, "tasks": ids, "tasks_total": int(len(mine)),
                                     "attempts": int(len(chains)), "most_attempts": most,
                                     "last_attempts": g.node_ids(mine[:IDS_SHOWN]),
                                     "example_message": c.failure_messages(mine[:1])[0], **more},
                           next=c.command("task", ids[0])))
    return out


@dataclass
class _Group:
    cls: str
    nodes: np.ndarray
    severity: str
    new: bool  # the class is not in the baseline of (every session of) these nodes


def _failure_groups(c: Context) -> list[_Group]:
    """The origins no earlier rule claimed, grouped by error class (a task's failure message's
    class; a lost result with no failed task upstream by its status and its owner's) across
    sessions (one finding however many sessions it spans), and, with a baseline, by whether
    the baseline of their session had the class; the largest first. One sort, whatever the
    number of groups."""
    if "failure_groups" in c.__dict__:
        return c.__dict__["failure_groups"]
    g, T = c.g, c.T
    o = c.origins[~c.claimed[c.origins]]
    out: list[_Group] = []
    c.__dict__["failure_groups"] = out
    if not len(o):
        return out
    tk, rs = o[o < T], o[o >= T]
    label = np.zeros(len(o), dtype=np.int64)
    names: list[str] = []
    if len(tk):
        code, base = c.class_codes(tk)
        cancelled = T_CANCELLED[c.status[tk]]
        label[:len(tk)] = np.where(cancelled, code + len(base), code)
        names = base + ["cancelled: " + n for n in base]
    results_from = len(names)
    if len(rs):
        rstat = np.asarray(g.result_status, dtype=np.int64)[rs - T]
        prod = np.asarray(g.producer, dtype=np.int64)[rs - T]
        pst = np.where(prod >= 0, c.status[np.maximum(prod, 0)], -1)
        combo = rstat * (len(TASK_STATUSES) + 2) + (pst + 1)
        kinds, inverse = np.unique(combo, return_inverse=True)
        label[len(tk):] = len(names) + inverse
        for k in kinds.tolist():
            r, p = divmod(k, len(TASK_STATUSES) + 2)
            names.append(f"{RESULT_STATUSES[r]} result, " + (
                f"its owner {TASK_STATUSES[p - 1]}" if p else "no owner (the client's)"))
    nodes = np.concatenate([tk, rs])
    L = len(names) + 1
    new = np.zeros(len(nodes), dtype=np.int64)
    if c.baseline is not None:  # is each (session, class) new? once per distinct pair
        pair = c.session_of[nodes].astype(np.int64) * L + label
        uniq, inverse = np.unique(pair, return_inverse=True)
        flag = np.zeros(len(uniq), dtype=np.int64)
        for i, pr in enumerate(uniq.tolist()):
            known = _baseline_for(c, c.session_names[pr // L])
            cls = names[pr % L].removeprefix("cancelled: ")
            flag[i] = int(known is not None and cls not in known and pr % L < results_from)
        new = flag[inverse]
    for k, pos in sorted(groups(label * 2 + new), key=lambda kv: -len(kv[1])):
        mine = nodes[pos]
        t = mine[mine < T]
        severe = bool((len(t) and T_FAILED[c.status[t]].any()) or (mine >= T).any())
        out.append(_Group(names[int(k) // 2], mine, "error" if severe else "warning", bool(k % 2)))
    return out


def _failure_finding(c: Context, grp: _Group, kind: str, new: bool = False) -> dict[str, Any]:
    g, T = c.g, c.T
    c.claimed[grp.nodes] = True
    aff = c.affected(grp.nodes)
    roots = grp.nodes[grp.nodes < T]
    inside, sid, more = where(c, c.session_of[grp.nodes])
    every = c.descendants(grp.nodes)
    lost_r = every[(every >= T)]
    lost_r = lost_r[g.bad[lost_r]]
    # the result to explain: an aborted one nothing lost comes after (where propagation ended)
    target = None
    if len(lost_r):
        lo, hi = g.out_ptr[lost_r], g.out_ptr[lost_r + 1]
        from .graph import concat_ranges

        succ = g.out_dst[concat_ranges(lo, hi - lo)]
        owner = np.repeat(np.arange(len(lost_r)), hi - lo)
        spoiled = np.zeros(len(lost_r), dtype=bool)
        spoiled[owner[g.bad[succ]]] = True
        sinks = lost_r[~spoiled]
        target = int(sinks[0] if len(sinks) else lost_r[0])
    propagated = aff["lost_tasks"] - int(len(roots))
    what = (f"{_plural(len(roots), 'root task')}" if len(roots)
            else f"{_plural(len(grp.nodes), 'lost result')}")
    prefix = "new error class: " if new else ""
    if len(roots):
        claim = (f"{prefix}{_plural(aff['lost_results'], 'result')} aborted by {what} {inside}: "
                 f"{_quote(grp.cls)}")
        if propagated > 0:
            claim += f" ({_plural(propagated, 'task')} failed by propagation)"
    else:
        claim = (f"{prefix}{_plural(aff['lost_results'], 'result')} in session {_short(sid)} lost "
                 f"with no failed task upstream: {grp.cls}")
    root_ids = g.node_ids(grp.nodes[:IDS_SHOWN])
    evidence = {"error_class": grp.cls, "root_ids": root_ids, "roots_total": int(len(grp.nodes)),
                "results_aborted": aff["lost_results"], "tasks_failed": aff["lost_tasks"],
                "failed_by_propagation": max(propagated, 0),
                "example_message": c.failure_messages(roots[:1])[0] if len(roots) else grp.cls,
                **more}
    nxt = c.command("lineage", g.node_id(target)) if target is not None else c.command("task", root_ids[0])
    if target is not None:
        evidence["example_result"] = g.node_id(target)
    return finding(c, kind, grp.severity, claim, session_id=sid, subject=grp.cls,
                   results=aff["lost_results"], tasks=aff["lost_tasks"],
                   time_lost_s=c.pod_seconds(roots), evidence=evidence, next=nxt)


def _baseline_for(c: Context, sid: str) -> set[str] | None:
    """The classes the baseline had for this session: all of them (a set), its matched
    session's (a mapping; a session with no match has no baseline)."""
    b = c.baseline
    if b is None:
        return None
    if isinstance(b, Mapping):
        return set(b[sid]) if sid in b else None
    return set(b)


def _new_error_class(c: Context) -> list[dict[str, Any]]:
    """With a baseline (``diff A B``, ``build(..., baseline=A)``): failures whose error class
    the baseline never had; failed attempts that were retried (and recovered) included."""
    if c.baseline is None:
        return []
    new = []
    for grp in _failure_groups(c):
        if grp.new and not grp.cls.startswith(("ABORTED ", "DELETED ", "NOTFOUND ")):
            c.claimed[grp.nodes] = True  # said here: not again as failures_by_root_cause
            new.append(grp)
    out = [_failure_finding(c, grp, "new_error_class", new=True) for grp in new[:MAX_PER_RULE]]
    # attempts that failed and were retried: a new class even when the retry recovered
    T = c.T
    retried = np.flatnonzero((c.status == _T["RETRIED"]) & c.tmask) if T else np.zeros(0, np.int64)
    if len(retried):
        code, names = c.class_codes(retried)
        said = {(f["session_id"], f["subject"]) for f in out}
        key = c.session_of[retried].astype(np.int64) * (len(names) + 1) + code
        for k, pos in sorted(groups(key), key=lambda kv: -len(kv[1])):
            sid = c.session_names[int(k) // (len(names) + 1)]
            cls = names[int(k) % (len(names) + 1)]
            known = _baseline_for(c, sid)
            if known is None or cls in known or (sid, cls) in said:
                continue
            mine = retried[pos]
            ids = c.g.node_ids(mine[:IDS_SHOWN])
            claim = (f"new error class: {_plural(len(mine), 'attempt')} in session {_short(sid)} "
                     f"raised {_quote(cls)}; retried")
            out.append(finding(c, "new_error_class", "warning", claim, session_id=sid, subject=cls,
                               tasks=int(len(mine)), time_lost_s=c.pod_seconds(mine),
                               evidence={"error_class": cls, "attempts": int(len(mine)), "attempt_ids": ids,
                                         "example_message": c.failure_messages(mine[:1])[0]},
                               next=c.command("task", ids[0])))
    return out


def _failures(c: Context) -> list[dict[str, Any]]:
    """What is left of the failures: grouped by root cause's error class (the largest groups
    described, the others counted)."""
    left = [grp for grp in _failure_groups(c) if not c.claimed[grp.nodes].all()]
    if len(left) > MAX_PER_RULE:
        c.omitted["failures_by_root_cause"] = len(left) - MAX_PER_RULE
    return [_failure_finding(c, grp, "failures_by_root_cause") for grp in left[:MAX_PER_RULE]]


def _starved(c: Context) -> list[dict[str, Any]]:
    """Tasks queued in a partition no agent takes from: no pods at all, or none of its tasks
    acquired for a while (nothing of it in progress) while the rest of the cluster ran."""
    T = c.T
    if not T:
        return []
    queued = (c.status == _T["SUBMITTED"]) & c.tmask
    if not queued.any():
        return []
    part, names = c.partition
    acq, sub, end = c.ts["acquired_at"], c.ts["submitted_at"], c.ts["ended_at"]
    out = []
    window = c.th["starved_s"] * 1e6
    # something, anywhere, was acquired or ended in the last window: the cluster is alive
    alive = c.now != c.NA and bool(((acq != c.NA) & (acq >= c.now - window)).any()
                                   or ((end != c.NA) & (end >= c.now - window)).any())
    for p in np.unique(part[queued]).tolist():
        name = names[p]
        of_p = part == p
        mine = np.flatnonzero(queued & of_p)
        info = c.partitions.get(name)
        pods = None if info is None else info.get("pod_max")
        a = acq[of_p]
        last_acq = int(a[a != c.NA].max()) if (a != c.NA).any() else c.NA
        s = sub[mine]
        oldest = int(s[s != c.NA].min()) if (s != c.NA).any() else c.NA
        in_progress = int((of_p & T_IN_PROGRESS[c.status]).sum())
        since = max(v for v in (last_acq, oldest) if v != c.NA) if (last_acq != c.NA or oldest != c.NA) else c.NA
        idle = c.seconds(since, c.now) if since != c.NA and c.now != c.NA else None
        no_pods = info is None or not pods
        if not no_pods and not (in_progress == 0 and idle is not None and idle >= c.th["starved_s"] and alive):
            continue
        c.explained[mine] = True
        aff = c.affected(mine)
        sessions = np.unique(c.session_of[mine])
        sid = c.session_names[int(sessions[0])] if len(sessions) == 1 else None
        waited = c.seconds(oldest, c.now) if oldest != c.NA else None
        if no_pods:
            why = ("is not among the bundle's partitions (no pod serves it)" if info is None
                   else "has no pods (pod_max 0)")
            claim = (f"partition {name} {why}: {_plural(len(mine), 'task')} queued there "
                     f"{'for up to ' + fmt_seconds(waited) + ' ' if waited is not None else ''}"
                     f"can never run; {_plural(aff['waiting_results'], 'result')} wait on them")
        else:
            claim = (f"partition {name} is starved: {_plural(len(mine), 'task')} queued, no agent took "
                     f"one of its tasks for {fmt_seconds(idle)} though it has up to {pods} pods, while "
                     f"the rest of the cluster ran; {_plural(aff['waiting_results'], 'result')} wait on them")
        ids = c.g.node_ids(mine[:IDS_SHOWN])
        out.append(finding(c, "starved_partition", "error" if no_pods else "warning", claim,
                           session_id=sid, subject=name, results=aff["waiting_results"],
                           tasks=aff["open_tasks"], time_lost_s=idle if not no_pods else waited,
                           evidence={"partition_id": name, "pod_max": pods,
                                     "pod_reserved": None if info is None else info.get("pod_reserved"),
                                     "listed": info is not None, "tasks_queued": int(len(mine)),
                                     "task_ids": ids, "in_progress": in_progress,
                                     "last_acquired_s_ago": c.seconds(last_acq, c.now) if last_acq != c.NA else None,
                                     "oldest_wait_s": waited},
                           next=c.command("blockers", *c.session_scope(sid))))
    return out


def _straggler(c: Context) -> list[dict[str, Any]]:
    """A task processing far longer than its partition's others (in the session): running
    now and holding results, or finished on a session's critical path (its last result
    waited for it)."""
    g, T = c.g, c.T
    if not T:
        return []
    started, processed = c.ts["started_at"], c.ts["processed_at"]
    running = np.flatnonzero((c.status == _T["PROCESSING"]) & (started != c.NA) & c.tmask)
    p = c.paths
    on_path = p.node[p.is_task] if len(p.node) else np.zeros(0, np.int64)
    on_path = on_path[(processed[on_path] != c.NA) & (started[on_path] != c.NA) & c.tmask[on_path]]
    if not len(running) and not len(on_path):
        return []
    cand = np.concatenate([running, on_path])
    live = np.concatenate([np.ones(len(running), bool), np.zeros(len(on_path), bool)])
    value = np.where(live, (c.now - started[cand]) / 1e6 if c.now != c.NA else 0.0,
                     (processed[cand] - started[cand]) / 1e6)
    # a straggler is at least straggler_min_s beyond a median >= 0: nothing shorter can be one,
    # and then no distribution is computed at all (a clean run's critical path)
    short = value < c.th["straggler_min_s"]
    cand, live, value = cand[~short], live[~short], value[~short]
    if not len(cand):
        return []
    part, names = c.partition
    done = (processed != c.NA) & (started != c.NA)
    dur = np.where(done, (processed - started) / 1e6, np.nan)
    width = np.int64(len(names) + 1)
    key = c.session_of[cand].astype(np.int64) * width + part[cand]
    # the finished tasks of each (session, partition), found by one sort of their keys
    fin = np.flatnonzero(done)
    fin_key = c.session_of[:T][fin].astype(np.int64) * width + part[fin]
    order = np.argsort(fin_key, kind="stable")
    fin_key, fin_dur = fin_key[order], dur[fin][order]
    flagged: list[tuple[int, int, float, float, float, float, int]] = []
    for k, sel in groups(key):
        code = int(k) // int(width)
        dist = fin_dur[np.searchsorted(fin_key, k, "left"):np.searchsorted(fin_key, k, "right")]
        if len(dist) < c.th["straggler_min_samples"]:
            continue
        p50, p99 = (float(x) for x in np.quantile(dist, [0.5, 0.99]))
        v = value[sel]
        hit = (v >= c.th["straggler_ratio"] * p50) & (v >= p99) & (v - p50 >= c.th["straggler_min_s"])
        for i, val in zip(sel[hit].tolist(), v[hit].tolist()):
            pct = 100.0 * float((dist < val).sum()) / len(dist)  # few candidates: no sort
            flagged.append((i, code, val, p50, p99, pct, len(dist)))
    out = []
    by_group: dict[tuple[int, int, bool], list] = {}
    for f in flagged:
        i = f[0]
        by_group.setdefault((f[1], int(part[cand[i]]), bool(live[i])), []).append(f)
    ranked = sorted(by_group.items(), key=lambda kv: -max(f[2] - f[3] for f in kv[1]))
    for (code, pcode, is_live), fl in ranked[MAX_PER_RULE:]:
        if is_live:  # not described, still explained (a stall is not made of them)
            c.explained[[cand[f[0]] for f in fl]] = True
    if len(ranked) > MAX_PER_RULE:
        c.omitted["straggler"] = len(ranked) - MAX_PER_RULE
    for (code, pcode, is_live), fl in ranked[:MAX_PER_RULE]:
        fl.sort(key=lambda f: -f[2])
        nodes = np.array([cand[f[0]] for f in fl], dtype=np.int64)
        i, _, val, p50, p99, pct, n = fl[0]
        sid = c.session_names[code]
        tid = g.node_id(int(nodes[0]))
        if is_live:
            c.explained[nodes] = True
        aff = c.affected(nodes)
        ratio = val / p50 if p50 > 0 else math.inf
        where = ("longer than every one of the " + _plural(n, "task") + " that finished: p100"
                 if pct >= 100 else f"p{pct:.1f} of {_plural(n, 'finished task')}")
        more = f"; {_plural(len(nodes) - 1, 'more task')} likewise" if len(nodes) > 1 else ""
        if is_live:
            claim = (f"task {_short(tid)} has been processing for {fmt_seconds(val)}, "
                     f"{ratio:.0f}x the median of partition {names[pcode]} in its session "
                     f"({fmt_seconds(p50)}; {where}): a straggler holding "
                     f"{_plural(aff['waiting_results'], 'result')}{more}")
            results = aff["waiting_results"]
        else:
            claim = (f"task {_short(tid)} processed for {fmt_seconds(val)} on the critical path of "
                     f"session {_short(sid)}, {ratio:.0f}x the median of partition {names[pcode]} "
                     f"({fmt_seconds(p50)}; {where}): its last result waited for a straggler{more}")
            results = 1
        out.append(finding(c, "straggler", "warning", claim, session_id=sid,
                           subject=f"{names[pcode]}:{'running' if is_live else 'critical path'}",
                           results=results, tasks=aff["open_tasks"] if is_live else int(len(nodes)),
                           time_lost_s=sum(f[2] - f[3] for f in fl),
                           evidence={"phase": "processing", "running": is_live,
                                     "partition_id": names[pcode], "task_ids": g.node_ids(nodes[:IDS_SHOWN]),
                                     "tasks_total": int(len(nodes)), "seconds": round(val, 3),
                                     "partition_p50_s": round(p50, 3), "partition_p99_s": round(p99, 3),
                                     "percentile": round(pct, 2), "ratio": round(ratio, 1) if math.isfinite(ratio) else None,
                                     "distribution_tasks": n},
                           next=c.command("task", tid)))
    return out


def _last_end(c: Context) -> np.ndarray:
    """Per session code: the last moment anything in it ended (a task's ended_at, a result's
    completed_at), NA when nothing did."""
    S = len(c.session_names)
    last = np.full(S, c.NA, dtype=np.int64)
    T = c.T
    for col, codes in ((c.ts["ended_at"], c.session_of[:T]), (c.rts["completed_at"], c.session_of[T:])):
        ok = col != c.NA
        np.maximum.at(last, codes[ok], col[ok])
    return last


def _p99_by_session(c: Context, codes: np.ndarray) -> np.ndarray:
    """The p99 processing time of each of the sessions ``codes`` (0 when none finished one),
    by one sort of their finished tasks (the nearest rank below)."""
    T = c.T
    S = len(c.session_names)
    wanted = np.zeros(S + 1, dtype=bool)
    wanted[codes] = True
    sess = c.session_of[:T]
    done = np.flatnonzero((c.ts["processed_at"] != c.NA) & (c.ts["started_at"] != c.NA) & wanted[sess])
    out = np.zeros(S)
    if not len(done):
        return out[codes]
    d = (c.ts["processed_at"][done] - c.ts["started_at"][done]) / 1e6
    k = sess[done]
    order = np.lexsort((d, k))
    ks, ds = k[order], d[order]
    cnt = np.bincount(ks, minlength=S)
    start = np.cumsum(cnt) - cnt
    has = np.flatnonzero(cnt)
    out[has] = ds[start[has] + np.floor(0.99 * (cnt[has] - 1)).astype(np.int64)]
    return out[codes]


def _stall(c: Context) -> list[dict[str, Any]]:
    """Open work, nothing ended for a while and nothing running (bar stragglers): every
    session judged at once (counts by bincount, last ends by maximum.at), the few stalled ones
    described."""
    T = c.T
    if not T or c.now == c.NA:
        return []
    open_ = T_OPEN[c.status] & c.tmask
    if not open_.any():
        return []
    S = len(c.session_names)
    sess = c.session_of[:T]
    last = _last_end(c)
    first = np.full(S, np.iinfo(np.int64).max, dtype=np.int64)
    created = c.ts["created_at"]
    ok = created != c.NA
    np.minimum.at(first, sess[ok], created[ok])
    n_open = np.bincount(sess[open_], minlength=S)
    # running stragglers are explained (c.explained): they do not count as progress
    running = np.bincount(sess[T_IN_PROGRESS[c.status] & ~c.explained], minlength=S)
    since = np.where(last != c.NA, last, first)
    quiet = np.where(since != np.iinfo(np.int64).max, (c.now - since) / 1e6, -1.0)
    held = c.session_codes(("PAUSED", "CANCELLED"))[:S]
    cand = np.flatnonzero((n_open > 0) & (running == 0) & ~held & (quiet >= c.th["stall_min_s"]))
    if not len(cand):
        return []
    window = np.maximum(c.th["stall_min_s"], c.th["stall_factor"] * _p99_by_session(c, cand))
    cand, window = cand[quiet[cand] >= window], window[quiet[cand] >= window]
    order = np.argsort(-n_open[cand], kind="stable")
    if len(cand) > MAX_PER_RULE:
        c.omitted["stall"] = int(len(cand) - MAX_PER_RULE)
    rs = np.asarray(c.g.result_status, dtype=np.int64)
    waiting_r = np.bincount(c.session_of[T:][rs == _R["CREATED"]], minlength=S)
    out = []
    for code, win in zip(cand[order][:MAX_PER_RULE].tolist(), window[order][:MAX_PER_RULE].tolist()):
        sid = c.session_names[code]
        opened = np.flatnonzero(open_ & (sess == code))
        by_status = {TASK_STATUSES[st]: int(n) for st, n in
                     enumerate(np.bincount(c.status[opened], minlength=len(TASK_STATUSES))) if n}
        unexplained = opened[~c.explained[opened]]
        # a task waiting behind explained work is explained too: only the frontier decides
        front = c.g.frontier(nodes=unexplained) if len(unexplained) else unexplained
        front = front[front < T]
        statuses = ", ".join(f"{n} {st}" for st, n in by_status.items())
        q = float(quiet[code])
        ended = "nothing ended" if last[code] != c.NA else "nothing has ended since it started"
        explained = sorted({f["kind"] for f in c.found if f["session_id"] in (sid, None)
                            and f["kind"] in ("straggler", "starved_partition", "unsatisfiable_dependency")})
        claim = (f"session {_short(sid)} stalled: {ended} for {fmt_seconds(q)}, "
                 f"{_plural(len(opened), 'task')} open ({statuses}), none running")
        severity = "warning" if len(front) else "info"
        if not len(front):
            claim += f"; explained by {', '.join(explained) or 'the findings above'}"
        out.append(finding(c, "stall", severity, claim, session_id=sid,
                           results=int(waiting_r[code]), tasks=int(len(opened)), time_lost_s=q,
                           evidence={"quiet_s": round(q, 3), "window_s": round(win, 3),
                                     "open_by_status": by_status, "unexplained_frontier": int(len(front)),
                                     "unexplained_ids": c.g.node_ids(front[:IDS_SHOWN]),
                                     "explained_by": explained},
                           next=c.command("blockers", "--session", sid)))
    return out


#: how many windows before the last one a throughput drop compares with (the hour before, at
#: the default 60 s window)
DROP_WINDOWS_BEFORE = 60


def _throughput_drop(c: Context) -> list[dict[str, Any]]:
    """A live session completing far fewer tasks in the last window than it did before, while
    tasks wait in the queue (the work was there). Every such session at once: completions by
    (session, window) in one bincount, the median of the windows before per row."""
    T = c.T
    if not T or c.now == c.NA:
        return []
    queued = (c.status == _T["SUBMITTED"]) & c.tmask
    if not queued.any():
        return []
    S = len(c.session_names)
    sess = c.session_of[:T]
    stalled = np.zeros(S + 1, dtype=bool)
    code_of = {sid: i for i, sid in enumerate(c.session_names)}
    stalled[[code_of[f["session_id"]] for f in c.found if f["kind"] == "stall"]] = True
    held = c.session_codes(("PAUSED", "CANCELLED")) | stalled
    cand = np.unique(sess[queued])
    cand = cand[~held[cand]]
    if not len(cand):
        return []
    W = int(c.th["drop_window_s"] * 1e6)
    if W <= 0:
        return []
    row = np.full(S + 1, -1, dtype=np.int64)
    row[cand] = np.arange(len(cand))
    ended = c.ts["ended_at"]
    sel = np.flatnonzero((c.status == _T["COMPLETED"]) & (ended != c.NA) & (ended <= c.now))
    k = row[sess[sel]]
    keep = k >= 0
    e, k = ended[sel][keep], k[keep]
    K, B = len(cand), DROP_WINDOWS_BEFORE
    first_end = np.full(K, c.now, dtype=np.int64)
    np.minimum.at(first_end, k, e)
    windows = (c.now - first_end) // W                  # whole windows since each first end
    back = (c.now - e) // W                             # 0: the last window
    near = back <= B
    counts = np.bincount(k[near] * (B + 1) + back[near], minlength=K * (B + 1)).reshape(K, B + 1)
    col = np.arange(B + 1)
    before = (col >= 1) & (col < windows[:, None])
    judged = np.flatnonzero(windows >= 2)
    ref = np.zeros(K)
    if len(judged):
        ref[judged] = np.nanmedian(np.where(before[judged], counts[judged], np.nan), axis=1)
    recent = counts[:, 0]
    hit = np.flatnonzero((windows >= 2) & (ref >= c.th["drop_min_tasks"])
                         & (recent <= c.th["drop_ratio"] * ref))
    if len(hit) > MAX_PER_RULE:
        c.omitted["throughput_drop"] = int(len(hit) - MAX_PER_RULE)
    hit = hit[np.argsort(recent[hit] / ref[hit], kind="stable")][:MAX_PER_RULE]
    out = []
    acq = c.ts["acquired_at"]
    w = c.th["drop_window_s"]
    for i in hit.tolist():
        code = int(cand[i])
        sid = c.session_names[code]
        pod, _ = c.pod
        mine = sess == code
        took = mine & (acq != c.NA)
        n_before = int(before[i].sum())
        recent_pods = len(np.unique(pod[took & (acq > c.now - W)]))
        before_pods = len(np.unique(pod[took & (acq <= c.now - W) & (acq > c.now - (n_before + 1) * W)]))
        n_queued = int((queued & mine).sum())
        r, f = int(recent[i]), float(ref[i])
        claim = (f"session {_short(sid)} slowed down: {r} tasks completed in the last "
                 f"{fmt_seconds(w)} against {f:.0f} per {fmt_seconds(w)} before "
                 f"({100 * (r / f - 1):+.0f}%) while {_plural(n_queued, 'task')} wait in the "
                 f"queue; {_plural(recent_pods, 'pod')} took tasks in that time, {before_pods} before")
        out.append(finding(c, "throughput_drop", "warning", claim, session_id=sid,
                           tasks=int((T_OPEN[c.status] & mine).sum()), time_lost_s=w * (1 - r / f),
                           evidence={"window_s": w, "completed_last_window": r,
                                     "completed_per_window_before": f, "windows_before": n_before,
                                     "queued": n_queued, "pods_last_window": recent_pods,
                                     "pods_before": before_pods},
                           next=c.command("query", "throughput", "--param", f"session_id={sid}",
                                          "--param", f"bucket_seconds={w:g}")))
    return out


#: beyond this many tasks, a partition's busy pods are estimated from an even sample of them
BUSY_SAMPLE = 100_000


def _busy_integral(c: Context, tasks: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """B(t): the pod-seconds ``tasks`` spent with an agent (acquired -> ended, or now) before
    each t (µs), so that B(b) - B(a) is the busy pod-seconds within [a, b). Sorted starts and
    ends with their cumulative sums: any number of intervals in one ``searchsorted``. Over many
    tasks, every k-th task's, times k (an even sample in row order)."""
    step = max(1, -(-len(tasks) // BUSY_SAMPLE))
    tasks = tasks[::step]
    acq, end = c.ts["acquired_at"][tasks], c.ts["ended_at"][tasks]
    stop = np.where(end != c.NA, end, c.now if c.now != c.NA else acq)
    t0 = int(acq.min()) if len(acq) else 0
    starts, stops = np.sort((acq - t0) / 1e6), np.sort((stop - t0) / 1e6)
    cs, ce = np.r_[0.0, np.cumsum(starts)], np.r_[0.0, np.cumsum(stops)]

    def B(t_us: np.ndarray) -> np.ndarray:
        t = (np.asarray(t_us, dtype=np.int64) - t0) / 1e6
        ns, ne = np.searchsorted(starts, t), np.searchsorted(stops, t)
        return step * ((t * ns - cs[ns]) - (t * ne - ce[ne]))
    return B


def _capacity(c: Context) -> list[dict[str, Any]]:
    """A session whose critical path waited mostly in the queue for a free agent while the
    partition's agents were busy. Every session at once: queued seconds per session by
    bincount, the partition it queued in most by one (session x partition) bincount, the busy
    pods over its queued segments by one busy integral per partition."""
    from . import critical_path as cp

    p = c.paths
    if not len(p.seg_name):
        return []
    q = cp.SEGMENTS.index("queued")
    S = len(p.sessions)
    is_q = p.seg_name == q
    length = (p.seg_b - p.seg_a) / 1e6
    secs = np.bincount(p.seg_k[is_q], weights=length[is_q], minlength=S)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = secs / p.wall
    cand = np.flatnonzero(~np.isnan(p.wall) & (p.wall > 0) & (secs >= c.th["capacity_min_s"])
                          & (share >= c.th["capacity_queued_share"]))
    if not len(cand):
        return []
    part, names = c.partition
    pod, _ = c.pod
    P = max(len(names), 1)
    K = len(cand)
    row = np.full(S, -1, dtype=np.int64)
    row[cand] = np.arange(K)
    qs = np.flatnonzero(is_q & (row[p.seg_k] >= 0))
    r = row[p.seg_k[qs]]
    seg_part = part[p.node[p.seg_step[qs]]]
    top = np.argmax(np.bincount(r * P + seg_part, weights=length[qs], minlength=K * P).reshape(K, P), axis=1)
    on_top = seg_part == top[r]
    busy_s = np.zeros(len(qs))
    used = np.zeros(P, dtype=np.int64)
    acquired = c.ts["acquired_at"] != c.NA
    for pc_ in np.unique(seg_part[on_top]).tolist():
        of_p = np.flatnonzero((part == pc_) & acquired)
        used[pc_] = int((np.bincount(pod[of_p], minlength=1) > 0).sum()) if len(of_p) else 0
        m = np.flatnonzero(on_top & (seg_part == pc_))
        if len(of_p):
            B = _busy_integral(c, of_p)
            busy_s[m] = B(p.seg_b[qs[m]]) - B(p.seg_a[qs[m]])
    span = np.bincount(r[on_top], weights=length[qs][on_top], minlength=K)
    with np.errstate(invalid="ignore", divide="ignore"):
        busy = np.bincount(r[on_top], weights=busy_s[on_top], minlength=K) / span
    ok = np.flatnonzero(busy >= c.th["capacity_busy_share"] * np.maximum(used[top], 1))
    # (queued while agents were free is not capacity: a paused session, a slow scheduler)
    ok = ok[np.argsort(-secs[cand[ok]], kind="stable")]
    if len(ok) > MAX_PER_RULE:
        c.omitted["capacity_bound"] = int(len(ok) - MAX_PER_RULE)
    out = []
    for j in ok[:MAX_PER_RULE].tolist():
        i = int(cand[j])
        sid, wall, queued = p.sessions[i], float(p.wall[i]), float(secs[i])
        pname = names[int(top[j])] if names else ""
        info = c.partitions.get(pname) or {}
        n_used = int(used[top[j]])
        steps = int(len(np.unique(p.seg_step[qs[r == j]])))
        claim = (f"session {_short(sid)} is capacity-bound: its critical path waited "
                 f"{fmt_seconds(queued)} in the queue ({100 * queued / wall:.0f}% of its "
                 f"{fmt_seconds(wall)} wall time) while the {n_used} pods of partition {pname} "
                 f"were busy ({busy[j]:.1f} on average, pod_max {info.get('pod_max')}): more pods "
                 "would shorten it")
        out.append(finding(c, "capacity_bound", "info", claim, session_id=sid, subject=pname,
                           tasks=steps, time_lost_s=queued,
                           evidence={"queued_s": round(queued, 3), "wall_s": round(wall, 3),
                                     "share": round(queued / wall, 4), "partition_id": pname,
                                     "pod_max": info.get("pod_max"), "pod_reserved": info.get("pod_reserved"),
                                     "pods_seen": n_used, "busy_pods_while_queued": round(float(busy[j]), 2),
                                     "queued_steps": steps},
                           next=c.command("critical-path", "--session", sid)))
    return out


def _clean(c: Context) -> list[dict[str, Any]]:
    """Nothing above worth a warning: say so in one line."""
    if any(f["severity"] in ("error", "warning") for f in c.found):
        return []
    T = c.T
    # every task in scope (no --session): views, not masked copies of 10M-row columns
    sel = slice(None) if c.tmask.all() else c.tmask
    st = c.status[sel]
    n = int(len(st))
    done = int((st == _T["COMPLETED"]).sum())
    open_ = int(T_OPEN[st].sum())
    sessions = int((np.bincount(c.session_of[:T][sel], minlength=1) > 0).sum()) if n else 0
    if not n:
        claim = "nothing to say: no task in scope"
    elif open_:
        claim = (f"no problem found: {done} of {n} tasks completed, {open_} open and progressing "
                 f"in {_plural(sessions, 'session')}")
    else:
        created = c.ts["created_at"][sel]
        known = created != c.NA
        last = int(c.ts["ended_at"][sel].max())  # NA is the smallest int64
        span = c.seconds(int(created.min(where=known, initial=np.iinfo(np.int64).max)), last) \
            if known.any() and last != c.NA else None
        took = f" in {fmt_seconds(span)}" if span is not None and sessions == 1 else ""
        others = n - done
        claim = (f"clean run: {_plural(sessions, 'session')}, {done} tasks completed{took}"
                 + (f" ({others} retried or cancelled and recovered)" if others else ", none failed")
                 + ", nothing waiting")
    return [finding(c, "clean_run", "info", claim, session_id=c.session_id,
                    evidence={"tasks": n, "completed": done, "open": open_, "sessions": sessions},
                    next=c.command("critical-path", *c.session_scope(c.session_id)))]


# The catalogue, in the order the rules run: the specific first (they claim what they explain).
T_ = Threshold
RULES: tuple[Rule, ...] = (
    Rule("session_cancelled", "warning", "the client cancelled this session", (),
         _session_cancelled, "cancelled"),
    Rule("retry_cleanup", "info", "(not a finding: what retried attempts left behind is theirs)", (),
         _retry_cleanup, ""),
    Rule("unsatisfiable_dependency", "error", "these tasks can never start: an input will never "
         "be there", (T_("unsatisfiable_wait_s", 60.0, "s", "an input owned by nobody (only the "
                         "client can upload it) counts once a task has waited this long for it"),),
         _unsatisfiable, "unsatisfiable"),
    Rule("bad_node", "warning", "this pod fails the tasks it runs: a bad node",
         (T_("bad_node_min_tasks", 5, "tasks", "at least this many different tasks failed there"),
          T_("bad_node_ratio", 3.0, "x", "its failure rate is at least this many times the other pods'"),
          T_("bad_node_p", 1e-3, "p", "chance explains it with at most this probability (binomial tail, "
             "Chernoff bound, times the number of pods)")),
         _bad_node, "bad-node"),
    Rule("retries_never_recover", "error", "these tasks failed every attempt: retrying does not help", (),
         _retries, "retries"),
    Rule("new_error_class", "error", "an error this run has and the baseline had not (diff)", (),
         _new_error_class, "htcmock --error-rate (diff against a clean htcmock)"),
    Rule("failures_by_root_cause", "error", "N results aborted by K root tasks: this error", (),
         _failures, "failures"),
    Rule("starved_partition", "error", "tasks wait in a partition no agent takes from",
         (T_("starved_s", 120.0, "s", "no task of the partition acquired for this long (with pods) "
             "while the rest of the cluster ran"),),
         _starved, "starved"),
    Rule("straggler", "warning", "a result is held by a task far slower than its partition's others",
         (T_("straggler_ratio", 10.0, "x", "processing at least this many times the partition's median"),
          T_("straggler_min_s", 60.0, "s", "and at least this many seconds beyond the median"),
          T_("straggler_min_samples", 10, "tasks", "the partition's distribution needs this many "
             "finished tasks")),
         _straggler, "straggler"),
    Rule("stall", "warning", "the run stopped making progress",
         (T_("stall_min_s", 300.0, "s", "nothing ended for at least this long ..."),
          T_("stall_factor", 3.0, "x", "... and this many times the session's p99 processing time")),
         _stall, "stall"),
    Rule("throughput_drop", "warning", "the run slowed down while work was waiting",
         (T_("drop_window_s", 60.0, "s", "the last window compared with the windows before it"),
          T_("drop_ratio", 0.5, "share", "completions in the last window at most this share of the "
             "median window before"),
          T_("drop_min_tasks", 20, "tasks", "the windows before completed at least this many "
             "(median)")),
         _throughput_drop, "slowdown"),
    Rule("capacity_bound", "info", "the run waited for agents: more pods would shorten it",
         (T_("capacity_queued_share", 0.5, "share", "queued time is at least this share of the "
             "critical path"),
          T_("capacity_min_s", 30.0, "s", "and at least this long ..."),
          T_("capacity_busy_share", 0.75, "share", "... while on average at least this share of "
             "the partition's pods seen were busy")),
         _capacity, "htcmock"),
    Rule("clean_run", "info", "nothing wrong: said in one line", (), _clean, "chain"),
)
RULE = {r.kind: r for r in RULES}
KINDS = tuple(r.kind for r in RULES if r.kind != "retry_cleanup")
THRESHOLDS: dict[str, Threshold] = {t.name: t for r in RULES for t in r.thresholds}


def parse_thresholds(specs: Iterable[str] | Mapping[str, float] | None) -> dict[str, float]:
    """Every threshold's value: the defaults, overridden by ``NAME=VALUE`` (a number; a
    duration may end in s, a share in %)."""
    values = {name: t.default for name, t in THRESHOLDS.items()}
    if specs is None:
        return values
    items = specs.items() if isinstance(specs, Mapping) else \
        [(s.partition("=")[0], s.partition("=")[2]) if "=" in str(s) else (str(s), None) for s in specs]
    for name, raw in items:
        name = str(name).strip().replace("-", "_")
        if name not in THRESHOLDS:
            raise AnalysisError(f"--threshold {name!r} is not a finding's threshold; they are "
                                f"{', '.join(sorted(THRESHOLDS))} (docs/findings.md)")
        if raw is None or str(raw).strip() == "":
            raise AnalysisError(f"--threshold {name} needs a value: write {name}="
                                f"{THRESHOLDS[name].default:g}")
        text = str(raw).strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text.removesuffix("s"))
        except ValueError:
            raise AnalysisError(f"--threshold {name}={text!r}: not a number; write e.g. {name}="
                                f"{THRESHOLDS[name].default:g}") from None
        if not math.isfinite(value) or value < 0:
            raise AnalysisError(f"--threshold {name}={text}: must be a finite number >= 0")
        default = THRESHOLDS[name].default
        values[name] = int(value) if isinstance(default, int) and value.is_integer() else value
    return values


def check_fail_on(fail_on: str | None) -> str | None:
    if fail_on is None:
        return None
    v = str(fail_on).strip().lower()
    if v not in FAIL_ON:
        raise AnalysisError(f"--fail-on {fail_on!r} is not one of {', '.join(FAIL_ON)}")
    return v


def _rank_key(f: dict[str, Any]) -> tuple:
    i = f["impact"]
    return (SEVERITIES.index(f["severity"]), f["kind"] == "clean_run", -(i["results"] or 0),
            -(i["tasks"] or 0), -(i["time_lost_s"] or 0), f["kind"], f["key"])


def failure_classes(snap, session_id: str | None = None) -> dict[str, set[str]]:
    """The error classes of every failed, retried or cancelled attempt of a bundle, by session
    (what a later run's ``new_error_class`` compares with). Read from the tasks' columns, no
    graph (``diff`` asks for them before it builds one)."""
    t = snap.read_columns("tasks", ["session_id", "status", "output_error", "status_message"],
                          dictionary=["session_id", "status"])
    keep = pc.is_in(pc.cast(t["status"], pa.string()),
                    value_set=pa.array(["ERROR", "TIMEOUT", "RETRIED", "CANCELLED"]))
    if session_id is not None:
        keep = pc.and_(keep, pc.equal(pc.cast(t["session_id"], pa.string()), session_id))
    t = t.filter(keep)
    out: dict[str, set[str]] = {}
    if not t.num_rows:
        return out
    err = pc.utf8_trim_whitespace(pc.fill_null(_single(t["output_error"]), ""))
    msg = pc.utf8_trim_whitespace(pc.fill_null(_single(t["status_message"]), ""))
    text = pc.if_else(pc.equal(err, ""), pc.if_else(pc.equal(msg, ""), "(no message)", msg), err)
    classes = error_class(text).to_pylist()
    for s, k in zip(pc.cast(_single(t["session_id"]), pa.string()).to_pylist(), classes):
        out.setdefault(s, set()).add(k)
    return out


def build(snap, session_id: str | None = None, thresholds=None, fail_on: str | None = None,
          baseline=None, paths=None, path_ids: list[str] | None = None) -> dict[str, Any]:
    """The findings of ``snap`` (one session with ``session_id``), ranked (see the module
    docstring). ``thresholds``: ``NAME=VALUE`` strings or a mapping; ``fail_on``: ``warning``
    or ``error`` sets ``failing`` (the exit code of ``--fail-on``); ``baseline``: a Snapshot of
    an earlier run, or the error classes it had (a set, or by session of this bundle), for
    ``new_error_class``. ``paths``/``path_ids``: critical paths already computed for these
    sessions (``analyze`` passes its own)."""
    g = snap.graph  # first: it builds while the checksums are still being verified
    snap.require_session(session_id)
    th = parse_thresholds(thresholds)
    fail_on = check_fail_on(fail_on)
    if baseline is not None and hasattr(baseline, "graph"):  # a Snapshot: every class it had
        baseline = set().union(set(), *failure_classes(baseline).values())
    del g
    c = Context(snap, session_id, th, baseline, paths, path_ids)
    for rule in RULES:
        got = rule.check(c)
        got.sort(key=_rank_key)
        if len(got) > MAX_PER_RULE:
            c.omitted[rule.kind] = len(got) - MAX_PER_RULE
            got = got[:MAX_PER_RULE]
        c.found.extend(got)
    found = sorted(c.found, key=_rank_key)
    n = {s: sum(f["severity"] == s for f in found) for s in SEVERITIES}
    clean = not (n["error"] or n["warning"])
    if clean:
        summary = next((f["claim"] for f in found if f["kind"] == "clean_run"), "clean run")
        notes = len(found) - 1
        if notes > 0:
            summary += f" ({_plural(notes, 'note')})"
    else:
        parts = [_plural(n[s], s) for s in SEVERITIES if n[s]]
        summary = f"{_plural(len(found), 'finding')}: {', '.join(parts)}; first: {found[0]['claim']}"
    if c.omitted:
        summary += " (" + ", ".join(f"{v} more {k}" for k, v in c.omitted.items()) + ": -o json)"
    failing = 0
    if fail_on is not None:
        worst = SEVERITIES.index(fail_on)
        failing = sum(1 for f in found if SEVERITIES.index(f["severity"]) <= worst)
    return {"findings": found, "clean": clean, "summary": summary, "thresholds": th,
            "counts": n, "omitted": c.omitted, "fail_on": fail_on, "failing": failing,
            "bundle": str(snap.path), "session_id": session_id, "snapshot_time": snap.snapshot_time}


def exit_code(data: dict[str, Any]) -> int:
    return 1 if data.get("failing") else 0


# -- rendering --------------------------------------------------------------------------------------

COLUMNS = ["rank", "severity", "kind", "session_id", "claim", "results", "tasks", "time_lost_s",
           "next", "key"]
TABLE_COLUMNS = ["severity", "claim", "next"]


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The findings as flat rows (CSV, the tables)."""
    return [{"rank": i, "severity": f["severity"], "kind": f["kind"], "session_id": f["session_id"],
             "claim": f["claim"], "results": f["impact"]["results"], "tasks": f["impact"]["tasks"],
             "time_lost_s": f["impact"]["time_lost_s"], "next": f["next"], "key": f["key"]}
            for i, f in enumerate(data["findings"], 1)]


def sections(data: dict[str, Any]) -> list[Section]:
    return [Section("findings", rows(data), COLUMNS),
            Section("thresholds", [{"name": k, "value": v, "default": THRESHOLDS[k].default,
                                    "unit": THRESHOLDS[k].unit} for k, v in data["thresholds"].items()],
                    ["name", "value", "default", "unit"])]


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)


def lines(data: dict[str, Any], limit: int | None = None) -> list[str]:
    """The findings for people, one line each (the first ``limit``), then where the rest are."""
    shown = data["findings"] if limit is None else data["findings"][:limit]
    out = []
    for f in shown:
        out.append(f"{f['severity'].upper():<8} {printable(f['claim'])}")
        if f.get("next"):
            out.append(f"{'':<8}   -> {printable(f['next'])}")
    return out


def _table(data: dict[str, Any]) -> str:
    head = [("bundle", data["bundle"]), ("snapshot time", data["snapshot_time"]),
            ("verdict", data["summary"])]
    if data["session_id"]:
        head.insert(1, ("session", data["session_id"]))
    changed = {k: v for k, v in data["thresholds"].items() if v != THRESHOLDS[k].default}
    if changed:
        head.append(("thresholds", " ".join(f"{k}={v:g}" for k, v in changed.items())))
    return render_sections([], head) + "\n\n" + "\n".join(lines(data))


def catalogue() -> list[dict[str, Any]]:
    """The rules as rows: kind, severity, what it says, thresholds with defaults, scenario."""
    return [{"kind": r.kind, "severity": r.severity, "says": r.says,
             "thresholds": {t.name: t.default for t in r.thresholds}, "scenario": r.scenario}
            for r in RULES if r.kind != "retry_cleanup"]
