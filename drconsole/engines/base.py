"""The neutral engine interface every vector-database adapter implements.

Engines know nothing of catalogs: they speak ``CollectionSchema`` and ``RecordBatch``
(``drconsole.records``) and the types below.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from drconsole.model.filters import Filter
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch
from drconsole.timefmt import utc_now

SCOPE = ":"
"""``SCOPE:NAME`` names a collection in a part of the target other than its own namespace
(a PostgreSQL schema: one schema per tenant). Names drconsole derives from a collection's
(staging, lease, aside) change NAME and keep the scope; an engine without scopes refuses
such a name as it would any name it cannot hold."""


@dataclass(frozen=True)
class EngineInfo:
    """Who we are talking to: recorded as a snapshot's source."""

    engine: str
    url: str
    server_version: str
    namespace: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "url": self.url,
            "server_version": self.server_version,
            "namespace": self.namespace,
        }


@dataclass(frozen=True)
class CollectionInfo:
    """A collection as the engine describes it, mapped to the neutral schema;
    ``unrestorable`` names what of it the engine could not be given back."""

    name: str
    schema: CollectionSchema
    metadata: dict[str, Any] = field(default_factory=dict)
    unrestorable: tuple[str, ...] = ()


@dataclass
class ScanWindow:
    """What a full scan saw while it ran: when it started and ended, how many records it
    listed, and the changes it saw other writers make meanwhile (records deleted before
    it read them or after, records added after it listed the ids). An update in place of
    a record is not visible to a scan and is not counted."""

    started_at: datetime | None = None
    ended_at: datetime | None = None
    listed: int = 0
    deleted: int = 0
    added: int = 0

    def begin(self) -> None:
        self.started_at = utc_now()

    def end(self) -> None:
        self.ended_at = utc_now()

    def settle(self, listed: list[str], final: list[str], vanished: set[str]) -> list[str]:
        """Learn what the scan saw from the ids listed at its start and at its end and
        those that vanished before they were read; the ids it must still fetch (added
        meanwhile, or deleted and added again), in the final listing's order."""
        known, still = set(listed), set(final)
        self.added = len(still - known)
        self.deleted = len(known - still) + len(vanished & still)
        return [record_id for record_id in final if record_id not in known or record_id in vanished]

    @property
    def changes_seen(self) -> int:
        return self.deleted + self.added


@dataclass(frozen=True)
class LoadFinished:
    """What ``finish_load`` did after a restore's data: the indexes it built, and what
    the operator must still do (e.g. set a password of a role it made)."""

    indexes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """What of the schema it could not make (an index it cannot rebuild), for people."""


@dataclass(frozen=True)
class QueryResult:
    """Nearest neighbours of one query vector, best first."""

    ids: list[str]
    distances: list[float]
    metadatas: list[dict[str, Any] | None]


class Engine(Protocol):
    """What drconsole needs from a vector database."""

    def info(self) -> EngineInfo: ...

    def ensure_namespace(self) -> None:
        """Create the tenant/database (or equivalent) when missing."""
        ...

    def missing_namespace(self) -> str | None:
        """Why the namespace (tenant, database or equivalent) cannot be used, naming
        what is missing; None when it exists."""
        ...

    def list_collections(self) -> list[CollectionInfo]: ...

    def get_collection(self, name: str) -> CollectionInfo | None: ...

    def create_collection(
        self, name: str, schema: CollectionSchema, metadata: dict[str, Any] | None = None
    ) -> CollectionInfo:
        """Create a collection like ``schema`` (with the metadata it was saved with,
        unless other ``metadata`` is given)."""
        ...

    def try_create_collection(
        self, name: str, schema: CollectionSchema, metadata: dict[str, Any]
    ) -> CollectionInfo | None:
        """Create a collection only if none has that name (atomically); None if one has."""
        ...

    def delete_collection(self, name: str) -> None: ...

    def rename_collection(self, name: str, new_name: str) -> None:
        """Give a collection another name, in one step (its data stays where it is)."""
        ...

    def upsert(self, name: str, batch: RecordBatch) -> None: ...

    def scan(
        self, name: str, page_size: int, window: ScanWindow | None = None
    ) -> Iterator[RecordBatch]:
        """Every record with its vector, in pages. Under concurrent writes, no record that
        exists for the whole scan is missed, and each record appears once, in a state it
        had during the scan; ``window`` learns what the scan saw."""
        ...

    def scan_metadata(
        self, name: str, page_size: int = 5000
    ) -> Iterator[tuple[list[str], list[Any]]]:
        """(ids, metadatas) pages, without vectors: a cheap full scan."""
        ...

    def get_records(self, name: str, ids: list[str]) -> RecordBatch:
        """The records of the given ids, whole (vector, document, metadata, uri); ids the
        collection lacks are left out."""
        ...

    def vector_ulps(self, distance: str) -> int:
        """How far (in units in the last place) a stored vector may come back from what
        was written: the engine's declared rounding; 0 means bit for bit."""
        ...

    def get_metadata(self, name: str, ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """Metadata of the given ids; ids the collection lacks are absent."""
        ...

    def count(self, name: str, where: Filter | None = None) -> int:
        """How many records the collection holds (that pass ``where``: the adapter
        compiles the neutral filter into its own dialect)."""
        ...

    def query(
        self,
        name: str,
        vectors: np.ndarray,
        k: int,
        where: Filter | None = None,
        search: dict[str, int | float] | None = None,
    ) -> list[QueryResult]:
        """Nearest neighbours; ``search`` holds search parameters by neutral names
        (``ef_search``, ``probes``) to search with, e.g. the snapshot's, where the engine
        keeps them per session and not with the collection."""
        ...

    def delete(self, name: str, ids: list[str]) -> None: ...

    def close(self) -> None: ...
