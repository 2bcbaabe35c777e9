"""The one-writer lock of a record: an flock on ``<run>.lock`` naming its holder.

flock is released by the kernel when the holder dies, so a crashed drill never leaves a
stale lock behind; the file's text says who holds it, for the message a second writer gets.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from drconsole.errors import RecordLockedError
from drconsole.timefmt import format_utc, utc_now


class WriterLock:
    """An exclusive, non-blocking lock; ``release`` removes the file."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise RecordLockedError naming the holder's pid and host."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._locked_error() from None
            if self._same_file(fd):
                break
            os.close(fd)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": format_utc(utc_now())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def _same_file(self, fd: int) -> bool:
        """False when the lock file was removed and re-created while we waited for it."""
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _locked_error(self) -> RecordLockedError:
        holder = read_holder(self.path)
        who = (
            f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
            f" (since {holder.get('since', '?')})"
        )
        return RecordLockedError(
            f"run {self.run_id} is open in another drconsole: {who}",
            "close that console or wait for its drill to end; a crashed holder frees the lock",
        )


def read_holder(path: Path) -> dict[str, object]:
    """What the lock file says about its holder (empty when unreadable)."""
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def is_locked(path: Path) -> bool:
    """True while some process holds the lock (checked without taking it for long)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
