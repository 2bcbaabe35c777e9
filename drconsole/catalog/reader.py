"""Reading a snapshot part by part, checking each file's size and sha256 as it is read.

A mismatch raises IntegrityError naming the file and the snapshot; memory stays bounded
by one part (a records file and its vectors file).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np

from drconsole.catalog import parts, state
from drconsole.catalog.layout import file_key, part_number
from drconsole.catalog.manifest import CollectionEntry, FileEntry, Manifest
from drconsole.catalog.store import MissingObject, ObjectStore
from drconsole.errors import IntegrityError
from drconsole.records import RecordBatch

CHUNK = 1024 * 1024
T = TypeVar("T")


class SnapshotReader:
    def __init__(self, store: ObjectStore, manifest: Manifest) -> None:
        self.store = store
        self.manifest = manifest

    def read_file(self, entry: FileEntry) -> bytearray:
        """The file's bytes, verified against the manifest's size and sha256, read into
        one buffer of the listed size (memory: the file once)."""
        where = f"{entry.path} of snapshot {self.manifest.id}"
        try:
            stream = self.store.open(file_key(self.manifest.id, entry.path))
        except MissingObject:
            raise IntegrityError(
                f"{where} is missing", "the snapshot is broken; restore an older one"
            ) from None
        digest = hashlib.sha256()
        buffer = bytearray(entry.bytes)
        size = 0
        with stream:
            while chunk := stream.read(CHUNK):
                if size + len(chunk) > entry.bytes:
                    raise IntegrityError(
                        f"{where} is larger than the manifest says ({entry.bytes} bytes)"
                    )
                buffer[size : size + len(chunk)] = chunk
                size += len(chunk)
                digest.update(chunk)
        if size != entry.bytes:
            raise IntegrityError(f"{where} has {size} bytes, the manifest says {entry.bytes}")
        if digest.hexdigest() != entry.sha256:
            raise IntegrityError(
                f"{where} fails its checksum (sha256 differs from the manifest)",
                "the file was changed or damaged; restore an older snapshot",
            )
        return buffer

    def records_parts(self, collection: CollectionEntry) -> list[FileEntry]:
        """The collection's records parts, in part order (format 1: each is read with
        its vectors partner)."""
        if self.manifest.version == 1:
            return [records for _, records, _ in pair_parts(collection, self.manifest.id)]
        return sorted(collection.files_of("records"), key=_order)

    def part(self, collection: CollectionEntry, entry: FileEntry) -> Iterator[RecordBatch]:
        """The records of one part: format 2 a batch per row group, format 1 one batch."""
        if self.manifest.version == 1:
            yield self._part_v1(collection, entry)
            return
        from drconsole.catalog import columnar  # pyarrow, loaded when a part is read

        data = self.read_file(entry)
        with self._decoding(entry):
            yield from columnar.records_of(data, collection.schema, entry.rows)

    def record_keys(
        self, collection: CollectionEntry
    ) -> Iterator[tuple[list[str], list[str | None]]]:
        """(ids, tenants) of each records part, without decoding vectors or fields where
        the format allows (format 2 reads only those two columns)."""
        if self.manifest.version == 1:
            for entry in self.records_parts(collection):
                batch = self._part_v1(collection, entry)
                yield batch.ids, batch.tenants
            return
        from drconsole.catalog import columnar

        for entry in self.records_parts(collection):
            data = self.read_file(entry)
            with self._decoding(entry):
                yield columnar.record_keys(data, collection.schema, entry.rows)

    def _part_v1(self, collection: CollectionEntry, records: FileEntry) -> RecordBatch:
        """Format 1: records-N.jsonl.gz with its vectors-N.npy."""
        pairs = {
            entry.path: vectors for _, entry, vectors in pair_parts(collection, self.manifest.id)
        }
        vectors = pairs[records.path]
        record_bytes = self.read_file(records)
        vector_bytes = self.read_file(vectors)
        with self._decoding(records):
            batch = parts.make_batch(
                parts.decode_records(record_bytes),
                parts.decode_vectors(vector_bytes, collection.schema.dimension),
            )
        if len(batch) != records.rows:
            raise IntegrityError(
                f"{records.path} of snapshot {self.manifest.id} has {len(batch)} rows, "
                f"the manifest says {records.rows}"
            )
        return batch

    @contextmanager
    def _decoding(self, entry: FileEntry) -> Iterator[None]:
        """A part that does not decode is an integrity error naming it and the snapshot."""
        try:
            yield
        except ValueError as error:
            raise IntegrityError(f"{entry.path} of snapshot {self.manifest.id}: {error}") from None

    def deletes(self, collection: CollectionEntry) -> Iterator[tuple[list[str], list[str | None]]]:
        from drconsole.catalog import columnar

        yield from self._parts_of(
            collection, "deletes", parts.decode_deletes, columnar.decode_deletes
        )

    def states(
        self, collection: CollectionEntry
    ) -> Iterator[tuple[list[str], list[str | None], np.ndarray]]:
        """(ids, tenants, content hashes) of the collection's state parts."""
        from drconsole.catalog import columnar

        yield from self._parts_of(collection, "state", state.decode_state, columnar.decode_state)

    def _parts_of(
        self,
        collection: CollectionEntry,
        kind: str,
        format_1: Callable[[bytearray], T],
        format_2: Callable[[bytearray, int], T],
    ) -> Iterator[T]:
        """Each part of a kind decoded in the snapshot's format, in part order."""
        for entry in sorted(collection.files_of(kind), key=_order):
            data = self.read_file(entry)
            with self._decoding(entry):
                decoded = (
                    format_1(data) if self.manifest.version == 1 else format_2(data, entry.rows)
                )
            yield decoded


def pair_parts(
    collection: CollectionEntry, snapshot_id: str
) -> list[tuple[int, FileEntry, FileEntry]]:
    """records-N with vectors-N; a part without its partner is an integrity error."""
    records = {part_number(entry.path): entry for entry in collection.files_of("records")}
    vectors = {part_number(entry.path): entry for entry in collection.files_of("vectors")}
    if None in records or None in vectors or set(records) != set(vectors):
        raise IntegrityError(
            f"collection {collection.name} of snapshot {snapshot_id}: records and vectors parts "
            "do not pair up (records-N needs vectors-N)"
        )
    pairs = []
    for number in sorted(n for n in records if n is not None):
        if records[number].rows != vectors[number].rows:
            raise IntegrityError(
                f"{records[number].path} and {vectors[number].path} of snapshot {snapshot_id} "
                "list different row counts"
            )
        pairs.append((number, records[number], vectors[number]))
    return pairs


def _order(entry: FileEntry) -> tuple[int, str]:
    number = part_number(entry.path)
    return (number if number is not None else -1, entry.path)
