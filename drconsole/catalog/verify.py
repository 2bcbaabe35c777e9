"""Verification of snapshots at a depth: ``manifest`` (structure, chain, authenticity,
a recovery point not in the future, no file in the folder that the manifest does not
list), ``sizes`` (and every listed file exists with its size), ``full`` (and every byte
hashed), or ``sample:N%`` (a seeded random N% of the files hashed; the seed is
recorded). Files are hashed in parallel across parts."""

from __future__ import annotations

import hashlib
import math
import os
import random
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drconsole.catalog.auth import SIGNED, UNSIGNED
from drconsole.catalog.catalog import (
    CHECKSUM_MISMATCH,
    FILE_MISSING,
    MANIFEST_INVALID,
    NOT_AUTHENTIC,
    SIZE_MISMATCH,
    UNLISTED_FILE,
    CatalogView,
    Finding,
    future_finding,
)
from drconsole.catalog.layout import KNOWN_FILES, file_key, snapshot_prefix
from drconsole.catalog.manifest import FileEntry, Manifest
from drconsole.catalog.store import MissingObject, ObjectStore
from drconsole.errors import DrconsoleError, UsageError
from drconsole.sampling import sample_percent
from drconsole.timefmt import utc_now

DEPTHS = ("manifest", "sizes", "full")
CHUNK = 1024 * 1024
ByteProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Depth:
    """A parsed depth: name is manifest, sizes, full or sample; percent for sample."""

    name: str
    percent: float = 100.0

    @classmethod
    def parse(cls, text: str) -> Depth:
        if text in DEPTHS:
            return cls(text)
        if (percent := sample_percent(text)) is not None:
            return cls("sample", percent)
        raise UsageError(
            f"unknown depth {text!r}", "use manifest, sizes, full or sample:N% (0 < N <= 100)"
        )

    @property
    def hashes(self) -> bool:
        return self.name in ("full", "sample")

    def __str__(self) -> str:
        return f"sample:{self.percent:g}%" if self.name == "sample" else self.name


@dataclass
class VerifyResult:
    """What a verification checked, at which depth, and what it found."""

    depth: str
    seed: int | None
    snapshot_ids: list[str]
    findings: list[Finding] = field(default_factory=list)
    files_checked: int = 0
    bytes_hashed: int = 0
    key_checked: bool = False

    def findings_for(self, snapshot_id: str) -> list[Finding]:
        return [finding for finding in self.findings if finding.snapshot_id == snapshot_id]

    def only(self, snapshot_id: str) -> VerifyResult:
        """This result narrowed to one of the snapshots it checked."""
        return VerifyResult(
            self.depth,
            self.seed,
            [snapshot_id],
            self.findings_for(snapshot_id),
            self.files_checked,
            self.bytes_hashed,
            self.key_checked,
        )

    @property
    def intact(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "seed": self.seed,
            "snapshots": self.snapshot_ids,
            "intact": self.intact,
            "files_checked": self.files_checked,
            "bytes_hashed": self.bytes_hashed,
            "authenticity_checked": self.key_checked,
            "findings": [finding.to_json() for finding in self.findings],
        }


def verify(
    view: CatalogView,
    store: ObjectStore,
    snapshot_ids: list[str],
    depth: Depth,
    *,
    seed: int | None = None,
    workers: int | None = None,
    progress: ByteProgress | None = None,
    cancel: threading.Event | None = None,
    now: datetime | None = None,
) -> VerifyResult:
    """Check each snapshot (its own files; structural findings cover its chain)."""
    if depth.name == "sample" and seed is None:
        seed = secrets.randbelow(2**31)
    result = VerifyResult(
        str(depth),
        seed if depth.name == "sample" else None,
        list(snapshot_ids),
        key_checked=view.key_checked,
    )
    now = now or utc_now()
    to_hash: list[tuple[Manifest, FileEntry]] = []
    for snapshot_id in snapshot_ids:
        _, structural = view.confirmed_chain(store, snapshot_id)
        if snapshot_id not in view.snapshots:
            why = view.index_disagreed.get(snapshot_id, "its manifest is gone")
            result.findings.append(Finding(snapshot_id, MANIFEST_INVALID, why))
            continue
        result.findings.extend(structural)
        manifest = view.snapshots[snapshot_id]
        result.findings.extend(_semantic(view, manifest, now))
        present = _listing(store, manifest, result)
        if depth.name == "manifest":
            continue
        _sizes(manifest, present, result)
        if depth.hashes:
            files = [
                entry for entry in manifest.all_files if present.get(entry.path) == entry.bytes
            ]
            to_hash.extend((manifest, entry) for entry in _choose(files, depth, seed, snapshot_id))
    if to_hash:
        _hash_all(
            store,
            to_hash,
            result,
            workers=workers or max(2, os.cpu_count() or 2),
            progress=progress,
            cancel=cancel,
        )
    return result


def _semantic(view: CatalogView, manifest: Manifest, now: datetime) -> list[Finding]:
    """What a manifest claims that cannot be true, or cannot be trusted: a tag that is
    wrong or missing (when a key was given to check it), a recovery point in the future."""
    found = []
    status, why = view.authenticity.get(manifest.id, (UNSIGNED, "not signed"))
    if view.key_checked and status != SIGNED:
        found.append(Finding(manifest.id, NOT_AUTHENTIC, why))
    if (future := future_finding(manifest, now)) is not None:
        found.append(future)
    return found


def _listing(store: ObjectStore, manifest: Manifest, result: VerifyResult) -> dict[str, int]:
    """One listing of the snapshot folder (path -> size); a file the manifest does not
    list is a finding: a reader would ignore it, and nothing should be there."""
    prefix = snapshot_prefix(manifest.id)
    stored = {info.key[len(prefix) :]: info.size for info in store.list(prefix)}
    listed = {entry.path for entry in manifest.all_files} | set(KNOWN_FILES)
    for path in sorted(set(stored) - listed):
        result.findings.append(
            Finding(
                manifest.id,
                UNLISTED_FILE,
                f"{path} is in the snapshot folder but not in its manifest",
                path,
            )
        )
    return stored


def _sizes(manifest: Manifest, stored: dict[str, int], result: VerifyResult) -> None:
    """Compare listed sizes with the folder's listing."""
    for entry in manifest.all_files:
        result.files_checked += 1
        if entry.path not in stored:
            result.findings.append(
                Finding(manifest.id, FILE_MISSING, f"{entry.path} is missing", entry.path)
            )
        elif stored[entry.path] != entry.bytes:
            result.findings.append(
                Finding(
                    manifest.id,
                    SIZE_MISMATCH,
                    f"{entry.path} has {stored[entry.path]} bytes, the manifest says {entry.bytes}",
                    entry.path,
                )
            )


def _choose(
    files: list[FileEntry], depth: Depth, seed: int | None, snapshot_id: str
) -> list[FileEntry]:
    if depth.name != "sample":
        return files
    count = math.ceil(len(files) * depth.percent / 100)
    return random.Random(f"{seed}:{snapshot_id}").sample(files, count)


def _hash_all(
    store: ObjectStore,
    work: list[tuple[Manifest, FileEntry]],
    result: VerifyResult,
    *,
    workers: int,
    progress: ByteProgress | None,
    cancel: threading.Event | None,
) -> None:
    total = sum(entry.bytes for _, entry in work)
    done = 0
    lock = threading.Lock()

    def hash_one(item: tuple[Manifest, FileEntry]) -> Finding | None:
        nonlocal done
        manifest, entry = item
        digest = hashlib.sha256()
        try:
            with store.open(file_key(manifest.id, entry.path)) as stream:
                while chunk := stream.read(CHUNK):
                    if cancel is not None and cancel.is_set():
                        return None
                    digest.update(chunk)
                    with lock:
                        done += len(chunk)
                        result.bytes_hashed += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except MissingObject:
            return Finding(manifest.id, FILE_MISSING, f"{entry.path} is missing", entry.path)
        if digest.hexdigest() != entry.sha256:
            return Finding(
                manifest.id,
                CHECKSUM_MISMATCH,
                f"{entry.path} fails its checksum (sha256 differs from the manifest)",
                entry.path,
            )
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for finding in pool.map(hash_one, work):
            if finding is not None:
                result.findings.append(finding)
    if cancel is not None and cancel.is_set():
        raise DrconsoleError("verification was cancelled; nothing was concluded")
