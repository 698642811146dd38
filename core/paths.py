"""What every path on the command line may be: a regular file or a directory, as the command
expects, refused at once otherwise (docs/sharing.md, "Paths on the command line").

Opening a named pipe waits for a writer, forever; a socket, a device, ``/dev/stdin`` are not
files either. So no command reaches a path before it was looked at with ``stat`` (which never
opens it): every ``Path`` argument and option of every command declares what it is, with one
of the callbacks below (``typer.Option(..., callback=paths.file_in)``), and
``tests/test_path_arguments.py`` walks every registered command and fails on a path parameter
without one, then hands each a named pipe, a socket, a device and a missing file.

The kinds:

- :func:`bundle_in`: a bundle (a directory, or a packed file), which must exist;
- :func:`packed_in`: a packed bundle (``aksnap unpack FILE``), which must exist;
- :func:`file_in`: a file to read (a certificate, a configuration);
- :func:`file_out`: a file to write (``--out FILE``, ``--map``), or a key file that
  ``--new-key`` may create: absent, or a regular file;
- :func:`dir_out`: a directory to create or fill (``--out DIR``, ``--record``, an archive):
  absent, or a directory.

A missing bundle or packed file is refused here ("no bundle at ..."); another missing path is
left to the command, which creates it or says in its own words what the file was for ("no key
file at ...", "cannot read the config file ..."); so is a path that cannot be looked at
(permission denied).

Symbolic links are followed (a link to a regular file is a regular file). The check is a
sentence, exit code 2, before the command runs; the command's own opening stays
non-blocking where it reads a stranger's path (a pipe swapped in after the check is refused
there: ``aksnap.pack``, ``aksnap.bundle``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any, Callable

from typer import _click as click

from aksnap.errors import AksnapError


class PathError(click.exceptions.UsageError, AksnapError):
    """A path argument that is not what its command reads or writes; the message is the whole
    sentence (the CLI prints it without pointing at the help). A usage error to click (raised
    while the arguments are parsed), an :class:`AksnapError` to a Python caller."""

    whole_sentence = True

    def __init__(self, message: str, ctx: Any = None):
        super().__init__(message, ctx)
        self.exit_code = 2

    def format_message(self) -> str:
        return self.message


@dataclass(frozen=True)
class PathKind:
    """What a path parameter accepts."""

    name: str             # said in the sentence: "a bundle directory or a packed file"
    files: bool           # a regular file is accepted
    dirs: bool            # a directory is accepted
    missing: str | None   # the sentence for a path that does not exist ("{path}" in it); None:
    #                       the command creates it, or says in its own words what it was for


BUNDLE_IN = PathKind("a bundle directory or a packed file", files=True, dirs=True,
                     missing="no bundle at {path}: the path does not exist")
PACKED_IN = PathKind("a packed bundle file", files=True, dirs=False,
                     missing="no packed bundle at {path}: the path does not exist")
FILE_IN = PathKind("a regular file", files=True, dirs=False, missing=None)
FILE_OUT = PathKind("a regular file", files=True, dirs=False, missing=None)
DIR_OUT = PathKind("a directory", files=False, dirs=True, missing=None)
KINDS = (BUNDLE_IN, PACKED_IN, FILE_IN, FILE_OUT, DIR_OUT)


def what_is(mode: int) -> str:
    """What a file mode is, in words."""
    for test, words in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return words
    return "a special file"


def problem(path: str | os.PathLike, kind: PathKind, label: str = "the path") -> str | None:
    """Why ``path`` cannot be used as ``kind`` (None: it can, or it cannot be looked at, which
    the command says in its own words: permission denied, a loop of links), from ``stat``
    alone: the path is never opened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return kind.missing.format(path=path) if kind.missing else None
    except (OSError, ValueError):
        return None
    mode = st.st_mode
    if (stat.S_ISREG(mode) and kind.files) or (stat.S_ISDIR(mode) and kind.dirs):
        return None
    return (f"{label} {path} is {what_is(mode)}, not {kind.name}; aksnap reads and writes "
            "regular files and directories only")


def _label(param: Any) -> str:
    opts = [o for o in (getattr(param, "opts", None) or []) if o.startswith("--")]
    if getattr(param, "param_type_name", "") == "option" and opts:
        return max(opts, key=len)
    return (getattr(param, "metavar", None) or (param.name or "PATH").upper()).rstrip(".")


def _callback(kind: PathKind) -> Callable[..., Any]:
    def check(ctx, param, value):
        if value is None or getattr(ctx, "resilient_parsing", False):
            return value
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if v is None:
                continue
            why = problem(v, kind, _label(param))
            if why is not None:
                raise PathError(why, ctx)
        return value

    check.path_kind = kind  # read by tests/test_path_arguments.py (kept by typer's wrapper)
    return check


bundle_in = _callback(BUNDLE_IN)
packed_in = _callback(PACKED_IN)
file_in = _callback(FILE_IN)
file_out = _callback(FILE_OUT)
dir_out = _callback(DIR_OUT)

__all__ = ["PathError", "PathKind", "KINDS", "bundle_in", "packed_in", "file_in", "file_out", "dir_out",
           "problem", "what_is"]
