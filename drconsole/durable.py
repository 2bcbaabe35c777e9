"""Durability helpers shared by everything that writes files it must not lose."""

from __future__ import annotations

import os
from pathlib import Path


def private_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents) readable by its owner only (0700); an
    existing folder is left as it is."""
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)


def open_private(path: Path, append: bool = True) -> int:
    """A file descriptor on ``path``, created readable by its owner only (0600)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.open(path, flags, 0o600)


def fsync_folder(folder: Path) -> None:
    """Make a file's creation or rename in ``folder`` durable (fsync the directory)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
