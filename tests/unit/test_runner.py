"""The runner: order, modes, gates and overrides, retries, timeouts, skips, people."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from drconsole.errors import RunStateError
from drconsole.incident.record import read_record
from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner

from helpers import TEST_REGISTRY, FakeClock, write_runbook

HEADER = """
schema: drconsole/runbook/v1
id: test-run
title: Test run
objectives: {rto: 1h, rpo: 4h}
steps:
"""


def _runner(
    tmp_path: Path, steps: str, mode: str = "drill", clock: FakeClock | None = None
) -> Runner:
    path = write_runbook(tmp_path, HEADER + steps)
    runbook = load_runbook(path, registry=TEST_REGISTRY)
    return Runner.start(
        runbook,
        mode,
        RunStore(tmp_path / "runs"),
        clock=clock or FakeClock(),
        registry=TEST_REGISTRY,
        actor="alice",
    )


def _types(runner: Runner) -> list[tuple[str, str | None]]:
    return [(event.type, event.step_id) for event in read_record(runner.record_path).events]


def test_order_follows_needs_then_document_order_and_modes(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - {id: c, action: flaky, needs: [b]}
      - {id: a, action: flaky}
      - {id: b, action: flaky, marks: service_restored}
      - {id: only-incident, action: flaky, when: {modes: [incident]}}
    """,
    )
    ran = []
    while (pending := runner.advance()).kind == "run":
        assert pending.step is not None
        runner.run_step(pending.step.id)
        ran.append(pending.step.id)
    assert ran == ["a", "b", "c"]
    assert runner.advance().kind == "complete"
    assert runner.finish() == "succeeded"
    assert ("milestone", None) in _types(runner)
    runner.close()


def test_a_failed_gate_blocks_until_overridden_with_a_reason(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - {id: counts, action: check, with: {passes: false}, gate: true, marks: service_restored}
      - {id: after, action: flaky}
    """,
    )
    state = runner.run_step("counts")
    assert state.status == "failed"
    assert state.findings[0]["actual"] == 7
    pending = runner.advance()
    assert (pending.kind, pending.step and pending.step.id) == ("blocked", "counts")
    with pytest.raises(RunStateError, match="cannot do that now"):
        runner.run_step("after")
    with pytest.raises(RunStateError, match="reason"):
        runner.override("counts", "   ")
    runner.override("counts", "counted during ingestion, known drift")
    assert runner.state.milestones.get("service_restored") is not None
    assert runner.advance().step.id == "after"  # type: ignore[union-attr]
    runner.close()


def test_overriding_a_step_that_is_not_a_gate_is_refused(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - {id: work, action: check, with: {passes: false}, marks: service_restored}
    """,
    )
    runner.run_step("work")
    with pytest.raises(RunStateError, match="not a gate"):
        runner.override("work", "because")
    runner.skip("work", "done by hand")
    assert runner.advance().kind == "complete"
    runner.close()


def test_retries_with_delay_then_success(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - id: flaky
        action: flaky
        with: {fail_times: 2}
        retries: {max: 2, delay: 50ms}
        marks: service_restored
    """,
    )
    state = runner.run_step("flaky")
    assert state.status == "succeeded"
    assert state.attempts == 3
    types = _types(runner)
    assert types.count(("step.retry", "flaky")) == 2
    assert types.count(("step.started", "flaky")) == 3
    runner.close()


def test_retries_exhausted_leave_the_step_blocked(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - id: flaky
        action: flaky
        with: {fail_times: 5}
        retries: {max: 1, delay: 0s}
        marks: service_restored
    """,
    )
    state = runner.run_step("flaky")
    assert (state.status, state.attempts) == ("failed", 2)
    assert runner.advance().kind == "blocked"
    runner.close()


def test_timeout_stops_a_command_and_its_process(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - id: slow
        action: command
        with: {argv: [python3, -c, "import time; time.sleep(60)"]}
        timeout: 1s
        marks: service_restored
    """,
    )
    started = time.monotonic()
    state = runner.run_step("slow")
    assert time.monotonic() - started < 15
    assert state.status == "timed_out"
    progress = [e for e in read_record(runner.record_path).events if e.type == "step.progress"]
    pid = progress[0].data["data"]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    runner.close()


def test_on_failure_abort_finishes_the_run_failed(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - {id: broken, action: flaky, with: {fail_times: 1}, on_failure: abort}
      - {id: never, action: flaky, marks: service_restored}
    """,
    )
    runner.run_step("broken")
    assert runner.advance().kind == "finished"
    assert runner.state.finished == {
        "status": "failed",
        "reason": "step broken failed and its on_failure is abort",
    }
    runner.close()


def test_on_failure_continue_moves_on(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - {id: optional, action: flaky, with: {fail_times: 1}, on_failure: continue}
      - {id: next, action: flaky, marks: service_restored}
    """,
    )
    assert runner.run_step("optional").continued
    assert runner.advance().step.id == "next"  # type: ignore[union-attr]
    runner.close()


def test_skip_needs_a_reason_and_is_recorded(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - {id: first, action: flaky}
      - {id: second, action: flaky, marks: service_restored}
    """,
    )
    with pytest.raises(RunStateError, match="reason"):
        runner.skip("first", "")
    runner.skip("first", "already verified by hand")
    assert runner.advance().step.id == "second"  # type: ignore[union-attr]
    skipped = [e for e in read_record(runner.record_path).events if e.type == "step.skipped"]
    assert skipped[0].data == {"reason": "already verified by hand"}
    runner.close()


def test_manual_steps_wait_and_approvals_can_be_rejected(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = _runner(
        tmp_path,
        """
      - id: approve
        kind: approval
        instructions: "Approve restoring into prod for {{ run.mode }}."
      - {id: work, action: flaky, marks: service_restored}
    """,
        clock=clock,
    )
    pending = runner.advance()
    assert pending.kind == "confirm"
    assert runner.instructions(pending.step) == "Approve restoring into prod for drill."  # type: ignore[arg-type]
    assert runner.state.steps["approve"].status == "waiting"
    clock.advance(120)
    runner.reject("approve", "wrong snapshot")
    assert runner.advance().kind == "blocked"
    runner.retry("approve")
    clock.advance(30)
    runner.confirm("approve")
    state = runner.state.steps["approve"]
    assert (state.status, state.attempts) == ("succeeded", 2)
    runner.run_step("work")
    runner.finish()
    metrics = runner.store.metrics(runner.run_id)
    assert metrics.waiting_s == 150
    runner.close()


def test_destructive_steps_need_confirmation(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - {id: wipe, action: flaky, destructive: true, marks: service_restored}
    """,
    )
    with pytest.raises(RunStateError, match="destructive"):
        runner.run_step("wipe")
    runner.run_step("wipe", confirmed=True)
    started = [e for e in read_record(runner.record_path).events if e.type == "step.started"]
    assert started[0].data["confirmed_by"] == "alice"
    runner.close()


def test_an_action_bug_fails_its_step_not_the_run(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - {id: buggy, action: crash, marks: service_restored}
    """,
    )
    state = runner.run_step("buggy")
    assert state.status == "failed"
    assert "ZeroDivisionError" in state.summary
    log = Path(state.details["debug_log"])
    assert "Traceback" in log.read_text()
    runner.close()


def test_milestones_back_dated_but_never_in_the_future(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = _runner(
        tmp_path,
        "  - {id: a, action: flaky, marks: service_restored}\n",
        mode="incident",
        clock=clock,
    )
    assert runner.state.milestones["impact_start"] == clock.now
    runner.milestone(
        "impact_start", clock.now - timedelta(minutes=20), reason="first alert at 09:40"
    )
    assert runner.state.milestones["impact_start"] == clock.now - timedelta(minutes=20)
    with pytest.raises(RunStateError, match="future"):
        runner.milestone("declared", clock.now + timedelta(seconds=5))
    runner.close()


def test_secrets_from_references_never_reach_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTORE_TOKEN", "s3cr3t-value-123")
    runner = _runner(
        tmp_path,
        """
      - id: leak
        action: command
        with:
          argv:
            - python3
            - -c
            - "import os; print('got', os.environ['API_TOKEN']); print('password=hunter2')"
          env: {API_TOKEN: env:RESTORE_TOKEN}
        marks: service_restored
    """,
    )
    state = runner.run_step("leak")
    assert state.status == "succeeded"
    assert state.details["output_tail"] == "got ***\npassword=***"
    text = runner.record_path.read_text()
    assert "s3cr3t-value-123" not in text
    assert "hunter2" not in text
    runner.close()


def test_finished_runs_cannot_be_resumed_and_changed_runbooks_are_refused(tmp_path: Path) -> None:
    runner = _runner(tmp_path, "  - {id: a, action: flaky, marks: service_restored}\n")
    store, run_id = runner.store, runner.run_id
    runner.pause("lunch")
    runner.close()
    runbook_path = tmp_path / "runbook.yaml"
    runbook_path.write_text(runbook_path.read_text() + "\n# edited\n")
    with pytest.raises(RunStateError, match="changed since run"):
        Runner.resume(store, run_id, registry=TEST_REGISTRY)
    runbook = load_runbook(runbook_path, registry=TEST_REGISTRY)
    done = Runner.start(runbook, "drill", store, registry=TEST_REGISTRY)
    done.run_step("a")
    done.finish()
    done.close()
    with pytest.raises(RunStateError, match="already finished"):
        Runner.resume(store, done.run_id, registry=TEST_REGISTRY)


def test_resume_continues_from_the_last_checkpoint(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path, "  - {id: data, action: checkpoints, with: {items: 5}, marks: service_restored}\n"
    )
    store, run_id = runner.store, runner.run_id
    # Simulate a crash mid-step: the attempt started and recorded 3 checkpoints, then stopped.
    step = runner.runbook.step("data")
    runner._begin(step, 1, {})
    for done in (1, 2, 3):
        runner._write(
            "step.progress", {"done": done, "checkpoint": {"done": done}}, step_id="data", attempt=1
        )
    runner.close()
    resumed = Runner.resume(store, run_id, registry=TEST_REGISTRY)
    pending = resumed.advance()
    assert (pending.kind, pending.step.id) == ("interrupted", "data")  # type: ignore[union-attr]
    resumed.rerun_interrupted()
    state = resumed.run_step("data")
    assert state.details == {"started_at_item": 3}
    assert state.attempts == 2
    resumed.finish()
    resumed.close()
    assert read_record(store.record_path(run_id)).intact


def test_a_run_whose_disk_filled_mid_line_resumes_and_says_so(tmp_path: Path) -> None:
    """A full disk left a torn last line: resume cuts it off, records that it did, and
    the run goes on with a record that verifies."""
    runner = _runner(
        tmp_path,
        """
      - {id: a, action: flaky}
      - {id: b, action: flaky, marks: service_restored}
    """,
    )
    runner.run_step("a")
    path, run_id = runner.record_path, runner.run_id
    runner.close()
    torn = b'{"v":2,"seq":9,"id":"cut by ENOSP'
    with path.open("ab") as handle:
        handle.write(torn)
    store = RunStore(tmp_path / "runs")
    resumed = Runner.resume(store, run_id, registry=TEST_REGISTRY, clock=FakeClock())
    repaired = [e for e in read_record(path).events if e.type == "record.repaired"]
    assert repaired and repaired[0].data["dropped_bytes"] == len(
        b'{"v":2,"seq":9,"id":"cut by ENOSP'
    )
    resumed.run_step("b")
    assert resumed.finish() == "succeeded"
    resumed.close()
    assert store.metrics(run_id).integrity == "ok"


def test_a_step_without_a_timeout_gets_its_actions_default(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        """
      - {id: a, action: flaky}
      - {id: b, action: flaky, timeout: 5s, marks: service_restored}
    """,
    )
    runner.run_step("a")
    runner.run_step("b")
    started = {
        e.step_id: e.data["timeout_s"]
        for e in read_record(runner.record_path).events
        if e.type == "step.started"
    }
    assert started == {"a": 3600.0, "b": 5.0}
    from drconsole.actions.registry import BUILTIN

    assert all(spec.default_timeout_s > 0 for spec in BUILTIN.values())
    assert BUILTIN["restore_data"].default_timeout_s == 24 * 3600
    runner.close()
