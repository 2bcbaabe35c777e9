"""The neutral data that catalogs and engines exchange: batches of records (their schema
is in ``schema``). ``catalog/`` and ``engines/`` may not import each other; both speak these.
Row *i* of ``vectors`` belongs to ``ids[i]``; vectors are float32, C-contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RecordBatch:
    """Records with their vectors, documents, metadata, tenant and uri, row-aligned
    (``uris`` may be left out: no record then has one)."""

    ids: list[str]
    vectors: np.ndarray
    documents: list[str | None]
    metadatas: list[dict[str, Any] | None]
    tenants: list[str | None]
    uris: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        rows = len(self.ids)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != rows:
            raise ValueError(
                f"vectors have shape {self.vectors.shape}, expected ({rows}, dimension)"
            )
        if not self.uris and rows:
            self.uris = [None] * rows
        if not (
            len(self.documents)
            == len(self.metadatas)
            == len(self.tenants)
            == len(self.uris)
            == rows
        ):
            raise ValueError("ids, documents, metadatas, tenants and uris differ in length")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def take(self, rows: np.ndarray | list[int]) -> RecordBatch:
        """The batch restricted to the given row positions, in that order."""
        positions = list(rows)
        return RecordBatch(
            ids=[self.ids[i] for i in positions],
            vectors=np.ascontiguousarray(self.vectors[positions]),
            documents=[self.documents[i] for i in positions],
            metadatas=[self.metadatas[i] for i in positions],
            tenants=[self.tenants[i] for i in positions],
            uris=[self.uris[i] for i in positions],
        )

    def slice(self, start: int, stop: int) -> RecordBatch:
        return RecordBatch(
            ids=self.ids[start:stop],
            vectors=self.vectors[start:stop],
            documents=self.documents[start:stop],
            metadatas=self.metadatas[start:stop],
            tenants=self.tenants[start:stop],
            uris=self.uris[start:stop],
        )

    @classmethod
    def empty(cls, dimension: int) -> RecordBatch:
        return cls([], np.zeros((0, dimension), dtype=np.float32), [], [], [])

    @classmethod
    def join(cls, batches: list[RecordBatch], dimension: int) -> RecordBatch:
        """The batches one after the other, as one batch."""
        if len(batches) == 1:
            return batches[0]
        if not batches:
            return cls.empty(dimension)
        return cls(
            ids=[i for b in batches for i in b.ids],
            vectors=np.concatenate([b.vectors for b in batches]),
            documents=[d for b in batches for d in b.documents],
            metadatas=[m for b in batches for m in b.metadatas],
            tenants=[t for b in batches for t in b.tenants],
            uris=[u for b in batches for u in b.uris],
        )
