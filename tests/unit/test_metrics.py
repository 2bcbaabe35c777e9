"""Metrics recomputed from hand-built timelines: RTO, RPO, phases, waiting, decisions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from drconsole.incident.metrics import RunMetrics, compute_metrics
from drconsole.incident.record import RecordWriter, read_record
from drconsole.incident.report import markdown_report
from drconsole.timefmt import format_utc

from helpers import T0

PLAN = [
    {"id": "verify", "title": "Verify", "phase": "verify", "kind": "action", "gate": True},
    {"id": "approve", "title": "Approve", "phase": "prep", "kind": "approval", "gate": False},
    {"id": "data", "title": "Data", "phase": "data", "kind": "action", "gate": False},
    {"id": "golden", "title": "Golden", "phase": "validation", "kind": "action", "gate": True},
    {"id": "reconnect", "title": "Reconnect", "phase": "cutover", "kind": "manual", "gate": False},
]


class Timeline:
    """Writes a record event by event at chosen offsets (seconds after T0)."""

    def __init__(self, folder: Path, mode: str) -> None:
        self.path = folder / "run.jsonl"
        self.writer = RecordWriter.create(self.path, "run", mode)

    def at(
        self,
        seconds: float,
        event_type: str,
        data: dict[str, Any] | None = None,
        step: str | None = None,
        attempt: int | None = None,
        *,
        observed: float | None = None,
        actor: str = "alice",
    ) -> Timeline:
        moment = T0 + timedelta(seconds=seconds)
        seen = T0 + timedelta(seconds=observed if observed is not None else seconds)
        self.writer.append(
            event_type,
            data or {},
            time=moment,
            observed_time=seen,
            actor=actor,
            step_id=step,
            attempt=attempt,
        )
        return self

    def step(
        self,
        step: str,
        start: float,
        end: float,
        status: str = "succeeded",
        attempt: int = 1,
        **extra: Any,
    ) -> Timeline:
        self.at(start, "step.started", {}, step, attempt)
        return self.at(end, "step.finished", {"status": status, **extra}, step, attempt)

    def metrics(self) -> RunMetrics:
        self.writer.close()
        read = read_record(self.path)
        assert read.intact
        return compute_metrics(read.events)


def _started(rto: float = 3600, rpo: float = 4 * 3600) -> dict[str, Any]:
    return {
        "runbook": {"id": "kb", "title": "KB restore"},
        "objectives": {"rto_s": rto, "rpo_s": rpo},
        "plan": PLAN,
    }


def test_drill_rto_rpo_phases_waiting_and_override(tmp_path: Path) -> None:
    metrics = (
        Timeline(tmp_path, "drill")
        .at(0, "run.started", _started())
        .step("verify", 5, 65)
        .at(66, "snapshot.selected", {"recovery_point": format_utc(T0 - timedelta(hours=2))})
        .step("approve", 70, 370)  # a person took 300 s
        .step("data", 370, 970)
        .step("golden", 970, 1000, status="failed")  # gate fails ...
        .at(
            1060, "gate.overridden", {"reason": "known flaky query"}, "golden", 1
        )  # ... 60 s to decide
        .at(1060, "milestone", {"name": "service_restored"})
        .step("reconnect", 1060, 1180)  # a person: 120 s
        .at(1181, "run.finished", {"status": "succeeded"})
        .metrics()
    )
    assert metrics.status == "succeeded"
    assert metrics.rto_s == 1060
    assert metrics.rto_met is True
    assert metrics.rpo_s == 7200
    assert metrics.rpo_met is True
    assert metrics.phases == {
        "verify": 60,
        "prep": 300,
        "data": 600,
        "validation": 30,
        "cutover": 120,
    }
    assert metrics.waiting_s == 300 + 60 + 120
    assert metrics.overrides == [
        {
            "step_id": "golden",
            "reason": "known flaky query",
            "actor": "alice",
            "time": format_utc(T0 + timedelta(seconds=1060)),
        }
    ]
    golden = next(step for step in metrics.steps if step.id == "golden")
    assert golden.status == "overridden"
    as_json = metrics.to_json()
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
        assert key in as_json


def test_incident_clock_starts_at_a_back_dated_impact_start(tmp_path: Path) -> None:
    metrics = (
        Timeline(tmp_path, "incident")
        .at(0, "run.started", _started(rto=1800))
        .at(0, "milestone", {"name": "impact_start"})
        .at(-900, "milestone", {"name": "impact_start", "back_dated": True}, observed=30)
        .at(40, "snapshot.selected", {"recovery_point": format_utc(T0 - timedelta(hours=5))})
        .step("verify", 40, 100)
        .at(1200, "milestone", {"name": "service_restored"})
        .metrics()
    )
    assert metrics.clock_start == T0 - timedelta(seconds=900)
    assert metrics.rto_s == 2100
    assert metrics.rto_met is False
    assert metrics.rpo_s == 5 * 3600 - 900
    assert metrics.rpo_met is False
    assert metrics.status == "interrupted"


def test_drill_ignores_impact_start(tmp_path: Path) -> None:
    metrics = (
        Timeline(tmp_path, "drill")
        .at(0, "run.started", _started())
        .at(-600, "milestone", {"name": "impact_start"})
        .at(100, "milestone", {"name": "service_restored"})
        .metrics()
    )
    assert metrics.rto_s == 100


def test_waiting_merges_overlaps_and_counts_pauses(tmp_path: Path) -> None:
    metrics = (
        Timeline(tmp_path, "drill")
        .at(0, "run.started", _started())
        .at(10, "step.started", {}, "approve", 1)
        .at(20, "run.paused", {"reason": "waits for a person"})
        .at(500, "run.resumed", {})
        .at(520, "step.finished", {"status": "succeeded"}, "approve", 1)
        .at(600, "run.paused", {"reason": "end of shift"})
        .at(900, "run.resumed", {})
        .metrics()
    )
    assert metrics.waiting_s == (520 - 10) + (900 - 600)


def test_skips_and_retried_attempts(tmp_path: Path) -> None:
    metrics = (
        Timeline(tmp_path, "drill")
        .at(0, "run.started", _started())
        .step("verify", 0, 10, status="failed", attempt=1)
        .at(10, "step.retry", {"next_attempt": 2, "delay_s": 5}, "verify", 1)
        .step("verify", 15, 30, attempt=2)
        .at(31, "step.skipped", {"reason": "no approver on call"}, "approve")
        .metrics()
    )
    verify = next(step for step in metrics.steps if step.id == "verify")
    assert verify.attempts == 2
    assert verify.duration_s == 25
    assert metrics.skipped[0]["reason"] == "no approver on call"
    assert metrics.phases == {"verify": 25}


def test_an_interrupted_attempt_ends_at_the_last_event_before_resume(tmp_path: Path) -> None:
    metrics = (
        Timeline(tmp_path, "drill")
        .at(0, "run.started", _started())
        .at(10, "step.started", {}, "data", 1)
        .at(70, "step.progress", {"done": 5, "checkpoint": {"done": 5}}, "data", 1)
        .at(4000, "run.resumed", {"interrupted_step": "data"})
        .at(4000, "step.finished", {"status": "cancelled"}, "data", 1)
        .step("data", 4001, 4101, attempt=2)
        .metrics()
    )
    assert metrics.phases["data"] == 60 + 100


def test_report_lists_reasons_and_objectives(tmp_path: Path) -> None:
    timeline = (
        Timeline(tmp_path, "drill")
        .at(0, "run.started", _started())
        .step("golden", 0, 10, status="failed")
        .at(20, "gate.overridden", {"reason": "index warming | known"}, "golden", 1)
        .at(20, "milestone", {"name": "service_restored"})
        .at(25, "note", {"text": "paged the search team"})
    )
    metrics = timeline.metrics()
    report = markdown_report(metrics, read_record(timeline.path).events)
    for heading in (
        "## Summary",
        "## Objectives vs actuals",
        "## Timeline (UTC)",
        "## Phases",
        "## Overrides and skips",
        "## Notes",
    ):
        assert heading in report
    assert "index warming \\| known" in report
    assert "paged the search team" in report
    assert "| RTO | 1h 00m | 20s | yes |" in report


def test_report_groups_passing_checks_and_lists_each_failure_with_its_ids(
    tmp_path: Path,
) -> None:
    timeline = Timeline(tmp_path, "drill").at(0, "run.started", _started())
    timeline.at(1, "step.started", {"title": "counts"}, "counts", 1)
    for n in range(150):
        check = {"check": "count" if n % 2 else "content", "passed": True, "subject": f"c{n}"}
        timeline.at(2, "check.result", {**check, "expected": 1, "actual": 1}, "counts", 1)
    failure = {
        "check": "tenant count",
        "passed": False,
        "subject": "kb_articles",
        "expected": {"acme": 3},
        "actual": {"acme": 1},
        "details": {"missing_ids": ["kb-7", "kb-9"], "tenant": "acme"},
    }
    timeline.at(3, "check.result", failure, "counts", 1)
    timeline.at(4, "step.finished", {"status": "failed", "summary": "1 of 151 failed"}, "counts", 1)
    report = markdown_report(timeline.metrics(), read_record(timeline.path).events)
    section = report.split("## Timeline (UTC)")[1].split("## Phases")[0]
    assert "150 checks of step counts passed: content, count" in section
    assert section.count("passed") == 1, "150 passing checks are one row, not 150"
    assert "Check tenant count on kb_articles FAILED" in section
    failed = report.split("## Failed checks")[1].split("## Overrides")[0]
    assert (
        '- Step `counts` (attempt 1): tenant count on kb_articles: expected {"acme": 3}, '
        'got {"acme": 1}' in failed
    )
    assert "  - missing ids (2): kb-7, kb-9" in failed and "  - tenant: acme" in failed


@pytest.mark.parametrize(("rto", "met"), [(1059.999, False), (1060, True), (1061, True)])
def test_rto_met_at_the_boundary(tmp_path: Path, rto: float, met: bool) -> None:
    metrics = (
        Timeline(tmp_path, "drill")
        .at(0, "run.started", _started(rto=rto))
        .at(1060, "milestone", {"name": "service_restored"})
        .metrics()
    )
    assert metrics.rto_met is met


def test_moments_as_people_say_them() -> None:
    from datetime import UTC, datetime

    from drconsole.timefmt import parse_moment

    now = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert parse_moment("now", now) == now and parse_moment("", now) == now
    assert parse_moment("10m ago", now) == datetime(2026, 11, 30, 15, 50, tzinfo=UTC)
    assert parse_moment("1h30m ago", now) == datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
    assert parse_moment("2026-11-30T15:55:00Z", now) == datetime(2026, 11, 30, 15, 55, tzinfo=UTC)
    local = parse_moment("00:05", now)
    assert local.astimezone().strftime("%H:%M") == "00:05"
    for bad, why in (("tomorrow", "write now"), ("16:30Z", "write now"), ("25:00", "time of day")):
        with pytest.raises(ValueError, match=why):
            parse_moment(bad, now)
    with pytest.raises(ValueError, match="in the future"):
        parse_moment("2026-12-01T00:00:00Z", now)
