"""A catalog as a user sees it: snapshots, unfinished uploads, chains and their findings.

Manifests are fetched concurrently. A chain is broken when a parent is missing, a
parent's manifest digest differs from what its child recorded, recovery points do not
increase, or the parents loop; a snapshot is only as intact as its whole chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from drconsole.catalog.auth import FORGED, SIGNED, UNSIGNED, CatalogKey, unchecked
from drconsole.catalog.layout import SNAPSHOTS, mac_key, manifest_key, snapshot_prefix
from drconsole.catalog.manifest import Manifest, ManifestError, parse_manifest
from drconsole.catalog.store import MissingObject, ObjectStore, read_at_most
from drconsole.errors import DrconsoleError
from drconsole.timefmt import format_duration, format_utc

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_TAG_BYTES = 4096
CLOCK_SKEW = timedelta(minutes=5)

MISSING_PARENT = "missing_parent"
PARENT_DIGEST = "parent_digest_mismatch"
RECOVERY_POINT_ORDER = "recovery_point_order"
CYCLE = "cycle"
MANIFEST_INVALID = "manifest_invalid"
FILE_MISSING = "file_missing"
SIZE_MISMATCH = "size_mismatch"
CHECKSUM_MISMATCH = "checksum_mismatch"
PARENT_BROKEN = "parent_broken"
NOT_AUTHENTIC = "not_authentic"
FUTURE = "recovery_point_in_the_future"
UNLISTED_FILE = "unlisted_file"


@dataclass(frozen=True)
class Finding:
    """Something wrong with a snapshot, naming the snapshot and, where known, the file."""

    snapshot_id: str
    kind: str
    message: str
    file: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "snapshot_id": self.snapshot_id,
            "kind": self.kind,
            "message": self.message,
            "file": self.file,
        }


@dataclass(frozen=True)
class Unfinished:
    """A snapshot folder without a manifest: an upload that never completed."""

    id: str
    files: int
    bytes: int


@dataclass
class ChainNode:
    """A snapshot in the chain tree, with the incrementals built on it."""

    manifest: Manifest
    children: list[ChainNode] = field(default_factory=list)

    def walk(self, depth: int = 0) -> Iterator[tuple[int, ChainNode]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


@dataclass
class CatalogView:
    """Everything read from a catalog in one listing."""

    url: str
    local: bool
    snapshots: dict[str, Manifest]
    invalid: dict[str, str]
    unfinished: list[Unfinished]
    authenticity: dict[str, tuple[str, str]] = field(default_factory=dict)
    key_checked: bool = False

    def signed(self, snapshot_id: str) -> bool:
        return self.authenticity.get(snapshot_id, (UNSIGNED, ""))[0] == SIGNED

    def rejection(
        self, manifest: Manifest, now: datetime, *, allow_unsigned: bool = False
    ) -> str | None:
        """Why this snapshot may not be restored even if its chain is intact: its
        manifest is not authentic (a wrong tag always; no tag, or no key to check one,
        unless unsigned catalogs are allowed), or its recovery point is in the future.
        Even with unsigned snapshots allowed, an unsigned one is refused when the catalog
        holds an older signed one: it is not a legacy snapshot from before the key, but
        a signed catalog's manifest that lost its tag, or a planted one."""
        status, why = self.authenticity.get(manifest.id, unchecked(None))
        if status == FORGED:
            return why
        oldest_signed = self._oldest_signed
        if status == UNSIGNED and oldest_signed and manifest.recovery_point >= oldest_signed:
            return f"{why}, yet newer than signed snapshots of this catalog: refused"
        if status == UNSIGNED and not allow_unsigned:
            return f"{why} (a runbook restores it only with catalog.allow_unsigned: true)"
        if status != SIGNED and not allow_unsigned:
            return f"{why} (give the catalog key)"
        future = future_finding(manifest, now)
        return future.message if future else None

    @cached_property
    def _oldest_signed(self) -> datetime | None:
        """Computed once: a console asks for every snapshot of a large catalog."""
        signed = [m.recovery_point for i, m in self.snapshots.items() if self.signed(i)]
        return min(signed, default=None)

    def ordered(self) -> list[Manifest]:
        """Snapshots by recovery point, oldest first."""
        return sorted(self.snapshots.values(), key=lambda m: (m.recovery_point, m.id))

    def link_findings(self, snapshot_id: str) -> list[Finding]:
        """Problems with the snapshot's own link to its parent."""
        manifest = self.snapshots[snapshot_id]
        if manifest.parent is None:
            return []
        parent = self.snapshots.get(manifest.parent)
        if parent is None:
            why = f" ({self.invalid[manifest.parent]})" if manifest.parent in self.invalid else ""
            return [
                Finding(snapshot_id, MISSING_PARENT, f"parent {manifest.parent} is missing{why}")
            ]
        findings = []
        if parent.sha256 != manifest.parent_manifest_sha256:
            findings.append(
                Finding(
                    snapshot_id,
                    PARENT_DIGEST,
                    f"parent {parent.id}'s manifest changed since this snapshot was taken "
                    "(sha256 differs)",
                )
            )
        if parent.recovery_point >= manifest.recovery_point:
            findings.append(
                Finding(
                    snapshot_id,
                    RECOVERY_POINT_ORDER,
                    f"recovery point is not after its parent {parent.id}'s",
                )
            )
        return findings

    def chain(self, snapshot_id: str) -> tuple[list[Manifest], list[Finding]]:
        """The chain from its full base to snapshot_id, and every structural finding on
        it (the snapshot's own links and its ancestors')."""
        chain: list[Manifest] = []
        findings: list[Finding] = []
        seen: set[str] = set()
        current: str | None = snapshot_id
        while current is not None:
            if current in seen:
                findings.append(Finding(snapshot_id, CYCLE, f"parents loop back to {current}"))
                break
            seen.add(current)
            manifest = self.snapshots.get(current)
            if manifest is None:
                break
            chain.append(manifest)
            for finding in self.link_findings(current):
                findings.append(
                    finding
                    if current == snapshot_id
                    else Finding(
                        snapshot_id, PARENT_BROKEN, f"chain broken at {current}: {finding.message}"
                    )
                )
            current = manifest.parent
        chain.reverse()
        if chain and chain[0].kind != "full" and not findings:
            findings.append(
                Finding(snapshot_id, MISSING_PARENT, "chain does not start at a full snapshot")
            )
        return chain, findings

    def broken(self) -> set[str]:
        """Every snapshot whose chain has a finding, in one pass over the catalog (the
        same verdict as ``chain`` gives, without walking each chain again)."""
        verdict: dict[str, bool] = {}
        for snapshot_id in self.snapshots:
            path: list[str] = []
            current: str | None = snapshot_id
            outcome = False
            while current is not None and current not in verdict:
                if current in path:  # a loop: everything on it is broken
                    outcome = True
                    break
                path.append(current)
                manifest = self.snapshots.get(current)
                if manifest is None or self.link_findings(current):
                    outcome = True
                    break
                if manifest.parent is None:
                    outcome = manifest.kind != "full"
                    break
                current = manifest.parent
            else:
                if current is not None:
                    outcome = verdict[current]
            for item in path:
                verdict[item] = outcome
        return {item for item, bad in verdict.items() if bad and item in self.snapshots}

    def trees(self) -> tuple[list[ChainNode], list[Manifest]]:
        """Chains as trees (full bases with incrementals as children), and the snapshots
        that hang from no full base (orphans: missing parent or a cycle)."""
        nodes = {m.id: ChainNode(m) for m in self.ordered()}
        roots: list[ChainNode] = []
        for manifest in self.ordered():
            node = nodes[manifest.id]
            if manifest.kind == "full":
                roots.append(node)
            elif manifest.parent in nodes:
                nodes[manifest.parent].children.append(node)
        reachable = {node.manifest.id for root in roots for _, node in root.walk()}
        orphans = [m for m in self.ordered() if m.id not in reachable]
        return roots, orphans

    def chain_size(self, snapshot_id: str) -> int:
        chain, _ = self.chain(snapshot_id)
        return sum(manifest.size for manifest in chain)

    def require(self, snapshot_id: str) -> Manifest:
        if snapshot_id in self.snapshots:
            return self.snapshots[snapshot_id]
        if snapshot_id in self.invalid:
            raise DrconsoleError(
                f"snapshot {snapshot_id} has an invalid manifest: {self.invalid[snapshot_id]}"
            )
        if any(item.id == snapshot_id for item in self.unfinished):
            raise DrconsoleError(
                f"snapshot {snapshot_id} is unfinished (no manifest): it can never be restored",
                "its upload stopped before the manifest was written; choose another snapshot",
            )
        raise DrconsoleError(
            f"no snapshot {snapshot_id} in {self.url}", "list them with `drconsole catalog list`"
        )


def future_finding(manifest: Manifest, now: datetime) -> Finding | None:
    """A recovery point after ``now`` (beyond the clock-skew tolerance) cannot be true: a
    planted or mis-clocked snapshot, never selected."""
    if manifest.recovery_point <= now + CLOCK_SKEW:
        return None
    ahead = (manifest.recovery_point - now).total_seconds()
    return Finding(
        manifest.id,
        FUTURE,
        f"recovery point {format_utc(manifest.recovery_point)} is {format_duration(ahead)} "
        f"after this machine's clock (tolerance {format_duration(CLOCK_SKEW.total_seconds())})",
    )


def load_catalog(store: ObjectStore, key: CatalogKey | None = None) -> CatalogView:
    """List the catalog: every snapshot folder, its manifest (and its tag, checked with
    ``key`` when given) fetched concurrently."""
    folders = store.list_folders(SNAPSHOTS)
    if store.read_concurrency > 1:
        with ThreadPoolExecutor(max_workers=store.read_concurrency) as pool:
            results = list(pool.map(lambda folder: _fetch(store, folder), folders))
    else:
        results = [_fetch(store, folder) for folder in folders]
    view = CatalogView(store.url, store.local, {}, {}, [], key_checked=key is not None)
    for folder, outcome in zip(folders, results, strict=True):
        if isinstance(outcome, tuple):
            manifest, data, tag = outcome
            view.snapshots[folder] = manifest
            view.authenticity[folder] = key.check(data, tag) if key else unchecked(tag)
        elif isinstance(outcome, Unfinished):
            if outcome.files:  # an empty prefix (left by some S3 servers after a delete) is nothing
                view.unfinished.append(outcome)
        else:
            view.invalid[folder] = outcome
    return view


def _fetch(
    store: ObjectStore, folder: str
) -> tuple[Manifest, bytes, bytes | None] | Unfinished | str:
    """(manifest, its bytes, its tag or None), an unfinished upload, or why the manifest
    is invalid. A manifest is read up to MAX_MANIFEST_BYTES, never more."""
    try:
        with store.open(manifest_key(folder)) as stream:
            data = read_at_most(stream, MAX_MANIFEST_BYTES)
    except MissingObject:
        objects = list(store.list(snapshot_prefix(folder)))
        return Unfinished(folder, len(objects), sum(item.size for item in objects))
    if len(data) > MAX_MANIFEST_BYTES:
        return f"manifest.json is larger than {MAX_MANIFEST_BYTES // 2**20} MiB: refused unread"
    try:
        manifest = parse_manifest(data, hashlib.sha256(data).hexdigest(), folder)
    except ManifestError as error:
        return error.message
    try:
        with store.open(mac_key(folder)) as stream:
            tag: bytes | None = read_at_most(stream, MAX_TAG_BYTES)[:MAX_TAG_BYTES]
    except MissingObject:
        tag = None
    return manifest, data, tag
