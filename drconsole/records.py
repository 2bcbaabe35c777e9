"""The neutral data that catalogs and engines exchange: batches of records (their schema
is in ``model.schema``). ``catalog/`` and ``engines/`` may not import each other; both
speak these.

A record has a key (its canonical text: ``model.schema.KeyType`` says how an int or UUID
key is written), its collection's first dense vector (``vectors``), the others by name
(``named_vectors``), sparse vectors by name, a document, a uri, a tenant and its fields
(``metadatas``: JSON values; a ``datetime`` field holds RFC 3339 UTC text, which the
adapter turns into its engine's type). Row *i* of every column belongs to ``ids[i]``;
dense vectors are float32, C-contiguous. A record without a value for a dense vector
(a NULL vector column) holds NaN in every position of it: no engine stores a NaN vector
(pgvector refuses them), so it can mean nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def missing_vectors(rows: int, dimension: int) -> np.ndarray:
    """``rows`` dense vectors without a value (all NaN)."""
    return np.full((rows, dimension), np.nan, dtype=np.float32)


def is_missing(vector: np.ndarray) -> bool:
    """Whether a dense vector is one without a value (every position NaN)."""
    return bool(vector.size) and bool(np.isnan(vector).all())


@dataclass(frozen=True)
class SparseVector:
    """Positions (uint32, strictly increasing) and their values (float32)."""

    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.indices.dtype != np.uint32 or self.values.dtype != np.float32:
            raise ValueError("a sparse vector holds uint32 indices and float32 values")
        if self.indices.shape != self.values.shape or self.indices.ndim != 1:
            raise ValueError("a sparse vector needs as many indices as values")
        if self.indices.size > 1 and not np.all(np.diff(self.indices.astype(np.int64)) > 0):
            raise ValueError("a sparse vector's indices must increase strictly")

    @classmethod
    def of(cls, indices: Any, values: Any) -> SparseVector:
        return cls(np.asarray(indices, dtype=np.uint32), np.asarray(values, dtype=np.float32))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SparseVector)
            and np.array_equal(self.indices, other.indices)
            and np.array_equal(self.values.view(np.uint32), other.values.view(np.uint32))
        )

    def __hash__(self) -> int:
        return hash((self.indices.tobytes(), self.values.tobytes()))


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
    named_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    """The collection's other dense vectors by name, each ``(rows, its dimension)``."""
    sparse_vectors: dict[str, list[SparseVector | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = len(self.ids)
        for name, vectors in {"": self.vectors, **self.named_vectors}.items():
            if vectors.ndim != 2 or vectors.shape[0] != rows:
                raise ValueError(
                    f"vectors {name or '(first)'} have shape {vectors.shape}, "
                    f"expected ({rows}, dimension)"
                )
        if not self.uris and rows:
            self.uris = [None] * rows
        columns = [self.documents, self.metadatas, self.tenants, self.uris]
        if any(len(column) != rows for column in [*columns, *self.sparse_vectors.values()]):
            raise ValueError(
                "ids, documents, metadatas, tenants, uris and sparse vectors differ in length"
            )

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
            named_vectors={
                name: np.ascontiguousarray(vectors[positions])
                for name, vectors in self.named_vectors.items()
            },
            sparse_vectors={
                name: [column[i] for i in positions] for name, column in self.sparse_vectors.items()
            },
        )

    def slice(self, start: int, stop: int) -> RecordBatch:
        return RecordBatch(
            ids=self.ids[start:stop],
            vectors=self.vectors[start:stop],
            documents=self.documents[start:stop],
            metadatas=self.metadatas[start:stop],
            tenants=self.tenants[start:stop],
            uris=self.uris[start:stop],
            named_vectors={name: v[start:stop] for name, v in self.named_vectors.items()},
            sparse_vectors={name: c[start:stop] for name, c in self.sparse_vectors.items()},
        )

    @classmethod
    def empty(cls, dimension: int) -> RecordBatch:
        return cls([], np.zeros((0, dimension), dtype=np.float32), [], [], [])

    @classmethod
    def join(cls, batches: list[RecordBatch], dimension: int) -> RecordBatch:
        """The batches one after the other, as one batch (all with the same vectors)."""
        if len(batches) == 1:
            return batches[0]
        if not batches:
            return cls.empty(dimension)
        named, sparse = batches[0].named_vectors, batches[0].sparse_vectors
        if any(b.named_vectors.keys() != named.keys() for b in batches) or any(
            b.sparse_vectors.keys() != sparse.keys() for b in batches
        ):
            raise ValueError("batches with different named or sparse vectors cannot be joined")
        return cls(
            ids=[i for b in batches for i in b.ids],
            vectors=np.concatenate([b.vectors for b in batches]),
            documents=[d for b in batches for d in b.documents],
            metadatas=[m for b in batches for m in b.metadatas],
            tenants=[t for b in batches for t in b.tenants],
            uris=[u for b in batches for u in b.uris],
            named_vectors={
                name: np.concatenate([b.named_vectors[name] for b in batches]) for name in named
            },
            sparse_vectors={
                name: [v for b in batches for v in b.sparse_vectors[name]] for name in sparse
            },
        )
