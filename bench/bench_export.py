"""Export speed, side by side in one run: aksnap's exporter versus the armonik client's own path.

    python bench/bench_export.py                 # 1,000,000 tasks (2,000,000 results)
    python bench/bench_export.py --tasks 100000  # smaller
    # the htcmock session (aksnap simulate), the exporter as a whole `aksnap export` process,
    # alternating with another install's (main's) in the same run, CPU per million tasks:
    python bench/bench_export.py --scenario htcmock --seed 11 --repeat 3 \
        --baseline-python /work/venv-base/bin/python

With ``--scenario`` the server is ``aksnap simulate --scenario NAME --tasks N --seed S [--at T]``
(every session exported, ``--all``) and each exporter run is the command line in its own
process (``python -m aksnap export``): CPU (user + system) and peak memory from ``wait4``,
tasks per second from its own summary. ``--baseline-python`` runs the same command with another
interpreter (another install of aksnap) after each of ours, against the same warm server.
``--max-rps`` is the budget of every run (default ``inf``: the speed of the exporter, not of
the budget; ``default`` for the production default).

What runs, each in its own process so that they do not share a GIL or an allocator:

1. the simulated control plane (``synthetic_cluster``: one session, N finished-looking tasks,
   two results per task), serving over loopback gRPC;
2. ``aksnap.exporter.export`` of that session into a bundle (tasks, results, sessions,
   partitions), timed end to end, peak memory from ``ru_maxrss``;
3. the baseline: ``ArmoniKTasks.list_tasks(detailed=True)`` page by page (1,000 per page, the
   client's default) into ``Task`` objects, then into a pyarrow table -- on a sample of at
   most ``--baseline-tasks`` tasks (default 100,000), its rate extrapolated to N.

The ratio compares tasks per second. It is conservative: the exporter's time includes the
results (2 per task), sessions and partitions, the baseline's only the tasks. Not a test: the
figures depend on the machine (and on what else it runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

SERVER = textwrap.dedent("""
    import sys, time
    from aksnap.fixtures.server import SimulatedControlPlane, synthetic_cluster
    t0 = time.perf_counter()
    cluster = synthetic_cluster(int(sys.argv[1]), n_sessions=1, seed=0)
    cp = SimulatedControlPlane(cluster)
    ep = cp.start()
    print(ep, cluster.sessions.column("session_id")[0].as_py(), round(time.perf_counter() - t0, 1),
          flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    cp.stop()
""")

EXPORTER = textwrap.dedent("""
    import json, resource, sys, time
    from aksnap.exporter import export
    ep, session, out, page_size, jobs = sys.argv[1:6]
    s = export(ep, out, sessions=[session], page_size=int(page_size) or None, jobs=int(jobs))
    print(json.dumps({"seconds": s.seconds, "rows": s.rows, "bytes": s.bytes,
                      "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
                      "snapshot": s.snapshot}))
""")

BASELINE = textwrap.dedent("""
    import json, resource, sys, time
    import grpc
    import pyarrow as pa
    from armonik.client import ArmoniKTasks
    from armonik.common import Task
    ep, session, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    page_size = 1000
    tasks_client = ArmoniKTasks(grpc.insecure_channel(ep))
    t0 = time.perf_counter()
    rows, page = [], 0
    while len(rows) < limit:
        total, tasks = tasks_client.list_tasks(task_filter=(Task.session_id == session),
                                               page=page, page_size=page_size, detailed=True)
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
        if len(tasks) < page_size:
            break
    table = pa.Table.from_pylist(rows)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "tasks": table.num_rows,
                      "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def _run(code: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                       text=True, env={**os.environ, "GRPC_VERBOSITY": "NONE"})
    if r.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (0 where unavailable)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _run_with_usage(cmd: list[str], env: dict) -> tuple[str, str, int, object]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return out, err, p.returncode, usage


def _cli_export(python: str, ep: str, out: str, max_rps: str, jobs: int | None,
                page_size: int | None) -> dict:
    """One whole ``aksnap export`` process: its summary, CPU and peak memory (``wait4``)."""
    cmd = [python, "-m", "aksnap", "export", "--endpoint", ep, "--all", "--out", out, "-q",
           "-o", "json"]
    if max_rps != "default":
        cmd += ["--max-rps", max_rps]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    if page_size:
        cmd += ["--page-size", str(page_size)]
    env = {**os.environ, "GRPC_VERBOSITY": "NONE"}
    env.pop("AKSNAP_MAX_RPS", None)
    t0 = time.perf_counter()
    out_text, err_text, code, usage = _run_with_usage(cmd, env)
    wall = time.perf_counter() - t0
    if code:
        raise SystemExit(f"export failed ({python}):\n{err_text}")
    summary = json.loads(out_text)
    return {"wall_s": wall, "seconds": summary["seconds"], "rows": summary["rows"],
            "bytes": summary["bytes"],
            "calls": sum(summary.get("cost", {}).get("calls", {}).values()),
            "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_mib": usage.ru_maxrss / 1024}


def scenario_main(a) -> None:
    """``--scenario``: aksnap simulate, whole ``aksnap export`` processes, ours and a baseline's
    alternating against the same warm server."""
    import shutil

    cmd = [sys.executable, "-m", "aksnap", "simulate", "--scenario", a.scenario, "--seed",
           str(a.seed), "--port", "0"]
    if a.tasks:
        cmd += ["--tasks", str(a.tasks)]
    if a.at is not None:
        cmd += ["--at", str(a.at)]
    t0 = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "GRPC_VERBOSITY": "NONE"})
    pythons = [("this install", sys.executable)]
    if a.baseline_python:
        pythons.append((f"baseline ({a.baseline_python})", a.baseline_python))
    runs: dict[str, list[dict]] = {label: [] for label, _ in pythons}
    try:
        ep = server.stdout.readline().strip()
        if not ep:
            raise SystemExit("the simulator did not start")
        print(f"machine: {os.cpu_count()} CPUs; aksnap simulate --scenario {a.scenario} --seed "
              f"{a.seed} --tasks {a.tasks} at {ep} (built in {time.perf_counter() - t0:.0f} s); "
              f"budget --max-rps {a.max_rps} --jobs {a.jobs or 'default'}", flush=True)
        with tempfile.TemporaryDirectory(prefix="aksnap-bench-") as tmp:
            # a first export warms the server (its row orders and serialized tables)
            _cli_export(sys.executable, ep, os.path.join(tmp, "warm"), "inf", 4, None)
            for i in range(a.repeat):
                for label, python in pythons:
                    out = os.path.join(tmp, f"b{i}-{len(runs[label])}")
                    load = os.getloadavg()[0]
                    server_cpu = _cpu_seconds(server.pid)
                    r = _cli_export(python, ep, out, a.max_rps, a.jobs, a.page_size)
                    r["server_cpu_s"] = _cpu_seconds(server.pid) - server_cpu
                    r["load"] = load
                    runs[label].append(r)
                    shutil.rmtree(out, ignore_errors=True)
                    n = r["rows"]["tasks"]
                    print(json.dumps({"exporter": label, "run": i, "tasks": n,
                                      "calls": r["calls"], "wall_s": round(r["wall_s"], 2),
                                      "tasks_per_s": round(n / r["seconds"]),
                                      "cpu_s": round(r["cpu_s"], 2),
                                      "cpu_s_per_million_tasks": round(r["cpu_s"] / n * 1e6, 2),
                                      "maxrss_mib": round(r["maxrss_mib"]),
                                      "server_cpu_s_per_million_tasks":
                                          round(r["server_cpu_s"] / n * 1e6, 2),
                                      "bundle_mb": round(r["bytes"] / 1e6, 1),
                                      "load": round(load, 1)}), flush=True)
    finally:
        server.send_signal(2)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    print()
    for label, rs in runs.items():
        n = rs[0]["rows"]["tasks"]
        cpu = sorted(r["cpu_s"] / n * 1e6 for r in rs)
        rate = sorted(n / r["seconds"] for r in rs)
        print(f"{label}: exporter CPU per million tasks min {cpu[0]:.2f} s, median "
              f"{cpu[len(cpu) // 2]:.2f} s; tasks/s best {rate[-1]:,.0f}; peak memory max "
              f"{max(r['maxrss_mib'] for r in rs):.0f} MiB; calls {rs[0]['calls']}; bundle "
              f"{rs[0]['bytes'] / 1e6:.1f} MB")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=1_000_000, help="tasks in the session")
    p.add_argument("--baseline-tasks", type=int, default=100_000,
                   help="tasks the (slow) baseline reads before its rate is extrapolated")
    p.add_argument("--page-size", type=int, default=None)
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--repeat", type=int, default=1, help="exporter runs (the best is reported)")
    p.add_argument("--scenario", default=None,
                   help="serve this aksnap simulate scenario (htcmock...) instead of the "
                        "synthetic cluster; the exporter runs as whole CLI processes")
    p.add_argument("--seed", type=int, default=11, help="--scenario: its seed")
    p.add_argument("--at", type=float, default=None, help="--scenario: the simulated second "
                                                          "frozen (default: its snapshot)")
    p.add_argument("--baseline-python", default=None,
                   help="--scenario: run the same export with this interpreter (another "
                        "install, e.g. main's) after each of ours")
    p.add_argument("--max-rps", default="inf",
                   help="--scenario: the budget of every export (inf: no cap; default: the "
                        "production default)")
    a = p.parse_args(argv)
    if a.scenario:
        scenario_main(a)
        return
    from aksnap.exporter.api import DEFAULT_JOBS, DEFAULT_PAGE_SIZE

    page_size = a.page_size or DEFAULT_PAGE_SIZE or 0  # 0: automatic
    jobs = a.jobs or DEFAULT_JOBS

    print(f"machine: {os.cpu_count()} CPUs; session of {a.tasks:,} tasks, "
          f"{2 * a.tasks:,} results", flush=True)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(a.tasks)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "GRPC_VERBOSITY": "NONE"})
    try:
        ep, session, built = server.stdout.readline().split()
        print(f"simulated control plane at {ep} (cluster built in {built} s)", flush=True)
        with tempfile.TemporaryDirectory(prefix="aksnap-bench-") as tmp:
            runs = []
            for i in range(a.repeat):
                out = os.path.join(tmp, f"bundle{i}")
                server_cpu = _cpu_seconds(server.pid)
                load = os.getloadavg()[0]
                runs.append(_run(EXPORTER, ep, session, out, page_size, jobs))
                runs[-1]["server_cpu_s"] = _cpu_seconds(server.pid) - server_cpu
                runs[-1]["load"] = load
            ours = min(runs, key=lambda r: r["seconds"])
        sample = min(a.tasks, a.baseline_tasks)
        base = _run(BASELINE, ep, session, sample)
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    n = ours["rows"]["tasks"]
    ours_rate = n / ours["seconds"]
    base_rate = base["tasks"] / base["seconds"]
    all_rows = sum(ours["rows"].values())
    print()
    print(f"aksnap export   : {n:,} tasks + {ours['rows']['results']:,} results in "
          f"{ours['seconds']:.2f} s  ->  {ours_rate:,.0f} tasks/s end to end "
          f"({all_rows / ours['seconds']:,.0f} rows/s); page size {page_size or 'auto'}, {jobs} jobs")
    print(f"                  bundle {ours['bytes'] / 1e6:.1f} MB = "
          f"{ours['bytes'] / n:.0f} bytes per task (tasks + results + sessions + partitions); "
          f"peak memory {ours['maxrss_mib']:.0f} MiB (ru_maxrss)")
    print(f"                  CPU during the export: exporter {ours['cpu_s']:.1f} s, simulated "
          f"server {ours['server_cpu_s']:.1f} s, on {os.cpu_count()} CPUs; load average "
          f"{ours['load']:.1f} when it started (other processes share the machine)")
    print(f"armonik client  : {base['tasks']:,} tasks in {base['seconds']:.2f} s  ->  "
          f"{base_rate:,.0f} tasks/s (Task objects, then pyarrow); extrapolated to {n:,} tasks: "
          f"{n / base_rate:.1f} s; peak memory {base['maxrss_mib']:.0f} MiB for the sample")
    print(f"ratio           : {ours_rate / base_rate:.1f}x faster (goal >= 5x); "
          f"{'meets' if ours_rate >= 150_000 else 'misses'} the 150,000 tasks/s goal; "
          f"{'within' if ours['maxrss_mib'] <= 1024 else 'over'} the 1 GiB memory goal")


if __name__ == "__main__":
    main()
