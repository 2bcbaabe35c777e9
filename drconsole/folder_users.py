"""Which processes are using a folder: the check that refuses to copy a live database's
files (a copy taken while a server writes them is not safe to restore).

Linux tells through ``/proc``: a process using the folder has a file under it open, or
works in it. Processes whose ``/proc`` entries cannot be read are counted, so that a
caller can say what it could not check instead of claiming the folder is free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FolderUser:
    pid: int
    command: str
    path: str
    """The file it has open under the folder (or the folder it works in)."""

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command}) has {self.path} open"


@dataclass(frozen=True)
class FolderUsers:
    users: list[FolderUser]
    unreadable: int
    """Processes whose open files could not be read (another user's, without root)."""


def folder_users(folder: Path) -> FolderUsers:
    """Every other process with a file under ``folder`` open or its working folder in it."""
    root = str(folder.resolve())
    users: list[FolderUser] = []
    unreadable = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            paths = [os.readlink(f"/proc/{pid}/cwd")]
            for fd in os.scandir(f"/proc/{pid}/fd"):
                try:
                    paths.append(os.readlink(fd.path))
                except OSError:
                    continue
        except PermissionError:
            unreadable += 1
            continue
        except OSError:  # the process ended meanwhile
            continue
        found = next((path for path in paths if path == root or path.startswith(root + "/")), None)
        if found is not None:
            users.append(FolderUser(pid, _command(pid), found))
    return FolderUsers(users, unreadable)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
