"""A long list of one-line rows with a cursor and a filter, drawn a screen at a time.

Textual's Tree lays out every node on each change: at 2,000 snapshots one filter
keystroke rebuilt and measured 2,000 lines. Here a filter only recomputes which rows are
shown (a substring test per row) and a frame renders only the rows on screen, so the
cost of a keystroke does not grow with the catalog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass
class Row:
    """One line: ``key`` names what it shows (None for a line that cannot be chosen),
    ``search`` is the lower-case text a filter looks in. ``draw`` makes its text the
    first time it is on screen: most rows of a long list never are."""

    key: str | None
    search: str
    draw: Callable[[], Text]
    _text: Text | None = None

    @property
    def text(self) -> Text:
        if self._text is None:
            self._text = self.draw()
        return self._text

    @classmethod
    def fixed(cls, key: str | None, text: Text, search: str) -> Row:
        return cls(key, search, lambda: text)


class SnapshotList(ScrollView, can_focus=True):
    BINDINGS: ClassVar = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "First", show=False),
        Binding("end,G", "jump(-1)", "Last", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"snapshot-list--cursor"}
    DEFAULT_CSS = """
    SnapshotList { background: $surface; overflow-x: hidden; }
    SnapshotList > .snapshot-list--cursor {
        background: $block-cursor-blurred-background;
        text-style: $block-cursor-blurred-text-style;
    }
    SnapshotList:focus > .snapshot-list--cursor {
        color: $block-cursor-foreground;
        background: $block-cursor-background;
        text-style: $block-cursor-text-style;
    }
    """

    class Highlighted(Message):
        """The cursor is on another row; ``key`` is None when no row can be chosen."""

        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    def __init__(self, *, empty: str = "nothing to show", id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[Row] = []
        self.shown: list[int] = []
        self.cursor = 0
        self.filter_text = ""
        self.empty = empty
        self.last_key: str | None = None

    @property
    def cursor_key(self) -> str | None:
        if not 0 <= self.cursor < len(self.shown):
            return None
        return self.rows[self.shown[self.cursor]].key

    def set_rows(self, rows: list[Row], *, select: str | None = None) -> None:
        """Replace the rows; the cursor goes to ``select``, else stays on its row."""
        keep = select if select is not None else self.cursor_key
        self.rows = rows
        self._apply(keep)

    def set_filter(self, text: str) -> None:
        """Show only the rows whose search text holds ``text`` (case does not matter).
        The cursor stays on its row, or the last one it was on before nothing matched."""
        self.filter_text = text.lower()
        self._apply(self.cursor_key or self.last_key)

    def select(self, key: str) -> None:
        self._apply(key)

    def _apply(self, keep: str | None) -> None:
        needle = self.filter_text
        self.shown = [i for i, row in enumerate(self.rows) if needle in row.search]
        position = next(
            (n for n, i in enumerate(self.shown) if keep is not None and self.rows[i].key == keep),
            None,
        )
        self.virtual_size = Size(0, max(len(self.shown), 1))  # rows are cut, never scrolled
        self._move_to(position if position is not None else 0, announce=True)
        self.refresh()

    def _move_to(self, position: int, *, announce: bool = False) -> None:
        before = self.cursor_key
        previous = self.cursor
        self.cursor = max(0, min(position, len(self.shown) - 1))
        self.refresh(Region(0, previous - self.scroll_offset.y, self.size.width, 1))
        self.refresh(Region(0, self.cursor - self.scroll_offset.y, self.size.width, 1))
        self.scroll_to_region(Region(0, self.cursor, 1, 1), animate=False, force=True)
        if self.cursor_key is not None:
            self.last_key = self.cursor_key
        if announce or self.cursor_key != before:
            self.post_message(self.Highlighted(self.cursor_key))

    def action_move(self, step: int) -> None:
        self._move_to(self.cursor + step)

    def action_page(self, direction: int) -> None:
        self._move_to(self.cursor + direction * max(self.scrollable_content_region.height - 1, 1))

    def action_jump(self, position: int) -> None:
        self._move_to(position if position >= 0 else len(self.shown) - 1)

    def on_click(self, event: events.Click) -> None:
        line = event.y + self.scroll_offset.y
        if 0 <= line < len(self.shown):
            self._move_to(line)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        line = y + self.scroll_offset.y
        if not self.shown:
            if line != 0:
                return Strip.blank(width, base)
            message = (
                self.empty
                if not self.filter_text
                else (f"nothing matches “{self.filter_text}”; Esc clears")
            )
            text = Text(message, style="italic")
        elif line >= len(self.shown):
            return Strip.blank(width, base)
        else:
            text = self.rows[self.shown[line]].text.copy()
        text.no_wrap = True
        text.truncate(width, overflow="ellipsis", pad=True)
        if self.shown and line == self.cursor:
            text.stylize(self.get_component_rich_style("snapshot-list--cursor"))
        segments = list(text.render(self.app.console, end=""))
        return Strip(segments).crop_extend(0, width, base).apply_style(base)
