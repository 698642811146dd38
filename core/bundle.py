"""Reading a bundle: the bundle format (:mod:`aksnap.bundle_format`, whose names are importable
from here too) as found on disk, opened, checked and verified; shared by the exporter and the
analyzer.

A bundle is a directory::

    manifest.json        written last; its presence is what makes the directory a bundle
    sessions.parquet
    tasks.parquet
    results.parquet
    partitions.parquet

Every Parquet file carries ``aksnap.format_version`` (and ``aksnap.table``) in its key-value
metadata. ``docs/bundle-format.md`` documents every column. The reader refuses a bundle whose
format version differs from :data:`FORMAT_VERSION`, naming both versions; it never migrates
silently.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aksnap import packed, parquet_verify
from aksnap.bundle_format import (  # the format's names, importable from here as always
    BundleError,
    CATALOGUE,
    DICTIONARY_COLUMNS,
    GUID_COLUMNS,
    GUID_ENCODING,
    DUR,
    FORMAT_NAME,
    FORMAT_VERSION,
    ID_COLUMN,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    META_TABLE_KEY,
    META_VERSION_KEY,
    Manifest,
    NEVER_NULL,
    PARTITIONS_SCHEMA,
    PHASE_NAMES,
    REQUIRED,
    RESULTS_SCHEMA,
    RESULT_FINAL_STATUSES,
    RESULT_LOST_STATUSES,
    RESULT_OPEN_STATUSES,
    RESULT_STATUSES,
    RESULT_SUCCESS_STATUSES,
    RESULT_TIMESTAMPS,
    SCHEMAS,
    SESSIONS_SCHEMA,
    SESSION_STATUSES,
    STATUS_DOMAIN,
    STATUS_SETS,
    STR_LIST,
    STR_MAP,
    TABLES,
    TASKS_SCHEMA,
    TASK_CANCELLED_STATUSES,
    TASK_FAILED_STATUSES,
    TASK_FINAL_STATUSES,
    TASK_IN_PROGRESS_STATUSES,
    TASK_LOST_STATUSES,
    TASK_OPEN_STATUSES,
    TASK_OPTIONS_STRUCT,
    TASK_PHASES,
    TASK_RETRIED_STATUSES,
    TASK_STATUSES,
    TASK_STATUS_ENTERED,
    TASK_SUCCESS_STATUSES,
    TASK_TIMESTAMPS,
    TASK_WAITING_STATUSES,
    TEMP_DIR,
    TIMESTAMP_COLUMNS,
    TS,
    TableEntry,
    parquet_writer_options,
    parse_manifest,
    schema_with_metadata,
    sha256_fd,
    sha256_file,
    status_sets_table,
    utc_now_iso,
)


# -- reading ---------------------------------------------------------------------------------

def _open_plain(path: Path, what: str, root: Path) -> int:
    """An fd on a plain file inside the bundle; a symlink, a directory, a device is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise BundleError(f"{root} is not a complete bundle: {what} is missing") from None
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():
            raise BundleError(f"{what} in {root} is a symbolic link; a bundle's files are plain "
                              "files inside it, so it is refused") from None
        raise BundleError(f"cannot read {what} in {root} ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleError(f"{what} in {root} is not a plain file; a bundle's files are plain "
                          "files inside it, so it is refused")
    return fd


def _check_root(root: Path) -> None:
    if not root.exists():
        raise BundleError(f"no bundle at {root}: the path does not exist")
    if not root.is_dir():
        raise BundleError(f"{root} is not a bundle directory (a bundle is a folder with {MANIFEST})")
    if TEMP_DIR.match(root.name):
        raise BundleError(f"{root} is the working directory of an unfinished (or replaced) "
                          "export, not a bundle; open the bundle it was meant to become")


def resolve_bundle(path: str | os.PathLike) -> Path:
    """The directory to read for ``path``: itself, or, for a packed file (``aksnap pack``),
    its members extracted once into the cache after every safety check (:mod:`aksnap.packed`)."""
    root = Path(path)
    if root.is_file() and packed.is_packed(root):
        return packed.open_packed(root)
    return root


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check a bundle's manifest: present, a plain file, ours, of our format version,
    every required field well typed."""
    root = resolve_bundle(path)
    _check_root(root)
    fd = _open_plain(root / MANIFEST, MANIFEST, root)
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{root / MANIFEST} is larger than {MAX_MANIFEST_BYTES >> 20} MiB; "
                          "it is not a manifest aksnap wrote")
    return parse_manifest(data, str(root / MANIFEST))


def _fd_path(fd: int, fallback: Path) -> str:
    """A path that reopens exactly this fd's file (Linux), so a reader keeps reading the bundle
    it opened even if a new export replaces the directory meanwhile."""
    p = f"/proc/self/fd/{fd}"
    return p if os.path.exists(p) else str(fallback)


def schema_problem(table: str, schema: pa.Schema) -> str | None:
    """Why a file's schema is not the format's schema of ``table``, or None."""
    meta = schema.metadata or {}
    v = meta.get(META_VERSION_KEY)
    if v is None or v.decode(errors="replace") != str(FORMAT_VERSION):
        return (f"has format version {v.decode(errors='replace') if v else 'none'} in its "
                f"metadata, expected {FORMAT_VERSION}")
    t = meta.get(META_TABLE_KEY, b"").decode(errors="replace")
    if t != table:
        return f"holds the {t or 'unnamed'} table, not the {table} table"
    want = SCHEMAS[table]
    missing = [f.name for f in want if f.name not in schema.names]
    if missing:
        return f"has no column {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
    extra = [n for n in schema.names if n not in want.names]
    if extra:
        return f"has unknown column {', '.join(extra[:3])}"
    for f in want:
        got = schema.field(f.name).type
        if got != f.type and not (pa.types.is_dictionary(got) and got.value_type == f.type):
            return f"has column {f.name} of type {got}, expected {f.type}"
    return None


class OpenBundle:
    """A bundle opened for reading: the manifest read once, every table file held open.

    Readers go through :meth:`file` (a path that reopens the held file), so a bundle replaced
    by ``export --overwrite`` while it is being read keeps answering about the bundle that was
    opened. Opening checks everything that is cheap (paths, plain files, sizes, each file's
    schema, version and row count against the manifest); :meth:`checksum_problems` hashes the
    files, :meth:`content_problems` decodes every page.
    """

    def __init__(self, root: Path, manifest: Manifest, fds: dict[str, int]):
        self.root, self.manifest, self._fds = root, manifest, fds

    @classmethod
    def open(cls, path: str | os.PathLike, statistics: bool = True) -> "OpenBundle":
        """``statistics=False`` leaves the dictionary statistics to :meth:`statistics_problems`,
        for a caller that runs it before any answer reading the tables (the analyzer: an
        answer that reads no table need not wait for it)."""
        root = resolve_bundle(path)
        manifest = read_manifest(root)
        fds: dict[str, int] = {}
        try:
            for table in TABLES:
                fds[table] = _open_plain(root / manifest.tables[table].file,
                                         manifest.tables[table].file, root)
            b = cls(root, manifest, fds)
            problems = b.structure_problems(statistics)
        except BaseException:
            for fd in fds.values():
                os.close(fd)
            raise
        if problems:
            b.close()
            raise BundleError(f"{root} cannot be read: {problems[0]}"
                              + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                              + "; `aksnap check` lists every problem")
        return b

    def file(self, table: str) -> str:
        return _fd_path(self._fds[table], self.root / self.manifest.tables[table].file)

    def structure_problems(self, statistics: bool = True) -> list[str]:
        """Cheap checks, from the file system, the Parquet footers and the dictionary pages
        only: sizes, schemas, row counts, and (``statistics``) the statistics of
        dictionary-encoded columns (statuses, session ids...) against their dictionaries.
        Tables whose structure is wrong land in :attr:`unreadable`."""
        problems = []
        self.unreadable: set[str] = set()
        for table in TABLES:
            entry = self.manifest.tables[table]
            size = os.fstat(self._fds[table]).st_size
            if size != entry.bytes:
                problems.append(f"{entry.file} is {size} bytes but the manifest says "
                                f"{entry.bytes}: it changed after the export")
                self.unreadable.add(table)
                continue
            try:
                pf = pq.ParquetFile(self.file(table))
                schema, rows = pf.schema_arrow, pf.metadata.num_rows
            except (pa.ArrowException, OSError, ValueError) as e:  # ValueError: names not UTF-8
                problems.append(f"{entry.file} is not readable Parquet ({_first_line(e)}): "
                                "it is truncated or corrupt")
                self.unreadable.add(table)
                continue
            why = schema_problem(table, schema)
            if why:
                problems.append(f"{entry.file} {why}")
                self.unreadable.add(table)
            elif rows != entry.rows:
                problems.append(f"{entry.file} holds {rows} rows but the manifest says "
                                f"{entry.rows}")
                self.unreadable.add(table)
            elif statistics:
                # DuckDB skips row groups by these statistics: a wrong one is a wrong answer
                problems += parquet_verify.dictionary_statistics_problems(self._fds[table],
                                                                          entry.file)
        return problems

    def statistics_problems(self) -> list[str]:
        """The dictionary statistics check :meth:`structure_problems` makes with
        ``statistics=True``, alone (the tables it found readable)."""
        problems = []
        for table in TABLES:
            if table not in getattr(self, "unreadable", set()):
                problems += parquet_verify.dictionary_statistics_problems(
                    self._fds[table], self.manifest.tables[table].file)
        return problems

    def checksum_problems(self) -> list[str]:
        problems = []
        for table in TABLES:
            entry = self.manifest.tables[table]
            digest = sha256_fd(self._fds[table])
            if digest != entry.sha256:
                problems.append(f"{entry.file} fails its checksum (manifest {entry.sha256[:12]}..., "
                                f"file {digest[:12]}...): it changed after the export")
        return problems

    def content_problems(self, tables: tuple[str, ...] = TABLES) -> list[str]:
        """Every byte of every table file accounted for (:mod:`aksnap.parquet_verify`: the
        layout, the footer and each page header parsed and checked field by field against the
        writer's model and the decoded values, each page's CRC), and the columns the analyzer
        interprets: nulls where the format forbids them, statuses outside the vocabulary.
        Reads every byte: for ``aksnap check``."""
        problems = []
        for table in tables:
            entry = self.manifest.tables[table]
            model = parquet_verify.Model(schema_with_metadata(table), parquet_writer_options(table),
                                         tuple(DICTIONARY_COLUMNS[table]))
            problems += parquet_verify.verify_file(
                self._fds[table], self.file(table), model, entry.file,
                lambda i, rg: column_problems(table, rg, entry.file, row_group=i))
        return problems

    def identity(self) -> list[tuple[int, int, int, int]]:
        """(device, inode, size, mtime_ns) of every table file: who the files are, for caches."""
        out = []
        for table in TABLES:
            st = os.fstat(self._fds[table])
            out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        return out

    def file_identity(self) -> list[tuple[int, int, int, int, int]]:
        """(device, inode, size, mtime_ns, ctime_ns) of every table file, held open (in
        ``TABLES`` order): what the analyzer's verification record compares (the ctime moves
        at any write or ``touch``, and no user can set it back)."""
        out = []
        for table in TABLES:
            st = os.fstat(self._fds[table])
            out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return out

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = {}

    def __del__(self) -> None:  # pragma: no cover - belt and braces for forgotten closes
        if getattr(self, "_fds", None):
            self.close()


def column_problems(table: str, data: pa.Table, what: str, row_group: int | None = None) -> list[str]:
    """Nulls where the format forbids them and unknown statuses, among ``data``'s columns."""
    problems = []
    where = f"{what}{f' (row group {row_group})' if row_group is not None else ''}"
    for c in NEVER_NULL.get(table, ()):
        if c in data.column_names and data.column(c).null_count:
            problems.append(f"{where} has {data.column(c).null_count} rows whose {c} is null; "
                            "the format never leaves it null, so the file was edited or not "
                            "written by aksnap")
    domain = STATUS_DOMAIN.get(table)
    if domain is not None and "status" in data.column_names:
        col = data.column("status")
        values = pc.unique(col.cast(pa.string()) if not pa.types.is_dictionary(col.type)
                           else pa.chunked_array([c.dictionary for c in col.chunks], pa.string())
                           if col.num_chunks else pa.array([], pa.string()))
        # compared as bytes: a corrupt page may hold bytes that are not UTF-8
        known = {s.encode() for s in domain}
        unknown = [v.decode("utf-8", "backslashreplace") for v in values.view(pa.binary()).to_pylist()
                   if v is not None and v not in known]
        if unknown:
            problems.append(f"{where} has status {unknown[0]!r}, which is not an ArmoniK "
                            f"{table[:-1]} status ({', '.join(domain)})")
    return problems


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else type(e).__name__


def verify_bundle(path: str | os.PathLike, thorough: bool = False,
                  witness: Callable[["OpenBundle"], Callable[[], None]] | None = None) -> list[str]:
    """Every problem of the bundle at ``path``, as sentences (empty when it is intact):
    manifest, files, sizes, schemas, row counts, checksums; with ``thorough``, every byte of
    every table file (``docs/bundle-format.md``, "What `aksnap check` covers"). Never raises
    for a damaged bundle. ``witness``: called with the files held open just before they are
    hashed; what it returns is called once every check passed on those very files (the
    analyzer's verification record: ``aksnap check`` leaves the bundle verified)."""
    try:
        root = resolve_bundle(path)
        manifest = read_manifest(root)
        fds = {}
        try:
            for table in TABLES:
                fds[table] = _open_plain(root / manifest.tables[table].file,
                                         manifest.tables[table].file, root)
        except BundleError:
            for fd in fds.values():
                os.close(fd)
            raise
    except BundleError as e:
        return [str(e)]
    b = OpenBundle(root, manifest, fds)
    try:
        # thorough: the statistics are checked against the values, not only the dictionaries
        problems = b.structure_problems(statistics=not thorough)
        passed = witness(b) if witness is not None else None
        problems += b.checksum_problems()
        if thorough:  # every table that reads as the format's, whatever its checksum says
            problems += b.content_problems(tuple(t for t in TABLES if t not in b.unreadable))
        if not problems and passed is not None:
            passed()
        return problems
    finally:
        b.close()


def __getattr__(name: str):
    # The writer lives in its own module; these names stay importable from here.
    if name in ("BundleWriter", "write_bundle"):
        from aksnap import bundle_writer

        return getattr(bundle_writer, name)
    raise AttributeError(name)
