"""The packed bundle: one file to attach to a bug report (``aksnap pack``), readable by every
command that takes a bundle, and by ``aksnap unpack`` (``docs/sharing.md``).

Format: a zip archive whose members are stored, not compressed (Parquet pages are already
zstd-compressed: deflating them again gains ~1% for seconds of CPU), ``manifest.json`` first,
then the four tables, each member a regular file with a fixed date (packing the same bundle
twice gives the same bytes, hence the same cache entry). Zip rather than tar: every operating
system opens it, and its central directory lets a reader check every member's name, type and
size before reading a byte of data.

Reading one (the checks a stranger's file goes through, the cache it is extracted into) is
:mod:`aksnap.packed`; :func:`open_packed` and :func:`unpack` are importable from here too.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Optional

from aksnap.bundle import MANIFEST, TABLES, BundleError, OpenBundle
from aksnap.packed import (  # reading one: importable from here as always
    MEMBERS,
    ZIP_MAGIC,
    cache_root,
    is_packed,
    open_packed,
    unpack,
)

_DATE = (1980, 1, 1, 0, 0, 0)
_COMMENT = b"aksnap packed bundle (docs/sharing.md)"
_CHUNK = 1 << 20


# -- writing ---------------------------------------------------------------------------------

@dataclass
class PackSummary:
    path: Path
    bytes: int
    sha256: str
    seconds: float
    source: str
    rows: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "bytes": self.bytes, "size": human(self.bytes),
                "sha256": self.sha256, "seconds": round(self.seconds, 3), "source": self.source,
                "rows": self.rows}


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str) -> int:
    """``25MB`` (decimal, as trackers state their caps), ``25MiB`` (binary), ``1000000``."""
    m = _SIZE.match(str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise BundleError(f"--max-size {text!r} is not a size; write e.g. 25MB, 10MiB or 1000000")
    n = int(float(m.group(1)) * _UNITS[unit])
    if n < 1:
        raise BundleError(f"--max-size {text!r} must be at least one byte")
    return n


def _expected_size(manifest_bytes: int, sizes: dict[str, int]) -> int:
    """The packed file's size, near enough to refuse before writing (headers: 30 + name local,
    46 + name central, zip64 extras for the big ones, 22 + comment at the end)."""
    total = 22 + len(_COMMENT)
    for name, size in ((MANIFEST, manifest_bytes), *((f"{t}.parquet", s) for t, s in sizes.items())):
        total += size + 30 + 46 + 2 * len(name) + (40 if size >= zipfile.ZIP64_LIMIT else 0)
    return total


def _session_rows(b: OpenBundle) -> list[tuple[str, int, int]]:
    """(session, tasks, results) per session: the manifest's, else counted in the tables."""
    rows = [(str(s.get("session_id")), s.get("tasks") or 0, s.get("results") or 0)
            for s in b.manifest.sessions or [] if isinstance(s, dict)]
    if rows:
        return rows
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counts: dict[str, list[int]] = {}
    for k, t in enumerate(("tasks", "results")):
        col = pq.read_table(b.file(t), columns=["session_id"]).column("session_id")
        for d in pc.value_counts(col).to_pylist():
            counts.setdefault(d["values"], [0, 0])[k] = d["counts"]
    return [(s, c[0], c[1]) for s, c in counts.items()]


def _fit_advice(b: OpenBundle, cap: int, total_bytes: int) -> str:
    """What would fit under ``cap``: a session's share of the tables, from the row counts."""
    manifest = b.manifest
    tasks = max(1, manifest.tables["tasks"].rows)
    results = max(1, manifest.tables["results"].rows)
    per = []
    for sid, nt, nr in _session_rows(b):
        est = (manifest.tables["tasks"].bytes * nt / tasks
               + manifest.tables["results"].bytes * nr / results)
        per.append((est, sid))
    if len(per) > 1:
        fit = sum(1 for e, _ in per if e < cap * 0.95)
        big, sid = max(per)
        return (f"its {len(per)} sessions take about {human(big)} for the largest ({sid}); "
                f"{fit} of them fit alone: export one session per file (aksnap export "
                "--session ID --out DIR) and pack each")
    return ("one session does not fit: attach what the analyses say instead (aksnap analyze "
            "BUNDLE -o json), or share the file by other means")


def pack(bundle: str | os.PathLike, out: str | os.PathLike, *, max_size: int | None = None,
         overwrite: bool = False) -> PackSummary:
    """Write the bundle at ``bundle`` as one packed file ``out`` (atomically: a hidden
    sibling renamed into place). Refuses a damaged bundle (checksums are verified while the
    members are copied) and, with ``max_size``, a file over the cap, saying what would fit."""
    started = time.perf_counter()
    out = Path(os.path.abspath(out))
    if os.path.lexists(out):
        if not overwrite:
            raise BundleError(f"{out} already exists; pass --overwrite to replace it")
        if out.is_symlink() or not out.is_file() or not is_packed(out):
            raise BundleError(f"{out} is not a packed bundle; --overwrite replaces only one, "
                              "so nothing was written; choose another --out")
    if not out.parent.is_dir():
        raise BundleError(f"cannot create {out}: the directory {out.parent} does not exist")
    b = OpenBundle.open(bundle)
    try:
        try:
            if out.resolve().is_relative_to(b.root.resolve()):
                raise BundleError(f"--out {out} is inside the bundle {b.root}; write the packed "
                                  "file elsewhere")
        except OSError:
            pass
        manifest_bytes = b.manifest.to_json().encode()
        sizes = {t: b.manifest.tables[t].bytes for t in TABLES}
        expected = _expected_size(len(manifest_bytes), sizes)
        if max_size is not None and expected > max_size:
            raise BundleError(f"the packed file would be {human(expected)}, over --max-size "
                              f"{human(max_size)}; nothing was written; "
                              + _fit_advice(b, max_size, expected))
        tmp = out.with_name(f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            with open(tmp, "xb") as f:
                _write_zip(f, b, manifest_bytes)
                f.flush()
                os.fsync(f.fileno())
            size = tmp.stat().st_size
            if max_size is not None and size > max_size:
                raise BundleError(f"the packed file is {human(size)}, over --max-size "
                                  f"{human(max_size)}; nothing was written; "
                                  + _fit_advice(b, max_size, size))
            digest = _sha256_path(tmp)
            if overwrite:
                os.replace(tmp, out)
            else:
                try:
                    os.link(tmp, out)  # no-replace: refuses a file that appeared meanwhile
                except FileExistsError:
                    raise BundleError(f"{out} appeared while packing; it was left as it is") from None
                finally:
                    tmp.unlink(missing_ok=True)
        except OSError as e:
            raise BundleError(f"cannot write {out} ({e.strerror or e})") from None
        finally:
            if tmp.exists():
                tmp.unlink(missing_ok=True)
        rows = {t: b.manifest.tables[t].rows for t in TABLES}
    finally:
        b.close()
    return PackSummary(out, size, digest, time.perf_counter() - started, str(bundle), rows)


def _write_zip(f: BinaryIO, b: OpenBundle, manifest_bytes: bytes) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.comment = _COMMENT
        zf.writestr(_info(MANIFEST, len(manifest_bytes)), manifest_bytes)
        for t in TABLES:
            entry = b.manifest.tables[t]
            h = hashlib.sha256()
            with open(b.file(t), "rb") as src, \
                    zf.open(_info(entry.file, entry.bytes), "w",
                            force_zip64=entry.bytes >= zipfile.ZIP64_LIMIT) as dst:
                while block := src.read(_CHUNK):
                    h.update(block)
                    dst.write(block)
            if h.hexdigest() != entry.sha256:
                raise BundleError(f"{entry.file} in {b.root} fails its checksum; pack refuses a "
                                  "damaged bundle (`aksnap check` says what is wrong)")


def _info(name: str, size: int) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, date_time=_DATE)
    zi.compress_type = zipfile.ZIP_STORED
    zi.create_system = 3  # unix: external_attr holds the mode
    zi.external_attr = (stat.S_IFREG | 0o644) << 16
    zi.file_size = size
    return zi


def _sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


# -- the commands ----------------------------------------------------------------------------

def register(app) -> None:
    """``aksnap pack`` and ``aksnap unpack`` (registered by aksnap.cli)."""
    import typer

    from aksnap import paths
    from aksnap.output import output_option

    formats = ("table", "json", "yaml")

    def _print(d: dict[str, Any], fmt: str, pairs: list[tuple[str, Any]]) -> None:
        from aksnap.output import render_kv, to_json, to_yaml

        typer.echo(to_json(d) if fmt == "json" else to_yaml(d) if fmt == "yaml" else render_kv(pairs))

    def pack_command(
        bundle: Path = typer.Argument(..., help="Bundle directory (or a redacted one).",
                                      show_default=False, metavar="BUNDLE",
                                      callback=paths.bundle_in),
        out: Path = typer.Option(..., "--out", help="The file to write (suffix .aksnap; "
                                 "refused if it exists, unless --overwrite).",
                                 show_default=False, metavar="FILE", callback=paths.file_out),
        max_size: Optional[str] = typer.Option(None, "--max-size", help="Refuse to write a "
                                               "file over this size (25MB, 10MiB) and say what "
                                               "would fit.", show_default=False, metavar="SIZE"),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing packed "
                                       "file at --out."),
        output: Optional[str] = output_option(formats),
    ) -> None:
        """Write a bundle as one file to attach to a bug report, and print its size.

        A zip of the manifest and the Parquet files as they are; every command that takes a
        bundle also takes the file. Redact first when it leaves your team (aksnap redact).

        Example: aksnap pack ./run-42-redacted --out run-42.aksnap --max-size 25MB
        """
        from aksnap.errors import Interrupted
        from aksnap.output import resolve_format

        try:
            fmt = resolve_format(output, formats)
            s = pack(bundle, out, max_size=parse_size(max_size) if max_size else None,
                     overwrite=overwrite)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; nothing was written to {out}") from None
        d = s.as_dict()
        _print(d, fmt, [("file", d["path"]), ("size", f"{d['size']} ({d['bytes']} bytes)"),
                        ("sha256", d["sha256"]), ("from", d["source"]),
                        ("rows", " ".join(f"{k}={v}" for k, v in d["rows"].items())),
                        ("seconds", d["seconds"])])

    def unpack_command(
        file: Path = typer.Argument(..., help="A packed bundle (written by aksnap pack).",
                                    show_default=False, metavar="FILE", callback=paths.packed_in),
        out: Path = typer.Option(..., "--out", help="Bundle directory to create (refused if "
                                 "it exists, unless --overwrite).", show_default=False,
                                 metavar="DIR", callback=paths.dir_out),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle "
                                       "at --out (only a bundle; atomically)."),
        output: Optional[str] = output_option(formats),
    ) -> None:
        """Extract a packed bundle into a bundle directory, after every safety check.

        Rarely needed: every command reads the packed file directly. Names that climb out
        (..), absolute paths, links, devices, duplicates, bombs, missing or extra members and
        wrong checksums are refused and nothing is written.

        Example: aksnap unpack run-42.aksnap --out ./run-42
        """
        from aksnap.errors import Interrupted
        from aksnap.output import resolve_format

        try:
            fmt = resolve_format(output, formats)
            started = time.perf_counter()
            path = unpack(file, out, overwrite=overwrite)
            from aksnap.bundle import read_manifest

            m = read_manifest(path)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; nothing was written to {out}") from None
        d = {"path": str(path), "source": str(file), "rows": {t: e.rows for t, e in m.tables.items()},
             "bytes": sum(e.bytes for e in m.tables.values()),
             "redacted": bool(m.redaction), "seconds": round(time.perf_counter() - started, 3)}
        _print(d, fmt, [("bundle", d["path"]), ("from", d["source"]),
                        ("rows", " ".join(f"{k}={v}" for k, v in d["rows"].items())),
                        ("redacted", "yes" if d["redacted"] else "no"), ("seconds", d["seconds"])])

    app.command("pack")(pack_command)
    app.command("unpack")(unpack_command)
