"""The runner: the one place that executes steps, decides what comes next and writes the
incident record. The TUI and headless drills both drive it; neither adds logic of its own.

A caller asks ``advance()`` what the run needs now (run a step, a person's confirmation,
a decision on a failed or interrupted step, or nothing more) and answers with one of the
operator calls (``run_step``, ``confirm``, ``skip``, ``override``, ...). Each call writes
its events through the record writer and folds them into ``state``.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time as monotonic_clock
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from drconsole import __version__
from drconsole.actions.base import (
    FAILED,
    SUCCEEDED,
    ActionContext,
    Finding,
    Outcome,
    Progress,
    ProgressCallback,
)
from drconsole.actions.registry import BUILTIN, ActionSpec
from drconsole.actions.shared import RunShared
from drconsole.durable import open_private
from drconsole.engines.registry import engine_adapter
from drconsole.errors import DrconsoleError, RunStateError, SecretError
from drconsole.incident import events as ev
from drconsole.incident.events import Event
from drconsole.incident.record import RecordWriter
from drconsole.incident.replay import RunState, StepState
from drconsole.incident.store import RunStore
from drconsole.runbook import placeholders
from drconsole.runbook.loader import load_runbook
from drconsole.runbook.model import Runbook, Step
from drconsole.secrets import is_reference, redact, resolve
from drconsole.timefmt import format_utc, utc_now

AUTOMATIC_ACTOR = "drconsole"
CANCEL_GRACE_S = 10.0
PROGRESS_EVERY_S = 10.0
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Pending:
    """What the run needs now.

    ``kind`` is one of: ``run`` (an automated step is next), ``confirm`` (a manual or
    approval step waits for a person), ``blocked`` (a step failed and waits for retry,
    skip, or override of a gate), ``interrupted`` (a step was cut off by a crash: re-run
    it or mark it done), ``complete`` (every step is settled: call ``finish``), or
    ``finished``.
    """

    kind: str
    step: Step | None = None


class Runner:
    """Executes one run of a runbook; holds the record's writer lock while open."""

    def __init__(
        self,
        runbook: Runbook,
        writer: RecordWriter,
        state: RunState,
        *,
        store: RunStore,
        clock: Clock = utc_now,
        actor: str | None = None,
        registry: dict[str, ActionSpec] | None = None,
    ) -> None:
        self.runbook = runbook
        self.state = state
        self.store = store
        self.clock = clock
        self.actor = actor or _default_actor()
        self.registry = registry or BUILTIN
        self._writer = writer
        self._writer.on_event = self._on_event
        self._listeners: list[Callable[[Event], None]] = []
        self._secrets: list[str] = known_secrets(runbook)
        self.shared = RunShared()
        self._mutex = threading.RLock()
        self._interrupted_at: datetime | None = None
        self._mirror_broken = False

    # ----- opening and closing -------------------------------------------------------

    @classmethod
    def start(
        cls,
        runbook: Runbook,
        mode: str,
        store: RunStore,
        *,
        clock: Clock = utc_now,
        actor: str | None = None,
        registry: dict[str, ActionSpec] | None = None,
        impact_start: datetime | None = None,
        target: dict[str, Any] | None = None,
        snapshot_id: str | None = None,
    ) -> Runner:
        """Create a new run and write ``run.started`` (and, for an incident, its
        ``impact_start`` milestone: now, or the back-dated time given). ``target``
        overrides parts of the runbook's target (its url, say) for this run;
        ``snapshot_id`` is the recovery point the operator chose (verify_chain checks it)."""
        store.ensure()
        now = clock()
        run_id = store.new_run_id(runbook.id, mode, now)
        writer = RecordWriter.create(store.record_path(run_id), run_id, mode)
        runner = cls(
            runbook, writer, RunState(), store=store, clock=clock, actor=actor, registry=registry
        )
        try:
            target = _with_sandbox(runbook, target or {}, store.folder / "sandboxes" / run_id)
            runner._write(
                ev.RUN_STARTED, runner._started_data(mode, target or {}, snapshot_id), time=now
            )
            if mode == "incident":
                runner.milestone("impact_start", impact_start or now)
        except BaseException:
            writer.close()
            raise
        return runner

    @classmethod
    def resume(
        cls,
        store: RunStore,
        reference: str,
        *,
        clock: Clock = utc_now,
        actor: str | None = None,
        registry: dict[str, ActionSpec] | None = None,
        runbook: Runbook | None = None,
    ) -> Runner:
        """Reopen an unfinished run from its record. A step that was in flight when the
        record ended is marked interrupted; finished steps are never run again."""
        run_id = store.resolve(reference)
        writer, read = RecordWriter.reopen(store.record_path(run_id))
        try:
            state = RunState.replay(read.events)
            if state.finished is not None:
                raise RunStateError(
                    f"run {run_id} already finished ({state.finished.get('status')}); "
                    "nothing to resume",
                    "start a new run with `drconsole drill RUNBOOK`",
                )
            runbook = runbook or _runbook_of(state, registry)
            state.mark_interrupted()
            runner = cls(
                runbook, writer, state, store=store, clock=clock, actor=actor, registry=registry
            )
            runner._interrupted_at = read.events[-1].time
            if writer.repaired_bytes:
                runner._write(
                    ev.RECORD_REPAIRED,
                    {
                        "dropped_bytes": writer.repaired_bytes,
                        "reason": f"the last line was cut short ({writer.repaired_bytes} bytes: "
                        "a full disk or a crash mid-write) and was cut off",
                    },
                )
            interrupted = state.interrupted
            resumed = {
                "after": "interrupted" if interrupted or state.paused is None else "paused",
                "interrupted_step": interrupted.id if interrupted else None,
                "pid": os.getpid(),
                "host": socket.gethostname(),
            }
            if revived := _revived_sandbox(run_id, state.facts.get("target") or {}):
                resumed["target"] = revived
            runner._write(ev.RUN_RESUMED, resumed)
        except BaseException:
            writer.close()
            raise
        return runner

    def release_sandbox(self) -> bool:
        """Stop a finished run's sandbox target and delete its data (its drop_sandbox step
        may never have run, e.g. after a failed gate). False when there was none."""
        folder = self.target.get("sandbox_dir")
        if self.state.finished is None or not folder or not Path(folder).exists():
            return False
        from drconsole.sandbox import remove_sandbox

        remove_sandbox(int(self.target.get("sandbox_pid") or 0), Path(folder))
        return True

    def close(self) -> None:
        """Release the record (the run stays resumable unless it finished)."""
        self._writer.close()

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call listener with every event written from now on (from the writing thread)."""
        self._listeners.append(listener)

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def mode(self) -> str:
        return self.state.mode

    @property
    def record_path(self) -> Path:
        return self._writer.path

    @property
    def target(self) -> dict[str, Any]:
        """The runbook's target with this run's overrides (recorded in run.started);
        credential references come from the runbook."""
        return {**self.runbook.target, **(self.state.facts.get("target") or {})}

    # ----- what comes next -----------------------------------------------------------

    def plan(self) -> list[Step]:
        return self.runbook.plan(self.mode)

    def advance(self) -> Pending:
        """What the run needs now; a manual step that comes up starts waiting here."""
        with self._mutex:
            pending = self._pending()
            if pending.kind == "confirm" and pending.step is not None:
                step_state = self.state.steps[pending.step.id]
                if step_state.status != "waiting":
                    self._begin(pending.step, step_state.attempts + 1, {})
            return pending

    def _pending(self) -> Pending:
        if self.state.finished is not None:
            return Pending("finished")
        if (interrupted := self.state.interrupted) is not None:
            return Pending("interrupted", self.runbook.step(interrupted.id))
        for step in self.plan():
            step_state = self.state.steps[step.id]
            if step_state.settled:
                continue
            if step_state.blocked:
                return Pending("blocked", step)
            return Pending("confirm" if step.is_manual else "run", step)
        return Pending("complete")

    def instructions(self, step: Step) -> str:
        """The step's instructions with placeholders filled from the run and snapshot."""
        return placeholders.render(step.instructions, self.placeholder_values(step))

    def placeholder_values(self, step: Step | None = None) -> dict[str, Any]:
        target = {k: v for k, v in self.target.items() if k != "token"}
        catalog = {k: v for k, v in self.runbook.catalog.items() if k != "credentials"}
        return {
            "run": {
                "id": self.run_id,
                "mode": self.mode,
                "started_at": format_utc(self.state.started_at) if self.state.started_at else None,
            },
            "runbook": {
                "id": self.runbook.id,
                "title": self.runbook.title,
                "owner": self.runbook.owner,
            },
            "snapshot": self.state.snapshot or {},
            "target": target,
            "catalog": catalog,
            "objectives": {"rto_s": self.runbook.rto_s, "rpo_s": self.runbook.rpo_s},
            "step": {"id": step.id, "title": step.title} if step else {},
        }

    # ----- automated steps -----------------------------------------------------------

    def run_step(
        self,
        step_id: str,
        *,
        confirmed: bool = False,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> StepState:
        """Run the next automated step (or retry a blocked one), with its retries and
        timeout. A destructive step needs ``confirmed=True``. Ctrl-C cancels the step,
        records it, and re-raises KeyboardInterrupt."""
        step = self._expect(step_id, ("run", "blocked"))
        if step.is_manual:
            raise RunStateError(f"step {step_id} is a {step.kind} step: confirm it instead")
        if step.destructive and not confirmed:
            raise RunStateError(
                f"step {step_id} is destructive and needs confirmation",
                "confirm in the console, or pass --yes to a headless drill",
            )
        spec = self.registry[step.action or ""]
        cancel = cancel or threading.Event()
        attempt = self.state.steps[step_id].attempts
        for try_number in range(step.retries.max + 1):
            attempt += 1
            final = try_number == step.retries.max
            status, outcome = self._attempt(
                step,
                spec,
                attempt=attempt,
                final=final,
                confirmed=confirmed,
                progress=progress,
                cancel=cancel,
            )
            if status in (SUCCEEDED, "cancelled") or final:
                break
            self._write(
                ev.STEP_RETRY,
                {
                    "next_attempt": attempt + 1,
                    "delay_s": step.retries.delay_s,
                    "reason": outcome.summary,
                },
                step_id=step.id,
                attempt=attempt,
            )
            if cancel.wait(step.retries.delay_s):
                break
        step_state = self.state.steps[step_id]
        if step_state.status == SUCCEEDED:
            self._write_marks(step)
        elif step.on_failure == "abort" and not step_state.settled:
            self.finish("failed", f"step {step.id} {step_state.status} and its on_failure is abort")
        return step_state

    def _attempt(
        self,
        step: Step,
        spec: ActionSpec,
        *,
        attempt: int,
        final: bool,
        confirmed: bool,
        progress: ProgressCallback | None,
        cancel: threading.Event,
    ) -> tuple[str, Outcome]:
        timeout_s = step.timeout_s if step.timeout_s is not None else spec.default_timeout_s
        extra: dict[str, Any] = {"timeout_s": timeout_s}
        if step.destructive and confirmed:
            extra["confirmed_by"] = self.actor
        self._begin(step, attempt, extra)
        context = self._context(step, attempt, cancel)
        reporter = _ProgressRecorder(self, step, attempt, progress)
        started = monotonic_clock.monotonic()
        try:
            status, outcome = self._execute(spec, context, reporter, timeout_s, cancel)
        except KeyboardInterrupt:
            reporter.closed = True
            self._write(
                ev.STEP_FINISHED,
                {
                    "status": "cancelled",
                    "summary": "cancelled with Ctrl-C",
                    "details": {},
                    "tables": [],
                    "gate": step.gate,
                },
                step_id=step.id,
                attempt=attempt,
            )
            raise
        reporter.closed = True
        continued = status != SUCCEEDED and final and step.on_failure == "continue"
        data = {
            "status": status,
            "summary": outcome.summary,
            "details": outcome.details,
            "tables": [table.__dict__ for table in outcome.tables],
            "duration_s": round(monotonic_clock.monotonic() - started, 3),
            "gate": step.gate,
        }
        if continued:
            data["continued"] = True
        self._write(ev.STEP_FINISHED, data, step_id=step.id, attempt=attempt)
        return status, outcome

    def _execute(
        self,
        spec: ActionSpec,
        context: ActionContext,
        reporter: _ProgressRecorder,
        timeout_s: float | None,
        cancel: threading.Event,
    ) -> tuple[str, Outcome]:
        """Run the action on its own thread so a timeout or Ctrl-C can stop the wait."""
        box: dict[str, Outcome] = {}

        def target() -> None:
            box["outcome"] = self._call(spec, context, reporter)

        worker = threading.Thread(target=target, name=f"step-{context.step_id}", daemon=True)
        worker.start()
        deadline = monotonic_clock.monotonic() + timeout_s if timeout_s else None
        timed_out = False
        try:
            while worker.is_alive():
                worker.join(0.1)
                if (
                    deadline is not None
                    and not timed_out
                    and monotonic_clock.monotonic() >= deadline
                ):
                    timed_out = True
                    cancel.set()
                    worker.join(CANCEL_GRACE_S)
                    break
        except KeyboardInterrupt:
            cancel.set()
            worker.join(CANCEL_GRACE_S)
            raise
        if timed_out:
            return "timed_out", Outcome(FAILED, f"timed out after {timeout_s:g}s")
        if cancel.is_set() and box.get("outcome", Outcome(FAILED, "")).status != SUCCEEDED:
            return "cancelled", box.get("outcome") or Outcome(FAILED, "cancelled")
        outcome = box.get("outcome") or Outcome(FAILED, "the action ended without an outcome")
        return outcome.status, outcome

    def _call(
        self, spec: ActionSpec, context: ActionContext, reporter: _ProgressRecorder
    ) -> Outcome:
        try:
            outcome = spec.load()(context, reporter)
        except DrconsoleError as error:
            details = {"hint": error.hint} if error.hint else {}
            return Outcome(FAILED, error.message, details)
        except Exception as error:  # noqa: BLE001 - an action's bug fails its step, not the run
            log = self._log_exception(spec.name, error)
            return Outcome(
                FAILED,
                f"internal error in action {spec.name}: {type(error).__name__}: {error}",
                {"debug_log": str(log)},
            )
        if outcome.status not in (SUCCEEDED, FAILED):
            return Outcome(FAILED, f"action {spec.name} returned status {outcome.status!r}")
        return outcome

    def _context(self, step: Step, attempt: int, cancel: threading.Event) -> ActionContext:
        def report_finding(finding: Finding) -> None:
            self._write(ev.CHECK_RESULT, dict(finding.__dict__), step_id=step.id, attempt=attempt)

        return ActionContext(
            run_id=self.run_id,
            mode=self.mode,
            step_id=step.id,
            attempt=attempt,
            params=dict(step.params),
            runbook=self.runbook,
            target=self.target,
            snapshot=self.state.snapshot,
            requested_snapshot=self.state.facts.get("snapshot_request"),
            cancel=cancel,
            add_secret=self._secrets.append,
            report_finding=report_finding,
            select_snapshot=lambda data: self.record_snapshot(data, step.id),
            last_checkpoint=self.state.steps[step.id].checkpoint,
            placement=dict(self.state.placement),
            impact_start=(
                self.state.milestones.get("impact_start") if self.mode == "incident" else None
            ),
            shared=self.shared,
        )

    def record_snapshot(self, data: dict[str, Any], step_id: str | None = None) -> None:
        """Write ``snapshot.selected`` (chain, recovery point, verify depth)."""
        self._write(ev.SNAPSHOT_SELECTED, data, step_id=step_id)

    # ----- people --------------------------------------------------------------------

    def confirm(self, step_id: str, *, via: str | None = None, comment: str | None = None) -> None:
        """A person (or, with ``via``, drconsole on their behalf) confirms a manual step
        or approves an approval step."""
        step = self._expect(step_id, ("confirm",))
        with self._mutex:
            step_state = self.state.steps[step_id]
            if step_state.status != "waiting":
                self._begin(step, step_state.attempts + 1, {})
            automatic = via is not None
            data: dict[str, Any] = {
                "status": SUCCEEDED,
                "summary": (
                    "confirmed automatically" if automatic else f"confirmed by {self.actor}"
                )
                + (f" ({via})" if via else ""),
                "details": {"automatic": automatic, "via": via, "comment": comment},
                "tables": [],
                "gate": step.gate,
            }
            self._write(
                ev.STEP_FINISHED,
                data,
                step_id=step_id,
                attempt=self.state.steps[step_id].attempts,
                actor=AUTOMATIC_ACTOR if automatic else None,
            )
            self._write_marks(step)

    def reject(self, step_id: str, reason: str) -> None:
        """An approver says no: the approval step fails and blocks the run."""
        step = self._expect(step_id, ("confirm",))
        if step.kind != "approval":
            raise RunStateError(f"step {step_id} is not an approval step")
        reason = _required_reason(reason, "rejecting an approval")
        self.advance()
        self._write(
            ev.STEP_FINISHED,
            {
                "status": FAILED,
                "summary": f"rejected: {reason}",
                "details": {"rejected": True, "reason": reason},
                "tables": [],
                "gate": step.gate,
            },
            step_id=step_id,
            attempt=self.state.steps[step_id].attempts,
        )

    def retry(self, step_id: str) -> None:
        """Ask again for a blocked manual or approval step (automated ones: ``run_step``)."""
        step = self._expect(step_id, ("blocked",))
        if not step.is_manual:
            raise RunStateError(f"step {step_id} is automated: run it again with run_step")
        self._begin(step, self.state.steps[step_id].attempts + 1, {})

    def skip(self, step_id: str, reason: str) -> None:
        """Skip a step that has not settled, with a written reason."""
        reason = _required_reason(reason, "skipping a step")
        with self._mutex:
            step = self._known_step(step_id)
            step_state = self.state.steps[step_id]
            if step_state.settled or step_state.status == "running":
                raise RunStateError(
                    f"step {step_id} is {step_state.status}; it cannot be skipped now"
                )
            self._write(
                ev.STEP_SKIPPED,
                {"reason": reason},
                step_id=step.id,
                attempt=step_state.attempts or None,
            )

    def override(self, step_id: str, reason: str) -> None:
        """Let the run go on past a failed gate, with a written reason."""
        reason = _required_reason(reason, "overriding a gate")
        step = self._expect(step_id, ("blocked",))
        if not step.gate:
            raise RunStateError(
                f"step {step_id} is not a gate", "skip it with a reason, or retry it"
            )
        self._write(
            ev.GATE_OVERRIDDEN,
            {"reason": reason},
            step_id=step_id,
            attempt=self.state.steps[step_id].attempts,
        )
        self._write_marks(step)

    def rerun_interrupted(self) -> Step:
        """Close the interrupted attempt as cancelled; the step is then run again (an
        automated one by ``run_step``, which continues from its last checkpoint)."""
        step = self._expect_interrupted()
        self._write(
            ev.STEP_FINISHED,
            {
                "status": "cancelled",
                "summary": "interrupted: the console or drill stopped mid-step",
                "details": {"interrupted": True},
                "tables": [],
                "gate": step.gate,
            },
            step_id=step.id,
            attempt=self.state.steps[step.id].attempts,
            time=self._interrupted_at,
        )
        if step.is_manual:
            self._begin(step, self.state.steps[step.id].attempts + 1, {})
        return step

    def mark_interrupted_done(self, comment: str | None = None) -> Step:
        """The operator checked that the interrupted step's work is complete."""
        step = self._expect_interrupted()
        self._write(
            ev.STEP_FINISHED,
            {
                "status": SUCCEEDED,
                "summary": f"marked done by {self.actor} after an interruption",
                "details": {"marked_done": True, "comment": comment},
                "tables": [],
                "gate": step.gate,
            },
            step_id=step.id,
            attempt=self.state.steps[step.id].attempts,
        )
        self._write_marks(step)
        return step

    def note(self, text: str) -> None:
        if not text.strip():
            raise RunStateError("a note needs some text")
        self._write(ev.NOTE, {"text": text.strip()})

    def milestone(
        self, name: str, moment: datetime | None = None, reason: str | None = None
    ) -> None:
        """Record a milestone now, or back-dated to ``moment`` (never in the future)."""
        now = self.clock()
        moment = moment or now
        if moment > now:
            raise RunStateError(
                f"milestone {name} at {format_utc(moment)} is in the future",
                "give a time at or before now (UTC)",
            )
        data: dict[str, Any] = {"name": name, "back_dated": moment < now}
        if reason:
            data["reason"] = reason
        self._write(ev.MILESTONE, data, time=moment)

    def pause(self, reason: str, step_id: str | None = None) -> None:
        """Stop for now and leave the run resumable (a person is needed)."""
        self._write(ev.RUN_PAUSED, {"reason": reason}, step_id=step_id)

    def abandon(self, reason: str) -> str:
        """End the run without finishing its steps, with a written reason: it no longer
        waits for anyone (status ``abandoned``, never a success)."""
        if not reason.strip():
            raise RunStateError("abandoning a run needs a reason")
        return self.finish("abandoned", reason.strip())

    @classmethod
    def abandon_run(
        cls,
        store: RunStore,
        reference: str,
        reason: str,
        *,
        clock: Clock = utc_now,
        actor: str | None = None,
    ) -> str:
        """Abandon an unfinished run from its record alone: nothing is resumed or served
        again (its runbook may have changed since), its sandbox is released. The run id."""
        if not reason.strip():
            raise RunStateError("abandoning a run needs a reason", "say why, in a sentence")
        run_id = store.resolve(reference)
        writer, read = RecordWriter.reopen(store.record_path(run_id))
        try:
            state = RunState.replay(read.events)
            if state.finished is not None:
                raise RunStateError(
                    f"run {run_id} already finished ({state.finished.get('status')})"
                )
            writer.on_event = state.apply
            now = clock()
            writer.append(
                ev.RUN_FINISHED,
                {"status": "abandoned", "reason": reason.strip()},
                time=now,
                observed_time=now,
                actor=actor or _default_actor(),
            )
        finally:
            writer.close()
        target = state.facts.get("target") or {}
        if target.get("sandbox_dir") and Path(target["sandbox_dir"]).exists():
            from drconsole.sandbox import remove_sandbox

            remove_sandbox(int(target.get("sandbox_pid") or 0), Path(target["sandbox_dir"]))
        return run_id

    def finish(self, status: str | None = None, reason: str | None = None) -> str:
        """Close the run: ``succeeded`` when every step settled, else ``failed``."""
        with self._mutex:
            if self.state.finished is not None:
                return str(self.state.finished["status"])
            if self.state.in_flight is not None and self.state.in_flight.status == "running":
                raise RunStateError(f"step {self.state.in_flight.id} is still running")
            unsettled = [s.id for s in self.plan() if not self.state.steps[s.id].settled]
            if status is None:
                status = "failed" if unsettled else SUCCEEDED
                reason = reason or (
                    f"unsettled steps: {', '.join(unsettled)}" if unsettled else None
                )
            if status == SUCCEEDED and unsettled:
                raise RunStateError(f"steps not done: {', '.join(unsettled)}")
            self._write(ev.RUN_FINISHED, {"status": status, "reason": reason})
            self._release_leases()
            return status

    def _release_leases(self) -> None:
        """A finished run frees the target collections it leased (a failure to reach the
        target only leaves a lease that ends by itself). A sandbox target is thrown away
        with its leases."""
        if not self.state.leases or self.target.get("sandbox_pid"):
            return
        from drconsole.actions.lease import release_leases
        from drconsole.engines import open_engine

        try:
            engine = open_engine(self.target)
            try:
                release_leases(engine, self.state.leases, self.run_id)
            finally:
                engine.close()
        except DrconsoleError as error:
            self._write(
                ev.NOTE,
                {
                    "text": f"the target leases were not released ({error.message}); they end "
                    "by themselves"
                },
            )

    # ----- internals -----------------------------------------------------------------

    def _begin(self, step: Step, attempt: int, extra: dict[str, Any]) -> None:
        data = {
            "title": step.title,
            "phase": step.phase,
            "kind": step.kind,
            "action": step.action,
            "gate": step.gate,
            "destructive": step.destructive,
            "params": step.params,
            **extra,
        }
        self._write(ev.STEP_STARTED, data, step_id=step.id, attempt=attempt)
        if attempt == 1 and "restore_started" in step.marks:
            self.milestone("restore_started")

    def _write_marks(self, step: Step) -> None:
        """Milestones a settled step marks (``restore_started`` is written at its start)."""
        for name in step.marks:
            if name != "restore_started":
                self.milestone(name)

    def _write(
        self,
        event_type: str,
        data: dict[str, Any],
        *,
        step_id: str | None = None,
        attempt: int | None = None,
        time: datetime | None = None,
        actor: str | None = None,
    ) -> Event:
        now = self.clock()
        with self._mutex:
            return self._writer.append(
                event_type,
                _redacted(data, self._secrets),
                time=time or now,
                observed_time=now,
                actor=actor or self.actor,
                step_id=step_id,
                attempt=attempt,
            )

    def _on_event(self, event: Event) -> None:
        self.state.apply(event)
        for listener in self._listeners:
            listener(event)
        if event.type in (ev.STEP_FINISHED, ev.STEP_SKIPPED, ev.RUN_FINISHED, ev.RUN_PAUSED):
            self._mirror()

    def _mirror(self) -> None:
        """Copy the record into the catalog's runs/ (after each step and at the end). A
        catalog that cannot take it does not stop the run: the record says so, once."""
        if self._mirror_broken or not self.runbook.catalog_location():
            return
        from drconsole.catalog.open import open_runbook_catalog
        from drconsole.incident.mirror import mirror_record

        try:
            mirror_record(
                open_runbook_catalog(self.runbook, self._secrets.append), self.record_path
            )
        except DrconsoleError as error:
            self._mirror_broken = True
            self._write(
                ev.NOTE,
                {
                    "text": f"the record could not be copied to the catalog ({error.message}); "
                    "it is kept on this machine only"
                },
            )

    def _expect(self, step_id: str, kinds: tuple[str, ...]) -> Step:
        pending = self._pending()
        if pending.step is None or pending.step.id != step_id or pending.kind not in kinds:
            current = f"{pending.kind} {pending.step.id}" if pending.step else pending.kind
            raise RunStateError(
                f"step {step_id} cannot do that now; the run is at: {current}",
            )
        return pending.step

    def _expect_interrupted(self) -> Step:
        interrupted = self.state.interrupted
        if interrupted is None:
            raise RunStateError("no step is interrupted in this run")
        return self.runbook.step(interrupted.id)

    def _known_step(self, step_id: str) -> Step:
        if step_id not in self.state.steps:
            raise RunStateError(f"step {step_id} is not part of this run ({self.mode} mode)")
        return self.runbook.step(step_id)

    def _started_data(
        self, mode: str, target: dict[str, Any], snapshot_id: str | None
    ) -> dict[str, Any]:
        runbook = self.runbook
        effective_target = {**runbook.target, **target}
        return {
            "runbook": {
                "id": runbook.id,
                "title": runbook.title,
                "path": str(runbook.path),
                "sha256": runbook.sha256,
                "owner": runbook.owner,
            },
            "objectives": {"rto_s": runbook.rto_s, "rpo_s": runbook.rpo_s},
            "plan": [
                {"id": s.id, "title": s.title, "phase": s.phase, "kind": s.kind, "gate": s.gate}
                for s in runbook.plan(mode)
            ],
            "target": {k: v for k, v in effective_target.items() if k != "token"},
            "catalog": {k: v for k, v in runbook.catalog.items() if k != "credentials"},
            "snapshot_request": snapshot_id,
            "host": socket.gethostname(),
            "user": self.actor,
            "tool": {"name": "drconsole", "version": __version__},
        }

    def _log_exception(self, action: str, error: Exception) -> Path:
        path = self.store.folder / f"{self.run_id}.errors.log"
        text = "".join(traceback.format_exception(error))
        with os.fdopen(open_private(path), "a", encoding="utf-8") as log:
            log.write(
                f"{format_utc(self.clock())} action {action}\n{redact(text, self._secrets)}\n"
            )
        return path


class _ProgressRecorder:
    """The progress callback given to an action: records sparse ``step.progress`` events
    (every checkpoint, every report with data, else one per PROGRESS_EVERY_S) and passes
    every report on to the caller."""

    def __init__(
        self, runner: Runner, step: Step, attempt: int, forward: ProgressCallback | None
    ) -> None:
        self.runner = runner
        self.step = step
        self.attempt = attempt
        self.forward = forward
        self.closed = False
        self._last_recorded = 0.0

    def __call__(self, progress: Progress) -> None:
        if self.closed:
            return
        now = monotonic_clock.monotonic()
        if (
            progress.checkpoint is not None
            or progress.data
            or now - self._last_recorded >= PROGRESS_EVERY_S
        ):
            self._last_recorded = now
            data = {key: value for key, value in progress.__dict__.items() if value is not None}
            self.runner._write(ev.STEP_PROGRESS, data, step_id=self.step.id, attempt=self.attempt)
        if self.forward is not None:
            self.forward(progress)


def _with_sandbox(runbook: Runbook, target: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A target with ``sandbox: ENGINE`` (and no url given for this run) gets a throwaway
    server of that engine now; its url, pid and folder go into the run's target so the
    cleanup step can stop it by pid, even from a resumed run."""
    wanted = {**runbook.target, **target}
    if not wanted.get("sandbox") or target.get("url"):
        return target
    from drconsole.sandbox import start_server

    adapter = engine_adapter(wanted["sandbox"])
    server = start_server(lambda: adapter.sandbox(folder))
    return {
        **target,
        "engine": adapter.name,
        "url": server.url,
        "sandbox_pid": server.pid,
        "sandbox_dir": str(folder),
        **({"sandbox_token": server.token_reference} if server.token_reference else {}),
    }


def _revived_sandbox(run_id: str, target: dict[str, Any]) -> dict[str, Any] | None:
    """A resumed run's sandbox target, served again from its folder when its server is
    gone (drconsole was stopped or killed); None when it has none or it still runs. A
    deleted folder means the restored data is lost, and the run cannot go on with it."""
    folder = target.get("sandbox_dir")
    if not folder:
        return None
    from drconsole.sandbox import serves, start_server

    if serves(int(target.get("sandbox_pid") or 0), Path(folder)):
        return None
    adapter = engine_adapter(target.get("engine") or target.get("sandbox") or "")
    if not adapter.sandbox(Path(folder)).data_dir.is_dir():
        raise RunStateError(
            f"the sandbox target of run {run_id} is gone ({folder} was deleted), and with "
            "it the data restored so far",
            "start a new drill; this run cannot go on without its target",
        )
    server = start_server(lambda: adapter.sandbox(Path(folder)))
    return {"url": server.url, "sandbox_pid": server.pid}


def _runbook_of(state: RunState, registry: dict[str, ActionSpec] | None) -> Runbook:
    """The runbook a run started with, refused if its bytes changed since."""
    path = Path(str(state.runbook.get("path", "")))
    runbook = load_runbook(path, registry)
    if runbook.sha256 != state.runbook.get("sha256"):
        raise RunStateError(
            f"{path} changed since run {state.run_id} started; refusing to resume with it",
            "restore the runbook as it was (see its sha256 in the record's run.started) "
            "or start a new run",
        )
    return runbook


def _required_reason(reason: str, what: str) -> str:
    if not reason or not reason.strip():
        raise RunStateError(f"{what} needs a written reason")
    return reason.strip()


def _redacted(value: Any, secrets: list[str]) -> Any:
    """value with known secrets and token-shaped text masked, recursively."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {key: _redacted(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item, secrets) for item in value]
    return value


def known_secrets(runbook: Runbook) -> list[str]:
    """Every credential the runbook references, resolved now, before any step runs, so
    that each is masked wherever it might appear (an S3 credential's secret part too). A
    reference that cannot be resolved here is left to the step that needs it to report."""
    references = [
        runbook.catalog.get("credentials"),
        runbook.catalog_key(),
        runbook.target.get("token"),
        *(
            value
            for step in runbook.steps
            for value in (step.params.get("env") or {}).values()
            if isinstance(value, str) and is_reference(value)
        ),
    ]
    found: list[str] = []
    for reference in references:
        if not reference:
            continue
        try:
            value = resolve(reference)
        except SecretError:
            continue
        found += [value, value.partition(":")[2]] if reference == references[0] else [value]
    return [value for value in found if value]


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
