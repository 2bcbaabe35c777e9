"""Console flows that need no database: choosing a recovery point, keys in modals."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual.widgets import Label

from drconsole.incident.record import read_record
from drconsole.tui.modals import ChoiceModal, ConfirmModal, ImpactModal, SnapshotPicker
from drconsole.tui.run_screen import RunScreen

from test_tui_snapshots import NOW, _past_runs, world  # noqa: F401 - the fixture

SIZE = (120, 36)


async def test_starting_a_run_from_a_chosen_recovery_point(world: dict[str, Any]) -> None:  # noqa: F811
    from drconsole.tui.app import make_app

    app = make_app(
        runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW, start="timeline"
    )
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.begin("incident")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, SnapshotPicker)
        await pilot.press("down", "enter")  # the second newest
        await pilot.pause()
        assert isinstance(app.screen, ImpactModal), "an incident asks when impact began"
        await pilot.press(*"tomorrow", "enter")
        await pilot.pause()
        problem = str(app.screen.query_one("#when-problem", Label).render())
        assert "now, a local time (15:55), a time ago (10m ago)" in problem, "said in place"
        await pilot.press(*(["backspace"] * 8), *"10m ago", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        runner = app.runner
        assert runner is not None and runner.mode == "incident"
        events = read_record(runner.record_path).events
        assert events[0].data["snapshot_request"] == "20261122T160000Z-kb-I"
        impact = next(e for e in events if e.type == "milestone")
        assert impact.data["name"] == "impact_start" and (NOW - impact.time).total_seconds() == 600


async def test_typed_confirmation_refuses_anything_but_the_word(tmp_path: Path) -> None:
    from textual.app import App

    answers: list[bool] = []

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(
                ConfirmModal("Replace help_articles?", typed="help_articles"), answers.append
            )

    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("y", "enter")  # "y" is a letter typed, not a yes
        await pilot.pause()
        assert answers == [] and isinstance(app.screen, ConfirmModal)
        await pilot.press("backspace", *"help_articles", "enter")
        await pilot.pause()
        assert answers == [True]


async def test_the_catalog_opens_on_the_newest_snapshot(world: dict[str, Any]) -> None:  # noqa: F811
    from drconsole.tui.app import make_app
    from drconsole.tui.catalog_screen import CatalogScreen

    app = make_app(runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, CatalogScreen)
        for _ in range(100):
            await app.workers.wait_for_complete()
            await pilot.pause(0.02)
            if screen.selected() is not None:
                break
        selected = screen.selected()
        assert selected is not None and selected.id == "20261123T120000Z-kb-I"


async def test_resuming_a_finished_run_shows_why_over_the_timeline(world: dict[str, Any]) -> None:  # noqa: F811
    from drconsole.tui.app import make_app
    from drconsole.tui.modals import ErrorModal
    from drconsole.tui.timeline_screen import TimelineScreen

    _past_runs(world)
    finished = sorted(world["runs"].glob("*.jsonl"))[0].stem
    app = make_app(
        runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW, resume=finished
    )
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 10
        while not isinstance(app.screen, ErrorModal) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert isinstance(app.screen, ErrorModal)
        assert "already finished" in str(app.screen.message)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, TimelineScreen) and app.runner is None


async def test_the_rto_trend_waits_for_two_runs_that_restored_service(
    world: dict[str, Any],  # noqa: F811
) -> None:
    from textual.widgets import Sparkline, Static

    from drconsole.incident.store import RunStore
    from drconsole.runbook.loader import load_runbook
    from drconsole.runner import Runner
    from drconsole.tui.app import make_app

    Runner.start(load_runbook(world["runbook"]), "drill", RunStore(world["runs"])).close()
    app = make_app(runs_dir=world["runs"], clock=lambda: NOW, start="timeline")
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ChoiceModal), "the unfinished run is offered first"
        await pilot.press("escape")
        deadline = time.monotonic() + 10
        label = ""
        while "RTO" not in label and time.monotonic() < deadline:
            await pilot.pause(0.05)
            label = str(app.screen.query_one("#trend-label", Static).render())
        assert "RTO trend of kb-restore drills: shown once two of them have restored" in label
        assert not app.screen.query_one("#trend", Sparkline).display


async def test_a_runbook_without_a_catalog_is_started_from_the_console(tmp_path: Path) -> None:
    """walkthrough.yaml has no catalog: the console opens on the timeline, which says how
    to start it, and d starts a drill at once (there is no recovery point to choose)."""
    from drconsole.tui.app import make_app
    from drconsole.tui.timeline_screen import TimelineScreen

    runbook = Path(__file__).parents[2] / "runbooks" / "walkthrough.yaml"
    app = make_app(runs_dir=tmp_path / "runs", runbook=runbook)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TimelineScreen)
        summary = str(screen.query_one("#run-summary").render())
        assert "d starts a drill of “Walkthrough of a restore run”" in summary
        await pilot.press("d")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        assert app.runner is not None and app.runner.mode == "drill"
        assert read_record(app.runner.record_path).events[0].data["snapshot_request"] is None


async def test_the_rto_trend_is_of_the_selected_runs_runbook_and_mode(
    world: dict[str, Any],  # noqa: F811
) -> None:
    from datetime import timedelta

    from drconsole.incident.store import RunStore
    from drconsole.runbook.loader import load_runbook
    from drconsole.runner import Runner
    from drconsole.tui.app import make_app

    from helpers import T0, FakeClock

    _past_runs(world)  # two drills of kb-restore
    clock = FakeClock(T0 + timedelta(hours=28))
    runner = Runner.start(
        load_runbook(world["runbook"]),
        "incident",
        RunStore(world["runs"]),
        clock=clock,
        actor="bob",
        impact_start=clock(),
    )
    clock.advance(60)
    runner.confirm("declare")
    runner.skip("smoke", "not in an incident")
    runner.confirm("reconnect")
    runner.finish()
    runner.close()
    app = make_app(
        runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW, start="timeline"
    )
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        label = app.screen.query_one("#trend-label")
        assert "RTO trend of kb-restore incidents: shown once two" in str(label.render())
        await pilot.press("up")
        await pilot.pause()
        assert str(label.render()) == (
            "RTO of 2 kb-restore drills (oldest → newest): 3m 30s to 1h 26m, target 1h 00m"
        )


async def test_the_gantt_axis_has_round_labels_and_its_milestones_a_legend(
    world: dict[str, Any],  # noqa: F811
) -> None:
    from drconsole.tui.app import make_app
    from drconsole.tui.widgets import GanttChart

    _past_runs(world)
    app = make_app(
        runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW, start="timeline"
    )
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        lines = app.screen.query_one("#gantt", GanttChart).render().plain.splitlines()
    axis, legend = lines[-2].split(), lines[-1].split()
    assert axis[0] == "0" and {"30m", "1h"} <= set(axis), lines  # the run took 1h 26m
    assert legend == ["S", "service_restored"], lines
    assert "S" in lines[-3], "the mark itself, on the milestones row"
