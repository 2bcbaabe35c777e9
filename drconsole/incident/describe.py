"""One line of plain English per event, for the report's timeline and the console."""

from __future__ import annotations

import json
from typing import Any

from drconsole.incident import events as ev
from drconsole.incident.events import Event
from drconsole.timefmt import format_duration, format_utc


def describe(event: Event) -> str | None:
    """What happened, for a person; None for events too chatty for a timeline."""
    data = event.data
    step = event.step_id or ""
    attempt = f" (attempt {event.attempt})" if event.attempt and event.attempt > 1 else ""
    match event.type:
        case ev.RUN_STARTED:
            return f"Run started ({event.mode}) by {event.actor} on {data.get('host', '?')}"
        case ev.MILESTONE:
            text = f"Milestone {data.get('name')}"
            if data.get("back_dated"):
                text += f" (back-dated; recorded {format_utc(event.observed_time)})"
            return text + (f": {data['reason']}" if data.get("reason") else "")
        case ev.SNAPSHOT_SELECTED:
            return (
                f"Snapshot {data.get('snapshot_id', '?')} selected; recovery point "
                f"{data.get('recovery_point', '?')}"
            )
        case ev.STEP_STARTED:
            verb = (
                "waiting for a person" if data.get("kind") in ("manual", "approval") else "started"
            )
            return f"Step {step} {verb}{attempt}: {data.get('title', '')}"
        case ev.RECORD_REPAIRED:
            return f"Record repaired: {data.get('reason', '')}"
        case ev.STEP_FINISHED:
            return f"Step {step} {data.get('status')}{attempt}: {data.get('summary', '')}"
        case ev.STEP_RETRY:
            delay = format_duration(data.get("delay_s"))
            return f"Step {step} will retry in {delay}: {data.get('reason', '')}"
        case ev.CHECK_RESULT:
            verdict = "passed" if data.get("passed") else "FAILED"
            return f"Check {data.get('check')} on {data.get('subject')} {verdict}"
        case ev.GATE_OVERRIDDEN:
            return f"Gate {step} overridden by {event.actor}: {data.get('reason', '')}"
        case ev.STEP_SKIPPED:
            return f"Step {step} skipped by {event.actor}: {data.get('reason', '')}"
        case ev.NOTE:
            return f"Note by {event.actor}: {data.get('text', '')}"
        case ev.RUN_PAUSED:
            return f"Run paused: {data.get('reason', '')}"
        case ev.RUN_RESUMED:
            interrupted = data.get("interrupted_step")
            return "Run resumed" + (
                f"; step {interrupted} had been interrupted" if interrupted else ""
            )
        case ev.RUN_FINISHED:
            reason = f": {data['reason']}" if data.get("reason") else ""
            return f"Run finished, {data.get('status')}{reason}"
    return None


def describe_finding(finding: dict[str, Any]) -> list[str]:
    """A check in full, for the report and the console: what was checked, expected and
    actual, then every detail it carries (the ids behind a failure, one list per line)."""
    lines = [
        f"{finding.get('check')} on {finding.get('subject')}: expected "
        f"{_value(finding.get('expected'))}, got {_value(finding.get('actual'))}"
    ]
    for key, value in (finding.get("details") or {}).items():
        label = str(key).replace("_", " ")
        if isinstance(value, list | tuple):
            lines.append(f"{label} ({len(value)}): {', '.join(_value(item) for item in value)}")
        else:
            lines.append(f"{label}: {_value(value)}")
    return lines


def _value(value: Any) -> str:
    """JSON for structures (never Python's repr: {'a': 1} is not what a reader expects)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
