"""``aksnap whatif``: a recorded run replayed under other pod counts, another scheduling policy,
or lazily (only what the target results need).

``build(snap, ...)`` replays the bundle with :mod:`aksnap.analyzer.replay` and returns plain
data: the makespan recorded and predicted (per session), the time each ``--target`` result
completes, the pods, work and utilisation of each partition, the replay's own critical path,
for ``lazy`` what did not run, and with ``curve`` the makespan at half, once, twice and four
times the pods (where adding pods stops helping). ``report_data(snap, ...)`` is the section of
``aksnap report``: recorded against predicted, and the capacity curve.

With ``--policy recorded`` and the recorded capacity the replay reproduces the recorded run:
``delta`` is then the model's error (docs/whatif.md, measured on the simulator).
"""

from __future__ import annotations

import shlex
from typing import Any, Sequence

import numpy as np

from . import replay as rp
from .common import Section, fmt_seconds, render_data, render_sections, to_time
from .graph import NA
from .snapshot import AnalysisError

POLICIES = rp.POLICIES
CURVE = (0.5, 1.0, 2.0, 4.0)
#: a capacity step that improves the makespan by less than this share no longer pays
SATURATED = 0.05
STEPS_SHOWN = 30        # steps of the critical path shown in the table (JSON: every one)
SESSIONS_SHOWN = 20     # sessions in the table (JSON and CSV: every one)


def _secs(us) -> float | None:
    return None if us is None or us == NA else round(int(us) / 1e6, 6)


def _pct(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not a:
        return None
    return round(100.0 * (b - a) / a, 3)


def parse_partitions(specs: Sequence[str] | None) -> dict[str, int]:
    """``NAME=N`` (repeatable) as {name: pods}; a malformed one is a sentence."""
    out: dict[str, int] = {}
    for spec in specs or ():
        name, sep, value = str(spec).rpartition("=")
        if not sep or not name:
            raise AnalysisError(f"--partition {spec!r} is not NAME=N; write e.g. --partition "
                                "default=8")
        try:
            n = int(value)
        except ValueError:
            raise AnalysisError(f"--partition {spec!r}: {value!r} is not a whole number of "
                                "pods; write e.g. --partition default=8") from None
        if n < 1:
            raise AnalysisError(f"--partition {spec!r}: a partition needs at least 1 pod "
                                f"(got {n})")
        out[name] = n
    return out


def _capacity(snap, wl: rp.Workload, pods: int | None,
              partitions: dict[str, int]) -> tuple[np.ndarray, list[str]]:
    """Pods per partition: the recorded capacity, ``pods`` for every partition, then the
    named ones; and where each figure came from."""
    if pods is not None and pods < 1:
        raise AnalysisError(f"--pods must be at least 1 (got {pods}); a partition with no pod "
                            "never runs anything")
    known = set(wl.partitions) | {r["partition_id"] for r in snap.sql(
        "SELECT partition_id FROM partitions").to_pylist()}
    for name in partitions:
        if name not in known:
            shown = ", ".join(sorted(known)[:8]) or "none"
            raise AnalysisError(f"partition {name!r} is not in {snap.path} (its partitions: "
                                f"{shown})")
    cap = np.maximum(wl.capacity.copy(), 1)
    source = ["recorded"] * len(cap)
    if pods is not None:
        cap[:] = pods
        source = ["--pods"] * len(cap)
    for k, name in enumerate(wl.partitions):
        if name in partitions:
            cap[k] = partitions[name]
            source[k] = "--partition"
    return cap, source


def _targets(snap, targets: Sequence[str] | None) -> list[str]:
    out = []
    for v in targets or ():
        rid = snap.resolve_id("result", v)
        if snap.graph.result_index(rid) < 0:
            hint = " (that is a task id)" if snap.graph.task_index(rid) >= 0 else ""
            raise AnalysisError(f"target result {v!r} is not in {snap.path}{hint}; list result "
                                "ids with: aksnap sql BUNDLE \"SELECT result_id, status FROM "
                                "results\"")
        out.append(rid)
    return list(dict.fromkeys(out))


def _target_times(snap, wl: rp.Workload, sched: rp.Schedule | None,
                  rids: list[str]) -> list[tuple[str, int, int, int]]:
    """(result, producer task or -1, recorded µs, predicted µs) of each result: it completes
    when its owner completes it, shifted with the owner's dispatch; a result no replayed task
    produces completes when it did (NA: never)."""
    g = snap.graph
    out = []
    done = g.result_ts["completed_at"]
    for rid in rids:
        j = g.result_index(rid)
        p = int(g.producer[j])
        rec = int(done[j]) - wl.origin if done[j] != NA else NA
        pred = rec
        if p >= 0 and wl.ran[p]:
            if sched is None:
                pred = rec
            elif not sched.keep[p] or sched.dispatch[p] == NA:
                pred = NA
            elif rec != NA:
                pred = rec + int(sched.dispatch[p] - wl.dispatch[p])
        out.append((rid, p, rec, pred))
    return out


def _span(wl: rp.Workload, scope: np.ndarray, ends: np.ndarray, mask: np.ndarray):
    """(start, end) µs of a scope: its first task created, its last task ended (NA: none)."""
    c = wl.created[scope & (wl.created != NA)]
    start = int(c.min()) if len(c) else NA
    e = ends[scope & mask]
    e = e[e != NA]
    return start, (int(e.max()) if len(e) else NA)


def _critical_path(snap, wl: rp.Workload, sched: rp.Schedule, scope: np.ndarray,
                   limit: int | None = 100_000) -> dict[str, Any]:
    """The replay's own critical path: back from the last task to end, each task's binding
    prerequisite (what set its release), oldest first; per step its wait for a pod."""
    ends = np.where(sched.keep & scope & (sched.dispatch != NA), sched.end, NA)
    if not (ends != NA).any():
        return {"line": "nothing ran", "steps": [], "tasks": 0}
    last = int(np.argmax(ends))
    chain = [last]
    why = sched.why
    while why[chain[-1]] >= 0 and len(chain) < (limit or 1 << 62):
        chain.append(int(why[chain[-1]]))
    chain = np.array(chain[::-1], dtype=np.int64)
    rel, disp, end = sched.release[chain], sched.dispatch[chain], sched.end[chain]
    wait = np.maximum(disp - rel, 0)
    g = snap.graph
    ids = g.node_ids(chain)
    steps = [{"step": k + 1, "task_id": ids[k], "partition_id": wl.partitions[wl.part[i]],
              "released_s": _secs(rel[k]), "dispatched_s": _secs(disp[k]), "ended_s": _secs(end[k]),
              "pod_wait_s": _secs(wait[k]), "work_s": _secs(wl.work[i])}
             for k, i in enumerate(chain.tolist())]
    total_wait, total_work = float(wait.sum()) / 1e6, float(wl.work[chain].sum()) / 1e6
    line = (f"{len(chain)} task(s) to {ids[-1]}: {fmt_seconds(total_work)} on pods, "
            f"{fmt_seconds(total_wait)} waiting for a pod")
    return {"line": line, "tasks": len(chain), "work_s": round(total_work, 6),
            "pod_wait_s": round(total_wait, 6), "steps": steps}


def _partition_rows(wl: rp.Workload, sched: rp.Schedule, cap: np.ndarray, source: list[str],
                    rec_span: int, pred_span: int) -> list[dict[str, Any]]:
    rows = []
    ran, keep = wl.ran, sched.keep & (sched.dispatch != NA)
    for k, name in enumerate(wl.partitions):
        m = ran & (wl.part == k)
        mk = keep & (wl.part == k)
        work_rec = float(wl.work[m].sum()) / 1e6
        work_pred = float(wl.work[mk].sum()) / 1e6
        qr = (wl.dispatch - wl.submitted)[m]
        qp = (sched.dispatch - sched.release)[mk]
        rows.append({
            "partition_id": name, "pods_recorded": int(wl.capacity[k]),
            "pods_seen": int(wl.pods_seen[k]),
            "pod_max": int(wl.pod_max[k]) if wl.pod_max[k] >= 0 else None,
            "pods": int(cap[k]), "pods_from": source[k], "tasks": int(mk.sum()),
            "work_s": round(work_pred, 3),
            "utilisation_recorded": round(float(work_rec / (wl.capacity[k] * rec_span / 1e6)), 4)
            if wl.capacity[k] and rec_span > 0 else None,
            "utilisation_predicted": round(float(work_pred / (cap[k] * pred_span / 1e6)), 4)
            if cap[k] and pred_span > 0 else None,
            "queue_wait_recorded_s": round(float(qr.mean()) / 1e6, 6) if len(qr) else None,
            "queue_wait_predicted_s": round(float(qp.mean()) / 1e6, 6) if len(qp) else None,
        })
    return rows


def _scope(snap, wl: rp.Workload, session_id: str | None) -> np.ndarray:
    if session_id is None:
        return np.ones(wl.n, dtype=bool)
    code = snap.graph.sessions.to_pylist().index(session_id)
    return wl.session == code


def _makespans(wl: rp.Workload, sched: rp.Schedule, scope: np.ndarray):
    """(start, recorded end, predicted end) µs of the scope; makespans from its start."""
    start, rec_end = _span(wl, scope, wl.end, wl.ran)
    _, pred_end = _span(wl, scope, sched.end, sched.keep & (sched.dispatch != NA))
    return start, rec_end, pred_end


def _calibration(wl, calib, scope, start, rec_ms, recorded_cap) -> dict[str, Any]:
    """The model's error: the recorded order replayed on the recorded pods, against the
    recorded makespan and each task's recorded end."""
    m = calib.keep & (calib.dispatch != NA) & scope
    _, _, cal_end = _makespans(wl, calib, scope)
    cal_ms = _secs(cal_end - start) if NA not in (start, cal_end) else None
    err = (calib.end - wl.end)[m]
    return {
        "pods": {n: int(c) for n, c in zip(wl.partitions, recorded_cap)},
        "recorded_s": rec_ms, "replayed_s": cal_ms,
        "makespan_error_s": round(cal_ms - rec_ms, 6) if None not in (rec_ms, cal_ms) else None,
        "makespan_error_pct": _pct(rec_ms, cal_ms),
        "tasks": int(m.sum()),
        "end_error_mean_abs_s": round(float(np.abs(err).mean()) / 1e6, 6) if len(err) else 0.0,
        "end_error_max_abs_s": round(float(np.abs(err).max()) / 1e6, 6) if len(err) else 0.0}


#: bundles with fewer tasks replay faster than a cache round trip pays off
CALIBRATION_CACHE_MIN_TASKS = 200_000


def _code_digest() -> str:
    """A digest of the replay's and this module's source: a cached calibration is only reused
    by the code that computed it (no version number to forget to bump)."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    for f in (rp.__file__, __file__):
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]


def _cached_calibration(snap, session_id: str | None, compute) -> dict[str, Any]:
    """The calibration (the recorded order replayed on the recorded pods: a whole second
    replay) of a large bundle, remembered beside the analyzer's index cache, keyed by the
    tables' checksums, the session and the code's digest (:mod:`aksnap.analyzer.cache`). Used
    only when the checksums are verified (every answer waits for that verdict); best effort:
    an unreadable or unwritable cache costs the replay, never an answer."""
    import json
    import os

    from .cache import cache_entry

    entry = None
    if getattr(snap, "verified", False) and snap.graph.n_tasks >= CALIBRATION_CACHE_MIN_TASKS:
        entry = cache_entry(snap.manifest, f"whatif-calibration-{_code_digest()}")
    key = session_id or "*"
    known: dict[str, Any] = {}
    if entry is not None:
        try:
            known = json.loads(entry.read_text())
            if isinstance(known, dict) and isinstance(known.get(key), dict):
                return known[key]
        except (OSError, ValueError):
            known = {}
    value = compute()
    if entry is not None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({**(known if isinstance(known, dict) else {}), key: value}))
            os.replace(tmp, entry)
        except OSError:
            pass
    return value


def simulate(snap, policy: str = "fifo", pods: int | None = None,
             partitions: dict[str, int] | None = None, keep: np.ndarray | None = None):
    """One replay of the bundle: (workload, schedule, capacity, where each capacity came
    from)."""
    wl = rp.prepare(snap)
    cap, source = _capacity(snap, wl, pods, partitions or {})
    sched = rp.replay(wl, cap, "fifo" if policy == "lazy" else policy, keep)
    return wl, sched, cap, source


def build(snap, session_id: str | None = None, policy: str = "fifo", pods: int | None = None,
          partitions: Sequence[str] | None = None, targets: Sequence[str] | None = None,
          curve: bool = False, calibrate: bool = True) -> dict[str, Any]:
    """The what-if answer (plain data). ``calibrate``: also replay the recorded order on the
    recorded pods, to state the model's error (a second replay unless that is what is
    asked)."""
    policy = (policy or "fifo").strip().lower()
    if policy not in POLICIES:
        raise AnalysisError(f"--policy {policy!r} is not one of {', '.join(POLICIES)}")
    parts = parse_partitions(partitions)
    if pods is not None and pods < 1:
        raise AnalysisError(f"--pods must be at least 1 (got {pods}); a partition with no pod "
                            "never runs anything")
    if policy == "lazy" and not targets:
        raise AnalysisError("--policy lazy runs only what target results need: name them with "
                            "--target RESULT_ID (repeatable)")
    snap.graph  # first: it builds while the checksums are still being verified
    snap.require_session(session_id)
    rids = _targets(snap, targets)
    wl = rp.prepare(snap)
    cap, source = _capacity(snap, wl, pods, parts)
    keep = None
    g = snap.graph
    if policy == "lazy":
        prods = np.array([int(g.producer[g.result_index(r)]) for r in rids], dtype=np.int64)
        prods = prods[prods >= 0]
        keep = rp.upstream(wl, prods) if len(prods) else np.zeros(wl.n, dtype=bool)
    sched = rp.replay(wl, cap, "fifo" if policy == "lazy" else policy, keep)
    scope = _scope(snap, wl, session_id)
    start, rec_end, pred_end = _makespans(wl, sched, scope)
    rec_ms = _secs(rec_end - start) if NA not in (start, rec_end) else None
    pred_ms = _secs(pred_end - start) if NA not in (start, pred_end) else None
    recorded_cap = np.maximum(wl.capacity, 1)
    calibration = policy == "recorded" and np.array_equal(cap, recorded_cap)
    # the model's error, stated whatever is asked: the recorded order at the recorded capacity
    calib = sched if calibration else None
    ran = sched.keep & (sched.dispatch != NA)
    summary = {
        "session_id": session_id, "policy": policy,
        "pods": {n: int(c) for n, c in zip(wl.partitions, cap)},
        "tasks_replayed": int((ran & scope).sum()),
        "tasks_not_replayed": int((~wl.ran & scope).sum()),
        "censored": int((wl.censored & scope).sum()),
        "start": to_time(start + wl.origin) if start != NA else None,
        "recorded_s": rec_ms, "predicted_s": pred_ms,
        "delta_s": round(pred_ms - rec_ms, 6) if None not in (rec_ms, pred_ms) else None,
        "delta_pct": _pct(rec_ms, pred_ms),
        "predicted_end": to_time(pred_end + wl.origin) if pred_end != NA else None,
        "calibration": bool(calibration),
    }
    never = int((sched.keep & (sched.dispatch == NA)).sum())
    notes = list(wl.notes)
    if never:
        notes.append(f"{never} task(s) never got a pod in the replay (a partition with no pod, "
                     "or a prerequisite that never ran)")
    if summary["censored"]:
        notes.append(f"{summary['censored']} task(s) were still running at the snapshot: their "
                     "pod time is cut there, so predictions are lower bounds")
    if summary["tasks_not_replayed"]:
        notes.append(f"{summary['tasks_not_replayed']} task(s) never got a pod in the recorded "
                     "run (failed by propagation, cancelled or still waiting): not replayed")
    data: dict[str, Any] = {"bundle": str(snap.path), "summary": summary}
    if calib is not None:
        data["calibration"] = _calibration(wl, calib, scope, start, rec_ms, recorded_cap)
    elif calibrate:
        data["calibration"] = _cached_calibration(
            snap, session_id, lambda: _calibration(wl, rp.replay(wl, recorded_cap, "recorded"),
                                                   scope, start, rec_ms, recorded_cap))
    else:
        data["calibration"] = None
    sess_rows = []
    codes = np.unique(wl.session[wl.ran & scope])
    names = g.sessions.to_pylist()
    for c in codes.tolist():
        sc = wl.session == c
        s0, r1, p1 = _makespans(wl, sched, sc)
        r = _secs(r1 - s0) if NA not in (s0, r1) else None
        p = _secs(p1 - s0) if NA not in (s0, p1) else None
        sess_rows.append({"session_id": names[c], "tasks": int((ran & sc).sum()),
                          "recorded_s": r, "predicted_s": p,
                          "delta_s": round(p - r, 6) if None not in (r, p) else None,
                          "delta_pct": _pct(r, p)})
    data["sessions"] = sess_rows
    g0, g_rec, g_pred = _makespans(wl, sched, np.ones(wl.n, dtype=bool))
    data["partitions"] = _partition_rows(
        wl, sched, cap, source, (g_rec - g0) if NA not in (g0, g_rec) else 0,
        (g_pred - g0) if NA not in (g0, g_pred) else 0)
    trows = []
    for rid, p, rec, pred in _target_times(snap, wl, sched, rids):
        j = g.result_index(rid)
        base = start if start != NA else 0
        trows.append({"result_id": rid, "session_id": g.session_id(g.n_tasks + j),
                      "producer": g.node_id(p) if p >= 0 else None,
                      "recorded_s": _secs(rec - base) if rec != NA else None,
                      "predicted_s": _secs(pred - base) if pred != NA else None,
                      "delta_s": _secs(pred - rec) if NA not in (rec, pred) else None,
                      "predicted_at": to_time(pred + wl.origin) if pred != NA else None})
    data["targets"] = trows
    if policy == "lazy":
        skipped = wl.ran & ~sched.keep & scope
        data["lazy"] = {"tasks_run": int((sched.keep & scope).sum()),
                        "tasks_not_run": int(skipped.sum()),
                        "task_seconds_not_run": round(float(wl.work[skipped].sum()) / 1e6, 3),
                        "task_seconds_run": round(float(wl.work[sched.keep & scope].sum()) / 1e6, 3),
                        "share_not_run": round(float(skipped.sum()) / max(int((wl.ran & scope).sum()), 1), 4)}
    data["critical_path"] = _critical_path(snap, wl, sched, scope)
    if curve:
        data["curve"] = capacity_curve(wl, cap, policy, keep, scope, pred_ms, start)
    data["notes"] = notes
    return data


def capacity_curve(wl: rp.Workload, cap: np.ndarray, policy: str, keep, scope: np.ndarray,
                   at_one: float | None = None, start: int | None = None) -> list[dict[str, Any]]:
    """The makespan at each factor of :data:`CURVE` times ``cap`` (at least one pod): its
    speed-up over the one before, and whether the step still pays (saturated below
    :data:`SATURATED`)."""
    rows = []
    prev = None
    for f in CURVE:
        c = np.maximum(np.round(cap * f).astype(np.int64), 1)
        if f == 1.0 and at_one is not None:
            ms = at_one
        else:
            sched = rp.replay(wl, c, "fifo" if policy == "lazy" else policy, keep)
            s0, _, p1 = _makespans(wl, sched, scope)
            ms = _secs(p1 - s0) if NA not in (s0, p1) else None
        gain = None if prev is None or ms is None or not prev else round(1 - ms / prev, 4)
        rows.append({"factor": f, "pods": {n: int(x) for n, x in zip(wl.partitions, c)},
                     "pods_total": int(c.sum()), "predicted_s": ms,
                     "gain_over_previous": gain,
                     "saturated": bool(gain is not None and gain < SATURATED)})
        prev = ms
    return rows


# -- the report's section ----------------------------------------------------------------------

# Above this the report replays nothing (five replays cost about 10 s per million tasks on
# 2 cores, more than the rest of the page): it names the command instead.
REPORT_MAX_TASKS = 250_000


def report_data(snap, session_id: str | None = None) -> dict[str, Any]:
    """The report's what-if section: recorded against predicted per session (the recorded
    policy at the recorded capacity: the model's calibration) and the capacity curve (fifo,
    half to four times the recorded pods)."""
    n = snap.graph.n_tasks
    if n > REPORT_MAX_TASKS:
        return {"available": False,
                "why": f"not replayed for the page: {n:,} tasks (more than {REPORT_MAX_TASKS:,}; "
                       "five replays would cost about 10 s per million tasks)",
                "command": f"aksnap whatif {shlex.quote(str(snap.path))} --curve"}
    wl = rp.prepare(snap)
    if not wl.ran.any():
        return {"available": False, "why": "no task got a pod in this bundle: nothing to replay"}
    scope = _scope(snap, wl, session_id) if session_id else np.ones(wl.n, dtype=bool)
    cap = np.maximum(wl.capacity, 1)
    calib = rp.replay(wl, cap, "recorded")
    g = snap.graph
    names = g.sessions.to_pylist()
    rows = []
    for c in np.unique(wl.session[wl.ran & scope]).tolist():
        sc = wl.session == c
        s0, r1, p1 = _makespans(wl, calib, sc)
        r = _secs(r1 - s0) if NA not in (s0, r1) else None
        p = _secs(p1 - s0) if NA not in (s0, p1) else None
        rows.append({"session_id": names[c], "recorded_s": r, "predicted_s": p,
                     "error_pct": _pct(r, p)})
    out: dict[str, Any] = {"available": True, "sessions": rows[:SESSIONS_SHOWN],
                           "sessions_total": len(rows),
                           "pods": {n: int(x) for n, x in zip(wl.partitions, cap)},
                           "curve": None}
    s0, _, p1 = _makespans(wl, rp.replay(wl, cap, "fifo"), scope)
    out["curve"] = capacity_curve(wl, cap, "fifo", None, scope,
                                  _secs(p1 - s0) if NA not in (s0, p1) else None)
    return out


# -- rendering ----------------------------------------------------------------------------------

def sections(data: dict[str, Any]) -> list[Section]:
    s = data["summary"]
    main = {k: s[k] for k in ("session_id", "policy", "tasks_replayed", "recorded_s",
                              "predicted_s", "delta_s", "delta_pct", "predicted_end",
                              "calibration")}
    main["pods"] = " ".join(f"{k}={v}" for k, v in s["pods"].items())
    out = [Section("summary", [main], list(main)),
           Section("sessions", data["sessions"], ["session_id", "tasks", "recorded_s",
                                                  "predicted_s", "delta_s", "delta_pct"]),
           Section("partitions", data["partitions"], list(data["partitions"][0])
                   if data["partitions"] else ["partition_id"]),
           Section("targets", data["targets"], ["result_id", "session_id", "producer",
                                                "recorded_s", "predicted_s", "delta_s",
                                                "predicted_at"]),
           Section("critical_path", data["critical_path"]["steps"],
                   ["step", "task_id", "partition_id", "released_s", "dispatched_s", "ended_s",
                    "pod_wait_s", "work_s"])]
    if data["calibration"]:
        out.append(Section("calibration", [{**data["calibration"], "pods": " ".join(
            f"{k}={v}" for k, v in data["calibration"]["pods"].items())}],
            list(data["calibration"])))
    if "lazy" in data:
        out.append(Section("lazy", [data["lazy"]], list(data["lazy"])))
    if data.get("curve"):
        out.append(Section("curve", [{**r, "pods": " ".join(f"{k}={v}" for k, v in
                                                             r["pods"].items())}
                                     for r in data["curve"]],
                           ["factor", "pods", "pods_total", "predicted_s", "gain_over_previous",
                            "saturated"]))
    return out


def render(data: dict[str, Any], fmt: str = "table", section: str | None = None) -> str:
    return render_data(data, fmt, sections, _table, section)


def _table(data: dict[str, Any]) -> str:
    s = data["summary"]
    pods = ", ".join(f"{k}={v}" for k, v in s["pods"].items())
    head = [("policy", s["policy"]), ("pods", pods),
            ("tasks replayed", s["tasks_replayed"]),
            ("recorded makespan", fmt_seconds(s["recorded_s"])
             if s["recorded_s"] is not None else None),
            ("predicted makespan", fmt_seconds(s["predicted_s"])
             if s["predicted_s"] is not None else None)]
    if s["delta_pct"] is not None:
        what = "model error" if s["calibration"] else "change from recorded"
        head.append((what, f"{s['delta_s']:+.3f}s ({s['delta_pct']:+.2f}%)"))
    if s["predicted_end"] is not None:
        head.append(("predicted end", s["predicted_end"].isoformat()))
    c = data["calibration"] or {"makespan_error_pct": None}
    if c["makespan_error_pct"] is not None:
        head.insert(3, ("model error", f"{c['makespan_error_s']:+.3f}s "
                        f"({c['makespan_error_pct']:+.2f}%): replayed "
                        f"{fmt_seconds(c['replayed_s'])} in the recorded order on the recorded "
                        "pods"))
    if data["calibration"]:
        head.append(("task end error", f"mean {c['end_error_mean_abs_s']:.6f}s, max "
                                       f"{c['end_error_max_abs_s']:.6f}s (calibration replay)"))
    else:
        head.append(("model error", "not measured (--no-calibration)"))
    if "lazy" in data:
        lz = data["lazy"]
        head.append(("not run (lazy)", f"{lz['tasks_not_run']} task(s), "
                                       f"{fmt_seconds(lz['task_seconds_not_run'])} of pod time "
                                       f"({100 * lz['share_not_run']:.1f}% of the tasks)"))
    head.append(("critical path", data["critical_path"]["line"]))
    for n in data.get("notes", []):
        head.append(("note", n))
    parts = []
    if data["targets"]:
        parts.append(("Targets (seconds from the start)", data["targets"],
                      ["result_id", "recorded_s", "predicted_s", "delta_s", "predicted_at"]))
    if len(data["sessions"]) > 1:
        parts.append((f"Sessions ({len(data['sessions'])})", data["sessions"][:SESSIONS_SHOWN],
                      ["session_id", "tasks", "recorded_s", "predicted_s", "delta_pct"]))
    parts.append(("Partitions", data["partitions"],
                  ["partition_id", "pods_recorded", "pods", "tasks", "work_s",
                   "utilisation_recorded", "utilisation_predicted", "queue_wait_recorded_s",
                   "queue_wait_predicted_s"]))
    if data.get("curve"):
        parts.append(("Capacity curve (saturated: the step gains < 5%)",
                      [{**r, "pods": r["pods_total"]} for r in data["curve"]],
                      ["factor", "pods", "predicted_s", "gain_over_previous", "saturated"]))
    steps = data["critical_path"]["steps"]
    shown = steps if len(steps) <= STEPS_SHOWN else steps[:STEPS_SHOWN // 2] + steps[-STEPS_SHOWN // 2:]
    parts.append((f"Critical path of the replay ({len(steps)} task(s)"
                  + (f", {len(shown)} shown" if len(shown) < len(steps) else "") + ")", shown,
                  ["step", "task_id", "released_s", "dispatched_s", "ended_s", "pod_wait_s",
                   "work_s"]))
    return render_sections(parts, head)
