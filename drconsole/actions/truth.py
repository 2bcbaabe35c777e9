"""What the restored data should look like: one pass over a chain's final state.

The validation gates compare the target with this truth, never with the target itself:
the id set, counts per tenant, ids per tenant and per ACL group, the ids that carry no
tenant or ACL field, how many records each runbook filter matches, a seeded sample of
records, and the metadata of any ids asked for.
Memory holds ids (not vectors or documents).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from drconsole.catalog.plan import RestorePlan
from drconsole.model.filters import evaluate


@dataclass
class Truth:
    ids: set[str] = field(default_factory=set)
    tenant_ids: dict[str, set[str]] = field(default_factory=dict)
    group_ids: dict[str, set[str]] = field(default_factory=dict)
    filter_counts: dict[str, int] = field(default_factory=dict)
    sample: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)
    wanted: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    lacking: dict[str, set[str]] = field(default_factory=dict)

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


def final_state_truth(
    plan: RestorePlan,
    collection: str,
    *,
    tenant_field: str | None = None,
    acl_field: str | None = None,
    filters: list[dict[str, Any]] | None = None,
    sample_size: int = 0,
    seed: int = 0,
    want: set[str] | None = None,
) -> Truth:
    filters = filters or []
    truth = Truth(filter_counts={f["name"]: 0 for f in filters})
    rng = random.Random(f"{seed}:{collection}")
    seen = 0
    for _, batch in plan.batches(collection):
        for record_id, metadata in zip(batch.ids, batch.metadatas, strict=True):
            truth.ids.add(record_id)
            for tenant in permission_values(metadata, tenant_field):
                truth.tenant_ids.setdefault(tenant, set()).add(record_id)
            for group in permission_values(metadata, acl_field):
                truth.group_ids.setdefault(group, set()).add(record_id)
            for label in (tenant_field, acl_field):
                if label and (metadata is None or metadata.get(label) is None):
                    truth.lacking.setdefault(label, set()).add(record_id)
            for item in filters:
                if evaluate(item["tree"], metadata):
                    truth.filter_counts[item["name"]] += 1
            if want is not None and record_id in want:
                truth.wanted[record_id] = metadata
            seen += 1
            if len(truth.sample) < sample_size:
                truth.sample.append((record_id, metadata))
            elif sample_size and (slot := rng.randrange(seen)) < sample_size:
                truth.sample[slot] = (record_id, metadata)
    return truth
