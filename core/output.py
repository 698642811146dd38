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
import re
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
    cols = [[r.get(c) for r in rows] for c in columns]
    cells = [[_cell(v) for v in col] for col in cols]
    heads = [safe_text(str(c)) for c in columns]
    note = ""
    term = None if _wide else _terminal_width()
    if term is not None and _row_width(cells, heads, max_width) > term:
        # too wide for the terminal: first what loses nothing (times said without the date
        # they share, and without the zone they all have), then columns yield (:func:`_fit`)
        cells, note = _short_times(cols, cells)
    widths = [max(display_width(h), *(display_width(s) for s in col)) for h, col in zip(heads, cells)]
    if not _wide:
        words = [all(v is None or isinstance(v, str) for v in col) for col in cols]
        widths = _fit(widths, heads, cells, max_width, term, words)
    cells = [_clip_column(col, w) for col, w in zip(cells, widths)]
    line = "  ".join(_pad(clip(h, w), w) for h, w in zip(heads, widths)).rstrip()
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(_pad(col[i], w) for col, w in zip(cells, widths)).rstrip()
            for i in range(len(rows))]
    return "\n".join([line, sep, *body] + ([note] if note else []))


def _row_width(cells: list[list[str]], heads: list[str], max_width: int) -> int:
    return sum(min(max(display_width(h), *(display_width(s) for s in col)),
                   max(max_width, display_width(h)))
               for h, col in zip(heads, cells)) + 2 * (len(heads) - 1)


def _short_times(cols: list[list[Any]], cells: list[list[str]]) -> tuple[list[list[str]], str]:
    """The cells of the UTC time columns without what every one of them repeats: the zone
    (said once, under the table) and, when they all fall on one day, the date (said there
    too). Other columns as they were."""
    times = [i for i, col in enumerate(cols)
             if any(v is not None for v in col)
             and all(v is None or (isinstance(v, datetime) and v.utcoffset() == timedelta(0))
                     for v in col)]
    if not times:
        return cells, ""
    days = {v.date() for i in times for v in cols[i] if v is not None}
    one_day = len(days) == 1
    out = list(cells)
    for i in times:
        out[i] = ["" if v is None else
                  (v.strftime("%H:%M:%S.") + f"{v.microsecond // 1000:03d}" if one_day
                   else v.strftime("%Y-%m-%d %H:%M:%S.") + f"{v.microsecond // 1000:03d}")
                  for v in cols[i]]
    return out, (f"(times UTC, on {next(iter(days)).isoformat()})" if one_day else "(times UTC)")


def _fit(widths: list[int], heads: list[str], cells: list[list[str]], max_width: int,
         term: int | None, words: list[bool] | None = None) -> list[int]:
    """Column widths: each cut at ``max_width``; then, when the row is wider than the
    terminal, the columns yield by what they tell apart, each phase narrowing the widest
    column first down to its bound:

    1. a column of single words (ids, statuses; ``words``: the columns of strings) holding
       one value on every row (it tells no row from another: the session of a one-session
       answer), down to 8 characters and an ellipsis;
    2. a column of single words down to the width that keeps its values as distinct as they
       are, and 8 characters (an id cut to a unique prefix is still usable: aksnap takes one;
       ``ID###1`` and ``ID###2`` keep their ends, :func:`_clip_column`);
    3. a column of text (messages, sentences);
    4. any column (numbers and times last: a cut one is wrong), down to its header (and 8
       columns).
    """
    hw = [display_width(h) for h in heads]
    widths = [min(w, max(max_width, h)) for w, h in zip(widths, hw)]
    if term is None:
        return widths
    floor = [max(h, 8) for h in hw]
    nrows = len(cells[0]) if cells else 0
    constant = [nrows > 1 and len(set(col)) == 1 for col in cells]
    words = words if words is not None else [True] * len(widths)
    text = [words[i] and any(" " in s for s in col) for i, col in enumerate(cells)]
    word = [words[i] and not text[i] for i in range(len(widths))]
    bounds = [
        [max(floor[i], _HEAD + 1) if constant[i] and word[i] else widths[i]
         for i in range(len(widths))],
        [max(floor[i], _HEAD + 1, _distinct_width(cells[i])) if word[i] else widths[i]
         for i in range(len(widths))],
        [floor[i] if text[i] else widths[i] for i in range(len(widths))],
        floor,
    ]
    def too_wide() -> bool:
        return sum(widths) + 2 * (len(widths) - 1) > term

    for bound in bounds:
        while too_wide():
            i = max(range(len(widths)), key=lambda k: widths[k] - bound[k])
            if widths[i] <= bound[i]:
                break
            widths[i] -= 1
        if not too_wide():
            break
    return widths


#: the head a cut that keeps a value's end leaves at least (``3f2a9c4e…###2``)
_HEAD = 8


def _tail_kept(values: set[str]) -> int:
    """How many trailing characters tell apart values that share a long beginning (a task and
    its retries ``ID###n``): the longest part after their common prefix."""
    if len(values) < 2:
        return 0
    common = os.path.commonprefix(list(values))
    return max(len(v) - len(common) for v in values)


def _distinct_width(col: list[str]) -> int:
    """The narrowest width at which the values of ``col`` stay as distinct as they are, cut
    at their end (a unique prefix) or, when they share a long beginning, in their middle."""
    values = set(col)
    full = max((display_width(v) for v in values), default=0)
    if len(values) < 2:
        return 1
    ordered = sorted(values)
    need = 1
    for a, b in zip(ordered, ordered[1:]):
        common = len(os.path.commonprefix([a, b]))
        need = max(need, common + 2)  # the common part, one character more, the ellipsis
    need = min(need, full)
    tail = _tail_kept(values)
    if tail and _HEAD + 1 + tail < need:
        return _HEAD + 1 + tail
    return need


def _clip_id(s: str, width: int) -> str:
    """``s`` cut to ``width`` at its end, but a retried task's id (ArmoniK names a retry
    ``ID###n``) keeps its ``###n``: the attempt is the part that matters."""
    m = _RETRY_END.search(s) if display_width(s) > width else None
    if m is None or width - len(m.group(0)) < 3:
        return clip(s, width)
    return clip(s[:m.start()], width - len(m.group(0))) + m.group(0)


_RETRY_END = re.compile(r"###\d+$")


def _clip_column(col: list[str], width: int) -> list[str]:
    """The cells of one column cut to ``width``: at their end (a retry keeping its ``###n``),
    unless that makes distinct values equal and a cut in the middle, keeping the end that
    tells them apart, does not."""
    cut = [_clip_id(s, width) for s in col]
    values = set(col)
    if len(set(cut)) == len(values):
        return cut
    tail = _tail_kept(values)
    if not tail or width < _HEAD + 1 + tail:
        return cut
    mid = [s if display_width(s) <= width else clip(s, width - tail) + s[-tail:] for s in col]
    return mid if len(set(mid)) > len(set(cut)) else cut


#: at most this many lines for one value of a key-value list on a terminal (then it is cut)
KV_LINES = 6


def render_kv(pairs: Iterable[tuple[str, Any]]) -> str:
    """``key  value`` lines. On a terminal, a value longer than the line is wrapped under
    itself (at most :data:`KV_LINES` lines, the last cut); elsewhere it stays on one line,
    cut at 1,000 columns; ``--wide`` shows every value whole on one line."""
    pairs = [(safe_text(str(k)), v) for k, v in pairs]
    if not pairs:
        return ""
    w = max(display_width(k) for k, _ in pairs)
    if _wide:
        return "\n".join(f"{_pad(k, w)}  {_cell(v)}" for k, v in pairs)
    term = _terminal_width()
    room = max(20, (term or 1002) - w - 2)
    out = []
    for k, v in pairs:
        text = _cell(v)
        lines = _wrap(text, room) if term is not None else [clip(text, room)]
        out.append(f"{_pad(k, w)}  {lines[0]}".rstrip())
        out += [f"{' ' * w}  {line}".rstrip() for line in lines[1:]]
    return "\n".join(out)


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` columns, broken at spaces (never inside an id
    at its hyphens), at most :data:`KV_LINES` of them, the last cut with an ellipsis."""
    import textwrap

    if display_width(text) <= width:
        return [text]
    lines = textwrap.wrap(text, width, break_on_hyphens=False) or [""]
    if len(lines) > KV_LINES:
        lines = lines[:KV_LINES - 1] + [clip(" ".join(lines[KV_LINES - 1:]), width)]
    return [clip(line, width) for line in lines]


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
