"""What makes a record hold up in a review: a keyed MAC on every line and a head anchor.

Every line (record version 2) ends with ``"mac"``: an HMAC-SHA256, made with the record
key, of the line's bytes without it. The sha256 chain already ties each line to the one
before; the MAC means that someone without the key can neither edit a line nor write a
new one (a forged append, or a whole file re-chained) that verifies. The head anchor,
``<run>.head``, holds the last line's number and sha256 under the same key, rewritten
atomically after every line: lines cut from the end of the record no longer match it.

The record key is a credential reference (``$DRCONSOLE_RECORD_KEY``, else a file in the
user's configuration folder, created on first use), never stored beside the records.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from drconsole.durable import fsync_folder
from drconsole.errors import RecordError, SecretError
from drconsole.secrets import resolve, resolve_or_create

ENV_RECORD_KEY = "DRCONSOLE_RECORD_KEY"
MAC_SUFFIX_LENGTH = len(',"mac":""}') + 64


def record_key_reference() -> str:
    """``$DRCONSOLE_RECORD_KEY``, else ``file:`` the user configuration folder's
    ``drconsole/record.key``."""
    configured = os.environ.get(ENV_RECORD_KEY)
    if configured:
        return configured
    import platformdirs

    return f"file:{platformdirs.user_config_path('drconsole') / 'record.key'}"


def record_key(*, create: bool) -> bytes | None:
    """The record key; with ``create`` it is made on first use. None when it cannot be
    had (records then read, but cannot be authenticated)."""
    reference = record_key_reference()
    try:
        if create:
            return resolve_or_create(reference, lambda: secrets.token_hex(32)).encode()
        return resolve(reference).encode()
    except SecretError as error:
        if create:
            raise RecordError(
                f"the record key ({reference}) cannot be had: {error.message}",
                f"set {ENV_RECORD_KEY} to a keyring:, env: or file: reference",
            ) from None
        return None


def sign_line(key: bytes, body: bytes) -> bytes:
    """The line to write: ``body`` (a JSON object) with ``"mac"`` as its last member."""
    mac = hmac.new(key, body, hashlib.sha256).hexdigest()
    return body[:-1] + f',"mac":"{mac}"}}'.encode()


def line_body(line: bytes) -> tuple[bytes, str] | None:
    """(the bytes the MAC covers, the MAC) of a signed line; None when it has none."""
    tail = line[-MAC_SUFFIX_LENGTH:]
    if not (tail.startswith(b',"mac":"') and tail.endswith(b'"}')):
        return None
    return line[:-MAC_SUFFIX_LENGTH] + b"}", tail[8:-2].decode("ascii", errors="replace")


def line_authentic(key: bytes, line: bytes) -> bool:
    parts = line_body(line)
    if parts is None:
        return False
    expected = hmac.new(key, parts[0], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts[1])


@dataclass(frozen=True)
class Head:
    """The head anchor: how many lines the writer had written, and the last one's hash."""

    run_id: str
    seq: int
    sha256: str | None
    mac: str

    @staticmethod
    def message(run_id: str, seq: int, sha256: str | None) -> bytes:
        return f"drconsole record head\0{run_id}\0{seq}\0{sha256}".encode()

    def authentic(self, key: bytes) -> bool:
        expected = hmac.new(key, self.message(self.run_id, self.seq, self.sha256), "sha256")
        return hmac.compare_digest(expected.hexdigest(), self.mac)


def head_path(record: Path) -> Path:
    return record.with_suffix(".head")


def write_head(record: Path, key: bytes, run_id: str, seq: int, sha256: str | None) -> None:
    """Replace the head anchor atomically (temporary file, fsync, rename, fsync folder)."""
    mac = hmac.new(key, Head.message(run_id, seq, sha256), "sha256").hexdigest()
    body = json.dumps({"run_id": run_id, "seq": seq, "sha256": sha256, "mac": mac}).encode()
    path = head_path(record)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        fsync_folder(path.parent)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise RecordError(
            f"{path}: could not write the record's head anchor ({error.strerror})",
            "free disk space or fix the folder's permissions",
        ) from None


def read_head(record: Path) -> Head | None:
    """The head anchor, or None when it is missing or not one."""
    try:
        raw = json.loads(head_path(record).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("seq"), int):
        return None
    sha = raw.get("sha256")
    return Head(
        str(raw.get("run_id")),
        raw["seq"],
        sha if isinstance(sha, str) else None,
        str(raw.get("mac")),
    )
