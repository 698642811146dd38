"""The bundle writer never loses data, and readers never misread a bundle (issue: data loss
and hostile bundles).

Each test reproduces one defect observed on an earlier main: given the situation, when a
user (or an attacker, or bad luck) does the thing, then the user's files survive and the
answer is a sentence, or the right answer, never a traceback or a wrong answer.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aksnap import bundle_writer
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import make_bundle, result, task
from aksnap.bundle import MANIFEST, BundleError, read_manifest, sha256_file, verify_bundle
from aksnap.bundle_writer import BundleWriter, write_bundle
from aksnap.cli import app
from aksnap.exporter import export
from aksnap.fixtures.server import Faults, SimulatedControlPlane, synthetic_cluster

runner = CliRunner()


def small(path, session="s1", status="COMPLETED", **kw):
    """A two-node bundle: t1 produces r1."""
    return make_bundle(path, tasks=[task("t1", session=session, outputs=["r1"], status=status)],
                       results=[result("r1", session=session, owner="t1")], **kw)


def rewrite_manifest(bundle: Path, edit) -> None:
    m = json.loads((bundle / MANIFEST).read_text())
    edit(m)
    (bundle / MANIFEST).write_text(json.dumps(m))


def reseal(bundle: Path, table: str) -> None:
    """Recompute a table's checksum, size and rows in the manifest (what an attacker does)."""
    f = bundle / f"{table}.parquet"

    def edit(m):
        m["tables"][table].update(sha256=sha256_file(f), bytes=f.stat().st_size)
        try:
            m["tables"][table]["rows"] = pq.ParquetFile(f).metadata.num_rows
        except Exception:  # noqa: BLE001 - a truncated file keeps its old row count
            pass
    rewrite_manifest(bundle, edit)


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_sentence(r, *words, code=None):
    assert r.exit_code != 0 if code is None else r.exit_code == code, r.output
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), (r.exception, r.output)
    for w in words:
        assert w in r.output, (w, r.output)


def test_assert_sentence_fails_on_a_traceback_or_an_exception():
    """The helper every refusal here goes through must fail when a command crashed: it once
    read `A and B or C`, which passed on any SystemExit whatever the output held."""
    class Result:
        exit_code, output, exception = 2, "aksnap: error: a sentence\n", None

    assert_sentence(Result(), "sentence", code=2)
    crashed = Result()
    crashed.output = "Traceback (most recent call last):\n  ...\nOSError: disk full\n"
    crashed.exception = SystemExit(2)
    with pytest.raises(AssertionError):
        assert_sentence(crashed, code=2)
    raised = Result()
    raised.exception = OSError("disk full")
    with pytest.raises(AssertionError):
        assert_sentence(raised, "sentence", code=2)


@pytest.fixture(scope="module")
def server():
    with SimulatedControlPlane(synthetic_cluster(200, n_sessions=1, seed=3)) as cp:
        yield cp.start()


# -- 1. --overwrite replaces only a bundle ------------------------------------------------------

def test_overwrite_of_the_working_directory_is_refused_and_files_survive(server, tmp_path, monkeypatch):
    """Given a working directory with the user's files, when `aksnap export --out .
    --overwrite` runs there, then it exits 2 with a sentence and every file is still there."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(work)
    r = cli("export", "--endpoint", server, "--all", "--out", ".", "--overwrite", "--quiet")
    assert_sentence(r, "working directory", code=2)
    assert (work / "thesis.tex").read_text() == "years of work"


def test_overwrite_of_a_directory_holding_the_working_directory_is_refused(tmp_path, monkeypatch):
    b = small(tmp_path / "b")
    (b / "sub").mkdir()
    monkeypatch.chdir(b / "sub")
    with pytest.raises(BundleError, match="working directory"):
        BundleWriter(b, overwrite=True)
    assert (b / MANIFEST).exists()


def test_overwrite_of_a_plain_directory_or_a_bundle_with_extra_files_is_refused(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "data.csv").write_text("1,2")
    with pytest.raises(BundleError, match="not an aksnap bundle"):
        BundleWriter(plain, overwrite=True)
    b = small(tmp_path / "b")
    (b / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="notes.txt"):
        BundleWriter(b, overwrite=True)
    assert (plain / "data.csv").exists() and (b / "notes.txt").exists()


def test_overwrite_replaces_a_bundle(tmp_path):
    b = small(tmp_path / "b", session="old")
    small(b, session="new", overwrite=True)
    with Snapshot.open(b) as s:
        assert s.session_ids() == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


# -- 2. two exports to the same --out ------------------------------------------------------

def test_two_writers_racing_to_the_same_out_never_drop_a_bundle(tmp_path):
    """Given two writers that both started when --out did not exist, when both commit, then
    the first bundle stays, the second gets a sentence and leaves no directory behind."""
    out = tmp_path / "b"
    first, second = BundleWriter(out), BundleWriter(out)
    for w, sess in ((first, "first"), (second, "second")):
        w.write("tasks", pa.Table.from_pylist([task("t1", session=sess)],
                                              schema=bundle_writer.SCHEMAS["tasks"]))
    first.commit({})
    with pytest.raises(BundleError, match="appeared while this export ran"):
        second.commit({})
    second.abort()
    with Snapshot.open(out) as s:
        assert s.sql("SELECT session_id FROM tasks").column(0).to_pylist() == ["first"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_two_concurrent_cli_exports_one_wins_one_says_so(tmp_path):
    """Two `aksnap export` processes to the same --out against a slow server: exactly one
    exits 0; the other exits non-zero with a sentence; one complete bundle remains."""
    with SimulatedControlPlane(synthetic_cluster(600, seed=4), faults=Faults(latency_s=0.01)) as cp:
        ep = cp.start()
        out = tmp_path / "b"
        cmd = [sys.executable, "-m", "aksnap", "export", "--endpoint", ep, "--all", "--out",
               str(out), "--quiet", "--page-size", "100", "--jobs", "1"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0 and codes[1] != 0, outs
    loser = outs[[p.returncode for p in procs].index(codes[1])][1]
    assert "aksnap: error:" in loser and "Traceback" not in loser
    assert verify_bundle(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


# -- 3. the overwrite window ------------------------------------------------------------------

def test_kill_between_the_two_renames_of_the_fallback_is_repaired(tmp_path):
    """Given a system without renameat2 (fallback: old aside, new in), when the exporter dies
    between the two renames, then no reader takes the leftovers for a bundle, and the next
    export to that --out puts the old bundle back before it starts."""
    out = small(tmp_path / "b", session="old")
    code = textwrap.dedent(f"""
        import os
        from aksnap import bundle_writer
        from aksnap.analyzer.testing import make_bundle, task, result
        bundle_writer._renameat2_fn = None
        real = os.rename
        calls = []
        def rename(a, b):
            calls.append(a)
            real(a, b)
            if len(calls) == 1:
                os._exit(9)   # killed right after the old bundle was moved aside
        os.rename = rename
        make_bundle({str(out)!r}, tasks=[task("t1", session="new")], results=[], overwrite=True)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert not out.exists()
    left = [p for p in tmp_path.iterdir() if p.name != "b"]
    assert left and all(p.name.startswith(".b.") for p in left)
    for p in left:
        with pytest.raises(BundleError, match="unfinished"):
            read_manifest(p)
    # The next writer for b (in a new process: the dead one's pid is gone) restores it.
    w = BundleWriter(tmp_path / "c")  # unrelated out: leaves b's leftovers alone
    w.abort()
    assert not out.exists()
    with pytest.raises(BundleError, match="already exists"):
        BundleWriter(out)  # restored first, so a non-overwrite export refuses
    with Snapshot.open(out) as s:
        assert s.session_ids() == ["old"]


def test_sigint_during_the_commit_says_the_new_bundle_is_in_place(tmp_path, monkeypatch):
    """Given an --overwrite whose old bundle is being removed, when SIGINT arrives then, the
    interruption is held until the step is done and the sentence says the new bundle is in
    place (it is)."""
    out = small(tmp_path / "b", session="old")
    real = bundle_writer.remove_bundle_dir

    def remove_and_interrupt(path):
        os.kill(os.getpid(), signal.SIGINT)
        real(path)

    monkeypatch.setattr(bundle_writer, "remove_bundle_dir", remove_and_interrupt)
    w = BundleWriter(out, overwrite=True)
    w.write("tasks", pa.Table.from_pylist([task("t1", session="new")],
                                          schema=bundle_writer.SCHEMAS["tasks"]))
    with pytest.raises(KeyboardInterrupt):
        w.commit({})
    assert "new bundle is complete" in w.interruption_sentence()
    with Snapshot.open(out) as s:
        assert s.sql("SELECT session_id FROM tasks").column(0).to_pylist() == ["new"]


def test_interrupted_export_says_the_existing_bundle_is_untouched(tmp_path):
    out = small(tmp_path / "b", session="old")
    before = (out / MANIFEST).read_bytes()

    class Interrupt:
        def start(self, table, total): pass
        def advance(self, table, n): raise KeyboardInterrupt
        def close(self): pass

    with SimulatedControlPlane(synthetic_cluster(500, seed=5)) as cp:
        with pytest.raises(KeyboardInterrupt, match="untouched"):
            export(cp.start(), out, all_sessions=True, page_size=50, overwrite=True,
                   progress=Interrupt())
    assert (out / MANIFEST).read_bytes() == before and verify_bundle(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


@pytest.mark.parametrize("seed", range(6))
def test_kill9_at_a_random_point_of_an_overwrite_leaves_old_or_new(tmp_path, seed):
    """Given a bundle at --out, when an --overwrite export is killed with SIGKILL at a
    random (seeded) instant, then --out holds a complete, checksummed bundle: the old or
    the new."""
    import random

    out = small(tmp_path / "b", session="old")
    with SimulatedControlPlane(synthetic_cluster(400, seed=seed)) as cp:
        ep = cp.start()
        code = (f"from aksnap.exporter import export\n"
                f"export({ep!r}, {str(out)!r}, all_sessions=True, page_size=100, jobs=1, overwrite=True)")
        proc = subprocess.Popen([sys.executable, "-c", code])
        delay = random.Random(seed).uniform(0.3, 2.5)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert verify_bundle(out) == []
    with Snapshot.open(out) as s:
        assert len(s.session_ids()) == 1


# -- 4. a reader during --overwrite --------------------------------------------------------

def test_a_reader_keeps_reading_the_bundle_it_opened_while_it_is_replaced(tmp_path):
    out = small(tmp_path / "b", session="old")
    with Snapshot.open(out) as s:
        assert s.session_ids() == ["old"]
        small(out, session="new", overwrite=True)
        s.require_session("old")  # no "session ... is not in" from the replacement
        assert s.sql("SELECT session_id FROM tasks").column(0).to_pylist() == ["old"]
        assert s.graph.n_tasks == 1
    with Snapshot.open(out) as s:
        assert s.session_ids() == ["new"]


# -- 5. manifest file entries ----------------------------------------------------------------

@pytest.mark.parametrize("target", ["/etc/passwd", "../other/tasks.parquet", "results.parquet",
                                    "sub/tasks.parquet"])
def test_a_table_file_outside_the_format_is_refused_by_name(tmp_path, target):
    b = small(tmp_path / "b")
    other = small(tmp_path / "other", session="other")
    rewrite_manifest(b, lambda m: m["tables"]["tasks"].update(
        file=target, sha256=sha256_file(other / "tasks.parquet")))
    r = cli("analyze", b)
    assert_sentence(r, "tasks table's file", code=2)
    r = cli("check", b)
    assert_sentence(r, "tasks table's file")
    assert "checksums  ok" not in r.output


def test_a_symlinked_table_is_refused_even_with_a_matching_checksum(tmp_path):
    b = small(tmp_path / "b")
    other = small(tmp_path / "other", session="other")
    os.unlink(b / "tasks.parquet")
    os.symlink(other / "tasks.parquet", b / "tasks.parquet")
    reseal(b, "tasks")
    for cmd in ("analyze", "check"):
        assert_sentence(cli(cmd, b), "symbolic link")
    assert verify_bundle(b) and "symbolic link" in verify_bundle(b)[0]


# -- 6. malformed manifests, tampered schemas, write errors ----------------------------------

@pytest.mark.parametrize("tables,words", [
    ([], "expected an object"),
    ("tasks.parquet", "expected an object"),
    ({"tasks": {"rows": 1}}, "lists no sessions table"),
    (None, "expected an object"),
])
def test_malformed_tables_entries_are_a_sentence(tmp_path, tables, words):
    b = small(tmp_path / "b")
    rewrite_manifest(b, lambda m: m.update(tables=tables))
    assert_sentence(cli("analyze", b), words, code=2)


def test_a_tables_entry_without_file_and_a_deeply_nested_manifest(tmp_path):
    b = small(tmp_path / "b")
    rewrite_manifest(b, lambda m: m["tables"]["tasks"].pop("file"))
    assert_sentence(cli("analyze", b), "tasks table's file", code=2)
    (b / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)
    assert_sentence(cli("analyze", b), "nested too deeply", code=2)


def _replace_tasks(b: Path, table: pa.Table) -> None:
    pq.write_table(table, b / "tasks.parquet")
    reseal(b, "tasks")


def _tasks(b: Path) -> pa.Table:
    return pq.read_table(b / "tasks.parquet")


@pytest.mark.parametrize("tamper,words", [
    (lambda t: t.drop_columns(["data_dependencies"]), "has no column data_dependencies"),
    (lambda t: t.rename_columns(["id" if c == "task_id" else c for c in t.column_names])
     .replace_schema_metadata(t.schema.metadata),
     "has no column task_id"),
    (lambda t: t.set_column(t.schema.get_field_index("priority"), "priority",
                            t["priority"].cast(pa.string())), "priority of type string"),
    (lambda t: pa.table({}).replace_schema_metadata(t.schema.metadata), "has no column"),
])
def test_schema_tampering_is_refused_by_name(tmp_path, tamper, words):
    b = small(tmp_path / "b")
    _replace_tasks(b, tamper(_tasks(b)))
    assert_sentence(cli("analyze", b), "tasks.parquet", words, code=2)
    assert_sentence(cli("check", b), words)


def test_another_tables_file_under_this_name_is_refused(tmp_path):
    b = small(tmp_path / "b")
    shutil.copy(b / "results.parquet", b / "tasks.parquet")
    reseal(b, "tasks")
    assert_sentence(cli("analyze", b), "holds the results table, not the tasks table", code=2)


def test_check_on_a_truncated_file_with_a_matching_checksum(tmp_path):
    b = small(tmp_path / "b")
    data = (b / "tasks.parquet").read_bytes()
    (b / "tasks.parquet").write_bytes(data[: len(data) // 2])
    reseal(b, "tasks")
    r = cli("check", b)
    assert_sentence(r, "not readable Parquet", code=1)
    assert_sentence(cli("analyze", b), "not readable Parquet", code=2)


def test_disk_full_during_the_export_is_a_sentence_and_leaves_nothing(server, tmp_path, monkeypatch):
    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    r = cli("export", "--endpoint", server, "--all", "--out", tmp_path / "b", "--quiet")
    assert_sentence(r, "the disk is full")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outputs_are_a_sentence(server, tmp_path, monkeypatch):
    r = cli("export", "--endpoint", server, "--all", "--out", "/proc/aksnap-b", "--quiet")
    assert_sentence(r, "/proc/aksnap-b", code=2)
    (tmp_path / "afile").write_text("x")
    r = cli("export", "--endpoint", server, "--all", "--out", tmp_path / "afile" / "b", "--quiet")
    assert_sentence(r, "is a file, not a directory", code=2)

    def denied(path, mode=0o777):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(bundle_writer.os, "mkdir", denied)
    r = cli("export", "--endpoint", server, "--all", "--out", tmp_path / "b", "--quiet")
    assert_sentence(r, "permission denied", code=2)


# -- 7. silent wrong answers -------------------------------------------------------------------

def test_a_null_dependency_list_or_status_is_refused_not_dropped(tmp_path):
    b = small(tmp_path / "b")
    t = _tasks(b)
    i = t.schema.get_field_index("data_dependencies")
    _replace_tasks(b, t.set_column(i, t.schema.field(i).with_nullable(True),
                                   pa.array([None], t.schema.field(i).type)))
    assert_sentence(cli("lineage", b, "r1"), "data_dependencies is null", code=2)
    assert_sentence(cli("check", b), "data_dependencies is null", code=1)


@pytest.mark.parametrize("status,words", [("FINISHED", "status 'FINISHED'"), (None, "status is null")])
def test_an_unknown_or_null_status_is_refused(tmp_path, status, words):
    b = small(tmp_path / "b")
    t = _tasks(b)
    i = t.schema.get_field_index("status")
    _replace_tasks(b, t.set_column(i, t.schema.field(i).with_nullable(True),
                                   pa.array([status], pa.string())))
    assert_sentence(cli("analyze", b), words, code=2)
    assert_sentence(cli("check", b), words, code=1)


def test_a_byte_flip_with_a_recomputed_checksum_is_found_by_check(tmp_path):
    b = make_bundle(tmp_path / "b", tasks=[task(f"t{i}", outputs=[f"r{i}"]) for i in range(2000)],
                    results=[result(f"r{i}", owner=f"t{i}") for i in range(2000)])
    data = bytearray((b / "tasks.parquet").read_bytes())
    data[len(data) // 3] ^= 0xFF
    (b / "tasks.parquet").write_bytes(bytes(data))
    reseal(b, "tasks")
    r = cli("check", b)
    assert r.exit_code == 1 and "corrupt" in r.output, r.output


def test_manifest_rows_and_bytes_that_disagree_with_the_files_are_refused(tmp_path):
    b = small(tmp_path / "b")
    rewrite_manifest(b, lambda m: m["tables"]["tasks"].update(rows=7))
    assert_sentence(cli("analyze", b), "holds 1 rows but the manifest says 7", code=2)
    b2 = small(tmp_path / "b2")
    rewrite_manifest(b2, lambda m: m["tables"]["tasks"].update(bytes=12))
    assert_sentence(cli("analyze", b2, "--no-verify"), "the manifest says 12", code=2)


@pytest.mark.parametrize("version,shown", [("1", '"1" (a string)'), (True, "true (a boolean)"),
                                           (1.0, "1.0 (a number)")])
def test_a_format_version_that_is_not_the_integer_1_is_refused(tmp_path, version, shown):
    b = small(tmp_path / "b")
    rewrite_manifest(b, lambda m: m.update(format_version=version))
    r = cli("analyze", b)
    assert_sentence(r, f"format_version {shown}", "not an integer", code=2)
    assert "reads version 1" not in r.output


# -- 8. the index cache ------------------------------------------------------------------------

def test_an_edited_copy_does_not_reuse_the_originals_cache(tmp_path, monkeypatch):
    """Given a bundle whose index cache is warm, when a copy is edited (a task turned ERROR)
    and opened with --no-verify, then the answer is about the copy's data."""
    from aksnap.analyzer.graph import TaskGraph

    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(TaskGraph, "CACHE_MIN_TASKS", 0)
    b = small(tmp_path / "b")
    with Snapshot.open(b) as s:
        assert s.graph.status_name(0) == "COMPLETED"
    assert list((tmp_path / "cache").iterdir())
    copy = tmp_path / "copy"
    shutil.copytree(b, copy)
    t = _tasks(copy)
    i = t.schema.get_field_index("status")
    pq.write_table(t.set_column(i, t.schema.field(i), pa.array(["ERROR"])), copy / "tasks.parquet")
    # The manifest keeps the original checksum (so the cache key is the original's); only the
    # size is made to match, as a careful editor would.
    rewrite_manifest(copy, lambda m: m["tables"]["tasks"].update(
        bytes=(copy / "tasks.parquet").stat().st_size))
    with Snapshot.open(copy, verify=False) as s:
        assert s.graph.status_name(0) == "ERROR"
    with Snapshot.open(b, verify=False) as s:  # the original still uses its cache, correctly
        assert s.graph.status_name(0) == "COMPLETED"


def test_the_vocabulary_check_is_skipped_only_for_verified_content_that_passed_it(tmp_path, monkeypatch):
    """Given a bundle that passed the vocabulary check and its checksum verification, a later
    verified open skips the check (the checksums prove the same content); an open with
    --no-verify always checks, and an edited copy keeping the original's checksums is refused
    by the verification before any answer, and never marked good."""
    from aksnap.analyzer import cache

    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "CACHE_MIN_ROWS", 0)
    checks = []
    real = Snapshot._check_vocabulary
    monkeypatch.setattr(Snapshot, "_check_vocabulary", lambda self: (checks.append(self.path), real(self)))
    b = small(tmp_path / "b")
    with Snapshot.open(b) as s:
        s.wait_verified()
    assert checks == [b] and cache.vocabulary_known_good(read_manifest(b))
    with Snapshot.open(b) as s:
        assert s.sql("SELECT status FROM tasks").column(0).to_pylist() == ["COMPLETED"]
    assert checks == [b]  # skipped: the same verified content
    with Snapshot.open(b, verify=False) as s:
        assert s.sql("SELECT status FROM tasks").column(0).to_pylist() == ["COMPLETED"]
    assert checks == [b, b]  # --no-verify proves nothing about the content: checked (before
    # the first answer reading a table: issue 21 moved it there from the open)

    copy = tmp_path / "copy"
    shutil.copytree(b, copy)
    shutil.rmtree(tmp_path / "cache")
    t = _tasks(copy)
    i = t.schema.get_field_index("status")
    pq.write_table(t.set_column(i, t.schema.field(i), pa.array(["ERROR"])), copy / "tasks.parquet")
    rewrite_manifest(copy, lambda m: m["tables"]["tasks"].update(
        bytes=(copy / "tasks.parquet").stat().st_size))
    with Snapshot.open(copy) as s:  # the vocabulary is fine; the checksum is not
        with pytest.raises(BundleError, match="fails its checksum"):
            s.wait_verified()
    assert checks == [b, b, copy]
    assert not cache.vocabulary_known_good(read_manifest(copy))


def test_bundles_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        b = small(tmp_path / "b")
    finally:
        os.umask(old)
    assert oct(b.stat().st_mode & 0o777) == oct(0o755)
    assert oct((b / "tasks.parquet").stat().st_mode & 0o777) == oct(0o644)
