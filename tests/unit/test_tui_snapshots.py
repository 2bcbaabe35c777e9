"""SVG snapshots of every screen and modal, with fixed data, a fixed clock and a fixed
terminal size (regenerate with `pytest --snapshot-update` and look at them), and what must
stay visible on an 80x24 terminal."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from textual.widgets import Static
from textual.widgets._footer import FooterKey

from drconsole.catalog.local import LocalStore
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.writer import SnapshotWriter
from drconsole.incident import store as store_module
from drconsole.incident.store import RunStore
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner
from drconsole.tui.app import make_app
from drconsole.tui.catalog_screen import CatalogScreen
from drconsole.tui.modals import (
    ChoiceModal,
    ConfirmModal,
    ErrorModal,
    MilestoneModal,
    ReasonModal,
    SnapshotPicker,
)
from drconsole.tui.run_screen import RunScreen
from drconsole.tui.timeline_screen import FINISHED, TimelineScreen

from helpers import T0, FakeClock, catalog_key, write_runbook

SIZE = (120, 36)
SMALL = (80, 24)
LARGE = (200, 50)
NOW = T0 + timedelta(hours=30)


@pytest.fixture(autouse=True)
def fixed_run_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module.secrets, "token_hex", lambda _: "0a1b")


def _snapshot(
    store: LocalStore, name: str, hours: float, parent: Manifest | None = None
) -> Manifest:
    writer = SnapshotWriter(store, name, key=catalog_key(store.root.parent))
    collection = writer.collection("help_articles", CollectionSchema.dense(4, "cosine"))
    ids = [f"{name}-{n}" for n in range(3)]
    collection.add(
        RecordBatch(
            ids, np.ones((3, 4), np.float32), ["doc"] * 3, [{"tenant_id": "acme"}] * 3, [None] * 3
        )
    )
    collection.close(
        total_after_apply=3,
        embedding={"model": "all-MiniLM-L6-v2", "version": "2024-05"},
        tenants=[{"name": "acme", "status": "active", "records": 3}],
    )
    moment = T0 + timedelta(hours=hours)
    return writer.finish(
        kind="incremental" if parent else "full",
        parent=parent,
        created_at=moment,
        recovery_point=moment,
        source={"engine": "chroma", "url": "http://chroma.internal:8000"},
        ingest_checkpoint={"kafka:kb-updates": "offset 88123"},
    )


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    catalog = tmp_path / "catalog"
    store = LocalStore(catalog)
    full = _snapshot(store, "20261122T100000Z-kb-F", 0)
    incremental = _snapshot(store, "20261122T160000Z-kb-I", 6, full)
    _snapshot(store, "20261123T120000Z-kb-I", 26, incremental)
    runbook = write_runbook(
        tmp_path,
        """
        schema: drconsole/runbook/v1
        id: kb-restore
        title: Restore the support knowledge base
        objectives: {rto: 1h, rpo: 4h}
        catalog: {url: catalog, key: "file:catalog.key"}
        steps:
          - id: declare
            title: Declare the incident and freeze ingestion
            kind: manual
            instructions: |
              Scale the **ingestion workers** to zero.
              Run {{ run.id }}, checkpoint {{ snapshot.ingest_checkpoint }}.
          - id: smoke
            title: Smoke-test search
            action: command
            with: {argv: [python3, -c, "raise SystemExit(1)"]}
            gate: true
            marks: service_restored
          - id: reconnect
            title: Reconnect traffic
            kind: manual
            instructions: Flip the load balancer.
    """,
    )
    return {"catalog": catalog, "runbook": runbook, "runs": tmp_path / "runs"}


def _app(world: dict[str, Any], **kwargs: Any):
    return make_app(runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW, **kwargs)


def _past_runs(world: dict[str, Any]) -> None:
    """Two finished runs with fixed times: a drill that met its RTO and one that did not."""
    runbook = load_runbook(world["runbook"])
    for hours, overrun in ((0, 0), (24, 5000)):
        clock = FakeClock(T0 + timedelta(hours=hours))
        runner = Runner.start(runbook, "drill", RunStore(world["runs"]), clock=clock, actor="alice")
        clock.advance(120)
        runner.confirm("declare")
        clock.advance(30 + overrun)
        runner.run_step("smoke")
        clock.advance(60)
        runner.override("smoke", "search answers; the smoke test is flaky")
        clock.advance(40)
        runner.note("paged the search team")
        runner.confirm("reconnect")
        runner.finish()
        runner.close()


async def _wait(pilot) -> None:
    """Until the screen has loaded what its worker reads (bounded), and settled."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _loaded(pilot.app.screen):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.02)
    for _ in range(3):  # tables size their columns on a later refresh than their rows arrive
        await pilot.pause(0.05)


def _loaded(screen: Any) -> bool:
    if isinstance(screen, CatalogScreen):
        return screen.view is not None
    if isinstance(screen, TimelineScreen):
        return screen.loaded
    if isinstance(screen, RunScreen):
        return screen.running_step is None
    return True


SIZES = pytest.mark.parametrize("size", [SIZE, SMALL, LARGE], ids=["120x36", "80x24", "200x50"])


@SIZES
def test_catalog_screen(snap_compare, world: dict[str, Any], size: tuple[int, int]) -> None:
    assert snap_compare(_app(world), terminal_size=size, run_before=_wait)


@SIZES
def test_timeline_screen(snap_compare, world: dict[str, Any], size: tuple[int, int]) -> None:
    _past_runs(world)
    assert snap_compare(_app(world, start="timeline"), terminal_size=size, run_before=_wait)


@SIZES
def test_run_screen_with_a_failed_gate(
    snap_compare, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    async def walk(pilot) -> None:
        await _wait(pilot)
        pilot.app.start_run("drill", "20261123T120000Z-kb-I")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("c")
        await pilot.press("x")
        await _wait(pilot)

    assert snap_compare(_app(world, start="timeline"), terminal_size=size, run_before=walk)


@pytest.mark.parametrize(
    ("name", "modal"),
    [
        ("confirm", lambda: ConfirmModal("Step schema is destructive (Restore schema). Run it?")),
        (
            "typed_confirm",
            lambda: ConfirmModal("Step schema is destructive. Run it?", typed="help_articles"),
        ),
        ("reason", lambda: ReasonModal("Override the failed gate smoke: why is it safe to go on?")),
        (
            "choice",
            lambda: ChoiceModal(
                "Step data was interrupted when the console or drill stopped. What now?",
                [("rerun", "Re-run it"), ("done", "Mark it done")],
            ),
        ),
        ("milestone", lambda: MilestoneModal(NOW)),
        (
            "snapshot_picker",
            lambda: SnapshotPicker(
                "Start a drill from which recovery point?",
                [
                    ("20261123T120000Z-kb-I", "incremental, age 4h 00m", True),
                    ("20261122T160000Z-kb-I", "incremental, age 24h 00m", False),
                    ("20261122T100000Z-kb-F", "full, age 30h 00m", True),
                ],
            ),
        ),
        (
            "error",
            lambda: ErrorModal(
                "s3://acme/kb: access refused (SignatureDoesNotMatch) [not markup]",
                "check the access key and secret",
            ),
        ),
    ],
)
def test_modals(snap_compare, world: dict[str, Any], name: str, modal: Any) -> None:
    async def open_modal(pilot) -> None:
        await _wait(pilot)
        pilot.app.push_screen(modal())
        await pilot.pause()

    assert snap_compare(_app(world), terminal_size=SIZE, run_before=open_modal)


def test_help_modal(snap_compare, world: dict[str, Any]) -> None:
    assert snap_compare(_app(world), terminal_size=SIZE, press=["question_mark"], run_before=_wait)


def _footer(app: Any) -> tuple[list[str], list[str]]:
    """The keys the footer shows in full, and those it cuts (past the screen's edge or
    under the command palette's key)."""
    keys = list(app.screen.query(FooterKey))
    edge = min(
        [app.size.width] + [key.region.x for key in keys if key.has_class("-command-palette")]
    )
    shown = [key for key in keys if not key.has_class("-command-palette")]
    return (
        [key.key for key in shown if key.region.right <= edge],
        [key.key for key in shown if key.region.right > edge],
    )


def _fits(app: Any) -> None:
    whole, cut = _footer(app)
    assert not cut, f"{type(app.screen).__name__}: footer cuts {cut} (shows {whole})"
    assert {"question_mark", "q"} <= set(whole), f"? and q always show: {whole}"


async def test_every_screen_fits_80x24(world: dict[str, Any]) -> None:
    """At 80x24 each screen, in each state, shows every key its footer offers in full,
    ? and q among them, and the run header's recovery point line in full."""
    _past_runs(world)
    runbook = load_runbook(world["runbook"])
    waiting = Runner.start(runbook, "drill", RunStore(world["runs"]), actor="bob")
    waiting.advance()
    waiting.pause("shift change")
    waiting.close()
    app = _app(world)
    async with app.run_test(size=SMALL) as pilot:
        await _wait(pilot)
        await pilot.press("escape")  # not now, to the offer of the unfinished run
        await _wait(pilot)
        assert isinstance(app.screen, CatalogScreen)
        _fits(app)
        await pilot.press("t")
        await _wait(pilot)
        assert isinstance(app.screen, TimelineScreen)
        assert app.screen.selected().status not in FINISHED
        _fits(app)
        assert {"enter", "A", "escape"} <= set(_footer(app)[0]), "resume, abandon, back"
        header = [str(column.label) for column in app.screen.query_one("#runs").columns.values()]
        assert header[-2:] == ["RTO", "met"], "the verdict columns stay in view"
        await pilot.press("enter")  # resumes the unfinished run the cursor is on
        await _wait(pilot)
        assert isinstance(app.screen, RunScreen), getattr(app.screen, "question", app.screen)
        assert app.runner is not None and app.runner.run_id == waiting.run_id
        for key in ("c", "x", "o"):  # waiting for a person; a failed gate; the override
            _fits(app)
            await pilot.press(key)
            await _wait(pilot)
        await pilot.press(*"flaky", "enter", "c")
        await _wait(pilot)
        _fits(app)
        assert set(_footer(app)[0]) >= {"f"}, "every step settled: f finishes"
        point = app.screen.query_one("#run-point", Static)
        assert "recovery point" in str(point.render())
        assert len(str(point.render())) <= point.region.width
