"""A bundle opened for analysis: DuckDB views over its Parquet files, and its graph (lazily).

>>> snap = Snapshot.open("run.aksnap")
>>> snap.sql("SELECT status, count(*) AS n FROM tasks GROUP BY ALL").to_pylist()
>>> snap.graph.ancestors_of_result("...")
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from aksnap import queries
from aksnap.analyzer.cache import (
    remember_verified,
    remember_vocabulary_good,
    verification_start,
    verified_before,
    vocabulary_known_good,
)
from aksnap.bundle import (
    REQUIRED,
    RESULT_STATUSES,
    RESULT_TIMESTAMPS,
    SESSION_STATUSES,
    TABLES,
    TASK_STATUSES,
    TASK_TIMESTAMPS,
    BundleError,
    Manifest,
    OpenBundle,
    column_problems,
    status_sets_table,
    verify_bundle,
)
from aksnap.columns import ID_KINDS, id_sources
from aksnap.errors import AksnapError

class _Verification(threading.Thread):
    """The bundle's checksums, in the background; ``problems`` once joined."""

    def __init__(self, bundle: OpenBundle):
        super().__init__(name="aksnap-verify", daemon=True)
        self.bundle = bundle
        self.problems: list[str] = []
        self.start()

    def run(self) -> None:
        try:
            start = verification_start(self.bundle)
            self.problems = self.bundle.checksum_problems()
            if not self.problems:
                remember_verified(self.bundle, start)
        except Exception as e:  # noqa: BLE001 - reported as a sentence by wait_verified
            self.problems = [f"its files could not be verified ({e})"]


class AnalysisError(AksnapError):
    """A request the analyzer cannot answer: unknown id, unknown query, bad SQL or parameter.

    Its message is one sentence a user can act on; the CLI prints it and exits with code 2.
    """


def parse_time(value: Any) -> datetime | None:
    """A manifest's ISO time (``exported_at``, ``written_at``...) as an aware datetime (a
    naive one taken as UTC); None when it is missing or not a time."""
    if value in (None, ""):
        return None
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


_TYPED_PARAM = re.compile(r"try_cast\(\s*\$([A-Za-z_][A-Za-z0-9_]*)(?:::VARCHAR)?\s+AS\s+"
                          r"(INTEGER|BIGINT|INT|DOUBLE|FLOAT|REAL|DECIMAL)\b", re.I)
_DECIMAL_TYPES = ("DOUBLE", "FLOAT", "REAL", "DECIMAL")


def _check_param_types(q, params: Mapping[str, Any]) -> None:
    """A parameter a query casts (``try_cast($name::VARCHAR AS INTEGER)``, read from its SQL)
    must hold a value of that type: a bad one is a sentence, never the query's default."""
    for name, sql_type in _TYPED_PARAM.findall(q.sql):
        v = params.get(name)
        if v is None or v == "":
            continue
        text = str(v).strip()
        try:
            number = float(text) if sql_type.upper() in _DECIMAL_TYPES else int(text)
        except ValueError:
            kind = "a number" if sql_type.upper() in _DECIMAL_TYPES else "a whole number"
            raise AnalysisError(f"query {q.name!r}: --param {name}={v!r} is not {kind}; "
                                f"write e.g. --param {name}=3 (its parameters: {q.params})") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise AnalysisError(f"query {q.name!r}: --param {name}={v!r} is not a finite number")


def _small_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """A few rows of our own as a DuckDB table, from bound lists. Not ``con.register``: DuckDB
    imports pandas when it registers any Python object, 0.3 s of every command's start when
    pandas is installed."""
    cols = table.column_names  # identifiers of our own tables, never user input
    select = ", ".join(f"unnest(${c})::{duckdb_type(table.schema.field(c).type)} AS {c}" for c in cols)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {select}",
                {c: table[c].to_pylist() for c in cols})


def _connection_settings(con: duckdb.DuckDBPyConnection) -> None:
    """What every plain connection (and its twins) sets: each file's footer parsed once, not
    once per view binding it (the edge views of _views.sql read tasks.parquet's several times:
    0.15 s of every open at 10M tasks), and times in UTC."""
    con.execute("SET parquet_metadata_cache = true")
    con.execute("SET TimeZone = 'UTC'")


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type a column of our own small tables is cast to."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    return "VARCHAR"


class Snapshot:
    """One bundle, read-only: ``con`` (DuckDB, one view per table and the edge views),
    :meth:`sql`, :meth:`query`, and :attr:`graph` (rustworkx, built on first use)."""

    def __init__(self, bundle: OpenBundle, con: duckdb.DuckDBPyConnection,
                 integrity_problems: list[str] | None = None):
        self.bundle = bundle
        self.path = bundle.root
        self.manifest: Manifest = bundle.manifest
        self.con = con
        #: problems found when opened with ``collect_problems=True`` (``aksnap check`` reports
        #: them instead of failing)
        self.integrity_problems = integrity_problems or []
        self.verified = True
        self._verification: _Verification | None = None
        #: set when the checksums were not recomputed because a verification record vouches
        #: for these very files (:func:`aksnap.analyzer.cache.verified_before`): what to say
        self.verified_note: str | None = None

    def wait_verified(self) -> None:
        """Wait for the checksum verification started by :meth:`open`; raise BundleError, one
        sentence, if the bundle failed it. Every SQL answer and the graph call this first.
        It runs first the checks :meth:`open` left for the first answer reading the tables
        (:meth:`_deferred_checks`), whether or not the checksums are verified."""
        self._deferred_checks()
        v = self._verification
        if v is None:
            return
        v.join()
        if v.problems:
            p = v.problems
            raise BundleError(f"{self.path} failed its integrity check: {p[0]}"
                              + (f" (and {len(p) - 1} more)" if len(p) > 1 else "")
                              + "; re-export it, or pass --no-verify to read it anyway")
        self._verification = None
        if getattr(self, "_vocabulary_checked", False):
            remember_vocabulary_good(self.manifest)
            self._vocabulary_checked = False
        if getattr(self, "_statistics_checked", False):
            remember_vocabulary_good(self.manifest, "statistics")
            self._statistics_checked = False

    def _deferred_checks(self) -> None:
        """The checks of the tables' content that :meth:`open` leaves for the first answer
        that reads them (a bundle of 10M tasks: seconds): the dictionary statistics against
        their dictionaries (DuckDB skips row groups by them), then, unless a verified open of
        this content passed it before, the statuses and never-null columns. Once; a failure
        raises its BundleError, one sentence, at every call."""
        pending = getattr(self, "_pending_checks", None)
        if not pending:
            return
        if "statistics" in pending:
            problems = self.bundle.statistics_problems()
            if problems:
                raise BundleError(f"{self.path} cannot be read: {problems[0]}"
                                  + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                                  + "; `aksnap check` lists every problem")
            self._statistics_checked = True  # remembered once the checksums prove the content
            pending.discard("statistics")
        if "vocabulary" in pending:
            self._check_vocabulary()
            self._vocabulary_checked = True  # remembered once the checksums prove the content
            pending.discard("vocabulary")

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = True,
             collect_problems: bool = False, threads: int | None = None,
             connect: bool = True) -> "Snapshot":
        """Open a bundle.

        Always checked, before any query: the manifest (ours, our format version, well typed),
        that every table is a plain file inside the bundle, its size, its schema and its row
        count against the manifest, and the statuses and never-null columns the analyzer
        interprets. Checksums unless ``verify=False`` (in a background thread; every answer
        waits for the verdict). With ``collect_problems`` nothing is raised for a damaged
        bundle: every problem, pages included, lands in :attr:`integrity_problems` and
        :attr:`usable` says whether the tables can be queried at all. ``connect=False``
        makes the DuckDB connection on first use (for a caller that sandboxes first).
        """
        root = Path(path)
        if collect_problems:
            def witness(b: OpenBundle):
                # `aksnap check` hashes every byte: once all passed, the record says so, and
                # the next open of these very files, unchanged, need not hash them again
                start = verification_start(b)
                return lambda: remember_verified(b, start)
            problems = verify_bundle(root, thorough=True, witness=witness)
            try:
                bundle = OpenBundle.open(root)
            except BundleError:
                snap = cls._unusable(root, problems)
                return snap
        else:
            problems = []
            # the dictionary statistics are checked before the first answer reading a table
            # (_deferred_checks): `select 1` need not wait for them
            bundle = OpenBundle.open(root, statistics=False)
        snap = cls(bundle, None, problems)
        snap.path = root  # what the user named: a packed file stays the file, not the cache
        snap._threads = threads
        if connect:
            try:
                snap.con = snap._plain_connection()
            except BundleError:
                bundle.close()
                raise
        else:
            snap._lazy_connect = True
        if not collect_problems:
            snap._pending_checks = set() if verify and vocabulary_known_good(
                bundle.manifest, "statistics") else {"statistics"}
            if not (verify and vocabulary_known_good(bundle.manifest)):
                # a content with these checksums passed it before; the verification below
                # proves the files are that content before any answer is shown
                snap._pending_checks.add("vocabulary")
        snap.verified = bool(verify or collect_problems)
        if verify and not collect_problems:
            when = verified_before(bundle)
            if when is not None:
                # these very files (device, inode, size, mtime, ctime) were hashed and matched
                # these checksums at ``when``, and nothing has written them since
                # (analyzer/cache.py); `aksnap check` always hashes them again
                snap.verified_note = f"checksums verified at {when}, files unchanged since"
            else:
                # Hashing hundreds of MiB runs in a thread (hashlib releases the GIL) while the
                # graph is read and built; every answer waits for it (wait_verified), so nothing
                # computed from a corrupted bundle ever reaches the user.
                snap._verification = _Verification(bundle)
        return snap

    def _plain_connection(self) -> duckdb.DuckDBPyConnection:
        """The connection :meth:`open` makes: one view per table over the bundle's files, the
        edge views and the small tables (kept in ``_con`` before the small tables are made,
        which may read the tables for the snapshot time)."""
        try:
            con = duckdb.connect(config={"threads": self._threads} if self._threads else {})
            _connection_settings(con)
            for table in TABLES:
                con.read_parquet(self.bundle.file(table)).create_view(table, replace=True)
            con.execute(queries.text("_views"))
        except duckdb.Error as e:
            raise BundleError(f"{self.path} cannot be read ({str(e).strip().splitlines()[0]}); "
                              "`aksnap check` lists its problems") from None
        self._con = con
        self._make_small_tables(con)
        return con

    def _make_small_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        """The small tables (temporary: each connection of the database makes its own)."""
        for name, table in self._small_tables().items():
            _small_table(con, name, table)

    #: set by ``open(connect=False)``: the plain connection is made on first use (``sql`` and
    #: ``query`` replace it by the sandbox before any: a 10M-task bundle's footers, 0.1 s)
    _lazy_connect = False
    _con = None
    _threads = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection | None:
        if self._lazy_connect:
            self._lazy_connect = False
            self._plain_connection()
        return self._con

    @con.setter
    def con(self, value) -> None:
        self._lazy_connect = False
        self._con = value

    @classmethod
    def _unusable(cls, root: Path, problems: list[str]) -> "Snapshot":
        snap = cls.__new__(cls)
        snap.bundle, snap.path, snap.con = None, root, None
        snap.manifest = None
        snap.integrity_problems = problems or ["the bundle cannot be opened"]
        snap.verified = True
        snap._verification = None
        return snap

    @property
    def usable(self) -> bool:
        """Whether the tables can be queried (False only for ``collect_problems`` opens of a
        bundle whose manifest or files are unreadable)."""
        return self._con is not None or self._lazy_connect

    def _check_vocabulary(self) -> None:
        """Refuse, by name, statuses outside ArmoniK's vocabulary and nulls in the columns the
        format never leaves null: the analyzer would otherwise drop edges or statuses."""
        try:
            rows = self.con.execute(queries.text("_validate"), {
                "task_statuses": list(TASK_STATUSES), "result_statuses": list(RESULT_STATUSES),
                "session_statuses": list(SESSION_STATUSES),
                **{f"{t[:-1]}_required": list(REQUIRED[t]) for t in TABLES}}).fetchall()
        except duckdb.Error as e:
            raise BundleError(f"{self.path} cannot be read ({str(e).strip().splitlines()[0]}); "
                              "`aksnap check` lists its problems") from None
        for table, column, problem, n, example in rows:
            if n:
                what = (f"{n} rows whose {column} is null" if problem == "null" else
                        f"status {example!r}, which is not an ArmoniK {table[:-1]} status")
                raise BundleError(f"{self.path} cannot be read: {table}.parquet has {what}; the "
                                  "file was edited or not written by aksnap (`aksnap check` "
                                  "lists every problem)")

    # -- SQL ---------------------------------------------------------------------------------

    #: statements a sandboxed connection runs: they read. An EXPLAIN is judged by the statement
    #: it explains (EXPLAIN ANALYZE runs it). This list is the second wall, not the first: the
    #: sandboxed connection has no file it may write (see :meth:`sandbox`).
    READING_STATEMENTS = ("SELECT", "EXPLAIN", "PRAGMA", "CALL")

    def sandbox(self, memory_limit: str = "4GB") -> None:
        """Lock the connection down for SQL a user types (``aksnap sql``, ``aksnap query``): a
        bundle may come from anyone's bug report, and its SQL may be pasted from one.

        Writing is impossible by construction, not by a list of refused statements: the
        connection is replaced by a new one that holds no path at all. The tables reach DuckDB
        as Arrow datasets over the bundle's files (read by Arrow, which only reads), every
        other object as an Arrow table; then external access is off (DuckDB opens no file,
        installs and loads no extension, attaches nothing), nothing spills to disk, memory is
        capped at ``memory_limit``, and the configuration is locked so SQL cannot undo any of
        it. The catalog (every view, table, macro, schema) is fingerprinted: SQL that changes
        it (``EXPLAIN ANALYZE CREATE OR REPLACE VIEW tasks ...``) gets no answer and the
        connection is rebuilt, so no later answer reads a redefined view.

        The checksums are not waited for here but by :meth:`sql`, before any answer that may
        depend on the tables (the Parquet footers were already read, and checked against the
        manifest, by the open)."""
        con = self._sandboxed_connection(memory_limit)
        if self._con is not None:
            self._con.close()
        self.con = con
        self.sandboxed = True
        self._memory_limit = memory_limit
        self._catalog = self._catalog_fingerprint()

    def _sandboxed_connection(self, memory_limit: str) -> duckdb.DuckDBPyConnection:
        import pyarrow.dataset as ds

        con = duckdb.connect()
        try:
            for table in TABLES:
                # one fragment per row group: DuckDB scans them in parallel and holds fewer
                # rows at once (0.55 s / 485 MB against 0.81 s / 529 MB for one fragment per
                # file, a tasks x results join at 1M tasks). Registered, so that the connection
                # keeps the object alive (a view over ``from_arrow`` points at an object
                # nobody holds).
                whole = ds.dataset(self.bundle.file(table), format="parquet")
                parts = [g for f in whole.get_fragments() for g in f.split_by_row_group()]
                con.register(table, ds.FileSystemDataset(parts, whole.schema, whole.format,
                                                         whole.filesystem))
            con.execute("SET TimeZone = 'UTC'")
            con.execute(queries.text("_views"))
            for name, table in self._small_tables().items():
                con.register(name, table)
            con.execute("SET memory_limit = $m", {"m": str(memory_limit)})
            for setting in ("SET temp_directory = ''", "SET autoinstall_known_extensions = false",
                            "SET autoload_known_extensions = false",
                            "SET allow_community_extensions = false",
                            "SET enable_external_access = false", "SET lock_configuration = true"):
                con.execute(setting)
        except (duckdb.Error, pa.ArrowException, OSError) as e:
            con.close()
            raise AnalysisError(f"the SQL sandbox could not be set up "
                                f"({str(e).strip().splitlines()[0]}); try --memory-limit 4GB") from None
        return con

    #: everything a statement could define or redefine; compared before and after user SQL
    _CATALOG_SQL = "SELECT " + ", ".join(
        f"(SELECT string_agg(x, ';' ORDER BY x) FROM (SELECT {what} AS x FROM {source}))"
        for what, source in (
            ("database_name || '.' || schema_name || '.' || view_name || '=' || coalesce(sql, '')",
             "duckdb_views() WHERE NOT internal"),
            ("database_name || '.' || schema_name || '.' || table_name", "duckdb_tables()"),
            ("database_name || '.' || schema_name || '.' || function_name",
             "duckdb_functions() WHERE NOT internal"),
            ("database_name || '.' || schema_name", "duckdb_schemas()"),
            ("database_name", "duckdb_databases()"),
            ("sequence_name", "duckdb_sequences()"),
            ("type_name", "duckdb_types() WHERE NOT internal"),
            ("index_name", "duckdb_indexes()"),
        )) + ", current_schema(), current_database(), current_setting('search_path')"

    def _catalog_fingerprint(self) -> tuple:
        return tuple(self.con.execute(self._CATALOG_SQL).fetchall()[0])

    def _small_tables(self) -> dict[str, pa.Table]:
        return {
            "status_sets": status_sets_table(),
            "bundle_info": pa.table({
                "path": [str(self.path)],
                "format_version": [self.manifest.format_version],
                "snapshot_time": pa.array([self.snapshot_time], pa.timestamp("us", tz="UTC")),
            }),
        }

    _EXPLAIN = re.compile(r"^\s*EXPLAIN\b\s*(?:ANALY[SZ]E\b\s*|\([^)]*\)\s*)?", re.I)

    def _check_statements(self, text: str) -> None:
        def kinds(sql: str) -> list[str]:
            out = []
            for s in duckdb.extract_statements(sql):
                kind = s.type.name
                if kind == "EXPLAIN":  # judged by what it explains (ANALYZE runs it)
                    inner = self._EXPLAIN.sub("", s.query, count=1).strip().rstrip(";")
                    out.extend(kinds(inner) if inner and inner != s.query.strip().rstrip(";")
                               else ["EXPLAIN"])
                else:
                    out.append(kind)
            return out

        try:
            found = kinds(text)
        except duckdb.Error as e:
            raise AnalysisError(f"the SQL failed: {str(e).strip().splitlines()[0]}") from None
        refused = [k for k in found if k not in self.READING_STATEMENTS or k == "EXPLAIN"]
        if refused:
            raise AnalysisError(f"aksnap sql only reads the bundle (SELECT, PRAGMA, CALL, and "
                                f"EXPLAIN of those); a {refused[0]} statement is refused. To save "
                                "an answer, use -o csv > FILE")

    @staticmethod
    def reads_no_table(text: str) -> bool:
        """Whether the answer of ``text`` cannot depend on a byte of the bundle: every statement
        is a SELECT whose parse tree (DuckDB's ``json_serialize_sql``) has no relation at all,
        every FROM of it, subqueries and CTEs included, empty (``select 1``, ``select now()``).
        Fails closed: a statement DuckDB does not serialise (PRAGMA, EXPLAIN, CALL, anything
        but SELECT), a FROM naming anything (a table, a view, a table function, VALUES) or a
        parse error counts as reading."""
        try:
            con = duckdb.connect()
            try:
                got = con.execute("SELECT json_serialize_sql($q)", {"q": text}).fetchone()[0]
            finally:
                con.close()
            tree = json.loads(got)
        except (duckdb.Error, ValueError, TypeError):
            return False
        if not isinstance(tree, dict) or tree.get("error") is not False or not tree.get("statements"):
            return False
        stack, froms = [tree["statements"]], 0
        while stack:
            x = stack.pop()
            if isinstance(x, dict):
                for k, v in x.items():
                    if k == "from_table":
                        if not (isinstance(v, dict) and v.get("type") == "EMPTY"):
                            return False
                        froms += 1
                    stack.append(v)
            elif isinstance(x, list):
                stack.extend(x)
        return froms >= len(tree["statements"])  # every statement's FROM seen, and empty

    def sql(self, text: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run SQL with bound ``$name`` parameters; the answer as an Arrow table.

        The answer waits for the checksum verification, unless the connection is sandboxed
        (user SQL) and the SQL reads no table at all (:meth:`reads_no_table`): then it is
        given at once and :attr:`answered_unverified` is set, for the caller to say so."""
        sandboxed = getattr(self, "sandboxed", False)
        if sandboxed:
            self._check_statements(text)
        if sandboxed and self._verification is not None and self.reads_no_table(text):
            self.answered_unverified = True
        else:
            self.wait_verified()
        try:
            rel = self.con.sql(text, params=dict(params)) if params else self.con.sql(text)
            answer = pa.table({}) if rel is None else rel.to_arrow_table()  # None: no rows (SET ...)
        except duckdb.Error as e:
            answer = AnalysisError(f"the SQL failed: {str(e).strip().splitlines()[0]}")
        if sandboxed and self._catalog_fingerprint() != self._catalog:
            # an answer read through a redefined view would be a lie: none is given, and the
            # next statement starts from the bundle's own views again
            self.con.close()
            self.con = self._sandboxed_connection(self._memory_limit)
            self._catalog = self._catalog_fingerprint()
            raise AnalysisError("aksnap sql only reads the bundle: this SQL changed its views or "
                                "defined objects, so its answer is withheld (write one SELECT)")
        if isinstance(answer, AnalysisError):
            raise answer
        return answer

    def query(self, name: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a named query of ``queries/`` binding every parameter it declares
        (missing ones are bound to null, which each query reads as "no filter")."""
        try:
            q = queries.info(name)
        except KeyError:
            raise AnalysisError(f"there is no query named {name!r}; `aksnap queries` lists "
                                f"them ({', '.join(queries.names())})") from None
        params = dict(params or {})
        unknown = sorted(set(params) - set(q.param_names))
        if unknown:
            raise AnalysisError(f"query {name!r} has no parameter {unknown[0]!r}; it takes "
                                f"{', '.join(q.param_names) or 'none'}")
        missing = [p for p in q.required_params if params.get(p) in (None, "")]
        if missing:
            raise AnalysisError(f"query {name!r} needs --param {missing[0]}=...; "
                                f"its parameters: {q.params}")
        _check_param_types(q, params)
        bound = {p: params.get(p) for p in q.param_names}
        return self.sql(q.sql, bound or None)

    def scalar(self, text: str, params: Mapping[str, Any] | None = None) -> Any:
        t = self.sql(text, params)
        return t.column(0)[0].as_py() if t.num_rows else None

    # -- time ----------------------------------------------------------------------------------

    @cached_property
    def snapshot_time(self) -> datetime | None:
        """The moment the bundle describes.

        The manifest's export time (``exported_at``), unless the cluster's clock ran ahead of
        the exporter's (``latest_timestamp`` later than the export time): then the latest
        timestamp is the better "now". Without a manifest time, the latest timestamp in the
        bundle.
        """
        exported = parse_time(self.manifest.exported_at)
        latest = parse_time(self.manifest.latest_timestamp)
        if exported is None:
            latest = latest or self._latest_timestamp_in_data()
            return latest or parse_time(self.manifest.written_at)
        if latest is not None and latest > exported:
            return latest
        return exported

    def _latest_timestamp_in_data(self) -> datetime | None:
        self._deferred_checks()  # max() may be answered from the statistics
        # the catalogue's timeline columns (our identifiers, never user input)
        t = self.con.sql(
            "SELECT greatest(" + ", ".join([f"max({c})" for c in TASK_TIMESTAMPS] + [
                f"(SELECT max({c}) FROM results)" for c in RESULT_TIMESTAMPS])
            + ") FROM tasks").fetchall()[0][0]
        if t is None:
            return None
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)

    # -- graph ---------------------------------------------------------------------------------

    def read_columns(self, table: str, columns: list[str],
                     dictionary: list[str] | None = None) -> pa.Table:
        """Columns of one table straight from its Parquet file (``dictionary``: columns to keep
        dictionary-encoded, for few distinct values such as statuses and session ids)."""
        try:
            data = pq.read_table(self.bundle.file(table), columns=columns,
                                 read_dictionary=[c for c in dictionary or () if c in columns] or None)
        except (pa.ArrowException, OSError) as e:
            raise BundleError(f"{self.path}: {table}.parquet cannot be read "
                              f"({str(e).strip().splitlines()[0][:200]}); `aksnap check` lists "
                              "its problems") from None
        problems = column_problems(table, data, f"{table}.parquet")
        if problems:
            raise BundleError(f"{self.path} cannot be read: {problems[0]}")
        return data

    def read_rows(self, table: str, column: str, rows) -> pa.ChunkedArray:
        """``column`` at the row positions ``rows`` (in that order), reading only the row groups
        that hold them, each checked as :meth:`read_columns` checks a table: a few values of
        a 10M-row column without decoding it whole."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64)
        try:
            f = pq.ParquetFile(self.bundle.file(table))
            md = f.metadata
            bounds = np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])
            if len(rows) and (rows.min() < 0 or rows.max() >= bounds[-1]):
                raise BundleError(f"{self.path}: {table}.parquet has {int(bounds[-1])} rows, "
                                  f"row {int(rows.max())} was asked for (an index cache of "
                                  "another bundle?)")
            groups = np.searchsorted(bounds, rows, side="right") - 1
            parts, where = [], []
            for gi in np.unique(groups).tolist():
                data = f.read_row_group(gi, columns=[column])
                problems = column_problems(table, data, f"{table}.parquet", row_group=gi)
                if problems:
                    raise BundleError(f"{self.path} cannot be read: {problems[0]}")
                sel = np.flatnonzero(groups == gi)
                parts.append(data.column(0).take(pa.array(rows[sel] - bounds[gi])))
                where.append(sel)
        except (pa.ArrowException, OSError) as e:
            raise BundleError(f"{self.path}: {table}.parquet cannot be read "
                              f"({str(e).strip().splitlines()[0][:200]}); `aksnap check` lists "
                              "its problems") from None
        if not parts:
            return pa.chunked_array([], type=f.schema_arrow.field(column).type)
        order = np.argsort(np.concatenate(where), kind="stable")
        return pa.chunked_array([pa.concat_arrays([p.combine_chunks() for p in parts])
                                 .take(pa.array(order))])

    #: rows read at once when streaming a table (consecutive row groups are read together up
    #: to this many rows; a row group is never split): a batch's arrays of 8 bytes a row stay
    #: under a MiB, reused by the allocator batch after batch (1M cold open: 0.72 GiB peak,
    #: against 0.76 at 131,072)
    STREAM_ROWS = 65_536

    def row_count(self, table: str) -> int:
        return int(self.manifest.tables[table].rows or 0)

    def leaf_values(self, table: str, column: str) -> int:
        """How many values ``table``'s Parquet footer counts for the elements of the list
        ``column`` (one per element, and one per empty or null list): at least how many
        elements it holds, known before reading it. 0 when the footer has no such column."""
        try:
            md = pq.ParquetFile(self.bundle.file(table)).metadata
        except (pa.ArrowException, OSError):
            return 0
        leaf = next((j for j in range(md.num_columns)
                     if md.schema.column(j).path.startswith(column + ".")), None)
        if leaf is None:
            return 0
        return sum(md.row_group(i).column(leaf).num_values for i in range(md.num_row_groups))

    def iter_row_groups(self, table: str, columns: list[str],
                        dictionary: list[str] | None = None):
        """Columns of one table, row group by row group (consecutive small groups read
        together, up to :attr:`STREAM_ROWS` rows): ``(first row, pa.Table)`` pairs, each
        checked as :meth:`read_columns` checks a whole table. Memory is one batch, not the
        columns whole."""
        path = self.bundle.file(table)

        def fail(e: BaseException) -> BundleError:
            return BundleError(f"{self.path}: {table}.parquet cannot be read "
                               f"({str(e).strip().splitlines()[0][:200]}); `aksnap check` "
                               "lists its problems")
        try:
            f = pq.ParquetFile(path, read_dictionary=[c for c in dictionary or ()
                                                      if c in columns] or None)
            sizes = [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)]
        except (pa.ArrowException, OSError) as e:
            raise fail(e) from None
        first, group = 0, []
        try:
            for i, rows in enumerate(sizes + [None]):
                if group and (rows is None or sum(sizes[g] for g in group) + rows > self.STREAM_ROWS):
                    try:
                        data = f.read_row_groups(group, columns=columns)
                    except (pa.ArrowException, OSError) as e:
                        raise fail(e) from None
                    problems = column_problems(table, data, f"{table}.parquet", row_group=group[0])
                    if problems:
                        raise BundleError(f"{self.path} cannot be read: {problems[0]}")
                    yield first, data
                    first += data.num_rows
                    group = []
                if rows is not None:
                    group.append(i)
        finally:
            close = getattr(f, "close", None)
            if close is not None:
                close()

    @cached_property
    def graph(self):
        """The task/data graph (:class:`aksnap.analyzer.graph.TaskGraph`), built on first use."""
        from aksnap.analyzer.graph import TaskGraph

        from aksnap.analyzer.progress import cold_open

        progress = cold_open(f"indexing {self.path.name}")
        try:  # built while the checksums are verified
            graph = TaskGraph.from_snapshot(self, progress=progress)
        finally:
            if progress is not None:
                progress.close()
        self.wait_verified()
        return graph

    def session_ids(self) -> list[str]:
        self.wait_verified()
        rows = self.con.sql(
            "SELECT session_id FROM (SELECT session_id, min(created_at) AS t FROM tasks GROUP BY 1 "
            "UNION ALL SELECT session_id, created_at FROM sessions) GROUP BY 1 "
            "ORDER BY min(t) NULLS LAST, 1").fetchall()
        return [r[0] for r in rows]

    def require_session(self, session_id: str | None) -> None:
        if session_id is None:
            return
        if session_id not in self.session_ids():
            known = self.session_ids()
            raise AnalysisError(f"session {session_id!r} is not in {self.path} (it holds "
                                f"{len(known)} session(s): {', '.join(known[:5])}"
                                f"{' ...' if len(known) > 5 else ''})")

    # -- ids -------------------------------------------------------------------------------------

    #: where the ids of each kind are (the column catalogue's keys, and the tasks' session)
    _ID_SQL = {kind: " UNION ".join(f"SELECT {c} AS id FROM {t}" for t, c in id_sources(kind))
               for kind in ID_KINDS}

    #: what shows an object of each kind, for a sentence saying an id is of another kind
    _SHOWN_BY = {"task": "`aksnap task {bundle} {id}` shows it",
                 "result": "`aksnap lineage {bundle} {id}` explains it",
                 "session": "pass it as --session (`aksnap analyze {bundle} --session {id}`)",
                 "partition": "its tasks are in `aksnap analyze {bundle}` (phases by partition)"}

    def _matching(self, kind: str, value: str) -> list[tuple[str, bool, int]]:
        """The ids of ``kind`` that ``value`` names (itself, or the ids it begins, in any
        case), grouped by the task they are attempts of (``ID``, ``ID###1``...: ArmoniK names
        a retry after its first attempt): (the first attempt's id, whether that id itself
        matched, how many attempts matched), an exact match first, then by id; at most 6."""
        return [tuple(r.values()) for r in self.sql(
            f"SELECT split_part(id, '###', 1) AS base, bool_or(NOT contains(id, '###')) AS first, "
            f"count(*) AS n FROM ({self._ID_SQL[kind]}) WHERE starts_with(lower(id), lower($v)) "
            "GROUP BY 1 ORDER BY bool_or(id = $v) DESC, bool_or(lower(id) = lower($v)) DESC, 1 "
            "LIMIT 6", {"v": value}).to_pylist()]

    def resolve_id(self, kind: str, value: str) -> str:
        """The full id of a ``kind`` ("task", "result", "session", "partition") that ``value``
        names: the id itself, or (compared case-insensitively, as armonik-cli's tables truncate
        ids) the one id it is a prefix of. A prefix of a retried task (``ID``, ``ID###1``,
        ``ID###2``) names its first attempt ``ID``, whose answer lists the retries (add
        ``###n`` for one). One SQL scan, whatever the bundle's size. An ambiguous prefix is an
        :class:`AnalysisError` naming a few candidates; an id of another kind is one saying
        what it is and which command shows it; an unknown value is returned as is, for the
        analysis to say it is not in the bundle."""
        if value is None or self.con is None:
            return value
        if kind in ("task", "result") and self._index_at_hand():
            # an exact id answers itself (a prefix only ever names other ids): found in the
            # graph's id arrays, mapped from the index cache, instead of a scan of the table
            # that lowercases every id (2.5 s of CPU at 10M tasks)
            g = self.graph
            if (g.result_index(value) if kind == "result" else g.task_index(value)) >= 0:
                return value
        elif kind in ("task", "result") and self._holds_exactly(kind, value):
            # a cold open: an exact id found by equality (no lowercasing of every id), and
            # without waiting for the checksums, which are verified meanwhile, beside the
            # index build; the answer waits for them (the value returned is the one given)
            return value
        rows = self.sql(
            f"SELECT id FROM ({self._ID_SQL[kind]}) WHERE starts_with(lower(id), lower($v)) "
            "ORDER BY id = $v DESC, lower(id) = lower($v) DESC, id LIMIT 6", {"v": value}
        ).column("id").to_pylist()
        if not rows:
            self._refuse_other_kind(kind, value)
            return value
        exact = [r for r in rows if r == value] or [r for r in rows if r.lower() == value.lower()]
        if len(rows) == 1 or len(exact) == 1:
            return exact[0] if exact else rows[0]
        groups = self._matching(kind, value)
        if len(groups) == 1 and groups[0][1]:
            return groups[0][0]  # a task and its retries: the first attempt
        if len(groups) == 1:
            raise AnalysisError(f"{kind} {value!r} is ambiguous in {self.path}: it begins "
                                f"{', '.join(rows[:5])}{' ...' if len(rows) > 5 else ''}, "
                                f"retries of {groups[0][0]}; give the whole id (###n)")
        shown = ", ".join(base + (f" (and {n - 1} retr{'y' if n == 2 else 'ies'})"
                                  if first and n > 1 else "") for base, first, n in groups[:5])
        raise AnalysisError(f"{kind} {value!r} is ambiguous in {self.path}: it begins {shown}"
                            f"{' ...' if len(groups) > 5 else ''}; give more of the {kind} id")

    def _holds_exactly(self, kind: str, value: str) -> bool:
        """Whether ``value`` is an id of ``kind``, read before the verification ends (False
        when the files cannot say: the resolution then goes the verified way)."""
        try:
            return bool(self.con.sql(f"SELECT 1 FROM ({self._ID_SQL[kind]}) WHERE id = $v LIMIT 1",
                                     params={"v": value}).fetchall())
        except duckdb.Error:
            return False

    def _index_at_hand(self) -> bool:
        """Whether the graph is built, or its index cache would answer at once."""
        if "graph" in self.__dict__:
            return True
        from aksnap.analyzer.graph import index_cached

        return index_cached(self)

    def has_id(self, kind: str, value: str) -> bool:
        """Whether the bundle holds the ``kind`` whose id is ``value``."""
        return bool(self.sql(f"SELECT 1 FROM ({self._ID_SQL[kind]}) WHERE id = $v LIMIT 1",
                             {"v": value}).num_rows)

    def _refuse_other_kind(self, kind: str, value: str) -> None:
        """``value`` names no ``kind``: when it names an object of another kind, say so (one
        sentence naming that kind and the command that shows it)."""
        for other in ("task", "result", "session", "partition"):
            if other == kind or other not in self._ID_SQL:
                continue
            found = self.sql(
                f"SELECT DISTINCT split_part(id, '###', 1) AS id FROM ({self._ID_SQL[other]}) "
                "WHERE starts_with(lower(id), lower($v)) ORDER BY 1 LIMIT 2",
                {"v": value}).column("id").to_pylist()
            if not found:
                continue
            full = found[0] if len(found) == 1 else value
            what = f"the {other} {full}" if full != value else f"a {other}"
            raise AnalysisError(f"{value!r} is {what} in {self.path}, not a {kind}: "
                                + self._SHOWN_BY[other].format(bundle=self.path, id=full))

    def twin(self) -> "Snapshot | None":
        """This snapshot over a second DuckDB connection to the same database, for SQL run in
        a thread beside this one (a connection answers one thread at a time): the views are
        shared, the per-connection state (settings, the small temporary tables) made again;
        the graph and everything cached are shared. Verified first. None for a sandboxed
        connection (its tables are registered objects of that connection alone). Closed by
        :meth:`close_twin`."""
        if getattr(self, "sandboxed", False) or self.con is None:
            return None
        self.wait_verified()
        import copy

        twin = copy.copy(self)
        con = self.con.cursor()
        try:
            _connection_settings(con)
            self._make_small_tables(con)
        except duckdb.Error:
            con.close()
            return None
        twin._con = con
        return twin

    def interrupt(self) -> None:
        """Stop the query this snapshot's connection is running, if any (from another thread;
        it raises there)."""
        con = self._con
        if con is not None:
            try:
                con.interrupt()
            except duckdb.Error:
                pass

    def close_twin(self) -> None:
        """Close a :meth:`twin`'s connection (not the bundle, which it shares)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def close(self) -> None:
        self._lazy_connect = False
        if self._con is not None:
            self._con.close()
        if self.bundle is not None:
            self.bundle.close()

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
