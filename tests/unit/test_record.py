"""The incident record: durable appends, the hash chain, tamper detection, the lock."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drconsole.errors import RecordError, RecordLockedError
from drconsole.incident import record as record_module
from drconsole.incident.record import RecordWriter, line_sha256, read_record

from helpers import T0


def _write(path: Path, count: int) -> None:
    writer = RecordWriter.create(path, "run-1", "drill")
    writer.append("run.started", {"plan": []}, time=T0, observed_time=T0, actor="alice")
    for number in range(count - 1):
        writer.append("note", {"text": f"note {number}"}, time=T0, observed_time=T0, actor="alice")
    writer.close()


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def test_every_line_is_fsynced_before_append_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(record_module.os, "fsync", counting_fsync)
    path = tmp_path / "run-1.jsonl"
    writer = RecordWriter.create(path, "run-1", "drill")
    after_create = len(synced)
    for number in range(3):
        writer.append("note", {"text": str(number)}, time=T0, observed_time=T0, actor="a")
        assert len(synced) == after_create + number + 1
        assert len(_lines(path)) == number + 1
    writer.close()


def test_envelope_and_chain(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 3)
    raw = [json.loads(line) for line in _lines(path)]
    assert list(raw[0]) == [
        "v",
        "seq",
        "id",
        "run_id",
        "type",
        "time",
        "observed_time",
        "actor",
        "mode",
        "step_id",
        "attempt",
        "data",
        "prev_sha256",
    ]
    assert [item["seq"] for item in raw] == [1, 2, 3]
    assert raw[0]["prev_sha256"] is None
    lines = _lines(path)
    assert raw[1]["prev_sha256"] == line_sha256(lines[0])
    assert raw[2]["prev_sha256"] == line_sha256(lines[1])
    assert raw[0]["time"] == "2026-11-22T10:00:00.000Z"
    read = read_record(path)
    assert read.intact and len(read.events) == 3


def test_fsync_failure_stops_the_writer_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run-1.jsonl"
    writer = RecordWriter.create(path, "run-1", "drill")
    writer.append("run.started", {}, time=T0, observed_time=T0, actor="a")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_module.os, "fsync", full_disk)
    with pytest.raises(RecordError, match="No space left on device") as caught:
        writer.append("note", {"text": "x"}, time=T0, observed_time=T0, actor="a")
    assert "free disk space" in (caught.value.hint or "")
    monkeypatch.undo()
    with pytest.raises(RecordError, match="can no longer be written"):
        writer.append("note", {"text": "y"}, time=T0, observed_time=T0, actor="a")
    writer.close()


def test_a_changed_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 5)
    lines = _lines(path)
    lines[2] = lines[2].replace(b"note 1", b"note X")
    path.write_bytes(b"\n".join(lines) + b"\n")
    read = read_record(path)
    assert read.problem is not None
    assert read.problem.line == 3
    assert "changed" in read.problem.message
    assert len(read.events) == 2


def test_a_removed_line_is_found(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 5)
    lines = _lines(path)
    del lines[1]
    path.write_bytes(b"\n".join(lines) + b"\n")
    problem = read_record(path).problem
    assert problem is not None and problem.line == 2
    assert "removed" in problem.message


def test_a_file_cut_mid_line_is_found(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 4)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) - 20])
    read = read_record(path)
    assert read.problem is not None and read.problem.line == 4
    assert "cut short" in read.problem.message
    assert len(read.events) == 3


def test_swapped_lines_and_garbage_are_found(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 4)
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"\n".join(lines) + b"\n")
    problem = read_record(path).problem
    assert problem is not None and problem.line == 2
    path.write_bytes(b"\n".join(_lines(path)[:1]) + b"\nnot json\n")
    problem = read_record(path).problem
    assert problem is not None and problem.line == 2 and "JSON" in problem.message


def test_empty_and_missing_records(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    path.write_bytes(b"")
    assert read_record(path).problem is not None
    with pytest.raises(RecordError, match="no such record"):
        read_record(tmp_path / "nope.jsonl")


def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 2)
    writer, read = RecordWriter.reopen(path)
    assert len(read.events) == 2
    event = writer.append("note", {"text": "later"}, time=T0, observed_time=T0, actor="b")
    writer.close()
    assert event.seq == 3
    assert read_record(path).intact


def test_reopen_refuses_a_damaged_record(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 3)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(RecordError, match="refusing to append"):
        RecordWriter.reopen(path)
    assert not path.with_suffix(".holder").exists()


def test_create_refuses_an_existing_record(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 1)
    with pytest.raises(RecordError, match="already exists"):
        RecordWriter.create(path, "run-1", "drill")


HOLD_LOCK = """
import sys, time
from pathlib import Path
from drconsole.incident.record import RecordWriter
writer, _ = RecordWriter.reopen(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RecordLockedError) as caught:
            RecordWriter.reopen(path)
        assert f"pid {holder.pid}" in caught.value.message
        assert socket.gethostname() in caught.value.message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    deadline = time.monotonic() + 10
    while True:
        try:
            writer, _ = RecordWriter.reopen(path)
            break
        except RecordLockedError:
            assert time.monotonic() < deadline, "the lock of a killed holder was not released"
            time.sleep(0.05)
    writer.append("note", {"text": "after the crash"}, time=T0, observed_time=T0, actor="b")
    writer.close()
    assert read_record(path).intact


def test_deleting_the_lock_files_never_lets_a_second_writer_in(tmp_path: Path) -> None:
    """The lock is an flock on the record itself: removing every other file the lock
    uses (the holder file) while a drill runs does not let a second --resume write."""
    path = tmp_path / "run-1.jsonl"
    _write(path, 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        for leftover in tmp_path.iterdir():
            if leftover != path:
                leftover.unlink()
        assert [p.name for p in tmp_path.iterdir()] == ["run-1.jsonl"]
        with pytest.raises(RecordLockedError, match="open in another drconsole"):
            RecordWriter.reopen(path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)


def test_a_record_deleted_under_its_writer_stops_the_run(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    writer = RecordWriter.create(path, "run-1", "drill")
    writer.append("note", {"text": "first"}, time=T0, observed_time=T0, actor="a")
    path.unlink()
    with pytest.raises(RecordError, match="deleted while the run was open"):
        writer.append("note", {"text": "lost"}, time=T0, observed_time=T0, actor="a")
    writer.close()
