"""Every path on the command line is a regular file or a directory, as its command expects,
and anything else is one sentence at once (issue 17, item 12: `aksnap unpack FIFO --out X`
waited forever for a writer). Walks every registered command, so a new path parameter
without its kind (``aksnap.paths``) fails here."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
import typing
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from aksnap import paths
from aksnap.analyzer.testing import failure_bundle
from aksnap.cli import app

runner = CliRunner()
#: Metavars that name a path: a parameter showing one must be a Path (and so declare a kind).
PATH_METAVARS = {"BUNDLE", "FILE", "DIR", "KEY", "ARCHIVE", "BUNDLE|FILE", "BUNDLE...", "A", "B",
                 "PATH"}


def _walk(group, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from _walk(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def _is_path(param) -> bool:
    ann = param.type_descriptor.annotation
    return ann is Path or Path in typing.get_args(ann) or any(
        Path in typing.get_args(a) for a in typing.get_args(ann))


COMMANDS = list(_walk(typer.main.get_command(app)))
PATH_PARAMS = [(cmd_path, p.name) for cmd_path, cmd in COMMANDS for p in cmd.params
               if p.name != "help" and _is_path(p)]


def _param(cmd_path, name):
    cmd = dict(COMMANDS)[cmd_path]
    return cmd, next(p for p in cmd.params if p.name == name)


def test_there_are_path_parameters_to_check():
    names = {(" ".join(c), n) for c, n in PATH_PARAMS}
    assert {("unpack", "file"), ("analyze", "bundle"), ("export", "config"), ("redact", "key_file"),
            ("archive add", "bundles"), ("lineage", "dot"), ("simulate", "tls_cert"),
            ("watch", "record"), ("diff", "b")} <= names
    assert len(PATH_PARAMS) >= 40


@pytest.mark.parametrize("cmd_path, name", PATH_PARAMS, ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_every_path_parameter_declares_its_kind(cmd_path, name):
    """Given a path parameter of a registered command, then its callback is one of
    aksnap.paths' kinds (typer keeps the function's attributes on its wrapper)."""
    _, p = _param(cmd_path, name)
    assert getattr(p.callback, "path_kind", None) in paths.KINDS, (
        f"`aksnap {' '.join(cmd_path)}` {name}: declare what the path is, e.g. "
        "typer.Option(..., callback=paths.file_in) (aksnap.paths)")


def test_no_path_hides_in_a_string_parameter():
    """A parameter whose metavar names a path is a Path (so the walk above sees it)."""
    hidden = [(" ".join(c), p.name) for c, cmd in COMMANDS for p in cmd.params
              if (p.metavar or "") in PATH_METAVARS and not _is_path(p)]
    assert not hidden


def test_the_walk_detects_a_path_without_a_kind():
    """The checker itself can fail: a command with a bare Path option is reported."""
    t = typer.Typer()

    @t.command()
    def bare(out: Path = typer.Option(..., "--out"), n: int = 1) -> None:
        """x"""

    @t.command()
    def other() -> None:
        """y"""

    found = [(c, p.name) for c, cmd in _walk(typer.main.get_command(t)) for p in cmd.params
             if _is_path(p) and getattr(p.callback, "path_kind", None) not in paths.KINDS]
    assert found == [(("bare",), "out")]


# -- a named pipe, a socket, a device, a missing path, to each -------------------------------

@pytest.fixture(scope="module")
def places(tmp_path_factory):
    d = tmp_path_factory.mktemp("paths")
    os.mkfifo(d / "fifo")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(d / "sock"))
    (d / "file.txt").write_text("x")
    (d / "dir").mkdir()
    fb = failure_bundle(d / "fb")
    yield {"fifo": d / "fifo", "socket": d / "sock", "device": Path("/dev/null"),
           "missing": d / "missing", "file": d / "file.txt", "dir": d / "dir", "bundle": fb,
           "root": d}
    s.close()


def _filler(p, places) -> str:
    kind = getattr(p.callback, "path_kind", None)
    if kind is paths.BUNDLE_IN:
        return str(places["bundle"])
    if kind in (paths.FILE_IN, paths.PACKED_IN):
        return str(places["file"])
    if kind is paths.DIR_OUT:
        return str(places["root"] / "new-dir")
    if kind is paths.FILE_OUT:
        return str(places["root"] / "new-file")
    return "x"


def _argv(cmd_path, name, value, places) -> list[str]:
    """The shortest command line that hands ``value`` to the parameter ``name``."""
    cmd, target = _param(cmd_path, name)
    if target.param_type_name == "option":
        return [*cmd_path, max((o for o in target.opts if o.startswith("--")), key=len), str(value)]
    argv = list(cmd_path)
    for p in cmd.params:
        if p.param_type_name != "argument":
            continue
        if p is target:
            return argv + [str(value)]
        argv.append(_filler(p, places))
    raise AssertionError(name)


@contextlib.contextmanager
def _deadline(seconds: int):
    """A hang becomes a failure, not a stuck test run."""
    def ring(*_):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _wrong_things(kind) -> list[str]:
    out = ["fifo", "socket", "device"]
    if kind is None or kind.missing:
        out.append("missing")
    if kind is None or not kind.dirs:
        out.append("dir")
    if kind is None or not kind.files:
        out.append("file")
    return out


CASES = [(c, n, what) for c, n in PATH_PARAMS
         for what in _wrong_things(getattr(_param(c, n)[1].callback, "path_kind", None))]


@pytest.mark.parametrize("cmd_path, name, what", CASES,
                         ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_a_path_of_the_wrong_kind_is_one_sentence_at_once(cmd_path, name, what, places, tmp_path, monkeypatch):
    """Given a named pipe (nobody writing), a socket, a device, a missing path where one is
    read, or a directory where a file is expected (and the reverse), handed to a path
    parameter of a command, then the command exits 2 within a second with one
    `aksnap: error:` sentence naming the path, no traceback, and nothing is done (the pipe is
    still a pipe: not replaced, not read). A missing file that is not a bundle is left to the
    command (it names what the file was for: tests/test_export_cli.py and others)."""
    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    value = places[what]
    argv = _argv(cmd_path, name, value, places)
    started = time.monotonic()
    with _deadline(10):
        r = runner.invoke(app, argv)
    took = time.monotonic() - started
    assert r.exit_code == 2, (argv, r.output, r.exception)
    assert r.stderr.startswith("aksnap: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert str(value) in r.stderr and "Traceback" not in r.output
    expected = {"fifo": "named pipe", "socket": "socket", "device": "device",
                "missing": "does not exist", "dir": "is a directory",
                "file": "is a regular file"}
    assert re.search(expected[what], r.stderr), r.stderr
    assert took < 1.0, took
    assert os.path.exists(places["fifo"]) and (places["root"] / "fifo").is_fifo()
    assert not (tmp_path / "cache").exists()


def test_unpack_of_a_named_pipe_returns_at_once_even_past_the_cli(places, tmp_path):
    """The library refuses a pipe too (opened without blocking, fstat), so a pipe swapped in
    after the command line's check cannot hang: unpack(), open_packed() and load_key()
    raise at once."""
    from aksnap.bundle import BundleError
    from aksnap.pack import open_packed, unpack
    from aksnap.redact import load_key

    with _deadline(5):
        with pytest.raises(BundleError, match="not a regular file"):
            load_key(places["fifo"])
        with pytest.raises(BundleError):
            unpack(places["fifo"], tmp_path / "u")
        with pytest.raises(BundleError, match="not a regular file"):
            open_packed(places["fifo"])
    assert not (tmp_path / "u").exists()
