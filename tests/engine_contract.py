"""The contract every engine adapter passes: a subclass per adapter provides the
``adapter`` fixture and an ``engine`` fixture (a fresh, empty namespace of a real server,
or the reference engine), and inherits these tests.

They hold each adapter to the neutral model: records round-trip with every field type;
``count(filter)`` equals the reference evaluator for hundreds of generated filters and a
filtered query returns only matching records; a scan under a concurrent writer returns
every record once; a re-sent batch changes nothing; a rename is one step; errors are
classified."""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from drconsole.engines.adapter import Capability, EngineAdapter, ErrorKind
from drconsole.engines.base import Engine, ScanWindow
from drconsole.errors import DrconsoleError, EngineError
from drconsole.model.filters import check_filter, evaluate, parse_where
from drconsole.model.schema import (
    CollectionSchema,
    Distance,
    ElementType,
    FieldSpec,
    FieldType,
    IndexSpec,
    KeyType,
    ScalarType,
    SparseVectorSpec,
    VectorSpec,
)
from drconsole.records import RecordBatch, SparseVector

CORPUS = 400
FILTERS = 300
STRINGS = ["a", "b", "c", "1"]
INTS = list(range(-4, 5))
FLOATS = [value / 2 for value in range(-6, 7)]
ORDERING = ("$gt", "$gte", "$lt", "$lte")


def batch(ids: list[str], vectors: np.ndarray, metadatas: list[Any], **rest: Any) -> RecordBatch:
    rows = len(ids)
    return RecordBatch(
        ids,
        np.ascontiguousarray(vectors, dtype=np.float32),
        rest.get("documents", [None] * rows),
        metadatas,
        [None] * rows,
        rest.get("uris", [None] * rows),
    )


def scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            lambda: rng.choice(INTS),
            lambda: rng.choice(FLOATS),
            lambda: rng.choice(STRINGS),
            lambda: rng.random() < 0.5,
        ]
    )()


def corpus_metadata(rng: random.Random) -> dict[str, Any] | None:
    """Every metadata type: ints, floats, strings, booleans, arrays of each, a field of
    mixed types across records, missing keys, records without metadata."""
    if rng.random() < 0.05:
        return None
    candidates = {
        "n": rng.choice(INTS),
        "x": rng.choice(FLOATS),
        "m": scalar(rng),
        "s": rng.choice(STRINGS[:3]),
        "b": rng.random() < 0.5,
        "tags": rng.sample(STRINGS[:3], rng.randint(1, 3)),
        "ints": rng.sample(INTS, rng.randint(1, 3)),
        "floats": rng.sample(FLOATS, rng.randint(1, 3)),
        "flags": [rng.random() < 0.5],
    }
    kept = {key: value for key, value in candidates.items() if rng.random() < 0.85}
    return kept or None


def leaf(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(["n", "x", "m", "s", "b", "tags", "ints", "floats", "flags", "absent"])
    operator = rng.choice(
        ("$eq", "$ne", *ORDERING, "$in", "$nin", "$contains", "$not_contains", "shorthand")
    )
    if operator in ORDERING:
        operand: Any = rng.choice(INTS + FLOATS + [0.25, -3.75, 2001.5])
    elif operator in ("$in", "$nin"):
        kind = rng.choice([INTS, FLOATS, STRINGS, [True, False]])
        operand = rng.sample(kind, rng.randint(1, min(3, len(kind))))
    else:
        operand = scalar(rng)
    return {field: operand} if operator == "shorthand" else {field: {operator: operand}}


def generated_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and rng.random() < 0.3:
        items = [generated_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]
        return {rng.choice(["$and", "$or"]): items}
    return leaf(rng)


def declared(
    adapter: EngineAdapter, schema: CollectionSchema, metadatas: list[Any]
) -> CollectionSchema:
    """``schema`` with the fields ``metadatas`` hold declared, for an engine whose records
    cannot carry undeclared fields (a typed table); unchanged for one that can."""
    if adapter.can(Capability.FREE_FIELDS):
        return schema
    kinds: dict[str, set[ScalarType]] = {}
    arrays: set[str] = set()
    for metadata in metadatas:
        for key, value in (metadata or {}).items():
            if isinstance(value, list):
                arrays.add(key)
                kinds.setdefault(key, set()).update(_scalar_type(item) for item in value)
            else:
                kinds.setdefault(key, set()).add(_scalar_type(value))
    fields = tuple(
        FieldSpec(
            key, FieldType(found.pop() if len(found) == 1 else ScalarType.JSON, key in arrays)
        )
        for key, found in kinds.items()
    )
    return replace(schema, fields=fields)


def _scalar_type(value: Any) -> ScalarType:
    if isinstance(value, bool):
        return ScalarType.BOOL
    return {int: ScalarType.INT, float: ScalarType.FLOAT, str: ScalarType.STRING}.get(
        type(value), ScalarType.JSON
    )


def same_metadata(left: dict[str, Any] | None, right: dict[str, Any] | None) -> bool:
    """Equal, types included (1 is not 1.0 nor True); an empty mapping is no metadata."""
    return _typed(left or None) == _typed(right or None)


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value)


class EngineContract:
    """Inherit, and provide ``adapter`` and ``engine`` fixtures."""

    INT_KEYS: tuple[str, ...] = ("0", "-9223372036854775808", "9223372036854775807")
    """The int keys written in the key round trip: the 64-bit extremes, unless the engine
    cannot return one (its own test then shows it refused)."""

    @pytest.fixture
    def corpus(self, adapter: EngineAdapter, engine: Engine) -> list[dict[str, Any] | None]:
        """400 records of every metadata type, as the engine stores them (a typed engine
        gets no field of mixed types: a typed column holds one kind)."""
        rng = random.Random(20261130)
        metadatas = [corpus_metadata(rng) for _ in range(CORPUS)]
        if not adapter.can(Capability.FREE_FIELDS):
            metadatas = [
                {key: value for key, value in m.items() if key != "m"} or None if m else None
                for m in metadatas
            ]
        vectors = np.random.default_rng(1).standard_normal((CORPUS, 4))
        engine.create_collection(
            "corpus", declared(adapter, CollectionSchema.dense(4, "l2"), metadatas)
        )
        engine.upsert("corpus", batch([f"r{n:04d}" for n in range(CORPUS)], vectors, metadatas))
        return [metadata for page in engine.scan("corpus", 1000) for metadata in page.metadatas]

    def test_records_round_trip_with_every_field_type(
        self, adapter: EngineAdapter, engine: Engine
    ) -> None:
        rng = np.random.default_rng(7)
        vectors = rng.standard_normal((6, 16)).astype(np.float32)
        metadatas: list[dict[str, Any] | None] = [
            {"s": "héllo ✓", "i": 2**53 + 1, "neg": -(2**62), "f": 0.1, "b": True},
            {"words": ["a", "b"], "ints": [1, -2], "floats": [0.5, 1e-30], "flags": [False]},
            {"zero": 0, "fzero": 0.0, "false": False, "empty": ""},
            None,
            {"big": 1.7976931348623157e308, "tiny": 5e-324},
            {"one_int": 1, "one_float": 1.0},
        ]
        documents = ["first", None, "", "emoji 🦉", "x" * 10_000, None]
        uris = [None, "s3://bucket/doc-1", None, None, "https://example.org/ü", None]
        if not adapter.can(Capability.DOCUMENTS):
            documents = [None] * 6
        if not adapter.can(Capability.URIS):
            uris = [None] * 6
        ids = ["a", "b-2", "ü-3", "with space", "x" * 64, "6"]
        for distance in ("cosine", "l2", "ip"):
            name = f"round_trip_{distance}"
            engine.create_collection(
                name, declared(adapter, CollectionSchema.dense(16, distance), metadatas)
            )
            engine.upsert(name, batch(ids, vectors, metadatas, documents=documents, uris=uris))
            got = RecordBatch.join(list(engine.scan(name, 4)), 16)
            assert sorted(got.ids) == sorted(ids)
            order = [got.ids.index(record_id) for record_id in ids]
            back = got.take(order)
            ulps = engine.vector_ulps(distance)
            spacing = np.abs(np.spacing(vectors)) * max(ulps, 0)
            assert np.all(np.abs(back.vectors - vectors) <= spacing), distance
            assert back.documents == documents
            assert back.uris == uris
            for written, read in zip(metadatas, back.metadatas, strict=True):
                assert same_metadata(written, read), (written, read)
            assert engine.count(name) == len(ids)
            info = engine.get_collection(name)
            assert info is not None
            assert (info.schema.dimension, info.schema.distance) == (16, distance)

    def test_a_neutral_schema_comes_back_as_it_was_created(
        self, adapter: EngineAdapter, engine: Engine
    ) -> None:
        """Each distance the adapter claims (hamming on bit vectors), and an HNSW index's
        graph parameters, are reported back as created; what it reports is a schema it
        can hold itself."""
        index = IndexSpec("hnsw", {"m": 24, "ef_construction": 120})
        for distance in adapter.distances:
            name = f"schema_{distance}"
            element = ElementType.BIT if distance == "hamming" else ElementType.FLOAT32
            schema = CollectionSchema((VectorSpec("", 8, Distance(distance), element, index),))
            engine.create_collection(name, declared(adapter, schema, [{"k": 1}]))
            engine.upsert(name, batch(["a"], np.ones((1, 8)), [{"k": 1}]))
            info = engine.get_collection(name)
            assert info is not None
            reported = info.schema
            assert (reported.dimension, reported.distance, reported.key) == (8, distance, "string")
            assert reported.index is not None and reported.index.kind == "hnsw"
            assert {k: reported.index.params.get(k) for k in index.params} == index.params
            assert adapter.schema_gaps(reported) == []

    def test_typed_keys_named_and_sparse_vectors_round_trip(
        self, adapter: EngineAdapter, engine: Engine
    ) -> None:
        """Every key type the adapter keeps, with the named and sparse vectors its
        capabilities claim, comes back as written; a key not of its type is refused."""
        named = adapter.can(Capability.NAMED_VECTORS)
        sparse = adapter.can(Capability.SPARSE_VECTORS)
        if not named and not sparse and adapter.key_types == ("string",):
            pytest.skip(f"{adapter.name} keeps one dense vector and string keys only")
        keys = {
            "string": ["a", "ü b", "7"],
            "int": list(self.INT_KEYS),
            "uuid": ["00000000-0000-0000-0000-000000000000", str(uuid.uuid4()), str(uuid.uuid4())],
        }
        rng = np.random.default_rng(11)
        for key_type in adapter.key_types:
            schema = CollectionSchema(
                vectors=(VectorSpec("text", 6, Distance.L2),)
                + ((VectorSpec("image", 3, Distance.IP),) if named else ()),
                key=KeyType(key_type),
                sparse_vectors=(SparseVectorSpec("bm25"),) if sparse else (),
            )
            name = f"typed_{key_type}"
            engine.create_collection(name, declared(adapter, schema, [{"i": 1}, {"s": "x"}]))
            written = replace(
                batch(keys[key_type], rng.standard_normal((3, 6)), [{"i": 1}, None, {"s": "x"}]),
                named_vectors={"image": rng.standard_normal((3, 3)).astype(np.float32)}
                if named
                else {},
                sparse_vectors={
                    "bm25": [
                        SparseVector.of([0, 5, 999_999_999], [1, -2, 0.5]),
                        None,
                        SparseVector.of([3], [1e-30]),
                    ]
                }
                if sparse
                else {},
            )
            engine.upsert(name, written)
            read = engine.get_records(name, written.ids)
            assert read.ids == written.ids, key_type
            assert read.vectors.tobytes() == written.vectors.tobytes()
            for vector_name, vectors in written.named_vectors.items():
                assert read.named_vectors[vector_name].tobytes() == vectors.tobytes()
            assert read.sparse_vectors == written.sparse_vectors
            info = engine.get_collection(name)
            assert info is not None and info.schema.key == key_type
            assert [v.name for v in info.schema.vectors] == [v.name for v in schema.vectors]
            if key_type != "string":
                with pytest.raises(DrconsoleError) as refused:
                    engine.upsert(name, batch(["not-a-key"], np.zeros((1, 6)), [None]))
                assert adapter.classify(refused.value) == ErrorKind.INVALID

    def test_count_of_a_filter_is_what_the_reference_evaluator_counts(
        self, engine: Engine, corpus: list[dict[str, Any] | None]
    ) -> None:
        rng = random.Random(7)
        compared, differences = 0, []
        while compared < FILTERS:
            where = generated_filter(rng)
            if check_filter(where):
                continue
            tree = parse_where(where)
            expected = sum(1 for metadata in corpus if evaluate(tree, metadata))
            actual = engine.count("corpus", tree)
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
    def test_the_edge_cases_of_the_reference_semantics(
        self, engine: Engine, corpus: list[dict[str, Any] | None], where, count_of
    ) -> None:
        expected = sum(1 for m in corpus if m is not None and count_of(m))
        tree = parse_where(where)
        assert engine.count("corpus", tree) == expected
        assert sum(1 for m in corpus if evaluate(tree, m)) == expected

    def test_a_filtered_query_returns_only_matching_records(
        self, engine: Engine, corpus: list[dict[str, Any] | None]
    ) -> None:
        rng = random.Random(11)
        for where in ({"s": "a"}, {"tags": {"$contains": "b"}}, {"n": {"$gt": 1}}):
            tree = parse_where(where)
            vector = np.asarray([[rng.gauss(0, 1) for _ in range(4)]], dtype=np.float32)
            result = engine.query("corpus", vector, 20, tree)[0]
            assert result.ids, where
            assert all(evaluate(tree, metadata) for metadata in result.metadatas), where

    def test_the_nearest_record_of_a_stored_vector_is_itself(self, engine: Engine) -> None:
        vectors = np.random.default_rng(3).standard_normal((200, 8)).astype(np.float32)
        engine.create_collection("nearest", CollectionSchema.dense(8, "l2"))
        ids = [f"v{n}" for n in range(200)]
        engine.upsert("nearest", batch(ids, vectors, [None] * 200))
        results = engine.query("nearest", vectors[:20], 3)
        assert [result.ids[0] for result in results] == ids[:20]
        assert all(result.distances == sorted(result.distances) for result in results)

    def test_a_scan_under_a_concurrent_writer_returns_every_record_once(
        self, adapter: EngineAdapter, engine: Engine
    ) -> None:
        """Between the scan's first and second page another thread deletes 50 records the
        scan has not read yet and adds 30: the scan returns exactly the survivors and the
        new ones, each once, and its window says what it saw. An engine that reads at one
        instant returns exactly the records of the scan's start, and sees no change."""
        vectors = np.random.default_rng(5).standard_normal((1000, 4))
        ids = [f"s{n:04d}" for n in range(1000)]
        engine.create_collection(
            "scanned", declared(adapter, CollectionSchema.dense(4, "l2"), [{"n": 1}])
        )
        engine.upsert("scanned", batch(ids, vectors, [{"n": n} for n in range(1000)]))
        window = ScanWindow()
        pages = engine.scan("scanned", 100, window)
        seen = list(next(pages).ids)
        doomed = [record_id for record_id in ids[-50:] if record_id not in seen]
        added = [f"new{n}" for n in range(30)]

        def write() -> None:
            engine.delete("scanned", doomed)
            engine.upsert("scanned", batch(added, vectors[:30], [{"n": -1}] * 30))

        writer = threading.Thread(target=write)
        writer.start()
        writer.join()
        seen += [record_id for page in pages for record_id in page.ids]
        assert len(seen) == len(set(seen)), "no record twice"
        assert doomed, "the writer deleted records the scan had not read"
        if adapter.can(Capability.CONSISTENT_READ):
            assert set(seen) == set(ids)
            assert (window.listed, window.changes_seen) == (1000, 0)
        else:
            assert set(seen) == (set(ids) - set(doomed)) | set(added)
            assert (window.listed, window.deleted, window.added) == (1000, len(doomed), 30)
        assert engine.count("scanned") == 1000 - len(doomed) + 30

    def test_a_resent_batch_changes_nothing(self, adapter: EngineAdapter, engine: Engine) -> None:
        vectors = np.random.default_rng(9).standard_normal((50, 4))
        sent = batch(
            [f"i{n}" for n in range(50)], vectors, [{"n": n, "tags": ["x"]} for n in range(50)]
        )
        engine.create_collection(
            "idempotent", declared(adapter, CollectionSchema.dense(4, "ip"), sent.metadatas)
        )
        engine.upsert("idempotent", sent)
        first = RecordBatch.join(list(engine.scan("idempotent", 100)), 4)
        engine.upsert("idempotent", sent)
        engine.upsert("idempotent", sent.slice(10, 20))
        again = RecordBatch.join(list(engine.scan("idempotent", 100)), 4)
        assert engine.count("idempotent") == 50
        assert sorted(again.ids) == sorted(first.ids)
        by_id = dict(zip(first.ids, first.metadatas, strict=True))
        assert all(by_id[i] == m for i, m in zip(again.ids, again.metadatas, strict=True))

    def test_a_rename_moves_the_collection_in_one_step(
        self, adapter: EngineAdapter, engine: Engine
    ) -> None:
        if not adapter.can(Capability.RENAME):
            pytest.skip(f"{adapter.name} declares no rename")
        engine.create_collection(
            "before",
            declared(adapter, CollectionSchema.dense(4, "l2"), [{"n": 1}]),
            {"owner": "kb"},
        )
        engine.upsert("before", batch(["a"], np.ones((1, 4)), [{"n": 1}]))
        engine.rename_collection("before", "after")
        assert engine.get_collection("before") is None
        info = engine.get_collection("after")
        assert info is not None and info.metadata.get("owner") == "kb"
        assert engine.count("after") == 1

    def test_errors_are_engine_errors_and_classified(
        self, adapter: EngineAdapter, engine: Engine
    ) -> None:
        with pytest.raises(EngineError) as missing:
            engine.upsert("nowhere", batch(["a"], np.ones((1, 4)), [None]))
        assert adapter.classify(missing.value) is ErrorKind.NOT_FOUND
        engine.create_collection("sized", CollectionSchema.dense(4, "l2"))
        engine.upsert("sized", batch(["a"], np.ones((1, 4)), [None]))
        with pytest.raises(EngineError) as wrong:
            engine.upsert("sized", batch(["b"], np.ones((1, 5)), [None]))
        assert adapter.classify(wrong.value) is ErrorKind.INVALID
        assert adapter.classify(ValueError("not an engine's")) is ErrorKind.UNKNOWN

    def test_the_adapter_declares_itself(self, adapter: EngineAdapter, engine: Engine) -> None:
        assert engine.info().engine == adapter.name
        assert set(adapter.distances) >= {"cosine", "l2", "ip"}
        assert adapter.filter_operators >= {"and", "or", "eq"}
        assert adapter.tested_against
        assert set(adapter.default_namespace()) <= {option.name for option in adapter.options}
