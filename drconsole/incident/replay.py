"""Rebuild the state of a run from its events: what each step did, where the run stands.

The runner applies every event it writes to the same ``RunState``, so the live state and
the state replayed after a crash are computed by one piece of code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drconsole.incident import events as ev
from drconsole.incident.events import Event

PENDING = "pending"
RUNNING = "running"
WAITING = "waiting"
INTERRUPTED = "interrupted"
IN_FLIGHT = (RUNNING, WAITING)


@dataclass
class StepState:
    """A step as the record tells it: status, attempts, outcome, decisions."""

    id: str
    title: str
    kind: str
    phase: str
    gate: bool
    status: str = PENDING
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    tables: list[dict[str, Any]] = field(default_factory=list)
    continued: bool = False
    overridden: bool = False
    override_reason: str | None = None
    skip_reason: str | None = None
    checkpoint: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        """Done as far as the run is concerned: the next step may start."""
        return self.status in ("succeeded", "skipped") or self.overridden or self.continued

    @property
    def blocked(self) -> bool:
        """Ended badly and waits for a decision: retry, skip, or override a gate."""
        return self.status in ("failed", "timed_out", "cancelled") and not self.settled


@dataclass
class RunState:
    """Where a run stands after a sequence of events."""

    run_id: str = ""
    mode: str = ""
    started_at: datetime | None = None
    runbook: dict[str, Any] = field(default_factory=dict)
    objectives: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepState] = field(default_factory=dict)
    milestones: dict[str, datetime] = field(default_factory=dict)
    snapshot: dict[str, Any] | None = None
    placement: dict[str, str] = field(default_factory=dict)
    leases: list[str] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    paused: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None
    last_time: datetime | None = None
    event_count: int = 0

    @classmethod
    def replay(cls, events: list[Event]) -> RunState:
        state = cls()
        for event in events:
            state.apply(event)
        return state

    def apply(self, event: Event) -> None:
        """Fold one event into the state."""
        self.event_count += 1
        self.last_time = event.observed_time
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event)

    def step(self, event: Event) -> StepState | None:
        return self.steps.get(event.step_id or "")

    @property
    def in_flight(self) -> StepState | None:
        """The step that was running or waiting for a person when the record ended."""
        return next((s for s in self.steps.values() if s.status in IN_FLIGHT), None)

    @property
    def interrupted(self) -> StepState | None:
        return next((s for s in self.steps.values() if s.status == INTERRUPTED), None)

    def mark_interrupted(self) -> None:
        """Called when nobody holds the record: a step in flight was cut off. A manual
        step of a run paused on purpose simply goes on waiting; an automated step is never
        legitimately running in a paused record."""
        step = self.in_flight
        if step is not None and (step.status == RUNNING or self.paused is None):
            step.status = INTERRUPTED

    def status(self, writer_alive: bool) -> str:
        """running, interrupted, needs_operator, succeeded or failed."""
        if self.finished is not None:
            return str(self.finished.get("status", "failed"))
        if self.paused is not None:
            return "needs_operator"
        return "running" if writer_alive else "interrupted"


def _run_started(state: RunState, event: Event) -> None:
    data = event.data
    state.run_id = event.run_id
    state.mode = event.mode
    state.started_at = event.time
    state.runbook = dict(data.get("runbook", {}))
    state.objectives = dict(data.get("objectives", {}))
    state.facts = {
        key: data.get(key)
        for key in ("target", "catalog", "host", "user", "tool", "snapshot_request")
    }
    for item in data.get("plan", []):
        state.steps[item["id"]] = StepState(
            id=item["id"],
            title=item.get("title", item["id"]),
            kind=item.get("kind", "action"),
            phase=item.get("phase", "prep"),
            gate=bool(item.get("gate", False)),
        )


def _milestone(state: RunState, event: Event) -> None:
    state.milestones[str(event.data.get("name"))] = event.time


def _snapshot_selected(state: RunState, event: Event) -> None:
    state.snapshot = dict(event.data)


def _step_started(state: RunState, event: Event) -> None:
    step = state.step(event)
    if step is None:
        return
    step.status = WAITING if step.kind in ("manual", "approval") else RUNNING
    step.attempts = event.attempt or step.attempts + 1
    step.started_at = event.time
    step.finished_at = None
    step.continued = False
    step.progress = None
    step.findings = []
    step.tables = []


def _step_progress(state: RunState, event: Event) -> None:
    step = state.step(event)
    if step is None:
        return
    step.progress = dict(event.data)
    if event.data.get("checkpoint") is not None:
        step.checkpoint = event.data["checkpoint"]


def _step_finished(state: RunState, event: Event) -> None:
    step = state.step(event)
    if step is None:
        return
    step.status = str(event.data.get("status", "failed"))
    step.finished_at = event.time
    step.summary = str(event.data.get("summary", ""))
    step.details = dict(event.data.get("details", {}))
    step.tables = list(event.data.get("tables", []))
    step.continued = bool(event.data.get("continued", False))
    if step.status == "succeeded" and isinstance(step.details.get("placement"), dict):
        state.placement = dict(step.details["placement"])
    if step.status == "succeeded" and isinstance(step.details.get("target"), dict):
        moved = step.details["target"]  # a sandbox served again on restored files
        state.facts["target"] = {
            **(state.facts.get("target") or {}),
            **{key: moved[key] for key in ("url", "sandbox_pid") if key in moved},
            **{str(key): str(value) for key, value in (moved.get("namespace") or {}).items()},
        }
    if isinstance(step.details.get("leases"), list):
        state.leases = sorted(set(state.leases) | {str(name) for name in step.details["leases"]})


def _check_result(state: RunState, event: Event) -> None:
    step = state.step(event)
    if step is not None:
        step.findings.append(dict(event.data))


def _gate_overridden(state: RunState, event: Event) -> None:
    step = state.step(event)
    if step is not None:
        step.overridden = True
        step.override_reason = str(event.data.get("reason", ""))


def _step_skipped(state: RunState, event: Event) -> None:
    step = state.step(event)
    if step is not None:
        step.status = "skipped"
        step.skip_reason = str(event.data.get("reason", ""))
        step.finished_at = event.time


def _note(state: RunState, event: Event) -> None:
    state.notes.append(
        {"time": event.time, "actor": event.actor, "text": event.data.get("text", "")}
    )


def _paused(state: RunState, event: Event) -> None:
    state.paused = dict(event.data)


def _resumed(state: RunState, event: Event) -> None:
    state.paused = None
    if revived := event.data.get("target"):
        state.facts["target"] = {**(state.facts.get("target") or {}), **revived}


def _finished(state: RunState, event: Event) -> None:
    state.finished = dict(event.data)


_HANDLERS = {
    ev.RUN_STARTED: _run_started,
    ev.MILESTONE: _milestone,
    ev.SNAPSHOT_SELECTED: _snapshot_selected,
    ev.STEP_STARTED: _step_started,
    ev.STEP_PROGRESS: _step_progress,
    ev.STEP_FINISHED: _step_finished,
    ev.CHECK_RESULT: _check_result,
    ev.GATE_OVERRIDDEN: _gate_overridden,
    ev.STEP_SKIPPED: _step_skipped,
    ev.NOTE: _note,
    ev.RUN_PAUSED: _paused,
    ev.RUN_RESUMED: _resumed,
    ev.RUN_FINISHED: _finished,
}
