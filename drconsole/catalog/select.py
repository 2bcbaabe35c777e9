"""Choosing the recovery point: the newest snapshot whose whole chain is intact at the
asked depth, optionally at or before a given time, with its age against the RPO."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drconsole.catalog.catalog import CLOCK_SKEW, NOT_AUTHENTIC, CatalogView
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.store import ObjectStore
from drconsole.catalog.verify import ByteProgress, Depth, VerifyResult, verify
from drconsole.errors import IntegrityError
from drconsole.timefmt import format_duration, format_utc, parse_compact_utc, utc_now


@dataclass
class Selection:
    """The chosen snapshot, its chain (base first), the verification that proved it,
    whether its manifest is signed with the catalog key, and the newer snapshots passed
    over with the reason."""

    manifest: Manifest
    chain: list[Manifest]
    verification: VerifyResult
    skipped: list[dict[str, str]] = field(default_factory=list)
    signed: bool = False

    def age_s(self, now: datetime) -> float:
        return (now - self.manifest.recovery_point).total_seconds()

    def to_record(self) -> dict[str, Any]:
        """The data of the ``snapshot.selected`` event."""
        return {
            "snapshot_id": self.manifest.id,
            "recovery_point": format_utc(self.manifest.recovery_point),
            "point_in_time": self.manifest.point_in_time_note(),
            "chain": [item.id for item in self.chain],
            "verify_depth": self.verification.depth,
            "verify_seed": self.verification.seed,
            "signed": self.signed,
            "source": self.manifest.source,
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
    allow_unsigned: bool = False,
    now: datetime | None = None,
    progress: ByteProgress | None = None,
    cancel: threading.Event | None = None,
) -> Selection:
    """The newest restorable recovery point among the snapshots ``where`` accepts (or
    exactly ``snapshot_id``): its manifest is valid and authentic (or unsigned ones are
    allowed), its recovery point is not in the future, and its whole chain is intact at
    ``depth``. Newer snapshots that fail any of this, invalid manifests among them (dated
    by their id), are passed over and listed with the reason in ``skipped``."""
    now = now or utc_now()
    candidates: list[tuple[datetime, str, Manifest | None]]
    if snapshot_id is not None:
        manifest = view.require(snapshot_id)
        candidates = [(manifest.recovery_point, manifest.id, manifest)]
    else:
        candidates = [
            (m.recovery_point, m.id, m) for m in view.snapshots.values() if not where or where(m)
        ]
        candidates += [
            (started, invalid_id, None)
            for invalid_id in view.invalid
            if (started := parse_compact_utc(invalid_id)) is not None
        ]
        if at_or_before is not None:
            candidates = [item for item in candidates if item[0] <= at_or_before]
        candidates.sort(key=lambda item: (item[0], item[1]), reverse=True)
    skipped: list[dict[str, str]] = []
    checked: dict[str, VerifyResult] = {}
    for _, candidate_id, candidate in candidates:
        if candidate is not None and view.confirm(store, _at_stake(view, candidate)):
            return select_recovery_point(  # the index was stale: choose again on the truth
                view,
                store,
                depth,
                at_or_before=at_or_before,
                snapshot_id=snapshot_id,
                where=where,
                allow_unsigned=allow_unsigned,
                now=now,
                progress=progress,
                cancel=cancel,
            )
        if candidate is None:
            reason = f"invalid manifest: {view.invalid[candidate_id]}"
        else:
            reason = view.rejection(candidate, now, allow_unsigned=allow_unsigned)
        if reason is not None or candidate is None:
            skipped.append({"snapshot_id": candidate_id, "reason": reason or ""})
            continue
        chain, _ = view.chain(candidate.id)
        ids = [item.id for item in chain]
        unchecked = [item for item in ids if item not in checked]
        if unchecked:
            result = verify(view, store, unchecked, depth, progress=progress, cancel=cancel)
            for item in unchecked:
                checked[item] = result.only(item)
        findings = [
            finding
            for item in ids
            for finding in checked[item].findings
            if finding.kind != NOT_AUTHENTIC  # the head was checked; it pins its ancestors
        ]
        if not findings:
            verification = VerifyResult(str(depth), checked[candidate.id].seed, ids)
            return Selection(candidate, chain, verification, skipped, view.signed(candidate.id))
        skipped.append({"snapshot_id": candidate.id, "reason": findings[0].message})
    when = f" at or before {format_utc(at_or_before)}" if at_or_before else ""
    detail = "; ".join(f"{item['snapshot_id']}: {item['reason']}" for item in skipped[:3])
    raise IntegrityError(
        f"no restorable recovery point{when} in {view.url} at depth {depth}"
        + (f" ({detail})" if detail else ""),
        "check the catalog with `drconsole catalog verify`; an older snapshot or another "
        "catalog may be intact",
    )


def _at_stake(view: CatalogView, candidate: Manifest) -> list[str]:
    """The snapshots whose manifests must be read from their folders before
    ``candidate`` is chosen: its chain, and every snapshot an index copy might be hiding
    as older than it (its id, named when it was started, is not clearly older)."""
    cutoff = candidate.recovery_point - CLOCK_SKEW
    newer = [
        item
        for item in view.unconfirmed
        if (started := parse_compact_utc(item)) is None or started >= cutoff
    ]
    return [item.id for item in view.chain(candidate.id)[0]] + sorted(newer)


def rpo_note(selection: Selection, now: datetime, rpo_s: float | None) -> str:
    """``age 2h 10m (RPO 4h: within)`` for people."""
    age = selection.age_s(now)
    if rpo_s is None:
        return f"age {format_duration(age)}"
    verdict = "within" if age <= rpo_s else "OVER"
    return f"age {format_duration(age)} (RPO {format_duration(rpo_s)}: {verdict})"
