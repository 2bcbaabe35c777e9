"""Error paths of the Chroma adapter that a real server cannot be made to produce on
demand: 5xx answers, refused connections, and how each is reported."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from drconsole.actions.restore_schema import differences
from drconsole.engines.chroma.engine import (
    ChromaEngine,
    ChromaError,
    creation_settings,
    encode_embeddings,
    to_schema,
    unrestorable,
)
from drconsole.model.schema import CollectionSchema, IndexSpec

URL = "http://chroma.test:8000"


def _engine(handler, sleeps: list[float]) -> ChromaEngine:
    return ChromaEngine(
        URL, token="s3cr3t-token", transport=httpx.MockTransport(handler), sleep=sleeps.append
    )


def test_5xx_is_retried_with_backoff_then_succeeds() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, json={"error": "Unavailable", "message": "warming up"})
        return httpx.Response(200, json="1.0.0")

    sleeps: list[float] = []
    assert _engine(handler, sleeps).info().server_version == "1.0.0"
    assert len(calls) == 3
    assert sleeps == [0.5, 1.0]
    assert calls[0].headers["x-chroma-token"] == "s3cr3t-token"


def test_connection_errors_are_retried_then_reported_without_the_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sleeps: list[float] = []
    with pytest.raises(ChromaError) as caught:
        _engine(handler, sleeps).heartbeat()
    assert (
        "did not answer GET /heartbeat after 6 attempts (ConnectError: connection refused)"
        in caught.value.message
    )
    assert URL in caught.value.message
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert "s3cr3t-token" not in caught.value.message + (caught.value.hint or "")


def test_4xx_is_not_retried_and_carries_the_server_message() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            400, json={"error": "InvalidArgumentError", "message": "Invalid where clause"}
        )

    with pytest.raises(ChromaError) as caught:
        _engine(handler, []).heartbeat()
    assert len(calls) == 1
    assert caught.value.status == 400
    assert (
        caught.value.message
        == "Chroma GET /heartbeat: HTTP 400: InvalidArgumentError: Invalid where clause"
    )


def test_a_recreated_collection_is_looked_up_again() -> None:
    ids = iter(["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"])
    current = {"id": next(ids)}
    posted = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/collections/kb_articles"):
            return httpx.Response(
                200,
                json={
                    "id": current["id"],
                    "name": "kb_articles",
                    "dimension": 2,
                    "configuration_json": {"hnsw": {"space": "l2"}},
                    "metadata": None,
                },
            )
        if path.endswith("/pre-flight-checks"):
            return httpx.Response(200, json={"max_batch_size": 100})
        if current["id"] not in path:
            return httpx.Response(404, json={"error": "NotFoundError", "message": "does not exist"})
        posted.append(path)
        return httpx.Response(200, json=7)

    engine = _engine(handler, [])
    assert engine.count("kb_articles") == 7
    current["id"] = next(ids)
    assert engine.count("kb_articles") == 7
    assert posted[-1].split("/")[-2] == current["id"]


def test_schema_round_trips_through_engine_config() -> None:
    raw = {
        "id": "x",
        "name": "kb",
        "dimension": 384,
        "metadata": {"embedding_model": "m"},
        "configuration_json": {
            "hnsw": {
                "space": "cosine",
                "ef_construction": 200,
                "max_neighbors": 32,
                "ef_search": 100,
                "resize_factor": 1.2,
                "sync_threshold": 1000,
            },
            "spann": None,
            "embedding_function": {"type": "legacy"},
        },
    }
    schema = to_schema(raw)
    assert (schema.dimension, schema.distance) == (384, "cosine")
    assert schema.index == IndexSpec("hnsw", {"m": 32, "ef_construction": 200, "ef_search": 100})
    assert creation_settings(schema) == {
        "configuration": {
            "hnsw": {
                "space": "cosine",
                "ef_construction": 200,
                "max_neighbors": 32,
                "ef_search": 100,
                "resize_factor": 1.2,
                "sync_threshold": 1000,
            },
            "embedding_function": {"type": "legacy"},
        }
    }
    neutral = CollectionSchema.dense(8, "ip", index=IndexSpec("hnsw", {"m": 12, "ef_search": 9}))
    assert creation_settings(neutral) == {
        "configuration": {"hnsw": {"max_neighbors": 12, "ef_search": 9, "space": "ip"}}
    }
    with_schema = to_schema({**raw, "schema": {"keys": {"#document": {"string": {}}}}})
    assert creation_settings(with_schema) == {"schema": {"keys": {"#document": {"string": {}}}}}


def test_embeddings_are_base64_little_endian_float32() -> None:
    vectors = np.array([[0.1, 0.2, 0.3]], dtype=np.float32)
    assert encode_embeddings(vectors) == ["zczMPc3MTD6amZk+"]


def test_what_chroma_cannot_take_back_is_named() -> None:
    assert unrestorable({"embedding_model": "m", "tags": ["a"], "n": 1}) == [
        "metadata.tags (list values cannot be set on a Chroma collection)"
    ]


def test_schema_differences_name_each_setting_not_restored() -> None:
    wanted = {"chroma": {"schema": {"fts": {"enabled": False}, "n": 1}, "metadata": {"a": 1}}}
    actual = {"chroma": {"schema": {"fts": {"enabled": True}, "n": 1.0}, "extra": 2}}
    assert differences(wanted, actual) == [
        "chroma.metadata (missing after the restore)",
        "chroma.schema.fts.enabled: true, not false",
        "chroma.schema.n: 1.0, not 1",
    ]
    assert differences(wanted, wanted) == []
