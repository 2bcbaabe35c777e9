"""drconsole's filter evaluator decides exactly as Chroma does: for hundreds of seeded,
generated filters over a corpus of every metadata type (ints, floats, strings, booleans,
arrays, mixed fields, missing keys), the real server's count equals the evaluator's. A
filter the loader accepts is one Chroma accepts."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from drconsole.engines.chroma import ChromaEngine
from drconsole.filters import check_filter, matches
from drconsole.records import RecordBatch
from drconsole.schema import CollectionSchema

pytestmark = pytest.mark.integration

RECORDS = 400
FILTERS = 500
STRINGS = ["a", "b", "c", "1"]
INTS = list(range(-4, 5))
FLOATS = [value / 2 for value in range(-6, 7)]
OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")


def _scalar(rng: random.Random) -> Any:
    kind = rng.choice(["int", "float", "str", "bool"])
    return {
        "int": lambda: rng.choice(INTS),
        "float": lambda: rng.choice(FLOATS),
        "str": lambda: rng.choice(STRINGS),
        "bool": lambda: rng.random() < 0.5,
    }[kind]()


def _metadata(rng: random.Random) -> dict[str, Any] | None:
    if rng.random() < 0.05:
        return None
    candidates = {
        "n": rng.choice(INTS),
        "x": rng.choice(FLOATS),
        "m": _scalar(rng),
        "s": rng.choice(STRINGS[:3]),
        "b": rng.random() < 0.5,
        "tags": rng.sample(STRINGS[:3], rng.randint(1, 3)),
        "ints": rng.sample(INTS, rng.randint(1, 3)),
        "floats": rng.sample(FLOATS, rng.randint(1, 3)),
        "flags": [rng.random() < 0.5],
    }
    kept = {key: value for key, value in candidates.items() if rng.random() < 0.85}
    return kept or None


def _leaf(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(["n", "x", "m", "s", "b", "tags", "ints", "floats", "flags", "absent"])
    operator = rng.choice((*OPERATORS, "$contains", "$not_contains", "shorthand"))
    if operator in ("$gt", "$gte", "$lt", "$lte"):
        operand: Any = rng.choice(INTS + FLOATS + [0.25, -3.75, 2001.5])
    elif operator in ("$in", "$nin"):
        kind = rng.choice([INTS, FLOATS, STRINGS, [True, False]])
        operand = rng.sample(kind, rng.randint(1, min(3, len(kind))))
    else:
        operand = _scalar(rng)
    if operator == "shorthand":
        return {field: operand}
    return {field: {operator: operand}}


def _filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and rng.random() < 0.3:
        return {
            rng.choice(["$and", "$or"]): [_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]
        }
    return _leaf(rng)


@pytest.fixture(scope="module")
def corpus(chroma) -> tuple[ChromaEngine, list[dict[str, Any] | None]]:
    engine = ChromaEngine(chroma.url, database="filter_semantics")
    engine.ensure_namespace()
    rng = random.Random(20261130)
    metadatas = [_metadata(rng) for _ in range(RECORDS)]
    engine.create_collection("corpus", CollectionSchema(2, "l2"))
    engine.upsert(
        "corpus",
        RecordBatch(
            [f"r{n:04d}" for n in range(RECORDS)],
            np.ones((RECORDS, 2), np.float32),
            [None] * RECORDS,
            metadatas,
            [None] * RECORDS,
        ),
    )
    stored = [metadata for batch in engine.scan("corpus", 1000) for metadata in batch.metadatas]
    yield engine, stored
    engine.close()


def test_the_evaluator_counts_what_chroma_counts(corpus) -> None:
    engine, metadatas = corpus
    rng = random.Random(7)
    compared, differences = 0, []
    while compared < FILTERS:
        where = _filter(rng)
        if check_filter(where):
            continue
        expected = sum(1 for metadata in metadatas if matches(where, metadata))
        actual = engine.count("corpus", where)
        compared += 1
        if actual != expected:
            differences.append((where, actual, expected))
    assert not differences, f"{len(differences)} of {compared} differ: {differences[:5]}"


@pytest.mark.parametrize(
    ("where", "count_of"),
    [
        ({"n": 1.5}, lambda m: m.get("n") == 1),
        ({"n": {"$gte": -0.5}}, lambda m: isinstance(m.get("n"), int) and m["n"] >= 0),
        ({"ints": {"$contains": 2.0}}, lambda m: False),
    ],
)
def test_the_cases_that_fooled_the_old_evaluator(corpus, where, count_of) -> None:
    engine, metadatas = corpus
    expected = sum(1 for m in metadatas if m is not None and count_of(m))
    assert engine.count("corpus", where) == expected
    assert sum(1 for m in metadatas if matches(where, m)) == expected


@pytest.mark.parametrize(
    "where",
    [
        {"s": {"$in": ["en", 1, True]}},
        {"n": {"$in": [2001, 2002.0]}},
        {"n": {"$nin": [1, True]}},
    ],
)
def test_what_chroma_refuses_is_refused_at_load_time(corpus, where) -> None:
    engine, _ = corpus
    assert check_filter(where), "the loader refuses it"
    with pytest.raises(Exception, match="Invalid where clause"):
        engine.count("corpus", where)
