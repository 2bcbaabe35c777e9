"""What every screen of the console shares.

A worker that fails on it ends in the error modal, with the message and hint the CLI
would print (Textual sends a worker's state only to the screen it runs on, so each
screen must pass it on). On a narrow terminal (an 80x24 jump host) the footer gives the
command palette's place to the screen's own keys, so ``?`` and ``q`` always show; the
palette still opens with ctrl+p and help lists it. Below ``STACK_BELOW`` columns the
screen gets the ``narrow`` class, which its CSS uses to stack its panes."""

from __future__ import annotations

from textual import events
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

# Below this many columns the footer has no room to spare for the palette's key.
NARROW = 100


class ConsoleScreen(Screen[None]):
    STACK_BELOW = NARROW

    def on_mount(self) -> None:
        self._fit(self.app.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        self.set_class(width < self.STACK_BELOW, "narrow")
        for footer in self.query(Footer):
            footer.show_command_palette = width >= NARROW

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.worker_failed(event.worker)
            self.app.report_worker_error(event.worker)  # type: ignore[attr-defined]

    def worker_failed(self, worker: Worker) -> None:
        """What the screen shows in place of what the worker would have shown."""
