"""``aksnap diff A B``: two runs side by side, every figure with a verdict.

Sessions of A are matched with sessions of B (``--session-a/--session-b``, or automatically: same
application name, version and namespace and same partitions, then the closest task count; a
version upgrade still matches, one tier below, and says so), then each bundle is measured once
for all its matched sessions by SQL (``queries/session_summary.sql``, ``status_counts``,
``result_status_counts``, ``phase_percentiles``, ``error_classes``, ``diff_sessions``) and by
the critical path (``critical_path.compute``, vectorised over the sessions). The two
measurements are long tables keyed by (metric, scope); joined, every row gets A, B, delta,
relative delta and a verdict from thresholds (``DEFAULT_THRESHOLDS``, overridden by
``--threshold PATTERN=N%|N``): a change counts only when it passes both the relative and the
absolute threshold (the absolute one is the noise floor: 50 ms of a phase percentile is noise
whatever its share). Each metric has a better direction (durations, failures, retries: lower;
throughput: higher); figures with none (completed counts, pods, the graph's shape) are
``changed`` rather than better or worse.

The two bundles are measured in two threads: the SQL of one runs while the other's graph is
built, but the graphs take turns (a lock; each dropped once measured), so two 1M-task bundles
never hold two graphs in memory.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from aksnap.bundle import PHASE_NAMES, RESULT_LOST_STATUSES
from aksnap.output import cell_text, safe_text

from .common import Section, pick_section, render_data, render_sections
from .snapshot import AnalysisError

REGRESSION, IMPROVEMENT, SAME, CHANGED = "regression", "improvement", "same", "changed"
VERDICTS = (REGRESSION, IMPROVEMENT, CHANGED, SAME)
FAIL_ON = ("regression", "change")
LOWER, HIGHER, NEUTRAL = "lower", "higher", "none"

#: (pattern, relative, absolute): a change counts when |delta| > absolute and |delta| / |A| >
#: relative. The longest matching pattern applies; ``--threshold`` patterns come first.
DEFAULT_THRESHOLDS: tuple[tuple[str, float, float], ...] = (
    ("tasks", 0.0, 0.0),             # counts of a seeded or nightly workload: any change
    ("results", 0.0, 0.0),
    ("time", 0.10, 1.0),             # wall time, makespan: 10% and at least 1 s
    ("throughput", 0.10, 0.0),
    ("phase", 0.20, 0.05),           # percentiles are noisier: 20% and at least 50 ms
    ("critical_path", 0.10, 1.0),
    ("critical_path.length", 0.0, 0.0),
    ("errors", 0.0, 0.0),            # a new error class is always a finding
    ("retries", 0.10, 1.0),          # one more retry is noise
    ("pods", 0.0, 0.0),
    ("graph", 0.0, 0.0),
)
FAMILIES = tuple(dict.fromkeys(p.split(".")[0] for p, _, _ in DEFAULT_THRESHOLDS))
STATS = ("p50", "p90", "p99", "max")


@dataclass(frozen=True)
class Threshold:
    pattern: str
    relative: float | None
    absolute: float | None

    def matches(self, key: str) -> bool:
        return key == self.pattern or key.startswith(self.pattern + ".") or \
            fnmatch.fnmatchcase(key, self.pattern)

    @property
    def weight(self) -> int:
        return len(self.pattern.replace("*", ""))


def parse_thresholds(specs: Iterable[str]) -> list[Threshold]:
    """``PATTERN=10%`` (relative), ``PATTERN=2`` (absolute, in the metric's unit) or
    ``PATTERN=10%,2`` (both); PATTERN is a metric key, a prefix of one (``phase``), or a glob
    (``phase.*.p90``)."""
    out = []
    for spec in specs or ():
        pattern, sep, value = str(spec).partition("=")
        pattern = pattern.strip()
        if not sep or not pattern or not value.strip():
            raise AnalysisError(f"--threshold {spec!r} is not METRIC=N% or METRIC=N; write e.g. "
                                "--threshold phase.processing.p90=10%")
        family = pattern.split(".")[0]
        if family not in FAMILIES and not any(c in family for c in "*?["):
            raise AnalysisError(f"--threshold {spec!r} names no metric: metrics begin with "
                                f"{', '.join(FAMILIES)}")
        rel = ab = None
        for part in value.split(","):
            part = part.strip()
            try:
                if part.endswith("%"):
                    rel = float(part[:-1]) / 100
                else:
                    ab = float(part.removesuffix("s"))
            except ValueError:
                raise AnalysisError(f"--threshold {spec!r}: {part!r} is not a number or a "
                                    "percentage; write e.g. 10% or 2") from None
            if (rel is not None and not math.isfinite(rel)) or (ab is not None and not math.isfinite(ab)) \
                    or (rel or 0) < 0 or (ab or 0) < 0:
                raise AnalysisError(f"--threshold {spec!r} must be a finite, non-negative number")
        out.append(Threshold(pattern, rel, ab))
    return out


def _best(thresholds: Sequence[Threshold], key: str) -> Threshold | None:
    hits = [t for t in thresholds if t.matches(key)]
    return max(hits, key=lambda t: t.weight) if hits else None


def threshold_for(key: str, user: Sequence[Threshold]) -> tuple[float, float]:
    """(relative, absolute) for a metric: the user's most specific pattern, completed by the
    default's."""
    default = _best([Threshold(*t) for t in DEFAULT_THRESHOLDS], key) or Threshold(key, 0.0, 0.0)
    mine = _best(user, key)
    rel = mine.relative if mine and mine.relative is not None else default.relative
    ab = mine.absolute if mine and mine.absolute is not None else default.absolute
    return rel, ab


def direction(key: str) -> str:
    """Which way is better for a metric."""
    family, _, rest = key.partition(".")
    if family in ("tasks", "results"):
        return NEUTRAL if rest == "COMPLETED" else LOWER
    if family == "throughput":
        return HIGHER
    if family in ("pods", "graph"):
        return NEUTRAL
    return LOWER


def verdict(key: str, a: float | None, b: float | None, rel_t: float, abs_t: float) -> tuple[str, float | None, float | None]:
    """(verdict, delta, relative delta) of one figure."""
    if a is None and b is None:
        return SAME, None, None
    if a is None or b is None:
        return CHANGED, None, None
    delta = b - a
    rel = delta / abs(a) if a else (0.0 if delta == 0 else math.copysign(math.inf, delta))
    if abs(delta) <= abs_t + 1e-12 or abs(rel) <= rel_t + 1e-12:
        return SAME, delta, rel
    better = direction(key)
    if better == NEUTRAL:
        return CHANGED, delta, rel
    worse = delta > 0 if better == LOWER else delta < 0
    return (REGRESSION if worse else IMPROVEMENT), delta, rel


# -- matching sessions ----------------------------------------------------------------------------

def _app(k: dict[str, Any]) -> str:
    name = k["application_name"] or "(no application name)"
    ver = f" {k['application_version']}" if k["application_version"] else ""
    ns = f" ({k['application_namespace']})" if k["application_namespace"] else ""
    return f"{name}{ver}{ns}"


def _tier(ka: dict[str, Any], kb: dict[str, Any]) -> int | None:
    same_app = (ka["application_name"], ka["application_namespace"]) == \
        (kb["application_name"], kb["application_namespace"])
    if not same_app or list(ka["partitions"]) != list(kb["partitions"]):
        return None
    return 0 if ka["application_version"] == kb["application_version"] else 1


def _reason(ka: dict[str, Any], kb: dict[str, Any], tier: int | None, how: str) -> str:
    parts = [how]
    if tier == 0:
        parts.append(f"same application {_app(ka)}")
    elif tier == 1:
        parts.append(f"same application {ka['application_name']}, version "
                     f"{ka['application_version'] or '?'} -> {kb['application_version'] or '?'}")
    else:
        parts.append(f"application {_app(ka)} -> {_app(kb)}" if _app(ka) != _app(kb)
                     else f"same application {_app(ka)}")
    pa_, pb = list(ka["partitions"]), list(kb["partitions"])
    parts.append(f"same partitions {', '.join(pa_) or '(none)'}" if pa_ == pb
                 else f"partitions {', '.join(pa_) or '(none)'} -> {', '.join(pb) or '(none)'}")
    parts.append(f"{ka['tasks']} vs {kb['tasks']} tasks")
    return "; ".join(parts)


def match_sessions(keys_a: list[dict[str, Any]], keys_b: list[dict[str, Any]],
                   session_a: str | None = None, session_b: str | None = None,
                   names: tuple[str, str] = ("A", "B")) -> list[dict[str, Any]]:
    """Pairs of sessions (``session_a``, ``session_b``, ``reason``), explicit or automatic."""
    by_a = {k["session_id"]: k for k in keys_a}
    by_b = {k["session_id"]: k for k in keys_b}
    if (session_a is None) != (session_b is None):
        raise AnalysisError("give both --session-a and --session-b (a session of each bundle), "
                            "or neither to match sessions automatically")
    if session_a is not None:
        for sid, known, name in ((session_a, by_a, names[0]), (session_b, by_b, names[1])):
            if sid not in known:
                raise AnalysisError(f"session {sid!r} is not in {name} (it holds "
                                    f"{len(known)} session(s): {', '.join(list(known)[:5])})")
        ka, kb = by_a[session_a], by_b[session_b]
        return [{"session_a": session_a, "session_b": session_b,
                 "reason": _reason(ka, kb, _tier(ka, kb), "given by --session-a/--session-b")}]
    if not keys_a or not keys_b:
        empty = names[0] if not keys_a else names[1]
        raise AnalysisError(f"{empty} holds no session; there is nothing to compare")
    if len(keys_a) == 1 and len(keys_b) == 1:
        ka, kb = keys_a[0], keys_b[0]
        return [{"session_a": ka["session_id"], "session_b": kb["session_id"],
                 "reason": _reason(ka, kb, _tier(ka, kb), "the only session of each bundle")}]
    cands = []
    for i, ka in enumerate(keys_a):
        for j, kb in enumerate(keys_b):
            tier = _tier(ka, kb)
            if tier is not None:
                cands.append((tier, abs(ka["tasks"] - kb["tasks"]), i, j))
    cands.sort()
    used_a, used_b, pairs = set(), set(), []
    for tier, dist, i, j in cands:
        if i in used_a or j in used_b:
            continue
        rivals = [c for c in cands if c[:2] == (tier, dist) and (c[2] == i) != (c[3] == j)
                  and c[2] not in used_a and c[3] not in used_b]
        if rivals:
            a_id, b_id = keys_a[i]["session_id"], keys_b[j]["session_id"]
            other = keys_b[rivals[0][3]]["session_id"] if rivals[0][2] == i else \
                keys_a[rivals[0][2]]["session_id"]
            raise AnalysisError(f"sessions match ambiguously: {a_id} of {names[0]} and {b_id} of "
                                f"{names[1]} match as well as {other} (same application, "
                                "partitions and task-count distance); pass --session-a and "
                                "--session-b to choose")
        used_a.add(i)
        used_b.add(j)
        ka, kb = keys_a[i], keys_b[j]
        pairs.append({"session_a": ka["session_id"], "session_b": kb["session_id"],
                      "reason": _reason(ka, kb, tier, "matched automatically")})
    if not pairs:
        raise AnalysisError(f"no session of {names[0]} has the application and partitions of a "
                            f"session of {names[1]}; pass --session-a and --session-b to compare "
                            "two sessions anyway")
    return pairs


# -- measuring one bundle ---------------------------------------------------------------------------

def measure(snap, session_ids: Sequence[str], graph_lock=None,
            findings: dict | None = None) -> dict[tuple[str, str, str], float | None]:
    """Every compared figure of the named sessions of one bundle: {(session, metric, scope):
    value}. SQL over every task row at once, then (holding ``graph_lock``, so that two bundles
    never hold two graphs) the critical paths and spawn depths, vectorised; the graph is
    dropped once measured. ``findings``: a dict that receives the bundle's findings
    (``findings.build``; its ``baseline`` keyword under "baseline") while the graph is held."""
    import contextlib

    out = measure_sql(snap, session_ids)
    with graph_lock or contextlib.nullcontext():
        out.update(measure_graph(snap, session_ids))
        if findings is not None:
            from . import findings as findings_mod

            findings.update(findings_mod.build(snap, baseline=findings.get("baseline")))
        _release_graph(snap)
    return out


def measure_sql(snap, session_ids: Sequence[str]) -> dict[tuple[str, str, str], float | None]:
    wanted = set(session_ids)
    out: dict[tuple[str, str, str], float | None] = {}

    def put(sid, metric, scope, value):
        if sid in wanted:
            out[(sid, metric, scope or "")] = None if value is None else float(value)

    for r in snap.query("session_summary").to_pylist():
        s = r["session_id"]
        put(s, "time.wall_s", "", r["elapsed_s"])
        put(s, "throughput.tasks_per_s", "", r["avg_throughput"])
        put(s, "throughput.completed_per_s", "", r["completed_throughput"])
        put(s, "retries.retried_attempts", "", r["retried"])
    for r in snap.query("status_counts").to_pylist():
        put(r["session_id"], f"tasks.{r['status']}", "", r["tasks"])
    for r in snap.query("result_status_counts").to_pylist():
        if r["status"] in ("COMPLETED", "CREATED", *RESULT_LOST_STATUSES):
            put(r["session_id"], f"results.{r['status']}", "", r["results"])
    for r in snap.query("phase_percentiles").to_pylist():
        if r["phase"] not in PHASE_NAMES:
            continue
        for stat in STATS:
            put(r["session_id"], f"phase.{r['phase']}.{stat}", r["partition_id"], r[f"{stat}_s"])
    for r in snap.query("error_classes").to_pylist():
        metric = f"errors.{r['status']}" + (".propagated" if r["propagated"] else "")
        put(r["session_id"], metric, r["error_class"], r["tasks"])
    for r in snap.query("diff_sessions").to_pylist():
        put(r["session_id"], r["metric"], "", r["value"])
    return out


def spawn_depths(parent: np.ndarray) -> np.ndarray:
    """Each task's depth in the spawn tree (a client task is 0), by pointer jumping: log2(depth)
    vectorised steps, whatever the tree's shape."""
    d = (parent >= 0).astype(np.int64)
    p = np.asarray(parent, dtype=np.int64).copy()
    while True:
        alive = np.flatnonzero(p >= 0)
        if not len(alive):
            return d
        d_next, p_next = d.copy(), np.full_like(p, -1)
        d_next[alive] += d[p[alive]]
        p_next[alive] = p[p[alive]]
        d, p = d_next, p_next


def measure_graph(snap, session_ids: Sequence[str]) -> dict[tuple[str, str, str], float | None]:
    """The critical path of each session (length, seconds by segment) and its tasks per spawn
    depth (first attempts), from the graph."""
    from . import critical_path as cp

    out: dict[tuple[str, str, str], float | None] = {}

    def put(sid, metric, value):
        out[(sid, metric, "")] = float(value)

    ids = list(session_ids)
    g = snap.graph
    T = g.n_tasks
    code_of = {name: i for i, name in enumerate(g.sessions.to_pylist())}
    first = np.asarray(g.previous_attempt[:T]) < 0
    depth = spawn_depths(np.asarray(g.parent[:T]))[first]
    codes = np.asarray(g.session_of[:T])[first]
    width = int(depth.max()) + 1 if len(depth) else 1
    per = np.bincount(codes * width + depth, minlength=len(code_of) * width).reshape(-1, width)
    # fan-out: subtasks per spawning task (first attempts; a retry keeps its first parent)
    parent = np.asarray(g.parent[:T])
    spawned = first & (parent >= 0)
    kids = np.bincount(parent[spawned], minlength=T)
    spawners = np.flatnonzero(kids)
    spawner_code = np.asarray(g.session_of[:T])[spawners]
    for sid in ids:
        if sid not in code_of:
            continue
        k = code_of[sid]
        for d in np.flatnonzero(per[k]).tolist():
            put(sid, f"graph.depth.{d}", per[k, d])
        n = kids[spawners[spawner_code == k]]
        for stat, v in (("p50", np.quantile(n, 0.5) if len(n) else 0),
                        ("p90", np.quantile(n, 0.9) if len(n) else 0), ("max", n.max() if len(n) else 0)):
            put(sid, f"graph.fan_out.{stat}", v)
    p = cp.compute(snap, ids)
    on_path = np.bincount(p.k, weights=p.is_task, minlength=len(ids))
    seconds = np.bincount(p.seg_k * len(cp.SEGMENTS) + p.seg_name,
                          weights=(p.seg_b - p.seg_a) / 1e6,
                          minlength=len(ids) * len(cp.SEGMENTS)).reshape(len(ids), len(cp.SEGMENTS))
    for i, sid in enumerate(ids):
        if p.last[i] < 0:
            continue
        put(sid, "critical_path.length", on_path[i])
        for c, name in enumerate(cp.SEGMENTS):
            put(sid, f"critical_path.{name.replace(' ', '_')}_s", seconds[i, c])
    return out


def _release_graph(snap) -> None:
    """Drop the graph once measured: the other bundle's graph is built next."""
    snap.__dict__.pop("graph", None)


_ZERO_WHEN_MISSING = ("tasks.", "results.", "errors.", "graph.depth.", "retries.",
                      "critical_path.")


def compare(ma: dict, mb: dict, pairs: list[dict[str, Any]],
            thresholds: Sequence[Threshold]) -> list[dict[str, Any]]:
    """One row per (matched pair, metric, scope): A, B, delta, relative delta, verdict."""
    rows = []
    for pair in pairs:
        sa, sb = pair["session_a"], pair["session_b"]
        keys = sorted({k[1:] for k in ma if k[0] == sa} | {k[1:] for k in mb if k[0] == sb},
                      key=_order)
        for metric, scope in keys:
            a, b = ma.get((sa, metric, scope)), mb.get((sb, metric, scope))
            if metric.startswith(_ZERO_WHEN_MISSING):
                a, b = (0.0 if a is None else a), (0.0 if b is None else b)
            a, b = _count(metric, a), _count(metric, b)
            rel_t, abs_t = threshold_for(metric, thresholds)
            v, delta, rel = verdict(metric, a, b, rel_t, abs_t)
            if metric.startswith("critical_path.") and metric != "critical_path.length" \
                    and not a and not b:
                continue  # a segment neither path has
            rows.append({"session_a": sa, "session_b": sb, "metric": metric, "scope": scope,
                         "a": a, "b": b, "delta": delta,
                         "rel_delta": None if rel is None or math.isinf(rel) else rel,
                         "verdict": v, "better": direction(metric),
                         "threshold": f"{rel_t:.0%},{abs_t:g}"})
    return rows


def _count(metric: str, v: float | None) -> float | int | None:
    """A figure that counts (tasks, results, errors, retries, pods, path steps, graph depths)
    as the integer it is: 8649, not 8649.000; seconds and rates stay floats."""
    if v is None or metric.startswith(("phase.", "throughput.", "time.")) or \
            metric.endswith("_s") or not float(v).is_integer():
        return v
    return int(v)


def _order(key: tuple[str, str]) -> tuple:
    metric, scope = key
    family = metric.split(".")[0]
    rank = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
    return (rank, scope if family == "phase" else "", metric, scope)


def _headline(rows: list[dict[str, Any]], pair: dict[str, Any]) -> str:
    """One sentence per matched pair: how the wall time and the critical path moved, and which
    segment of the path grew most."""
    mine = [r for r in rows if (r["session_a"], r["session_b"]) == (pair["session_a"], pair["session_b"])]
    by = {r["metric"]: r for r in mine if not r["scope"]}
    bits = []
    w = by.get("time.wall_s")
    if w and w["delta"] is not None:
        bits.append(f"wall time {w['a']:.1f}s -> {w['b']:.1f}s ({_pct(w['rel_delta'])})")
    segs = [r for r in mine if r["metric"].startswith("critical_path.") and r["metric"].endswith("_s")
            and r["delta"] is not None]
    if segs:
        grew = max(segs, key=lambda r: r["delta"])
        if grew["delta"] > 0:
            name = grew["metric"][len("critical_path."):-2].replace("_", " ")
            bits.append(f"critical path: {name} grew most (+{grew['delta']:.1f}s)")
    n = {v: sum(r["verdict"] == v for r in mine) for v in VERDICTS}
    bits.append(f"{n[REGRESSION]} regression(s), {n[IMPROVEMENT]} improvement(s), "
                f"{n[CHANGED]} changed, {n[SAME]} same")
    return "; ".join(bits)


def _pct(rel: float | None) -> str:
    return "new" if rel is None else f"{rel:+.1%}"


def build(snap_a, snap_b, session_a: str | None = None, session_b: str | None = None,
          thresholds: Sequence[str] | Sequence[Threshold] = (), fail_on: str | None = None) -> dict[str, Any]:
    user = [t if isinstance(t, Threshold) else None for t in thresholds]
    user = [t for t in user if t] + parse_thresholds([t for t in thresholds if not isinstance(t, Threshold)])
    if fail_on is not None and fail_on not in FAIL_ON:
        raise AnalysisError(f"--fail-on {fail_on!r} is not one of {', '.join(FAIL_ON)}")
    names = (str(snap_a.path), str(snap_b.path))
    keys_a = snap_a.query("diff_session_keys").to_pylist()
    keys_b = snap_b.query("diff_session_keys").to_pylist()
    pairs = match_sessions(keys_a, keys_b, session_a, session_b, names)
    # B's SQL runs while A's graph is built (DuckDB and numpy release the GIL); the graphs
    # themselves take turns, so peak memory is one graph, not two
    from concurrent.futures import ThreadPoolExecutor
    from threading import Lock

    lock = Lock()
    # B's findings say which error classes A (the matched session) never had
    from . import findings as findings_mod

    known = findings_mod.failure_classes(snap_a)
    found_a: dict = {}
    found_b: dict = {"baseline": {p["session_b"]: known.get(p["session_a"], set()) for p in pairs}}
    with ThreadPoolExecutor(2, thread_name_prefix="aksnap-diff") as pool:
        fa = pool.submit(measure, snap_a, [p["session_a"] for p in pairs], lock, found_a)
        fb = pool.submit(measure, snap_b, [p["session_b"] for p in pairs], lock, found_b)
        ma, mb = fa.result(), fb.result()
    rows = compare(ma, mb, pairs, user)
    for p in pairs:
        p["headline"] = _headline(rows, p)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    failing = counts[REGRESSION] if fail_on == "regression" else \
        counts[REGRESSION] + counts[IMPROVEMENT] + counts[CHANGED] if fail_on == "change" else 0
    return {"a": names[0], "b": names[1], "matches": pairs,
            "unmatched_a": [k["session_id"] for k in keys_a
                            if k["session_id"] not in {p["session_a"] for p in pairs}],
            "unmatched_b": [k["session_id"] for k in keys_b
                            if k["session_id"] not in {p["session_b"] for p in pairs}],
            "verdicts": counts, "fail_on": fail_on, "failing": failing, "rows": rows,
            "findings": findings_change(found_a, found_b, pairs)}


def findings_change(found_a: dict, found_b: dict, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The findings new in B and resolved since A: the same finding is the same kind and
    subject (an error class, a partition; never an id of the run) in matched sessions."""
    to_b = {p["session_a"]: p["session_b"] for p in pairs}

    def key(f, session):
        return (f["kind"], session, f["subject"])

    in_a = {key(f, to_b.get(f["session_id"], f["session_id"])) for f in found_a.get("findings", [])}
    in_b = {key(f, f["session_id"]) for f in found_b.get("findings", [])}
    new = [f for f in found_b.get("findings", []) if key(f, f["session_id"]) not in in_a]
    gone = [f for f in found_a.get("findings", [])
            if key(f, to_b.get(f["session_id"], f["session_id"])) not in in_b]
    return {"a": found_a.get("summary"), "b": found_b.get("summary"), "new": new, "resolved": gone,
            "persisting": len(in_a & in_b)}


def exit_code(data: dict[str, Any]) -> int:
    return 1 if data.get("failing") else 0


# -- rendering ---------------------------------------------------------------------------------------

COLUMNS = ["session_a", "session_b", "metric", "scope", "a", "b", "delta", "rel_delta", "verdict",
           "better", "threshold"]
TABLE_COLUMNS = ["metric", "scope", "a", "b", "delta", "rel", "verdict"]


FINDING_COLUMNS = ["change", "severity", "kind", "session_id", "claim", "next"]


def _finding_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    f = data.get("findings") or {}
    return [{"change": change, **{k: x[k] for k in FINDING_COLUMNS[1:]}}
            for change, key in (("new", "new"), ("resolved", "resolved")) for x in f.get(key, [])]


def sections(data: dict[str, Any]) -> list[Section]:
    return [Section("comparisons", data["rows"], COLUMNS),
            Section("matches", [{k: p[k] for k in ("session_a", "session_b", "reason", "headline")}
                                for p in data["matches"]], ["session_a", "session_b", "reason", "headline"]),
            Section("findings", _finding_rows(data), FINDING_COLUMNS)]


def _shown(data: dict[str, Any]) -> list[dict[str, Any]]:
    rank = {v: i for i, v in enumerate(VERDICTS)}
    rows = [r for r in data["rows"] if r["verdict"] != SAME]
    rows.sort(key=lambda r: rank[r["verdict"]])
    return [{**r, "rel": _pct(r["rel_delta"]) if r["delta"] is not None else "only one side"}
            for r in rows]


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    if fmt == "markdown":
        return _markdown(data, section)
    return render_data(data, fmt, sections, _table, section)


def _table(data: dict[str, Any]) -> str:
    head = [("A", data["a"]), ("B", data["b"])]
    for p in data["matches"]:
        head += [("match", f"{p['session_a']} -> {p['session_b']}"), ("  because", p["reason"]),
                 ("  summary", p["headline"])]
    for side in ("a", "b"):
        if data[f"unmatched_{side}"]:
            head.append((f"unmatched in {side.upper()}", ", ".join(data[f"unmatched_{side}"])))
    c = data["verdicts"]
    head.append(("verdicts", f"{c[REGRESSION]} regression(s), {c[IMPROVEMENT]} improvement(s), "
                             f"{c[CHANGED]} changed, {c[SAME]} same (-o csv lists every figure)"))
    f = data.get("findings") or {}
    if f:
        head.append(("findings", f"{len(f['new'])} new in B, {len(f['resolved'])} resolved, "
                                 f"{f['persisting']} in both"))
        head += [(f"  {r['change']}", f"{r['severity']}: {r['claim']}") for r in _finding_rows(data)]
    out = []
    for p in data["matches"]:
        rows = [r for r in _shown(data) if (r["session_a"], r["session_b"]) == (p["session_a"], p["session_b"])]
        out.append((f"{p['session_a']} -> {p['session_b']}: what differs", rows, TABLE_COLUMNS))
    return render_sections(out, head)


def md_cell(v: Any) -> str:
    """A value as the text of a Markdown table cell: control characters, pipes, backticks,
    HTML and emphasis escaped (diff's and compare's ``-o markdown``)."""
    if isinstance(v, float):
        v = f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.4g}"
    return safe_text(cell_text(v)).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`") \
        .replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*").replace("_", "\\_")


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table; cells escaped (a pipe, a backtick or HTML in a
    message cannot break the table or the page)."""
    lines = ["| " + " | ".join(md_cell(c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(md_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _markdown(data: dict[str, Any], section: str | None = None) -> str:
    if section is not None:
        s = pick_section(sections(data), section)
        return markdown_table(s.rows, s.csv_columns())
    c = data["verdicts"]
    out = [f"### aksnap diff: {md_cell(data['a'])} -> {md_cell(data['b'])}", "",
           f"**{c[REGRESSION]} regression(s)**, {c[IMPROVEMENT]} improvement(s), "
           f"{c[CHANGED]} changed, {c[SAME]} same.", ""]
    for p in data["matches"]:
        out += [f"- {md_cell(p['session_a'])} -> {md_cell(p['session_b'])}: {md_cell(p['reason'])}",
                f"  - {md_cell(p['headline'])}"]
    changed = _finding_rows(data)
    if changed:
        out += ["", "Findings new in B and resolved since A:", "",
                markdown_table(changed, ["change", "severity", "claim"])]
    rows = _shown(data)
    if rows:
        many = len(data["matches"]) > 1
        cols = (["session_a"] if many else []) + TABLE_COLUMNS
        out += ["", markdown_table(rows, cols)]
    return "\n".join(out)
