"""``MilvusEngine``: collections of one Milvus database (the target's ``database``
option), through pymilvus's ``MilvusClient``.

Reads run at Strong consistency, so a read after a write sees it. Milvus 2.3 reads no
past instant (time travel was removed in 2.3), so a scan is fuzzy, like Chroma's: the
ids are listed in key order, a page of keys at a time, fetched by id a page at a time,
and listed again at the end; records added or deleted meanwhile are counted in the
scan's window and every record appears once, in a state it had during the scan.

A collection gets its index defined when it is created (Milvus builds it per sealed
segment as data arrives) and is loaded on first read; after a restore's data,
``finish_load`` flushes it, waits for the index with progress, loads it, points its
aliases at it and gives it its roles, grants and users. Records carry their partition as
their tenant when the collection keeps tenants in partitions.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import grpc
import numpy as np
from pymilvus import MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2

from drconsole.catalog.s3 import S3Store
from drconsole.engines.adapter import ErrorKind
from drconsole.engines.base import (
    CollectionInfo,
    EngineInfo,
    LoadFinished,
    QueryResult,
    ScanWindow,
)
from drconsole.engines.milvus.access import read_access, restore_access
from drconsole.engines.milvus.bulk import ImportState, stage_of, write_parquet
from drconsole.engines.milvus.filters import compile_filter
from drconsole.engines.milvus.filters import string_literal as quoted
from drconsole.engines.milvus.schema import (
    DEFAULT_PARTITION,
    ENGINE,
    METRICS,
    SEARCH_NAMES,
    config_of,
    description_of,
    index_parameters,
    key_field,
    metadata_of,
    milvus_name,
    milvus_schema,
    neutral_schema,
    vector_field,
)
from drconsole.engines.retried import retried_on
from drconsole.errors import EngineError
from drconsole.model.filters import AllOf, AnyOf, Filter, FilterError, evaluate
from drconsole.model.schema import CollectionSchema, Distance, KeyType, TenancyMode
from drconsole.records import RecordBatch

T = TypeVar("T")
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
"""pymilvus logs every failed call with its traceback; drconsole says what failed itself."""
DEFAULT_DATABASE = "default"
DEFAULT_USER = "root"
TIMEOUT_S = 60.0
LIST_PAGE = 16384
"""The most a Milvus query returns at once."""
WRITE_BATCH = 2000
INDEX_POLL_S = 0.2
IMPORT_VISIBLE_S = 120.0
STRONG = "Strong"


class MilvusError(EngineError):
    """An error of the Milvus target; ``kind`` says how it is treated."""

    def __init__(self, message: str, kind: ErrorKind, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.kind = kind


_retried = retried_on(MilvusError)
"""Calls tried again when Milvus cannot be reached: each is a read or an idempotent write
(an upsert of the same rows)."""


def open_milvus(url: str, options: dict[str, Any], token: str | None) -> MilvusEngine:
    """The adapter's entry: the URL names the user (``http://USER@HOST:PORT``, root when
    none), the token is its password."""
    return MilvusEngine(
        url,
        database=options.get("database") or DEFAULT_DATABASE,
        password=token,
        stage=stage_of(
            options.get("stage"), options.get("stage_endpoint"), options.get("stage_credentials")
        ),
    )


def classify(error: BaseException) -> ErrorKind:
    return error.kind if isinstance(error, MilvusError) else ErrorKind.UNKNOWN


_MESSAGES = (
    ("auth check failure", ErrorKind.AUTH),
    ("permission deny", ErrorKind.AUTH),
    ("privilege", ErrorKind.AUTH),
    ("unauthenticated", ErrorKind.AUTH),
    ("can't find collection", ErrorKind.NOT_FOUND),
    ("collection not found", ErrorKind.NOT_FOUND),
    ("database not found", ErrorKind.NOT_FOUND),
    ("not exist", ErrorKind.NOT_FOUND),
    ("not found", ErrorKind.NOT_FOUND),
    ("already exist", ErrorKind.CONFLICT),
    ("fail connecting to server", ErrorKind.TRANSIENT),
    ("unavailable", ErrorKind.TRANSIENT),
    ("deadline exceeded", ErrorKind.TRANSIENT),
    ("connection refused", ErrorKind.TRANSIENT),
    ("server unavailable", ErrorKind.TRANSIENT),
)


_GRPC_KINDS = {
    grpc.StatusCode.PERMISSION_DENIED: ErrorKind.AUTH,
    grpc.StatusCode.UNAUTHENTICATED: ErrorKind.AUTH,
    grpc.StatusCode.UNAVAILABLE: ErrorKind.TRANSIENT,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorKind.TRANSIENT,
}


def _detail(error: Exception) -> str:
    """What the server said: pymilvus's message, or a raw gRPC error's details (Milvus
    2.3 refuses a call the user has no privilege for with one)."""
    if isinstance(error, grpc.RpcError) and callable(getattr(error, "details", None)):
        return str(error.details())
    return str(getattr(error, "message", None) or error)


def _kind_of(error: Exception) -> ErrorKind:
    if isinstance(error, grpc.RpcError) and callable(getattr(error, "code", None)):
        return _GRPC_KINDS.get(error.code(), ErrorKind.UNKNOWN)
    text = str(error).lower()
    for marker, kind in _MESSAGES:
        if marker in text:
            return kind
    if isinstance(error, MilvusException | ValueError | TypeError):
        return ErrorKind.INVALID
    return ErrorKind.UNKNOWN


def _named(method: Callable[..., T]) -> Callable[..., T]:
    """The method given the collection's name as Milvus holds it (``milvus_name``)."""

    @functools.wraps(method)
    def call(self: MilvusEngine, name: str, *args: Any, **kwargs: Any) -> T:
        return method(self, milvus_name(name), *args, **kwargs)

    return call


class RecordRefused(ValueError):
    """Records the collection cannot hold as they are (a missing typed field, a document)."""


class MilvusEngine:
    def __init__(
        self,
        url: str,
        *,
        database: str = DEFAULT_DATABASE,
        password: str | None = None,
        stage: S3Store | None = None,
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        self.user = parts.username or DEFAULT_USER
        self._password = password if password is not None else parts.password
        host = parts.hostname or "127.0.0.1"
        self.address = f"{parts.scheme or 'http'}://{host}:{parts.port or 19530}"
        self.url = f"{parts.scheme or 'http'}://{self.user}@{host}:{parts.port or 19530}"
        self.database = database
        self._client: MilvusClient | None = None
        self._schemas: dict[str, CollectionSchema] = {}
        self.stage = stage
        self._imported: dict[str, int] = {}

    # ----- connection and errors -----------------------------------------------------

    def _connect(self) -> MilvusClient:
        """The client, connected on first use. pymilvus reports a refused password as
        it reports an unreachable server ("Fail connecting to server"): when the port
        answers, the refusal is taken for what it most likely is, an authentication
        failure, and not tried again."""
        if self._client is None:
            token = f"{self.user}:{self._password}" if self._password is not None else ""
            try:
                self._client = MilvusClient(
                    uri=self.address, token=token, db_name=self.database, timeout=TIMEOUT_S
                )
            except MilvusException as error:
                if _kind_of(error) is ErrorKind.TRANSIENT and self._listening():
                    raise MilvusError(
                        f"connecting at {self.url} (database {self.database}): the server "
                        f"answers but refused the connection: {_detail(error)}",
                        ErrorKind.AUTH,
                        "check the user in the url and its password (the target's token); "
                        "also that the database exists and the server needs no TLS",
                    ) from None
                with self._errors("connecting"):
                    raise
        return self._client

    def _listening(self) -> bool:
        """Whether something accepts connections at the server's address."""
        parts = urlsplit(self.address)
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=3):
                return True
        except OSError:
            return False

    @contextmanager
    def _errors(self, doing: str, collection: str | None = None) -> Iterator[None]:
        """pymilvus's errors as MilvusError, saying what was being done to what."""
        try:
            yield
        except (MilvusException, RecordRefused, FilterError, grpc.RpcError) as error:
            kind = _kind_of(error)
            detail = _detail(error)
            where = f" {collection}" if collection else ""
            hint = {
                ErrorKind.AUTH: "check the user in the url, its password (the target's token) "
                "and its roles",
                ErrorKind.TRANSIENT: f"check that Milvus at {self.url} is up and reachable",
                ErrorKind.NOT_FOUND: f"check the database ({self.database}) and collection "
                "names, or restore the schema",
            }.get(kind)
            if kind == ErrorKind.TRANSIENT:
                self.close()
            raise MilvusError(
                f"{doing}{where} at {self.url} (database {self.database}): {detail}", kind, hint
            ) from None

    # ----- server and namespace ------------------------------------------------------

    @_retried
    def info(self) -> EngineInfo:
        with self._errors("reading the server version"):
            version = self._connect().get_server_version()
        return EngineInfo(ENGINE, self.url, f"Milvus {version}", {"database": self.database})

    def _databases(self) -> list[str]:
        client = self._connect()
        with self._errors("listing the databases"):
            return list(client.list_databases())

    @_retried
    def ensure_namespace(self) -> None:
        if self.database in self._databases():
            return
        with self._errors(f"creating database {self.database}"):
            self._connect().create_database(self.database)

    @_retried
    def missing_namespace(self) -> str | None:
        if self.database in self._databases():
            return None
        return f"database {self.database} does not exist at {self.url}"

    # ----- collections ---------------------------------------------------------------

    @_retried
    def list_collections(self) -> list[CollectionInfo]:
        with self._errors("listing the collections"):
            names = sorted(self._connect().list_collections())
        return [info for name in names if (info := self._describe(name)) is not None]

    @_retried
    def get_collection(self, name: str) -> CollectionInfo | None:
        info = self._describe(milvus_name(name))
        return None if info is None else replace(info, name=name)

    def _describe(self, name: str) -> CollectionInfo | None:
        client = self._connect()
        with self._errors("describing collection", name):
            if not client.has_collection(name):
                return None
            described = client.describe_collection(name)
            indexes = {}
            for index_name in client.list_indexes(name):
                index = client.describe_index(name, index_name)
                indexes[index.get("field_name", index_name)] = index
            partitions = list(client.list_partitions(name))
        schema, unrestorable = neutral_schema(described, indexes, partitions)
        try:
            policy, users = read_access(client, self.database, name)
        except (MilvusException, grpc.RpcError) as error:
            unrestorable.append(
                f"roles and grants (user {self.user} cannot read them: {_detail(error)})"
            )
        else:
            config = {**schema.engine_config[ENGINE], "users": users}
            schema = replace(schema, access=policy, engine_config={ENGINE: config})
        self._schemas[name] = schema
        return CollectionInfo(
            name, schema, metadata_of(described.get("description") or ""), tuple(unrestorable)
        )

    def _schema(self, name: str) -> CollectionSchema:
        schema = self._schemas.get(name)
        if schema is None:
            info = self._describe(name)
            if info is None:
                raise MilvusError(
                    f"collection {name} does not exist in database {self.database} at {self.url}",
                    ErrorKind.NOT_FOUND,
                    "check the collection name, or restore the schema",
                )
            schema = info.schema
        return schema

    def create_collection(
        self,
        name: str,
        schema: CollectionSchema,
        metadata: dict[str, Any] | None = None,
        *,
        indexes: bool = True,
    ) -> CollectionInfo:
        created = self.try_create_collection(name, schema, metadata or {}, indexes=indexes)
        if created is None:
            raise MilvusError(
                f"collection {name} already exists in database {self.database}",
                ErrorKind.CONFLICT,
            )
        return created

    @_named
    @_retried
    def try_create_collection(
        self,
        name: str,
        schema: CollectionSchema,
        metadata: dict[str, Any],
        *,
        indexes: bool = True,
    ) -> CollectionInfo | None:
        """Create the collection with its index defined (and the description it was
        saved with, unless ``metadata`` is given), not loaded: the first read loads it,
        or ``finish_load`` once a restore's data is in. Milvus defines the index at once
        either way and builds it per sealed segment, so ``indexes`` changes nothing.
        None when one has that name: Milvus refuses a second create, so the check is
        the server's."""
        client = self._connect()
        config = config_of(schema)
        description = description_of(metadata) if metadata else config.get("description", "")
        made = milvus_schema(schema, str(description))
        index = client.prepare_index_params()
        index.add_index(
            vector_field(schema), index_name=vector_field(schema), **index_parameters(schema)
        )
        extra: dict[str, Any] = {}
        if schema.tenancy.mode == TenancyMode.FIELD and config.get("num_partitions"):
            extra["num_partitions"] = int(config["num_partitions"])
        with self._errors("creating collection", name):
            if client.has_collection(name):
                return None
            client.create_collection(
                name,
                schema=made,
                consistency_level=str(config.get("consistency_level") or "Bounded"),
                shards_num=int(config.get("num_shards") or 1),
                **extra,
            )
            client.create_index(name, index)
            if schema.tenancy.mode == TenancyMode.PARTITION:
                for tenant in schema.tenancy.tenants:
                    client.create_partition(name, tenant.name)
        return self._describe(name)

    @_named
    @_retried
    def finish_load(
        self,
        name: str,
        schema: CollectionSchema,
        progress: Callable[[str], None] | None = None,
    ) -> LoadFinished:
        """Flush the restored data, wait for its index (reporting rows indexed), load the
        collection, point the snapshot's aliases at it, then give it its roles, grants
        and users (``access``). Safe to run again."""
        client = self._connect()
        say = progress or (lambda _text: None)
        field = vector_field(schema)
        with self._errors("finishing the load of", name):
            say("flushing")
            client.flush(name)
            while True:
                state = client.describe_index(name, field)
                total, done = int(state.get("total_rows", 0)), int(state.get("indexed_rows", 0))
                if str(state.get("state")) in ("Finished", "3") and done >= total:
                    break
                if str(state.get("state")) == "Failed":
                    reason = state.get("index_state_fail_reason")
                    raise MilvusError(
                        f"the index of {name} failed to build: {reason}", ErrorKind.UNKNOWN
                    )
                say(f"building index {field}: {done:,} of {total:,} rows")
                time.sleep(INDEX_POLL_S)
            say("loading")
            client.load_collection(name)
            self._await_imported(client, name, say)
            notes = self._point_aliases(client, name, schema.aliases)
            say("restoring roles, grants and users")
            notes += restore_access(
                client, self.database, name, schema.access, config_of(schema).get("users") or {}
            )
        self._schemas.pop(name, None)
        return LoadFinished([field], notes, [])

    def _await_imported(self, client: MilvusClient, name: str, say: Callable[[str], None]) -> None:
        """Wait until the rows imported into ``name`` are served: a completed import's
        segments reach the query node some seconds later (10-19 s measured on 2.3.5).
        Bounded: past the wait the counts gate compares what is served."""
        expected = self._imported.pop(name, 0)
        deadline = time.monotonic() + IMPORT_VISIBLE_S
        while expected and time.monotonic() < deadline:
            rows = client.query(
                name, filter="", output_fields=["count(*)"], consistency_level=STRONG
            )
            served = int(rows[0]["count(*)"])
            if served >= expected:
                return
            say(f"waiting for imported rows to be served: {served:,} of {expected:,}")
            time.sleep(INDEX_POLL_S)

    def _point_aliases(
        self, client: MilvusClient, name: str, aliases: tuple[str, ...]
    ) -> list[str]:
        """Each alias made, or moved from the collection it named, onto ``name``. Where
        an alias points is read from the collections' descriptions: Milvus 2.3 answers
        ``describe_alias`` from the default database whatever database is asked."""
        if not aliases:
            return []
        pointing = {
            alias: other
            for other in client.list_collections()
            for alias in client.describe_collection(other).get("aliases") or ()
        }
        notes = []
        for alias in aliases:
            current = pointing.get(alias)
            if current == name:
                continue
            if current:
                client.alter_alias(name, alias)
                notes.append(f"alias {alias} moved from {current} to {name}")
            else:
                client.create_alias(name, alias)
        return notes

    @_named
    @_retried
    def delete_collection(self, name: str) -> None:
        client = self._connect()
        with self._errors("dropping collection", name):
            if not client.has_collection(name):
                return
            for alias in client.describe_collection(name).get("aliases") or []:
                client.drop_alias(alias)
            client.drop_collection(name)
        self._schemas.pop(name, None)

    @_named
    @_retried
    def rename_collection(self, name: str, new_name: str) -> None:
        client = self._connect()
        with self._errors("renaming collection", name):
            client.rename_collection(name, milvus_name(new_name))
        self._schemas.pop(name, None)

    @_named
    def ensure_loaded(self, name: str) -> None:
        """Load the collection when it is not (a collection left unloaded answers no read)."""
        client = self._connect()
        with self._errors("loading collection", name):
            state = client.get_load_state(name).get("state")
            if str(state).endswith("Loaded") and "NotLoad" not in str(state):
                return
            client.load_collection(name)

    # ----- writes --------------------------------------------------------------------

    @_named
    @_retried
    def upsert(self, name: str, batch: RecordBatch) -> None:
        """Upsert the records (a re-sent batch changes nothing), by partition when the
        collection keeps tenants in partitions. With a partition key, as a delete then an
        insert: Milvus 2.3.5's upsert puts rows in partitions other than the key's, where
        a filter on the key no longer finds them (measured: 24 of 100)."""
        schema = self._schema(name)
        rows = _rows(schema, batch)
        client = self._connect()
        partitioned = schema.tenancy.mode == TenancyMode.PARTITION
        groups: dict[str, list[dict[str, Any]]] = {}
        for row, tenant in zip(rows, batch.tenants, strict=True):
            groups.setdefault((tenant or DEFAULT_PARTITION) if partitioned else "", []).append(row)
        keyed = schema.tenancy.mode == TenancyMode.FIELD
        with self._errors("writing to", name):
            for partition, members in groups.items():
                where = {"partition_name": partition} if partition else {}
                for start in range(0, len(members), WRITE_BATCH):
                    chunk = members[start : start + WRITE_BATCH]
                    if keyed:
                        key = key_field(schema)
                        ids = [str(row[key]) for row in chunk]
                        client.delete(name, filter=_keys_in(schema, ids))
                        client.insert(name, chunk)
                    else:
                        client.upsert(name, chunk, **where)

    @_named
    @_retried
    def delete(self, name: str, ids: list[str]) -> None:
        schema = self._schema(name)
        if not ids:
            return
        with self._errors("deleting from", name):
            self._connect().delete(name, filter=_keys_in(schema, ids))

    # ----- reads ---------------------------------------------------------------------

    @_named
    def scan(
        self, name: str, page_size: int = 1000, window: ScanWindow | None = None
    ) -> Iterator[RecordBatch]:
        """Every record, once, under concurrent writes (see the module's note)."""
        window = window if window is not None else ScanWindow()
        window.begin()
        listed, partitions = self._all_ids(name)
        window.listed = len(listed)
        vanished: set[str] = set()
        yield from self._fetch(name, listed, page_size, vanished, partitions)
        final, partitions = self._all_ids(name)
        late = window.settle(listed, final, vanished)
        yield from self._fetch(name, late, page_size, set(), partitions)
        window.end()

    @_retried
    def _all_ids(self, name: str) -> tuple[list[str], dict[str, str]]:
        """Every id, and each id's partition when tenants are partitions."""
        schema = self._schema(name)
        self.ensure_loaded(name)
        client = self._connect()
        key = key_field(schema)
        partitions: dict[str, str] = {}
        ids: list[str] = []
        names = (
            [DEFAULT_PARTITION, *(tenant.name for tenant in schema.tenancy.tenants)]
            if schema.tenancy.mode == TenancyMode.PARTITION
            else [None]
        )
        with self._errors("listing the ids of", name):
            for partition in names:
                for page in self._rows_in(client, name, schema, partition, []):
                    for row in page:
                        record_id = str(row[key])
                        ids.append(record_id)
                        if partition and partition != DEFAULT_PARTITION:
                            partitions[record_id] = partition
        return ids, partitions

    @staticmethod
    def _rows_in(
        client: MilvusClient,
        name: str,
        schema: CollectionSchema,
        partition: str | None,
        output_fields: list[str],
    ) -> Iterator[list[dict[str, Any]]]:
        """The rows of a collection (or one partition) in key order, a page at a time:
        each page asks for the keys after the last one seen, at Strong consistency (what
        was written before is seen). pymilvus's query iterator is not used: against 2.3
        it reads at a timestamp of the client's clock, which can miss a record written
        a moment before."""
        key = key_field(schema)
        integer = schema.key == KeyType.INT
        expression = f"{key} < 0 or {key} >= 0" if integer else f'{key} >= ""'
        while True:
            rows = client.query(
                name,
                filter=expression,
                output_fields=[key, *output_fields],
                limit=LIST_PAGE,
                consistency_level=STRONG,
                **({"partition_names": [partition]} if partition else {}),
            )
            rows.sort(key=lambda row: row[key])
            yield rows
            if len(rows) < LIST_PAGE:
                return
            last = rows[-1][key]
            expression = f"{key} > {last if integer else quoted(last)}"

    def _fetch(
        self,
        name: str,
        ids: list[str],
        page_size: int,
        vanished: set[str],
        partitions: dict[str, str],
    ) -> Iterator[RecordBatch]:
        for start in range(0, len(ids), page_size):
            wanted = ids[start : start + page_size]
            page = self._get(name, wanted, partitions)
            if len(page) < len(wanted):
                vanished.update(set(wanted) - set(page.ids))
            if len(page):
                yield page

    @_retried
    def _get(self, name: str, ids: list[str], partitions: dict[str, str]) -> RecordBatch:
        schema = self._schema(name)
        client = self._connect()
        with self._errors("reading records of", name):
            rows = client.query(
                name,
                filter=_keys_in(schema, ids),
                output_fields=["*"],
                consistency_level=STRONG,
            )
        by_id = {str(row[key_field(schema)]): row for row in rows}
        kept = [record_id for record_id in ids if record_id in by_id]
        return _batch(schema, [by_id[record_id] for record_id in kept], kept, partitions)

    @_named
    def scan_metadata(
        self, name: str, page_size: int = 5000
    ) -> Iterator[tuple[list[str], list[Any]]]:
        """(ids, metadatas) pages, without vectors, in key order (a record added during
        the scan below the page under way is not seen; one deleted is not returned)."""
        schema = self._schema(name)
        self.ensure_loaded(name)
        key, field = key_field(schema), vector_field(schema)
        client = self._connect()
        with self._errors("reading the fields of", name):
            for page in self._rows_in(client, name, schema, None, ["*"]):
                yield (
                    [str(row[key]) for row in page],
                    [
                        _metadata({k: v for k, v in row.items() if k != field}, key, field)
                        for row in page
                    ],
                )

    @_named
    def get_records(self, name: str, ids: list[str]) -> RecordBatch:
        self.ensure_loaded(name)
        schema = self._schema(name)
        partitions = self._all_ids(name)[1] if schema.tenancy.mode == TenancyMode.PARTITION else {}
        pages = [
            self._get(name, ids[start : start + LIST_PAGE], partitions)
            for start in range(0, len(ids), LIST_PAGE)
        ]
        return RecordBatch.join(pages, schema.dimension) if pages else _batch(schema, [], [], {})

    def get_metadata(self, name: str, ids: list[str]) -> dict[str, dict[str, Any] | None]:
        batch = self.get_records(name, ids)
        return dict(zip(batch.ids, batch.metadatas, strict=True))

    def vector_ulps(self, distance: str) -> int:
        """Milvus keeps float32 vectors as written (bit for bit)."""
        return 0

    @_named
    def count(self, name: str, where: Filter | None = None) -> int:
        """How many records pass ``where``: counted by Milvus, or, for a filter Milvus
        cannot run with the reference meaning, by reading the records' fields and
        evaluating it here (exact, slower)."""
        schema = self._schema(name)
        try:
            expression = self._expression(schema, where)
        except MilvusError:
            assert where is not None
            return sum(
                1
                for _, metadatas in self.scan_metadata(name)
                for metadata in metadatas
                if evaluate(where, metadata)
            )
        return self._count(name, expression)

    @_retried
    def _count(self, name: str, expression: str) -> int:
        self.ensure_loaded(name)
        with self._errors("counting", name):
            rows = self._connect().query(
                name, filter=expression, output_fields=["count(*)"], consistency_level=STRONG
            )
        return int(rows[0]["count(*)"])

    def _expression(self, schema: CollectionSchema, where: Filter | None) -> str:
        if where is None:
            return ""
        own = config_of(schema).get("fields") or {}
        rounded = sorted(
            name for name in _field_names(where) if (own.get(name) or {}).get("type") == "FLOAT"
        )
        if rounded:
            raise MilvusError(
                f"field {rounded[0]} is a 32-bit FLOAT: Milvus rounds the operand to 32 bits "
                "before comparing, which the filter's meaning does not",
                ErrorKind.INVALID,
            )
        fields = {item.name: str(item.type) for item in schema.fields if not item.nullable}
        try:
            return compile_filter(where, fields)
        except FilterError as error:
            raise MilvusError(str(error), ErrorKind.INVALID) from None

    @_named
    @_retried
    def query(
        self,
        name: str,
        vectors: np.ndarray,
        k: int,
        where: Filter | None = None,
        search: dict[str, int | float] | None = None,
    ) -> list[QueryResult]:
        """Nearest neighbours with the collection's metric; ``search`` (``ef_search``,
        ``probes``) in Milvus's names. Distances as the neutral model has them (squared
        l2, 1 - inner product, 1 - cosine similarity, hamming)."""
        schema = self._schema(name)
        self.ensure_loaded(name)
        distance = schema.distance
        params = {
            SEARCH_NAMES[key]: value for key, value in (search or {}).items() if key in SEARCH_NAMES
        }
        if schema.index is None or schema.index.kind == "hnsw":
            params["ef"] = max(k, int(params.get("ef", 64)))
        with self._errors("searching", name):
            answers = self._connect().search(
                name,
                data=np.asarray(vectors, dtype=np.float32).tolist(),
                limit=k,
                filter=self._expression(schema, where),
                output_fields=["*"],
                search_params={"metric_type": METRICS[distance.value], "params": params},
                consistency_level=STRONG,
            )
        key, field = key_field(schema), vector_field(schema)
        results = []
        for hits in answers:
            ids, distances, metadatas = [], [], []
            for hit in hits:
                entity = dict(hit.get("entity") or {})
                ids.append(str(hit.get("id", entity.get(key))))
                distances.append(_neutral_distance(distance, float(hit["distance"])))
                metadatas.append(_metadata(entity, key, field))
            results.append(QueryResult(ids, distances, metadatas))
        return results

    # ----- server-side bulk import (``bulk``) ------------------------------------------

    def import_refusal(self) -> str | None:
        """Why records cannot be imported server-side here; None when they can."""
        if self.stage is None:
            return (
                "the target names no stage (stage: s3://BUCKET/PREFIX, in the bucket Milvus "
                "keeps its data in, with stage_endpoint and stage_credentials)"
            )
        return None

    def stage_path(self, key: str) -> str:
        """The object key Milvus reads a staged file by (from its bucket's root)."""
        assert self.stage is not None
        return f"{self.stage.prefix}/{key}"

    @_named
    def stage_records(self, name: str, key: str, batches: Iterable[RecordBatch]) -> int:
        """Write the records into one staged Parquet file; the number of rows."""
        assert self.stage is not None
        schema = self._schema(name)
        with self.stage.writer(key) as out:
            return write_parquet(schema, batches, out)

    @_named
    @_retried
    def start_import(self, name: str, key: str) -> str:
        """Submit the import of one staged file; the server's task id. The request is
        made here: pymilvus 2.6 leaves its database out (2.3.5 would import into the
        default database's collection of that name)."""
        client = self._connect()
        request = milvus_pb2.ImportRequest(
            collection_name=name, files=[self.stage_path(key)], db_name=self.database
        )
        with self._errors("starting the import into", name):
            answer = client._get_connection()._stub.Import(request, timeout=TIMEOUT_S)
            _check(answer.status)
        return str(answer.tasks[0])

    @_named
    @_retried
    def find_import(self, name: str, key: str) -> str | None:
        """The import task already submitted for a staged file, if any (a run that
        stopped between submitting and recording it)."""
        client = self._connect()
        path = self.stage_path(key)
        request = milvus_pb2.ListImportTasksRequest(collection_name=name, db_name=self.database)
        with self._errors("listing the imports into", name):
            answer = client._get_connection()._stub.ListImportTasks(request, timeout=TIMEOUT_S)
            _check(answer.status)
        found = [
            task.id
            for task in answer.tasks
            if any(info.key == "files" and path in info.value for info in task.infos)
        ]
        return str(found[-1]) if found else None

    @_retried
    def import_state(self, task: str) -> ImportState:
        client = self._connect()
        with self._errors(f"reading import task {task}"):
            state = client._get_connection().get_bulk_insert_state(int(task))
        return ImportState(
            state.state_name,
            int(state.row_count),
            int(state.progress),
            state.failed_reason or "",
        )

    @_named
    @_retried
    def holds_records(self, name: str) -> bool:
        """Whether anything was ever written to the collection (flushed first, so that
        rows not yet sealed count; deleted rows count too), without loading it: an
        import goes only into a collection that holds nothing."""
        client = self._connect()
        with self._errors("reading the row count of", name):
            client.flush(name)
            return int(client.get_collection_stats(name).get("row_count", 0)) > 0

    @_named
    def imported(self, name: str, rows: int) -> None:
        """Count rows an import put in: ``finish_load`` waits until they are served."""
        self._imported[name] = self._imported.get(name, 0) + rows

    def unstage(self, key: str) -> None:
        if self.stage is not None:
            self.stage.delete([key])

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(MilvusException):
                client.close()


UNREADABLE_KEY = 2**63 - 1
"""Milvus 2.3 stores a record with this INT64 key and counts it, but no query or get
ever returns it: such a record could never be read back, so it is refused."""


def _field_names(node: Filter) -> set[str]:
    if isinstance(node, AllOf | AnyOf):
        return {name for item in node.items for name in _field_names(item)}
    return {node.field}


def _check(status: Any) -> None:
    """Raise the error a raw gRPC answer's status carries (as pymilvus's calls do)."""
    if status.code != 0 or status.error_code != 0:
        raise MilvusException(status.code or status.error_code, status.reason)


def _key(schema: CollectionSchema, record_id: str) -> int | str:
    if schema.key != KeyType.INT:
        return record_id
    try:
        value = int(record_id)
    except ValueError:
        raise MilvusError(
            f"key {record_id[:40]!r} is not an integer: the collection has INT64 keys",
            ErrorKind.INVALID,
        ) from None
    if value == UNREADABLE_KEY:
        raise MilvusError(
            f"key {value} is refused: Milvus 2.3 stores a record with the highest 64-bit key "
            "but never returns it (no query or get finds it)",
            ErrorKind.INVALID,
            "give the record another key",
        )
    return value


def _keys_in(schema: CollectionSchema, ids: list[str]) -> str:
    """An expression matching the records of ``ids`` (Milvus cannot read the lowest
    64-bit integer as a literal: it is matched as ``< -2**63 + 1``)."""
    key = key_field(schema)
    if schema.key != KeyType.INT:
        return f"{key} in [{', '.join(quoted(record_id) for record_id in ids)}]"
    values = [_key(schema, record_id) for record_id in ids]
    lowest = -(2**63)
    kept = [str(value) for value in values if value != lowest]
    parts = [f"{key} in [{', '.join(kept)}]"] if kept else []
    if len(kept) < len(values):
        parts.append(f"{key} < {lowest + 1}")
    return " or ".join(parts)


def _rows(schema: CollectionSchema, batch: RecordBatch) -> list[dict[str, Any]]:
    """The records as Milvus rows: key, vector, typed fields, the rest (dynamic)."""
    if any(document is not None for document in batch.documents):
        raise RecordRefused("records have documents: a Milvus collection has no document field")
    if any(uri is not None for uri in batch.uris):
        raise RecordRefused("records have uris: a Milvus collection has no uri field")
    if batch.named_vectors or batch.sparse_vectors:
        raise RecordRefused("records have several vectors: Milvus 2.3 keeps one")
    key, field = key_field(schema), vector_field(schema)
    typed = [item.name for item in schema.fields if not item.nullable]
    vectors = list(np.asarray(batch.vectors, dtype=np.float32))
    rows = []
    for record_id, vector, metadata in zip(batch.ids, vectors, batch.metadatas, strict=True):
        values = dict(metadata or {})
        missing = [name for name in typed if name not in values]
        if missing:
            raise RecordRefused(
                f"record {record_id} has no {', '.join(missing)}: the collection's typed "
                "fields always hold a value"
            )
        rows.append({**values, key: _key(schema, record_id), field: vector})
    return rows


def _batch(
    schema: CollectionSchema,
    rows: list[dict[str, Any]],
    ids: list[str],
    partitions: dict[str, str],
) -> RecordBatch:
    key, field = key_field(schema), vector_field(schema)
    matrix = np.array([row[field] for row in rows], dtype=np.float32).reshape(
        len(rows), schema.dimension
    )
    partitioned = schema.tenancy.mode == TenancyMode.PARTITION
    return RecordBatch(
        ids,
        matrix,
        [None] * len(rows),
        [_metadata(row, key, field) for row in rows],
        [partitions.get(record_id) if partitioned else None for record_id in ids],
    )


def _metadata(row: dict[str, Any], key: str, field: str) -> dict[str, Any] | None:
    values = {name: value for name, value in row.items() if name not in (key, field, "$meta")}
    return values or None


def _neutral_distance(distance: Distance, value: float) -> float:
    return 1.0 - value if distance in (Distance.IP, Distance.COSINE) else value
