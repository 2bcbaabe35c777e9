"""RTO, RPO, time per phase and time waiting for people, recomputed from events only.

RTO runs from the clock start to the ``service_restored`` milestone. A drill's clock
starts at ``run.started``; an incident's at its latest ``impact_start`` milestone (the
operator may back-date it), or ``run.started`` when none was set. RPO is the clock start
minus the recovery point of the selected snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drconsole.incident import events as ev
from drconsole.incident.events import Event
from drconsole.incident.replay import RunState
from drconsole.timefmt import format_utc, parse_utc

_MANUAL_KINDS = ("manual", "approval")


@dataclass
class StepMetrics:
    id: str
    title: str
    phase: str
    kind: str
    gate: bool
    status: str
    attempts: int
    duration_s: float
    started_at: datetime | None
    finished_at: datetime | None
    intervals: list[tuple[datetime, datetime]] = field(default_factory=list)


@dataclass
class RunMetrics:
    """Everything `runs show` and the report print, derived from the events."""

    run_id: str
    runbook_id: str
    runbook_title: str
    mode: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    clock_start: datetime | None
    service_restored_at: datetime | None
    recovery_point: datetime | None
    rto_s: float | None
    rto_target_s: float | None
    rpo_s: float | None
    rpo_target_s: float | None
    phases: dict[str, float]
    waiting_s: float
    waiting_intervals: list[tuple[datetime, datetime]]
    overrides: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    steps: list[StepMetrics]
    milestones: dict[str, datetime]
    notes: list[dict[str, Any]]
    integrity: str
    snapshot: dict[str, Any] = field(default_factory=dict)

    @property
    def rto_met(self) -> bool | None:
        return _met(self.rto_s, self.rto_target_s)

    @property
    def rpo_met(self) -> bool | None:
        """Never met when negative: a recovery point after the impact start may hold
        the damage itself."""
        if self.rpo_s is not None and self.rpo_s < 0:
            return False
        return _met(self.rpo_s, self.rpo_target_s)

    @property
    def rpo_warning(self) -> str | None:
        if self.rpo_s is None or self.rpo_s >= 0:
            return None
        return (
            "NEGATIVE RPO: the recovery point is after the impact started, so the restored "
            "data may hold the damage"
        )

    @property
    def decisions(self) -> dict[str, int]:
        """What people (or the runbook) decided that a plain status would hide."""
        return {
            "overridden": len(self.overrides),
            "skipped": len(self.skipped),
            "fell_back": len(self.snapshot.get("skipped") or []),
            "negative_rpo": int(self.rpo_warning is not None),
        }

    @property
    def status_label(self) -> str:
        """``succeeded with 1 override, 1 skip, a fallback past 2 snapshots``."""
        counts = self.decisions
        parts = [
            _plural(counts["overridden"], "override"),
            _plural(counts["skipped"], "skip"),
            f"a fallback past {_plural(counts['fell_back'], 'newer snapshot')}"
            if counts["fell_back"]
            else "",
            "a NEGATIVE RPO" if counts["negative_rpo"] else "",
        ]
        shown = [part for part in parts if part]
        return f"{self.status} with {', '.join(shown)}" if shown else self.status

    def summary_json(self) -> dict[str, Any]:
        """The shape `runs list --json` prints for one run."""
        return {
            "run_id": self.run_id,
            "runbook_id": self.runbook_id,
            "mode": self.mode,
            "status": self.status,
            "status_label": self.status_label,
            "decisions": self.decisions,
            "started_at": _time(self.started_at),
            "rto_s": _round(self.rto_s),
            "rto_target_s": self.rto_target_s,
            "rto_met": self.rto_met,
            "integrity": self.integrity,
        }

    def to_json(self) -> dict[str, Any]:
        """The shape `runs show --json` and `drill --json` print."""
        return {
            **self.summary_json(),
            "runbook_title": self.runbook_title,
            "finished_at": _time(self.finished_at),
            "clock_start": _time(self.clock_start),
            "service_restored_at": _time(self.service_restored_at),
            "recovery_point": _time(self.recovery_point),
            "snapshot": self.snapshot,
            "rpo_s": _round(self.rpo_s),
            "rpo_target_s": self.rpo_target_s,
            "rpo_met": self.rpo_met,
            "rpo_warning": self.rpo_warning,
            "phases": {name: _round(seconds) for name, seconds in self.phases.items()},
            "waiting_s": _round(self.waiting_s),
            "overrides": self.overrides,
            "skipped": self.skipped,
            "milestones": {name: _time(moment) for name, moment in self.milestones.items()},
            "steps": [
                {
                    "id": step.id,
                    "title": step.title,
                    "phase": step.phase,
                    "kind": step.kind,
                    "gate": step.gate,
                    "status": step.status,
                    "attempts": step.attempts,
                    "duration_s": _round(step.duration_s),
                    "started_at": _time(step.started_at),
                    "finished_at": _time(step.finished_at),
                }
                for step in self.steps
            ],
            "notes": [{**note, "time": _time(note["time"])} for note in self.notes],
        }


def compute_metrics(
    events: list[Event], writer_alive: bool = False, integrity: str = "ok"
) -> RunMetrics:
    """Metrics of a run from its events (the intact prefix of its record)."""
    state = RunState.replay(events)
    if not writer_alive:
        state.mark_interrupted()
    started = state.started_at
    impact = state.milestones.get("impact_start") if state.mode == "incident" else None
    clock_start = impact or started
    restored = state.milestones.get("service_restored")
    recovery_point = _recovery_point(state)
    steps = _step_metrics(events, state)
    waiting = _waiting(events, state)
    return RunMetrics(
        run_id=state.run_id,
        runbook_id=str(state.runbook.get("id", "")),
        runbook_title=str(state.runbook.get("title", "")),
        mode=state.mode,
        status=state.status(writer_alive),
        started_at=started,
        finished_at=next((e.time for e in events if e.type == ev.RUN_FINISHED), None),
        clock_start=clock_start,
        service_restored_at=restored,
        recovery_point=recovery_point,
        rto_s=_seconds(clock_start, restored),
        rto_target_s=state.objectives.get("rto_s"),
        rpo_s=_seconds(recovery_point, clock_start),
        rpo_target_s=state.objectives.get("rpo_s"),
        phases=_phases(steps),
        waiting_s=sum((end - start).total_seconds() for start, end in waiting),
        waiting_intervals=waiting,
        overrides=_decisions(events, ev.GATE_OVERRIDDEN),
        skipped=_decisions(events, ev.STEP_SKIPPED),
        steps=steps,
        milestones=dict(state.milestones),
        notes=state.notes,
        integrity=integrity,
        snapshot=dict(state.snapshot or {}),
    )


def _step_metrics(events: list[Event], state: RunState) -> list[StepMetrics]:
    """Per-step attempts as intervals; an attempt cut off by a crash ends at the last
    event recorded before the crash."""
    open_since: dict[str, datetime] = {}
    intervals: dict[str, list[tuple[datetime, datetime]]] = {sid: [] for sid in state.steps}
    previous_time: datetime | None = None
    for event in events:
        if event.type == ev.RUN_RESUMED:
            for step_id, since in list(open_since.items()):
                intervals[step_id].append((since, previous_time or since))
                del open_since[step_id]
        step_id = event.step_id or ""
        if event.type == ev.STEP_STARTED and step_id in intervals:
            open_since[step_id] = event.time
        elif event.type in (ev.STEP_FINISHED, ev.STEP_SKIPPED) and step_id in open_since:
            intervals[step_id].append((open_since.pop(step_id), event.time))
        previous_time = event.time
    for step_id, since in open_since.items():
        intervals[step_id].append((since, previous_time or since))
    result = []
    for step in state.steps.values():
        spans = intervals[step.id]
        result.append(
            StepMetrics(
                id=step.id,
                title=step.title,
                phase=step.phase,
                kind=step.kind,
                gate=step.gate,
                status="overridden" if step.overridden else step.status,
                attempts=step.attempts,
                duration_s=sum((end - start).total_seconds() for start, end in spans),
                started_at=spans[0][0] if spans else None,
                finished_at=step.finished_at,
                intervals=spans,
            )
        )
    return result


def _phases(steps: list[StepMetrics]) -> dict[str, float]:
    phases: dict[str, float] = {}
    for step in steps:
        if step.intervals:
            phases[step.phase] = phases.get(step.phase, 0.0) + step.duration_s
    return phases


def _waiting(events: list[Event], state: RunState) -> list[tuple[datetime, datetime]]:
    """Intervals in which the run waited for a person, merged so nothing counts twice:
    manual and approval steps, pauses, and failed gates waiting for a decision."""
    spans: list[tuple[datetime, datetime]] = []
    manual_since: dict[str, datetime] = {}
    decision_since: dict[str, datetime] = {}
    paused_since: datetime | None = None
    for event in events:
        step = state.steps.get(event.step_id or "")
        if event.type == ev.STEP_STARTED and step is not None:
            if step.kind in _MANUAL_KINDS:
                manual_since[step.id] = event.time
            if step.id in decision_since:
                spans.append((decision_since.pop(step.id), event.time))
        elif event.type in (ev.STEP_FINISHED, ev.STEP_SKIPPED) and step is not None:
            if step.id in manual_since:
                spans.append((manual_since.pop(step.id), event.time))
            if event.type == ev.STEP_SKIPPED and step.id in decision_since:
                spans.append((decision_since.pop(step.id), event.time))
            status = event.data.get("status")
            if (
                event.type == ev.STEP_FINISHED
                and step.gate
                and status in ("failed", "timed_out")
                and not event.data.get("continued")
            ):
                decision_since[step.id] = event.time
        elif event.type == ev.GATE_OVERRIDDEN and step is not None and step.id in decision_since:
            spans.append((decision_since.pop(step.id), event.time))
        elif event.type == ev.RUN_PAUSED:
            paused_since = event.time
        elif event.type in (ev.RUN_RESUMED, ev.RUN_FINISHED) and paused_since is not None:
            spans.append((paused_since, event.time))
            paused_since = None
    return _merge(spans)


def _merge(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _decisions(events: list[Event], event_type: str) -> list[dict[str, Any]]:
    return [
        {
            "step_id": event.step_id,
            "reason": event.data.get("reason", ""),
            "actor": event.actor,
            "time": format_utc(event.time),
        }
        for event in events
        if event.type == event_type
    ]


def _recovery_point(state: RunState) -> datetime | None:
    text = (state.snapshot or {}).get("recovery_point")
    if not isinstance(text, str):
        return None
    try:
        return parse_utc(text)
    except ValueError:
        return None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def _met(actual: float | None, target: float | None) -> bool | None:
    if actual is None or target is None:
        return None
    return actual <= target


def _plural(count: int, noun: str) -> str:
    if not count:
        return ""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_utc(moment)
