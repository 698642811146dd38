"""One formatter for every command: rows (list of dicts) or Arrow tables to table/json/csv.

Every sink escapes what it shows, because ids and messages come from a cluster or a bundle
and may hold terminal escapes (``ESC]0;...BEL`` retitles a terminal), NULs or bidi overrides
(U+202E reverses the text after it):

- table and key-value output: a character that is not printable (C0, DEL, C1, format
  characters such as U+202E, line and paragraph separators) is shown as its Python escape,
  ``\\x1b``, ``\\u202e``, ``\\n``; a cell stays on one line;
- CSV: the same, so that ``cat`` of a CSV file is safe and each row is one line; the cell
  keeps every other character. Use ``--format json`` for the exact text;
- JSON: ``json.dumps`` with ``ensure_ascii`` writes every non-ASCII and control character as
  ``\\uXXXX``, so the document is exact and plain ASCII.

A file a command writes at a path the user names (``graph``, ``trace``, ``report --out``,
``lineage --dot``) goes through :func:`atomic_output`: never over an existing file without
``overwrite``, never through a symbolic link, into a directory, a FIFO or a bundle, and
never half-written (a temporary sibling, fsynced, renamed into place).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import secrets
import shutil
import stat
import sys
import unicodedata
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Sequence

from aksnap.errors import AksnapError, BundleError

#: Every output format, as armonik-cli names them; a command offers the ones that fit it.
FORMATS = ("table", "json", "yaml", "csv")
#: armonik-cli's variable for the default output format.
OUTPUT_ENV = "AK_OUTPUT"
#: A cell of a table is cut at this many columns unless ``--wide`` (a message may be long).
CELL_WIDTH = 60


class FormatError(AksnapError, ValueError):
    """An output format aksnap does not write; the message is one sentence (exit code 2; still
    a ValueError for callers that catch one)."""


def resolve_format(value: str | None, allowed: Sequence[str] = FORMATS) -> str:
    """The output format: ``value`` (``-o/--output``), else ``$AK_OUTPUT``, else ``table``;
    case-insensitive, as armonik-cli."""
    source = "-o/--output"
    if value in (None, ""):
        value, source = os.environ.get(OUTPUT_ENV) or "table", OUTPUT_ENV
    v = value.strip().lower()
    if v == "auto":  # armonik-cli's own default: its tables when printing to a person
        return "table"
    if v not in allowed:
        if source == OUTPUT_ENV and v in FORMATS:
            return "table"  # a global default this command cannot write: its own default
        raise FormatError(f"unknown output format {value!r} (from {source}); this command "
                          f"writes {', '.join(allowed)}")
    return v


def output_option(allowed: Sequence[str] = FORMATS):
    """The ``-o/--output`` option every printing command takes."""
    import typer

    return typer.Option(None, "--output", "-o", show_default=False, metavar="|".join(allowed),
                        help=f"Output format: {', '.join(allowed)} (default: $AK_OUTPUT, else "
                             "table; case-insensitive).")


def wide_option():
    import typer

    return typer.Option(False, "--wide", help="Show long cells in full (default: cut at "
                                              f"{CELL_WIDTH} columns and to the terminal's width).")


_wide = False


def set_wide(wide: bool) -> None:
    """``--wide``: tables show every cell in full."""
    global _wide
    _wide = bool(wide)


def display_width(s: str) -> int:
    """Columns ``s`` takes on a terminal: wide (CJK, most emoji) count 2, combining marks 0."""
    if s.isascii():
        return len(s)
    w = 0
    for c in s:
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
            continue
        w += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return w


def clip(s: str, width: int) -> str:
    """``s`` cut to ``width`` display columns, an ellipsis marking the cut."""
    if display_width(s) <= width:
        return s
    out, w = [], 0
    for c in s:
        cw = display_width(c)
        if w + cw > width - 1:
            break
        out.append(c)
        w += cw
    return "".join(out) + "…"


def _pad(s: str, width: int) -> str:
    return s + " " * max(0, width - display_width(s))


def _terminal_width() -> int | None:
    """The terminal's width when stdout is one (or $COLUMNS is set), else None."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    try:
        if sys.stdout.isatty():
            return shutil.get_terminal_size().columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


def to_yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(jsonable(obj), sort_keys=False, allow_unicode=False,
                          default_flow_style=False).rstrip("\n")


def jsonable(v: Any) -> Any:
    """``v`` as JSON and YAML hold it: times as ISO strings, durations in seconds, decimals
    as floats, NaN and infinities as null, bytes as hex; maps and lists converted inside."""
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def safe_text(s: str, keep: str = "") -> str:
    """``s`` with every non-printable character (except those in ``keep``) shown as its
    Python escape (``\\x1b``, ``\\x00``, ``\\u202e``), so that printing it cannot drive a
    terminal. Printable text, backslashes included, is returned as is."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in s)


def to_json(obj: Any) -> str:
    # ensure_ascii (the default, said out loud): control characters and bidi overrides are
    # written as \uXXXX escapes, never raw.
    return json.dumps(jsonable(obj), indent=2, ensure_ascii=True)


def _csv_cell(v: Any) -> str:
    """A CSV cell: numbers at full precision (a program reads them), the rest as tables show
    it (escaped)."""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    if isinstance(v, timedelta):
        return repr(v.total_seconds())
    return _cell(v)


def _cell(v: Any) -> str:
    return safe_text(cell_text(v))


def cell_text(v: Any) -> str:
    """A value as the text of a table cell, before escaping: floats to 3 decimals, durations
    in seconds, times to the millisecond, lists joined by commas, None empty."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1e6 else f"{v:.4g}"
    if isinstance(v, timedelta):
        return f"{v.total_seconds():.3f}s"
    if isinstance(v, datetime):
        return v.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(v, (list, tuple)):
        return ",".join(cell_text(x) for x in v)
    return str(v)


def rows_of(data: Any) -> list[dict[str, Any]]:
    """Accept a pyarrow Table, a list of dicts or a single dict."""
    if hasattr(data, "to_pylist") and hasattr(data, "schema"):
        return data.to_pylist()
    if isinstance(data, dict):
        return [data]
    return list(data)


def render_rows(data: Any, fmt: str = "table", columns: Sequence[str] | None = None,
                max_width: int = CELL_WIDTH) -> str:
    rows = rows_of(data)
    if columns is None:
        columns = list(rows[0].keys()) if rows else []
    if fmt == "json":
        return to_json([{c: r.get(c) for c in columns} for r in rows])
    if fmt == "yaml":
        return to_yaml([{c: r.get(c) for c in columns} for r in rows])
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([safe_text(str(c)) for c in columns])
        for r in rows:
            w.writerow([_csv_cell(r.get(c)) for c in columns])
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not rows:
        return "(no rows)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    columns = [safe_text(str(c)) for c in columns]
    widths = [max(display_width(c), *(display_width(row[i]) for row in cells))
              for i, c in enumerate(columns)]
    if not _wide:
        widths = _fit(widths, [display_width(c) for c in columns], max_width)
    cells = [[clip(s, w) for s, w in zip(row, widths)] for row in cells]
    line = "  ".join(_pad(clip(c, w), w) for c, w in zip(columns, widths)).rstrip()
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(_pad(s, w) for s, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([line, sep, *body])


def _fit(widths: list[int], heads: list[int], max_width: int) -> list[int]:
    """Column widths: each cut at ``max_width``, then the widest narrowed (not below its
    header, nor 8) until the row fits the terminal, when there is one."""
    widths = [min(w, max(max_width, h)) for w, h in zip(widths, heads)]
    term = _terminal_width()
    if term is None:
        return widths
    while sum(widths) + 2 * (len(widths) - 1) > term:
        i = max(range(len(widths)), key=lambda k: widths[k] - max(heads[k], 8))
        if widths[i] <= max(heads[i], 8):
            break
        widths[i] -= 1
    return widths


def render_kv(pairs: Iterable[tuple[str, Any]]) -> str:
    """``key  value`` lines; a value longer than the terminal (or 1,000 columns) is cut,
    unless ``--wide``."""
    pairs = [(safe_text(str(k)), v) for k, v in pairs]
    if not pairs:
        return ""
    w = max(display_width(k) for k, _ in pairs)
    room = None if _wide else max(20, (_terminal_width() or 1002) - w - 2)
    return "\n".join(f"{_pad(k, w)}  {_cell(v) if room is None else clip(_cell(v), room)}"
                     for k, v in pairs)


# -- files the user names --------------------------------------------------------------------

def _same_or_inside(path: Path, source: Path) -> str | None:
    """How ``path`` relates to ``source`` as the file system resolves both: ``is`` (the same
    file), ``is inside`` (``source`` is a directory holding it), else None."""
    try:
        real = path.parent.resolve() / path.name
        src = source.resolve()
    except (OSError, RuntimeError):
        return None
    if real == src:
        return "is"
    if src in real.parents and src.is_dir():
        return "is inside"
    return None


def check_output_file(out: str | os.PathLike, *, overwrite: bool = False, option: str = "--out",
                      sources: Iterable[str | os.PathLike] = ()) -> Path:
    """The absolute path a command may write ``out`` at, or BundleError (one sentence).

    Refused whatever ``overwrite`` says: a symbolic link (aksnap never writes through one,
    nor replaces it), a directory, anything but a regular file (a FIFO would block the
    writer; a device would receive the bytes), a path that is one of ``sources`` (the bundle,
    packed file or series the command reads) or inside one, a path inside any aksnap bundle
    (a bundle holds its own files only), a parent directory that does not exist. An existing
    regular file is refused unless ``overwrite``."""
    out = Path(os.path.abspath(out))
    for source in sources:
        how = _same_or_inside(out, Path(os.path.abspath(source)))
        if how is not None:
            raise BundleError(f"{option} {out} {how} {source}, which this command reads; "
                                "write it elsewhere")
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        st = None
    except OSError as e:  # a parent is a file (ENOTDIR), a loop, no permission
        raise BundleError(f"cannot write {option} {out}: {e.strerror}; choose another "
                            f"{option}") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise BundleError(f"{option} {out} is a symbolic link (to {os.readlink(out)}); "
                                "aksnap never writes through one: give the file's own path or "
                                "another name")
        if stat.S_ISDIR(st.st_mode):
            raise BundleError(f"{option} {out} is a directory; give a file name")
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{option} {out} is not a regular file (a FIFO, socket or "
                                f"device); choose another {option}")
        if not overwrite:
            raise BundleError(f"{out} already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise BundleError(f"cannot write {out}: the directory {out.parent} does not exist")
    if _is_bundle_dir(out.parent):
        raise BundleError(f"{option} {out} is inside the bundle {out.parent} (a bundle holds "
                            "its own files only); write it elsewhere")
    return out


def _is_bundle_dir(directory: Path) -> bool:
    """Whether ``directory`` holds an aksnap manifest (its ``format`` is ours; a web app's
    manifest.json is not one)."""
    from aksnap.bundle_format import FORMAT_NAME, MANIFEST  # here: pyarrow is not for every start

    try:
        fd = os.open(directory / MANIFEST, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # a FIFO would block
                return False
            head = f.read(1 << 20)
        return json.loads(head).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike, *, overwrite: bool = False, option: str = "--out",
                  sources: Iterable[str | os.PathLike] = ()) -> Iterator[BinaryIO]:
    """A binary file to write ``out`` through: checked first (:func:`check_output_file`),
    written as a hidden sibling ``.<name>.partial-<pid>-<random>`` (created exclusively, never
    following a link, with the usual permissions), fsynced, then renamed into place in one
    step when the ``with`` body ends without an exception. Without ``overwrite`` the rename
    refuses a file that appeared meanwhile (a hard link, no-replace); with it, the old file
    is replaced whole. An exception (disk full, Ctrl-C, a bug) leaves the old file, or
    nothing, and removes the sibling; an OSError becomes a BundleError sentence."""
    from aksnap.bundle_writer import fsync_dir, os_error_sentence

    out = check_output_file(out, overwrite=overwrite, option=option, sources=sources)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(tmp, flags, 0o666)
    except OSError as e:
        raise BundleError(os_error_sentence(e, out, "write")) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, out)
        else:
            _rename_noreplace(tmp, out)
        fsync_dir(out.parent)
    except OSError as e:
        raise BundleError(os_error_sentence(e, out, "write")) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _rename_noreplace(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out`` unless something is at ``out`` by now (another writer)."""
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise BundleError(f"{out} appeared while aksnap wrote it; it was left as it is "
                            "(pass --overwrite to replace it)") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK,
                           errno.ENOSYS, errno.EXDEV):
            raise
        # a file system without hard links: the check and the rename are two steps
        if os.path.lexists(out):
            raise BundleError(f"{out} appeared while aksnap wrote it; it was left as it is "
                                "(pass --overwrite to replace it)") from None
        os.rename(tmp, out)
