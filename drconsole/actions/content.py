"""The content check: restored records read back and compared with the snapshot's final
state, field by field, with types.

Counts and samples of fields miss a replaced document, a replaced vector, an int turned
into a float, or a record that gained an ACL group. This reads every record of the final
state (or a seeded share of them, chosen by id so the same records are chosen every time)
back from the target by id and compares its document, uri, metadata (keys lost and keys
gained, values with their JSON types, arrays element by element) and vector (bit for bit,
or within the engine's declared rounding in ulps). It names the records that differ and
how. Memory holds one part and its target counterpart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drconsole.engines.base import Engine
from drconsole.records import RecordBatch, SparseVector
from drconsole.sampling import sample_percent

NAMED = 20
FETCH = 1000


@dataclass(frozen=True)
class ContentDepth:
    """``full`` or ``sample:N%``."""

    percent: float

    @classmethod
    def parse(cls, text: str) -> ContentDepth:
        if text == "full":
            return cls(100.0)
        if (percent := sample_percent(text)) is not None:
            return cls(percent)
        raise ValueError(f"content must be full or sample:N% (0 < N <= 100), not {text!r}")

    def chooses(self, record_id: str, seed: int) -> bool:
        if self.percent >= 100:
            return True
        digest = hashlib.blake2b(f"{seed}:{record_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64 * 100 < self.percent

    def __str__(self) -> str:
        return "full" if self.percent >= 100 else f"sample:{self.percent:g}%"


@dataclass
class ContentResult:
    """How many records were compared, which were missing, which differ and how."""

    compared: int = 0
    missing: list[str] = field(default_factory=list)
    differ: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.missing and not self.differ


class ContentCheck:
    """Compares the chosen records of the chain's final state, batch by batch as the
    caller reads it, with the target's."""

    def __init__(
        self, collection: str, engine: Engine, depth: ContentDepth, *, seed: int, ulps: int
    ) -> None:
        self.collection = collection
        self.engine = engine
        self.depth = depth
        self.seed = seed
        self.ulps = ulps
        self.result = ContentResult()

    def add(self, batch: RecordBatch) -> None:
        chosen = [
            row
            for row, record_id in enumerate(batch.ids)
            if self.depth.chooses(record_id, self.seed)
        ]
        for start in range(0, len(chosen), FETCH):
            expected = batch.take(chosen[start : start + FETCH])
            actual = self.engine.get_records(self.collection, expected.ids)
            _compare(expected, actual, self.ulps, self.result)


def _compare(expected: RecordBatch, actual: RecordBatch, ulps: int, result: ContentResult) -> None:
    rows = {record_id: row for row, record_id in enumerate(actual.ids)}
    for row, record_id in enumerate(expected.ids):
        result.compared += 1
        if record_id not in rows:
            result.missing.append(record_id)
            continue
        other = rows[record_id]
        problems = []
        if expected.documents[row] != actual.documents[other]:
            problems.append(
                f"document {_short(actual.documents[other])}, expected "
                f"{_short(expected.documents[row])}"
            )
        if expected.uris[row] != actual.uris[other]:
            problems.append(f"uri {actual.uris[other]!r}, expected {expected.uris[row]!r}")
        problems += metadata_differences(expected.metadatas[row], actual.metadatas[other])
        problems += _vector_differences(
            "vector", expected.vectors[row], actual.vectors[other], ulps
        )
        for name, vectors in expected.named_vectors.items():
            have = actual.named_vectors.get(name)
            if have is None:
                problems.append(f"vector {name} lost")
            else:
                problems += _vector_differences(f"vector {name}", vectors[row], have[other], ulps)
        for name, column in expected.sparse_vectors.items():
            want = column[row]
            got = actual.sparse_vectors.get(name, [None] * len(actual))[other]
            problems += _sparse_differences(f"sparse vector {name}", want, got, ulps)
        if problems:
            result.differ[record_id] = problems


def _vector_differences(label: str, want: np.ndarray, have: np.ndarray, ulps: int) -> list[str]:
    off = ulps_apart(want, have)
    if off is None:
        return [f"{label} has {have.shape[0]} dimensions, expected {want.shape[0]}"]
    if off > ulps:
        return [f"{label} differs by up to {off} ulps (allowed {ulps})"]
    return []


def _sparse_differences(
    label: str, want: SparseVector | None, have: SparseVector | None, ulps: int
) -> list[str]:
    if want is None or have is None:
        return [] if want is have else [f"{label} {'lost' if have is None else 'appeared'}"]
    if not np.array_equal(want.indices, have.indices):
        return [f"{label} has other positions ({len(have.indices)}, expected {len(want.indices)})"]
    return _vector_differences(label, want.values, have.values, ulps)


def metadata_differences(
    expected: dict[str, Any] | None, actual: dict[str, Any] | None
) -> list[str]:
    """Keys lost, keys gained, and values that differ in value or JSON type."""
    want, have = expected or {}, actual or {}
    found = [f"metadata.{key} lost" for key in sorted(set(want) - set(have))]
    found += [
        f"metadata.{key} appeared ({_typed(have[key])})" for key in sorted(set(have) - set(want))
    ]
    for key in sorted(set(want) & set(have)):
        if not same_value(want[key], have[key]):
            found.append(f"metadata.{key} is {_typed(have[key])}, expected {_typed(want[key])}")
    return found


def same_value(expected: Any, actual: Any) -> bool:
    """Equal in value and in type (1 is not 1.0, True is not 1), arrays element-wise."""
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            same_value(a, b) for a, b in zip(expected, actual, strict=True)
        )
    return type(expected) is type(actual) and expected == actual


def ulps_apart(expected: np.ndarray, actual: np.ndarray) -> int | None:
    """The largest distance in units in the last place between two float32 vectors
    (None when their shapes differ)."""
    if expected.shape != actual.shape:
        return None
    if not expected.size:
        return 0
    a = _ordered(np.ascontiguousarray(expected, dtype="<f4"))
    b = _ordered(np.ascontiguousarray(actual, dtype="<f4"))
    return int(np.abs(a - b).max())


def _ordered(vector: np.ndarray) -> np.ndarray:
    """float32 bits as integers ordered like the floats (so neighbours differ by one)."""
    bits = vector.view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _typed(value: Any) -> str:
    kind = {bool: "boolean", int: "int", float: "float", str: "string", list: "array"}.get(
        type(value), type(value).__name__
    )
    return f"{_short(value)} ({kind})"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
