"""What the restored data should look like, gathered in one pass over a chain's final
state.

The validation gates compare the target with this truth, never with the target itself:
the id set, ids per tenant and per ACL group, the ids that carry no tenant or ACL field,
how many records each runbook filter matches, and a seeded sample of records. Id sets
are sorted arrays of 64-bit id hashes (8 bytes a record), so that one truth can be kept
for every collection of a run and shared by its gates (``actions.shared``); the few ids
a failure names are read again from the chain (``names_of``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drconsole.catalog.plan import RestorePlan, id_hashes
from drconsole.model.filters import evaluate
from drconsole.records import RecordBatch


def id_keys(ids: list[str]) -> np.ndarray:
    """The 64-bit keys of ids (as the target lists them: without a tenant)."""
    return id_hashes(ids, [None] * len(ids))


class KeySet:
    """Ids as a sorted array of their 64-bit keys."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = np.unique(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def has(self, ids: list[str]) -> np.ndarray:
        """For each id, whether it is in the set."""
        keys = id_keys(ids)
        if not len(self.keys):
            return np.zeros(len(keys), dtype=bool)
        positions = np.searchsorted(self.keys, keys)
        positions[positions == len(self.keys)] = 0
        return self.keys[positions] == keys

    def __contains__(self, record_id: str) -> bool:
        return bool(self.has([record_id])[0])

    def outside(self, ids: Iterable[str]) -> list[str]:
        """The ids that are not in the set, in the order given."""
        listed = list(ids)
        inside = self.has(listed)
        return [record_id for record_id, known in zip(listed, inside, strict=True) if not known]


EMPTY = KeySet(np.zeros(0, dtype=np.uint64))


@dataclass(frozen=True)
class TruthSpec:
    """What a truth gathers: the permission fields, the filters (name, parsed tree) and
    the sample. One that gathers more serves a gate that asks for less."""

    tenant_field: str | None = None
    acl_field: str | None = None
    filters: tuple[tuple[str, Any], ...] = ()
    sample_size: int = 0
    seed: int = 0

    def covers(self, other: TruthSpec) -> bool:
        return (
            (self.tenant_field, self.acl_field) == (other.tenant_field, other.acl_field)
            and set(other.filters) <= set(self.filters)
            and (
                not other.sample_size
                or (self.sample_size, self.seed) == (other.sample_size, other.seed)
            )
        )


@dataclass
class Truth:
    ids: KeySet = EMPTY
    tenant_ids: dict[str, KeySet] = field(default_factory=dict)
    group_ids: dict[str, KeySet] = field(default_factory=dict)
    lacking: dict[str, KeySet] = field(default_factory=dict)
    filter_counts: dict[str, int] = field(default_factory=dict)
    sample: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.ids)

    def tenant_of(self, record_id: str) -> str | None:
        return next((tenant for tenant, ids in self.tenant_ids.items() if record_id in ids), None)


def permission_values(metadata: dict[str, Any] | None, field_name: str | None) -> list[str]:
    """The tenant or ACL groups a record carries (an ACL field may hold one or many)."""
    if not field_name or not metadata or metadata.get(field_name) is None:
        return []
    value = metadata[field_name]
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


class TruthBuilder:
    """Gathers a truth batch by batch (a gate may do other work on the same batches)."""

    def __init__(self, collection: str, spec: TruthSpec) -> None:
        self.spec = spec
        self.truth = Truth(filter_counts={name: 0 for name, _ in spec.filters})
        self._rng = random.Random(f"{spec.seed}:{collection}")
        self._seen = 0
        self._ids: list[np.ndarray] = []
        self._groups: dict[str, dict[str, list[np.ndarray]]] = {
            "tenant": {},
            "acl": {},
            "lacking": {},
        }

    def add(self, batch: RecordBatch) -> None:
        keys = id_keys(batch.ids)
        self._ids.append(keys)
        spec, truth = self.spec, self.truth
        rows: dict[str, dict[str, list[int]]] = {"tenant": {}, "acl": {}, "lacking": {}}
        for row, metadata in enumerate(batch.metadatas):
            for tenant in permission_values(metadata, spec.tenant_field):
                rows["tenant"].setdefault(tenant, []).append(row)
            for group in permission_values(metadata, spec.acl_field):
                rows["acl"].setdefault(group, []).append(row)
            for label in (spec.tenant_field, spec.acl_field):
                if label and (metadata is None or metadata.get(label) is None):
                    rows["lacking"].setdefault(label, []).append(row)
            for name, tree in spec.filters:
                if evaluate(tree, metadata):
                    truth.filter_counts[name] += 1
            self._seen += 1
            if len(truth.sample) < spec.sample_size:
                truth.sample.append((batch.ids[row], metadata))
            elif spec.sample_size and (slot := self._rng.randrange(self._seen)) < spec.sample_size:
                truth.sample[slot] = (batch.ids[row], metadata)
        for kind, by_value in rows.items():
            for value, positions in by_value.items():
                self._groups[kind].setdefault(value, []).append(keys[positions])

    def finish(self) -> Truth:
        def sets(kind: str) -> dict[str, KeySet]:
            return {
                value: KeySet(np.concatenate(parts)) for value, parts in self._groups[kind].items()
            }

        truth = self.truth
        truth.ids = KeySet(np.concatenate(self._ids)) if self._ids else EMPTY
        truth.tenant_ids, truth.group_ids, truth.lacking = (
            sets("tenant"),
            sets("acl"),
            sets("lacking"),
        )
        return truth


def final_state_truth(plan: RestorePlan, collection: str, spec: TruthSpec) -> Truth:
    """The truth of a collection of the chain's final state, in one pass."""
    builder = TruthBuilder(collection, spec)
    for batch in plan.batches(collection):
        builder.add(batch)
    return builder.finish()


def names_of(plan: RestorePlan, collection: str, missing: KeySet, limit: int) -> list[str]:
    """Up to ``limit`` ids of the final state whose keys are in ``missing`` (another pass
    over the chain: only a failing gate names ids)."""
    found: list[str] = []
    for batch in plan.batches(collection):
        inside = missing.has(batch.ids)
        found += [record_id for record_id, hit in zip(batch.ids, inside, strict=True) if hit]
        if len(found) >= limit:
            break
    return sorted(found[:limit])
