"""Where things live in a catalog (``drconsole-snapshot/1`` and ``/2``, DESIGN section 4)."""

from __future__ import annotations

import re

SNAPSHOTS = "snapshots"
VERIFICATIONS = "verifications"
MANIFEST = "manifest.json"
CLAIM = "claim.json"
MAC = "manifest.mac"
KNOWN_FILES = (MANIFEST, MAC, CLAIM)
_PART_NUMBER = re.compile(r"-(\d+)\.[^/]*$")


def snapshot_prefix(snapshot_id: str) -> str:
    return f"{SNAPSHOTS}/{snapshot_id}/"


def manifest_key(snapshot_id: str) -> str:
    return f"{SNAPSHOTS}/{snapshot_id}/{MANIFEST}"


def mac_key(snapshot_id: str) -> str:
    """The manifest's authentication tag (``catalog.auth``)."""
    return f"{SNAPSHOTS}/{snapshot_id}/{MAC}"


def claim_key(snapshot_id: str) -> str:
    """Written first, create-only: who took the snapshot id (see SnapshotWriter.claim)."""
    return f"{SNAPSHOTS}/{snapshot_id}/{CLAIM}"


def verification_prefix(snapshot_id: str) -> str:
    """Where the records of a snapshot's verifications are kept (``catalog.verifications``)."""
    return f"{VERIFICATIONS}/{snapshot_id}/"


def file_key(snapshot_id: str, relative_path: str) -> str:
    return f"{SNAPSHOTS}/{snapshot_id}/{relative_path}"


def part_path(collection: str, kind: str, number: int) -> str:
    """Where this drconsole writes a part (format 2: Parquet; format 1 named them
    ``records-N.jsonl.gz``, ``vectors-N.npy``...: the manifest lists every path)."""
    return f"{collection}/{kind}-{number:05d}.parquet"


def part_number(path: str) -> int | None:
    """N in ``records-N.parquet`` (or ``records-N.jsonl.gz``); None for a name without one."""
    match = _PART_NUMBER.search(path)
    return int(match.group(1)) if match else None
