"""Modal screens: confirmation (plain or typed), reason input, choices, milestone, help,
text to read (the error modal is one: escaped, copyable text). Each says which keys
answer it."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from drconsole.runbook.model import MILESTONES
from drconsole.timefmt import MOMENT_FORMS, parse_moment


class ConfirmModal(ModalScreen[bool]):
    """Yes or no; with ``typed`` the operator must type that word (y and n are then just
    letters to type)."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("y", "yes", "Yes"),
        Binding("n", "cancel", "No"),
    ]

    def __init__(self, question: str, typed: str | None = None) -> None:
        super().__init__()
        self.question = question
        self.typed = typed

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question", markup=False)
            if self.typed:
                yield Label(f"Type {self.typed!r} to confirm, then Enter:", markup=False)
                yield Input(placeholder=self.typed, id="typed")
            yield Label(
                "Enter confirms once typed, Esc cancels"
                if self.typed
                else "y confirms, n or Esc cancels",
                classes="hint",
            )
            with Horizontal(classes="buttons"):
                yield Button("Confirm", variant="error", id="yes")
                yield Button("Cancel", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#typed" if self.typed else "#no").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.typed and action == "yes")

    def _typed_ok(self) -> bool:
        return not self.typed or self.query_one("#typed", Input).value.strip() == self.typed

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "yes":
            self.on_input_submitted()
        else:
            self.dismiss(False)

    def on_input_submitted(self) -> None:
        if self._typed_ok():
            self.dismiss(True)
        else:
            self.notify(f"type {self.typed!r} exactly to confirm", severity="warning")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class ReasonModal(ModalScreen[str | None]):
    """A required line of text: a reason for a skip or an override, or a note."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, placeholder: str = "why") -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="question", markup=False)
            yield Input(placeholder=self.placeholder, id="reason")
            yield Label("Enter saves, Esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.notify("a reason is required", severity="warning")
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceModal(ModalScreen[str | None]):
    """Pick one of a few labelled choices (e.g. drill or incident; re-run or mark done)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question", markup=False)
            yield OptionList(*[Option(label, id=key) for key, label in self.choices], id="choices")
            yield Label("↑↓ choose, Enter takes it, Esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#choices", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class MilestoneModal(ModalScreen[tuple[str, datetime] | None]):
    """A milestone and when it happened (now, a local time, a time ago or ISO 8601; it
    may be back-dated, never in the future). A mistake is said inside the dialog."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, now: datetime) -> None:
        super().__init__()
        self.now = now

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Set a milestone", classes="question")
            yield OptionList(*[Option(name, id=name) for name in MILESTONES], id="names")
            yield Label(
                f"When? {MOMENT_FORMS}; empty = now. Enter sets it, Esc cancels.", markup=False
            )
            yield Input(placeholder="now", id="when")
            yield Label("", id="when-problem", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#names", OptionList).focus()

    def on_option_list_option_selected(self) -> None:
        self.query_one("#when", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        names = self.query_one("#names", OptionList)
        if names.highlighted is None:
            self.notify("choose a milestone first", severity="warning")
            return
        name = str(names.get_option_at_index(names.highlighted).id)
        try:
            moment = parse_moment(event.value, self.now)
        except ValueError as error:
            self.query_one("#when-problem", Label).update(str(error))
            return
        self.dismiss((name, moment))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ImpactModal(ModalScreen[datetime | None]):
    """An incident starts by saying when the impact began: the RTO clock starts there."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, now: datetime) -> None:
        super().__init__()
        self.now = now

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("When did the impact begin?", classes="question")
            yield Label(
                f"The RTO clock starts then. Write {MOMENT_FORMS}; empty = now. "
                "Enter starts the incident run, Esc cancels.",
                markup=False,
            )
            yield Input(placeholder="now", id="when")
            yield Label("", id="when-problem", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#when", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            moment = parse_moment(event.value, self.now)
        except ValueError as error:
            self.query_one("#when-problem", Label).update(str(error))
            return
        self.dismiss(moment)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TextModal(ModalScreen[None]):
    """Text to read and copy (plain and selectable: never markup), closed with Enter or Esc."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("enter", "close", "Close", show=False)]
    LOOK = "dialog"

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes=self.LOOK):
            yield Label(self.title_text, classes="question", markup=False)
            yield TextArea(self.text, read_only=True, soft_wrap=True, id="modal-text")
            yield Label("Enter or Esc closes; the text can be selected and copied", classes="hint")
            yield Button("Close", variant="primary", id="close")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class ErrorModal(TextModal):
    """An error with what to do (never a traceback)."""

    LOOK = "dialog error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__("Error", message + (f"\n\nWhat to do: {hint}" if hint else ""))
        self.message = message
        self.hint = hint


class HelpModal(ModalScreen[None]):
    """Every key of the screen below, with what it does."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]], about: str) -> None:
        super().__init__()
        self.keys = keys
        self.about = about

    def compose(self) -> ComposeResult:
        lines = "\n".join(f"  {key:<10} {description}" for key, description in self.keys)
        with Vertical(classes="dialog"):
            yield Label("Help", classes="question")
            yield Static(self.about, markup=False)
            yield Static(lines, markup=False, classes="keys")
            yield Label("Esc or ? closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)


class SnapshotPicker(ModalScreen[str | None]):
    """Choose the recovery point: snapshots newest first, with age and chain status."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str, bool]]) -> None:
        """``choices``: (snapshot id, description, intact) newest first."""
        super().__init__()
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question", markup=False)
            options = [
                Option(
                    f"{'✓' if intact else '✗'} {snapshot_id}  {about}",
                    id=snapshot_id,
                    disabled=not intact,
                )
                for snapshot_id, about, intact in self.choices
            ]
            yield OptionList(*options, id="snapshots")
            yield Label(
                "✗: its chain is broken or it is refused; it cannot be restored. "
                "Enter takes the selected one, Esc cancels",
                classes="hint",
            )

    def on_mount(self) -> None:
        self.query_one("#snapshots", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
