"""A data folder packed into physical parts and unpacked again: byte for byte, in
several parts, refusing what it cannot copy faithfully, and checking every part before
anything is unpacked (tampered, truncated, missing, hostile members)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from drconsole.catalog.layout import file_key
from drconsole.catalog.local import LocalStore
from drconsole.catalog.manifest import FileEntry
from drconsole.catalog.physical import (
    check_parts,
    folder_fingerprint,
    pack_folder,
    store_sink,
    unpack_part,
)
from drconsole.errors import IntegrityError, StoreError

SNAPSHOT = "20261201T000000Z-kb-P-abcdef"


def make_folder(root: Path) -> dict[str, bytes]:
    files = {
        "chroma.sqlite3": os.urandom(300_000),
        "seg-1/data_level0.bin": os.urandom(700_000),
        "seg-1/header.bin": b"h" * 100,
        "seg-2/length.bin": b"",
        "seg-2/deep/more.bin": os.urandom(50_000),
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty-folder").mkdir()
    return files


def pack(tmp_path: Path, part_bytes: int = 400_000) -> tuple[LocalStore, list[FileEntry], Path]:
    source = tmp_path / "source"
    make_folder(source)
    store = LocalStore(tmp_path / "catalog")
    packed = pack_folder(store_sink(store, SNAPSHOT), source, part_bytes=part_bytes)
    return store, packed.parts, source


def unpack_all(store: LocalStore, parts: list[FileEntry], destination: Path) -> None:
    check_parts(store, [(SNAPSHOT, part) for part in parts])
    for part in parts:
        unpack_part(store, SNAPSHOT, part, destination)


def tree(root: Path) -> dict[str, bytes | None]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


def test_a_folder_comes_back_byte_for_byte_from_several_parts(tmp_path: Path) -> None:
    store, parts, source = pack(tmp_path)
    assert len(parts) >= 3  # the 700 kB file alone, the others grouped
    assert sum(part.rows for part in parts) == 5 + 4  # files and folders
    unpack_all(store, parts, tmp_path / "restored")
    assert tree(tmp_path / "restored") == tree(source)
    assert (tmp_path / "restored" / "empty-folder").is_dir()
    source_time = (source / "seg-1" / "header.bin").stat().st_mtime_ns
    assert (tmp_path / "restored" / "seg-1" / "header.bin").stat().st_mtime_ns // 10**9 == (
        source_time // 10**9
    )


def test_the_fingerprint_changes_with_any_write(tmp_path: Path) -> None:
    _, _, source = pack(tmp_path)
    before = folder_fingerprint(source)
    assert folder_fingerprint(source) == before
    (source / "seg-2" / "length.bin").write_bytes(b"x")
    assert folder_fingerprint(source) != before


def test_links_are_refused_when_packing(tmp_path: Path) -> None:
    source = tmp_path / "source"
    make_folder(source)
    (source / "tablespace").symlink_to(tmp_path)
    with pytest.raises(StoreError, match="link or a special file"):
        pack_folder(store_sink(LocalStore(tmp_path / "catalog"), SNAPSHOT), source)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_part_is_caught_before_anything_is_unpacked(tmp_path: Path, damage: str) -> None:
    store, parts, _ = pack(tmp_path)
    victim = store.root / file_key(SNAPSHOT, parts[-1].path)
    data = bytearray(victim.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage == "truncate":
        victim.write_bytes(bytes(data[: len(data) // 2]))
    else:
        victim.unlink()
    destination = tmp_path / "restored"
    with pytest.raises(IntegrityError, match=parts[-1].path) as raised:
        unpack_all(store, parts, destination)
    assert "nothing was unpacked" in raised.value.message
    assert not destination.exists()


def hostile_part(store: LocalStore, member: tarfile.TarInfo, data: bytes = b"") -> FileEntry:
    """A part whose one member is ``member`` (listed with its true digest: only the
    member's shape is hostile)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.addfile(member, io.BytesIO(data) if data else None)
    packed = zstandard.ZstdCompressor().compress(raw.getvalue())
    path = "physical/part-00000.tar.zst"
    (store.root / file_key(SNAPSHOT, path)).parent.mkdir(parents=True, exist_ok=True)
    (store.root / file_key(SNAPSHOT, path)).write_bytes(packed)
    return FileEntry(path, "physical", 1, len(packed), hashlib.sha256(packed).hexdigest())


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/evil", "a/../../b", "a\\b"])
def test_a_member_that_could_leave_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    store = LocalStore(tmp_path / "catalog")
    member = tarfile.TarInfo(name)
    member.size = 3
    part = hostile_part(store, member, b"bad")
    with pytest.raises(IntegrityError, match="tampering"):
        unpack_all(store, [part], tmp_path / "restored")
    assert not (tmp_path / "escape.txt").exists()


def test_a_link_member_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "catalog")
    member = tarfile.TarInfo("innocent")
    member.type = tarfile.SYMTYPE
    member.linkname = "/etc/passwd"
    part = hostile_part(store, member)
    with pytest.raises(IntegrityError, match="link or a special file"):
        unpack_all(store, [part], tmp_path / "restored")
    assert not (tmp_path / "restored" / "innocent").exists()
