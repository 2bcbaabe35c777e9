"""The one-writer lock of a record: an flock on the record file itself.

The lock lives on the record's inode, not on a path: deleting or replacing any file
cannot let a second process write the same record. flock is released by the kernel when
the holder dies, so a crashed drill never leaves a stale lock. Who holds it is written
to ``<run>.holder`` for the message a second writer gets; that file is information only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path

from drconsole.errors import RecordLockedError
from drconsole.timefmt import format_utc, utc_now


def holder_path(record: Path) -> Path:
    return record.with_suffix(".holder")


def lock_record(fd: int, record: Path, run_id: str) -> None:
    """Take the exclusive lock on an open record, or raise RecordLockedError naming the
    holder's pid and host."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = read_holder(record)
        who = (
            f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
            f" (since {holder.get('since', '?')})"
        )
        raise RecordLockedError(
            f"run {run_id} is open in another drconsole: {who}",
            "close that console or wait for its drill to end; a crashed holder frees the lock",
        ) from None
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": format_utc(utc_now())}
    with contextlib.suppress(OSError):
        fd_info = os.open(holder_path(record), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd_info, json.dumps(holder).encode())
        finally:
            os.close(fd_info)


def unlock_record(record: Path) -> None:
    """Forget the holder information (closing the record's descriptor frees the lock)."""
    holder_path(record).unlink(missing_ok=True)


def read_holder(record: Path) -> dict[str, object]:
    """What the holder file says about the lock's holder (empty when unreadable)."""
    try:
        holder = json.loads(holder_path(record).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def is_locked(record: Path) -> bool:
    """True while some process holds the record's lock (checked without taking it for
    long: a shared lock fails while the writer's exclusive one is held)."""
    try:
        fd = os.open(record, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
