"""The catalog index: copies of manifests and their tags gathered in a few create-only
objects under ``index/``, so listing a remote catalog costs a few reads instead of two
per snapshot (restic keeps index files for the same reason).

The snapshot folders stay the truth. A listing takes from the index only the manifests
of folders that exist, and reads from its folder every snapshot the index does not
cover, covers twice differently, or covers with a copy that does not parse. Whoever acts
on a snapshot (selects, verifies, shows or restores it) re-reads its chain's manifests
from their folders first (``CatalogView.confirm``): a stale or tampered index can change
what a listing shows, never what is verified or restored.

Writers add one segment per snapshot; when a writer finds many segments, or snapshots
the index lacks, it writes one segment holding everything it listed and deletes the
segments it read (a concurrent reader that misses a deleted segment reads those folders
instead).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from drconsole.catalog.store import MissingObject, ObjectStore, read_at_most
from drconsole.errors import StoreError
from drconsole.timefmt import compact_utc_ms, utc_now

INDEX = "index"
SEGMENT_FORMAT = "drconsole-index/1"
MAX_SEGMENT_BYTES = 256 * 1024 * 1024
SEGMENT_TARGET_BYTES = 32 * 1024 * 1024
COMPACT_AT = 16
"""Segments a writer tolerates before it folds them into one."""
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class IndexEntry:
    """One snapshot's manifest bytes and its tag bytes (None: unsigned), as stored."""

    id: str
    manifest: bytes
    tag: bytes | None

    def to_json(self) -> dict[str, Any] | None:
        """The entry in a segment; None when its bytes are not text (never indexed)."""
        try:
            manifest = self.manifest.decode()
            tag = self.tag.decode() if self.tag is not None else None
        except UnicodeDecodeError:
            return None
        return {"id": self.id, "manifest": manifest, "mac": tag}


@dataclass
class IndexRead:
    """What the index holds: entries by snapshot id (ids two segments disagree on are
    left out), the segment keys read, and the segments it could not use, with why."""

    entries: dict[str, IndexEntry]
    segments: list[str]
    ignored: list[str]


def parallel_map(store: ObjectStore, work: Callable[[T], R], items: list[T]) -> list[R]:
    """``work`` over ``items``, as many at once as the store's reads are worth."""
    if store.read_concurrency > 1 and len(items) > 1:
        with ThreadPoolExecutor(max_workers=min(store.read_concurrency, len(items))) as pool:
            return list(pool.map(work, items))
    return [work(item) for item in items]


def read_index(store: ObjectStore) -> IndexRead:
    """Every segment, read concurrently; a segment that is missing (compacted meanwhile),
    too large or malformed is named in ``ignored`` and its snapshots are read from
    their folders instead."""
    keys = sorted(info.key for info in store.list(f"{INDEX}/") if info.key.endswith(".json"))
    outcomes = parallel_map(store, lambda key: _read_segment(store, key), keys)
    entries: dict[str, IndexEntry] = {}
    disputed: set[str] = set()
    ignored: list[str] = []
    for key, outcome in zip(keys, outcomes, strict=True):
        if isinstance(outcome, str):
            ignored.append(f"{key}: {outcome}")
            continue
        for entry in outcome:
            known = entries.get(entry.id)
            if known is not None and known != entry:
                disputed.add(entry.id)
            entries[entry.id] = entry
    for snapshot_id in disputed:
        del entries[snapshot_id]
    return IndexRead(entries, keys, ignored)


def _read_segment(store: ObjectStore, key: str) -> list[IndexEntry] | str:
    try:
        with store.open(key) as stream:
            data = read_at_most(stream, MAX_SEGMENT_BYTES)
    except MissingObject:
        return "gone (folded into another segment meanwhile)"
    except StoreError as error:
        return error.message
    if len(data) > MAX_SEGMENT_BYTES:
        return f"larger than {MAX_SEGMENT_BYTES // 2**20} MiB: refused unread"
    try:
        return parse_segment(data)
    except ValueError as error:
        return str(error)


def parse_segment(data: bytes) -> list[IndexEntry]:
    """The entries of a segment; ValueError naming what is wrong (segments come from
    storage anyone with write access could have changed)."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError("not valid JSON") from None
    if not isinstance(raw, dict) or raw.get("format") != SEGMENT_FORMAT:
        raise ValueError(f"not a {SEGMENT_FORMAT} segment")
    items = raw.get("snapshots")
    if not isinstance(items, list):
        raise ValueError("snapshots must be a list")
    entries = []
    for number, item in enumerate(items):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("id"), str)
            or not isinstance(item.get("manifest"), str)
            or not isinstance(item.get("mac"), str | None)
        ):
            raise ValueError(f"snapshots[{number}] must have id, manifest and mac (text or null)")
        tag = item["mac"]
        entries.append(
            IndexEntry(item["id"], item["manifest"].encode(), None if tag is None else tag.encode())
        )
    return entries


def encode_segments(entries: Iterable[IndexEntry]) -> list[bytes]:
    """Segments holding the entries, each about SEGMENT_TARGET_BYTES at most."""
    segments: list[bytes] = []
    batch: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        item = entry.to_json()
        if item is None:
            continue
        batch.append(item)
        size += len(entry.manifest) + len(entry.tag or b"")
        if size >= SEGMENT_TARGET_BYTES:
            segments.append(_segment(batch))
            batch, size = [], 0
    if batch:
        segments.append(_segment(batch))
    return segments


def _segment(items: list[dict[str, Any]]) -> bytes:
    return json.dumps({"format": SEGMENT_FORMAT, "snapshots": items}, ensure_ascii=False).encode()


def write_segments(store: ObjectStore, entries: Iterable[IndexEntry]) -> list[str]:
    """Add the entries as new create-only segments; their keys."""
    keys = []
    for data in encode_segments(entries):
        key = f"{INDEX}/{compact_utc_ms(utc_now())}-{secrets.token_hex(6)}.json"
        store.create(key, data)
        keys.append(key)
    return keys


def add_to_index(
    store: ObjectStore,
    entry: IndexEntry,
    listed: list[IndexEntry],
    segments: list[str],
    *,
    complete: bool,
) -> None:
    """Index a new snapshot. When the catalog's listing (``listed``, read from
    ``segments`` and folders) was not wholly in the index (``complete`` is False) or the
    index has grown to COMPACT_AT segments, write one index of everything and delete the
    segments read; otherwise add a segment of its own. Raises StoreError."""
    if complete and len(segments) < COMPACT_AT:
        write_segments(store, [entry])
        return
    write_segments(store, [*(item for item in listed if item.id != entry.id), entry])
    store.delete(segments)
