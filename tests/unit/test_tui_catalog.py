"""The catalog screen: chains laid out for 80 columns, the RPO in words, what cannot be
restored listed, and a filter that takes every key typed and says when nothing matches."""

from __future__ import annotations

import time
from typing import Any

from textual.widgets import Input

from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.local import LocalStore
from drconsole.catalog.manifest import Manifest
from drconsole.tui.app import make_app
from drconsole.tui.catalog_screen import CatalogScreen
from drconsole.tui.snapshot_list import SnapshotList

from test_tui_snapshots import NOW, SMALL, _snapshot, world  # noqa: F401 - the fixture


async def _listed(pilot) -> SnapshotList:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await pilot.pause(0.02)
        screen = pilot.app.screen
        if isinstance(screen, CatalogScreen) and screen.view is not None:
            await pilot.pause()
            return screen.query_one(SnapshotList)
    raise AssertionError("the catalog was never listed")


def _lines(rows: SnapshotList) -> list[str]:
    return [rows.rows[i].text.plain for i in rows.shown]


async def test_chains_sit_at_one_indent_and_a_branch_one_deeper(world: dict[str, Any]) -> None:  # noqa: F811
    store = LocalStore(world["catalog"])
    middle = store_view_manifest(store, "20261122T160000Z-kb-I")
    _snapshot(store, "20261122T170000Z-kb-I", 7, middle)  # a second child: a branch
    app = make_app(runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW)
    async with app.run_test(size=SMALL) as pilot:
        lines = _lines(await _listed(pilot))
    indents = {line.split()[2]: len(line) - len(line[2:].lstrip()) - 2 for line in lines}
    assert indents == {
        "20261122T100000Z-kb-F": 0,
        "20261122T160000Z-kb-I": 2,
        "20261122T170000Z-kb-I": 4,
        "20261123T120000Z-kb-I": 4,
    }, lines


async def test_an_age_past_the_rpo_is_said_in_words(world: dict[str, Any]) -> None:  # noqa: F811
    app = make_app(runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW)
    async with app.run_test(size=SMALL) as pilot:
        lines = _lines(await _listed(pilot))
    by_id = {line.split()[2]: line for line in lines}
    assert "age 4h 00m" in by_id["20261123T120000Z-kb-I"]  # the runbook's RPO is 4h
    assert "over RPO" not in by_id["20261123T120000Z-kb-I"]
    assert "age 24h 00m over RPO" in by_id["20261122T160000Z-kb-I"]
    assert "age 30h 00m over RPO" in by_id["20261122T100000Z-kb-F"]


async def test_what_can_never_be_restored_is_listed_and_said(world: dict[str, Any]) -> None:  # noqa: F811
    (world["catalog"] / "snapshots" / "20261124T000000Z-kb-F").mkdir()
    (world["catalog"] / "snapshots" / "20261124T000000Z-kb-F" / "manifest.json").write_text("{")
    (world["catalog"] / "snapshots" / "20261124T010000Z-kb-F").mkdir()
    (world["catalog"] / "snapshots" / "20261124T010000Z-kb-F" / "part-0").write_bytes(b"x")
    app = make_app(runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW)
    async with app.run_test(size=SMALL) as pilot:
        lines = _lines(await _listed(pilot))
    assert any(
        line.startswith("✗ 20261124T000000Z-kb-F  invalid manifest: manifest.json is not valid")
        for line in lines
    ), lines
    assert "… 20261124T010000Z-kb-F  unfinished (1 file), never restorable" in lines


async def test_keys_typed_right_after_slash_all_reach_the_filter(world: dict[str, Any]) -> None:  # noqa: F811
    app = make_app(runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW)
    async with app.run_test(size=SMALL) as pilot:
        rows = await _listed(pilot)
        assert rows.cursor_key == "20261123T120000Z-kb-I", "starts on the newest"
        for key in ["slash", *"1122t1"]:  # a burst, as a fast typist or a paste sends it
            app.simulate_key(key)
        await pilot.pause(0.2)
        assert app.screen.query_one("#filter", Input).value == "1122t1"
        assert [rows.rows[i].key for i in rows.shown] == [
            "20261122T100000Z-kb-F",
            "20261122T160000Z-kb-I",
        ]
        await pilot.press(*"zz")
        assert rows.shown == [] and rows.cursor_key is None
        assert rows.render_line(0).text.startswith("nothing matches “1122t1zz”; Esc clears ")
        await pilot.press("escape")
        assert len(rows.shown) == 3
        assert rows.cursor_key == "20261122T100000Z-kb-F", "back on the last row it was on"
        assert app.screen.focused is rows


def store_view_manifest(store: LocalStore, snapshot_id: str) -> Manifest:
    return load_catalog(store).snapshots[snapshot_id]


async def test_a_verification_in_the_console_is_kept_and_shown_next_time(
    world: dict[str, Any],  # noqa: F811
) -> None:
    from textual.widgets import Static

    app = make_app(runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW)
    async with app.run_test(size=SMALL) as pilot:
        rows = await _listed(pilot)
        assert all(line.startswith("·") for line in _lines(rows)), "nothing verified yet"
        await pilot.press("v", "down", "down", "enter")  # depth full
        await app.workers.wait_for_complete()
        await pilot.pause()
    again = make_app(runs_dir=world["runs"], runbook=world["runbook"], clock=lambda: NOW)
    async with again.run_test(size=SMALL) as pilot:
        rows = await _listed(pilot)
        await again.workers.wait_for_complete()
        await pilot.pause()
        assert all(line.startswith("✓") for line in _lines(rows)), _lines(rows)
        details = str(again.screen.query_one("#details-text", Static).render())
        assert "last verified full 0s ago: intact on" in details
