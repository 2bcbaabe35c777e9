"""A catalog as a user sees it: snapshots, unfinished uploads, chains and their findings.

Manifests come from the catalog index where it covers them (``catalog.index``) and
are fetched concurrently from their folders otherwise; acting on a snapshot re-reads its
chain from the folders first (``CatalogView.confirm``). A chain is broken when a parent
is missing, a parent's manifest digest differs from what its child recorded, recovery
points do not increase, or the parents loop; a snapshot is only as intact as its whole
chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property

from drconsole.catalog.auth import FORGED, SIGNED, UNSIGNED, CatalogKey, unchecked
from drconsole.catalog.index import (
    INDEX,
    IndexEntry,
    IndexRead,
    add_to_index,
    parallel_map,
    read_index,
    write_segments,
)
from drconsole.catalog.layout import SNAPSHOTS, mac_key, manifest_key, snapshot_prefix
from drconsole.catalog.manifest import BASE_KINDS, Manifest, ManifestError, parse_manifest
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
    stored: dict[str, IndexEntry] = field(default_factory=dict)
    """Each valid snapshot's manifest and tag bytes, as read (from the index or its folder)."""
    unconfirmed: set[str] = field(default_factory=set)
    """Snapshots known only from the index so far: ``confirm`` reads their folders."""
    index: IndexRead = field(default_factory=lambda: IndexRead({}, [], []))
    index_disagreed: dict[str, str] = field(default_factory=dict)
    """Snapshots whose folder held another manifest than the index, with what was found."""
    key: CatalogKey | None = field(default=None, repr=False)

    @property
    def index_complete(self) -> bool:
        """Whether the index covered every snapshot listed (a writer then only adds to it)."""
        return not set(self.snapshots) - set(self.index.entries)

    def place(
        self, folder: str, outcome: tuple[Manifest, bytes, bytes | None] | Unfinished | str
    ) -> None:
        """Record what reading one snapshot folder (or its index entry) gave."""
        if isinstance(outcome, tuple):
            manifest, data, tag = outcome
            self.snapshots[folder] = manifest
            self.stored[folder] = IndexEntry(folder, data, tag)
            self.authenticity[folder] = self.key.check(data, tag) if self.key else unchecked(tag)
        elif isinstance(outcome, Unfinished):
            if outcome.files:  # an empty prefix (left by some S3 servers after a delete) is nothing
                self.unfinished.append(outcome)
        else:
            self.invalid[folder] = outcome

    def confirm(self, store: ObjectStore, snapshot_ids: list[str]) -> bool:
        """Re-read from their folders the manifests of these snapshots that came from the
        index; where a folder holds something else (a stale or tampered index), the
        folder's is kept and named in ``index_disagreed``. True when anything changed."""
        pending = [item for item in dict.fromkeys(snapshot_ids) if item in self.unconfirmed]
        if not pending:
            return False
        outcomes = parallel_map(store, lambda folder: _fetch(store, folder), pending)
        self.unconfirmed = self.unconfirmed - set(pending)
        differ = [
            (folder, outcome)
            for folder, outcome in zip(pending, outcomes, strict=True)
            if not (
                isinstance(outcome, tuple)
                and self.stored[folder] == IndexEntry(folder, outcome[1], outcome[2])
            )
        ]
        if not differ:
            return False
        # Changed on copies, then swapped in: the console's thread may be reading this view.
        scratch = replace(
            self,
            snapshots=dict(self.snapshots),
            invalid=dict(self.invalid),
            unfinished=list(self.unfinished),
            authenticity=dict(self.authenticity),
            stored=dict(self.stored),
            index_disagreed=dict(self.index_disagreed),
        )
        for folder, outcome in differ:
            scratch.index_disagreed[folder] = _found(outcome)
            del scratch.snapshots[folder], scratch.stored[folder], scratch.authenticity[folder]
            scratch.place(folder, outcome)
        for name in ("stored", "authenticity", "invalid", "unfinished", "index_disagreed"):
            setattr(self, name, getattr(scratch, name))
        self.snapshots = scratch.snapshots
        self.__dict__.pop("_oldest_signed", None)
        return True

    def confirmed_chain(
        self, store: ObjectStore, snapshot_id: str
    ) -> tuple[list[Manifest], list[Finding]]:
        """``chain`` after every manifest on it was read from its folder."""
        while True:
            chain, findings = self.chain(snapshot_id)
            if not self.confirm(store, [snapshot_id, *(item.id for item in chain)]):
                return chain, findings

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
        if parent.is_physical != manifest.is_physical:
            findings.append(
                Finding(
                    snapshot_id,
                    MISSING_PARENT,
                    f"a {manifest.kind} snapshot cannot follow {parent.id}, a {parent.kind} one",
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
        if chain and chain[0].kind not in BASE_KINDS and not findings:
            findings.append(
                Finding(
                    snapshot_id, MISSING_PARENT, "chain does not start at a full or physical base"
                )
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
                    outcome = manifest.kind not in BASE_KINDS
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
            if manifest.kind in BASE_KINDS:
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


def load_catalog(
    store: ObjectStore, key: CatalogKey | None = None, *, use_index: bool | None = None
) -> CatalogView:
    """List the catalog: every snapshot folder, its manifest (and its tag, checked with
    ``key`` when given) taken from the catalog index or fetched concurrently. The index
    is used by default on remote stores, where it saves two requests per snapshot."""
    folders = store.list_folders(SNAPSHOTS)
    view = CatalogView(store.url, store.local, {}, {}, [], key_checked=key is not None, key=key)
    if use_index if use_index is not None else not store.local:
        view.index = read_index(store)
    direct = []
    for folder in folders:
        entry = view.index.entries.get(folder)
        outcome = _parsed(folder, entry.manifest, entry.tag) if entry else None
        if isinstance(outcome, tuple):
            view.place(folder, outcome)
            view.unconfirmed.add(folder)
        else:
            direct.append(folder)
    for folder, fetched in zip(
        direct, parallel_map(store, lambda folder: _fetch(store, folder), direct), strict=True
    ):
        view.place(folder, fetched)
    return view


def index_new_snapshot(store: ObjectStore, view: CatalogView, entry: IndexEntry) -> None:
    """Add a snapshot just written to the index of the catalog ``view`` listed (folding
    the index into one segment when it is fragmented or incomplete). Raises StoreError."""
    add_to_index(
        store, entry, list(view.stored.values()), view.index.segments, complete=view.index_complete
    )


def rebuild_index(store: ObjectStore) -> CatalogView:
    """Read every manifest from its folder and replace the index with one of them all
    (after a tampered or lost index, or for a catalog written before the index)."""
    old = [info.key for info in store.list(f"{INDEX}/")]
    view = load_catalog(store, use_index=False)
    write_segments(store, view.stored.values())
    store.delete(old)
    return view


def _found(outcome: tuple[Manifest, bytes, bytes | None] | Unfinished | str) -> str:
    """What a folder held where the index said otherwise, for people."""
    if isinstance(outcome, tuple):
        return (
            "its folder holds another manifest or tag than the catalog index (a stale or "
            "tampered index); the folder's is used"
        )
    if isinstance(outcome, Unfinished):
        return "the catalog index lists it, but its folder has no manifest.json"
    return f"the catalog index lists it, but its folder's manifest is invalid: {outcome}"


def _parsed(
    folder: str, data: bytes, tag: bytes | None
) -> tuple[Manifest, bytes, bytes | None] | str:
    try:
        return parse_manifest(data, hashlib.sha256(data).hexdigest(), folder), data, tag
    except ManifestError as error:
        return error.message


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
        with store.open(mac_key(folder)) as stream:
            tag: bytes | None = read_at_most(stream, MAX_TAG_BYTES)[:MAX_TAG_BYTES]
    except MissingObject:
        tag = None
    return _parsed(folder, data, tag)
