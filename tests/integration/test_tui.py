"""The console driven with Pilot against a real Chroma server and a local catalog, and
the real program in tmux."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import Static

from drconsole.corpus import CorpusSpec
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.incident.record import read_record
from drconsole.tui.app import make_app
from drconsole.tui.modals import ChoiceModal, HelpModal, ReasonModal
from drconsole.tui.run_screen import RunScreen

from chroma_restore import dump, kill_drill_mid_restore, seed, snapshot
from helpers import write_runbook
from tmux import TmuxSession

pytestmark = pytest.mark.integration


def _runbook(
    folder: Path,
    target: dict[str, str],
    source: str,
    *,
    batch: int = 500,
    in_flight: int = 2,
) -> Path:
    return write_runbook(
        folder,
        f"""
        schema: drconsole/runbook/v1
        id: kb-console
        title: Restore the knowledge base
        objectives: {{rto: 1h, rpo: 1d}}
        catalog: {{url: catalog, key: "file:catalog.key"}}
        target: {{engine: chroma, url: "{target["url"]}", database: {target["database"]}}}
        source: {{engine: chroma, database: {source}}}
        collections: [kb_articles]
        permissions: {{tenant_field: tenant_id, acl_field: acl_groups}}
        steps:
          - {{id: declare, kind: manual, instructions: "Freeze ingestion."}}
          - {{id: verify, action: verify_chain, with: {{depth: full}}, gate: true}}
          - {{id: schema, action: restore_schema}}
          - {{id: data, action: restore_data, with: {{batch: {batch}, in_flight: {in_flight}}}}}
          - {{id: counts, action: check_counts, gate: true, marks: service_restored}}
          - id: smoke
            title: Smoke-test the application
            action: command
            with: {{argv: [{sys.executable}, -c, "raise SystemExit(1)"]}}
            gate: true
          - {{id: notify, kind: manual, instructions: "Tell the customers."}}
          - {{id: reconnect, kind: manual, instructions: "Reconnect traffic."}}
    """,
    )


@pytest.fixture
def prepared(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> dict[str, object]:
    seed(source_engine, "kb_articles", CorpusSpec("kb", 1500, seed=31))
    manifest = snapshot(source_engine, tmp_path / "catalog", ["kb_articles"])
    return {
        "runbook": _runbook(tmp_path, chroma_target, source_engine.database),
        "snapshot": manifest.id,
        "expected": dump(source_engine, "kb_articles"),
        "target": chroma_target,
        "source": source_engine.database,
    }


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_a_complete_drill_through_the_console(
    prepared: dict[str, object], tmp_path: Path
) -> None:
    app = make_app(runs_dir=tmp_path / "runs", runbook=prepared["runbook"])  # type: ignore[arg-type]
    async with app.run_test(size=(120, 36)) as pilot:
        await _settle(pilot)
        await pilot.press("r")  # restore from the selected (only) snapshot
        await pilot.pause()
        assert isinstance(app.screen, ChoiceModal)
        await pilot.press("enter")  # first choice: drill
        await _settle(pilot)
        assert isinstance(app.screen, RunScreen)
        await pilot.press("c")  # declare (manual)
        for _ in ("verify", "schema", "data", "counts", "smoke"):
            await pilot.press("x")
            await _settle(pilot)
        runner = app.runner
        assert runner is not None
        assert runner.state.steps["counts"].status == "succeeded"
        assert runner.state.steps["smoke"].status == "failed"
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, ReasonModal)
        await pilot.press(*"known flaky smoke test", "enter")
        await pilot.pause()
        await pilot.press("s")
        await pilot.press(*"customers were told by support", "enter")
        await pilot.pause()
        await pilot.press("c")  # reconnect
        await pilot.press("f")
        await pilot.pause()
        run_id = runner.run_id
        assert runner.state.finished == {"status": "succeeded", "reason": None}
        assert runner.state.snapshot["snapshot_id"] == prepared["snapshot"]  # type: ignore[index]
        outcome = app.screen.query_one("#outcome", Static)
        assert outcome.display and "run finished: succeeded" in str(outcome.render())
        assert "RTO" in str(outcome.render()) and ", met" in str(outcome.render())
    target = prepared["target"]
    engine = ChromaEngine(target["url"], database=target["database"])  # type: ignore[index]
    assert dump(engine, "kb_articles") == prepared["expected"]
    events = read_record(tmp_path / "runs" / f"{run_id}.jsonl").events
    kinds = [(e.type, e.step_id) for e in events]
    assert ("gate.overridden", "smoke") in kinds and ("step.skipped", "notify") in kinds
    assert (
        next(e for e in events if e.type == "gate.overridden").data["reason"]
        == "known flaky smoke test"
    )
    assert (
        next(e for e in events if e.type == "step.skipped").data["reason"]
        == "customers were told by support"
    )
    assert any(e.type == "milestone" and e.data["name"] == "service_restored" for e in events)
    metrics = app.services.runs.metrics(run_id)
    assert metrics.status == "succeeded" and metrics.rto_met is True
    assert [o["step_id"] for o in metrics.overrides] == ["smoke"]
    assert [s["step_id"] for s in metrics.skipped] == ["notify"]


async def test_help_opens_promptly_while_restore_data_runs(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    seed(source_engine, "kb_articles", CorpusSpec("kb", 3000, seed=32))
    snapshot(source_engine, tmp_path / "catalog", ["kb_articles"])
    runbook = _runbook(tmp_path, chroma_target, source_engine.database, batch=50, in_flight=1)
    app = make_app(runs_dir=tmp_path / "runs", runbook=runbook, start="timeline")
    async with app.run_test(size=(120, 36)) as pilot:
        await _settle(pilot)
        app.start_run("drill", None)
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("c")
        for _ in ("verify", "schema"):
            await pilot.press("x")
            await _settle(pilot)
        await pilot.press("x")  # restore_data: 60 batches, one at a time
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.running_step == "data"
        # Post the key as a terminal would and time until the modal is on screen (pilot.press
        # would wait for an idle app, which a running restore never is).
        started = time.monotonic()
        app.simulate_key("question_mark")
        while not isinstance(app.screen, HelpModal) and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)
        latency = time.monotonic() - started
        assert isinstance(app.screen, HelpModal)
        assert latency < 0.5, f"help took {latency:.2f}s to open while the restore ran"
        assert screen.running_step == "data", "the restore was still running when help opened"
        await pilot.press("escape")
        await _settle(pilot)
        assert app.runner is not None and app.runner.state.steps["data"].status == "succeeded"


async def test_resuming_an_interrupted_run(prepared: dict[str, object], tmp_path: Path) -> None:
    runbook = _runbook(
        tmp_path,
        prepared["target"],  # type: ignore[arg-type]
        prepared["source"],  # type: ignore[arg-type]
        batch=20,
        in_flight=1,
    )
    runs = tmp_path / "runs"
    kill_drill_mid_restore(runbook, runs, checkpoints=2)
    run_id = next(runs.glob("*.jsonl")).stem
    app = make_app(runs_dir=runs, runbook=runbook, resume=run_id)
    async with app.run_test(size=(120, 36)) as pilot:
        await _settle(pilot)
        assert isinstance(app.screen, ChoiceModal), "an interrupted step asks what to do"
        await pilot.press("enter")  # re-run it
        await _settle(pilot)
        runner = app.runner
        assert runner is not None
        assert runner.state.steps["data"].status == "succeeded"
        assert runner.state.steps["data"].details["resumed_after"] > 0, (
            "continued after the checkpoint"
        )
    target = prepared["target"]
    engine = ChromaEngine(target["url"], database=target["database"])  # type: ignore[index]
    assert dump(engine, "kb_articles") == prepared["expected"]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_console_renders_in_tmux(prepared: dict[str, object], tmp_path: Path) -> None:
    terminal = TmuxSession(
        f"drconsole-test-{tmp_path.name}",
        f"{sys.executable} -m drconsole.cli tui --runbook {prepared['runbook']} "
        f"--runs-dir {tmp_path / 'runs'}",
    )
    try:
        screen = terminal.wait_for(str(prepared["snapshot"]), 30)
        assert "drconsole" in screen and "Verify" in screen and "Restore" in screen
        terminal.keys("q")
        assert terminal.closed_within(15), "q did not quit the console"
    finally:
        terminal.kill()
