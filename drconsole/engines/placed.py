"""An engine whose collections live under other names for a while: a restore into
staging writes and checks ``help_articles`` as ``help_articles.staging.3f9a`` until the
cutover step renames it into place. Actions keep speaking the snapshot's names."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from drconsole.engines.base import CollectionInfo, Engine

_BY_NAME = (
    "create_collection",
    "delete_collection",
    "upsert",
    "scan",
    "scan_metadata",
    "get_records",
    "get_metadata",
    "count",
    "query",
    "delete",
    "finish_load",
)


class PlacedEngine:
    """``engine`` with each collection name looked up in ``placement`` first."""

    def __init__(self, engine: Engine, placement: dict[str, str]) -> None:
        self.engine = engine
        self.placement = placement

    def where(self, name: str) -> str:
        return self.placement.get(name, name)

    def get_collection(self, name: str) -> CollectionInfo | None:
        info = self.engine.get_collection(self.where(name))
        return None if info is None else replace(info, name=name)

    def __getattr__(self, attribute: str) -> Any:
        method = getattr(self.engine, attribute)
        if attribute not in _BY_NAME:
            return method
        return lambda name, *args, **kwargs: method(self.where(name), *args, **kwargs)
