"""Never stuck: a worker that fails on any screen ends in the error modal with the message
and hint the CLI would print, and the screen says what happened instead of loading
forever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Static, TextArea

from drconsole.errors import DrconsoleError
from drconsole.tui.modals import ErrorModal
from drconsole.tui.run_screen import RunScreen

from test_tui_snapshots import NOW, world  # noqa: F401 - the fixture

SIZE = (80, 24)


def _error_text(app) -> str:
    assert isinstance(app.screen, ErrorModal), type(app.screen).__name__
    return app.screen.query_one("#modal-text", TextArea).text


async def test_a_missing_catalog_folder_is_an_error_not_a_forever_spinner(tmp_path: Path) -> None:
    from drconsole.tui.app import make_app

    app = make_app(runs_dir=tmp_path / "runs", catalog=str(tmp_path / "nope"))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "no such catalog folder" in _error_text(app)
        await pilot.press("escape")
        await pilot.pause()
        status = str(app.screen.query_one("#status-line", Static).render())
        assert "could not be loaded" in status and "f5 tries again" in status


async def test_a_timeline_that_cannot_read_its_runs_says_so(
    tmp_path: Path,
    world: dict[str, Any],  # noqa: F811
) -> None:
    from drconsole.tui.app import make_app

    app = make_app(runs_dir=world["runs"], start="timeline")

    def unreadable() -> Any:
        raise DrconsoleError("the runs folder cannot be read", "check its permissions")

    app.services.all_runs = unreadable  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = _error_text(app)
        assert "the runs folder cannot be read" in text and "check its permissions" in text


async def test_a_step_whose_record_cannot_be_written_ends_in_the_error_modal(
    world: dict[str, Any],  # noqa: F811
) -> None:
    from drconsole.tui.app import make_app

    app = make_app(runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.start_run("drill", None)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, RunScreen) and app.runner is not None
        app.runner.record_path.unlink()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "deleted while the run was open" in _error_text(app)
