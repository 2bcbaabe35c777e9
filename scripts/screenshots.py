"""Regenerate screenshots/*.svg from the console on the demo a new user sees.

Sets the stage exactly as ``drconsole demo`` does (a sandbox Chroma as production, the
seeded knowledge base, a full and two incremental snapshots, the disaster), then drives
the console on the demo runbook as a user would: the catalog, a drill in the middle of
restore_data (at 130x38 and at 80x24), a failed gate with the override dialog (three
tickets deleted from the restored target, as a real drill might find), and the timeline.

    python scripts/screenshots.py [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from drconsole.demo import DemoOptions, run_demo
from drconsole.engines import open_engine
from drconsole.tui.app import make_app
from drconsole.tui.modals import ReasonModal
from drconsole.tui.run_screen import RunScreen

SIZE = (130, 38)
SMALL = (80, 24)
DELETED = ["ticket-000007", "ticket-000100", "ticket-000900"]


async def shoot(runbook: Path, runs: Path, out: Path) -> None:
    app = make_app(runs_dir=runs, runbook=runbook)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(app, pilot)
        app.save_screenshot(str(out / "catalog.svg"))
        await pilot.press("r", "enter")  # restore the newest snapshot, as a drill
        await _settle(app, pilot)
        assert isinstance(app.screen, RunScreen)
        await pilot.press("c")  # the announce step: the operator has told the channel
        for _ in ("verify", "schema"):
            await pilot.press("x")
            await _settle(app, pilot)
        await pilot.press("x")  # restore_data
        deadline = time.monotonic() + 300
        while _restored(app) < 1200:
            if time.monotonic() > deadline:
                raise SystemExit(f"restore_data never reached 1200 records: {_steps(app)}")
            await asyncio.sleep(0.05)
        await pilot.pause()
        app.save_screenshot(str(out / "run-restoring.svg"))
        await pilot.resize_terminal(*SMALL)
        await pilot.pause(0.2)
        app.save_screenshot(str(out / "run-restoring-80x24.svg"))
        await pilot.resize_terminal(*SIZE)
        await _settle(app, pilot)
        assert app.runner is not None
        target = open_engine(app.runner.target)
        target.delete("support_tickets", DELETED)
        target.close()
        await pilot.press("x")  # check_counts: fails on the three missing tickets
        await _settle(app, pilot)
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, ReasonModal)
        await pilot.press(*"3 tickets were deleted by their customers during the drill")
        app.save_screenshot(str(out / "gate-override.svg"))
        await pilot.press("enter")
        for key in ("x", "x", "c", "x"):  # permissions, golden, resume ingestion, cleanup
            await pilot.press(key)
            await _settle(app, pilot)
            if app.runner.advance().kind == "blocked":  # per-tenant counts miss them too
                await pilot.press("o", *"the same 3 tickets deleted by their customers", "enter")
                await _settle(app, pilot)
        if app.runner.advance().kind != "complete":
            raise SystemExit(f"the run did not reach its end: {_steps(app)}")
        await pilot.press("f")
        await _settle(app, pilot)
        await pilot.press("t")
        await _settle(app, pilot)
        app.save_screenshot(str(out / "timeline.svg"))


def _restored(app) -> int:  # type: ignore[no-untyped-def]
    return int((app.runner.state.steps["data"].checkpoint or {}).get("records", 0))


def _steps(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {name: step.status for name, step in app.runner.state.steps.items()}


async def _settle(app, pilot) -> None:  # type: ignore[no-untyped-def]
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "screenshots"
    )
    args = parser.parse_args()
    args.out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="drconsole-screens-") as name:
        options = DemoOptions(Path(name) / "demo")
        run_demo(
            options,
            print,
            lambda runbook, runs: asyncio.run(shoot(runbook, runs, args.out)),
        )
    print(f"screenshots written to {args.out}")


if __name__ == "__main__":
    main()
