"""The guided walk of a run: header with the RTO clock, steps by phase, the current step's
panel, the latest events. Every action goes to the runner; long steps run on a worker."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Markdown, ProgressBar, RichLog, Static

from drconsole.engines import namespace_keys
from drconsole.errors import DrconsoleError
from drconsole.incident.describe import describe, describe_finding
from drconsole.incident.replay import StepState
from drconsole.runbook.model import Step
from drconsole.runner import Pending, Runner
from drconsole.timefmt import format_duration, format_utc, parse_utc
from drconsole.tui.messages import RecordEvent, StepProgress
from drconsole.tui.modals import (
    ChoiceModal,
    ConfirmModal,
    HelpModal,
    MilestoneModal,
    ReasonModal,
    TextModal,
)
from drconsole.tui.screen_base import ConsoleScreen
from drconsole.tui.widgets import ResultTables, RtoClock, help_keys, status_text
from drconsole.wording import plural

if TYPE_CHECKING:
    from drconsole.tui.app import DrconsoleApp

RECENT_EVENTS = 200
STATUS_WIDTH = 13
TIME_WIDTH = 6
_STATEFUL = (
    "run_step",
    "confirm",
    "reject",
    "skip",
    "override",
    "cancel_step",
    "finish",
    "export",
    "failures",
)


class RunScreen(ConsoleScreen):
    AUTO_FOCUS = "#steps"
    STACK_BELOW = 160  # below it, side by side would cut the step titles
    BINDINGS = [
        Binding(
            "x",
            "run_step",
            "Run step",
            tooltip="run the next automated step (or retry a failed one)",
        ),
        Binding("c", "confirm", "Confirm", tooltip="confirm a manual step / approve"),
        Binding("s", "skip", "Skip", tooltip="skip the current step, with a reason"),
        Binding(
            "o", "override", "Override", tooltip="let the run pass a failed gate, with a reason"
        ),
        Binding("r", "reject", "Reject", tooltip="reject an approval, with a reason"),
        Binding(
            "ctrl+c",
            "cancel_step",
            "Cancel step",
            priority=True,
            tooltip="cancel the running step (asks first; the run stays resumable)",
        ),
        Binding(
            "i",
            "failures",
            "Failures",
            tooltip="the failed checks of the step in view, in full, with the ids behind them",
        ),
        Binding("n", "note", "Note", show=False),
        Binding(
            "m",
            "milestone",
            "Milestone",
            show=False,
            tooltip="set a milestone, e.g. a back-dated impact start",
        ),
        Binding("f", "finish", "Finish"),
        Binding("e", "export", "Export report"),
        Binding("t", "timeline", "Timeline", show=False),
        Binding(
            "A",
            "abandon",
            "Abandon run",
            show=False,
            tooltip="end the run without finishing it, with a reason (it stops waiting)",
        ),
        Binding("escape", "back", "Back", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit", tooltip="leave the console; an unfinished run is paused"),
    ]

    def __init__(self, runner: Runner) -> None:
        super().__init__()
        self.runner = runner
        self.cancel = threading.Event()
        self.running_step: str | None = None
        self.quit_after_step = False
        self.viewed: str | None = None
        self._title_width = 0
        self._filling = False
        self._shown_instructions: str | None = None

    @property
    def console(self) -> DrconsoleApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="run-header"):
            with Horizontal(id="run-where-line"):
                yield Static(id="run-where")
                yield Static(id="mode-badge")
                yield RtoClock(self.console.services.clock, id="rto")
            yield Static(id="run-point")
        with Horizontal(id="run-body"):
            yield DataTable(id="steps", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="step-panel"):
                yield Static(id="outcome", classes="hidden")
                yield Static(id="step-title")
                yield Markdown(id="instructions")
                yield Static(id="step-params")
                yield ProgressBar(id="step-progress", show_eta=False, classes="hidden")
                yield Static(id="progress-text")
                yield Static(id="step-summary")
                yield ResultTables(id="results")
        yield RichLog(id="events", max_lines=RECENT_EVENTS, markup=False, wrap=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.runner.runbook.title} ({self.runner.run_id})"
        self._lay_out(self.app.size.width)
        log = self.query_one("#events", RichLog)
        for event in self.console.services.runs.read(self.runner.run_id).events[-RECENT_EVENTS:]:
            if (line := describe(event)) is not None:
                log.write(f"{event.time:%H:%M:%S}  {line}")
        self.runner.subscribe(lambda event: self.post_message(RecordEvent(event)))
        self.refresh_view()
        interrupted = self.runner.state.interrupted
        if interrupted is not None:
            self.ask_interrupted(interrupted.id)
        else:
            self.runner.advance()
            self.refresh_view()

    def on_resize(self, event: events.Resize) -> None:
        self._lay_out(event.size.width)
        self.refresh_view()

    def _lay_out(self, width: int) -> None:
        """Narrow terminals (an 80x24 jump host) stack the steps above the step panel so
        titles get the whole width; wide ones put them side by side. The step column takes
        whatever room the status and time columns leave."""
        table_width = width if width < self.STACK_BELOW else int(width * 0.45)
        title_width = max(20, table_width - STATUS_WIDTH - TIME_WIDTH - 8)
        if self._title_width == title_width:
            return
        self._title_width = title_width
        table = self.query_one("#steps", DataTable)
        table.clear(columns=True)
        for label, column in (("status", STATUS_WIDTH), ("time", TIME_WIDTH)):
            table.add_column(label, width=column)
        table.add_column("step", width=title_width)

    # ----- reading the run -------------------------------------------------------------

    def refresh_view(self) -> None:
        state = self.runner.state
        mode = self.runner.mode.upper()
        badge = self.query_one("#mode-badge", Static)
        badge.update(
            Text(
                f" {mode} ",
                style="bold white on red" if mode == "INCIDENT" else "bold black on cyan",
            )
        )
        self.query_one("#run-where", Static).update(self._where())
        self.query_one("#run-point", Static).update(self._recovery_point())
        start = state.milestones.get("impact_start") if self.runner.mode == "incident" else None
        self.query_one("#rto", RtoClock).set_times(
            start or state.started_at,
            self.runner.runbook.rto_s,
            state.milestones.get("service_restored"),
        )
        self._fill_steps()
        self._show_step(self.viewed or self._current_id())
        self._show_outcome()
        self.refresh_bindings()

    def _where(self) -> Text:
        """Where the run writes: engine, url, namespace; a sandbox in its own colour."""
        target = self.runner.target
        line = Text("→ ")
        if not target:
            return line.append("no target: this runbook restores nothing", style="dim")
        if target.get("sandbox_pid") or target.get("sandbox"):
            line.append("SANDBOX ", style="bold black on green")
        keys = namespace_keys(str(target.get("engine") or target.get("sandbox") or ""))
        namespace = "/".join(str(target[key]) for key in keys if target.get(key))
        line.append(f"{target.get('engine', '?')} {target.get('url', '(starting)')}")
        return line.append(f" {namespace}" if namespace else "", style="bold")

    def _recovery_point(self) -> Text:
        """The recovery point and the actual RPO against its target, on a line of its
        own so the RTO clock beside the target never pushes it out of view."""
        state = self.runner.state
        snapshot = state.snapshot or {}
        if not snapshot.get("recovery_point"):
            chosen = state.facts.get("snapshot_request")
            return Text(
                f"recovery point {chosen} (chosen; verify checks it)"
                if chosen
                else "recovery point: the verify step selects it",
                style="dim",
            )
        point = parse_utc(str(snapshot["recovery_point"]))
        start = state.milestones.get("impact_start") if self.runner.mode == "incident" else None
        start = start or state.started_at
        line = Text(f"recovery point {format_utc(point)[:19].replace('T', ' ')}")
        if start is not None:
            rpo = (start - point).total_seconds()
            style = "bold red" if rpo < 0 else ""
            rpo_target = format_duration(self.runner.runbook.rpo_s)
            line.append(f", RPO {format_duration(rpo)} of {rpo_target}", style=style)
            if rpo < 0:
                line.append(" NEGATIVE: it may hold the damage", style="bold red")
        return line

    def _current_id(self) -> str | None:
        pending = self.runner.advance() if self.running_step is None else None
        return self.running_step or (pending.step.id if pending and pending.step else None)

    def _fill_steps(self) -> None:
        """Rows by plan order; the cursor stays on the step being looked at, else follows
        the current step."""
        table = self.query_one("#steps", DataTable)
        self._filling = True
        table.clear()
        current = self._current_id()
        plan = self.runner.plan()
        for step in plan:
            state = self.runner.state.steps[step.id]
            status = "overridden" if state.overridden else state.status
            marker = "▶ " if step.id == current else "  "
            table.add_row(status_text(status), _duration(state), marker + step.title, key=step.id)
        focus = self.viewed or current or (plan[-1].id if plan else None)
        if focus is not None and table.row_count:
            table.move_cursor(row=table.get_row_index(focus))
        self.call_after_refresh(self._filled)

    def _filled(self) -> None:
        self._filling = False

    def _pending(self) -> Pending:
        return self.runner.advance() if self.running_step is None else Pending("run")

    def _show_step(self, step_id: str | None) -> None:
        if step_id is None:
            self.query_one("#step-title", Static).update(
                Text("every step is settled: press f to finish", style="bold green")
            )
            return
        step = self.runner.runbook.step(step_id)
        state = self.runner.state.steps[step_id]
        title = Text(f"{step.title}  ", style="bold")
        title.append(status_text("overridden" if state.overridden else state.status))
        flags = [
            name for name, on in (("gate", step.gate), ("destructive", step.destructive)) if on
        ]
        title.append(
            f"\n{step.kind if step.kind != 'action' else step.action} · {step.phase}"
            + (f" · {', '.join(flags)}" if flags else ""),
            style="dim",
        )
        if state.blocked:  # what to press, right under the title: it never scrolls away
            what = "o override, " if step.gate else ""
            title.append(f"\nblocked: x retry, {what}s skip (with a reason)", style="bold yellow")
        elif step_id == self.running_step:
            title.append("\nrunning: ctrl+c cancels it (asks first; the run stays resumable)")
        elif step_id == self._current_id() and self.running_step is None:
            title.append(f"\n{_next_key(step)}", style="bold cyan")
        self.query_one("#step-title", Static).update(title)
        instructions = self.runner.instructions(step) or ""
        if instructions != self._shown_instructions:
            self._shown_instructions = instructions
            self.query_one("#instructions", Markdown).update(instructions)
        params = ", ".join(f"{k}={_plain(v)}" for k, v in step.params.items())
        self.query_one("#step-params", Static).update(
            Text(f"with: {params}" if params else "", style="dim")
        )
        summary = Text(state.summary or "")
        for key in ("hint", "diagnosis", "output_tail"):
            if state.details.get(key):
                summary.append(f"\n{key.replace('_', ' ')}: {state.details[key]}", style="dim")
        if state.override_reason:
            summary.append(f"\noverridden: {state.override_reason}", style="yellow")
        if state.skip_reason:
            summary.append(f"\nskipped: {state.skip_reason}", style="dim")
        self.query_one("#step-summary", Static).update(summary)
        self.query_one("#results", ResultTables).show(state.tables)

    def _show_outcome(self) -> None:
        """How a finished run ended, above whichever step is being looked at."""
        outcome = self.query_one("#outcome", Static)
        if self.runner.state.finished is None:
            outcome.add_class("hidden")
            return
        metrics = self.console.services.runs.metrics(self.runner.run_id)
        ok = metrics.status == "succeeded" and metrics.rto_met is not False
        plain = metrics.status_label == metrics.status
        style = "bold green" if ok and plain else "bold yellow" if ok else "bold red"
        text = Text(f"run finished: {metrics.status_label}", style=style)
        rto = f"RTO {format_duration(metrics.rto_s)} of {format_duration(metrics.rto_target_s)}"
        text.append(f"  {rto}" + {True: ", met", False: ", MISSED", None: ""}[metrics.rto_met])
        if metrics.rpo_warning is not None:
            text.append(f"\n{metrics.rpo_warning}", style="bold red")
        elif metrics.rpo_s is not None:
            text.append(f"  RPO {format_duration(metrics.rpo_s)}")
        text.append("\ne export the report · t timeline · q quit\n", style="dim")
        outcome.update(text)
        outcome.remove_class("hidden")

    @on(DataTable.RowHighlighted, "#steps")
    def view_step(self, event: DataTable.RowHighlighted) -> None:
        """Looking at another step keeps it in the panel until the run moves on."""
        if self._filling:
            return
        key = str(event.row_key.value) if event.row_key is not None else None
        self.viewed = key if key != self._current_id() else None
        if key is not None:
            self._show_step(key)

    @on(RecordEvent)
    def record_event(self, message: RecordEvent) -> None:
        """A new record event: log it and redraw, except for progress (the bar shows it)."""
        if message.event.type == "step.progress":
            return
        line = describe(message.event)
        if line is not None:
            self.query_one("#events", RichLog).write(f"{message.event.time:%H:%M:%S}  {line}")
        self.refresh_view()

    @on(StepProgress)
    def show_progress(self, message: StepProgress) -> None:
        progress = message.progress
        bar = self.query_one("#step-progress", ProgressBar)
        bar.remove_class("hidden")
        bar.update(total=progress.total, progress=progress.done)
        text = Text(progress.message)
        eta = (progress.data or {}).get("eta_s")
        if eta is not None:
            text.append(self._forecast(float(eta)))
        self.query_one("#progress-text", Static).update(text)

    def _forecast(self, eta_s: float) -> Text:
        """The RTO this run is heading for: elapsed on the RTO clock, plus what the step
        still needs at its measured rate (steps after it not counted)."""
        clock = self.query_one("#rto", RtoClock)
        target = self.runner.runbook.rto_s
        if clock.start is None:
            return Text("")
        projected = (self.console.services.clock() - clock.start).total_seconds() + eta_s
        verdict = "" if not target else (" on track" if projected <= target else " WILL MISS")
        style = "bold red" if target and projected > target else "bold green"
        target_text = f" of {format_duration(target)}" if target else ""
        return Text(
            f"\nprojected RTO {format_duration(projected)}{target_text}:{verdict} "
            "(this step at its measured rate; later steps not counted)",
            style=style,
        )

    # ----- acting ----------------------------------------------------------------------

    def action_run_step(self) -> None:
        if self.running_step is not None:
            self.notify(f"step {self.running_step} is running", severity="warning")
            return
        pending = self.runner.advance()
        step = pending.step
        if step is None or pending.kind not in ("run", "blocked") or step.is_manual:
            self.notify(
                "no automated step to run now"
                if step is None or step.is_manual
                else f"step {step.id} waits for: {pending.kind}",
                severity="warning",
            )
            return
        if not step.destructive:
            self.start_step(step, confirmed=False)
            return
        typed = (
            (self.runner.runbook.collections[0] if self.runner.runbook.collections else step.id)
            if self.runner.mode == "incident"
            else None
        )
        question = f"Step {step.id} is destructive ({step.title}). Run it?"
        self.app.push_screen(
            ConfirmModal(question, typed),
            lambda yes: self.start_step(step, confirmed=True) if yes else None,
        )

    def start_step(self, step: Step, confirmed: bool) -> None:
        self.running_step = step.id
        self.cancel = threading.Event()
        bar = self.query_one("#step-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.remove_class("hidden")
        self.query_one("#progress-text", Static).update(f"running {step.id}…")
        self.step_worker(step.id, confirmed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="step", description="run a step")
    def step_worker(self, step_id: str, confirmed: bool) -> None:
        try:
            self.runner.run_step(
                step_id,
                confirmed=confirmed,
                cancel=self.cancel,
                progress=lambda progress: self.post_message(StepProgress(step_id, progress)),
            )
        finally:
            self.app.call_from_thread(self.step_done)

    def step_done(self) -> None:
        self.running_step = None
        if self.quit_after_step:
            self.console.leave()
            return
        self.query_one("#step-progress", ProgressBar).add_class("hidden")
        self.query_one("#progress-text", Static).update("")
        self.viewed = None
        self.refresh_view()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer shows the keys that matter now (False hides a key that does
        nothing now); the others, shown or not, are listed in help."""
        if action not in _STATEFUL:
            return True
        running = self.running_step is not None
        pending = self._pending()
        step = pending.step
        relevant = {
            "run_step": not running
            and step is not None
            and not step.is_manual
            and pending.kind in ("run", "blocked", "interrupted"),
            "confirm": pending.kind == "confirm",
            "reject": pending.kind == "confirm" and step is not None and step.kind == "approval",
            "skip": not running and step is not None and pending.kind != "finished",
            "override": pending.kind == "blocked" and step is not None and step.gate,
            "cancel_step": running,
            "finish": pending.kind == "complete",
            "export": self.runner.state.finished is not None,
            "failures": bool(self._failures()),
        }[action]
        return relevant

    def _failures(self) -> list[dict[str, Any]]:
        """The failed checks of the step in view, from its latest attempt."""
        step_id = self.viewed or self._current_id()
        if step_id is None:
            return []
        return [f for f in self.runner.state.steps[step_id].findings if not f.get("passed")]

    def action_failures(self) -> None:
        failures = self._failures()
        if not failures:
            self.notify("no failed check in this step", severity="information")
            return
        step_id = self.viewed or self._current_id()
        text = "\n\n".join("\n".join(describe_finding(finding)) for finding in failures)
        self.app.push_screen(
            TextModal(f"{plural(len(failures), 'failed check')} in step {step_id}", text)
        )

    def action_abandon(self) -> None:
        if self.running_step is not None:
            self.notify("a step is running: cancel it first (Ctrl-C)", severity="warning")
            return
        if self.runner.state.finished is not None:
            self.notify("the run is finished", severity="warning")
            return

        def answered(reason: str | None) -> None:
            if reason:
                self.console.abandon(self.runner.run_id, reason)
                self.refresh_view()

        self.app.push_screen(
            ReasonModal("Abandon this run: why? It will stop waiting for anyone."), answered
        )

    def action_back(self) -> None:
        """Back to the screen below (the run stays open); never to a blank screen."""
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def action_cursor_down(self) -> None:
        self.query_one("#steps", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#steps", DataTable).action_cursor_up()

    def action_cancel_step(self, then_quit: bool = False) -> None:
        """Stop the running step after asking (Ctrl-C and q agree on this)."""
        if self.running_step is None:
            if then_quit:
                self.console.leave()
            else:
                self.notify("no step is running", severity="warning")
            return
        step_id = self.running_step
        leave = " and leave the console" if then_quit else ""

        def answered(yes: bool | None) -> None:
            if yes and self.running_step == step_id:
                self.quit_after_step = then_quit
                self.cancel.set()
                self.notify(f"cancelling {step_id}…")

        self.app.push_screen(
            ConfirmModal(
                f"Step {step_id} is running. Cancel it{leave}? Its work stops where it is; "
                "the run stays resumable and the step can be run again."
            ),
            answered,
        )

    def action_quit(self) -> None:
        self.action_cancel_step(then_quit=True)

    def action_confirm(self) -> None:
        pending = self._pending()
        if pending.kind != "confirm" or pending.step is None:
            self.notify("no manual step waits for confirmation", severity="warning")
            return
        if self._safely(self.runner.confirm, pending.step.id):
            self.viewed = None
            self.refresh_view()

    def action_reject(self) -> None:
        pending = self._pending()
        if pending.kind != "confirm" or pending.step is None or pending.step.kind != "approval":
            self.notify("no approval waits for an answer", severity="warning")
            return
        step_id = pending.step.id
        self._with_reason(
            f"Reject {step_id}: why?", lambda reason: self.runner.reject(step_id, reason)
        )

    def action_skip(self) -> None:
        pending = self._pending()
        if pending.step is None or pending.kind == "finished" or self.running_step:
            self.notify("nothing to skip now", severity="warning")
            return
        step_id = pending.step.id
        self._with_reason(f"Skip {step_id}: why?", lambda reason: self.runner.skip(step_id, reason))

    def action_override(self) -> None:
        pending = self._pending()
        if pending.kind != "blocked" or pending.step is None or not pending.step.gate:
            self.notify("no failed gate to override", severity="warning")
            return
        step_id = pending.step.id
        self._with_reason(
            f"Override the failed gate {step_id}: why is it safe to go on?",
            lambda reason: self.runner.override(step_id, reason),
        )

    def action_note(self) -> None:
        self._with_reason("Add a note to the record", self.runner.note, placeholder="what happened")

    def action_milestone(self) -> None:
        def chosen(answer: object) -> None:
            if answer:
                name, moment = answer  # type: ignore[misc]
                self._safely(self.runner.milestone, name, moment, reason="set by the operator")
                self.refresh_view()

        self.app.push_screen(MilestoneModal(self.console.services.clock()), chosen)

    def action_finish(self) -> None:
        pending = self._pending()
        if pending.kind != "complete":
            self.notify("steps are not all settled yet", severity="warning")
            return
        status = self._safely(self.runner.finish)
        if status is None:
            return
        self.runner.release_sandbox()
        self.notify(
            f"run finished: {status}", severity="information" if status == "succeeded" else "error"
        )
        self.refresh_view()

    def action_export(self) -> None:
        path = self.console.export_report(self.runner.run_id)
        self.notify(f"report written to {path}")

    def action_timeline(self) -> None:
        self.console.show_timeline()

    def action_help(self) -> None:
        self.app.push_screen(
            HelpModal(
                help_keys(self.BINDINGS),
                "The guided walk: run automated steps, confirm manual ones; a "
                "failed gate blocks until it is retried, skipped or overridden "
                "with a reason. Everything is written to the incident record.",
            )
        )

    def ask_interrupted(self, step_id: str) -> None:
        def chosen(choice: str | None) -> None:
            if choice == "rerun":
                step = self.runner.rerun_interrupted()
                if not step.is_manual:
                    self.start_step(step, confirmed=step.destructive)
            elif choice == "done":
                self.runner.mark_interrupted_done("marked done in the console")
            self.refresh_view()

        self.app.push_screen(
            ChoiceModal(
                f"Step {step_id} was interrupted when the console or drill stopped. What now?",
                [
                    ("rerun", "Re-run it (a data restore continues after its last checkpoint)"),
                    ("done", "Mark it done (I checked its work is complete)"),
                ],
            ),
            chosen,
        )

    def _safely(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A runner call from a key: what it returns (True for None), or None after the
        error modal when the record or the run refuses it (a full disk, say)."""
        try:
            result = call(*args, **kwargs)
        except DrconsoleError as error:
            self.console.show_error(error.message, error.hint)
            return None
        return True if result is None else result

    def _with_reason(self, title: str, act: object, placeholder: str = "why") -> None:
        def answered(reason: str | None) -> None:
            if reason and self._safely(act, reason) is not None:  # type: ignore[arg-type]
                self.viewed = None
                self.refresh_view()

        self.app.push_screen(ReasonModal(title, placeholder), answered)


def _next_key(step: Step) -> str:
    """What to press for the step that is next, and what it means."""
    if step.kind == "approval":
        return "next: c approves it, r rejects it (with a reason)"
    if step.is_manual:
        return "next: do this, then press c to confirm it is done (recorded with your name)"
    if step.destructive:
        return "next: x runs it (it changes the target: you will be asked first)"
    return "next: x runs it; s skips it (with a reason)"


def _duration(state: StepState) -> str:
    if state.started_at is None:
        return ""
    if state.finished_at is None:
        return "…"
    return format_duration((state.finished_at - state.started_at).total_seconds())


def _plain(value: Any) -> str:
    """A parameter as a reader writes it: text as is, anything else as JSON (never
    Python's {'tenant': ...})."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
