"""Writing a snapshot: parts first, each hashed as stored, ``manifest.json`` last.

A snapshot whose writer stopped before ``finish`` has no manifest: the catalog lists it
as unfinished and never offers it for restore. Memory is bounded by one part.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from drconsole import __version__
from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.index import IndexEntry
from drconsole.catalog.layout import claim_key, file_key, mac_key, manifest_key, part_path
from drconsole.catalog.manifest import CollectionEntry, FileEntry, Manifest
from drconsole.catalog.store import ObjectExists, ObjectStore
from drconsole.errors import StoreError
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch
from drconsole.timefmt import format_utc, utc_now

PART_ROWS = 4096
"""Rows per part. A restore holds one part's bytes while it checks and decodes it: at
384-d a part is about 7 MB (10,000 rows were 17 MB, and the restore's peak memory 162
MiB at 1M records against 146 MiB now, no slower)."""


class SnapshotWriter:
    """Writes one snapshot's files into a store; ``finish`` writes the manifest (then
    ``written`` holds its bytes and tag, for the catalog index)."""

    def __init__(
        self,
        store: ObjectStore,
        snapshot_id: str,
        part_rows: int = PART_ROWS,
        key: CatalogKey | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.snapshot_id = snapshot_id
        self.part_rows = part_rows
        self.collections: list[CollectionEntry] = []
        self.golden: list[FileEntry] = []
        self.written: IndexEntry | None = None
        self._claimed = False

    def claim(self) -> None:
        """Take the snapshot id before writing anything under it: ``claim.json`` is
        written create-only, so a second writer with the same id stops here instead of
        overwriting the first one's parts. It also says who started an unfinished upload."""
        if self._claimed:
            return
        claim = {
            "snapshot_id": self.snapshot_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": format_utc(utc_now()),
        }
        try:
            self.store.create(claim_key(self.snapshot_id), json.dumps(claim).encode())
        except ObjectExists:
            raise StoreError(
                f"snapshot id {self.snapshot_id} is taken in {self.store.url}; nothing was written",
                "another snapshot took the same id: take the snapshot again",
            ) from None
        self._claimed = True

    def put(self, relative_path: str, kind: str, data: bytes, rows: int = 0) -> FileEntry:
        """Store one file and describe it (sha256 and size of the bytes as stored)."""
        self.claim()
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
        point_in_time: dict[str, Any] | None = None,
        physical: dict[str, Any] | None = None,
        physical_parts: list[FileEntry] | None = None,
    ) -> Manifest:
        """Write ``manifest.json`` (after every part is durable, and after its tag when
        the catalog has a key) and return it."""
        self.claim()
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
            point_in_time=dict(point_in_time or {}),
            parent_format=parent.format if parent else None,
            physical=dict(physical or {}),
            physical_parts=list(physical_parts or []),
        )
        data = manifest.to_bytes()
        tag = self.key.tag(data) if self.key is not None else None
        try:
            if tag is not None:
                self.store.create(mac_key(self.snapshot_id), tag)
            self.store.create(manifest_key(self.snapshot_id), data)
        except ObjectExists:
            raise StoreError(
                f"snapshot {self.snapshot_id} already has a manifest in {self.store.url}; "
                "this snapshot was not recorded",
                "another snapshot took the same id: take the snapshot again",
            ) from None
        self.written = IndexEntry(self.snapshot_id, data, tag)
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
    _state_parts: int = 0

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
        from drconsole.catalog import columnar  # pyarrow, loaded when a part is written

        for start in range(0, len(ids), self.snapshot.part_rows):
            chunk_ids = ids[start : start + self.snapshot.part_rows]
            chunk_tenants = tenants[start : start + self.snapshot.part_rows]
            data = columnar.encode_deletes(chunk_ids, chunk_tenants)
            path = part_path(self.name, "deletes", self._delete_parts)
            self.files.append(self.snapshot.put(path, "deletes", data, len(chunk_ids)))
            self._delete_parts += 1
            self.deletes += len(chunk_ids)

    def add_state(self, ids: list[str], tenants: list[str | None], hashes: np.ndarray) -> None:
        """One part of the collection's state: each record's content hash (``state``)."""
        from drconsole.catalog import columnar

        data = columnar.encode_state(ids, tenants, hashes)
        path = part_path(self.name, "state", self._state_parts)
        self.files.append(self.snapshot.put(path, "state", data, len(ids)))
        self._state_parts += 1

    def close(
        self,
        *,
        total_after_apply: int,
        embedding: dict[str, Any] | None = None,
        tenants: list[dict[str, Any]] | None = None,
        not_restorable: list[str] | None = None,
        scan: dict[str, Any] | None = None,
    ) -> CollectionEntry:
        while self._pending_rows:
            self._flush(min(self._pending_rows, self.snapshot.part_rows))
        entry = CollectionEntry(
            name=self.name,
            schema=self.schema,
            embedding=dict(embedding or {}),
            tenants=list(tenants or []),
            counts={
                "records": self.records,
                "deletes": self.deletes,
                "total_after_apply": total_after_apply,
            },
            files=self.files,
            not_restorable=list(not_restorable or []),
            scan=dict(scan or {}),
        )
        self.snapshot.collections.append(entry)
        return entry

    def _flush(self, rows: int) -> None:
        from drconsole.catalog import columnar

        batch = RecordBatch.join(self._pending, self.schema.dimension)
        part, rest = batch.slice(0, rows), batch.slice(rows, len(batch))
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)
        number = self._parts
        self.files.append(
            self.snapshot.put(
                part_path(self.name, "records", number),
                "records",
                columnar.encode_records(part),
                len(part),
            )
        )
        self._parts += 1
        self.records += len(part)
