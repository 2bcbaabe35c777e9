"""Writing a snapshot: parts first, each hashed as stored, ``manifest.json`` last.

A snapshot whose writer stopped before ``finish`` has no manifest: the catalog lists it
as unfinished and never offers it for restore. Memory is bounded by one part.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from drconsole import __version__
from drconsole.catalog import parts
from drconsole.catalog.layout import file_key, manifest_key, part_path
from drconsole.catalog.manifest import CollectionEntry, FileEntry, Manifest
from drconsole.catalog.store import ObjectStore
from drconsole.records import CollectionSchema, RecordBatch
from drconsole.timefmt import utc_now

PART_ROWS = 10_000


class SnapshotWriter:
    """Writes one snapshot's files into a store; ``finish`` writes the manifest."""

    def __init__(self, store: ObjectStore, snapshot_id: str, part_rows: int = PART_ROWS) -> None:
        self.store = store
        self.snapshot_id = snapshot_id
        self.part_rows = part_rows
        self.collections: list[CollectionEntry] = []
        self.golden: list[FileEntry] = []

    def put(self, relative_path: str, kind: str, data: bytes, rows: int = 0) -> FileEntry:
        """Store one file and describe it (sha256 and size of the bytes as stored)."""
        digest = hashlib.sha256(data).hexdigest()
        with self.store.writer(file_key(self.snapshot_id, relative_path)) as handle:
            handle.write(data)
        return FileEntry(relative_path, kind, rows, len(data), digest)

    def add_golden(self, name: str, data: bytes) -> None:
        """Keep a golden set file in the snapshot (``golden/NAME``, listed with its sha256)."""
        self.golden.append(self.put(f"golden/{name}", "golden", data))

    def collection(self, name: str, schema: CollectionSchema) -> CollectionWriter:
        return CollectionWriter(self, name, schema)

    def finish(
        self,
        *,
        kind: str,
        parent: Manifest | None,
        created_at: datetime,
        recovery_point: datetime,
        source: dict[str, Any],
        ingest_checkpoint: dict[str, str] | None = None,
        permissions: dict[str, Any] | None = None,
    ) -> Manifest:
        """Write ``manifest.json`` (after every part is durable) and return it."""
        manifest = Manifest(
            id=self.snapshot_id,
            kind=kind,
            parent=parent.id if parent else None,
            parent_manifest_sha256=parent.sha256 if parent else None,
            created_at=created_at,
            completed_at=utc_now(),
            recovery_point=recovery_point,
            source=source,
            ingest_checkpoint=dict(ingest_checkpoint or {}),
            permissions=dict(permissions or {}),
            collections=self.collections,
            golden=self.golden,
            tool={"name": "drconsole", "version": __version__},
        )
        data = manifest.to_bytes()
        with self.store.writer(manifest_key(self.snapshot_id)) as handle:
            handle.write(data)
        return Manifest(**{**manifest.__dict__, "sha256": hashlib.sha256(data).hexdigest()})


@dataclass
class CollectionWriter:
    """Buffers one collection's records into parts of ``part_rows`` rows."""

    snapshot: SnapshotWriter
    name: str
    schema: CollectionSchema
    files: list[FileEntry] = field(default_factory=list)
    records: int = 0
    deletes: int = 0
    _pending: list[RecordBatch] = field(default_factory=list)
    _pending_rows: int = 0
    _parts: int = 0
    _delete_parts: int = 0

    def add(self, batch: RecordBatch) -> None:
        if len(batch) and self.schema.dimension and batch.dimension != self.schema.dimension:
            raise ValueError(
                f"{self.name}: vectors of dimension {batch.dimension}, "
                f"the schema says {self.schema.dimension}"
            )
        self._pending.append(batch)
        self._pending_rows += len(batch)
        while self._pending_rows >= self.snapshot.part_rows:
            self._flush(self.snapshot.part_rows)

    def delete(self, ids: list[str], tenants: list[str | None]) -> None:
        for start in range(0, len(ids), self.snapshot.part_rows):
            chunk_ids = ids[start : start + self.snapshot.part_rows]
            data = parts.encode_deletes(chunk_ids, tenants[start : start + self.snapshot.part_rows])
            path = part_path(self.name, "deletes", self._delete_parts)
            self.files.append(self.snapshot.put(path, "deletes", data, len(chunk_ids)))
            self._delete_parts += 1
            self.deletes += len(chunk_ids)

    def add_file(self, entry_path: str, kind: str, data: bytes, rows: int = 0) -> None:
        self.files.append(self.snapshot.put(f"{self.name}/{entry_path}", kind, data, rows))

    def close(
        self,
        *,
        total_after_apply: int,
        embedding: dict[str, Any] | None = None,
        tenants: list[dict[str, Any]] | None = None,
        aliases: list[str] | None = None,
    ) -> CollectionEntry:
        while self._pending_rows:
            self._flush(min(self._pending_rows, self.snapshot.part_rows))
        entry = CollectionEntry(
            name=self.name,
            schema=self.schema,
            embedding=dict(embedding or {}),
            tenants=list(tenants or []),
            aliases=list(aliases or []),
            counts={
                "records": self.records,
                "deletes": self.deletes,
                "total_after_apply": total_after_apply,
            },
            files=self.files,
        )
        self.snapshot.collections.append(entry)
        return entry

    def _flush(self, rows: int) -> None:
        batch = _concat(self._pending, self.schema.dimension)
        part, rest = batch.slice(0, rows), batch.slice(rows, len(batch))
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)
        number = self._parts
        self.files.append(
            self.snapshot.put(
                part_path(self.name, "records", number),
                "records",
                parts.encode_records(part),
                len(part),
            )
        )
        self.files.append(
            self.snapshot.put(
                part_path(self.name, "vectors", number),
                "vectors",
                parts.encode_vectors(part.vectors),
                len(part),
            )
        )
        self._parts += 1
        self.records += len(part)


def _concat(batches: list[RecordBatch], dimension: int) -> RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return RecordBatch(
        ids=[i for b in batches for i in b.ids],
        vectors=np.concatenate([b.vectors for b in batches])
        if batches
        else np.zeros((0, dimension), "<f4"),
        documents=[d for b in batches for d in b.documents],
        metadatas=[m for b in batches for m in b.metadatas],
        tenants=[t for b in batches for t in b.tenants],
    )
