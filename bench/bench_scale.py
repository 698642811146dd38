"""Export of big scenarios through the CLI, both sides as whole processes (prints one table).

    python bench/bench_scale.py                          # htcmock 1M, fanout 200k, many 10k x 100
    python bench/bench_scale.py --case htcmock:1000000:seed=11 --case many:1000000:sessions=10000
    python bench/bench_scale.py --case htcmock-final:10000000:seed=11 --keep big10m

For each case:

1. ``aksnap simulate --scenario NAME --tasks N [--seed S] [--sessions K] --port 0`` starts as a
   subprocess; the time until it prints its endpoint is the build time, and its CPU time
   (``/proc/PID/stat``) is read then and again after the export, so the server's CPU per
   exported task counts serving only;
2. ``aksnap export --endpoint HOST:PORT --all --out DIR --quiet`` runs under ``/usr/bin/time``
   as a whole process (with ``--max-message-size 268435456`` when the CLI has it; else the
   same export through ``python -c 'aksnap.exporter.export(..., max_receive=256 MiB)'``);
3. the naive baseline, against the same server in the same run: the ``armonik`` client's own
   path, ``ArmoniKTasks.list_tasks(detailed=True)`` page by page (1,000 tasks, no filter: every
   session, as ``--all``) into ``Task`` objects, then a pyarrow table, as a whole process
   (``/usr/bin/time``); on the first ``--baseline-tasks`` tasks (default 100,000; 0: all) and
   its rate extrapolated to the case's tasks when it read fewer (the table says so);
4. the server's peak RSS (``VmHWM``) and CPU are read, then it is stopped (SIGTERM).

Columns: build (s) and peak RSS of the server, export wall (s), tasks/s and rows/s (tasks plus
results, from the bundle's manifest), the exporter's CPU and peak RSS, the server's CPU while
serving the export (s, and microseconds per exported task), the baseline's tasks/s and peak
RSS, and how many times faster the export is (tasks/s against tasks/s: the export also reads
and writes the results, the baseline only reads tasks). Not a test: figures depend on the machine and
on what else it runs (the load average is printed with the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CASES = ["htcmock:1000000:seed=11", "fanout:200000", "many:1000000:sessions=10000"]
MAX_MESSAGE = 256 * 2**20
CLK = os.sysconf("SC_CLK_TCK")

EXPORT_API = (
    "import sys; from aksnap.exporter import export; "
    "s = export(sys.argv[1], sys.argv[2], all_sessions=True, max_receive=int(sys.argv[3])); "
    "print(s.rows, round(s.seconds, 2))"
)


# The armonik client's own path: Task objects per row, then pyarrow (rows as dicts).
BASELINE = """
import json, sys, time
import grpc
import pyarrow as pa
from armonik.client import ArmoniKTasks
ep, limit = sys.argv[1], int(sys.argv[2])
channel = grpc.insecure_channel(ep, options=[("grpc.max_receive_message_length", 256 * 2**20)])
client = ArmoniKTasks(channel)
t0 = time.perf_counter()
rows, page, total = [], 0, None
while not limit or len(rows) < limit:
    total, tasks = client.list_tasks(page=page, page_size=1000, detailed=True, with_errors=True)
    for t in tasks:
        o = t.options
        rows.append({
            "task_id": t.id, "session_id": t.session_id, "status": t.status.name,
            "status_message": t.status_message, "owner_pod_id": t.owner_pod_id,
            "pod_hostname": t.pod_hostname, "initial_task_id": t.initial_task_id,
            "created_by": t.created_by, "payload_id": t.payload_id,
            "parent_task_ids": t.parent_task_ids, "data_dependencies": t.data_dependencies,
            "expected_output_ids": t.expected_output_ids, "retry_of_ids": t.retry_of_ids,
            "output_error": t.output.error if t.output else None,
            "partition_id": o.partition_id, "priority": o.priority,
            "max_retries": o.max_retries, "max_duration": o.max_duration,
            "options": list(o.options.items()),
            "created_at": t.created_at, "submitted_at": t.submitted_at,
            "received_at": t.received_at, "acquired_at": t.acquired_at,
            "fetched_at": t.fetched_at, "started_at": t.started_at,
            "processed_at": t.processed_at, "ended_at": t.ended_at, "pod_ttl": t.pod_ttl,
            "creation_to_end_duration": t.creation_to_end_duration,
            "processing_to_end_duration": t.processing_to_end_duration,
            "received_to_end_duration": t.received_to_end_duration,
        })
    page += 1
    if len(tasks) < 1000:
        break
table = pa.Table.from_pylist(rows)
print(json.dumps({"seconds": time.perf_counter() - t0, "tasks": table.num_rows, "total": total}))
"""


def run_baseline(endpoint: str, limit: int, workdir: Path) -> dict:
    timing = workdir / "time-baseline.txt"
    done = subprocess.run(["/usr/bin/time", "-o", str(timing), "-f", "%e %U %S %M", sys.executable,
                           "-c", BASELINE, endpoint, str(limit)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"baseline failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    wall, user, sys_, rss_kb = timing.read_text().split()[-4:]
    r.update(rss_mib=int(rss_kb) / 1024, cpu_s=float(user) + float(sys_))
    return r


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime


def _hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cli_has_max_message_size() -> bool:
    out = subprocess.run(["aksnap", "export", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"}).stdout
    return "--max-message-size" in out


def parse_case(text: str) -> dict:
    name, tasks, *rest = text.split(":")
    case = {"scenario": name, "tasks": int(tasks), "options": {}}
    for kv in rest:
        k, v = kv.split("=", 1)
        case["options"][k] = v
    return case


def run_case(case: dict, workdir: Path, keep: str | None, cli_max: bool,
             baseline_tasks: int | None = 100_000) -> dict:
    cmd = ["aksnap", "simulate", "--scenario", case["scenario"], "--tasks", str(case["tasks"]),
           "--port", "0"]
    for k, v in case["options"].items():
        cmd += [f"--{k}", v]
    t0 = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = server.stdout.readline().strip()
        if not endpoint:
            raise RuntimeError(f"{' '.join(cmd)} failed: {server.stderr.read().strip()}")
        build_s = time.perf_counter() - t0
        cpu0 = _cpu_s(server.pid)
        rss_built = _hwm_mib(server.pid)
        out = workdir / "bundle"
        if cli_max:
            export = ["aksnap", "export", "--endpoint", endpoint, "--all", "--out", str(out),
                      "--quiet", "--format", "json", "--max-message-size", str(MAX_MESSAGE)]
        else:
            export = [sys.executable, "-c", EXPORT_API, endpoint, str(out), str(MAX_MESSAGE)]
        timing = workdir / "time.txt"
        t1 = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-o", str(timing), "-f", "%e %U %S %M"] + export,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t1
        if done.returncode:
            raise RuntimeError(f"export failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        e_wall, e_user, e_sys, e_rss_kb = timing.read_text().split()[-4:]
        cpu1 = _cpu_s(server.pid)
        load = os.getloadavg()
        base = run_baseline(endpoint, baseline_tasks, workdir) if baseline_tasks is not None else None
        rss_server = _hwm_mib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    manifest = json.loads((out / "manifest.json").read_text())
    rows = {t: manifest["tables"][t]["rows"] for t in manifest["tables"]}
    if keep:
        shutil.rmtree(keep, ignore_errors=True)
        shutil.move(str(out), keep)
    else:
        shutil.rmtree(out, ignore_errors=True)
    tasks = rows.get("tasks", 0)
    return {
        "case": case["scenario"] + "".join(f" {k}={v}" for k, v in case["options"].items()),
        "tasks": tasks, "results": rows.get("results", 0), "sessions": rows.get("sessions", 0),
        "build_s": build_s, "server_rss_built_mib": rss_built, "server_rss_mib": rss_server,
        "export_wall_s": float(e_wall), "export_cpu_s": float(e_user) + float(e_sys),
        "export_rss_mib": int(e_rss_kb) / 1024, "wall_measured_s": wall,
        "server_cpu_s": cpu1 - cpu0,
        "tasks_per_s": tasks / float(e_wall),
        "rows_per_s": (tasks + rows.get("results", 0)) / float(e_wall),
        "server_us_per_task": (cpu1 - cpu0) / max(tasks, 1) * 1e6,
        "via": "CLI" if cli_max else "Python API in a process",
        "load_after_export": load[0],
        **(_baseline_columns(base, tasks, float(e_wall)) if base else {}),
    }


def _baseline_columns(base: dict, tasks: int, export_wall: float) -> dict:
    rate = base["tasks"] / base["seconds"] if base["seconds"] else float("nan")
    return {"baseline_tasks_read": base["tasks"], "baseline_s": base["seconds"],
            "baseline_tasks_per_s": rate, "baseline_rss_mib": base["rss_mib"],
            "baseline_cpu_s": base["cpu_s"],
            "baseline_extrapolated": base["tasks"] < tasks,
            "baseline_s_for_all": tasks / rate if rate else float("nan"),
            "speedup": (tasks / export_wall) / rate if rate else float("nan")}


def render(results: list[dict]) -> str:
    head = ("| case | tasks | results | sessions | server build | server peak RSS | export wall "
            "| tasks/s | rows/s | exporter CPU | exporter peak RSS | server CPU serving "
            "| server µs/task |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['tasks']:,} | {r['results']:,} | {r['sessions']:,} "
            f"| {r['build_s']:.1f} s | {r['server_rss_mib']:,.0f} MiB | {r['export_wall_s']:.1f} s "
            f"| {r['tasks_per_s']:,.0f} | {r['rows_per_s']:,.0f} | {r['export_cpu_s']:.1f} s "
            f"| {r['export_rss_mib']:,.0f} MiB | {r['server_cpu_s']:.1f} s "
            f"| {r['server_us_per_task']:.1f} |")
    based = [r for r in results if "baseline_tasks_per_s" in r]
    if based:
        lines += ["", "| case | baseline: armonik client, Task objects -> pyarrow | baseline "
                  "tasks/s | baseline time for all tasks | baseline peak RSS | aksnap export "
                  "tasks/s | faster |", "|---|---|---|---|---|---|---|"]
        for r in based:
            how = (f"{r['baseline_tasks_read']:,} tasks read in {r['baseline_s']:.1f} s"
                   + (", extrapolated" if r["baseline_extrapolated"] else ""))
            lines.append(
                f"| {r['case']} | {how} | {r['baseline_tasks_per_s']:,.0f} "
                f"| {r['baseline_s_for_all']:.0f} s | {r['baseline_rss_mib']:,.0f} MiB "
                f"| {r['tasks_per_s']:,.0f} | {r['speedup']:.1f}x |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", help="SCENARIO:TASKS[:option=value...] "
                    "(options become aksnap simulate flags, e.g. seed=11, sessions=10000); "
                    f"default: {' '.join(DEFAULT_CASES)}")
    ap.add_argument("--keep", help="move the (last) bundle here instead of deleting it")
    ap.add_argument("--json", action="store_true", help="also print each result as JSON")
    ap.add_argument("--baseline-tasks", type=int, default=100_000,
                    help="tasks the naive baseline reads, its rate extrapolated (0: all; "
                    "-1: no baseline)")
    args = ap.parse_args(argv)
    cases = [parse_case(c) for c in (args.case or DEFAULT_CASES)]
    cli_max = _cli_has_max_message_size()
    results = []
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="aksnap-bench-") as tmp:
            r = run_case(case, Path(tmp), args.keep, cli_max,
                         None if args.baseline_tasks < 0 else args.baseline_tasks)
        results.append(r)
        if args.json:
            print(json.dumps(r), flush=True)
        print(f"{r['case']}: {r['tasks']:,} tasks in {r['export_wall_s']:.1f} s "
              f"({r['tasks_per_s']:,.0f} tasks/s); server {r['server_us_per_task']:.1f} µs/task",
              file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} (after the run); export via {results[0]['via'] if results else '-'}")
    print(render(results))


if __name__ == "__main__":
    main()
