"""Typed messages that workers post to the app thread."""

from __future__ import annotations

from textual.message import Message

from drconsole.actions.base import Progress
from drconsole.catalog.catalog import CatalogView
from drconsole.catalog.verifications import Verification
from drconsole.catalog.verify import VerifyResult
from drconsole.incident.events import Event
from drconsole.incident.metrics import RunMetrics


class CatalogLoaded(Message):
    def __init__(self, view: CatalogView) -> None:
        super().__init__()
        self.view = view


class VerificationsLoaded(Message):
    """The last verification of each snapshot, as the catalog keeps them."""

    def __init__(self, verifications: dict[str, Verification]) -> None:
        super().__init__()
        self.verifications = verifications


class VerifyProgress(Message):
    """Bytes hashed so far; a newer one replaces an older one still queued."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done = done
        self.total = total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, VerifyProgress)


class VerifyFinished(Message):
    """A verification's result, and why it could not be kept in the catalog (if so)."""

    def __init__(self, result: VerifyResult, not_kept: str | None = None) -> None:
        super().__init__()
        self.result = result
        self.not_kept = not_kept


class StepProgress(Message):
    """A long step's progress; a newer one replaces an older one still queued."""

    def __init__(self, step_id: str, progress: Progress) -> None:
        super().__init__()
        self.step_id = step_id
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StepProgress) and message.step_id == self.step_id


class RecordEvent(Message):
    """An event the runner just wrote to the incident record."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class RunsLoaded(Message):
    """Metrics of every run, and a message per record that could not be read."""

    def __init__(self, runs: list[RunMetrics], unreadable: list[str]) -> None:
        super().__init__()
        self.runs = runs
        self.unreadable = unreadable
