"""The restore plan of a chain: its final state, as independent part-level tasks.

A record is written when no newer snapshot in the chain wrote or deleted its (tenant,
id); so every record of the final state is written exactly once and nothing overwritten
or deleted later is written at all, whichever order the tasks run in. What decides it is
the shadow: the keys the incrementals mention, each with the newest snapshot that does,
64-bit keys in sorted numpy arrays (memory bounded by the incrementals' ids, not by the
data).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from drconsole.catalog.manifest import Manifest
from drconsole.catalog.reader import SnapshotReader
from drconsole.catalog.store import ObjectStore
from drconsole.records import RecordBatch


def id_hashes(ids: list[str], tenants: list[str | None]) -> np.ndarray:
    """64-bit keys of (tenant, id), from Python's own string hashing: fast, and the same
    within one process (keys are never stored: whoever compares them computes both sides
    in the same process). Collisions are ~1e-8 likely at a million ids."""
    if all(tenant is None for tenant in tenants):
        keys = np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))
    else:  # a record without a tenant keys as its id alone, whatever its batch holds
        pairs = zip(tenants, ids, strict=True)
        keys = np.fromiter(
            (hash(i) if t is None else hash((t, i)) for t, i in pairs),
            dtype=np.int64,
            count=len(ids),
        )
    return keys.view(np.uint64)


@dataclass(frozen=True)
class PartTask:
    """One records part of one snapshot of the chain. Restoring it writes the part's
    rows that are in the final state; tasks are independent of one another, so they
    may run in any order, on any worker, and be resumed one by one (a task is redone
    whole: upserts make that harmless)."""

    collection: str
    snapshot_id: str
    path: str
    rows: int


class Shadow:
    """Every (tenant, id) key that a snapshot after the chain's base wrote or deleted,
    with the newest such snapshot's position in the chain: a row of the snapshot at
    position p is in the final state when no newer snapshot mentions its key. Built
    from the ids of the incrementals only (the base, usually the bulk, adds nothing)."""

    def __init__(self, keys: np.ndarray, newest: np.ndarray) -> None:
        self.keys = keys
        self.newest = newest

    @classmethod
    def of(cls, mentions: list[tuple[int, np.ndarray]]) -> Shadow:
        """From (chain position, keys) pairs, the newest snapshot first."""
        if not mentions:
            return cls(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32))
        keys = np.concatenate([found for _, found in mentions])
        where = np.concatenate(
            [np.full(len(found), position, dtype=np.int32) for position, found in mentions]
        )
        unique, first = np.unique(keys, return_index=True)  # first: the newest mention
        return cls(unique, where[first])

    def final(self, keys: np.ndarray, position: int) -> np.ndarray:
        """Which rows (by key) of the snapshot at ``position`` are in the final state."""
        if not len(self.keys):
            return np.ones(len(keys), dtype=bool)
        slots = np.searchsorted(self.keys, keys)
        slots[slots == len(self.keys)] = 0
        mentioned = self.keys[slots] == keys
        return ~mentioned | (self.newest[slots] == position)


class RestorePlan:
    """The final state of a chain (base first in ``chain``), collection by collection,
    as part tasks."""

    def __init__(self, store: ObjectStore, chain: list[Manifest]) -> None:
        self.store = store
        self.chain = chain
        self._shadows: dict[str, Shadow] = {}

    @property
    def target(self) -> Manifest:
        return self.chain[-1]

    def collections(self) -> list[str]:
        return [collection.name for collection in self.target.collections]

    def final_count(self, collection: str) -> int:
        entry = self.target.collection(collection)
        return entry.counts["total_after_apply"] if entry else 0

    def tasks(self, collection: str) -> list[PartTask]:
        """Every records part of the chain for this collection, newest snapshot first."""
        found = []
        for manifest in reversed(self.chain):
            entry = manifest.collection(collection)
            if entry is not None:
                reader = SnapshotReader(self.store, manifest)
                found += [
                    PartTask(collection, manifest.id, part.path, part.rows)
                    for part in reader.records_parts(entry)
                ]
        return found

    def shadow(self, collection: str) -> Shadow:
        """The collection's shadow (read once per plan: ids of the incrementals' records
        and deletes, no vectors)."""
        if collection not in self._shadows:
            mentions: list[tuple[int, np.ndarray]] = []
            for position in range(len(self.chain) - 1, 0, -1):
                manifest = self.chain[position]
                entry = manifest.collection(collection)
                if entry is None:
                    continue
                reader = SnapshotReader(self.store, manifest)
                for ids, tenants in [*reader.deletes(entry), *reader.record_keys(entry)]:
                    mentions.append((position, id_hashes(ids, tenants)))
            self._shadows[collection] = Shadow.of(mentions)
        return self._shadows[collection]

    def task_batches(self, task: PartTask) -> Iterator[RecordBatch]:
        """The rows of one part that are in the final state, a batch per row group."""
        position = [manifest.id for manifest in self.chain].index(task.snapshot_id)
        manifest = self.chain[position]
        entry = manifest.collection(task.collection)
        assert entry is not None
        part = next(item for item in entry.files_of("records") if item.path == task.path)
        shadow = self.shadow(task.collection)
        for batch in SnapshotReader(self.store, manifest).part(entry, part):
            keep = shadow.final(id_hashes(batch.ids, batch.tenants), position)
            yield batch if keep.all() else batch.take(np.flatnonzero(keep))

    def batches(self, collection: str) -> Iterator[RecordBatch]:
        """The whole final state of a collection, task after task."""
        for task in self.tasks(collection):
            yield from self.task_batches(task)
