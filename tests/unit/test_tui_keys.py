"""The console at 80x24 with the keys people's hands know: j/k only move, Ctrl-C and q ask
before cancelling a running step (the run stays resumable), r rejects an approval, the
footer shows the keys that matter now with ? and q always there, the panel says what the
next key does; an unfinished run is offered first, resumed or abandoned with a reason;
Escape never leaves a blank screen."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from drconsole.actions.base import Progress
from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner
from drconsole.tui.app import make_app
from drconsole.tui.messages import StepProgress
from drconsole.tui.modals import ChoiceModal, ConfirmModal, HelpModal, ReasonModal
from drconsole.tui.run_screen import RunScreen
from drconsole.tui.timeline_screen import TimelineScreen

from helpers import run_cli, write_runbook

SMALL = (80, 24)


def _runbook(tmp_path: Path) -> Path:
    return write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: keys
        title: Keys
        objectives: {{rto: 1h}}
        steps:
          - {{id: approve, kind: approval, instructions: "Go ahead?"}}
          - id: slow
            title: A long restore
            action: command
            with: {{argv: [{sys.executable}, -c, "import time; time.sleep(60)"]}}
          - {{id: last, kind: manual, instructions: "Tell them.", marks: service_restored}}
        """,
    )


async def _open(pilot, app) -> RunScreen:
    await app.workers.wait_for_complete()
    app.start_run("drill", None)
    await app.workers.wait_for_complete()
    await pilot.pause()
    assert isinstance(app.screen, RunScreen)
    return app.screen


def _footer_keys(screen: RunScreen) -> set[str]:
    return {binding.key for _, binding, enabled, _ in screen.active_bindings.values() if enabled}


def _panel(screen: RunScreen) -> str:
    return str(screen.query_one("#step-title", Static).render())


async def test_reject_is_r_and_j_k_only_move(tmp_path: Path) -> None:
    app = make_app(runs_dir=tmp_path / "runs", runbook=_runbook(tmp_path), start="timeline")
    async with app.run_test(size=SMALL) as pilot:
        screen = await _open(pilot, app)
        assert "c approves it, r rejects it" in _panel(screen)
        keys = _footer_keys(screen)
        assert {"c", "r", "question_mark", "q"} <= keys and "x" not in keys
        table = screen.query_one("#steps", DataTable)
        row = table.cursor_row
        await pilot.press("j")
        assert table.cursor_row == row + 1, "j moves down"
        await pilot.press("k")
        assert table.cursor_row == row and not isinstance(app.screen, ConfirmModal)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ReasonModal), "r asks why"


async def test_ctrl_c_asks_before_cancelling_a_running_step(tmp_path: Path) -> None:
    app = make_app(runs_dir=tmp_path / "runs", runbook=_runbook(tmp_path), start="timeline")
    async with app.run_test(size=SMALL) as pilot:
        screen = await _open(pilot, app)
        await pilot.press("c")
        await pilot.pause()
        assert "x runs it" in _panel(screen)
        await pilot.press("x")
        await pilot.pause(0.3)
        assert screen.running_step == "slow"
        assert "ctrl+c" in _footer_keys(screen)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await pilot.pause()
        assert screen.running_step == "slow", "no: the step goes on"
        await pilot.press("ctrl+c")
        await pilot.pause()
        await pilot.press("y")
        started = time.monotonic()
        while screen.running_step is not None and time.monotonic() - started < 20:
            await asyncio.sleep(0.05)
        assert app.runner is not None
        assert app.runner.state.steps["slow"].status == "cancelled"
        assert time.monotonic() - started < 15


async def test_q_while_a_step_runs_asks_then_leaves_a_resumable_run(tmp_path: Path) -> None:
    app = make_app(runs_dir=tmp_path / "runs", runbook=_runbook(tmp_path), start="timeline")
    async with app.run_test(size=SMALL) as pilot:
        screen = await _open(pilot, app)
        run_id = app.runner.run_id  # type: ignore[union-attr]
        await pilot.press("c", "x")
        await pilot.pause(0.3)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        question = str(app.screen.query_one(".question").render())
        assert "the run stays resumable" in question and "leave the console" in question
        await pilot.press("y")
        started = time.monotonic()
        while app.is_running and time.monotonic() - started < 20:
            await asyncio.sleep(0.05)
    assert not app.is_running
    state = app.services.runs.metrics(run_id)
    assert state.status == "needs_operator", "paused, resumable"
    assert screen.running_step is None


async def test_help_names_keys_as_people_write_them(tmp_path: Path) -> None:
    app = make_app(runs_dir=tmp_path / "runs", runbook=_runbook(tmp_path), start="timeline")
    async with app.run_test(size=SMALL) as pilot:
        await _open(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpModal)
        keys = [key for key, _ in app.screen.keys]
        assert "?" in keys and "Ctrl-C" in keys and "Ctrl-P" in keys, "the palette too"
        assert not {"question_mark", "slash", "escape", "ctrl+c"} & set(keys)


def _unfinished(tmp_path: Path) -> str:
    runner = Runner.start(load_runbook(_runbook(tmp_path)), "drill", RunStore(tmp_path / "runs"))
    run_id = runner.run_id
    runner.close()
    return run_id


async def test_an_unfinished_run_is_offered_first_and_resumed(tmp_path: Path) -> None:
    run_id = _unfinished(tmp_path)
    app = make_app(runs_dir=tmp_path / "runs", runbook=_runbook(tmp_path), start="timeline")
    async with app.run_test(size=SMALL) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ChoiceModal)
        assert run_id in str(app.screen.query_one(".question").render())
        await pilot.press("enter")  # the first choice: resume it now
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, RunScreen) and app.runner is not None
        assert app.runner.run_id == run_id


async def test_the_timeline_abandons_a_run_with_a_reason_and_escape_keeps_it(
    tmp_path: Path,
) -> None:
    run_id = _unfinished(tmp_path)
    app = make_app(runs_dir=tmp_path / "runs", start="timeline")
    async with app.run_test(size=SMALL) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("escape")  # not now
        await pilot.pause()
        assert isinstance(app.screen, TimelineScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, TimelineScreen), "Escape never leaves a blank screen"
        await pilot.press("A")
        await pilot.pause()
        assert isinstance(app.screen, ReasonModal)
        await pilot.press(*"drill called off", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
    metrics = RunStore(tmp_path / "runs").metrics(run_id)
    assert metrics.status == "abandoned"
    assert RunStore(tmp_path / "runs").read(run_id).events[-1].data == {
        "status": "abandoned",
        "reason": "drill called off",
    }


def test_runs_abandon_ends_a_run_from_the_command_line(tmp_path: Path) -> None:
    run_id = _unfinished(tmp_path)
    runs = str(tmp_path / "runs")
    done = run_cli("runs", "abandon", "latest", "--reason", "superseded", "--runs-dir", runs)
    assert done.returncode == 0 and f"run {run_id} abandoned" in done.stdout
    again = run_cli("runs", "abandon", "latest", "--reason", "twice", "--runs-dir", runs)
    assert again.returncode == 2 and "already finished (abandoned)" in again.stderr
    shown = run_cli("runs", "show", run_id, "--json", "--runs-dir", runs)
    assert '"status": "abandoned"' in shown.stdout


async def test_i_shows_a_failed_checks_reason_in_full(tmp_path: Path) -> None:
    """A failed gate's checks are one key away: i opens them in full (what was expected,
    what was found), as selectable text; the key is offered only when there are some."""
    from drconsole.catalog.local import LocalStore
    from drconsole.tui.modals import TextModal

    from test_tui_snapshots import _snapshot

    store = LocalStore(tmp_path / "catalog")
    _snapshot(store, "20261122T160000Z-kb-I", 6, _snapshot(store, "20261122T100000Z-kb-F", 0))
    newest = tmp_path / "catalog" / "snapshots" / "20261122T160000Z-kb-I"
    part = next(newest.rglob("records-*"))
    part.write_bytes(part.read_bytes()[:-1] + b"\x07")
    runbook = write_runbook(
        tmp_path,
        """
        schema: drconsole/runbook/v1
        id: failures
        title: Failures one key away
        objectives: {rto: 1h}
        catalog: {url: catalog, key: "file:catalog.key"}
        steps:
          - {id: verify, action: verify_chain, with: {depth: full, fallback: false}}
          - {id: back, kind: manual, instructions: "Say so.", marks: service_restored}
        """,
    )
    app = make_app(runs_dir=tmp_path / "runs", runbook=runbook, start="timeline")
    async with app.run_test(size=SMALL) as pilot:
        screen = await _open(pilot, app)
        assert "i" not in _footer_keys(screen), "nothing failed yet: the key is not offered"
        await pilot.press("x")
        for _ in range(200):
            await pilot.pause(0.05)
            if app.runner is not None and app.runner.state.steps["verify"].status == "failed":
                break
        await pilot.pause()
        assert "i" in _footer_keys(screen)
        await pilot.press("i")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, TextModal)
        assert modal.title_text == "1 failed check in step verify"
        assert modal.text.startswith("chain_intact on 20261122T160000Z-kb-I: expected intact, got")
        assert "records-00000.parquet" in modal.text and "sha256" in modal.text
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)


@pytest.mark.parametrize(
    ("eta_s", "verdict"), [(60, "on track"), (2 * 3600, "WILL MISS")], ids=["fits", "misses"]
)
async def test_the_rto_forecast_says_will_miss_only_when_it_will(
    tmp_path: Path, eta_s: float, verdict: str
) -> None:
    """Elapsed on the RTO clock plus what the restoring step still needs, against the
    runbook's 1h target: an ETA that fits is on track, one past the target will miss."""
    app = make_app(runs_dir=tmp_path / "runs", runbook=_runbook(tmp_path), start="timeline")
    async with app.run_test(size=SMALL) as pilot:
        screen = await _open(pilot, app)
        screen.post_message(
            StepProgress("slow", Progress(1, 10, message="tickets", data={"eta_s": eta_s}))
        )
        await pilot.pause()
        text = str(screen.query_one("#progress-text", Static).render())
        assert f": {verdict}" in text and "of 1h" in text
        assert ("WILL MISS" in text) == (verdict == "WILL MISS")
