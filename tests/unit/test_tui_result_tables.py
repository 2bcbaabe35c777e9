"""Result tables show what the core wrote: a subject like ``docs[tenant acme]`` is text,
not markup (rich would read ``[tenant acme]`` as a style and drop the tenant's name from
the permissions table)."""

from __future__ import annotations

from textual.app import App, ComposeResult

from drconsole.tui.widgets import ResultTables


class _Host(App[None]):
    def compose(self) -> ComposeResult:
        yield ResultTables()


async def test_a_cell_with_brackets_is_shown_as_written() -> None:
    app = _Host()
    async with app.run_test(size=(100, 20)) as pilot:
        app.query_one(ResultTables).show(
            [
                {
                    "title": "permissions and isolation",
                    "columns": ["result", "subject"],
                    "rows": [["VIOLATION", "docs[as role kb_app, app.tenant=acme]"]],
                }
            ]
        )
        await pilot.pause()
        screen = app.export_screenshot().replace("&#160;", " ")
    assert "docs[as role kb_app, app.tenant=acme]" in screen
