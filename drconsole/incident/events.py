"""Event types of the incident record and the envelope every line carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drconsole.timefmt import parse_utc

VERSION = 2
ENVELOPE = (
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
)
RUN_STARTED = "run.started"
MILESTONE = "milestone"
SNAPSHOT_SELECTED = "snapshot.selected"
STEP_STARTED = "step.started"
STEP_PROGRESS = "step.progress"
STEP_FINISHED = "step.finished"
STEP_RETRY = "step.retry"
CHECK_RESULT = "check.result"
GATE_OVERRIDDEN = "gate.overridden"
STEP_SKIPPED = "step.skipped"
NOTE = "note"
RUN_PAUSED = "run.paused"
RUN_RESUMED = "run.resumed"
RUN_FINISHED = "run.finished"
RECORD_REPAIRED = "record.repaired"
TYPES = (
    RUN_STARTED,
    MILESTONE,
    SNAPSHOT_SELECTED,
    STEP_STARTED,
    STEP_PROGRESS,
    STEP_FINISHED,
    STEP_RETRY,
    CHECK_RESULT,
    GATE_OVERRIDDEN,
    STEP_SKIPPED,
    NOTE,
    RUN_PAUSED,
    RUN_RESUMED,
    RUN_FINISHED,
    RECORD_REPAIRED,
)
STEP_OUTCOMES = ("succeeded", "failed", "timed_out", "skipped", "cancelled")
RUN_OUTCOMES = ("succeeded", "failed", "abandoned")


@dataclass(frozen=True)
class Event:
    """One line of the record, parsed. ``time`` is when it happened (a milestone may be
    back-dated); ``observed_time`` is when drconsole wrote it."""

    seq: int
    id: str
    run_id: str
    type: str
    time: datetime
    observed_time: datetime
    actor: str
    mode: str
    step_id: str | None
    attempt: int | None
    data: dict[str, Any]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        """Parse a decoded line; raises ValueError/KeyError/TypeError on a malformed one."""
        data = raw["data"]
        if not isinstance(data, dict):
            raise TypeError("data must be an object")
        return cls(
            seq=int(raw["seq"]),
            id=str(raw["id"]),
            run_id=str(raw["run_id"]),
            type=str(raw["type"]),
            time=parse_utc(raw["time"]),
            observed_time=parse_utc(raw["observed_time"]),
            actor=str(raw["actor"]),
            mode=str(raw["mode"]),
            step_id=raw["step_id"],
            attempt=raw["attempt"],
            data=data,
        )
