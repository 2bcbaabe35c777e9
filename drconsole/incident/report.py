"""The Markdown report of a run, shaped like an SRE postmortem timeline: summary,
objectives vs actuals, timeline (UTC), phases, overrides and skips, notes."""

from __future__ import annotations

from drconsole.incident import events as ev
from drconsole.incident.describe import describe, describe_finding
from drconsole.incident.events import Event
from drconsole.incident.metrics import RunMetrics
from drconsole.timefmt import format_duration, format_utc
from drconsole.wording import plural


def markdown_report(metrics: RunMetrics, events: list[Event]) -> str:
    sections = [
        f"# Recovery report: {_text(metrics.runbook_title)}",
        _facts(metrics),
        "## Summary\n\n" + _summary(metrics),
        "## Objectives vs actuals\n\n" + _objectives(metrics),
        "## Recovery point\n\n" + _snapshot(metrics),
        "## Timeline (UTC)\n\n" + _timeline(events),
        "## Phases\n\n" + _phases(metrics),
        "## Steps\n\n" + _steps(metrics),
        "## Failed checks\n\n" + _failed_checks(events),
        "## Overrides and skips\n\n" + _decisions(metrics),
        "## Notes\n\n" + _notes(metrics),
    ]
    return "\n\n".join(sections) + "\n"


def _facts(metrics: RunMetrics) -> str:
    rows = [
        ("Run", f"`{metrics.run_id}`"),
        ("Runbook", f"`{metrics.runbook_id}`"),
        ("Mode", metrics.mode),
        ("Status", metrics.status_label),
        ("Started", _when(metrics.started_at)),
        ("Finished", _when(metrics.finished_at)),
        ("Clock start", _when(metrics.clock_start)),
        ("Service restored", _when(metrics.service_restored_at)),
        ("Recovery point", _when(metrics.recovery_point)),
        ("Record integrity", metrics.integrity),
    ]
    return _table(("", ""), rows)


def _summary(metrics: RunMetrics) -> str:
    kind = "Drill" if metrics.mode == "drill" else "Incident recovery"
    start = "the run started" if metrics.mode == "drill" else "impact started"
    parts = [f"{kind} of `{metrics.runbook_id}` {metrics.status_label}."]
    if metrics.rto_s is not None:
        parts.append(
            f"Service was restored {format_duration(metrics.rto_s)} after {start} "
            f"({_verdict(metrics.rto_met, metrics.rto_target_s)})."
        )
    else:
        parts.append("Service was not marked restored, so the RTO was not measured.")
    if metrics.rpo_warning is not None:
        parts.append(f"**{metrics.rpo_warning}.**")
    elif metrics.rpo_s is not None:
        parts.append(
            f"The recovery point was {format_duration(metrics.rpo_s)} before {start} "
            f"({_verdict(metrics.rpo_met, metrics.rpo_target_s)})."
        )
    parts.append(
        f"{plural(len(metrics.overrides), 'gate')} overridden, "
        f"{plural(len(metrics.skipped), 'step')} skipped, "
        f"{format_duration(metrics.waiting_s)} spent waiting for people."
    )
    return " ".join(parts)


def _objectives(metrics: RunMetrics) -> str:
    rows = [
        (
            "RTO",
            format_duration(metrics.rto_target_s),
            format_duration(metrics.rto_s),
            _yes_no(metrics.rto_met),
        ),
        (
            "RPO",
            format_duration(metrics.rpo_target_s),
            format_duration(metrics.rpo_s),
            _yes_no(metrics.rpo_met),
        ),
    ]
    return _table(("Objective", "Target", "Actual", "Met"), rows)


def _snapshot(metrics: RunMetrics) -> str:
    """Which snapshot was restored, what its point in time means, whether its manifest
    was signed, and every newer snapshot passed over with the reason."""
    chosen = metrics.snapshot
    if not chosen:
        return "No snapshot was selected."
    signed = "signed with the catalog key" if chosen.get("signed") else "UNSIGNED"
    lines = [
        f"Snapshot `{chosen.get('snapshot_id')}` ({signed}), recovery point "
        f"{chosen.get('recovery_point')}: {_text(chosen.get('point_in_time') or 'unknown')}.",
        f"Chain: {' -> '.join(f'`{item}`' for item in chosen.get('chain') or [])}.",
    ]
    skipped = chosen.get("skipped") or []
    if skipped:
        lines.append(
            f"\n**Fell back** past {plural(len(skipped), 'newer snapshot')}, not restorable:\n"
        )
        lines += [f"- `{item['snapshot_id']}`: {_text(item['reason'])}" for item in skipped]
    return "\n".join(lines)


def _timeline(events: list[Event]) -> str:
    """One row per event, except that the checks a step passed in a row are one row
    ("148 checks passed: count, content, ..."): the failures stand out, each on its own."""
    rows: list[tuple[str, str]] = []
    passed: list[Event] = []

    def flush() -> None:
        if passed:
            kinds = list(dict.fromkeys(str(event.data.get("check")) for event in passed))
            rows.append(
                (
                    format_utc(passed[0].time),
                    f"{plural(len(passed), 'check')} of step {passed[0].step_id} passed: "
                    + ", ".join(kinds),
                )
            )
            passed.clear()

    for event in sorted(events, key=lambda e: (e.time, e.seq)):
        if event.type == ev.CHECK_RESULT and event.data.get("passed"):
            if passed and (passed[0].step_id, passed[0].attempt) != (event.step_id, event.attempt):
                flush()
            passed.append(event)
            continue
        if (line := describe(event)) is not None:
            flush()
            rows.append((format_utc(event.time), _text(line)))
    flush()
    return _table(("Time (UTC)", "Event"), rows)


def _failed_checks(events: list[Event]) -> str:
    """Every check that failed, in full: expected, actual and the ids behind it."""
    blocks = []
    for event in events:
        if event.type != ev.CHECK_RESULT or event.data.get("passed"):
            continue
        first, *rest = describe_finding(event.data)
        blocks.append(
            f"- Step `{event.step_id}` (attempt {event.attempt}): {_text(first)}"
            + "".join(f"\n  - {_text(line)}" for line in rest)
        )
    return "\n".join(blocks) if blocks else "None."


def _phases(metrics: RunMetrics) -> str:
    total = sum(metrics.phases.values()) or 1.0
    rows = [
        (phase, format_duration(seconds), f"{100 * seconds / total:.0f}%")
        for phase, seconds in metrics.phases.items()
    ]
    table = _table(("Phase", "Time", "Share"), rows) if rows else "No step ran."
    return table + f"\n\nWaiting for people (counted apart): {format_duration(metrics.waiting_s)}."


def _steps(metrics: RunMetrics) -> str:
    rows = [
        (
            f"`{step.id}`",
            step.phase,
            step.status,
            str(step.attempts),
            format_duration(step.duration_s),
        )
        for step in metrics.steps
    ]
    return _table(("Step", "Phase", "Status", "Attempts", "Duration"), rows)


def _decisions(metrics: RunMetrics) -> str:
    lines = [
        f"- Gate `{item['step_id']}` overridden by {item['actor']} at {item['time']}: "
        f"{_text(item['reason'])}"
        for item in metrics.overrides
    ] + [
        f"- Step `{item['step_id']}` skipped by {item['actor']} at {item['time']}: "
        f"{_text(item['reason'])}"
        for item in metrics.skipped
    ]
    return "\n".join(lines) if lines else "None."


def _notes(metrics: RunMetrics) -> str:
    lines = [
        f"- {format_utc(note['time'])} {note['actor']}: {_text(note['text'])}"
        for note in metrics.notes
    ]
    return "\n".join(lines) if lines else "None."


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _text(value: str) -> str:
    return " ".join(str(value).split())


def _when(moment: object) -> str:
    return format_utc(moment) if moment is not None else "-"  # type: ignore[arg-type]


def _verdict(met: bool | None, target: float | None) -> str:
    if target is None:
        return "no target set"
    return f"target {format_duration(target)}: {'met' if met else 'missed'}"


def _yes_no(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "no")
