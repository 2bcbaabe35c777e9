"""A collection's schema in the neutral model: what every engine's adapter reads and
writes, free of numpy so that listing a catalog does not load it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CollectionSchema:
    """A collection's neutral schema: dimension (0 when unknown: an empty collection),
    distance (cosine, l2, ip), index settings, metadata field types, and engine-specific
    settings that round-trip through ``engine_config``."""

    dimension: int
    distance: str
    index: dict[str, Any] = field(default_factory=dict)
    metadata_fields: dict[str, str] = field(default_factory=dict)
    engine_config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "distance": self.distance,
            "index": self.index,
            "metadata_fields": self.metadata_fields,
            "engine_config": self.engine_config,
        }
