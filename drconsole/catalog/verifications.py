"""What a verification found, kept in the catalog beside the snapshots, so that `catalog
list` and the console show the last one of each snapshot (depth, verdict, when, by whom)
rather than "unverified" right after a full verify.

A record speaks of the manifest it checked, by digest: once the manifest changes, the
record no longer applies and is not shown. It says what was true when it was made, never
that the files are intact now. With a catalog key it is signed (domain-separated from
manifest tags); without one, or with a tag that does not check, it is shown as not
authenticated, never as proof. Writing one is best effort: a verification with read-only
credentials still verifies, and says that it could not be kept.
"""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drconsole import __version__
from drconsole.catalog.auth import SIGNED, CatalogKey
from drconsole.catalog.catalog import CatalogView
from drconsole.catalog.layout import VERIFICATIONS, verification_prefix
from drconsole.catalog.store import MissingObject, ObjectStore, read_at_most
from drconsole.catalog.verify import VerifyResult
from drconsole.errors import StoreError
from drconsole.timefmt import compact_utc_ms, format_duration, format_utc, parse_utc

FORMAT = "drconsole-verification/1"
DOMAIN = b"drconsole verification record\0"
MAX_RECORD_BYTES = 64 * 1024
TAG_SUFFIX = ".mac"


@dataclass(frozen=True)
class Verification:
    """The last verification of a snapshot: depth, verdict, when and where."""

    snapshot_id: str
    manifest_sha256: str
    depth: str
    seed: int | None
    intact: bool
    problems: list[str]
    verified_at: datetime
    host: str
    authenticated: bool

    def describe(self, now: datetime) -> str:
        """``verified full 2h 03m ago: intact`` (plus what it could not prove)."""
        age = format_duration((now - self.verified_at).total_seconds())
        verdict = "intact" if self.intact else f"FOUND {', '.join(self.problems)}"
        trust = "" if self.authenticated else " (record not authenticated)"
        return f"verified {self.depth} {age} ago: {verdict}{trust}"

    def to_json(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "seed": self.seed,
            "intact": self.intact,
            "problems": self.problems,
            "verified_at": format_utc(self.verified_at),
            "host": self.host,
            "authenticated": self.authenticated,
        }


def keep_verification(
    store: ObjectStore,
    view: CatalogView,
    result: VerifyResult,
    key: CatalogKey | None,
    now: datetime,
) -> str | None:
    """Write one record per snapshot the verification checked; None when all were kept,
    else why not (the verification itself stands either way)."""
    stamp = compact_utc_ms(now)
    for snapshot_id in result.snapshot_ids:
        manifest = view.snapshots.get(snapshot_id)
        if manifest is None:
            continue
        narrowed = result.only(snapshot_id)
        data = json.dumps(
            {
                "format": FORMAT,
                "snapshot_id": snapshot_id,
                "manifest_sha256": manifest.sha256,
                "depth": result.depth,
                "seed": result.seed,
                "intact": narrowed.intact,
                "problems": sorted({finding.kind for finding in narrowed.findings}),
                "verified_at": format_utc(now),
                "host": socket.gethostname(),
                "tool": {"name": "drconsole", "version": __version__},
            },
            indent=2,
        ).encode()
        name = f"{verification_prefix(snapshot_id)}{stamp}-{secrets.token_hex(3)}.json"
        try:
            _write(store, name, data)
            if key is not None:
                _write(store, name + TAG_SUFFIX, key.tag(DOMAIN + data))
        except StoreError as error:
            return f"the verification could not be kept in the catalog: {error.message}"
    return None


def last_verifications(
    store: ObjectStore, view: CatalogView, key: CatalogKey | None
) -> dict[str, Verification]:
    """The newest record of each snapshot that still applies to its manifest: the one in
    its folder (a listing from the catalog index re-reads these snapshots' folders, so a
    verification is never shown for an index copy the folder no longer holds)."""
    names: dict[str, list[str]] = {}
    for info in store.list(f"{VERIFICATIONS}/"):
        parts = info.key.split("/")
        if len(parts) == 3 and parts[2].endswith(".json"):
            names.setdefault(parts[1], []).append(info.key)
    view.confirm(store, list(names))
    found = {}
    for snapshot_id, keys in names.items():
        manifest = view.snapshots.get(snapshot_id)
        if manifest is None:
            continue
        for name in sorted(keys, reverse=True):
            record = _read(store, name, key)
            if record is not None and record.manifest_sha256 == manifest.sha256:
                found[snapshot_id] = record
                break
    return found


def _write(store: ObjectStore, name: str, data: bytes) -> None:
    with store.writer(name) as stream:
        stream.write(data)


def _read(store: ObjectStore, name: str, key: CatalogKey | None) -> Verification | None:
    """A record, or None when it cannot be read or makes no sense (it is then ignored)."""
    try:
        with store.open(name) as stream:
            data = read_at_most(stream, MAX_RECORD_BYTES)
        raw = json.loads(data)
        tag = None
        if key is not None:
            try:
                with store.open(name + TAG_SUFFIX) as stream:
                    tag = read_at_most(stream, 4096)
            except MissingObject:
                tag = None
        authenticated = key is not None and key.check(DOMAIN + data, tag)[0] == SIGNED
        if len(data) > MAX_RECORD_BYTES or raw.get("format") != FORMAT:
            return None
        seed = raw.get("seed")
        return Verification(
            snapshot_id=str(raw["snapshot_id"]),
            manifest_sha256=str(raw["manifest_sha256"]),
            depth=str(raw["depth"]),
            seed=seed if isinstance(seed, int) else None,
            intact=raw["intact"] is True,
            problems=[str(item) for item in raw.get("problems") or []],
            verified_at=parse_utc(str(raw["verified_at"])),
            host=str(raw.get("host", "?")),
            authenticated=authenticated,
        )
    except (StoreError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
