"""``module:attribute`` strings: how declarations (actions, engine adapters) name code
that is imported only when it is used."""

from __future__ import annotations

import importlib
from typing import Any


def load_entry(entry: str) -> Any:
    module_name, _, attribute = entry.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
