"""Writing a bundle: atomically, never over anything that is not a bundle, never losing one.

The guarantees (``docs/reliability.md`` states them for users):

- Tables stream into a hidden sibling directory ``.<name>.partial-<host>-<pid>-<random>``;
  the manifest is written last, then the directory is moved to ``<name>`` in one atomic step.
  A reader never sees a half-written bundle at ``<name>``: it sees nothing, the old bundle or
  the new one.
- Without ``overwrite`` the move is a no-replace rename (``renameat2(RENAME_NOREPLACE)`` on
  Linux; elsewhere a plain directory rename, which refuses a non-empty target): of two exports
  racing to the same ``--out``, the loser gets a sentence and its directory is removed.
- With ``overwrite`` the new bundle is *exchanged* with the old one
  (``renameat2(RENAME_EXCHANGE)``): at every instant ``<name>`` is a complete bundle, the old
  or the new, so a crash (even ``kill -9``) at any point leaves one of them. Only a directory
  that is an aksnap bundle (our manifest, bundle files only) is ever replaced, and never the
  working directory or one that holds it. Without ``renameat2`` (not Linux, or a file system
  that lacks it), the old bundle is moved aside first and put back by the next export if a
  crash came in between.
- SIGINT and SIGTERM arriving during the final step are held until it is done, so the
  interruption message can say truthfully which bundle is at ``<name>``.
- Leftover hidden directories of exports that died (their process is gone) are removed by the
  next export to the same ``--out``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from aksnap.bundle_format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    SCHEMAS,
    TABLES,
    BundleError,
    Manifest,
    TableEntry,
    parquet_writer_options,
    parse_manifest,
    schema_with_metadata,
    sha256_file,
    utc_now_iso,
)

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
#: :func:`rename2` flags (Linux ``renameat2``): refuse an existing target; swap the two paths.
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _renameat2() -> Any:
    try:
        f = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    f.restype = ctypes.c_int
    return f


_renameat2_fn = _renameat2()


def rename2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)`` (:data:`RENAME_NOREPLACE`: never over an existing
    ``dst``; :data:`RENAME_EXCHANGE`: swap ``src`` and ``dst`` in one step). False when the
    system or the file system lacks it (the caller falls back); another failure is the
    ``OSError``. Used by the writer, and by the packed-file reader to install an extraction."""
    if _renameat2_fn is None:
        return False
    if _renameat2_fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def fsync_dir(path: Path) -> None:
    """fsync a directory (its entries), ignoring file systems that refuse it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def os_error_sentence(e: OSError, path: Path, doing: str) -> str:
    """An OSError while writing a bundle, as a sentence a user can act on."""
    advice = {
        errno.ENOSPC: "the disk is full; free space or choose another --out",
        errno.EDQUOT: "the disk quota is exceeded; free space or choose another --out",
        errno.EROFS: "the file system is read-only; choose another --out",
        errno.EACCES: "permission denied; choose a directory you can write to",
        errno.EPERM: "permission denied; choose a directory you can write to",
        errno.ENAMETOOLONG: "the name is too long; choose a shorter --out",
    }
    code = e.errno
    if code is None:  # Arrow's IO errors carry the C library's words, not an errno
        text = str(e)
        code = next((c for c in advice if os.strerror(c) in text), None)
    advice = advice.get(code, f"{e.strerror or e}")
    return f"cannot {doing} {path}: {advice}"


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM for the duration (main thread only); re-deliver afterwards as
    KeyboardInterrupt so the caller's clean-up and message run after the step is complete."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    caught: list[int] = []
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, lambda s, f: caught.append(s))
        except (ValueError, OSError):
            pass
    try:
        yield caught
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
    if caught:
        raise KeyboardInterrupt


def _manifest_of(directory: Path) -> Manifest | None:
    try:
        data = (directory / MANIFEST).read_bytes()
        return parse_manifest(data, str(directory / MANIFEST))
    except (OSError, BundleError):
        return None


_MEMBERS = {MANIFEST, *(f"{t}.parquet" for t in TABLES)}


def replaceable_problem(out: Path) -> str | None:
    """Why ``--overwrite`` must not replace ``out`` (None: it is a bundle and may go)."""
    if out.is_symlink():
        return f"{out} is a symbolic link; give the bundle's own path to replace it"
    if not out.is_dir():
        return f"{out} exists and is not a directory; choose another --out"
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        cwd = None
    real = out.resolve()
    if cwd is not None and (cwd == real or real in cwd.parents):
        return (f"{out} is the working directory or holds it; --overwrite never replaces "
                "that; choose a bundle directory inside it")
    try:
        entries = sorted(os.listdir(out))
    except OSError as e:
        return f"{out} cannot be listed ({e.strerror}); choose another --out"
    try:
        text = (out / MANIFEST).read_bytes()[:1 << 16] if (out / MANIFEST).is_file() else b""
    except OSError:
        text = b""
    if MANIFEST not in entries or FORMAT_NAME.encode() not in text:
        return (f"{out} is not an aksnap bundle (it has no {MANIFEST} of ours); --overwrite "
                "replaces only a bundle, so nothing was written; choose another --out")
    others = [e for e in entries if e not in _MEMBERS]
    if others:
        return (f"{out} holds files that are not part of a bundle ({', '.join(others[:3])}"
                f"{' ...' if len(others) > 3 else ''}); move them or choose another --out")
    return None


def _missing_parent_sentence(out: Path) -> str:
    p = out.parent
    while not p.exists() and p != p.parent:
        p = p.parent
    if p.exists() and not p.is_dir():
        return f"cannot create {out}: {p} is a file, not a directory"
    return f"cannot create {out}: the parent directory {out.parent} does not exist"


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<host>[0-9a-f]+)-(?P<pid>\d+)-[0-9a-z]+$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` (of this machine) still runs: the owner of a leftover working
    directory named after it (an export killed with ``kill -9`` leaves one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_leftovers(out: Path) -> list[str]:
    """Tidy the hidden siblings that dead exports to ``out`` left (this host only): put back an
    old bundle a crash left aside (fallback path) when ``out`` is gone, remove the rest.
    Returns what was done, as sentences."""
    said = []
    try:
        names = os.listdir(out.parent)
    except OSError:
        return said
    for n in sorted(names):
        m = _TEMP.match(n)
        if not m or m["name"] != out.name or m["host"] != _HOST or pid_alive(int(m["pid"])):
            continue
        p = out.parent / n
        if m["kind"] == "old" and not os.path.lexists(out) and _manifest_of(p) is not None:
            try:
                os.rename(p, out)
                said.append(f"restored the bundle at {out} that an interrupted --overwrite "
                            "had moved aside")
                continue
            except OSError:
                pass
        shutil.rmtree(p, ignore_errors=True)
    return said


class BundleWriter:
    """Writes a bundle atomically (see the module docstring for the guarantees).

    ``state`` tells a caller what is at ``out`` after an interruption: ``"writing"`` (nothing
    of ours there: the old bundle, if any, untouched), ``"committed"`` (the new bundle is in
    place).
    """

    def __init__(self, out: str | os.PathLike, overwrite: bool = False,
                 row_group_size: int = 128 * 1024, compression: str | None = None):
        self.out = Path(os.path.abspath(out))
        self.notes = recover_leftovers(self.out) if self.out.parent.is_dir() else []
        exists = os.path.lexists(self.out)
        if exists and not overwrite:
            raise BundleError(f"{self.out} already exists; pass --overwrite to replace it")
        if exists:
            why = replaceable_problem(self.out)
            if why:
                raise BundleError(why)
        if not self.out.parent.is_dir():
            raise BundleError(_missing_parent_sentence(self.out))
        self.overwrite = overwrite
        self.replaced = False
        self.state = "writing"
        self.tmp = self.out.with_name(
            f".{self.out.name}.partial-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.mkdir(self.tmp, 0o777)  # the umask decides who may read the bundle
        except OSError as e:
            raise BundleError(os_error_sentence(e, self.out, "write the bundle")) from None
        self.row_group_size = row_group_size
        self.compression = compression
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._rows: dict[str, int] = {t: 0 for t in TABLES}
        self._done = False

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._done:
            self.abort()

    def _writer(self, table: str) -> pq.ParquetWriter:
        w = self._writers.get(table)
        if w is None:
            w = pq.ParquetWriter(self.tmp / f"{table}.parquet", schema_with_metadata(table),
                                 **{**parquet_writer_options(table),
                                    **({"compression": self.compression}
                                       if self.compression else {})})
            self._writers[table] = w
        return w

    def write(self, table: str, data: pa.Table | pa.RecordBatch) -> None:
        """Append rows to ``table``; ``data`` must carry exactly the table's columns."""
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        schema = SCHEMAS[table]
        if data.schema.names != schema.names:
            data = data.select(schema.names)
        data = data.cast(schema)
        try:
            if data.num_rows == 0:
                self._writer(table)
                return
            self._writer(table).write_table(data, row_group_size=self.row_group_size)
        except OSError as e:
            raise BundleError(os_error_sentence(e, self.out, "write the bundle")) from None
        self._rows[table] += data.num_rows

    @property
    def rows(self) -> dict[str, int]:
        return dict(self._rows)

    def _close_tables(self) -> dict[str, TableEntry]:
        for table in TABLES:
            self._writer(table)  # every table exists, even when empty
        for w in self._writers.values():
            w.close()
        entries = {}
        for table in TABLES:
            p = self.tmp / f"{table}.parquet"
            entries[table] = TableEntry(p.name, self._rows[table], p.stat().st_size,
                                        sha256_file(p))
        return entries

    def commit(self, manifest: Manifest | dict[str, Any] | None = None) -> Path:
        """Close every table, write the manifest last, and move the bundle into place."""
        try:
            entries = self._close_tables()
            if isinstance(manifest, Manifest):
                manifest.tables = entries
            else:
                manifest = Manifest.from_dict({"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                                               **(manifest or {}),
                                               "tables": {t: e.as_dict() for t, e in entries.items()}})
            manifest.written_at = utc_now_iso()
            with open(self.tmp / MANIFEST, "w") as f:
                f.write(manifest.to_json())
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(self.tmp)
        except OSError as e:
            raise BundleError(os_error_sentence(e, self.out, "write the bundle")) from None
        with _signals_held():
            self._move_into_place()
            self.state = "committed"
            self._done = True
            fsync_dir(self.out.parent)
            if self.replaced:
                remove_bundle_dir(self.tmp)  # now holds the old bundle
        return self.out

    def _move_into_place(self) -> None:
        try:
            if not self.overwrite or not os.path.lexists(self.out):
                self._rename_noreplace()
            else:
                self._exchange()
        except OSError as e:
            raise BundleError(os_error_sentence(e, self.out, "move the bundle into place at")) from None

    def _rename_noreplace(self) -> None:
        try:
            if not rename2(self.tmp, self.out, RENAME_NOREPLACE):
                if os.path.lexists(self.out):
                    raise FileExistsError(errno.EEXIST, "exists")
                os.rename(self.tmp, self.out)  # a directory rename refuses a non-empty target
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise BundleError(f"{self.out} appeared while this export ran (another export "
                                  "to the same --out?); it was left as it is and this export's "
                                  "bundle was discarded; export again with another --out, or "
                                  "--overwrite to replace it") from None
            raise

    def _exchange(self) -> None:
        why = replaceable_problem(self.out)
        if why:
            raise BundleError(f"{why} (it changed while this export ran)")
        try:
            exchanged = rename2(self.tmp, self.out, RENAME_EXCHANGE)
        except FileNotFoundError:  # the old bundle went away meanwhile
            self._rename_noreplace()
            return
        if exchanged:
            # What came back must be the bundle we agreed to replace; if something else took
            # its place in the meantime, swap back and refuse (never delete a user's files).
            if replaceable_problem(self.tmp) is not None:
                rename2(self.tmp, self.out, RENAME_EXCHANGE)
                raise BundleError(f"{self.out} was changed into something that is not a "
                                  "bundle while this export ran; it was left as it is")
            self.replaced = True
            return
        # No renameat2: old aside, new in; a crash in between is repaired by the next export
        # (recover_leftovers puts the old one back).
        aside = self.out.with_name(self.tmp.name.replace(".partial-", ".old-", 1))
        os.rename(self.out, aside)
        try:
            os.rename(self.tmp, self.out)
        except OSError:
            os.rename(aside, self.out)
            raise
        self.tmp = aside
        self.replaced = True

    def abort(self) -> None:
        for w in self._writers.values():
            try:
                w.close()
            except Exception:  # noqa: BLE001 - closing a broken writer on the way out
                pass
        self._writers.clear()
        if self.state != "committed":
            shutil.rmtree(self.tmp, ignore_errors=True)

    def interruption_sentence(self) -> str:
        if self.state == "committed":
            return (f"the export was interrupted after it had finished: the new bundle is "
                    f"complete at {self.out}")
        if self.overwrite and os.path.lexists(self.out):
            return f"the export was interrupted; the existing bundle at {self.out} is untouched"
        return f"the export was interrupted; nothing was written to {self.out}"


def remove_bundle_dir(path: Path) -> None:
    """Remove a bundle directory that is no longer in use: manifest first (so it stops being a
    bundle at once), then its files. A reader holding its files open keeps reading them."""
    for name in (MANIFEST, *(f"{t}.parquet" for t in TABLES)):
        try:
            os.unlink(path / name)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


def write_bundle(out: str | os.PathLike, tables: dict[str, pa.Table],
                 manifest_fields: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write whole tables as a bundle in one call (tests, fixtures, golden bundles)."""
    with BundleWriter(out, overwrite=overwrite) as w:
        for name in TABLES:
            w.write(name, tables.get(name, SCHEMAS[name].empty_table()))
        return w.commit(manifest_fields or {})
