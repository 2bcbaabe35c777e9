"""``{{ name.path }}`` placeholders in step instructions: checked at load, filled at run."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
ROOTS = ("run", "runbook", "snapshot", "target", "catalog", "objectives", "step")


def find(text: str) -> Iterator[tuple[int, str, str | None]]:
    """Each placeholder as (offset in text, raw text, problem or None)."""
    for match in PLACEHOLDER.finditer(text):
        name = match.group(1).strip()
        problem = None
        if not _NAME.match(name):
            problem = f"placeholder {match.group(0)!r} is not a dotted name like snapshot.id"
        elif name.split(".")[0] not in ROOTS:
            problem = (
                f"placeholder {{{{ {name} }}}} starts with an unknown name; "
                f"use one of {', '.join(ROOTS)}"
            )
        yield match.start(), match.group(0), problem


def render(text: str, values: Mapping[str, Any]) -> str:
    """Text with every placeholder replaced; an unknown value shows as ``[unknown: name]``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        value: Any = values
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return f"[unknown: {name}]"
            value = value[part]
        return _text(value, name)

    return PLACEHOLDER.sub(replace, text)


def _text(value: Any, name: str) -> str:
    if value is None:
        return f"[unknown: {name}]"
    if isinstance(value, Mapping):
        return ", ".join(f"{key}={_text(item, name)}" for key, item in value.items()) or "(none)"
    if isinstance(value, list | tuple):
        return ", ".join(_text(item, name) for item in value) or "(none)"
    return str(value)
