"""`drconsole drill` and `drconsole runs` as a user runs them: real processes, real
signals, exit codes and JSON shapes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from drconsole.incident.record import read_record

from helpers import run_cli, write_runbook

LONG_STEP = (
    "import os, sys, time\n"
    "marker = sys.argv[1]\n"
    "if os.path.exists(marker): sys.exit(0)\n"
    "open(marker, 'w').close()\n"
    "print('working', flush=True)\n"
    "time.sleep(120)\n"
)


def _crash_runbook(folder: Path) -> Path:
    return write_runbook(
        folder,
        f"""
        schema: drconsole/runbook/v1
        id: crash-test
        title: Crash test
        objectives: {{rto: 1h}}
        steps:
          - id: declare
            kind: manual
            instructions: Freeze ingestion.
            auto_confirm_in_drill: true
          - id: prepare
            action: command
            with: {{argv: [{sys.executable}, -c, "print('prepared')"]}}
          - id: long
            action: command
            with: {{argv: [{sys.executable}, -c, {json.dumps(LONG_STEP)}, {folder / "marker"}]}}
          - id: after
            action: command
            with: {{argv: [{sys.executable}, -c, "print('done')"]}}
            marks: service_restored
    """,
    )


def _events(runs: Path) -> list[Any]:
    records = sorted(runs.glob("*.jsonl"))
    return read_record(records[-1]).events if records else []


def _start_drill(runbook: Path, runs: Path) -> tuple[subprocess.Popen[str], int]:
    """Start a drill and wait until the long step's program really runs (its pid is
    recorded and it has written its marker); returns the program's pid too."""
    drill = subprocess.Popen(
        [sys.executable, "-m", "drconsole.cli", "drill", str(runbook), "--runs-dir", str(runs)],
        stdout=subprocess.DEVNULL,
        stderr=(runs.parent / "drill.err").open("w"),
        text=True,
    )
    marker = runbook.parent / "marker"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for event in _events(runs):
            if event.type == "step.progress" and event.step_id == "long" and marker.exists():
                return drill, event.data["data"]["pid"]
        time.sleep(0.05)
    drill.kill()
    pytest.fail("the long step never started")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _started_count(events: list[Any], step_id: str) -> int:
    return sum(1 for e in events if e.type == "step.started" and e.step_id == step_id)


@pytest.mark.parametrize("choice", ["--rerun-interrupted", "--mark-interrupted-done"])
def test_sigkill_mid_step_then_resume(tmp_path: Path, choice: str) -> None:
    runs = tmp_path / "runs"
    drill, child = _start_drill(_crash_runbook(tmp_path), runs)
    drill.send_signal(signal.SIGKILL)
    drill.wait(10)
    # The operator finds the orphaned program from the pid the record names, and stops it.
    assert _alive(child)
    os.kill(child, signal.SIGKILL)

    shown = run_cli("runs", "show", "latest", "--json", "--runs-dir", str(runs))
    assert json.loads(shown.stdout)["status"] == "interrupted"

    undecided = run_cli("drill", "--resume", "latest", "--runs-dir", str(runs))
    assert undecided.returncode == 3
    assert "--rerun-interrupted" in undecided.stderr

    finished = run_cli("drill", "--resume", "latest", choice, "--json", "--runs-dir", str(runs))
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    assert summary["status"] == "succeeded" and summary["rto_met"] is True

    assert run_cli("runs", "verify", "latest", "--runs-dir", str(runs)).returncode == 0
    events = _events(runs)
    assert _started_count(events, "declare") == 1
    assert _started_count(events, "prepare") == 1
    assert _started_count(events, "after") == 1
    assert _started_count(events, "long") == (2 if choice == "--rerun-interrupted" else 1)
    long_finishes = [
        e.data["status"] for e in events if e.type == "step.finished" and e.step_id == "long"
    ]
    assert long_finishes == (
        ["cancelled", "succeeded"] if choice == "--rerun-interrupted" else ["succeeded"]
    )


def test_ctrl_c_cancels_the_step_stops_its_program_and_pauses(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    drill, child = _start_drill(_crash_runbook(tmp_path), runs)
    drill.send_signal(signal.SIGINT)
    assert drill.wait(30) == 130
    run_id = next(runs.glob("*.jsonl")).stem
    said = (tmp_path / "drill.err").read_text()
    assert f"resumable: `drconsole drill --resume {run_id}`" in said
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    shown = json.loads(run_cli("runs", "show", "latest", "--json", "--runs-dir", str(runs)).stdout)
    assert shown["status"] == "needs_operator"
    resumed = run_cli("drill", "--resume", "latest", "--json", "--runs-dir", str(runs))
    assert resumed.returncode == 0, resumed.stderr
    assert _started_count(_events(runs), "prepare") == 1


def _simple(folder: Path, steps: str, rto: str = "1h", name: str = "rb.yaml") -> Path:
    return write_runbook(
        folder,
        f"""
        schema: drconsole/runbook/v1
        id: simple
        title: Simple
        objectives: {{rto: {rto}, rpo: 4h}}
        steps:
    """
        + steps,
        name=name,
    )


OK_STEP = f"""
          - id: work
            action: command
            with: {{argv: [{sys.executable}, -c, "import time; time.sleep(0.05)"]}}
            gate: true
            marks: service_restored
"""


def test_exit_codes(tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    ok = run_cli("drill", str(_simple(tmp_path, OK_STEP, name="ok.yaml")), "--runs-dir", runs)
    assert ok.returncode == 0, ok.stderr
    failing = _simple(
        tmp_path, OK_STEP.replace("time.sleep(0.05)", "raise SystemExit(4)"), name="gate.yaml"
    )
    gate = run_cli("drill", str(failing), "--runs-dir", runs)
    assert gate.returncode == 1
    assert "gate work failed" in gate.stderr
    slow = run_cli(
        "drill", str(_simple(tmp_path, OK_STEP, rto="1ms", name="slow.yaml")), "--runs-dir", runs
    )
    assert slow.returncode == 1
    assert "RTO target was missed" in slow.stderr
    manual = _simple(
        tmp_path,
        OK_STEP + "          - {id: call, kind: manual, instructions: Call the team.}\n",
        name="manual.yaml",
    )
    waits = run_cli("drill", str(manual), "--runs-dir", runs)
    assert waits.returncode == 3
    assert "waits for a person" in waits.stderr
    confirmed = run_cli("drill", str(manual), "--yes", "--runs-dir", runs)
    assert confirmed.returncode == 0
    invalid = run_cli(
        "drill", str(write_runbook(tmp_path, "schema: nope\n", name="bad.yaml")), "--runs-dir", runs
    )
    assert invalid.returncode == 2
    assert "Traceback" not in invalid.stderr
    listed = json.loads(run_cli("runs", "list", "--json", "--runs-dir", runs).stdout)
    assert [run["status"] for run in listed] == [
        "succeeded",
        "failed",
        "succeeded",
        "needs_operator",
        "succeeded",
    ]
    assert [run["rto_met"] for run in listed] == [True, None, False, True, True]
    for run in listed:
        assert {
            "run_id",
            "runbook_id",
            "mode",
            "status",
            "started_at",
            "rto_s",
            "rto_target_s",
            "rto_met",
        } <= set(run)
    assert [run["started_at"] for run in listed] == sorted(run["started_at"] for run in listed)


def test_yes_is_recorded_as_automatic_confirmation(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    manual = _simple(
        tmp_path, OK_STEP + "          - {id: call, kind: manual, instructions: Call.}\n"
    )
    assert run_cli("drill", str(manual), "--yes", "--runs-dir", str(runs)).returncode == 0
    finished = [e for e in _events(runs) if e.type == "step.finished" and e.step_id == "call"]
    assert finished[0].actor == "drconsole"
    assert finished[0].data["details"]["via"] == "--yes"


def test_runs_show_verify_and_export(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert (
        run_cli("drill", str(_simple(tmp_path, OK_STEP)), "--runs-dir", str(runs)).returncode == 0
    )
    shown = json.loads(run_cli("runs", "show", "latest", "--json", "--runs-dir", str(runs)).stdout)
    for key in (
        "run_id",
        "runbook_id",
        "mode",
        "status",
        "rto_s",
        "rto_target_s",
        "rto_met",
        "rpo_s",
        "rpo_target_s",
        "rpo_met",
        "phases",
        "waiting_s",
        "overrides",
        "skipped",
    ):
        assert key in shown
    assert shown["status"] in ("running", "interrupted", "needs_operator", "succeeded", "failed")
    assert shown["phases"]["prep"] > 0
    report = tmp_path / "report.md"
    assert (
        run_cli(
            "runs", "export", "latest", "--format", "md", "-o", str(report), "--runs-dir", str(runs)
        ).returncode
        == 0
    )
    assert report.read_text().startswith("# Recovery report: Simple")
    exported = json.loads(
        run_cli("runs", "export", "latest", "--format", "json", "--runs-dir", str(runs)).stdout
    )
    assert exported["metrics"]["run_id"] == shown["run_id"]
    assert exported["events"][0]["type"] == "run.started"

    record = sorted(runs.glob("*.jsonl"))[0]
    lines = record.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"actor":"', b'"actor":"x')
    record.write_bytes(b"\n".join(lines))
    broken = run_cli("runs", "verify", "latest", "--runs-dir", str(runs))
    assert broken.returncode == 1
    assert "line 2" in broken.stdout
    listed = json.loads(run_cli("runs", "list", "--json", "--runs-dir", str(runs)).stdout)
    assert listed[0]["integrity"].startswith("broken: line 2")


def test_errors_are_one_or_two_lines_without_traceback(tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    for args in (
        ("runs", "show", "nope", "--runs-dir", runs),
        ("drill", str(tmp_path / "missing.yaml"), "--runs-dir", runs),
        ("drill", "--resume", "nope", "--runs-dir", runs),
        ("drill", "--rerun-interrupted", str(tmp_path / "x.yaml"), "--runs-dir", runs),
    ):
        result = run_cli(*args)
        assert result.returncode == 2, args
        lines = result.stderr.strip().splitlines()
        assert 1 <= len(lines) <= 2, result.stderr
        assert "Traceback" not in result.stderr


def test_runbook_validate_and_show(tmp_path: Path) -> None:
    good = _simple(tmp_path, OK_STEP, name="good.yaml")
    bad = write_runbook(
        tmp_path, "schema: drconsole/runbook/v1\nid: x\ntitel: y\n", name="bad.yaml"
    )
    both = run_cli("runbook", "validate", str(good), str(bad))
    assert both.returncode == 2
    assert f"{good}: ok" in both.stdout
    problems = both.stderr.strip().splitlines()
    assert f"{bad}:3:1: unknown key 'titel' in the runbook; did you mean 'title'?" in problems
    assert all(line.startswith(f"{bad}:") for line in problems)
    assert run_cli("runbook", "validate", str(good)).returncode == 0
    shown = run_cli("runbook", "show", str(good))
    assert shown.returncode == 0 and "work" in shown.stdout and "service_restored" in shown.stdout
