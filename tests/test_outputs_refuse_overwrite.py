"""Every command that writes a file the user names refuses to lose one.

`aksnap graph`, `trace`, `report` and `lineage --dot` write one file (``--out``/``--dot``).
Given a file already there, they refuse without ``--overwrite`` (one sentence, exit 2, the
file as it was), as ``export``, ``pack``, ``unpack`` and ``redact`` do; they never write
through a symbolic link into another file, nor into a directory, a FIFO or the bundle they
read; and the file appears in one step (a temporary sibling, fsynced, renamed): a failure or
an interruption midway leaves the old file, or nothing, and no temporary file. The Python API
(``api.graph_file``, ``trace_file``, ``report_file``) does the same (``overwrite=False``).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from aksnap.analyzer import api, graphfile
from aksnap.analyzer.snapshot import Snapshot
from aksnap.bundle import BundleError, verify_bundle
from aksnap.cli import app
from aksnap.output import atomic_output

runner = CliRunner()
OLD = "hi, these are my notes\n"


def _command(name, bundle, out, truth):
    return {"graph": ["graph", str(bundle), "--out", str(out)],
            "trace": ["trace", str(bundle), "--out", str(out)],
            "report": ["report", str(bundle), "--out", str(out)],
            "lineage": ["lineage", str(bundle), truth["blocked_result"], "--dot", str(out)]}[name]


NAMES = ("graph", "trace", "report", "lineage")


def _only(directory, *names):
    """The directory holds exactly these names (no temporary sibling left behind)."""
    assert sorted(p.name for p in directory.iterdir()) == sorted(names)


def _one_sentence(r):
    err = r.stderr.strip()
    assert r.exit_code == 2, r.output
    assert err.startswith("aksnap: error: ") and "\n" not in err and "Traceback" not in r.output
    return err


@pytest.mark.parametrize("name", NAMES)
def test_an_existing_file_is_refused_without_overwrite_and_replaced_with_it(name, demo_bundle,
                                                                          tmp_path):
    """Given `echo hi > notes.txt`, when `aksnap NAME B --out notes.txt` runs, then exit 2, one
    sentence saying it exists and naming --overwrite, and notes.txt is as it was; with
    --overwrite, notes.txt is the new file, written as a new inode (renamed into place, not
    truncated and rewritten), and nothing else is left in the directory."""
    bundle, truth = demo_bundle
    notes = tmp_path / "notes.txt"
    notes.write_text(OLD)
    r = runner.invoke(app, _command(name, bundle, notes, truth))
    err = _one_sentence(r)
    assert "already exists" in err and "--overwrite" in err, err
    assert notes.read_text() == OLD
    _only(tmp_path, "notes.txt")
    before = os.stat(notes).st_ino
    r = runner.invoke(app, [*_command(name, bundle, notes, truth), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert notes.read_text() != OLD and notes.stat().st_size > 100
    assert os.stat(notes).st_ino != before
    _only(tmp_path, "notes.txt")


@pytest.mark.parametrize("name", NAMES)
def test_never_through_a_symlink_into_a_directory_or_into_the_bundle(name, demo_bundle,
                                                                     tmp_path):
    """Given --out a symbolic link to another file (with or without --overwrite), a directory,
    a file inside the bundle read (its own tasks.parquet), then exit 2, one sentence, and the
    link, its target, the directory and the bundle are untouched."""
    bundle, truth = demo_bundle
    victim = tmp_path / "victim.txt"
    victim.write_text(OLD)
    link = tmp_path / "out.link"
    link.symlink_to(victim)
    dangling = tmp_path / "dangling.link"
    dangling.symlink_to(tmp_path / "nowhere.txt")
    folder = tmp_path / "folder"
    folder.mkdir()
    tasks = bundle / "tasks.parquet"
    tasks_bytes = tasks.read_bytes()
    for out, say in ((link, "symbolic link"), (dangling, "symbolic link"), (folder, "directory"),
                     (tasks, "which this command reads")):
        for extra in ([], ["--overwrite"]):
            r = runner.invoke(app, [*_command(name, bundle, out, truth), *extra])
            err = _one_sentence(r)
            assert say in err, err
    assert victim.read_text() == OLD and os.readlink(link) == str(victim)
    assert not (tmp_path / "nowhere.txt").exists() and dangling.is_symlink()
    assert list(folder.iterdir()) == []
    assert tasks.read_bytes() == tasks_bytes and verify_bundle(bundle) == []
    _only(tmp_path, "victim.txt", "out.link", "dangling.link", "folder")


def test_the_packed_file_read_is_never_the_one_replaced(demo_bundle, tmp_path):
    """Given `aksnap report run.aksnap --out run.aksnap --overwrite` (a typo away from
    report.html), then exit 2 and the packed bundle is intact."""
    from aksnap.pack import pack

    bundle, _ = demo_bundle
    packed = pack(bundle, tmp_path / "run.aksnap").path
    data = packed.read_bytes()
    for cmd in ("report", "trace", "graph"):
        r = runner.invoke(app, [cmd, str(packed), "--out", str(packed), "--overwrite"])
        assert "which this command reads" in _one_sentence(r)
    assert packed.read_bytes() == data


def test_a_fifo_at_out_is_refused_at_once(demo_bundle, tmp_path):
    """Given a FIFO at --out (nobody reading it), then the command refuses it at once (exit 2)
    instead of blocking on its open, with or without --overwrite."""
    bundle, _ = demo_bundle
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for extra in ([], ["--overwrite"]):
        p = subprocess.run([sys.executable, "-m", "aksnap", "trace", str(bundle), "--out",
                            str(fifo), *extra], capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and "not a regular file" in p.stderr, p.stderr
    assert fifo.exists() and not fifo.is_file()


def test_the_python_api_refuses_too_unless_overwrite(demo_bundle, tmp_path):
    """Given an existing file, api.graph_file, trace_file and report_file raise BundleError
    (one sentence) and leave it; with overwrite=True they replace it."""
    bundle, _ = demo_bundle
    snap = Snapshot.open(bundle)
    out = tmp_path / "mine.out"
    for write in (lambda **k: api.graph_file(snap, out, "json", **k),
                  lambda **k: api.trace_file(snap, out, **k),
                  lambda **k: api.report_file(snap, out, **k)):
        out.write_text(OLD)
        with pytest.raises(BundleError, match="already exists"):
            write()
        assert out.read_text() == OLD
        info = write(overwrite=True)
        assert info["path"] == str(out) and out.read_text() != OLD
    _only(tmp_path, "mine.out")


def _parts_then(fail):
    """A writer's parts: a first chunk, then ``fail`` (an exception raised midway)."""
    yield b"x" * 100_000
    raise fail


@pytest.mark.parametrize("fail", [OSError(errno.ENOSPC, "No space left on device"),
                                  KeyboardInterrupt(), RuntimeError("a bug midway")],
                         ids=["disk-full", "ctrl-c", "bug"])
def test_a_failure_midway_leaves_the_old_file_and_no_temporary(tmp_path, fail):
    """Given an existing file replaced with overwrite, when the writing fails midway (disk
    full, Ctrl-C, a bug), then the old file is intact, no temporary sibling is left, and a
    disk full is one sentence (BundleError) saying so."""
    out = tmp_path / "graph.dot"
    out.write_text(OLD)
    expected = BundleError if isinstance(fail, OSError) else type(fail)
    with pytest.raises(expected) as e:
        graphfile.write_atomically(out, _parts_then(fail), binary=True, overwrite=True)
    if expected is BundleError:
        assert "disk is full" in str(e.value)
    assert out.read_text() == OLD
    _only(tmp_path, "graph.dot")
    # and when there was no file, there is still none
    new = tmp_path / "new.dot"
    with pytest.raises(expected):
        graphfile.write_atomically(new, _parts_then(fail), binary=True)
    _only(tmp_path, "graph.dot")


def test_a_file_appearing_while_writing_is_not_replaced(tmp_path):
    """Given no file at first (no --overwrite), when another process creates it while aksnap
    writes, then aksnap refuses at the end (the other file is kept) and leaves nothing."""
    out = tmp_path / "trace.json"

    def parts():
        yield b"{}"
        out.write_text("the other writer's")
        yield b"\n"

    with pytest.raises(BundleError, match="appeared"):
        graphfile.write_atomically(out, parts(), binary=True)
    assert out.read_text() == "the other writer's"
    _only(tmp_path, "trace.json")


def test_the_helper_refuses_a_missing_directory_and_writes_readable_files(tmp_path):
    """Given a --out in a directory that does not exist, one sentence; a written file has the
    usual permissions (umask), not a temporary file's 0600."""
    with pytest.raises(BundleError, match="does not exist"):
        with atomic_output(tmp_path / "no" / "x.json") as f:
            f.write(b"{}")
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "x.json") as f:
            f.write(b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
