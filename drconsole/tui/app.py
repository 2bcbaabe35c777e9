"""The console app and the one factory that builds it for the CLI and for tests."""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.worker import Worker, WorkerState

from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.catalog import CatalogView, load_catalog
from drconsole.catalog.open import open_runbook_catalog, open_store
from drconsole.catalog.store import ObjectStore
from drconsole.errors import DrconsoleError
from drconsole.incident.metrics import RunMetrics
from drconsole.incident.mirror import fetch_runs
from drconsole.incident.report import markdown_report
from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runbook.model import Runbook
from drconsole.runner import Runner
from drconsole.timefmt import format_duration, utc_now
from drconsole.tui.modals import (
    ChoiceModal,
    ErrorModal,
    ImpactModal,
    ReasonModal,
    SnapshotPicker,
)


@dataclass
class Services:
    """What the console works with, built by the CLI or a test."""

    runs: RunStore
    clock: Callable[[], datetime] = utc_now
    catalog_url: str | None = None
    catalog_options: dict[str, Any] = field(default_factory=dict)
    runbook_path: Path | None = None
    target: dict[str, Any] = field(default_factory=dict)
    _runbook: Runbook | None = None

    def runbook(self) -> Runbook | None:
        if self._runbook is None and self.runbook_path is not None:
            self._runbook = load_runbook(self.runbook_path)
        return self._runbook

    def has_catalog(self) -> bool:
        runbook = self.runbook()
        return bool(self.catalog_url or (runbook and runbook.catalog.get("url")))

    def open_store(self) -> ObjectStore:
        """The catalog given with --catalog, else the runbook's (perhaps a sandbox S3)."""
        if self.catalog_url:
            options = {k: v for k, v in self.catalog_options.items() if v}
            return open_store(self.catalog_url, **options)
        runbook = self.runbook()
        if runbook is None or not runbook.catalog.get("url"):
            raise DrconsoleError(
                "no catalog", "start the console with --catalog URL or a runbook with one"
            )
        return open_runbook_catalog(runbook)

    def catalog_key(self) -> CatalogKey | None:
        """The runbook's catalog key when the catalog is the runbook's and it names one."""
        runbook = self.runbook()
        reference = None if self.catalog_url or runbook is None else runbook.catalog_key()
        return CatalogKey.from_reference(reference) if reference else None

    def load_catalog(self) -> CatalogView:
        """The catalog listed, its manifests checked with the catalog key if there is one."""
        return load_catalog(self.open_store(), self.catalog_key())

    def all_runs(self) -> tuple[list[RunMetrics], list[str]]:
        """This machine's runs, and those other machines copied into the catalog."""
        runs, unreadable = self.runs.all_metrics()
        if not self.has_catalog():
            return runs, unreadable
        try:
            with tempfile.TemporaryDirectory(prefix="drconsole-runs-") as folder:
                fetch_runs(self.open_store(), Path(folder))
                shared, _ = RunStore(Path(folder)).all_metrics()
        except DrconsoleError as error:
            return runs, [*unreadable, f"the catalog's runs could not be read: {error.message}"]
        known = {run.run_id for run in runs}
        merged = runs + [run for run in shared if run.run_id not in known]
        merged.sort(key=lambda run: (run.started_at is None, run.started_at))
        return merged, unreadable

    def allow_unsigned(self) -> bool:
        runbook = self.runbook()
        return bool(runbook and runbook.catalog.get("allow_unsigned"))

    def catalog_label(self) -> str:
        """The catalog as the operator wrote it (flag or runbook)."""
        runbook = self.runbook()
        if self.catalog_url or runbook is None:
            return self.catalog_url or "no catalog"
        if runbook.catalog.get("sandbox"):
            return f"{runbook.catalog['url']} (sandbox S3 in {runbook.catalog['folder']})"
        return runbook.catalog.get("url") or "no catalog"

    def rpo_s(self) -> float | None:
        runbook = self.runbook()
        return runbook.rpo_s if runbook else None


class DrconsoleCommands(Provider):
    """The command palette: the main actions of the console."""

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, DrconsoleApp)
        commands = [
            ("Open the catalog", app.show_catalog),
            ("Open the timeline of past runs", app.show_timeline),
            ("Start a drill of the runbook", lambda: app.begin("drill")),
            ("Start an incident run of the runbook", lambda: app.begin("incident")),
        ]
        matcher = self.matcher(query)
        for label, action in commands:
            if (score := matcher.match(label)) > 0:
                yield Hit(score, matcher.highlight(label), action)


class DrconsoleApp(App[None]):
    TITLE = "drconsole"
    CSS_PATH = "drconsole.tcss"
    COMMANDS = App.COMMANDS | {DrconsoleCommands}
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False)]

    def __init__(
        self, services: Services, *, resume: str | None = None, start: str = "catalog"
    ) -> None:
        super().__init__()
        self.services = services
        self.resume = resume
        self.start = start
        self.runner: Runner | None = None
        self._pending_mode = "drill"

    def on_mount(self) -> None:
        if self.resume:
            self.show_timeline()
            self.resume_worker(self.resume)
            return
        if self.start == "catalog" and self.services.has_catalog():
            self.show_catalog()
        else:
            self.show_timeline()
        self.offer_unfinished()

    @work(thread=True, exit_on_error=False, group="runs", description="look for unfinished runs")
    def offer_unfinished(self) -> None:
        """A run left waiting for a person or cut off is offered first: the operator
        resumes it, or abandons it with a reason, or goes on."""
        runs, _ = self.services.runs.all_metrics()
        waiting = [run for run in runs if run.status in ("needs_operator", "interrupted")]
        if waiting:
            self.call_from_thread(self._offer, waiting[-1], len(waiting))

    def _offer(self, run: RunMetrics, count: int) -> None:
        what = "waits for a person" if run.status == "needs_operator" else "was cut off"
        others = f" ({count - 1} more unfinished in the timeline)" if count > 1 else ""

        def chosen(choice: str | None) -> None:
            if choice == "resume":
                self.resume_worker(run.run_id)
            elif choice == "abandon":
                self.push_screen(
                    ReasonModal(f"Abandon run {run.run_id}: why?"),
                    lambda reason: self.abandon(run.run_id, reason) if reason else None,
                )

        self.push_screen(
            ChoiceModal(
                f"Run {run.run_id} ({run.runbook_id}, {run.mode}) {what}{others}.",
                [
                    ("resume", "Resume it now"),
                    ("abandon", "Abandon it, with a reason (it stops waiting)"),
                    ("later", "Not now (the timeline resumes it with Enter)"),
                ],
            ),
            chosen,
        )

    def abandon(self, run_id: str, reason: str) -> None:
        """End an unfinished run with a reason: the open one, or one from its record."""
        try:
            if self.runner is not None and self.runner.run_id == run_id:
                self.runner.abandon(reason)
                self.runner.release_sandbox()
            else:
                Runner.abandon_run(self.services.runs, run_id, reason, clock=self.services.clock)
        except DrconsoleError as error:
            self.show_error(error.message, error.hint)
            return
        self.notify(f"run {run_id} abandoned")

    def show_catalog(self) -> None:
        from drconsole.tui.catalog_screen import CatalogScreen

        self.push_screen(CatalogScreen())

    def show_timeline(self) -> None:
        from drconsole.tui.timeline_screen import TimelineScreen

        self.push_screen(TimelineScreen())

    def start_run(self, mode: str, snapshot_id: str | None) -> None:
        runbook = self.services.runbook()
        if runbook is None:
            self.show_error("no runbook to run", "start the console with --runbook FILE")
            return
        if self.runner is not None and self.runner.state.finished is None:
            self.show_error(
                f"run {self.runner.run_id} is still open", "finish it before starting another"
            )
            return
        if mode != "incident":
            self.start_worker(runbook, mode, snapshot_id)
            return

        def impact(moment: datetime | None) -> None:
            if moment is not None:
                self.start_worker(runbook, mode, snapshot_id, moment)

        self.push_screen(ImpactModal(self.services.clock()), impact)

    @work(thread=True, exclusive=True, exit_on_error=False, group="run", description="start a run")
    def start_worker(
        self,
        runbook: Runbook,
        mode: str,
        snapshot_id: str | None,
        impact_start: datetime | None = None,
    ) -> None:
        """Runner.start may start a sandbox server: off the app thread, it never freezes."""
        runner = Runner.start(
            runbook,
            mode,
            self.services.runs,
            clock=self.services.clock,
            target=self.services.target or None,
            snapshot_id=snapshot_id,
            impact_start=impact_start,
        )
        self.call_from_thread(self.open_run, runner)

    @work(thread=True, exclusive=True, exit_on_error=False, group="run", description="resume")
    def resume_worker(self, reference: str) -> None:
        """Runner.resume may serve a sandbox target again: off the app thread too."""
        runner = Runner.resume(self.services.runs, reference, clock=self.services.clock)
        self.call_from_thread(self.open_run, runner)

    def begin(self, mode: str) -> None:
        """Start a run of the runbook: from a recovery point chosen in a picker when it
        has a catalog, at once when it has none (a runbook of commands and manual steps)."""
        if self.services.runbook() is None:
            self.show_error("no runbook to run", "start the console with --runbook FILE")
        elif self.services.has_catalog():
            self._pending_mode = mode
            self.pick_snapshot()
        else:
            self.start_run(mode, None)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="catalog",
        description="list the catalog",
    )
    def pick_snapshot(self) -> None:
        view = self.services.load_catalog()
        now = self.services.clock()
        choices = []
        for manifest in reversed(view.ordered()):
            _, findings = view.chain(manifest.id)
            refused = view.rejection(manifest, now, allow_unsigned=self.services.allow_unsigned())
            age = format_duration((now - manifest.recovery_point).total_seconds())
            choices.append(
                (manifest.id, f"{manifest.kind}, age {age}", not findings and not refused)
            )
        self.call_from_thread(self._show_picker, choices)

    def _show_picker(self, choices: list[tuple[str, str, bool]]) -> None:
        mode = self._pending_mode

        def chosen(snapshot_id: str | None) -> None:
            if snapshot_id:
                self.start_run(mode, snapshot_id)

        self.push_screen(
            SnapshotPicker(f"Start a {mode} from which recovery point?", choices), chosen
        )

    def open_run(self, runner: Runner) -> None:
        from drconsole.tui.run_screen import RunScreen

        self.runner = runner
        self.push_screen(RunScreen(runner))

    def export_report(self, run_id: str) -> Path:
        runs = self.services.runs
        path = runs.folder / f"{run_id}.md"
        path.write_text(
            markdown_report(runs.metrics(run_id), runs.read(run_id).events), encoding="utf-8"
        )
        return path

    def show_error(self, message: str, hint: str | None = None) -> None:
        self.push_screen(ErrorModal(message, hint))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The app's own workers; the screens pass theirs to ``report_worker_error``."""
        if event.state == WorkerState.ERROR:
            self.report_worker_error(event.worker)

    def report_worker_error(self, worker: Worker) -> None:
        """Every worker failure ends here, as an error modal (never a traceback)."""
        error = worker.error
        if isinstance(error, DrconsoleError):
            self.show_error(error.message, error.hint)
        else:
            self.show_error(
                f"{worker.description or 'work'} failed: {type(error).__name__}: {error}"
            )

    async def action_quit(self) -> None:
        """Ctrl-Q: like q on the run screen, a running step is cancelled first (asked)."""
        screen = self.screen
        if getattr(screen, "running_step", None):
            screen.action_cancel_step(then_quit=True)  # type: ignore[attr-defined]
            return
        self.leave()

    def leave(self) -> None:
        """Leave the console; an unfinished run is paused, resumable."""
        self.close_run()
        self.exit()

    def close_run(self) -> None:
        """Leave an unfinished run resumable (paused) and release its record."""
        if self.runner is None:
            return
        if self.runner.state.finished is None:
            self.runner.pause("console closed")
        self.runner.close()
        self.runner = None


def make_app(
    *,
    runs_dir: Path,
    catalog: str | None = None,
    catalog_options: dict[str, Any] | None = None,
    runbook: Path | None = None,
    target: dict[str, Any] | None = None,
    resume: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    start: str = "catalog",
) -> DrconsoleApp:
    """The console, for the CLI and for tests alike."""
    services = Services(
        RunStore(runs_dir), clock, catalog, dict(catalog_options or {}), runbook, dict(target or {})
    )
    if runbook is not None:
        services.runbook()  # a broken runbook is reported before the screen opens
    services.runs.ensure()
    return DrconsoleApp(services, resume=resume, start=start)


def run_console(app: DrconsoleApp, **options: Any) -> None:
    """Run the console in this process. What exists by now (modules, the app) lives as
    long as the process, so it is moved out of the collector's sight first and later
    collections skip it: a catalog of 2,000 snapshots lists 70 ms sooner."""
    gc.freeze()
    app.run(**options)
