"""``MemoryEngine``: collections in a dict, filters run by the reference evaluator,
queries by brute force. One process-wide server per ``memory://NAME`` url, so that every
step of a run (each opens the target anew) sees the same data, as with a real server.
Every call holds the server's lock: a scan page is a consistent read, and writers may
run in other threads meanwhile."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from drconsole.engines.adapter import ErrorKind
from drconsole.engines.base import CollectionInfo, EngineInfo, QueryResult, ScanWindow
from drconsole.errors import EngineError
from drconsole.model.filters import Filter, evaluate
from drconsole.model.schema import CollectionSchema, KeyType
from drconsole.records import RecordBatch, SparseVector

VERSION = "reference"


class ReferenceEngineError(EngineError):
    """A refusal of the reference engine; ``kind`` says which."""

    def __init__(self, message: str, kind: ErrorKind, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.kind = kind


@dataclass
class _Record:
    vector: np.ndarray
    document: str | None
    metadata: dict[str, Any] | None
    uri: str | None
    named: dict[str, np.ndarray] = field(default_factory=dict)
    sparse: dict[str, SparseVector | None] = field(default_factory=dict)


@dataclass
class _Collection:
    schema: CollectionSchema
    metadata: dict[str, Any]
    records: dict[str, _Record] = field(default_factory=dict)


@dataclass
class _Server:
    lock: threading.RLock = field(default_factory=threading.RLock)
    databases: dict[str, dict[str, _Collection]] = field(default_factory=dict)


_SERVERS: dict[str, _Server] = {}
_SERVERS_LOCK = threading.Lock()


def open_memory(url: str, options: dict[str, Any], token: str | None) -> MemoryEngine:
    """The adapter's entry (the token is not used: nothing to authenticate against)."""
    return MemoryEngine(url, database=options.get("database"))


def forget(url: str) -> None:
    """Drop a server and all its data (tests start from nothing)."""
    with _SERVERS_LOCK:
        _SERVERS.pop(url, None)


def classify(error: BaseException) -> ErrorKind:
    return error.kind if isinstance(error, ReferenceEngineError) else ErrorKind.UNKNOWN


class MemoryEngine:
    def __init__(self, url: str, *, database: str | None = None) -> None:
        self.url = url
        self.database = database or "default"
        with _SERVERS_LOCK:
            self._server = _SERVERS.setdefault(url, _Server())

    # ----- server and namespace ------------------------------------------------------

    def info(self) -> EngineInfo:
        return EngineInfo("memory", self.url, VERSION, {"database": self.database})

    def ensure_namespace(self) -> None:
        with self._server.lock:
            self._server.databases.setdefault(self.database, {})

    def missing_namespace(self) -> str | None:
        if self.database in self._server.databases:
            return None
        return f"database {self.database} does not exist at {self.url}"

    def _collections(self) -> dict[str, _Collection]:
        collections = self._server.databases.get(self.database)
        if collections is None:
            raise ReferenceEngineError(
                f"database {self.database} does not exist at {self.url}",
                ErrorKind.NOT_FOUND,
                "create the namespace first",
            )
        return collections

    def _collection(self, name: str) -> _Collection:
        collection = self._collections().get(name)
        if collection is None:
            raise ReferenceEngineError(
                f"collection {name} does not exist in {self.database}",
                ErrorKind.NOT_FOUND,
                "check the collection name, or restore its schema first",
            )
        return collection

    # ----- collections ---------------------------------------------------------------

    def list_collections(self) -> list[CollectionInfo]:
        with self._server.lock:
            return [self._info(name, c) for name, c in sorted(self._collections().items())]

    def get_collection(self, name: str) -> CollectionInfo | None:
        with self._server.lock:
            collection = self._collections().get(name)
            return None if collection is None else self._info(name, collection)

    @staticmethod
    def _info(name: str, collection: _Collection) -> CollectionInfo:
        """The collection's schema as created, with the dimensions its records show
        where it was created without them (0: unknown)."""
        first = next(iter(collection.records.values()), None)
        vectors = tuple(
            replace(
                vector,
                dimension=vector.dimension
                or (
                    0
                    if first is None
                    else len(first.vector if number == 0 else first.named[vector.name])
                ),
            )
            for number, vector in enumerate(collection.schema.vectors)
        )
        schema = replace(
            collection.schema,
            vectors=vectors,
            engine_config={"memory": {"metadata": copy.deepcopy(collection.metadata)}},
        )
        return CollectionInfo(name, schema, copy.deepcopy(collection.metadata))

    def create_collection(
        self, name: str, schema: CollectionSchema, metadata: dict[str, Any] | None = None
    ) -> CollectionInfo:
        with self._server.lock:
            if (existing := self.get_collection(name)) is not None:
                return existing
            if metadata is None:
                metadata = (schema.engine_config.get("memory") or {}).get("metadata") or {}
            return self._create(name, schema, metadata)

    def try_create_collection(
        self, name: str, schema: CollectionSchema, metadata: dict[str, Any]
    ) -> CollectionInfo | None:
        with self._server.lock:
            if name in self._collections():
                return None
            return self._create(name, schema, metadata)

    def _create(
        self, name: str, schema: CollectionSchema, metadata: dict[str, Any]
    ) -> CollectionInfo:
        if any(vector.distance not in ("cosine", "l2", "ip") for vector in schema.vectors):
            raise ReferenceEngineError(
                "the reference engine measures cosine, l2 and ip distances only",
                ErrorKind.INVALID,
            )
        collection = _Collection(copy.deepcopy(schema), copy.deepcopy(metadata))
        self._collections()[name] = collection
        return self._info(name, collection)

    def delete_collection(self, name: str) -> None:
        with self._server.lock:
            self._collections().pop(name, None)

    def rename_collection(self, name: str, new_name: str) -> None:
        with self._server.lock:
            collections = self._collections()
            self._collection(name)
            if new_name in collections:
                raise ReferenceEngineError(
                    f"collection {new_name} already exists", ErrorKind.CONFLICT
                )
            collections[new_name] = collections.pop(name)

    # ----- records -------------------------------------------------------------------

    def upsert(self, name: str, batch: RecordBatch) -> None:
        """Each record replaces the one with its id (re-sending a batch changes nothing)."""
        with self._server.lock:
            collection = self._collection(name)
            if problem := _mismatch(collection.schema, batch):
                raise ReferenceEngineError(f"{problem} (into {name})", ErrorKind.INVALID)
            for row, record_id in enumerate(batch.ids):
                collection.records[record_id] = _Record(
                    np.array(batch.vectors[row], dtype=np.float32),
                    batch.documents[row],
                    copy.deepcopy(batch.metadatas[row]) or None,
                    batch.uris[row],
                    {n: np.array(v[row], dtype=np.float32) for n, v in batch.named_vectors.items()},
                    {n: column[row] for n, column in batch.sparse_vectors.items()},
                )

    def scan(
        self, name: str, page_size: int = 1000, window: ScanWindow | None = None
    ) -> Iterator[RecordBatch]:
        """The ids listed at the start, fetched a page at a time; at the end, the ids
        added meanwhile (and those deleted and added again) are fetched too."""
        window = window if window is not None else ScanWindow()
        window.begin()
        with self._server.lock:
            listed = list(self._collection(name).records)
        window.listed = len(listed)
        vanished: set[str] = set()
        yield from self._pages(name, listed, page_size, vanished)
        with self._server.lock:
            late = window.settle(listed, list(self._collection(name).records), vanished)
        yield from self._pages(name, late, page_size, set())
        window.end()

    def _pages(
        self, name: str, ids: list[str], page_size: int, vanished: set[str]
    ) -> Iterator[RecordBatch]:
        for start in range(0, len(ids), page_size):
            wanted = ids[start : start + page_size]
            page = self.get_records(name, wanted)
            vanished.update(set(wanted) - set(page.ids))
            if len(page):
                yield page

    def scan_metadata(
        self, name: str, page_size: int = 5000
    ) -> Iterator[tuple[list[str], list[Any]]]:
        for batch in self.scan(name, page_size):
            yield batch.ids, batch.metadatas

    def get_records(self, name: str, ids: list[str]) -> RecordBatch:
        with self._server.lock:
            records = self._collection(name).records
            found = [(i, records[i]) for i in dict.fromkeys(ids) if i in records]
            schema = self._info(name, self._collection(name)).schema
            return RecordBatch(
                [record_id for record_id, _ in found],
                _stacked([r.vector for _, r in found], schema.dimension),
                [r.document for _, r in found],
                [copy.deepcopy(r.metadata) for _, r in found],
                [None] * len(found),
                [r.uri for _, r in found],
                named_vectors={
                    v.name: _stacked([r.named[v.name] for _, r in found], v.dimension)
                    for v in schema.vectors[1:]
                },
                sparse_vectors={
                    v.name: [r.sparse.get(v.name) for _, r in found] for v in schema.sparse_vectors
                },
            )

    def vector_ulps(self, distance: str) -> int:
        """Vectors come back bit for bit."""
        return 0

    def get_metadata(self, name: str, ids: list[str]) -> dict[str, dict[str, Any] | None]:
        batch = self.get_records(name, ids)
        return dict(zip(batch.ids, batch.metadatas, strict=True))

    def count(self, name: str, where: Filter | None = None) -> int:
        with self._server.lock:
            records = self._collection(name).records
            if where is None:
                return len(records)
            return sum(1 for record in records.values() if evaluate(where, record.metadata))

    def query(
        self,
        name: str,
        vectors: np.ndarray,
        k: int,
        where: Filter | None = None,
        search: dict[str, int | float] | None = None,
    ) -> list[QueryResult]:
        """Exact nearest neighbours (``search`` changes nothing in an exact search),
        ties broken by id; distances as Chroma's (squared
        l2, 1 - dot product, 1 - cosine similarity)."""
        with self._server.lock:
            collection = self._collection(name)
            kept = sorted(
                (record_id, record)
                for record_id, record in collection.records.items()
                if where is None or evaluate(where, record.metadata)
            )
            distance = collection.schema.distance
        if not kept:
            return [QueryResult([], [], []) for _ in vectors]
        matrix = np.stack([record.vector for _, record in kept])
        results = []
        for vector in np.asarray(vectors, dtype=np.float32):
            distances = _distances(matrix, vector, distance)
            order = np.argsort(distances, kind="stable")[:k]
            results.append(
                QueryResult(
                    [kept[i][0] for i in order],
                    [float(distances[i]) for i in order],
                    [copy.deepcopy(kept[i][1].metadata) for i in order],
                )
            )
        return results

    def delete(self, name: str, ids: list[str]) -> None:
        with self._server.lock:
            records = self._collection(name).records
            for record_id in ids:
                records.pop(record_id, None)

    def close(self) -> None:
        """Nothing to release: the data stays with the server, as on a real one."""


def _mismatch(schema: CollectionSchema, batch: RecordBatch) -> str | None:
    """Why the batch does not fit the collection (keys, vectors), or None."""
    if schema.key != KeyType.STRING:
        for record_id in batch.ids:
            if (problem := schema.key.problem(record_id)) is not None:
                return problem
    wanted = {v.name: v.dimension for v in schema.vectors[1:]}
    if set(batch.named_vectors) != set(wanted):
        return f"named vectors {sorted(batch.named_vectors)}, expected {sorted(wanted)}"
    if not set(batch.sparse_vectors) <= {v.name for v in schema.sparse_vectors}:
        return f"sparse vectors {sorted(batch.sparse_vectors)} the collection does not have"
    for label, dimension, given in [
        ("the first vector", schema.dimension, batch.vectors),
        *((f"vector {n}", wanted[n], v) for n, v in batch.named_vectors.items()),
    ]:
        if len(batch) and dimension and given.shape[1] != dimension:
            return f"{label} has dimension {given.shape[1]}, the collection {dimension}"
    return None


def _stacked(vectors: list[np.ndarray], dimension: int) -> np.ndarray:
    return np.array(vectors, dtype=np.float32).reshape(len(vectors), dimension)


def _distances(matrix: np.ndarray, vector: np.ndarray, distance: str) -> np.ndarray:
    if distance == "l2":
        return ((matrix - vector) ** 2).sum(axis=1)
    if distance == "ip":
        return 1.0 - matrix @ vector
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector)
    return 1.0 - (matrix @ vector) / np.where(norms == 0, 1.0, norms)
