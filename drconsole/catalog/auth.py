"""Authenticated manifests: an HMAC-SHA256 over a manifest's exact bytes, made with the
catalog key, kept beside it as ``manifest.mac``.

A child's manifest names its parent's digest, so a chain is only as trustworthy as its
newest manifest; the tag is what makes that one trustworthy. Someone who can write to the
catalog but does not hold the key cannot make a manifest (or change a record, whose
sha256 the manifest lists) that verifies. The key is a credential reference, created on
first use (like restic's repository key), and never written to the catalog: the tag
names it by an id derived from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from drconsole.errors import SecretError
from drconsole.secrets import resolve, resolve_or_create

ALGORITHM = "hmac-sha256"
KEY_BYTES = 32

SIGNED = "signed"
UNSIGNED = "unsigned"
FORGED = "forged"
UNCHECKED = "unchecked"


@dataclass(frozen=True)
class CatalogKey:
    """The secret that signs a catalog's manifests."""

    secret: bytes

    @classmethod
    def from_reference(cls, reference: str, *, create: bool = False) -> CatalogKey:
        """The key a reference points to; with ``create`` a new random key is stored
        under it when there is none yet (``env:`` keys must be set by the user)."""
        text = (
            resolve_or_create(reference, lambda: secrets.token_hex(KEY_BYTES))
            if create
            else resolve(reference)
        )
        if len(text) < 32:
            raise SecretError(
                f"{reference}: a catalog key needs at least 32 characters",
                "use a long random value, or let `snapshot create --catalog-key` make one",
            )
        return cls(text.encode())

    @property
    def key_id(self) -> str:
        """Names the key without revealing it (a hash, domain-separated from the tag)."""
        return hashlib.sha256(b"drconsole catalog key id\0" + self.secret).hexdigest()[:16]

    def tag(self, manifest_bytes: bytes) -> bytes:
        """The ``manifest.mac`` object for these manifest bytes."""
        mac = hmac.new(self.secret, manifest_bytes, hashlib.sha256).hexdigest()
        return json.dumps({"alg": ALGORITHM, "key_id": self.key_id, "mac": mac}).encode()

    def check(self, manifest_bytes: bytes, tag_bytes: bytes | None) -> tuple[str, str]:
        """(authenticity, why): SIGNED when the tag is ours and matches; UNSIGNED when
        there is no tag; FORGED otherwise (a wrong tag, or one made with another key)."""
        if tag_bytes is None:
            return UNSIGNED, "not signed (no manifest.mac)"
        tag = _parse_tag(tag_bytes)
        if tag is None:
            return FORGED, "manifest.mac is not a valid tag"
        if tag["key_id"] != self.key_id:
            return FORGED, f"manifest.mac was made with another key ({tag['key_id']})"
        expected = hmac.new(self.secret, manifest_bytes, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, tag["mac"]):
            return FORGED, "manifest.mac does not match the manifest: it was changed or forged"
        return SIGNED, "signed with the catalog key"


def unchecked(tag_bytes: bytes | None) -> tuple[str, str]:
    """Authenticity when no key is at hand: unsigned, or signed but not checked."""
    if tag_bytes is None:
        return UNSIGNED, "not signed (no manifest.mac)"
    return UNCHECKED, "signed, but no catalog key was given to check it"


def _parse_tag(data: bytes) -> dict[str, Any] | None:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict) or raw.get("alg") != ALGORITHM:
        return None
    if not isinstance(raw.get("key_id"), str) or not isinstance(raw.get("mac"), str):
        return None
    return raw
