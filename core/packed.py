"""Reading a packed bundle (the file ``aksnap pack`` writes, :mod:`aksnap.pack`): every command
that takes a bundle takes one (:func:`aksnap.bundle.resolve_bundle` opens it here), and so
does ``aksnap unpack`` (:func:`unpack`).

A packed file comes from a stranger, so reading it refuses, with one sentence, before
anything is extracted: a file that is not a complete zip (truncated), members named with
``..`` or an absolute path, folders, links, device files, duplicated names, encrypted or
compressed members, a member or a total larger than the archive itself can hold (zip bombs,
overlapping members), a missing or extra member, a member of another size than the manifest
says. Members are then copied (never by their archive names: only the five known names are
ever created, with ``O_EXCL | O_NOFOLLOW``, in a fresh private directory) while their CRC-32
and the manifest's SHA-256 are checked. Nothing is written outside the cache.

Opening (:func:`open_packed`) extracts once into ``$AKSNAP_CACHE_DIR/packed-<sha256 of the
file>/`` (default ``~/.cache/aksnap``): into a temporary directory renamed into place in one
step, so a concurrent reader either finds the complete directory or extracts its own and
discards it when it loses the race. With ``AKSNAP_CACHE_DIR=""`` (cache off) the members go
to a private temporary directory removed when the process exits.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from aksnap.bundle_format import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    TABLES,
    BundleError,
    parse_manifest,
    sha256_fd,
)

ZIP_MAGIC = b"PK\x03\x04"
#: A packed bundle's members, in their order: the manifest first, then the four tables.
MEMBERS = (MANIFEST, *(f"{t}.parquet" for t in TABLES))
_CHUNK = 1 << 20


class _NotRegular(OSError):
    """A path that is not a regular file (a pipe, a socket, a device, a directory)."""


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file: opened without blocking, so a
    named pipe, a socket or a device is refused at once instead of waiting for a writer."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegular(errno.EINVAL, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_packed(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts as a zip archive (what pack writes)."""
    try:
        with _open_regular(path) as f:
            return f.read(4) == ZIP_MAGIC
    except OSError:
        return False


def _eocd_entries(f: BinaryIO, size: int) -> int | None:
    """The member count the end-of-central-directory record announces (None: not found), read
    before zipfile parses a central directory a stranger may have made huge."""
    tail = min(size, 65535 + 22)
    f.seek(size - tail)
    data = f.read(tail)
    i = data.rfind(b"PK\x05\x06")
    if i < 0 or len(data) - i < 22:
        return None
    comment = struct.unpack("<H", data[i + 20:i + 22])[0]
    if i + 22 + comment != len(data):  # cut short, or bytes appended after the archive
        return None
    return struct.unpack("<H", data[i + 10:i + 12])[0]


def _refuse(path: Path, why: str) -> BundleError:
    return BundleError(f"{path} is refused as a packed bundle: {why}; nothing was extracted")


def _check_members(path: Path, zf: zipfile.ZipFile, archive_size: int) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    seen: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for zi in infos:
        name = zi.filename
        shown = repr(name)[:80]
        parts = re.split(r"[\\/]", name)
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise _refuse(path, f"member {shown} has an absolute path")
        if ".." in parts:
            raise _refuse(path, f"member {shown} climbs out of its folder (..)")
        if "\x00" in name or any(ord(c) < 32 for c in name):
            raise _refuse(path, f"member {shown} has control characters in its name")
        mode = zi.external_attr >> 16
        if zi.is_dir() or (mode and stat.S_ISDIR(mode)):
            raise _refuse(path, f"member {shown} is a folder; a packed bundle holds five files")
        if mode and stat.S_ISLNK(mode):
            raise _refuse(path, f"member {shown} is a symbolic link")
        if mode and not stat.S_ISREG(mode):
            raise _refuse(path, f"member {shown} is a device or special file")
        if zi.flag_bits & 0x1:
            raise _refuse(path, f"member {shown} is encrypted")
        if name in seen:
            raise _refuse(path, f"member {shown} appears twice")
        if name not in MEMBERS:
            raise _refuse(path, f"it holds {shown}, which is not part of a bundle (a packed "
                                f"bundle holds {', '.join(MEMBERS)})")
        if zi.compress_type != zipfile.ZIP_STORED:
            ratio = zi.file_size / max(1, zi.compress_size)
            raise _refuse(path, f"member {shown} is compressed (method {zi.compress_type}, "
                                f"{ratio:.0f}x); aksnap pack stores members as they are, so "
                                "this file was not written by it: re-pack the bundle with "
                                "aksnap pack")
        if zi.file_size != zi.compress_size:
            raise _refuse(path, f"member {shown} declares {zi.file_size} bytes but stores "
                                f"{zi.compress_size}")
        total += zi.file_size
        seen[name] = zi
    if total > archive_size:
        raise _refuse(path, f"its members declare {total} bytes in a file of {archive_size}: "
                            "overlapping members or a zip bomb")
    missing = [m for m in MEMBERS if m not in seen]
    if missing:
        raise _refuse(path, f"{missing[0]} is missing (a packed bundle holds {', '.join(MEMBERS)})")
    return seen


def _read_member(zf: zipfile.ZipFile, zi: zipfile.ZipInfo, limit: int) -> bytes:
    with zf.open(zi) as f:
        data = f.read(limit + 1)
    return data


class _Packed:
    """A packed file opened and checked (names, types, sizes, manifest); ready to extract."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.f = _open_regular(path)
        except _NotRegular:
            raise _refuse(path, "it is not a regular file") from None
        except OSError as e:
            raise BundleError(f"cannot read {path} ({e.strerror})") from None
        try:
            st = os.fstat(self.f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise _refuse(path, "it is not a regular file")
            self.size = st.st_size
            n = _eocd_entries(self.f, self.size)
            if n is None:
                raise _refuse(path, "it is not a complete zip archive (truncated?)")
            if n != 0xFFFF and n > len(MEMBERS) * 4:
                raise _refuse(path, f"it announces {n} members; a packed bundle holds {len(MEMBERS)}")
            self.f.seek(0)
            try:
                self.zf = zipfile.ZipFile(self.f)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                    struct.error) as e:
                raise _refuse(path, f"it is not a complete zip archive ({_short(e)})") from None
            self.members = _check_members(path, self.zf, self.size)
            zi = self.members[MANIFEST]
            if zi.file_size > MAX_MANIFEST_BYTES:
                raise _refuse(path, f"its manifest is {zi.file_size} bytes, over "
                                    f"{MAX_MANIFEST_BYTES >> 20} MiB")
            try:
                data = _read_member(self.zf, zi, MAX_MANIFEST_BYTES)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error) as e:
                raise _refuse(path, f"its manifest cannot be read ({_short(e)})") from None
            self.manifest_bytes = data
            self.manifest = parse_manifest(data, f"{path} ({MANIFEST})")
            for t in TABLES:
                entry = self.manifest.tables[t]
                size = self.members[entry.file].file_size
                if size > entry.bytes:
                    raise _refuse(path, f"{entry.file} is {size} bytes, larger than the "
                                        f"manifest says ({entry.bytes})")
                if size < entry.bytes:
                    raise _refuse(path, f"{entry.file} is {size} bytes, smaller than the "
                                        f"manifest says ({entry.bytes})")
        except BaseException:
            self.close()
            raise

    def extract_into(self, directory: Path) -> None:
        """Copy every member into ``directory`` (empty, ours): the five known names only,
        created exclusively, never through a link; CRC-32 and SHA-256 checked on the way.
        A failure to read the packed file is a :class:`BundleError`; a failure to write
        (a full disk) is the ``OSError`` itself, for the caller to say where it wrote."""
        for name in MEMBERS:
            zi = self.members[name]
            expected = None if name == MANIFEST else \
                self.manifest.tables[name.removesuffix(".parquet")].sha256
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
                | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(directory / name, flags, 0o644)
            h = hashlib.sha256()
            written = 0
            try:
                with os.fdopen(fd, "wb") as out, self.zf.open(zi) as src:
                    while True:
                        try:
                            block = src.read(_CHUNK)
                        except OSError as e:
                            raise BundleError(f"cannot read {self.path} ({e.strerror or e})") from None
                        if not block:
                            break
                        written += len(block)
                        if written > zi.file_size:
                            raise _refuse(self.path, f"{name} holds more than its declared "
                                                     f"{zi.file_size} bytes")
                        h.update(block)
                        out.write(block)
                    out.flush()
                    os.fsync(out.fileno())
            except (zipfile.BadZipFile, EOFError, struct.error, ValueError) as e:
                raise _refuse(self.path, f"{name} cannot be read ({_short(e)}): the file is "
                                         "truncated or corrupt") from None
            if written != zi.file_size:
                raise _refuse(self.path, f"{name} ends after {written} of its {zi.file_size} "
                                         "bytes: the file is truncated")
            if expected is not None and h.hexdigest() != expected:
                raise _refuse(self.path, f"{name} fails its checksum (manifest {expected[:12]}..., "
                                         f"file {h.hexdigest()[:12]}...)")

    def is_extracted_in(self, directory: Path) -> bool:
        """Whether ``directory`` holds exactly this file's members, and nobody but this user
        can change them: a real directory (not a link) owned by this user and writable by
        nobody else, holding the five members and nothing more, each a plain file of its own
        (one link), owned by this user, writable by nobody else; the manifest byte for byte
        the packed manifest; every table the size and SHA-256 that manifest says. Reads every
        byte of the tables: a cache entry is trusted for what it holds, not for its name."""
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        try:
            dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | nofollow
                          | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return False
        try:
            if not _private_to_us(os.fstat(dfd), stat.S_ISDIR):
                return False
            if sorted(os.listdir(dfd)) != sorted(MEMBERS):
                return False
            for name in MEMBERS:
                try:
                    fd = os.open(name, os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0)
                                 | getattr(os, "O_CLOEXEC", 0), dir_fd=dfd)
                except OSError:
                    return False
                try:
                    st = os.fstat(fd)
                    if not _private_to_us(st, stat.S_ISREG) or st.st_nlink != 1:
                        return False
                    if name == MANIFEST:
                        if st.st_size != len(self.manifest_bytes) or \
                                os.pread(fd, st.st_size + 1, 0) != self.manifest_bytes:
                            return False
                        continue
                    entry = self.manifest.tables[name.removesuffix(".parquet")]
                    if st.st_size != entry.bytes or sha256_fd(fd) != entry.sha256:
                        return False
                finally:
                    os.close(fd)
            return True
        except OSError:
            return False
        finally:
            os.close(dfd)

    def close(self) -> None:
        zf = getattr(self, "zf", None)
        if zf is not None:
            zf.close()
        self.f.close()


def _short(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return (s[0][:160] if s else type(e).__name__)


def cache_root() -> Path | None:
    """``$AKSNAP_CACHE_DIR``, else the user cache directory; None when caching is off."""
    root = os.environ.get("AKSNAP_CACHE_DIR")
    if root == "":
        return None
    if root is None:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                            "aksnap")
    return Path(root)


def _private_to_us(st: os.stat_result, is_kind) -> bool:
    """A file or directory only this user (or root) can change: of the expected kind, owned
    by this user, writable by neither its group nor others."""
    return bool(is_kind(st.st_mode)) and st.st_uid == os.getuid() \
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _trusted_root(root: Path) -> bool:
    """Whether entries in the cache ``root`` can only be replaced by this user: the directory
    (symbolic links to it are followed: ``~/.cache`` often is one) belongs to this user or
    root, and is writable by nobody else, or is sticky (as /tmp: others cannot rename or
    remove what this user made there)."""
    try:
        st = os.stat(root)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid in (os.getuid(), 0) and (
        not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or bool(st.st_mode & stat.S_ISVTX))


_private_dirs: list[str] = []


def _remove_private_dirs() -> None:
    for d in _private_dirs:
        shutil.rmtree(d, ignore_errors=True)


def _remember_private(d: str) -> None:
    if not _private_dirs:
        atexit.register(_remove_private_dirs)
    _private_dirs.append(d)


def _private_dir() -> Path:
    """A fresh directory of this user's (0700), removed when the process exits."""
    d = tempfile.mkdtemp(prefix="aksnap-packed-")
    _remember_private(d)
    return Path(d)


def _write_failed(path: Path, where: str, e: OSError, env: str) -> BundleError:
    """An extraction that could not write (a full disk, a quota, a read-only file system), as
    one sentence: what failed, where, and how to free or move it."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = f"free space there, or set {env} to a directory with room"
    else:
        advice = f"set {env} to a directory you can write"
    if env == "AKSNAP_CACHE_DIR":
        advice += " (AKSNAP_CACHE_DIR= extracts into a temporary directory instead)"
    return BundleError(f"cannot extract {path} into {where} ({e.strerror or e}); nothing was "
                       f"left there; {advice}")


def _remove_entry(path: Path) -> None:
    """Remove a replaced cache entry (a directory, or whatever took its name)."""
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
    except OSError:
        pass


def open_packed(path: str | os.PathLike) -> Path:
    """The bundle directory holding the packed file's members, extracted once into the cache
    (keyed by the file's SHA-256) after every check of the module docstring.

    A cache entry is used only when it holds exactly this file's members and only this user
    can change it (:meth:`_Packed.is_extracted_in`): anything else at its name (another
    bundle, an edited table, a link, another user's folder) is replaced by a fresh extraction,
    atomically (exchanged in one step, or moved aside then replaced); one that cannot be
    replaced is left alone and the file is extracted into a private directory of this process
    instead. A write that fails (a full disk) is one sentence and leaves nothing behind."""
    path = Path(path)
    root = cache_root()
    packed = _Packed(path)
    try:
        if root is None:
            return _extract_private(packed)
        # the entry's name comes from the very bytes that are checked and extracted
        try:
            digest = sha256_fd(packed.f.fileno())
        except OSError as e:
            raise BundleError(f"cannot read {path} ({e.strerror})") from None
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise _write_failed(path, f"the cache {root}", e, "AKSNAP_CACHE_DIR") from None
        if not _trusted_root(root):
            return _extract_private(packed)  # others could swap an entry once it is checked
        final = root / f"packed-{digest}"
        if packed.is_extracted_in(final):
            return final
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".packed-{digest[:16]}.", dir=root))
        except OSError as e:
            raise _write_failed(path, f"the cache {root}", e, "AKSNAP_CACHE_DIR") from None
        got = None
        try:
            try:
                os.chmod(tmp, 0o755)
                packed.extract_into(tmp)
            except OSError as e:
                raise _write_failed(path, f"the cache {root}", e, "AKSNAP_CACHE_DIR") from None
            got = _install(packed, tmp, final)
            return got
        finally:
            if got != tmp and os.path.lexists(tmp):
                _remove_entry(tmp)
    finally:
        packed.close()


def _extract_private(packed: _Packed) -> Path:
    """Extract into a private temporary directory of this process (cache off, or a cache
    others can write), removed when the process exits."""
    d = None
    try:
        d = _private_dir()
        packed.extract_into(d)
        return d
    except OSError as e:
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)
        where = f"the temporary directory {d or tempfile.gettempdir()}"
        raise _write_failed(packed.path, where, e, "TMPDIR") from None
    except BaseException:
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)
        raise


def _install(packed: _Packed, tmp: Path, final: Path) -> Path:
    """Move the fresh extraction ``tmp`` to ``final``; returns the directory to read."""
    from aksnap.bundle_writer import RENAME_EXCHANGE, RENAME_NOREPLACE, rename2

    for _ in range(3):
        try:
            if not os.path.lexists(final):
                if not rename2(tmp, final, RENAME_NOREPLACE):
                    os.rename(tmp, final)  # refuses a non-empty directory at final
                return final
            if packed.is_extracted_in(final):
                return final  # another process extracted the same file meanwhile
            if rename2(tmp, final, RENAME_EXCHANGE):
                return final  # tmp now holds what was there: removed by the caller
            aside = final.with_name(f".stale-{final.name[7:23]}-{secrets.token_hex(4)}")
            os.rename(final, aside)
            _remove_entry(aside)
        except FileNotFoundError:
            continue  # final vanished between the checks: try again
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                continue
            break  # cannot replace it (another user's, read-only): do not use it
    # what holds the name cannot be replaced: read this copy (removed at exit), leave it be
    _remember_private(str(tmp))
    return tmp


def unpack(path: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Extract the packed file ``path`` into a new bundle directory ``out`` (refused if it
    exists, unless ``overwrite`` and it is a bundle: then exchanged atomically, as
    ``export --overwrite`` does), with the same checks as :func:`open_packed`; atomic (hidden
    sibling renamed)."""
    from aksnap.bundle_writer import (RENAME_EXCHANGE, RENAME_NOREPLACE, remove_bundle_dir,
                                      rename2, replaceable_problem)

    path = Path(path)
    out = Path(os.path.abspath(out))
    if not path.exists():
        raise BundleError(f"no packed bundle at {path}: the path does not exist")
    if path.is_dir():
        raise BundleError(f"{path} is a directory (a bundle already); unpack reads a packed "
                          "file (aksnap pack writes one)")
    if not is_packed(path):
        raise BundleError(f"{path} is not a packed bundle (no zip archive); aksnap pack writes one")
    replace = os.path.lexists(out)
    if replace and not overwrite:
        raise BundleError(f"{out} already exists; choose another --out (or --overwrite to "
                          "replace a bundle)")
    if replace and replaceable_problem(out):
        raise BundleError(replaceable_problem(out))
    if not out.parent.is_dir():
        raise BundleError(f"cannot create {out}: the directory {out.parent} does not exist")
    packed = _Packed(path)
    try:
        tmp = out.with_name(f".{out.name}.unpacking-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.mkdir(tmp, 0o777)
            packed.extract_into(tmp)
            try:
                if replace and os.path.lexists(out):
                    why = replaceable_problem(out)
                    if why:
                        raise BundleError(f"{why} (it changed while unpacking)")
                    if not rename2(tmp, out, RENAME_EXCHANGE):
                        raise BundleError(f"cannot replace {out} atomically on this file "
                                          "system; remove it first, then unpack")
                    if replaceable_problem(tmp) is not None:  # never delete a user's files
                        rename2(tmp, out, RENAME_EXCHANGE)
                        raise BundleError(f"{out} changed into something that is not a "
                                          "bundle while unpacking; it was left as it is")
                    remove_bundle_dir(tmp)  # now the replaced bundle
                elif not rename2(tmp, out, RENAME_NOREPLACE):
                    if os.path.lexists(out):
                        raise FileExistsError(errno.EEXIST, "exists")
                    os.rename(tmp, out)
            except FileExistsError:
                raise BundleError(f"{out} appeared while unpacking; it was left as it is") from None
        except OSError as e:
            raise BundleError(f"cannot write {out} ({e.strerror})") from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        packed.close()
    return out
