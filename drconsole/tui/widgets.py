"""Small widgets with no domain logic: the RTO clock, the Gantt chart, result tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.text import Text
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Static

from drconsole.incident.metrics import RunMetrics
from drconsole.timefmt import format_duration

PHASE_COLOURS = {
    "prep": "grey62",
    "verify": "cyan",
    "schema": "blue",
    "data": "magenta",
    "validation": "green",
    "permissions": "yellow",
    "cutover": "bright_blue",
    "cleanup": "grey50",
}
STATUS_GLYPHS = {
    "succeeded": ("✓", "green"),
    "overridden": ("!", "yellow"),
    "failed": ("✗", "red"),
    "timed_out": ("⧗", "red"),
    "cancelled": ("■", "red"),
    "skipped": ("↷", "grey62"),
    "running": ("▶", "cyan"),
    "waiting": ("…", "yellow"),
    "interrupted": ("⚡", "red"),
    "pending": ("·", "grey50"),
    "needs_operator": ("…", "yellow"),
    "abandoned": ("■", "grey62"),
}


KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "escape": "Esc",
    "enter": "Enter",
    "ctrl+c": "Ctrl-C",
    "ctrl+q": "Ctrl-Q",
    "f5": "F5",
}


def key_label(key: str) -> str:
    """A key as people write it: ``?``, ``/``, ``Esc``, ``Ctrl-C``."""
    return KEY_NAMES.get(key, key)


def help_keys(bindings: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    """(key, what it does) for a help screen, from a screen's bindings, and the command
    palette's key, which a narrow footer leaves out."""
    return [
        (key_label(binding.key), binding.tooltip or binding.description)
        for binding in bindings
        if binding.description
    ] + [("Ctrl-P", "command palette: every action by name")]


def status_text(status: str) -> Text:
    glyph, colour = STATUS_GLYPHS.get(status, ("?", "white"))
    return Text(f"{glyph} {status.replace('_', ' ')}", style=colour)


def run_status_text(status: str, label: str, decisions: int | None = None) -> Text:
    """A run's status; one that hides a decision (override, skip, fallback, negative
    RPO) is never shown as a plain green success. With ``decisions`` it is compact
    (``! succeeded +2``) for a narrow column; the full label is shown beside it."""
    if label == status:
        return status_text(status)
    return Text(f"! {status} +{decisions}" if decisions else f"! {label}", style="bold yellow")


class RtoClock(Static):
    """Elapsed time since the clock start against the RTO target; green, then yellow from
    75% of the target, red past it. Stops at service_restored."""

    def __init__(self, now: Callable[[], datetime], **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.now = now
        self.start: datetime | None = None
        self.target_s: float | None = None
        self.stopped: datetime | None = None

    def on_mount(self) -> None:
        self.set_interval(1.0, self.tick)
        self.tick()

    def set_times(
        self, start: datetime | None, target_s: float | None, stopped: datetime | None
    ) -> None:
        self.start, self.target_s, self.stopped = start, target_s, stopped
        self.tick()

    def tick(self) -> None:
        if self.start is None:
            self.update("RTO -")
            return
        elapsed = ((self.stopped or self.now()) - self.start).total_seconds()
        target = self.target_s
        colour = "green"
        if target:
            colour = "red" if elapsed > target else "yellow" if elapsed > 0.75 * target else "green"
        label = "RTO" if self.stopped is None else "RTO (restored)"
        target_text = f" / {format_duration(target)}" if target else ""
        self.update(
            Text(f"{label} {format_duration(elapsed)}{target_text}", style=f"bold {colour}")
        )


class GanttChart(Widget):
    """Steps of a run as bars on one time axis, coloured by phase; people's waiting time
    on its own row; milestones marked below."""

    DEFAULT_CSS = "GanttChart { height: auto; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.metrics: RunMetrics | None = None

    def show(self, metrics: RunMetrics | None) -> None:
        self.metrics = metrics
        self.refresh(layout=True)

    def render(self) -> Text:
        metrics = self.metrics
        if metrics is None or metrics.started_at is None:
            return Text("no run selected", style="dim")
        label_width = 18
        width = max(10, self.size.width - label_width - 2)
        spans = [span for step in metrics.steps for span in step.intervals]
        end = max(
            [b for _, b in spans] + [m for m in metrics.milestones.values()] + [metrics.started_at]
        )
        origin = min([a for a, _ in spans] + [metrics.clock_start or metrics.started_at])
        total = max((end - origin).total_seconds(), 1.0)

        def column(moment: datetime) -> int:
            return min(
                width - 1, max(0, int((moment - origin).total_seconds() / total * (width - 1)))
            )

        text = Text()
        for step in metrics.steps:
            row = [" "] * width
            styles: list[str | None] = [None] * width
            for begin, finish in step.intervals:
                for x in range(column(begin), column(finish) + 1):
                    row[x], styles[x] = "█", PHASE_COLOURS.get(step.phase, "white")
            text.append(f"{step.id[: label_width - 1]:<{label_width}}")
            for char, style in zip(row, styles, strict=True):
                text.append(char, style=style)
            text.append("\n")
        waiting = [" "] * width
        for begin, finish in metrics.waiting_intervals:
            for x in range(column(begin), column(finish) + 1):
                waiting[x] = "░"
        text.append(f"{'waiting (people)':<{label_width}}")
        text.append("".join(waiting), style="yellow")
        text.append("\n")
        marks = [" "] * width
        for name, moment in metrics.milestones.items():
            marks[column(moment)] = name[0].upper()
        text.append(f"{'milestones':<{label_width}}")
        text.append("".join(marks), style="bold")
        text.append(f"\n{'':<{label_width}}{_axis(total, width)}", style="dim")
        if metrics.milestones:
            legend = "  ".join(f"{name[0].upper()} {name}" for name in metrics.milestones)
            text.append(f"\n{'':<{label_width}}{legend}", style="dim")
        return text

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        if self.metrics is None:
            return 3
        return len(self.metrics.steps) + 4 + (1 if self.metrics.milestones else 0)


TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


def _axis(total: float, width: int) -> str:
    """Time since the start under the chart: a label every round interval (1m, 5m, 15m...)
    that leaves room between labels, each at its column."""
    step = next((s for s in TICK_STEPS if total / s <= max(width // 10, 1)), TICK_STEPS[-1])
    line = [" "] * width
    free = 0
    for tick in range(0, int(total) + 1, step):
        label = _tick_label(tick)
        at = min(width - len(label), round(tick / total * (width - 1)))
        if at >= free:
            line[at : at + len(label)] = label
            free = at + len(label) + 2
    return "".join(line)


def _tick_label(seconds: int) -> str:
    """A round time as short as it goes: 0, 30s, 5m, 1h30m, 2d."""
    if seconds == 0:
        return "0"
    label = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            label += f"{count}{unit}"
    return label


class ResultTables(Vertical):
    """An action's result tables (title, columns, rows) as DataTables. The core puts the
    verdict first and the failures on top; a cell is cut at CELL_WIDTH so every column
    stays on screen (the failed checks in full are one key away). Cells are plain text:
    a subject like ``docs[tenant acme]`` must not be read as markup and lose its tenant."""

    DEFAULT_CSS = (
        "ResultTables { height: auto; } ResultTables DataTable { height: auto; max-height: 12; }"
    )
    CELL_WIDTH = 40

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.shown: list[dict[str, object]] | None = None

    def show(self, tables: list[dict[str, object]]) -> None:
        if tables == self.shown:  # the view refreshes often: remount only what changed
            return
        self.shown = tables
        self.remove_children()
        for table in tables:
            widget: DataTable[Text] = DataTable(show_cursor=False, zebra_stripes=True)
            self.mount(Static(Text(str(table.get("title", "")), style="bold")))
            self.mount(widget)
            widget.add_columns(*[str(c) for c in table.get("columns", [])])  # type: ignore[union-attr]
            for row in table.get("rows", []):  # type: ignore[union-attr]
                widget.add_row(*[Text(_cut(str(cell), self.CELL_WIDTH)) for cell in row])


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
