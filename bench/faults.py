"""Fault suite: seeded runs of everything that can go wrong around a bundle, through the CLI.

    python bench/faults.py                 # the default suite (a few minutes on 2 cores)
    python bench/faults.py --runs 40       # more kill -9 points
    python bench/faults.py --markdown      # the tables as docs/reliability.md shows them

Every process here is a whole `aksnap` process (`python -m aksnap ...`), the server included
(`aksnap simulate`), as a user runs them:

1. kill -9 of `aksnap export` at random (seeded) instants, half of them replacing an existing
   bundle (--overwrite): afterwards --out must hold nothing, or a complete checksummed bundle
   (the old or the new one); the leftovers are cleaned by the next export.
2. The server killed and restarted mid-export, after several pauses: the export must equal
   the undisturbed export, or end with one sentence (never a traceback, never a bundle that
   differs from the truth).
3. Outages (UNAVAILABLE at several rates) and latency: rows lost and duplicated (both must be
   0) against the undisturbed export, and the time cost.
4. Corrupt and hostile bundles of every kind the hardening issue lists: `aksnap analyze` and
   `aksnap check` must each refuse by name (exit != 0, a sentence naming the problem, no
   traceback).
5. Trust (nothing aksnap reads or runs may change a bundle or lie about it): `aksnap sql` with
   every statement wrapper writing every file of the bundle and an outside path, footer
   statistics edited and bits flipped under recomputed checksums (`check` must notice each),
   `export --update` against another cluster and from a parent with edited rows, a packed
   bundle whose cache entry was seeded with another bundle, an existing --out, a FIFO given as
   a path, an endpoint where nothing listens, `watch` of an unknown session and a bounded
   `watch --record`.
6. Round 3 (`--only round3`): `whatif` and `findings` given bad input, the load budget counted
   by the server (`--max-rps 20`; a server refusing beyond 15 requests/s), a secret planted in
   the manifest's cost record.
7. Round 4 (`--only round4`): the verification record (a byte edited with its mtime put back,
   a table replaced by a copy of itself edited, a record planted for other content: each must
   be hashed again and refused), a cost record lying about its numbers (`check` and a reader
   refuse it), `watch --full-every` given nonsense.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

AKSNAP = [sys.executable, "-m", "aksnap"]
SCENARIO = ["--scenario", "htcmock", "--fixed-epoch"]
# The load budget's production default (10 requests/s) would make every export of this suite a
# paced one: the parts below measure faults, not the budget, so they run uncapped unless the
# caller says otherwise; the `budget` part sets its own caps.
ENV = {**os.environ, "AKSNAP_CACHE_DIR": "", "AKSNAP_MAX_RPS": os.environ.get("AKSNAP_MAX_RPS", "inf")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`aksnap simulate` as a subprocess, on a fixed port so it can be restarted there."""

    def __init__(self, tasks: int, seed: int, *flags: str, port: int | None = None):
        self.args = [*SCENARIO, "--tasks", str(tasks), "--seed", str(seed), *flags]
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        self.proc = subprocess.Popen([*AKSNAP, "simulate", *self.args, "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=ENV)
        line = self.proc.stdout.readline().strip()
        if not line:
            raise SystemExit("aksnap simulate did not start")
        return line

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def export_cmd(ep: str, out: Path, *extra: str) -> list[str]:
    return [*AKSNAP, "export", "--endpoint", ep, "--all", "--out", str(out), "--quiet",
            "-o", "json", *extra]


def run(cmd: list[str], timeout: float = 600) -> tuple[int, str, str, float]:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t


def rows(bundle: Path) -> dict[str, pa.Table]:
    keys = {"tasks": "task_id", "results": "result_id", "sessions": "session_id",
            "partitions": "partition_id"}
    return {t: pq.read_table(bundle / f"{t}.parquet").sort_by(k) for t, k in keys.items()}


def compare(bundle: Path, truth: dict[str, pa.Table]) -> tuple[int, int, bool]:
    """(rows lost, rows duplicated, equal) of a bundle against the undisturbed export."""
    lost = dup = 0
    got = rows(bundle)
    for t, ref in truth.items():
        key = ref.column_names[0] if t != "results" else "result_id"
        key = {"tasks": "task_id", "results": "result_id", "sessions": "session_id",
               "partitions": "partition_id"}[t]
        ids = got[t].column(key).to_pylist()
        dup += len(ids) - len(set(ids))
        lost += len(set(ref.column(key).to_pylist()) - set(ids))
    equal = all(got[t].equals(truth[t]) for t in truth)
    return lost, dup, equal


def bundle_state(out: Path, old_digest: str | None, new_ok: bool = True) -> str:
    """What is at --out: none, old, new, or BAD (a directory that is not a complete bundle)."""
    if not os.path.lexists(out):
        return "none"
    r = subprocess.run([*AKSNAP, "check", str(out), "-o", "json"], capture_output=True, text=True,
                       env=ENV)
    try:
        data = json.loads(r.stdout)
    except ValueError:
        return "BAD"
    if data.get("integrity"):
        return "BAD"
    digest = (out / "manifest.json").read_bytes()
    return "old" if old_digest is not None and digest == old_digest else "new"


def kill_at_commit(p: subprocess.Popen, parent: Path, name: str) -> None:
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        for n in os.listdir(parent):
            if n.startswith(f".{name}.partial-") and os.path.exists(parent / n / "manifest.json"):
                p.send_signal(signal.SIGKILL)
                p.wait()
                return
        time.sleep(0.0005)
    if p.poll() is None:
        p.kill()
    p.wait()


# -- 1. kill -9 ----------------------------------------------------------------------------

def kill9(runs: int, tasks: int, seed: int, work: Path) -> list[dict]:
    rng = random.Random(seed)
    out_rows = []
    with Server(tasks, seed, "--latency", "0.002") as srv:
        ep = f"127.0.0.1:{srv.port}"
        ref = work / "ref"
        code, _, err, _ = run(export_cmd(ep, ref, "--page-size", "500", "--jobs", "2"))
        assert code == 0, err
        # The duration of a whole export process against the warm server, as the kills see it.
        shutil.rmtree(ref)
        code, _, err, full = run(export_cmd(ep, ref, "--page-size", "500", "--jobs", "2"))
        assert code == 0, err
        states: dict[str, int] = {}
        leftovers = 0
        for i in range(runs):
            overwrite = i % 2 == 1
            out = work / f"k{i}"
            old = None
            if overwrite:
                shutil.copytree(ref, out)
                old = (out / "manifest.json").read_bytes()
            cmd = export_cmd(ep, out, "--page-size", "500", "--jobs", "2",
                             *(["--overwrite"] if overwrite else []))
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
            if i % 3 == 2:
                # Aimed at the commit: killed the moment the manifest exists in the hidden
                # directory (between the manifest write and the rename, or just after).
                kill_at_commit(p, work, f"k{i}")
            else:
                when = rng.uniform(0.0, full * 1.5)
                try:
                    p.wait(timeout=when)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
            st = bundle_state(out, old)
            key = f"{'overwrite' if overwrite else 'fresh'}: {st}"
            states[key] = states.get(key, 0) + 1
            leftovers += sum(1 for n in os.listdir(work) if n.startswith(f".k{i}."))
        # The next export to any of those outs tidies what the killed ones left.
        out = work / "k1"
        run(export_cmd(ep, out, "--page-size", "500", "--overwrite"))
        left_after = sum(1 for n in os.listdir(work) if n.startswith(".k1."))
    bad = sum(v for k, v in states.items() if k.endswith("BAD"))
    out_rows.append({"check": f"kill -9 of export at {runs} random instants (full export "
                              f"{full:.1f} s)",
                     "result": ", ".join(f"{k} x{v}" for k, v in sorted(states.items())),
                     "bar": "0 BAD (a directory at --out that is not a complete bundle)",
                     "ok": bad == 0})
    out_rows.append({"check": "hidden leftovers of killed exports",
                     "result": f"{leftovers} left by the kills; {left_after} after the next "
                               "export to the same --out",
                     "bar": "readers refuse them; the next export removes its own",
                     "ok": left_after == 0})
    return out_rows


# -- 2. server killed and restarted ---------------------------------------------------------

def restart(tasks: int, seed: int, work: Path, pauses=(0.5, 2.0, 10.0, 60.0)) -> list[dict]:
    out_rows = []
    with Server(tasks, seed) as srv:
        ref = work / "restart-ref"
        code, _, err, _ = run(export_cmd(f"127.0.0.1:{srv.port}", ref))
        assert code == 0, err
    truth = rows(ref)
    for pause in pauses:
        srv = Server(tasks, seed, "--latency", "0.003")
        srv.start()
        out = work / f"restart-{pause}"
        # --retry-for: a kill before the export's first call (its start-up takes about 1 s)
        # would otherwise fail at once as "connection refused", and this row measures survival
        p = subprocess.Popen(export_cmd(f"127.0.0.1:{srv.port}", out, "--page-size", "300",
                                        "--jobs", "2", "--retry-for", "90"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        time.sleep(1.0)
        srv.kill()
        time.sleep(pause)
        srv.start()
        try:
            _, err = p.communicate(timeout=300)
        finally:
            srv.kill()
        if p.returncode == 0:
            lost, dup, equal = compare(out, truth)
            result = f"exit 0; bundle {'equals' if equal else 'DIFFERS FROM'} the truth " \
                     f"(lost {lost}, duplicated {dup})"
            ok = equal
        else:
            sentence = err.strip().splitlines()[-1] if err.strip() else ""
            ok = "Traceback" not in err and sentence.startswith("aksnap: error:") \
                and not out.exists()
            result = f"exit {p.returncode}: {sentence[:110]}"
        out_rows.append({"check": f"server killed 1 s into the export, back after {pause:g} s",
                         "result": result,
                         "bar": "equals the truth, or one sentence and no bundle", "ok": ok})
    return out_rows


# -- 3. outages and latency -----------------------------------------------------------------

def outages(tasks: int, seed: int, work: Path) -> list[dict]:
    out_rows = []
    base = None
    truth = None
    for rate, latency in ((0.0, 0.0), (0.05, 0.0), (0.2, 0.0), (0.4, 0.0), (0.0, 0.005),
                          (0.2, 0.005)):
        with Server(tasks, seed, "--unavailable-rate", str(rate), "--latency", str(latency),
                    "--fault-seed", str(seed)) as srv:
            out = work / f"out-{rate}-{latency}"
            code, stdout, err, secs = run(export_cmd(f"127.0.0.1:{srv.port}", out))
        if code != 0:
            out_rows.append({"check": f"UNAVAILABLE {rate:.0%}, latency {latency * 1000:g} ms",
                             "result": f"exit {code}: {err.strip()[-100:]}", "bar": "",
                             "ok": "Traceback" not in err})
            continue
        if truth is None:
            truth, base = rows(out), secs
        lost, dup, equal = compare(out, truth)
        retries = json.loads((out / "manifest.json").read_text())["consistency"]["retries"]
        out_rows.append({"check": f"UNAVAILABLE {rate:.0%} of calls, latency {latency * 1000:g} ms",
                         "result": f"lost {lost}, duplicated {dup}, {retries} retries, "
                                   f"{secs:.1f} s ({secs / base:.2f}x the clean run)",
                         "bar": "lost 0, duplicated 0", "ok": lost == 0 and dup == 0 and equal})
    return out_rows


# -- 4. corrupt and hostile bundles ---------------------------------------------------------

def _manifest(b: Path, edit) -> None:
    m = json.loads((b / "manifest.json").read_text())
    edit(m)
    (b / "manifest.json").write_text(json.dumps(m))


def _reseal(b: Path, table: str) -> None:
    import hashlib

    f = b / f"{table}.parquet"

    def edit(m):
        m["tables"][table]["sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
        m["tables"][table]["bytes"] = f.stat().st_size
        try:
            m["tables"][table]["rows"] = pq.ParquetFile(f).metadata.num_rows
        except Exception:  # noqa: BLE001 - a truncated file keeps its row count
            pass
    _manifest(b, edit)


def _tasks_edit(fn):
    def corrupt(b: Path) -> None:
        t = pq.read_table(b / "tasks.parquet")
        pq.write_table(fn(t), b / "tasks.parquet")
        _reseal(b, "tasks")
    return corrupt


def _set(col, values):
    def fn(t):
        i = t.schema.get_field_index(col)
        f = t.schema.field(i).with_nullable(True)
        return t.set_column(i, f, pa.array(values, f.type))
    return fn


def _flip(b: Path) -> None:
    data = bytearray((b / "tasks.parquet").read_bytes())
    data[len(data) // 3] ^= 0xFF
    (b / "tasks.parquet").write_bytes(bytes(data))
    _reseal(b, "tasks")


def _truncate(b: Path) -> None:
    data = (b / "tasks.parquet").read_bytes()
    (b / "tasks.parquet").write_bytes(data[: len(data) // 2])
    _reseal(b, "tasks")


def _symlink(b: Path) -> None:
    other = b.parent / (b.name + "-other")
    shutil.copytree(b, other)
    os.unlink(b / "tasks.parquet")
    os.symlink(other / "tasks.parquet", b / "tasks.parquet")


def corrupt_kinds(n_tasks: int):
    nulls = [None] * n_tasks
    return [
        ("file entry /etc/passwd", lambda b: _manifest(b, lambda m: m["tables"]["tasks"].update(file="/etc/passwd")), "tasks table's file"),
        ("file entry ../other/tasks.parquet", lambda b: _manifest(b, lambda m: m["tables"]["tasks"].update(file="../other/tasks.parquet")), "tasks table's file"),
        ("tasks.parquet a symlink to another bundle", _symlink, "symbolic link"),
        ("tables is a list", lambda b: _manifest(b, lambda m: m.update(tables=[])), "expected an object"),
        ("tables is a string", lambda b: _manifest(b, lambda m: m.update(tables="x")), "expected an object"),
        ("tables entry without file", lambda b: _manifest(b, lambda m: m["tables"]["tasks"].pop("file")), "tasks table's file"),
        ("manifest nested 100,000 deep", lambda b: (b / "manifest.json").write_text("[" * 100000 + "]" * 100000), "nested too deeply"),
        ("column missing", _tasks_edit(lambda t: t.drop_columns(["data_dependencies"])), "no column data_dependencies"),
        ("column renamed", _tasks_edit(lambda t: t.rename_columns(["id" if c == "task_id" else c for c in t.column_names]).replace_schema_metadata(t.schema.metadata)), "no column task_id"),
        ("column of another type", _tasks_edit(lambda t: t.set_column(t.schema.get_field_index("priority"), "priority", t["priority"].cast(pa.string()))), "priority of type string"),
        ("results file under the tasks name", lambda b: (shutil.copy(b / "results.parquet", b / "tasks.parquet"), _reseal(b, "tasks")), "not the tasks table"),
        ("tasks file with no columns", _tasks_edit(lambda t: pa.table({}).replace_schema_metadata(t.schema.metadata)), "has no column"),
        ("truncated file, checksum recomputed", _truncate, "not readable Parquet"),
        ("byte flipped, checksum recomputed", _flip, "corrupt"),
        ("null data_dependencies", _tasks_edit(_set("data_dependencies", nulls)), "data_dependencies is null"),
        ("null status", _tasks_edit(_set("status", nulls)), "status is null"),
        ("unknown status", _tasks_edit(_set("status", ["FINISHED"] * n_tasks)), "'FINISHED'"),
        ("manifest rows disagree", lambda b: _manifest(b, lambda m: m["tables"]["tasks"].update(rows=m["tables"]["tasks"]["rows"] + 1)), "the manifest says"),
        ("manifest bytes disagree", lambda b: _manifest(b, lambda m: m["tables"]["tasks"].update(bytes=12)), "the manifest says 12"),
        ('format_version "1"', lambda b: _manifest(b, lambda m: m.update(format_version="1")), "not an integer"),
        ("format_version true", lambda b: _manifest(b, lambda m: m.update(format_version=True)), "not an integer"),
        ("format_version 1.0", lambda b: _manifest(b, lambda m: m.update(format_version=1.0)), "not an integer"),
        ("format_version 2", lambda b: _manifest(b, lambda m: m.update(format_version=2)), "format version 2"),
        ("checksum of another file", lambda b: _manifest(b, lambda m: m["tables"]["tasks"].update(sha256="0" * 64)), "fails its checksum"),
        ("manifest missing", lambda b: os.unlink(b / "manifest.json"), "manifest.json is missing"),
    ]


def corrupt(work: Path, tasks: int, seed: int) -> list[dict]:
    with Server(tasks, seed) as srv:
        good = work / "good"
        code, _, err, _ = run(export_cmd(f"127.0.0.1:{srv.port}", good))
        assert code == 0, err
    n = pq.ParquetFile(good / "tasks.parquet").metadata.num_rows
    out_rows = []
    for i, (name, make, words) in enumerate(corrupt_kinds(n)):
        b = work / f"bad{i}"
        shutil.copytree(good, b)
        make(b)
        verdicts = []
        ok = True
        # A byte flip under a recomputed checksum is only visible to a reader that decodes
        # every page against the Parquet page checksums: `check` does; the other commands
        # decode what they read and must at least never print a traceback.
        flip = name.startswith("byte flipped")
        for cmd in ("analyze", "check"):
            code, stdout, err, _ = run([*AKSNAP, cmd, str(b)])
            text = stdout + err
            named = words in text
            if flip and cmd == "analyze":
                ok &= "Traceback" not in text
                verdicts.append(f"{cmd}: exit {code}, no traceback")
                continue
            ok &= code != 0 and named and "Traceback" not in text
            verdicts.append(f"{cmd}: exit {code}{', named' if named else ', NOT NAMED'}")
        out_rows.append({"check": f"corrupt bundle: {name}", "result": "; ".join(verdicts),
                         "bar": "check: exit 1 and names it; analyze: no traceback" if flip
                         else "exit != 0, names it, no traceback", "ok": ok})
    return out_rows


# -- 5. trust: nothing aksnap reads or runs changes a bundle or lies about it (issue 17) --------

def _digest(d: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())
            if p.is_file()}


def _sentence(code: int, text: str) -> bool:
    return code != 0 and "Traceback" not in text and "aksnap: error:" in text


SANDBOX_WRAPPERS = ("{s}", "EXPLAIN ANALYZE {s}", "EXPLAIN (ANALYZE) {s}",
                    "PREPARE p AS {s}; EXECUTE p", "SELECT 1; {s}")


def trust_sandbox(good: Path, work: Path) -> list[dict]:
    """`aksnap sql` with every wrapper around a COPY aimed at every file of the bundle and an
    outside path, and around a redefinition of the tasks view."""
    b = work / "sandbox"
    shutil.copytree(good, b)
    before = _digest(b)
    outside = work / "sandbox-outside.csv"
    out_rows = []
    for wrap in SANDBOX_WRAPPERS:
        targets = [*(str(p) for p in sorted(b.iterdir())), str(outside)]
        stmts = [wrap.format(s=f"COPY (SELECT 1 AS a) TO '{t}' (FORMAT csv, USE_TMP_FILE false)")
                 for t in targets]
        stmts.append(wrap.format(s="CREATE OR REPLACE VIEW tasks AS SELECT 'COMPLETED' AS status")
                     + "; SELECT count(*) FROM tasks")
        refused = 0
        for q in stmts:
            code, out, err, _ = run([*AKSNAP, "sql", str(b), q])
            refused += _sentence(code, out + err)
        intact = _digest(b) == before and not outside.exists()
        out_rows.append({"check": f"sql sandbox: {wrap.format(s='COPY ... TO <file>')} x "
                                  f"{len(targets)} targets, and a view redefined",
                         "result": f"{refused}/{len(stmts)} refused; bundle "
                                   f"{'intact' if intact else 'CHANGED'}",
                         "bar": "all refused, every byte intact", "ok": intact and refused == len(stmts)})
    return out_rows


def _footer_span(f: Path) -> tuple[int, int]:
    data = f.read_bytes()
    n = int.from_bytes(data[-8:-4], "little")
    return len(data) - 8 - n, len(data)


def _status_stat_edit(b: Path) -> str:
    """The largest status in tasks.parquet's footer statistics replaced by a string of 'B's of
    the same length (sorting before every status): DuckDB would prune every row group."""
    f = b / "tasks.parquet"
    statuses = sorted(set(pq.read_table(f, columns=["status"]).column("status").to_pylist()))
    top = statuses[-1].encode()
    start, _ = _footer_span(f)
    data = bytearray(f.read_bytes())
    footer = bytes(data[start:])
    assert top in footer, top
    data[start:] = footer.replace(top, b"B" * len(top))
    f.write_bytes(bytes(data))
    _reseal(b, "tasks")
    return statuses[-1]


def _flip_in(b: Path, rng: random.Random, where: str) -> int:
    f = b / "tasks.parquet"
    data = bytearray(f.read_bytes())
    start, end = _footer_span(f) if where == "footer" else (4, len(data) - 8)
    i = rng.randrange(start, end - 8 if where == "footer" else end)
    data[i] ^= 1 << rng.randrange(8)
    f.write_bytes(bytes(data))
    _reseal(b, "tasks")
    return i


def trust_footer(good: Path, work: Path, seed: int, flips: int = 24) -> list[dict]:
    out_rows = []
    b = work / "footer-stat"
    shutil.copytree(good, b)
    top = _status_stat_edit(b)
    code, out, err, _ = run([*AKSNAP, "check", str(b)])
    acode, aout, aerr, _ = run([*AKSNAP, "sql", str(b), f"SELECT count(*) AS n FROM tasks WHERE status = '{top}'",
                                "-o", "csv"])
    truth = pq.read_table(good / "tasks.parquet", columns=["status"]).column("status").to_pylist().count(top)
    answered = aout.strip().splitlines()[-1] if acode == 0 else f"refused (exit {acode})"
    sql_ok = (acode != 0 and "Traceback" not in aout + aerr) or answered == str(truth)
    out_rows.append({"check": f"footer statistics: max status {top} -> {'B' * len(top)}, checksum recomputed",
                     "result": f"check exit {code}; sql count of {top}: {answered} (truth {truth})",
                     "bar": "check exit != 0; answers refused or right",
                     "ok": code != 0 and "Traceback" not in out + err and sql_ok})
    rng = random.Random(seed)
    for where in ("footer", "file"):
        noticed = 0
        for k in range(flips):
            fb = work / f"flip-{where}-{k}"
            shutil.copytree(good, fb)
            _flip_in(fb, rng, where)
            code, out, err, _ = run([*AKSNAP, "check", str(fb)])
            noticed += code != 0 and "Traceback" not in out + err
            shutil.rmtree(fb)
        out_rows.append({"check": f"{flips} seeded bit flips in tasks.parquet's "
                                  f"{'footer' if where == 'footer' else 'whole file'}, checksum recomputed",
                         "result": f"check noticed {noticed}/{flips}",
                         "bar": "every flip noticed", "ok": noticed == flips})
    return out_rows


def trust_update(tasks: int, seed: int, work: Path) -> list[dict]:
    """export --update of a parent against another cluster, and of a parent whose final rows
    were edited (checksums recomputed)."""
    out_rows = []
    with Server(tasks, seed) as a, Server(tasks, seed + 1, "--scenario", "chain") as other:
        parent = work / "upd-parent"
        code, _, err, _ = run(export_cmd(f"127.0.0.1:{a.port}", parent))
        assert code == 0, err
        before = _digest(parent)
        out = work / "upd-other"
        code, stdout, err, secs = run([*AKSNAP, "export", "--update", str(parent), "--endpoint",
                                       f"127.0.0.1:{other.port}", "--out", str(out), "--quiet"])
        ok = _sentence(code, stdout + err) and not out.exists() and _digest(parent) == before
        out_rows.append({"check": "export --update of a parent against another cluster",
                         "result": f"exit {code}: {(err.strip().splitlines() or [''])[-1][:100]}",
                         "bar": "exit 2, one sentence, nothing written, parent intact", "ok": ok})
        full = work / "upd-full"
        code, _, err, _ = run(export_cmd(f"127.0.0.1:{a.port}", full))
        assert code == 0, err
        tampered = work / "upd-tampered"
        shutil.copytree(parent, tampered)
        t = pq.read_table(tampered / "tasks.parquet")
        st = t.column("status").to_pylist()
        edited = [i for i, x in enumerate(st) if x == "COMPLETED"][:3]
        for i in edited:
            st[i] = "ERROR"
        i = t.schema.get_field_index("status")
        pq.write_table(t.set_column(i, t.schema.field(i), pa.array(st, t.schema.field(i).type))
                       .replace_schema_metadata(t.schema.metadata), tampered / "tasks.parquet")
        _reseal(tampered, "tasks")
        out = work / "upd-after-tamper"
        code, stdout, err, _ = run([*AKSNAP, "export", "--update", str(tampered), "--endpoint",
                                    f"127.0.0.1:{a.port}", "--out", str(out), "--quiet", "-o", "json"])
        if code == 0:
            got = rows(out)["tasks"].select(["task_id", "status"])
            want = rows(full)["tasks"].select(["task_id", "status"])
            equal = got.equals(want)
            result = f"exit 0; statuses {'equal' if equal else 'DIFFER FROM'} a full export"
        else:
            equal, result = False, f"exit {code}: {err.strip()[-100:]}"
        out_rows.append({"check": f"export --update of a parent with {len(edited)} final rows edited "
                                  "(checksums recomputed)",
                         "result": result, "bar": "the bundle equals a full export", "ok": equal})
    return out_rows


def trust_edges(good: Path, work: Path, seed: int) -> list[dict]:
    """Outputs never overwritten, watch bounded and quick to refuse, a refused connection fast."""
    out_rows = []
    notes = work / "notes.txt"
    notes.write_text("hi\n")
    code, out, err, _ = run([*AKSNAP, "trace", str(good), "--out", str(notes)])
    out_rows.append({"check": "trace --out an existing file, no --overwrite",
                     "result": f"exit {code}; file {'intact' if notes.read_text() == 'hi' + chr(10) else 'REPLACED'}",
                     "bar": "exit 2, the file intact",
                     "ok": _sentence(code, out + err) and notes.read_text() == "hi\n"})
    port = free_port()
    code, out, err, secs = run([*AKSNAP, "export", "--endpoint", f"127.0.0.1:{port}", "--all",
                                "--out", str(work / "refused"), "--quiet"], timeout=120)
    out_rows.append({"check": "export against an endpoint where nothing listens",
                     "result": f"exit {code} after {secs:.1f} s",
                     "bar": "one sentence within 5 s", "ok": _sentence(code, out + err) and secs < 5})
    with Server(3000, seed, "--at", "100") as srv:
        ep = f"127.0.0.1:{srv.port}"
        code, out, err, secs = run([*AKSNAP, "watch", "--endpoint", ep, "--session", "no-such-session"],
                                   timeout=60)
        out_rows.append({"check": "watch --session UNKNOWN",
                         "result": f"exit {code} after {secs:.1f} s",
                         "bar": "exit 2 at once (< 10 s)", "ok": code == 2 and secs < 10})
        sid = json.loads(run([*AKSNAP, "export", "--endpoint", ep, "--all", "--out",
                              str(work / "w"), "--quiet", "-o", "json"])[1])["sessions"][0]
        rec = work / "record"
        p = subprocess.Popen([*AKSNAP, "watch", "--endpoint", ep, "--session", sid, "--interval",
                              "0.2", "--record", str(rec), "--keep", "3", "-o", "json"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        time.sleep(15)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
        bundles = [d for d in rec.iterdir() if d.is_dir()] if rec.exists() else []
        size = sum(f.stat().st_size for f in rec.rglob("*") if f.is_file()) if rec.exists() else 0
        out_rows.append({"check": "watch --record --keep 3, 15 s of a frozen 3,000-task session",
                         "result": f"{len(bundles)} bundle(s), {size / 2**20:.1f} MiB",
                         "bar": "<= 3 bundles", "ok": 1 <= len(bundles) <= 3})
    return out_rows


def trust_sharing(good: Path, work: Path) -> list[dict]:
    """A packed bundle whose cache entry was seeded with another bundle; a FIFO given where a
    file is read; a secret planted in a nested manifest field aksnap does not know."""
    out_rows = []
    cache = work / "cache"
    env = {**ENV, "AKSNAP_CACHE_DIR": str(cache)}
    packed = work / "good.aksnap"
    code, out, err, _ = run([*AKSNAP, "pack", str(good), "--out", str(packed), "-o", "json"])
    assert code == 0, err
    import hashlib

    digest = hashlib.sha256(packed.read_bytes()).hexdigest()
    other = work / "other"
    shutil.copytree(good, other)
    t = pq.read_table(other / "tasks.parquet")
    pq.write_table(t.slice(0, 10).replace_schema_metadata(t.schema.metadata), other / "tasks.parquet")
    _reseal(other, "tasks")
    cache.mkdir(mode=0o700)
    shutil.copytree(other, cache / f"packed-{digest}")
    p = subprocess.run([*AKSNAP, "sql", str(packed), "SELECT count(*) AS n FROM tasks", "-o", "csv"],
                       capture_output=True, text=True, env=env)
    n = p.stdout.strip().splitlines()[-1] if p.returncode == 0 else f"exit {p.returncode}"
    truth = pq.ParquetFile(good / "tasks.parquet").metadata.num_rows
    out_rows.append({"check": "packed bundle, its cache entry seeded with another bundle (10 tasks)",
                     "result": f"sql counts {n} tasks (the packed bundle has {truth})",
                     "bar": "answers about the packed file", "ok": n == str(truth)})
    fifo = work / "fifo"
    os.mkfifo(fifo)
    slow = []
    for argv in (["unpack", str(fifo), "--out", str(work / "unpacked")],
                 ["analyze", str(fifo)],
                 ["redact", str(good), "--out", str(work / "r0"), "--key-file", str(fifo)]):
        try:
            code, out, err, secs = run([*AKSNAP, *argv], timeout=20)
        except subprocess.TimeoutExpired:
            code, out, err, secs = 124, "", "", 20.0
        if not (code == 2 and secs < 5 and "Traceback" not in out + err):
            slow.append(f"{argv[0]}: exit {code} after {secs:.1f} s")
    out_rows.append({"check": "a FIFO given to unpack, analyze and redact --key-file",
                     "result": "; ".join(slow) or "each exit 2 within 5 s",
                     "bar": "exit 2 at once", "ok": not slow})
    key = work / "key"
    key.write_text("k" * 64)
    leaky = work / "leaky"
    shutil.copytree(good, leaky)
    _manifest(leaky, lambda m: m["exporter"].update(hostname="node-7.secret.corp"))
    code, out, err, _ = run([*AKSNAP, "redact", str(leaky), "--out", str(work / "r1"), "--key-file",
                             str(key), "--messages", "drop"])
    leaked = (work / "r1").exists() and "secret.corp" in (work / "r1" / "manifest.json").read_text()
    out_rows.append({"check": "redact of a manifest with an unknown nested field (exporter.hostname)",
                     "result": f"exit {code}; {'LEAKED' if leaked else 'nothing written' if not (work / 'r1').exists() else 'not copied'}",
                     "bar": "stops, naming the field; nothing leaks",
                     "ok": code == 2 and not leaked and "exporter.hostname" in err})
    return out_rows


WHATIF_BAD = (["--pods", "0"], ["--partition", "htcmock"], ["--partition", "htcmock=two"],
              ["--partition", "nosuch=3"], ["--policy", "random"], ["--policy", "lazy"],
              ["--target", "nope"], ["--session", "nope"])


def round3(work: Path, seed: int) -> list[dict]:
    """The new commands attacked as a user would: whatif and findings given bad input (one
    sentence, exit 2), the load budget counted by the server (a cap never exceeded, an
    overloaded server slowed for, the bundle still the truth), a secret planted in the
    manifest's cost record (redaction refuses, writes nothing)."""
    out_rows = []
    with Server(2000, seed) as srv:
        good = work / "r3-good"
        code, _, err, _ = run(export_cmd(f"127.0.0.1:{srv.port}", good))
        assert code == 0, err
    for extra in WHATIF_BAD:
        code, out, err, _ = run([*AKSNAP, "whatif", str(good), *extra])
        out_rows.append({"check": f"whatif {' '.join(extra)}", "result": f"exit {code}",
                         "bar": "exit 2, one sentence", "ok": code == 2 and _sentence(code, out + err)})
    for extra in (["--threshold", "bogus=1"], ["--threshold", "stall_min_s=-5"], ["--fail-on", "panic"]):
        code, out, err, _ = run([*AKSNAP, "findings", str(good), *extra])
        out_rows.append({"check": f"findings {' '.join(extra)}", "result": f"exit {code}",
                         "bar": "exit 2, one sentence", "ok": code == 2 and _sentence(code, out + err)})
    # the cap, counted by the server; the bundle against an uncapped export of the same moment
    stats = work / "r3-stats.json"
    with Server(20000, seed, "--stats", str(stats)) as srv:
        ep = f"127.0.0.1:{srv.port}"
        truth_b = work / "r3-truth"
        code, _, err, _ = run(export_cmd(ep, truth_b, "--max-rps", "inf"))
        assert code == 0, err
        # the server writes its counts every second: read them once the uncapped export's last
        # second is in (an uncapped export of 16 MiB pages ends within 0.4 s, and its 52
        # requests in one second were counted as the capped export's)
        time.sleep(1.5)
        before = json.loads(stats.read_text())["per_second"] if stats.exists() else {}
        capped = work / "r3-capped"
        code, out, err, secs = run(export_cmd(ep, capped, "--max-rps", "20", "--jobs", "4",
                                              "--page-size", "256"))
        time.sleep(1.5)  # the server writes its counts every second
        per = json.loads(stats.read_text())["per_second"]
    seconds = {k: v for k, v in per.items() if k not in before or v != before.get(k)}
    busiest = max(seconds.values(), default=0)
    lost, dup, same = compare(capped, rows(truth_b)) if code == 0 else (-1, -1, False)
    out_rows.append({"check": "export --max-rps 20 --jobs 4 --page-size 256 (20,000 tasks)",
                     "result": f"exit {code}; busiest second {busiest} requests (server-counted); "
                               f"{'equal to' if same else 'DIFFERS from'} the uncapped export; {secs:.0f} s",
                     "bar": "<= 20 in every second, the bundle the truth",
                     "ok": code == 0 and busiest <= 20 and same})
    with Server(20000, seed, "--rate-limit-rps", "15") as srv:
        over = work / "r3-over"
        code, out, err, secs = run(export_cmd(f"127.0.0.1:{srv.port}", over, "--max-rps", "inf",
                                              "--jobs", "4"))
    strain = "strain" in err
    lost, dup, same = compare(over, rows(truth_b)) if code == 0 else (-1, -1, False)
    out_rows.append({"check": "export uncapped against a server refusing beyond 15 requests/s",
                     "result": f"exit {code}; {'slowed, said on stderr' if strain else 'NOT said'}; "
                               f"{'equal to' if same else 'DIFFERS from'} the truth; {secs:.0f} s",
                     "bar": "exit 0, the strain said, the bundle the truth",
                     "ok": code == 0 and strain and same})
    planted = work / "r3-planted"
    shutil.copytree(good, planted)
    _manifest(planted, lambda m: m.setdefault("cost", {}).setdefault("calls", {}).update(
        {"secret-host.corp.example:5001": 1}))
    key = work / "r3-key"
    red = work / "r3-red"
    code, out, err, _ = run([*AKSNAP, "redact", str(planted), "--out", str(red), "--key-file",
                             str(key), "--new-key"])
    out_rows.append({"check": "redact a bundle with a secret planted in the manifest's cost",
                     "result": f"exit {code}; output {'WRITTEN' if red.exists() else 'not written'}",
                     "bar": "refused by name (cost), nothing written",
                     "ok": code != 0 and "cost" in (out + err) and not red.exists()
                           and "Traceback" not in err})
    return out_rows


def round4(work: Path, seed: int) -> list[dict]:
    """The verification record attacked (it lets a warm open skip the SHA-256 while the files'
    identity is unchanged), the cost record's numbers, `watch --full-every`."""
    import pyarrow.parquet as pq

    out_rows = []
    with Server(100_000, seed) as srv:  # 200,000 rows or more: the record is kept
        ep = f"127.0.0.1:{srv.port}"
        good = work / "r4-good"
        code, _, err, _ = run(export_cmd(ep, good))
        assert code == 0, err
        session = pq.read_table(good / "sessions.parquet").column("session_id")[0].as_py()
        for bad in ("-1", "nan"):
            code, out, err, _ = run([*AKSNAP, "watch", "--endpoint", ep, "--session", session,
                                     "--full-every", bad, "--once"])
            out_rows.append({"check": f"watch --full-every {bad}", "result": f"exit {code}",
                             "bar": "exit 2, one sentence",
                             "ok": code == 2 and _sentence(code, out + err)})
    rid = pq.read_table(good / "results.parquet", columns=["result_id"]).column(0)[0].as_py()
    env = {**ENV, "AKSNAP_CACHE_DIR": str(work / "r4-cache")}

    def lineage(b: Path) -> tuple[int, str]:
        p = subprocess.run([*AKSNAP, "lineage", str(b), rid], capture_output=True, text=True,
                           timeout=600, env=env)
        return p.returncode, p.stdout + p.stderr

    def attack(name: str, b: Path, edit) -> None:
        time.sleep(2.5)             # files written within 2 s of a hashing are never recorded
        first = lineage(b)          # hashes every byte, keeps the record
        vouched = lineage(b)        # skips the hashing, says so
        edit(b)
        code, text = lineage(b)
        ok = first[0] == 0 and "files unchanged since" in vouched[1] and code != 0 \
            and "checksum" in text and "Traceback" not in text
        out_rows.append({"check": f"verification record: {name}",
                         "result": f"exit {code}; {'refused' if code else 'ANSWERED'}; "
                                   f"{'record used before' if 'unchanged since' in vouched[1] else 'NO record'}",
                         "bar": "hashed again, refused (checksum)", "ok": ok})

    def flip_keep_mtime(b: Path) -> None:
        f = b / "tasks.parquet"
        st = f.stat()
        with open(f, "r+b") as fh:
            fh.seek(st.st_size // 2)
            x = fh.read(1)
            fh.seek(st.st_size // 2)
            fh.write(bytes([x[0] ^ 0x20]))
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))

    def replace_by_edited_copy(b: Path) -> None:
        f = b / "results.parquet"
        data = bytearray(f.read_bytes())
        data[len(data) // 3] ^= 0x01
        tmp = b / "results.parquet.new"
        tmp.write_bytes(bytes(data))
        st = f.stat()
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, f)

    for name, edit in (("a byte of tasks.parquet flipped, its mtime put back", flip_keep_mtime),
                       ("results.parquet replaced by an edited copy (same size and mtime)",
                        replace_by_edited_copy)):
        b = work / f"r4-{edit.__name__}"
        shutil.copytree(good, b)
        attack(name, b, edit)
    # a record planted for other content: a bundle edited *before* any verification, whose
    # record a user copied from the genuine bundle's cache entry, renamed to its content key
    b = work / "r4-planted"
    shutil.copytree(good, b)
    lineage(good)
    flip_keep_mtime(b)
    for rec in list((work / "r4-cache").glob("verified-*")):
        data = json.loads(rec.read_text())
        text = json.dumps(data).replace(str(good), str(b))
        rec.write_text(text)
    code, text = lineage(b)
    out_rows.append({"check": "verification record planted from the genuine bundle",
                     "result": f"exit {code}", "bar": "hashed again, refused (checksum)",
                     "ok": code != 0 and "checksum" in text and "Traceback" not in text})
    for name, edit in (("bytes_received a text", lambda c: c.update(bytes_received="12 MiB")),
                       ("a call aksnap never makes", lambda c: c["calls"].update(DropAll=1)),
                       ("latency NaN", lambda c: c["latency_ms"].update(p99=float("nan")))):
        b = work / "r4-cost"
        shutil.rmtree(b, ignore_errors=True)
        shutil.copytree(good, b)
        _manifest(b, lambda m: edit(m["cost"]))
        c1, o1, e1, _ = run([*AKSNAP, "check", str(b)])
        c2, o2, e2, _ = run([*AKSNAP, "sessions", str(b)])
        out_rows.append({"check": f"cost record edited: {name}",
                         "result": f"check exit {c1}, sessions exit {c2}",
                         "bar": "check 1, a reader 2, each naming cost.",
                         "ok": c1 == 1 and c2 == 2 and "cost." in o1 + e1 and "cost." in e2
                               and "Traceback" not in e1 + e2})
    return out_rows


def trust(work: Path, tasks: int, seed: int) -> list[dict]:
    with Server(tasks, seed) as srv:
        good = work / "trust-good"
        code, _, err, _ = run(export_cmd(f"127.0.0.1:{srv.port}", good))
        assert code == 0, err
    return [*trust_sandbox(good, work), *trust_footer(good, work, seed),
            *trust_update(tasks, seed, work), *trust_sharing(good, work),
            *trust_edges(good, work, seed)]


def table(rows: list[dict], markdown: bool) -> str:
    if markdown:
        lines = ["| check | result | bar | ok |", "|---|---|---|---|"]
        lines += [f"| {r['check']} | {r['result']} | {r['bar']} | {'yes' if r['ok'] else 'NO'} |"
                  for r in rows]
        return "\n".join(lines)
    w = max(len(r["check"]) for r in rows)
    return "\n".join(f"{'ok ' if r['ok'] else 'NO '} {r['check'].ljust(w)}  {r['result']}"
                     for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=24, help="kill -9 instants")
    ap.add_argument("--tasks", type=int, default=20000, help="htcmock size")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", choices=["kill", "restart", "outages", "corrupt", "trust", "round3",
                                       "round4"],
                    action="append")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    parts = a.only or ["kill", "restart", "outages", "corrupt", "trust", "round3", "round4"]
    work = Path(tempfile.mkdtemp(prefix="aksnap-faults-"))
    t0 = time.perf_counter()
    rows_: list[dict] = []
    try:
        if "kill" in parts:
            rows_ += kill9(a.runs, a.tasks, a.seed, work)
        if "restart" in parts:
            rows_ += restart(a.tasks, a.seed, work)
        if "outages" in parts:
            rows_ += outages(a.tasks, a.seed, work)
        if "corrupt" in parts:
            rows_ += corrupt(work, 2000, a.seed)
        if "trust" in parts:
            rows_ += trust(work, 2000, a.seed)
        if "round3" in parts:
            rows_ += round3(work, a.seed)
        if "round4" in parts:
            rows_ += round4(work, a.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(rows_, a.markdown))
    load = os.getloadavg()
    print(f"\n{sum(r['ok'] for r in rows_)}/{len(rows_)} ok; htcmock {a.tasks} tasks, seed "
          f"{a.seed}; {time.perf_counter() - t0:.0f} s; load {load[0]:.1f} on {os.cpu_count()} cores")
    return 0 if all(r["ok"] for r in rows_) else 1


if __name__ == "__main__":
    sys.exit(main())
