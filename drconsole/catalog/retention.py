"""Retention that explains itself: ``keep: {last, daily, weekly}`` gives a plan in which
every snapshot is kept with its reasons or removed. Nothing a kept snapshot depends on is
removed, and the newest full snapshot is always kept (as ``restic forget --dry-run``).
Unfinished uploads are left alone (one may be in progress) unless asked to remove those
started longer ago than a given age: abandoned, they only take space."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drconsole.catalog.catalog import CatalogView
from drconsole.catalog.layout import manifest_key, snapshot_prefix, verification_prefix
from drconsole.catalog.manifest import BASE_KINDS, Manifest
from drconsole.catalog.store import ObjectStore
from drconsole.timefmt import parse_compact_utc


@dataclass(frozen=True)
class KeepPolicy:
    last: int = 0
    daily: int = 0
    weekly: int = 0


@dataclass
class RetentionPlan:
    """snapshot id -> reasons to keep it (empty: removed), newest first."""

    keep: dict[str, list[str]] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "keep": [
                {"snapshot_id": sid, "reasons": reasons} for sid, reasons in self.keep.items()
            ],
            "remove": self.remove,
            "abandoned": self.abandoned,
        }


def plan_retention(view: CatalogView, policy: KeepPolicy) -> RetentionPlan:
    newest_first = list(reversed(view.ordered()))
    reasons: dict[str, list[str]] = {m.id: [] for m in newest_first}
    for rank, manifest in enumerate(newest_first[: policy.last], start=1):
        reasons[manifest.id].append(f"last {rank}")
    for label, size, bucket in (("daily", policy.daily, _day), ("weekly", policy.weekly, _week)):
        seen: list[str] = []
        for manifest in newest_first:
            key = bucket(manifest)
            if key not in seen and len(seen) < size:
                seen.append(key)
                reasons[manifest.id].append(f"{label} #{len(seen)}")
    for kind in BASE_KINDS:
        newest_base = next((m for m in newest_first if m.kind == kind), None)
        if newest_base is not None:
            reasons[newest_base.id].append(f"newest {kind}")
    for manifest in newest_first:
        if not reasons[manifest.id] or any(
            r.startswith("base of kept") for r in reasons[manifest.id]
        ):
            continue
        chain, _ = view.chain(manifest.id)
        for ancestor in chain[:-1]:
            why = f"base of kept {manifest.id}"
            if why not in reasons[ancestor.id]:
                reasons[ancestor.id].append(why)
    plan = RetentionPlan()
    for manifest in newest_first:
        if reasons[manifest.id]:
            plan.keep[manifest.id] = reasons[manifest.id]
        else:
            plan.remove.append(manifest.id)
    return plan


def abandoned_uploads(view: CatalogView, older_than_s: float, now: datetime) -> list[str]:
    """Unfinished uploads whose id says they started more than ``older_than_s`` ago; one
    whose id carries no time is never called abandoned."""
    found = []
    for item in view.unfinished:
        started = parse_compact_utc(item.id)
        if started is not None and (now - started).total_seconds() > older_than_s:
            found.append(item.id)
    return found


def apply_retention(store: ObjectStore, plan: RetentionPlan) -> int:
    """Delete removed snapshots, manifest first (a half-deleted snapshot then shows as
    unfinished, never as restorable), with the records of their verifications, and
    abandoned uploads. Returns the number of
    objects deleted."""
    deleted = 0
    for snapshot_id in plan.remove:
        store.delete([manifest_key(snapshot_id)])
        deleted += 1
    for snapshot_id in plan.remove + plan.abandoned:
        for prefix in (snapshot_prefix(snapshot_id), verification_prefix(snapshot_id)):
            keys = [info.key for info in store.list(prefix)]
            store.delete(keys)
            deleted += len(keys)
    return deleted


def _day(manifest: Manifest) -> str:
    return manifest.recovery_point.strftime("%Y-%m-%d")


def _week(manifest: Manifest) -> str:
    year, week, _ = manifest.recovery_point.isocalendar()
    return f"{year}-W{week:02d}"
