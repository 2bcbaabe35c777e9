"""Past runs, drills and incidents together: RTO against target, a trend, and the
selected run as a Gantt chart with waiting time, overrides and notes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Sparkline, Static

from drconsole.incident.metrics import RunMetrics
from drconsole.timefmt import format_duration, format_utc
from drconsole.tui.messages import RunsLoaded
from drconsole.tui.modals import HelpModal, ReasonModal
from drconsole.tui.screen_base import ConsoleScreen
from drconsole.tui.widgets import PHASE_COLOURS, GanttChart, help_keys, run_status_text

if TYPE_CHECKING:
    from drconsole.tui.app import DrconsoleApp


# What a reader scans for first; the long run id last. Fixed widths: columns never jump
# as rows arrive. A narrow terminal (80x24) keeps the columns that hold the verdict, with
# a shorter date, so none of them is cut off.
WIDE_COLUMNS = (
    ("started (UTC)", 19),
    ("runbook", 18),
    ("mode", 8),
    ("status", 17),
    ("RTO", 8),
    ("target", 8),
    ("met", 4),
    ("run", 48),
)
NARROW_COLUMNS = (
    ("started UTC", 11),
    ("runbook", 15),
    ("mode", 8),
    ("status", 17),
    ("RTO", 8),
    ("met", 4),
)
FINISHED = ("succeeded", "failed", "abandoned")


class TimelineScreen(ConsoleScreen):
    AUTO_FOCUS = "#runs"
    BINDINGS = [
        Binding("d", "begin('drill')", "Drill", tooltip="start a drill of the runbook"),
        Binding(
            "i",
            "begin('incident')",
            "Incident",
            tooltip="start an incident run of the runbook (it asks when impact began)",
        ),
        Binding(
            "enter", "resume", "Resume", priority=True, tooltip="reopen the selected unfinished run"
        ),
        Binding(
            "A", "abandon", "Abandon", tooltip="end the selected unfinished run, with a reason"
        ),
        Binding("e", "export", "Report", tooltip="write the selected run's Markdown report"),
        Binding("f5", "reload", "Reload", show=False),
        Binding("escape", "back", "Back"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunMetrics] = []
        self.loaded = False
        self.columns = WIDE_COLUMNS

    @property
    def console(self) -> DrconsoleApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="timeline"):
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield Static(id="trend-label", classes="label")
            yield Sparkline([], id="trend")
            with VerticalScroll(id="run-detail"):
                yield Static(id="run-summary")
                yield GanttChart(id="gantt")
                yield Static(id="legend")
                yield Static(id="decisions")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "timeline of drills and incidents"
        legend = Text("phases: ")
        for phase, colour in PHASE_COLOURS.items():
            legend.append("██ ", style=colour)
            legend.append(f"{phase}  ")
        legend.append("░░ waiting for people", style="yellow")
        self.query_one("#legend", Static).update(legend)
        self.action_reload()

    def on_resize(self, event: events.Resize) -> None:
        columns = NARROW_COLUMNS if event.size.width < self.STACK_BELOW else WIDE_COLUMNS
        if columns is not self.columns:
            self.columns = columns
            self._fill_table()

    def action_reload(self) -> None:
        self.load()

    @work(
        thread=True, exclusive=True, exit_on_error=False, group="runs", description="read past runs"
    )
    def load(self) -> None:
        runs, unreadable = self.console.services.all_runs()
        self.post_message(RunsLoaded(runs, unreadable))

    @on(RunsLoaded)
    def show_runs(self, message: RunsLoaded) -> None:
        self.runs = message.runs
        self.loaded = True
        self._fill_table()
        for problem in message.unreadable:
            self.notify(problem, severity="warning")
        if self.runs:
            self.query_one("#runs", DataTable).move_cursor(row=len(self.runs) - 1)
            self.show_run(self.runs[-1])
        else:
            self.query_one("#run-summary", Static).update(Text(self._no_runs(), style="dim"))

    def _fill_table(self) -> None:
        """The runs in the columns the terminal has room for; the cursor stays put."""
        table = self.query_one("#runs", DataTable)
        row = table.cursor_row
        table.clear(columns=True)
        for label, width in self.columns:
            table.add_column(label, width=width)
        for run in self.runs:
            cells = _cells(run)
            table.add_row(*(cells[label] for label, _ in self.columns), key=run.run_id)
        if self.runs:
            table.move_cursor(row=min(row, len(self.runs) - 1))

    def _no_runs(self) -> str:
        runbook = self.console.services.runbook()
        if runbook is None:
            return "no runs yet; start the console with --runbook FILE to run one"
        return f"no runs yet; d starts a drill of “{runbook.title}”, i an incident run"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that would do nothing are not offered: starting a run needs a runbook,
        resuming or abandoning one an unfinished run selected, going back a screen behind."""
        if action == "begin":
            return self.console.services.runbook_path is not None
        if action == "back":  # the first screen has nothing behind it
            return len(self.app.screen_stack) > 2
        if action in ("resume", "abandon"):
            run = self.selected()
            return run is not None and run.status not in FINISHED
        return True

    def action_begin(self, mode: str) -> None:
        self.console.begin(mode)

    @on(DataTable.RowHighlighted, "#runs")
    def select_run(self, event: DataTable.RowHighlighted) -> None:
        run = next(
            (r for r in self.runs if event.row_key is not None and r.run_id == event.row_key.value),
            None,
        )
        if run is not None:
            self.show_run(run)
        self.refresh_bindings()

    def _show_trend(self, selected: RunMetrics) -> None:
        """The RTO of the runs of the selected run's runbook in its mode, oldest first: a
        drill of one runbook says nothing about an incident run of another. A trend
        needs two."""
        rtos = [
            run.rto_s
            for run in self.runs
            if run.rto_s is not None
            and (run.runbook_id, run.mode) == (selected.runbook_id, selected.mode)
        ]
        trend = self.query_one("#trend", Sparkline)
        trend.data = rtos
        trend.display = len(rtos) >= 2
        what = f"{selected.runbook_id} {selected.mode}s"
        label = (
            f"RTO of {len(rtos)} {what} (oldest → newest): "
            f"{format_duration(min(rtos))} to {format_duration(max(rtos))}"
            + (
                f", target {format_duration(selected.rto_target_s)}"
                if selected.rto_target_s
                else ""
            )
            if len(rtos) >= 2
            else f"RTO trend of {what}: shown once two of them have restored service"
        )
        self.query_one("#trend-label", Static).update(label)

    def show_run(self, run: RunMetrics) -> None:
        self._show_trend(run)
        summary = Text(f"{run.runbook_title} — {run.mode}, {run.status_label}\n", style="bold")
        if run.rpo_warning:
            summary.append(f"{run.rpo_warning}\n", style="bold red")
        summary.append(
            f"RTO {format_duration(run.rto_s)} of {format_duration(run.rto_target_s)}, "
            f"RPO {format_duration(run.rpo_s)} of {format_duration(run.rpo_target_s)}, "
            f"waiting for people {format_duration(run.waiting_s)}"
        )
        self.query_one("#run-summary", Static).update(summary)
        self.query_one("#gantt", GanttChart).show(run)
        decisions = Text()
        for item in run.overrides:
            decisions.append(
                f"override {item['step_id']} by {item['actor']}: {item['reason']}\n", style="yellow"
            )
        for item in run.skipped:
            decisions.append(
                f"skip {item['step_id']} by {item['actor']}: {item['reason']}\n", style="dim"
            )
        for note in run.notes:
            decisions.append(
                f"note {format_utc(note['time'])[11:19]} {note['actor']}: {note['text']}\n"
            )
        self.query_one("#decisions", Static).update(decisions)

    def selected(self) -> RunMetrics | None:
        table = self.query_one("#runs", DataTable)
        if not self.runs or table.cursor_row is None:
            return None
        return self.runs[min(table.cursor_row, len(self.runs) - 1)]

    def action_export(self) -> None:
        run = self.selected()
        if run is None:
            self.notify("no run selected", severity="warning")
            return
        self.notify(f"report written to {self.console.export_report(run.run_id)}")

    def _unfinished(self) -> RunMetrics | None:
        run = self.selected()
        if run is None or run.status in FINISHED:
            self.notify("select an unfinished run (interrupted or waiting)", severity="warning")
            return None
        return run

    def action_resume(self) -> None:
        if (run := self._unfinished()) is not None:
            self.console.resume_worker(run.run_id)

    def action_abandon(self) -> None:
        if (run := self._unfinished()) is None:
            return

        def answered(reason: str | None) -> None:
            if reason:
                self.console.abandon(run.run_id, reason)
                self.action_reload()

        self.app.push_screen(
            ReasonModal(f"Abandon run {run.run_id}: why? It will stop waiting for anyone."),
            answered,
        )

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(
            HelpModal(
                help_keys(self.BINDINGS),
                "Past drills and incidents: RTO against target, and each run's "
                "steps on one time axis, with waiting time apart.",
            )
        )


def _cells(run: RunMetrics) -> dict[str, str | Text]:
    """Every column's cell for one run, by column label."""
    met = "-" if run.rto_met is None else ("yes" if run.rto_met else "NO")
    started = format_utc(run.started_at) if run.started_at else "-"
    return {
        "started (UTC)": started[:19],
        "started UTC": started[5:16].replace("T", " ") if run.started_at else "-",
        "runbook": run.runbook_id,
        "mode": run.mode,
        "status": run_status_text(run.status, run.status_label, sum(run.decisions.values())),
        "RTO": format_duration(run.rto_s),
        "target": format_duration(run.rto_target_s),
        "met": Text(met, style={True: "green", False: "red", None: "dim"}[run.rto_met]),
        "run": run.run_id,
    }
