"""The object-store interface a catalog lives on: a local folder or an S3 prefix.

Keys are relative POSIX paths under the store's root (``snapshots/ID/manifest.json``).
A write becomes visible only when complete: a reader never sees half an object.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from drconsole.errors import StoreError
from drconsole.timefmt import format_utc


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class Debris:
    """What a killed write left behind: a temporary file (local) or an incomplete
    multipart upload (S3). ``handle`` is what removing it takes (an upload id)."""

    key: str
    size: int
    handle: str = ""


@dataclass(frozen=True)
class Retention:
    """An S3 Object Lock on an object: ``governance`` or ``compliance``, until when."""

    mode: str
    until: datetime

    def describe(self) -> str:
        return f"{self.mode.upper()} until {format_utc(self.until)}"


class ObjectStore(Protocol):
    """What the catalog needs from a store."""

    url: str
    local: bool
    read_concurrency: int
    """How many small reads are worth having in flight at once: many for a remote store
    (each waits on the network), one for a local folder (parsing dominates, and threads
    only contend for the interpreter: 2,000 local manifests list in 0.13 s serially,
    0.21 s with 16 threads)."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under prefix (recursively), paginated underneath."""
        ...

    def list_folders(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of prefix."""
        ...

    def size(self, key: str) -> int | None:
        """The object's size, or None when it does not exist."""
        ...

    def read(self, key: str) -> bytes:
        """A small object whole; raises StoreError (``missing=True``) when absent."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A streamed read of an object."""
        ...

    def writer(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A file to write an object into; it is committed when the block exits cleanly
        and discarded otherwise."""
        ...

    def create(self, key: str, data: bytes) -> None:
        """Write a small object only if no object has that key; raises ObjectExists
        otherwise (a collision is an error, never an overwrite)."""
        ...

    def delete(self, keys: list[str]) -> None:
        """Remove objects (missing ones are ignored)."""
        ...

    def retention(self, key: str) -> Retention | None:
        """The object's lock (mode and retain-until time), or None when it has none."""
        ...

    def debris(self) -> list[Debris]:
        """Leftovers of writes that never completed, anywhere in the catalog."""
        ...

    def remove_debris(self, items: list[Debris]) -> None: ...


class MissingObject(StoreError):
    """The object does not exist."""


class ObjectExists(StoreError):
    """A create-only write found the key taken."""


READ_CHUNK = 64 * 1024


def read_at_most(stream: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes of the stream and one more when there are more, so that a
    caller can tell an object over the limit apart. Read in small chunks: ``read(limit)``
    allocates the whole limit up front (64 MiB per manifest, most of the time it took
    to list a catalog)."""
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = stream.read(min(READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def check_key(key: str) -> str:
    """Refuse keys that could leave the store's root."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise StoreError(f"refusing the object key {key!r}: it could leave the catalog root")
    return key
