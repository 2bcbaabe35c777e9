"""What an action receives and returns: the context, progress reports and the outcome.

Actions never write the incident record themselves; they call the context's hooks, which
the runner (the record's only writer) provides.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drconsole.actions.shared import RunShared

if TYPE_CHECKING:
    from drconsole.runbook.model import Runbook

SUCCEEDED = "succeeded"
FAILED = "failed"


@dataclass(frozen=True)
class Progress:
    """How far a long action has come. ``checkpoint`` (if any) is recorded durably so a
    resumed run can continue after it; ``data`` is recorded as is (ids, pids, counts)."""

    done: float
    total: float | None = None
    unit: str = "items"
    message: str = ""
    checkpoint: dict[str, Any] | None = None
    data: dict[str, Any] | None = None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class ResultTable:
    """A small table of results, rendered by rich in the CLI and by a DataTable in the TUI."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Finding:
    """One check result: what was checked, whether it passed, expected vs actual."""

    check: str
    passed: bool
    subject: str
    expected: Any = None
    actual: Any = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What an action returns: succeeded or failed, a one-line summary and details."""

    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    tables: list[ResultTable] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED


@dataclass
class ActionContext:
    """Everything an action may use. ``target`` is the runbook's target with any override
    given for this run; ``snapshot`` is the run's ``snapshot.selected`` data, if any;
    ``placement`` maps a collection to the name it has in the target for now (a restore
    into staging), as the last step that placed collections recorded it. Hooks write
    through the runner, never directly."""

    run_id: str
    mode: str
    step_id: str
    attempt: int
    params: dict[str, Any]
    runbook: Runbook
    target: dict[str, Any]
    snapshot: dict[str, Any] | None
    cancel: threading.Event
    add_secret: Callable[[str], None]
    report_finding: Callable[[Finding], None]
    select_snapshot: Callable[[dict[str, Any]], None]
    last_checkpoint: dict[str, Any] | None = None
    requested_snapshot: str | None = None
    placement: dict[str, str] = field(default_factory=dict)
    impact_start: datetime | None = None
    shared: RunShared = field(default_factory=RunShared)
    """What the run's steps share (the catalog, the chain's truth): the runner's."""

    @property
    def runbook_dir(self) -> Path:
        return self.runbook.folder


ActionFunction = Callable[[ActionContext, ProgressCallback], Outcome]
