"""Small typed readers over located YAML that collect problems instead of raising.

Every reader records a problem with the node's position and returns None, so the loader
can keep going and report every problem in the file at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from drconsole.runbook.yamlsource import Position, YNode
from drconsole.secrets import is_reference
from drconsole.timefmt import parse_duration


class Problems:
    """Problems found in one file, rendered as ``FILE:LINE:COLUMN: message``."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._items: list[tuple[Position, str]] = []

    def add(self, where: YNode | Position, message: str) -> None:
        position = where.position if isinstance(where, YNode) else where
        self._items.append((position, message))

    def __bool__(self) -> bool:
        return bool(self._items)

    def lines(self) -> list[str]:
        ordered = sorted(self._items, key=lambda item: (item[0].line, item[0].column))
        return [f"{self.file}:{pos.line}:{pos.column}: {message}" for pos, message in ordered]


def suggestion(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(
    node: YNode, allowed: Iterable[str], where: str, problems: Problems, extensions: bool = False
) -> None:
    """Report every key of a mapping that is not allowed, with a suggestion."""
    allowed = list(allowed)
    for key, position in node.key_positions.items():
        if key in allowed or (extensions and key.startswith("x-")):
            continue
        problems.add(position, f"unknown key {key!r} in {where}{suggestion(key, allowed)}")


def mapping(node: YNode | None, what: str, problems: Problems) -> dict[str, YNode] | None:
    if node is None:
        return None
    if not node.is_mapping:
        problems.add(node, f"{what} must be a mapping")
        return None
    return node.value


def string(node: YNode | None, what: str, problems: Problems) -> str | None:
    if node is None:
        return None
    if not isinstance(node.value, str) or not node.value.strip():
        problems.add(node, f"{what} must be a non-empty string, not {_shown(node.value)}")
        return None
    return node.value


def boolean(node: YNode | None, what: str, problems: Problems) -> bool | None:
    if node is None:
        return None
    if not isinstance(node.value, bool):
        problems.add(node, f"{what} must be true or false, not {_shown(node.value)}")
        return None
    return node.value


def choice(node: YNode | None, what: str, options: Iterable[str], problems: Problems) -> str | None:
    options = list(options)
    if node is None:
        return None
    if node.value not in options:
        value = node.value
        hint = suggestion(value, options) if isinstance(value, str) else ""
        problems.add(node, f"{what} must be one of {', '.join(options)}, not {_shown(value)}{hint}")
        return None
    return node.value


def duration(
    node: YNode | None, what: str, problems: Problems, positive: bool = True
) -> float | None:
    if node is None:
        return None
    if not isinstance(node.value, str):
        problems.add(
            node, f"{what} must be a duration like 90s, 15m or 2h, not {_shown(node.value)}"
        )
        return None
    try:
        seconds = parse_duration(node.value)
    except ValueError as error:
        problems.add(node, f"{what}: {error}")
        return None
    if positive and seconds <= 0:
        problems.add(node, f"{what} must be longer than zero")
        return None
    return seconds


def string_list(
    node: YNode | None, what: str, problems: Problems
) -> list[tuple[str, YNode]] | None:
    """A list of strings (a single string is accepted as a list of one)."""
    if node is None:
        return None
    items = node.value if node.is_sequence else [node]
    result: list[tuple[str, YNode]] = []
    for item in items:
        text = string(item, f"each entry of {what}", problems)
        if text is not None:
            result.append((text, item))
    return result


def reference(node: YNode | None, what: str, problems: Problems) -> str | None:
    """A credential reference; a literal value is refused without echoing it."""
    if node is None:
        return None
    text = node.value
    if not isinstance(text, str) or not is_reference(text):
        problems.add(
            node,
            f"{what} must be a credential reference (keyring:SERVICE/NAME, env:VARIABLE or "
            "file:PATH), not a literal secret",
        )
        return None
    return text


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
