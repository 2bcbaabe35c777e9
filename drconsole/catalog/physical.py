"""A database's files as snapshot parts: a folder packed into ``physical/part-N.tar.zst``
(tar streams, zstd-compressed, packed in parallel) and unpacked again.

Packing walks the folder once, groups its files into parts of about ``PART_BYTES``, and
compresses the parts on several threads (zstd releases the interpreter while it
works). Each part is hashed as stored, like every other part. Unpacking trusts nothing
it reads: a part is checked against its digest before it is opened (``check_parts``),
and a member that is not a plain file or folder, or whose path could leave the
destination, is refused as tampering.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import zstandard

from drconsole.catalog.layout import file_key
from drconsole.catalog.manifest import FileEntry, Manifest, ManifestError, check_relative_path
from drconsole.catalog.store import ObjectStore
from drconsole.errors import DrconsoleError, IntegrityError, StoreError

PART_BYTES = 64 * 1024 * 1024
"""Files are grouped into parts of about this many bytes (a bigger file is a part alone)."""
ZSTD_LEVEL = 3
CHUNK = 1024 * 1024
PHYSICAL = "physical"
"""The kind of a packed part in a manifest's file list."""
PartProgress = Callable[[int, int], None]
"""(bytes done, bytes in all)."""


def part_path(number: int) -> str:
    return f"{PHYSICAL}/part-{number:05d}.tar.zst"


@dataclass(frozen=True)
class PackedFolder:
    """What packing a folder wrote: its parts, how many files and bytes they hold, the
    newest modification time among the files (the latest change they can hold), and the
    folder's fingerprint when packing began."""

    parts: list[FileEntry]
    files: int
    bytes: int
    newest_change: datetime | None
    fingerprint: str


def pack_folder(
    put_stream: Callable[[str], _PartSink],
    folder: Path,
    *,
    workers: int = 2,
    part_bytes: int = PART_BYTES,
    progress: PartProgress | None = None,
) -> PackedFolder:
    """Pack every file under ``folder`` into parts (``put_stream(path)`` gives a sink
    that stores one part). Symbolic links and special files are refused: a data
    folder that has them (a PostgreSQL tablespace link) is not one drconsole can copy
    faithfully."""
    groups, files, total, newest, fingerprint = _plan(folder, part_bytes)
    done = [0]

    def pack(number: int) -> FileEntry:
        path = part_path(number)
        with put_stream(path) as sink:
            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
            with (
                compressor.stream_writer(sink, closefd=False) as packed,
                tarfile.open(fileobj=packed, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                for relative in groups[number]:
                    done[0] += _add(tar, folder / relative, relative)
                    if progress is not None:
                        progress(done[0], total)
        return FileEntry(path, PHYSICAL, len(groups[number]), sink.bytes, sink.sha256)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pack") as pool:
        parts = list(pool.map(pack, range(len(groups))))
    return PackedFolder(parts, files, total, newest, fingerprint)


def _add(tar: tarfile.TarFile, source: Path, relative: str) -> int:
    """One file or folder into the part, owned by nobody in particular; its size. A file
    that cannot be read (gone since the folder was listed) stops the snapshot."""
    try:
        info = tar.gettarinfo(str(source), arcname=relative)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if not info.isreg():
            tar.addfile(info)
            return 0
        with source.open("rb") as handle:
            tar.addfile(info, handle)
        return info.size
    except OSError as error:
        raise DrconsoleError(
            f"cannot read {source} ({error.strerror or error}); nothing was recorded",
            "stop the server that uses the folder, or copy a frozen snapshot of it",
        ) from None


def folder_fingerprint(folder: Path) -> str:
    """A digest of every entry's path, size and modification time: it changes when
    anything in the folder is written, added or removed."""
    return _plan(folder, PART_BYTES)[4]


def _plan(folder: Path, part_bytes: int) -> tuple[list[list[str]], int, int, datetime | None, str]:
    """The folder's entries (folders first, so an empty folder is kept) grouped into
    parts, with its fingerprint."""
    if not folder.is_dir():
        raise StoreError(f"{folder} is not a folder", "give the server's data folder")
    groups: list[list[str]] = [[]]
    size = files = total = 0
    newest = 0.0
    seen = hashlib.sha256()
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in [*dirs, *sorted(names)]:
            path = Path(root) / name
            relative = path.relative_to(folder).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise StoreError(
                    f"{path} is a link or a special file; a physical backup copies plain "
                    "files and folders only",
                    "back this folder up with the database's own tools",
                )
            if stat.S_ISDIR(mode):
                groups[0].append(relative)
                continue
            status = path.stat()
            length = status.st_size
            newest = max(newest, status.st_mtime)
            seen.update(f"{relative}\0{length}\0{status.st_mtime_ns}\n".encode())
            if size and size + length > part_bytes:
                groups.append([])
                size = 0
            groups[-1].append(relative)
            size += length
            files += 1
            total += length
    changed = datetime.fromtimestamp(newest, UTC) if files else None
    return groups, files, total, changed, seen.hexdigest()


class _PartSink:
    """A writable that hashes and counts what passes through to the store's writer."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.bytes += len(data)
        try:
            return self.handle.write(data)
        except OSError as error:  # the catalog's disk, not the folder being read
            raise StoreError(
                f"could not write a part to the catalog ({error.strerror or error})",
                "free disk space or fix the folder's permissions; nothing half-written was kept",
            ) from None

    def flush(self) -> None:
        self.handle.flush()

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    def __enter__(self) -> _PartSink:
        return self

    def __exit__(self, *rest: object) -> None:
        return None


def store_sink(store: ObjectStore, snapshot_id: str) -> Callable[[str], _StoreSink]:
    """``put_stream`` for ``pack_folder``: each part written to the store, committed when
    its block exits cleanly."""

    def open_part(path: str) -> _StoreSink:
        return _StoreSink(store, file_key(snapshot_id, path))

    return open_part


class _StoreSink(_PartSink):
    def __init__(self, store: ObjectStore, key: str) -> None:
        self._writer = store.writer(key)
        super().__init__(self._writer.__enter__())

    def __exit__(self, *rest: object) -> None:
        self._writer.__exit__(*rest)  # type: ignore[arg-type]


def check_parts(
    store: ObjectStore,
    parts: list[tuple[str, FileEntry]],
    *,
    workers: int = 2,
    progress: PartProgress | None = None,
) -> None:
    """Hash every (snapshot id, part) as stored; raises IntegrityError naming the first
    part that is missing, truncated or changed. Nothing is unpacked before this passes."""
    total = sum(entry.bytes for _, entry in parts)
    done = [0]

    def check(item: tuple[str, FileEntry]) -> None:
        snapshot_id, entry = item
        key = file_key(snapshot_id, entry.path)
        digest = hashlib.sha256()
        length = 0
        try:
            with store.open(key) as stream:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    length += len(chunk)
                    done[0] += len(chunk)
                    if progress is not None:
                        progress(done[0], total)
        except StoreError as error:
            raise IntegrityError(
                f"snapshot {snapshot_id}: part {entry.path} cannot be read ({error.message}); "
                "nothing was unpacked",
                "restore another snapshot, or repair the catalog",
            ) from None
        if length != entry.bytes or digest.hexdigest() != entry.sha256:
            what = (
                f"is {length} bytes, the manifest says {entry.bytes}"
                if length != entry.bytes
                else "does not match its sha256"
            )
            raise IntegrityError(
                f"snapshot {snapshot_id}: part {entry.path} {what}; nothing was unpacked",
                "restore another snapshot, or repair the catalog",
            )

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="check") as pool:
        list(pool.map(check, parts))


def unpack_part(store: ObjectStore, snapshot_id: str, entry: FileEntry, destination: Path) -> int:
    """Unpack one (checked) part into ``destination``; returns the bytes of file data
    written. Files are not synced one by one (a thousand fsyncs cost more than the
    unpack): the caller makes them durable with ``sync_files`` before it records them
    as unpacked. A member that could leave the destination, a link or a special file is
    refused as tampering."""
    where = f"snapshot {snapshot_id}: part {entry.path}"
    try:
        return _unpack(store, snapshot_id, entry, destination, where)
    except OSError as error:
        raise DrconsoleError(
            f"cannot unpack {where} into {destination}: {error.strerror or error}",
            "free space (or fix the folder's permissions) and run the step again: it "
            "continues with the parts not yet unpacked",
        ) from None


def _unpack(
    store: ObjectStore, snapshot_id: str, entry: FileEntry, destination: Path, where: str
) -> int:
    written = 0
    with (
        store.open(file_key(snapshot_id, entry.path)) as stream,
        zstandard.ZstdDecompressor().stream_reader(stream) as raw,
        tarfile.open(fileobj=raw, mode="r|") as tar,
    ):
        for member in tar:
            try:
                relative = check_relative_path(member.name, where)
            except ManifestError as error:
                raise IntegrityError(str(error), "restore another snapshot") from None
            path = destination / relative
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                os.chmod(path, (member.mode & 0o777) | 0o700)
                continue
            if not member.isreg():
                raise IntegrityError(
                    f"{where}: {member.name} is a link or a special file; refused as tampering",
                    "restore another snapshot",
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            with path.open("wb") as handle:
                while chunk := source.read(CHUNK):
                    handle.write(chunk)
            os.chmod(path, (member.mode & 0o777) | 0o600)
            os.utime(path, (member.mtime, member.mtime))
            written += member.size
    return written


def sync_files() -> None:
    """Everything written so far made durable in one call (the kernel writes the dirty
    pages of all files at once, instead of waiting on each file in turn)."""
    os.sync()


def read_member(store: ObjectStore, manifest: Manifest, name: str) -> bytes:
    """One file of a physical snapshot (``backup_manifest``), read out of its checked
    parts without unpacking the others."""
    check_parts(store, [(manifest.id, part) for part in manifest.physical_parts])
    for part in manifest.physical_parts:
        with (
            store.open(file_key(manifest.id, part.path)) as stream,
            zstandard.ZstdDecompressor().stream_reader(stream) as raw,
            tarfile.open(fileobj=raw, mode="r|") as tar,
        ):
            for member in tar:
                if member.name == name and member.isreg():
                    source = tar.extractfile(member)
                    assert source is not None
                    return source.read()
    raise IntegrityError(
        f"snapshot {manifest.id} holds no {name}", "take a full physical snapshot instead"
    )
