"""What every screen of the console shares: a worker that fails on it ends in the error
modal, with the message and hint the CLI would print (Textual sends a worker's state only
to the screen it runs on, so each screen must pass it on)."""

from __future__ import annotations

from textual.screen import Screen
from textual.worker import Worker, WorkerState


class ConsoleScreen(Screen[None]):
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.worker_failed(event.worker)
            self.app.report_worker_error(event.worker)  # type: ignore[attr-defined]

    def worker_failed(self, worker: Worker) -> None:
        """What the screen shows in place of what the worker would have shown."""
