"""``PgVectorEngine``: collections are tables of the target's PostgreSQL schema (its
``schema`` option; ``SCHEMA:TABLE`` names one in another schema, e.g. one per tenant),
read and written with COPY in PostgreSQL's binary format.

Reads are consistent: a scan is one COPY inside a REPEATABLE READ transaction, so it
returns the table exactly as it was at one instant (no concurrent change is seen, and
none can be half-seen); ``consistent_read`` extends that instant to every read of a whole
snapshot, across tables (one exported transaction snapshot, as ``pg_dump`` does), and
says which instant it was (the server's time, the transaction snapshot, the WAL LSN).

Writes: an upsert COPYs its rows straight in (a restore into an empty table runs at COPY
speed) and falls back to a merge through a temporary table when keys already exist (a
retried batch), in one transaction either way. A table created for a restore may leave
its secondary indexes to ``finish_load``, which builds them once the data is in (much
faster than maintaining them row by row), ANALYZEs, then gives the table its access
state (``access``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drconsole.engines.adapter import ErrorKind
from drconsole.engines.base import (
    SCOPE,
    CollectionInfo,
    EngineInfo,
    LoadFinished,
    QueryResult,
    ScanWindow,
)
from drconsole.engines.pgvector.access import AccessRefused, restore_access
from drconsole.engines.pgvector.codecs import binary_dumper, register_types
from drconsole.engines.pgvector.filters import compile_filter
from drconsole.engines.pgvector.introspect import (
    ENGINE,
    TABLE_PLACEHOLDER,
    TableMissing,
    TableUnknown,
    describe_table,
)
from drconsole.engines.pgvector.rows import Layout, RecordRefused
from drconsole.engines.pgvector.table import define_table, fit_name
from drconsole.engines.retried import retried_on
from drconsole.errors import EngineError
from drconsole.model.filters import Filter, FilterError
from drconsole.model.schema import CollectionSchema, Distance, ElementType
from drconsole.records import RecordBatch

T = TypeVar("T")
DEFAULT_SCHEMA = "public"
CONNECT_TIMEOUT_S = 10
OPERATORS = {
    Distance.L2: "<->",
    Distance.COSINE: "<=>",
    Distance.IP: "<#>",
    Distance.L1: "<+>",
    Distance.HAMMING: "<~>",
}
PROGRESS_EVERY_S = 1.0
SEARCH_SETTINGS = {
    "hnsw": ("ef_search", "hnsw.ef_search"),
    "ivf_flat": ("probes", "ivfflat.probes"),
}
"""An index kind's search parameter (neutral name) and the session setting it is."""
BUILD_SETTINGS = {"maintenance_work_mem": "256MB", "max_parallel_maintenance_workers": "2"}
"""Session settings of an index build after a load (memory for the HNSW graph, and the
parallel workers PostgreSQL may use)."""

_TABLES = """
select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relkind in ('r', 'p') order by c.relname
"""
_RELATIONS = """
select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s
"""
_TABLE_INDEXES = """
select i.relname from pg_index x join pg_class i on i.oid = x.indexrelid
where x.indrelid = %s::regclass
"""
_SQLSTATE_KINDS = {
    "42P01": ErrorKind.NOT_FOUND,
    "3F000": ErrorKind.NOT_FOUND,
    "42704": ErrorKind.NOT_FOUND,
    "42P07": ErrorKind.CONFLICT,
    "23505": ErrorKind.CONFLICT,
    "28P01": ErrorKind.AUTH,
    "28000": ErrorKind.AUTH,
    "42501": ErrorKind.AUTH,
    "40001": ErrorKind.TRANSIENT,
    "40P01": ErrorKind.TRANSIENT,
    "57P01": ErrorKind.TRANSIENT,
    "57P03": ErrorKind.TRANSIENT,
}
_SQLSTATE_CLASSES = {
    "08": ErrorKind.TRANSIENT,
    "53": ErrorKind.TRANSIENT,
    "22": ErrorKind.INVALID,
    "23": ErrorKind.INVALID,
    "42": ErrorKind.INVALID,
}


class PgVectorError(EngineError):
    """An error of the PostgreSQL target; ``kind`` says how it is treated."""

    def __init__(self, message: str, kind: ErrorKind, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.kind = kind


_retried = retried_on(PgVectorError)
"""Calls tried again when PostgreSQL cannot be reached or ended the session (a restart,
a failover): each is one transaction or a read, so running it again is safe."""


def open_pgvector(url: str, options: dict[str, Any], token: str | None) -> PgVectorEngine:
    """The adapter's entry: the token is the role's password."""
    return PgVectorEngine(url, schema=options.get("schema") or DEFAULT_SCHEMA, password=token)


def classify(error: BaseException) -> ErrorKind:
    return error.kind if isinstance(error, PgVectorError) else ErrorKind.UNKNOWN


_REFUSED_CONNECTIONS = {
    "password authentication failed": ErrorKind.AUTH,
    "no password supplied": ErrorKind.AUTH,
    "authentication failed": ErrorKind.AUTH,
    "pg_hba.conf": ErrorKind.AUTH,
    "does not exist": ErrorKind.NOT_FOUND,
}
"""What a refused connection says (libpq gives it no SQLSTATE): not worth retrying."""


def _kind_of(error: psycopg.Error) -> ErrorKind:
    state = error.sqlstate or ""
    if not state:
        if not isinstance(error, psycopg.OperationalError):
            return ErrorKind.UNKNOWN
        text = str(error)
        return next(
            (kind for marker, kind in _REFUSED_CONNECTIONS.items() if marker in text),
            ErrorKind.TRANSIENT,
        )
    return _SQLSTATE_KINDS.get(state) or _SQLSTATE_CLASSES.get(state[:2], ErrorKind.UNKNOWN)


class PgVectorEngine:
    def __init__(
        self, url: str, *, schema: str = DEFAULT_SCHEMA, password: str | None = None
    ) -> None:
        settings = conninfo_to_dict(url)
        self._password = password or settings.pop("password", None)
        settings.pop("password", None)
        self.url = _display_url(settings)
        self.schema = schema
        self._settings = settings
        self._connection: psycopg.Connection[Any] | None = None
        self._oids: dict[str, int] = {}
        self._layouts: dict[str, tuple[CollectionSchema, Layout]] = {}
        self._reader: tuple[psycopg.Connection[Any], str] | None = None
        self._lock = threading.RLock()

    # ----- connections ---------------------------------------------------------------

    def _connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        with self._errors("connecting"):
            connection = psycopg.connect(
                make_conninfo(**self._settings),
                password=self._password,
                autocommit=autocommit,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="drconsole",
                options="-c TimeZone=UTC",
            )
        if self._oids:
            self._register(connection)
        return connection

    def _register(self, connection: psycopg.Connection[Any]) -> None:
        register_types(connection)
        for oid in self._oids.values():
            connection.adapters.register_dumper(None, binary_dumper(oid))

    def _conn(self) -> psycopg.Connection[Any]:
        """The connection reads use: the consistent read's, when one is open."""
        if self._reader is not None:
            return self._reader[0]
        if self._connection is None or self._connection.closed or self._connection.broken:
            self._connection = self._connect()
            self._types()
        return self._connection

    def _types(self) -> dict[str, int]:
        """pgvector's type oids (registered on the connection once the extension exists)."""
        if not self._oids and self._connection is not None:
            with self._errors("reading pgvector's types"):
                self._oids = register_types(self._connection)
            if self._oids:
                self._register(self._connection)
        return self._oids

    @contextmanager
    def _errors(self, doing: str, table: str | None = None) -> Iterator[None]:
        """PostgreSQL's errors as PgVectorError, saying what was being done to what."""
        try:
            yield
        except psycopg.Error as error:
            kind = _kind_of(error)
            detail = " ".join((getattr(error.diag, "message_primary", None) or str(error)).split())
            where = f" {table}" if table else ""
            hint = {
                ErrorKind.AUTH: "check the role, its password (the target's token) and grants",
                ErrorKind.TRANSIENT: f"check that PostgreSQL at {self.url} is up and reachable",
                ErrorKind.NOT_FOUND: "check the schema and table names, or restore the schema",
            }.get(kind)
            raise PgVectorError(f"{doing}{where} at {self.url}: {detail}", kind, hint) from None
        except TableUnknown as error:  # missing: not found; not protectable: invalid
            kind = ErrorKind.NOT_FOUND if isinstance(error, TableMissing) else ErrorKind.INVALID
            raise PgVectorError(error.message, kind, error.hint) from None
        except (RecordRefused, FilterError, AccessRefused) as error:
            raise PgVectorError(
                f"{doing}{f' {table}' if table else ''}: {error}", ErrorKind.INVALID
            ) from None

    # ----- server and namespace ------------------------------------------------------

    @_retried
    def info(self) -> EngineInfo:
        with self._lock, self._errors("reading the server version"):
            row = (
                self._conn()
                .execute(
                    "select current_setting('server_version'), "
                    "(select extversion from pg_extension where extname = 'vector')"
                )
                .fetchone()
            )
        assert row is not None
        version = f"PostgreSQL {row[0]}" + (f", pgvector {row[1]}" if row[1] else "")
        return EngineInfo(ENGINE, self.url, version, {"schema": self.schema})

    @_retried
    def ensure_namespace(self) -> None:
        with self._lock, self._errors(f"creating schema {self.schema}"):
            connection = self._conn()
            connection.execute("create extension if not exists vector")
            connection.execute(
                sql.SQL("create schema if not exists {}").format(sql.Identifier(self.schema))
            )
            self._types()

    @_retried
    def missing_namespace(self) -> str | None:
        with self._lock, self._errors("reading the schemas"):
            row = (
                self._conn()
                .execute(
                    "select exists(select 1 from pg_namespace where nspname = %s), "
                    "exists(select 1 from pg_extension where extname = 'vector')",
                    (self.schema,),
                )
                .fetchone()
            )
        assert row is not None
        if not row[1]:
            return f"the vector extension (pgvector) is not installed in the database at {self.url}"
        if not row[0]:
            return f"schema {self.schema} does not exist at {self.url}"
        return None

    # ----- collections ---------------------------------------------------------------

    def _describe(self, name: str) -> tuple[CollectionSchema, Layout]:
        """The table's schema and layout (kept until this engine changes the table)."""
        with self._lock:
            if self._reader is None and name in self._layouts:
                return self._layouts[name]
            with self._errors("describing table", self._qualified(name)):
                schema = describe_table(self._conn(), *self._place(name))
                layout = Layout.of(schema)
            if self._reader is None:
                self._layouts[name] = (schema, layout)
            return schema, layout

    def _place(self, name: str) -> tuple[str, str]:
        """(schema, table) of a collection: ``SCHEMA:TABLE`` names a table in another
        schema than the target's (one schema per tenant), a plain name one in it."""
        scope, separator, table = name.partition(SCOPE)
        return (scope, table) if separator else (self.schema, name)

    def _table(self, name: str) -> sql.Identifier:
        return sql.Identifier(*self._place(name))

    def _qualified(self, name: str) -> str:
        return ".".join(self._place(name))

    @_retried
    def list_collections(self) -> list[CollectionInfo]:
        with self._lock, self._errors("listing tables in schema", self.schema):
            names = [row[0] for row in self._conn().execute(_TABLES, (self.schema,)).fetchall()]
        found = []
        for name in names:
            try:
                info = self._collection_info(name)
            except PgVectorError as error:
                if error.kind != ErrorKind.INVALID:
                    raise
                continue  # a table drconsole cannot protect (no single key)
            if info is not None and info.schema.vectors:
                found.append(info)
        return found

    @_retried
    def get_collection(self, name: str) -> CollectionInfo | None:
        return self._collection_info(name)

    def _collection_info(self, name: str) -> CollectionInfo | None:
        self._layouts.pop(name, None)
        try:
            schema, _ = self._describe(name)
        except PgVectorError as error:
            if error.kind == ErrorKind.NOT_FOUND:
                return None
            raise
        config = schema.engine_config[ENGINE]
        table = self._place(name)[1]
        unrestorable = [
            f"index {index['name'].replace(TABLE_PLACEHOLDER, table)} "
            "(it has a predicate or expressions)"
            for index in config["indexes"]
            if index["partial"]
        ]
        return CollectionInfo(name, schema, _metadata(config.get("comment")), tuple(unrestorable))

    def create_collection(
        self,
        name: str,
        schema: CollectionSchema,
        metadata: dict[str, Any] | None = None,
        *,
        indexes: bool = True,
    ) -> CollectionInfo:
        """The table as ``schema`` describes it (its indexes now, or, with ``indexes``
        False, left to ``finish_load``); an existing table is returned as it is."""
        existing = self._collection_info(name)
        if existing is not None:
            return existing
        created = self.try_create_collection(name, schema, metadata, indexes=indexes)
        return created or self._must_exist(name)

    def try_create_collection(
        self,
        name: str,
        schema: CollectionSchema,
        metadata: dict[str, Any] | None,
        *,
        indexes: bool = True,
    ) -> CollectionInfo | None:
        if metadata:
            config = dict(schema.engine_config.get(ENGINE) or {})
            config["comment"] = json.dumps(metadata, sort_keys=True)
            schema = _with_config(schema, config)
        with self._lock:
            self._types()
            connection = self._conn()
            with self._errors("creating table", self._qualified(name)):
                where, table = self._place(name)
                definition = define_table(where, table, schema, self._relations(where))
                try:
                    with connection.transaction():
                        if where != self.schema:
                            connection.execute(
                                sql.SQL("create schema if not exists {}").format(
                                    sql.Identifier(where)
                                )
                            )
                        for statement in definition.create:
                            connection.execute(statement)
                        if indexes:
                            for _, statement in definition.indexes:
                                connection.execute(statement)
                except psycopg.errors.DuplicateTable:
                    return None
            self._layouts.pop(name, None)
        return self._must_exist(name)

    def _must_exist(self, name: str) -> CollectionInfo:
        info = self._collection_info(name)
        if info is None:
            raise PgVectorError(
                f"table {self._qualified(name)} vanished right after it was created",
                ErrorKind.TRANSIENT,
            )
        return info

    def _relations(self, schema: str) -> set[str]:
        rows = self._conn().execute(_RELATIONS, (schema,)).fetchall()
        return {row[0] for row in rows}

    @_retried
    def finish_load(
        self,
        name: str,
        schema: CollectionSchema,
        progress: Callable[[str], None] | None = None,
    ) -> LoadFinished:
        """Build the indexes ``schema`` has that the table lacks, ANALYZE it, then give it
        its access state (roles, grants, row-level security, policies: last, so that the
        load ran unhindered by them). Safe to run again: an interrupted build left nothing
        behind (it ran in a transaction), and nothing is made twice."""
        where, bare = self._place(name)
        with self._lock:
            connection = self._conn()
            table = self._table(name)
            with self._errors("building the indexes of", self._qualified(name)):
                present = {
                    row[0]
                    for row in connection.execute(
                        _TABLE_INDEXES, (table.as_string(connection),)
                    ).fetchall()
                }
                taken = self._relations(where) - present
                definition = define_table(where, bare, schema, taken)
                built = []
                for index_name, statement in definition.indexes:
                    if index_name in present:
                        continue
                    if progress is not None:
                        progress(f"building index {index_name}")
                    self._build(connection, statement, (where, bare, index_name), progress)
                    built.append(index_name)
                if progress is not None:
                    progress("analyzing")
                connection.execute(sql.SQL("analyze {}").format(table))
                if progress is not None:
                    progress("restoring roles, grants and row-level security")
                with connection.transaction():
                    notes = restore_access(
                        connection,
                        where,
                        bare,
                        schema.access,
                        schema.engine_config.get(ENGINE) or {},
                    )
        self._layouts.pop(name, None)
        return LoadFinished(built, notes, definition.unrestorable)

    def _build(
        self,
        connection: psycopg.Connection[Any],
        statement: sql.Composable,
        index: tuple[str, str, str],
        progress: Callable[[str], None] | None,
    ) -> None:
        """Run one CREATE INDEX (in a transaction, with the build settings) while another
        connection reports how far it is from ``pg_stat_progress_create_index``;
        ``index`` is (schema, table, index name)."""
        index_name = index[2]
        failure: list[BaseException] = []

        def build() -> None:
            try:
                with connection.transaction():
                    _set_local(connection, BUILD_SETTINGS)
                    connection.execute(statement)
            except BaseException as error:  # noqa: BLE001 (raised again below)
                failure.append(error)

        worker = threading.Thread(target=build, name=f"build {index_name}", daemon=True)
        worker.start()
        watcher = self._connect() if progress is not None else None
        try:
            while worker.is_alive():
                worker.join(PROGRESS_EVERY_S)
                if watcher is not None and progress is not None and worker.is_alive():
                    progress(_build_progress(watcher, *index))
        finally:
            if watcher is not None:
                watcher.close()
        if failure:
            raise failure[0]

    @_retried
    def delete_collection(self, name: str) -> None:
        with self._lock, self._errors("dropping table", self._qualified(name)):
            self._conn().execute(sql.SQL("drop table if exists {}").format(self._table(name)))
        self._layouts.pop(name, None)

    def rename_collection(self, name: str, new_name: str) -> None:
        """Rename the table and the indexes named after it, in one transaction."""
        (where, table), (new_where, new_table) = self._place(name), self._place(new_name)
        if where != new_where:
            raise PgVectorError(
                f"cannot rename {self._qualified(name)} to {self._qualified(new_name)}: "
                "a rename stays in its schema",
                ErrorKind.INVALID,
            )
        with self._lock:
            connection = self._conn()
            with self._errors("renaming table", self._qualified(name)), connection.transaction():
                old = self._table(name)
                indexes = [
                    row[0]
                    for row in connection.execute(
                        _TABLE_INDEXES, (old.as_string(connection),)
                    ).fetchall()
                ]
                connection.execute(
                    sql.SQL("alter table {} rename to {}").format(old, sql.Identifier(new_table))
                )
                for index in indexes:
                    if index.startswith(f"{table}_"):
                        renamed = fit_name(new_table + index[len(table) :])
                        connection.execute(
                            sql.SQL("alter index {} rename to {}").format(
                                sql.Identifier(where, index), sql.Identifier(renamed)
                            )
                        )
            self._layouts.pop(name, None)
            self._layouts.pop(new_name, None)

    # ----- records -------------------------------------------------------------------

    @_retried
    def upsert(self, name: str, batch: RecordBatch) -> None:
        """Each record replaces the row with its key, in one transaction: COPY straight
        in, or (keys already there) COPY into a temporary table and merge from it."""
        if not len(batch):
            return
        _, layout = self._describe(name)
        with self._lock:
            connection = self._conn()
            with self._errors("writing to", self._qualified(name)):
                rows = layout.rows(batch)
                table = self._table(name)
                try:
                    with connection.transaction():
                        self._copy_in(connection, table, layout, rows)
                except psycopg.errors.UniqueViolation:
                    with connection.transaction():
                        self._merge(connection, table, layout, rows)

    def _copy_in(
        self,
        connection: psycopg.Connection[Any],
        table: sql.Composable,
        layout: Layout,
        rows: list[tuple[Any, ...]],
    ) -> None:
        columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in layout.columns)
        statement = sql.SQL("copy {} ({}) from stdin (format binary)").format(table, columns)
        with connection.cursor().copy(statement) as copy:
            copy.set_types([column.copy_type for column in layout.columns])
            for row in rows:
                copy.write_row(row)

    def _merge(
        self,
        connection: psycopg.Connection[Any],
        table: sql.Composable,
        layout: Layout,
        rows: list[tuple[Any, ...]],
    ) -> None:
        staged = sql.Identifier("drconsole_upsert")
        names = [sql.Identifier(c.name) for c in layout.columns]
        connection.execute(
            sql.SQL("create temporary table {} (like {}) on commit drop").format(staged, table)
        )
        self._copy_in(connection, staged, layout, rows)
        updates = sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(n) for n in names[1:])
        connection.execute(
            sql.SQL(
                "insert into {table} ({columns}) select {columns} from {staged} "
                "on conflict ({key}) do {action}"
            ).format(
                table=table,
                columns=sql.SQL(", ").join(names),
                staged=staged,
                key=names[0],
                action=sql.SQL("update set {}").format(updates)
                if names[1:]
                else sql.SQL("nothing"),
            )
        )

    @contextmanager
    def consistent_read(self) -> Iterator[dict[str, Any]]:
        """Every read inside (on this engine, from this thread) sees the database at one
        instant: a REPEATABLE READ, read-only transaction whose snapshot scans share.
        Yields that instant: the server's time, the transaction snapshot and the WAL LSN."""
        with self._lock:
            self._conn()  # learns pgvector's types, which the reader's connection needs
        connection = self._connect(autocommit=False)
        try:
            with self._errors("starting a consistent read"):
                connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                connection.read_only = True
                row = connection.execute(
                    "select clock_timestamp(), pg_current_snapshot()::text, "
                    "case when pg_is_in_recovery() then pg_last_wal_replay_lsn() "
                    "else pg_current_wal_lsn() end::text, pg_export_snapshot()"
                ).fetchone()
            assert row is not None
            with self._lock:
                self._reader = (connection, row[3])
            yield {"at": row[0], "transaction_snapshot": row[1], "wal_lsn": row[2]}
        finally:
            with self._lock:
                self._reader = None
            connection.close()

    def scan(
        self, name: str, page_size: int = 1000, window: ScanWindow | None = None
    ) -> Iterator[RecordBatch]:
        """The whole table as it was at one instant (the consistent read's, or this
        scan's own), in pages; the window sees no change, as none can be seen."""
        window = window if window is not None else ScanWindow()
        _, layout = self._describe(name)
        columns = layout.columns
        window.begin()
        for rows in self._copy_out(name, columns, page_size):
            window.listed += len(rows)
            with self._errors("reading", self._qualified(name)):
                batch = layout.batch(rows)
            yield batch
        window.end()

    def _copy_out(
        self, name: str, columns: tuple[Any, ...], page_size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The columns of every row, in lists of ``page_size``, from one COPY on a
        connection of its own in a REPEATABLE READ transaction (sharing the consistent
        read's snapshot when one is open)."""
        with self._lock:
            snapshot = self._reader[1] if self._reader is not None else None
        connection = self._connect(autocommit=False)
        try:
            with self._errors("reading", self._qualified(name)):
                connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                connection.read_only = True
                if snapshot is not None:
                    connection.execute(
                        sql.SQL("set transaction snapshot {}").format(sql.Literal(snapshot))
                    )
                query = sql.SQL("copy (select {} from {}) to stdout (format binary)").format(
                    sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
                    self._table(name),
                )
                with connection.cursor().copy(query) as copy:
                    copy.set_types([column.copy_type for column in columns])
                    page: list[tuple[Any, ...]] = []
                    for row in copy.rows():
                        page.append(row)
                        if len(page) >= page_size:
                            yield page
                            page = []
                    if page:
                        yield page
        finally:
            connection.close()

    def scan_metadata(
        self, name: str, page_size: int = 5000
    ) -> Iterator[tuple[list[str], list[Any]]]:
        _, layout = self._describe(name)
        for rows in self._copy_out(name, (layout.key, *layout.fields), page_size):
            yield [str(row[0]) for row in rows], layout.metadatas([row[1:] for row in rows])

    @_retried
    def get_records(self, name: str, ids: list[str]) -> RecordBatch:
        _, layout = self._describe(name)
        rows = self._select(name, layout, layout.columns, ids)
        return layout.batch(rows)

    @_retried
    def get_metadata(self, name: str, ids: list[str]) -> dict[str, dict[str, Any] | None]:
        _, layout = self._describe(name)
        rows = self._select(name, layout, (layout.key, *layout.fields), ids)
        metadatas = layout.metadatas([row[1:] for row in rows])
        return {str(row[0]): metadata for row, metadata in zip(rows, metadatas, strict=True)}

    def _select(
        self, name: str, layout: Layout, columns: tuple[Any, ...], ids: list[str]
    ) -> list[tuple[Any, ...]]:
        """The rows of the given keys, in the order asked (missing keys left out)."""
        wanted = list(dict.fromkeys(ids))
        with self._errors("reading", self._qualified(name)):
            keys = [layout.key_value(record_id) for record_id in wanted]
            with self._lock, self._conn().cursor(binary=True) as cursor:
                cursor.execute(
                    sql.SQL("select {} from {} where {} = any(%s)").format(
                        sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
                        self._table(name),
                        sql.Identifier(layout.key.name),
                    ),
                    (keys,),
                )
                found = {str(row[0]): row for row in cursor.fetchall()}
        return [found[record_id] for record_id in wanted if record_id in found]

    def vector_ulps(self, distance: str) -> int:
        """Vectors come back bit for bit (binary COPY, no text conversion)."""
        return 0

    @_retried
    def count(self, name: str, where: Filter | None = None) -> int:
        _, layout = self._describe(name)
        with self._lock, self._errors("counting", self._qualified(name)):
            condition, params = (
                compile_filter(where, layout.field_types) if where else (sql.SQL("true"), [])
            )
            row = (
                self._conn()
                .execute(
                    sql.SQL("select count(*) from {} where {}").format(
                        self._table(name), condition
                    ),
                    params,
                )
                .fetchone()
            )
        assert row is not None
        return int(row[0])

    @_retried
    def query(
        self,
        name: str,
        vectors: np.ndarray,
        k: int,
        where: Filter | None = None,
        search: dict[str, int | float] | None = None,
    ) -> list[QueryResult]:
        """Nearest rows by the first vector's distance operator, through its index when
        it has one (with the snapshot's ``ef_search`` or ``probes``); distances as the
        reference engine gives them (squared l2, 1 - dot product, 1 - cosine)."""
        schema, layout = self._describe(name)
        vector = schema.vector
        column = layout.vectors[0]
        index = schema.index
        settings = _search_settings(
            index.kind if index else "",
            search if search is not None else index.params if index else {},
        )
        results = []
        with self._lock, self._errors("searching", self._qualified(name)):
            condition, params = (
                compile_filter(where, layout.field_types) if where else (sql.SQL("true"), [])
            )
            connection = self._conn()
            statement = sql.SQL(
                "select {key}, {fields} ({column} {op} %s::{kind}) from {table} where {condition} "
                "order by {column} {op} %s::{kind} limit %s"
            ).format(
                key=sql.Identifier(layout.key.name),
                fields=sql.SQL("").join(
                    sql.SQL("{}, ").format(sql.Identifier(c.name)) for c in layout.fields
                ),
                column=sql.Identifier(column.name),
                op=sql.SQL(OPERATORS[vector.distance]),
                kind=sql.SQL(column.type_name),
                table=self._table(name),
                condition=condition,
            )
            with connection.transaction():
                _set_local(connection, settings)
                if where is not None:
                    connection.execute("set local hnsw.iterative_scan = strict_order")
                for query_vector in np.asarray(vectors, dtype=np.float32):
                    text = _vector_text(query_vector, vector.element)
                    rows = connection.execute(statement, [text, *params, text, k]).fetchall()
                    results.append(
                        QueryResult(
                            [str(row[0]) for row in rows],
                            [_reference_distance(vector.distance, float(row[-1])) for row in rows],
                            layout.metadatas([tuple(row[1:-1]) for row in rows]),
                        )
                    )
        return results

    @_retried
    def visible_as(
        self, name: str, role: str, settings: dict[str, str], vectors: np.ndarray, k: int
    ) -> tuple[int, list[list[str]]]:
        """What ``role`` sees of the table with ``settings`` (``app.tenant``...) set, as the
        application would: how many rows, and the ids an unfiltered similarity query of
        each vector returns. Row-level security decides; drconsole filters nothing."""
        schema, layout = self._describe(name)
        column = layout.vectors[0]
        table = self._table(name)
        with self._lock, self._errors(f"reading as role {role}", self._qualified(name)):
            connection = self._conn()
            with connection.transaction():
                connection.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
                for setting, value in settings.items():
                    connection.execute("select set_config(%s, %s, true)", (setting, value))
                row = connection.execute(
                    sql.SQL("select count(*) from {}").format(table)
                ).fetchone()
                statement = sql.SQL("select {} from {} order by {} {} %s::{} limit %s").format(
                    sql.Identifier(layout.key.name),
                    table,
                    sql.Identifier(column.name),
                    sql.SQL(OPERATORS[schema.vector.distance]),
                    sql.SQL(column.type_name),
                )
                found = [
                    [
                        str(hit[0])
                        for hit in connection.execute(
                            statement, (_vector_text(vector, schema.vector.element), k)
                        ).fetchall()
                    ]
                    for vector in np.asarray(vectors, dtype=np.float32)
                ]
        return int(row[0]) if row else 0, found

    @_retried
    def delete(self, name: str, ids: list[str]) -> None:
        if not ids:
            return
        _, layout = self._describe(name)
        with self._lock, self._errors("deleting from", self._qualified(name)):
            keys = [layout.key_value(record_id) for record_id in ids]
            self._conn().execute(
                sql.SQL("delete from {} where {} = any(%s)").format(
                    self._table(name), sql.Identifier(layout.key.name)
                ),
                (keys,),
            )

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _set_local(connection: psycopg.Connection[Any], settings: dict[str, str]) -> None:
    """Settings for the rest of the transaction (``hnsw.ef_search``, ``maintenance_work_mem``)."""
    for setting, value in settings.items():
        connection.execute(
            sql.SQL("set local {} = {}").format(
                sql.Identifier(*setting.split(".")), sql.Literal(value)
            )
        )


def _build_progress(watcher: psycopg.Connection[Any], schema: str, table: str, index: str) -> str:
    """``building index X: loading tuples 41% (41,000 of 100,000)``, as PostgreSQL says."""
    row = watcher.execute(
        "select p.phase, p.tuples_done, p.tuples_total, p.blocks_done, p.blocks_total "
        "from pg_stat_progress_create_index p join pg_class c on c.oid = p.relid "
        "join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and c.relname = %s",
        (schema, table),
    ).fetchone()
    if row is None:
        return f"building index {index}"
    phase, tuples_done, tuples_total, blocks_done, blocks_total = row
    done, total = (tuples_done, tuples_total) if tuples_total else (blocks_done, blocks_total)
    share = f" {100 * done // total}% ({done:,} of {total:,})" if total else ""
    return f"building index {index}: {phase}{share}"


def _display_url(settings: dict[str, Any]) -> str:
    """``postgresql://user@host:port/database``: where, never with a password."""
    user = f"{settings['user']}@" if settings.get("user") else ""
    port = f":{settings['port']}" if settings.get("port") else ""
    return (
        f"postgresql://{user}{settings.get('host', 'localhost')}{port}/{settings.get('dbname', '')}"
    )


def _metadata(comment: str | None) -> dict[str, Any]:
    """A table comment that is a JSON object is the collection's metadata (drconsole
    writes its own markers so); any other comment is the application's, kept as is."""
    if not comment:
        return {}
    try:
        parsed = json.loads(comment)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _with_config(schema: CollectionSchema, config: dict[str, Any]) -> CollectionSchema:
    return replace(schema, engine_config={**schema.engine_config, ENGINE: config})


def _search_settings(kind: str, params: dict[str, int | float]) -> dict[str, str]:
    """pgvector's session setting for an index's search parameter (``ef_search`` of an
    HNSW index, ``probes`` of an IVFFlat one), when ``params`` has it."""
    param, setting = SEARCH_SETTINGS.get(kind, ("", ""))
    return {setting: str(int(params[param]))} if param in params else {}


def _vector_text(vector: np.ndarray, element: ElementType) -> str:
    """A query vector as pgvector's text form (exact: each float32 is written by the
    shortest decimal that reads back as itself)."""
    if element == ElementType.BIT:
        return "".join("1" if value else "0" for value in vector)
    return "[" + ",".join(repr(float(value)) for value in vector) + "]"


def _reference_distance(distance: Distance, value: float) -> float:
    if distance == Distance.L2:
        return value * value
    if distance == Distance.IP:
        return 1.0 + value
    return value
