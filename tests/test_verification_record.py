"""The verification record (issue 21, warm opens at 10M tasks): after the SHA-256 of a bundle's
files passed, the analyzer records beside its index cache each file's identity (device, inode,
size, mtime, ctime) with the checksum it proved; a later verified open of the very same files,
unchanged, skips the hashing and says so. Attacked here as an adversary would: a byte edited
and the mtime put back, the file replaced by a copy, a record planted for other content, and
`aksnap check`, which always hashes."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from aksnap.analyzer import cache
from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import make_bundle, result, task
from aksnap.bundle import OpenBundle
from aksnap.errors import BundleError


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Caching on in tmp_path/cache, records kept for small bundles and fresh files (the
    2-second racy window is attacked in its own test)."""
    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "CACHE_MIN_ROWS", 0)
    monkeypatch.setattr(cache, "RACY_NS", 0)
    return tmp_path


def _bundle(path, dep="rA"):
    b = make_bundle(path, tasks=[task("t1", deps=[dep], outputs=["o1"])],
                    results=[result("rA"), result("rB"), result("o1", owner="t1")])
    time.sleep(0.05)  # past the clock tick of the files' ctime: a later write moves it
    return b


def _verified_open(b) -> Snapshot:
    """A verified open whose checksums were checked (the answer waited for them)."""
    snap = Snapshot.open(b)
    snap.wait_verified()
    return snap


def _hashing_forbidden(monkeypatch):
    def no_hash(self):
        raise AssertionError("the files were hashed again")
    monkeypatch.setattr(OpenBundle, "checksum_problems", no_hash)


def _flip_a_byte_keeping_mtime(path) -> None:
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(64)
        b = f.read(1)
        f.seek(64)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns and os.stat(path).st_size == st.st_size


def test_unchanged_files_verified_once_are_not_hashed_again_and_the_open_says_so(env, monkeypatch):
    """Given a bundle whose checksums passed once, when it is opened again (its files untouched),
    then the open does not hash them, answers, and says what its trust rests on."""
    b = _bundle(env / "b")
    with _verified_open(b) as snap:
        assert snap.verified_note is None  # the first open hashed
    _hashing_forbidden(monkeypatch)
    with _verified_open(b) as snap:
        assert snap.verified_note and "files unchanged since" in snap.verified_note
        assert snap.graph.node_ids(snap.graph.inputs(snap.graph.task_index("t1")))[0] == "rA"


def test_a_byte_edited_with_its_mtime_put_back_is_hashed_again_and_refused(env):
    """Given a verified bundle, when one byte of a table is changed in place (same size) and
    its mtime restored with os.utime, then the next open hashes again (the ctime moved) and
    refuses to answer."""
    b = _bundle(env / "b")
    _verified_open(b).close()
    _flip_a_byte_keeping_mtime(b / "tasks.parquet")
    with Snapshot.open(b) as snap:
        assert snap.verified_note is None
        with pytest.raises(BundleError, match="fails its checksum"):
            snap.wait_verified()


def test_a_file_replaced_by_a_copy_is_hashed_again(env, monkeypatch):
    """Given a verified bundle, when a table is replaced by a copy of itself (same bytes, size
    and mtime, another inode), then the next open hashes again (and, the content being the
    same, answers and records the new file)."""
    b = _bundle(env / "b")
    _verified_open(b).close()
    f = b / "results.parquet"
    shutil.copy2(f, env / "copy")
    os.replace(env / "copy", f)
    hashed = []
    real = OpenBundle.checksum_problems
    monkeypatch.setattr(OpenBundle, "checksum_problems", lambda self: hashed.append(1) or real(self))
    with _verified_open(b) as snap:
        assert snap.verified_note is None and hashed
    _hashing_forbidden(monkeypatch)  # ... old enough after the copy: recorded again
    with _verified_open(b) as snap:
        assert snap.verified_note


def test_an_edited_copy_keeping_the_manifest_is_not_vouched_for_by_the_genuine_record(env):
    """Given a genuine bundle verified (its record written under its content's key) and an
    edited copy that keeps its manifest (the same key), when the copy is opened, then the
    genuine record does not vouch for it (other files): it is hashed and refused."""
    a = _bundle(env / "a", "rA")
    other = _bundle(env / "other", "rB")
    forged = env / "forged"
    shutil.copytree(a, forged)
    shutil.copyfile(other / "tasks.parquet", forged / "tasks.parquet")
    _verified_open(a).close()
    with Snapshot.open(forged) as snap:
        assert snap.verified_note is None
        with pytest.raises(BundleError, match="fails its checksum"):
            snap.wait_verified()


def test_a_record_planted_for_other_content_is_not_trusted(env):
    """Given a record that names these very files (their identity now) but checksums of
    another content, or is truncated, or misses a table, when the bundle is opened, then no
    such record is trusted: the files are hashed."""
    b = _bundle(env / "b")
    from aksnap.bundle import TABLES

    with _closing(OpenBundle.open(b)) as ob:
        path = cache._record_path(ob.manifest)
        good = {"verified_at": "2020-01-01 00:00:00 UTC",
                "files": {t: {"sha256": ob.manifest.tables[t].sha256, "identity": list(i)}
                          for t, i in zip(TABLES, ob.file_identity())}}
    lies = []
    other = json.loads(json.dumps(good))
    other["files"]["tasks"]["sha256"] = "0" * 64
    lies.append(json.dumps(other))
    missing = json.loads(json.dumps(good))
    del missing["files"]["partitions"]
    lies.append(json.dumps(missing))
    lies.append(json.dumps(good)[:40])
    path.parent.mkdir(parents=True, exist_ok=True)
    for lie in lies:
        path.write_text(lie)
        with Snapshot.open(b) as snap:
            assert snap.verified_note is None, lie
    path.write_text(json.dumps(good))  # the control: the honest record is trusted
    with Snapshot.open(b) as snap:
        assert snap.verified_note


class _closing:
    def __init__(self, ob):
        self.ob = ob

    def __enter__(self):
        return self.ob

    def __exit__(self, *exc):
        self.ob.close()


def test_check_always_hashes_even_when_a_record_vouches_for_the_files(env):
    """Given a record that vouches for a bundle's files as they are now although one byte
    differs from its checksum (a record that lies), when `aksnap check` runs, then it hashes
    every file anyway and reports the checksum failure."""
    from typer.testing import CliRunner

    from aksnap.cli import app

    b = _bundle(env / "b")
    _verified_open(b).close()
    _flip_a_byte_keeping_mtime(b / "tasks.parquet")
    with _closing(OpenBundle.open(b, statistics=False)) as ob:  # the lie: the record rewritten for the files now
        path = cache._record_path(ob.manifest)
        rec = json.loads(path.read_text())
        for t, i in zip(rec["files"], ob.file_identity()):
            rec["files"][t]["identity"] = list(i)
        path.write_text(json.dumps(rec))
    with Snapshot.open(b) as snap:
        assert snap.verified_note  # the record is believed by an ordinary open (it is ours)
    r = CliRunner().invoke(app, ["check", str(b), "--quiet"])
    assert r.exit_code != 0 and "checksum" in r.output, r.output


def test_a_check_that_passed_leaves_the_files_verified_and_one_that_failed_does_not(env,
                                                                                   monkeypatch):
    """Given a bundle never opened, when `aksnap check` passes, then the next open does not
    hash the files again (the check hashed every byte) and says so; given a byte flipped with
    its mtime put back and the record gone, when check fails, then no record is left and the
    next open hashes and refuses."""
    from typer.testing import CliRunner

    from aksnap.cli import app

    b = _bundle(env / "b")
    r = CliRunner().invoke(app, ["check", str(b), "--quiet", "-o", "json"])
    doc = json.loads(r.stdout)  # its findings are the bundle's (exit 1): its files are intact
    assert doc["checksums"] == "ok" and doc["integrity"] == [], r.output
    with monkeypatch.context() as m:
        _hashing_forbidden(m)
        with _verified_open(b) as snap:
            assert snap.verified_note and "files unchanged since" in snap.verified_note
    with _closing(OpenBundle.open(b, statistics=False)) as ob:
        record = cache._record_path(ob.manifest)
    record.unlink()
    _flip_a_byte_keeping_mtime(b / "results.parquet")
    r = CliRunner().invoke(app, ["check", str(b), "--quiet"])
    assert r.exit_code != 0 and "checksum" in r.output, r.output
    assert not record.exists()
    with pytest.raises(BundleError):  # the flipped byte: a checksum, or a string that is no UTF-8
        _verified_open(b)


def test_files_changed_within_the_racy_window_are_not_recorded(env, monkeypatch):
    """Given files written less than RACY_NS before their verification started (a write in
    the same clock tick would not move their timestamps), when they are verified, then no
    record is kept and the next open hashes them again."""
    monkeypatch.setattr(cache, "RACY_NS", 3_600 * 10**9)
    b = _bundle(env / "b")
    _verified_open(b).close()
    assert not list((env / "cache").glob("verified-*"))
    with Snapshot.open(b) as snap:
        assert snap.verified_note is None


def test_the_command_line_says_what_the_answer_rests_on_unless_quiet(env):
    """Given a bundle verified once, when a command reads it again, then stderr says the
    checksums were verified at that time and the files are unchanged since; --quiet hides it."""
    from typer.testing import CliRunner

    from aksnap.cli import app

    b = _bundle(env / "b")
    _verified_open(b).close()
    r = CliRunner().invoke(app, ["lineage", str(b), "o1"])
    assert r.exit_code == 0 and "checksums verified at" in r.output and "unchanged since" in r.output, r.output
    r = CliRunner().invoke(app, ["lineage", str(b), "o1", "--quiet"])
    assert r.exit_code == 0 and "checksums verified at" not in r.output, r.output


def test_a_file_written_while_it_was_hashed_is_not_recorded(env, monkeypatch):
    """Given a verification during which a table is written (a byte flipped and its mtime put
    back, after the hashing read it), when the hashing passes, then no record vouches for
    the files: the next open hashes again and refuses."""
    b = _bundle(env / "b")
    real = OpenBundle.checksum_problems

    def hash_then_write(self):
        problems = real(self)
        time.sleep(0.05)
        _flip_a_byte_keeping_mtime(b / "tasks.parquet")
        return problems
    monkeypatch.setattr(OpenBundle, "checksum_problems", hash_then_write)
    _verified_open(b).close()
    monkeypatch.setattr(OpenBundle, "checksum_problems", real)
    assert not list((env / "cache").glob("verified-*"))
    with Snapshot.open(b) as snap:
        assert snap.verified_note is None
        with pytest.raises(BundleError, match="fails its checksum"):
            snap.wait_verified()


def test_an_exact_id_is_found_in_the_cached_index_and_a_prefix_still_resolves(env, monkeypatch):
    """Given a bundle whose index is cached, when a command names a result or task by its whole
    id, then the id is found in the index's id arrays without scanning the table in SQL (2.5 s
    of CPU at 10M tasks); a prefix, a case-changed id, or an id of another kind still go
    through the SQL resolution and answer as before."""
    from aksnap.analyzer.graph import TaskGraph

    monkeypatch.setattr(TaskGraph, "CACHE_MIN_TASKS", 0)
    b = _bundle(env / "b")
    with _verified_open(b) as snap:
        snap.graph  # builds and caches the index
    with Snapshot.open(b) as snap:
        real = Snapshot.sql

        def no_sql(self, *a, **k):
            raise AssertionError("resolved by a scan")
        monkeypatch.setattr(Snapshot, "sql", no_sql)
        assert snap.resolve_id("result", "o1") == "o1"
        assert snap.resolve_id("task", "t1") == "t1"
        monkeypatch.setattr(Snapshot, "sql", real)
        assert snap.resolve_id("result", "O1") == "o1"  # case: by SQL, as before
        assert snap.resolve_id("result", "rB") == "rB"
        assert snap.resolve_id("result", "t1") == "t1-payload"  # a prefix, as before
        assert snap.resolve_id("result", "zz-unknown") == "zz-unknown"  # for the answer to refuse
