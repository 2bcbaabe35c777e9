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
from collections.abc import Iterator
from contextlib import contextmanager
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
        # the line, then the head anchor and its folder
        assert len(synced) == after_create + 3 * (number + 1)
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
        "mac",
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


@contextmanager
def _held_elsewhere(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the record's writer lock; SIGKILLed on the way out."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 1)
    with _held_elsewhere(path) as holder:
        with pytest.raises(RecordLockedError) as caught:
            RecordWriter.reopen(path)
        assert f"pid {holder.pid}" in caught.value.message
        assert socket.gethostname() in caught.value.message
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
    with _held_elsewhere(path):
        for leftover in tmp_path.iterdir():
            if leftover != path:
                leftover.unlink()
        assert [p.name for p in tmp_path.iterdir()] == ["run-1.jsonl"]
        with pytest.raises(RecordLockedError, match="open in another drconsole"):
            RecordWriter.reopen(path)


def test_a_record_deleted_under_its_writer_stops_the_run(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    writer = RecordWriter.create(path, "run-1", "drill")
    writer.append("note", {"text": "first"}, time=T0, observed_time=T0, actor="a")
    path.unlink()
    with pytest.raises(RecordError, match="deleted while the run was open"):
        writer.append("note", {"text": "lost"}, time=T0, observed_time=T0, actor="a")
    writer.close()


def _finished(path: Path) -> None:
    writer = RecordWriter.create(path, "run-1", "drill")
    writer.append("run.started", {"plan": []}, time=T0, observed_time=T0, actor="alice")
    writer.append("note", {"text": "restored"}, time=T0, observed_time=T0, actor="alice")
    writer.append("note", {"text": "checked"}, time=T0, observed_time=T0, actor="alice")
    writer.append("run.finished", {"status": "failed"}, time=T0, observed_time=T0, actor="a")
    writer.close()


@pytest.mark.parametrize("removed", [1, 2, 3])
@pytest.mark.parametrize("finished", [True, False])
def test_lines_cut_from_the_end_are_found(tmp_path: Path, removed: int, finished: bool) -> None:
    path = tmp_path / "run-1.jsonl"
    _finished(path) if finished else _write(path, 4)
    assert read_record(path).integrity == "ok"
    lines = _lines(path)
    path.write_bytes(b"\n".join(lines[:-removed]) + b"\n")
    read = read_record(path)
    assert read.problem is not None and "lines were cut from the end" in read.problem.message
    assert read.integrity.startswith("broken:")


def _forge(line: bytes, change: dict) -> bytes:
    """Edit a line as someone without the key would: change it, fix its hashes."""
    raw = json.loads(line)
    raw.update(change)
    del raw["mac"]
    body = json.dumps(raw, separators=(",", ":")).encode()
    return body[:-1] + b',"mac":"' + b"0" * 64 + b'"}'


def test_an_edited_last_line_is_found(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _finished(path)
    lines = _lines(path)
    lines[-1] = _forge(lines[-1], {"data": {"status": "succeeded"}})
    path.write_bytes(b"\n".join(lines) + b"\n")
    read = read_record(path)
    assert read.problem is not None and read.problem.line == 4
    assert "MAC does not match" in read.problem.message


def test_a_forged_line_with_its_hash_recomputed_is_found(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _write(path, 3)
    lines = _lines(path)
    forged = _forge(lines[-1], {"seq": 4, "prev_sha256": line_sha256(lines[-1])})
    path.write_bytes(b"\n".join([*lines, forged]) + b"\n")
    problem = read_record(path).problem
    assert problem is not None and problem.line == 4 and "MAC" in problem.message


def test_a_re_chained_record_does_not_verify(tmp_path: Path) -> None:
    """Every line rewritten and re-chained, as a forger without the key would."""
    path = tmp_path / "run-1.jsonl"
    _finished(path)
    previous, rewritten = None, []
    for line in _lines(path):
        raw = json.loads(line)
        if raw["type"] == "run.finished":
            raw["data"] = {"status": "succeeded"}
        raw["prev_sha256"] = previous
        new = _forge(json.dumps(raw).encode(), {})
        rewritten.append(new)
        previous = line_sha256(new)
    path.write_bytes(b"\n".join(rewritten) + b"\n")
    problem = read_record(path).problem
    assert problem is not None and problem.line == 1 and "MAC" in problem.message


def test_a_record_read_with_another_key_or_none_is_not_proven(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _finished(path)
    wrong = read_record(path, key=b"k" * 64)
    assert wrong.problem is not None and "MAC" in wrong.problem.message
    (Path(os.environ["XDG_CONFIG_HOME"]) / "drconsole" / "record.key").unlink()
    keyless = read_record(path)
    assert keyless.intact and not keyless.authenticated
    assert keyless.integrity.startswith("unproven: the record key is not available")


def test_a_missing_head_anchor_is_found(tmp_path: Path) -> None:
    path = tmp_path / "run-1.jsonl"
    _finished(path)
    path.with_suffix(".head").unlink()
    problem = read_record(path).problem
    assert problem is not None and "head anchor run-1.head is missing" in problem.message


def test_a_torn_last_line_is_cut_off_on_reopen_and_the_run_goes_on(tmp_path: Path) -> None:
    """A full disk left half a line: reopening cuts it off (and says how much); the
    chain continues and verifies."""
    path = tmp_path / "run-1.jsonl"
    _write(path, 3)
    with path.open("ab") as handle:
        handle.write(b'{"v":2,"seq":4,"id":"half a li')
    writer, read = RecordWriter.reopen(path)
    assert writer.repaired_bytes == len(b'{"v":2,"seq":4,"id":"half a li')
    assert read.intact and len(read.events) == 3
    writer.append("note", {"text": "after the repair"}, time=T0, observed_time=T0, actor="a")
    writer.close()
    assert read_record(path).integrity == "ok"
