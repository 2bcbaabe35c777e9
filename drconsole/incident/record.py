"""Append-only JSON Lines with a sha256 chain, a keyed MAC per line and a head anchor:
the writer, the reader and the verifier.

Each line is one event; ``prev_sha256`` is the sha256 of the previous line's bytes
(without its newline), ``null`` on the first. Version 2 lines end with a ``mac`` made
with the record key, and ``<run>.head`` anchors the last line (``incident.anchor``). A
changed, removed, reordered or forged line, lines cut from the end, or a file cut
mid-line, is found by ``read_record``. Every line is fsynced before ``append`` returns,
so what the console showed as done is on disk. A last line cut short (a full disk, a
crash mid-write) is cut off when the run is resumed, and the record says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from drconsole.durable import fsync_folder
from drconsole.errors import RecordError, RecordLockedError
from drconsole.incident.anchor import (
    head_path,
    line_authentic,
    line_body,
    read_head,
    record_key,
    sign_line,
    write_head,
)
from drconsole.incident.events import ENVELOPE, TYPES, VERSION, Event
from drconsole.incident.lock import lock_record, unlock_record
from drconsole.timefmt import format_utc

TORN = "the line is cut short: the file ends mid-line (truncated)"


@dataclass(frozen=True)
class RecordProblem:
    """The first bad line of a record and what is wrong with it."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class RecordRead:
    """The events of the intact prefix of a record, the first problem, if any, and what
    the reading proved: every line authenticated with the record key, and the end of
    the record matching its head anchor."""

    path: Path
    events: list[Event] = field(default_factory=list)
    problem: RecordProblem | None = None
    last_sha256: str | None = None
    authenticated: bool = False
    anchored: bool = False
    unproven: list[str] = field(default_factory=list)
    torn_bytes: int = 0

    @property
    def intact(self) -> bool:
        return self.problem is None

    @property
    def integrity(self) -> str:
        """``ok`` only when chained, authenticated and anchored; else what is wrong or
        what could not be proven."""
        if self.problem is not None:
            return f"broken: {self.problem}"
        if self.unproven:
            return "unproven: " + "; ".join(self.unproven)
        return "ok"


def line_sha256(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def read_record(path: Path, key: bytes | None = None) -> RecordRead:
    """Read and check a record (with the record key when given, else the one this
    machine has); stops at the first bad line (raises only if unreadable)."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise RecordError(
            f"{path}: no such record", "list runs with `drconsole runs list`"
        ) from None
    except OSError as error:
        raise RecordError(f"{path}: cannot read the record ({error.strerror})") from None
    key = key if key is not None else record_key(create=False)
    result = RecordRead(path)
    if not blob:
        result.problem = RecordProblem(1, "the record is empty")
        return result
    lines = blob.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    previous: bytes | None = None
    run_id: str | None = None
    versions: set[int] = set()
    for number, line in enumerate(complete, start=1):
        problem = _check_line(line, number, previous, run_id, key)
        if problem is not None:
            result.problem = problem
            del result.events[problem.line - 1 :]
            return result
        raw = json.loads(line)
        versions.add(raw["v"])
        event = Event.from_dict(raw)
        run_id = event.run_id
        result.events.append(event)
        previous = line
    if tail:
        result.problem = RecordProblem(len(complete) + 1, TORN)
        result.torn_bytes = len(tail)
    result.last_sha256 = line_sha256(previous) if previous is not None else None
    _prove(result, versions, key, run_id)
    return result


def _prove(result: RecordRead, versions: set[int], key: bytes | None, run_id: str | None) -> None:
    """Authenticated (every line's MAC checked) and anchored (the head matches the end)."""
    if versions != {VERSION}:
        result.unproven.append(
            "a version 1 record: its lines carry no MAC and it has no head anchor, so "
            "forged lines and lines cut from the end cannot be ruled out"
        )
        return
    if key is None:
        result.unproven.append(
            "the record key is not available here, so forged lines cannot be ruled out"
        )
    else:
        result.authenticated = True
    head = read_head(result.path)
    if head is None:
        result.problem = result.problem or RecordProblem(
            len(result.events) + 1,
            f"the head anchor {head_path(result.path).name} is missing or damaged: lines cut "
            "from the end cannot be ruled out",
        )
        return
    if key is not None and (head.run_id != run_id or not head.authentic(key)):
        result.problem = result.problem or RecordProblem(
            len(result.events) + 1, "the head anchor is not this record's (forged or swapped)"
        )
        return
    last = len(result.events)
    if head.seq > last:
        result.problem = result.problem or RecordProblem(
            last + 1,
            f"the record ends at line {last} but its head anchor says {head.seq} lines were "
            "written: lines were cut from the end",
        )
    elif head.seq == last and head.sha256 != result.last_sha256:
        result.problem = result.problem or RecordProblem(
            last, "the last line differs from the one its head anchor names"
        )
    elif head.seq < last - 1:
        result.problem = result.problem or RecordProblem(
            head.seq + 1, "lines follow the one the head anchor names: they were appended"
        )
    else:
        result.anchored = result.problem is None


def _check_line(
    line: bytes, number: int, previous: bytes | None, run_id: str | None, key: bytes | None
) -> RecordProblem | None:
    try:
        raw = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return RecordProblem(number, "not a JSON object (the line was edited or damaged)")
    if not isinstance(raw, dict) or raw.get("v") not in (1, VERSION):
        return RecordProblem(number, "not a record event, or an unsupported record version")
    fields = set(ENVELOPE) | ({"mac"} if raw["v"] == VERSION else set())
    if set(raw) != fields:
        return RecordProblem(number, "not a record event (its fields differ from the envelope)")
    if raw["v"] == VERSION and line_body(line) is None:
        return RecordProblem(number, "the line's MAC is not where the writer puts it")
    if raw["v"] == VERSION and key is not None and not line_authentic(key, line):
        return RecordProblem(
            number, "the line's MAC does not match: it was changed or written without the key"
        )
    seq = raw["seq"]
    if seq != number:
        if isinstance(seq, int) and seq > number:
            return RecordProblem(
                number, f"seq is {seq}, expected {number}: lines before it were removed"
            )
        return RecordProblem(
            number, f"seq is {seq!r}, expected {number}: lines were duplicated or moved"
        )
    expected = line_sha256(previous) if previous is not None else None
    if raw["prev_sha256"] != expected:
        if previous is None:
            return RecordProblem(number, "the first line names a previous line: lines were removed")
        return RecordProblem(
            number - 1,
            f"the line was changed after it was written (line {number} recorded another sha256)",
        )
    if run_id is not None and raw["run_id"] != run_id:
        return RecordProblem(
            number, f"run_id {raw['run_id']!r} differs from the record's {run_id!r}"
        )
    if raw["type"] not in TYPES:
        return RecordProblem(number, f"unknown event type {raw['type']!r}")
    try:
        Event.from_dict(raw)
    except (ValueError, KeyError, TypeError) as error:
        return RecordProblem(number, f"malformed event: {error}")
    return None


class RecordWriter:
    """The single writer of one record: holds the lock (an flock on the record file
    itself), appends, fsyncs each line (signed with the record key), then its head."""

    def __init__(self, path: Path, run_id: str, mode: str) -> None:
        self.path = path
        self.run_id = run_id
        self.mode = mode
        self.repaired_bytes = 0
        self._key: bytes | None = None
        self._version = VERSION
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._seq = 0
        self._last_sha256: str | None = None
        self._broken: str | None = None
        self.on_event: Callable[[Event], None] | None = None

    @classmethod
    def create(cls, path: Path, run_id: str, mode: str) -> RecordWriter:
        """A new, empty record (refuses to touch an existing file)."""
        writer = cls(path, run_id, mode)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except FileExistsError:
            raise RecordError(f"{path}: a record with this run id already exists") from None
        except OSError as error:
            raise RecordError(f"{path}: cannot create the record ({error.strerror})") from None
        try:
            lock_record(fd, path, run_id)
            writer._key = record_key(create=True)
            write_head(path, writer._key, run_id, 0, None)
            fsync_folder(path.parent)
        except BaseException:
            unlock_record(path)
            os.close(fd)
            raise
        writer._fd = fd
        return writer

    @classmethod
    def reopen(cls, path: Path) -> tuple[RecordWriter, RecordRead]:
        """Take the lock on an existing record and continue its chain; refuses a record
        that does not verify (appending would hide the damage), except for a last line
        cut short, which is cut off (``repaired_bytes`` says how much; the runner records
        it)."""
        probe = read_record(path)
        run_id = probe.events[0].run_id if probe.events else path.stem
        writer = cls(path, run_id, probe.events[0].mode if probe.events else "")
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except OSError as error:
            raise RecordError(f"{path}: cannot open the record ({error.strerror})") from None
        try:
            lock_record(fd, path, run_id)
            read = read_record(path)
            if read.problem is not None and read.problem.message == TORN and read.events:
                writer.repaired_bytes = read.torn_bytes
                os.ftruncate(fd, os.fstat(fd).st_size - read.torn_bytes)
                os.fsync(fd)
                read = read_record(path)
            if read.problem is not None or not read.events:
                raise RecordError(
                    f"{path}: {read.problem or 'the record is empty'}; refusing to append to it",
                    f"inspect it with `drconsole runs verify {run_id}`",
                )
        except RecordLockedError:
            os.close(fd)
            raise
        except BaseException:
            unlock_record(path)
            os.close(fd)
            raise
        writer._fd = fd
        writer.mode = read.events[0].mode
        writer._seq = read.events[-1].seq
        writer._last_sha256 = read.last_sha256
        writer._version = VERSION if read.authenticated else 1
        if read.authenticated:
            writer._key = record_key(create=False)
        elif read_head(path) is not None:
            os.close(fd)
            writer._fd = None
            raise RecordError(
                f"{path}: the record key is not available here, so lines written now could "
                "not be authenticated; refusing to resume",
                "run drconsole where the record key is, or set DRCONSOLE_RECORD_KEY",
            )
        return writer, read

    def append(
        self,
        event_type: str,
        data: dict[str, Any],
        *,
        time: datetime,
        observed_time: datetime,
        actor: str,
        step_id: str | None = None,
        attempt: int | None = None,
    ) -> Event:
        """Write one event durably and return it; raises RecordError if the disk refuses."""
        with self._mutex:
            if self._fd is None:
                raise RecordError(f"{self.path}: the record is closed")
            if self._broken:
                raise RecordError(
                    f"{self.path}: the record can no longer be written ({self._broken})"
                )
            raw = {
                "v": self._version,
                "seq": self._seq + 1,
                "id": uuid.uuid4().hex,
                "run_id": self.run_id,
                "type": event_type,
                "time": format_utc(time),
                "observed_time": format_utc(observed_time),
                "actor": actor,
                "mode": self.mode,
                "step_id": step_id,
                "attempt": attempt,
                "data": data,
                "prev_sha256": self._last_sha256,
            }
            line = json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
            if self._key is not None:
                line = sign_line(self._key, line)
            self._write_durably(line + b"\n")
            self._seq += 1
            self._last_sha256 = line_sha256(line)
            if self._key is not None:
                try:
                    write_head(self.path, self._key, self.run_id, self._seq, self._last_sha256)
                except RecordError as error:
                    self._broken = error.message
                    raise
            event = Event.from_dict(raw)
        if self.on_event is not None:
            self.on_event(event)
        return event

    def _write_durably(self, payload: bytes) -> None:
        assert self._fd is not None
        if os.fstat(self._fd).st_nlink == 0:
            self._broken = "the record file was deleted while the run was open"
            raise RecordError(
                f"{self.path}: {self._broken}; nothing more is written to it",
                "the run stops here; restore the file from a copy to keep its history",
            )
        try:
            written = os.write(self._fd, payload)
            if written != len(payload):
                raise OSError(0, f"short write ({written} of {len(payload)} bytes)")
            os.fsync(self._fd)
        except OSError as error:
            self._broken = error.strerror or str(error)
            raise RecordError(
                f"{self.path}: could not write the incident record ({self._broken})",
                "free disk space or fix the folder's permissions; the run stops here so "
                "nothing happens that the record does not show",
            ) from None

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None:
                unlock_record(self.path)
                os.close(self._fd)
                self._fd = None
