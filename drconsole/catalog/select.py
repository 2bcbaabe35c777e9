"""Choosing the recovery point: the newest snapshot whose whole chain is intact at the
asked depth, optionally at or before a given time, with its age against the RPO."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drconsole.catalog.catalog import CatalogView
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.store import ObjectStore
from drconsole.catalog.verify import ByteProgress, Depth, VerifyResult, verify
from drconsole.errors import IntegrityError
from drconsole.timefmt import format_duration, format_utc


@dataclass
class Selection:
    """The chosen snapshot, its chain (base first), the verification that proved it,
    and the newer snapshots passed over with the reason."""

    manifest: Manifest
    chain: list[Manifest]
    verification: VerifyResult
    skipped: list[dict[str, str]] = field(default_factory=list)

    def age_s(self, now: datetime) -> float:
        return (now - self.manifest.recovery_point).total_seconds()

    def to_record(self) -> dict[str, Any]:
        """The data of the ``snapshot.selected`` event."""
        return {
            "snapshot_id": self.manifest.id,
            "recovery_point": format_utc(self.manifest.recovery_point),
            "chain": [item.id for item in self.chain],
            "verify_depth": self.verification.depth,
            "verify_seed": self.verification.seed,
            "ingest_checkpoint": self.manifest.ingest_checkpoint,
            "skipped": self.skipped,
            "collections": [collection.name for collection in self.manifest.collections],
        }


def select_recovery_point(
    view: CatalogView,
    store: ObjectStore,
    depth: Depth,
    *,
    at_or_before: datetime | None = None,
    snapshot_id: str | None = None,
    where: Callable[[Manifest], bool] | None = None,
    progress: ByteProgress | None = None,
    cancel: threading.Event | None = None,
) -> Selection:
    """The newest intact recovery point among the snapshots ``where`` accepts (or exactly
    ``snapshot_id`` if it is intact)."""
    if snapshot_id is not None:
        candidates = [view.require(snapshot_id)]
    else:
        candidates = sorted(view.snapshots.values(), key=lambda m: m.recovery_point, reverse=True)
        if where is not None:
            candidates = [m for m in candidates if where(m)]
        if at_or_before is not None:
            candidates = [m for m in candidates if m.recovery_point <= at_or_before]
    skipped: list[dict[str, str]] = []
    checked: dict[str, VerifyResult] = {}
    for candidate in candidates:
        chain, _ = view.chain(candidate.id)
        ids = [item.id for item in chain]
        unchecked = [item for item in ids if item not in checked]
        if unchecked:
            result = verify(view, store, unchecked, depth, progress=progress, cancel=cancel)
            for item in unchecked:
                checked[item] = result.only(item)
        findings = [finding for item in ids for finding in checked[item].findings]
        if not findings:
            verification = VerifyResult(str(depth), checked[candidate.id].seed, ids)
            return Selection(candidate, chain, verification, skipped)
        skipped.append({"snapshot_id": candidate.id, "reason": findings[0].message})
    when = f" at or before {format_utc(at_or_before)}" if at_or_before else ""
    detail = "; ".join(f"{item['snapshot_id']}: {item['reason']}" for item in skipped[:3])
    raise IntegrityError(
        f"no intact recovery point{when} in {view.url} at depth {depth}"
        + (f" ({detail})" if detail else ""),
        "check the catalog with `drconsole catalog verify`; an older snapshot or another "
        "catalog may be intact",
    )


def rpo_note(selection: Selection, now: datetime, rpo_s: float | None) -> str:
    """``age 2h 10m (RPO 4h: within)`` for people."""
    age = selection.age_s(now)
    if rpo_s is None:
        return f"age {format_duration(age)}"
    verdict = "within" if age <= rpo_s else "OVER"
    return f"age {format_duration(age)} (RPO {format_duration(rpo_s)}: {verdict})"
