"""What the Milvus adapter refuses rather than get wrong, on a real Milvus 2.3.5: the one
key Milvus stores but never returns, and filters Milvus would run with another meaning
(counted here instead, exactly; refused for a search)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from drconsole.engines.adapter import ErrorKind
from drconsole.engines.milvus import ADAPTER
from drconsole.engines.milvus.engine import MilvusEngine
from drconsole.engines.milvus.server import MilvusServer
from drconsole.errors import EngineError
from drconsole.model.filters import evaluate, parse_where
from drconsole.model.schema import CollectionSchema, Distance, KeyType, VectorSpec
from drconsole.records import RecordBatch

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("milvus")]


@pytest.fixture
def engine(milvus: MilvusServer, milvus_database: str) -> Iterator[MilvusEngine]:
    engine = ADAPTER.open(milvus.url, {"database": milvus_database}, milvus.password)
    engine.ensure_namespace()
    yield engine
    engine.close()


def test_the_highest_64_bit_key_is_refused_naming_why(engine: MilvusEngine) -> None:
    engine.create_collection(
        "keys", CollectionSchema((VectorSpec("v", 4, Distance.L2),), key=KeyType.INT)
    )
    batch = RecordBatch([str(2**63 - 1)], np.ones((1, 4), np.float32), [None], [None], [None])
    with pytest.raises(EngineError) as refused:
        engine.upsert("keys", batch)
    assert "never returns it" in refused.value.message
    assert ADAPTER.classify(refused.value) is ErrorKind.INVALID
    assert engine.count("keys") == 0


def test_a_filter_on_a_32_bit_float_is_counted_here_and_refused_for_a_search(
    milvus: MilvusServer, milvus_database: str, engine: MilvusEngine
) -> None:
    """Milvus rounds the operand to 32 bits before comparing with a FLOAT field, so
    ``score == 0.1`` would match a stored 0.1f: the count is evaluated here instead (the
    reference's answer), and a search with that filter is refused, naming the field."""
    client = milvus.client(milvus_database)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("score", DataType.FLOAT)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection("scores", schema=schema, index_params=index)
    values = [0.1, 0.5, 0.25, 1 / 3]
    client.insert(
        "scores",
        [{"id": f"s{n}", "v": [float(n)] * 4, "score": value} for n, value in enumerate(values)],
    )
    read = engine.get_records("scores", [f"s{n}" for n in range(4)])
    for where in ({"score": 0.1}, {"score": {"$gte": 0.25}}, {"score": {"$in": [0.5, 0.1]}}):
        tree = parse_where(where)
        expected = sum(1 for metadata in read.metadatas if evaluate(tree, metadata))
        assert engine.count("scores", tree) == expected, where
        with pytest.raises(EngineError) as refused:
            engine.query("scores", np.ones((1, 4), np.float32), 2, tree)
        assert "score is a 32-bit FLOAT" in refused.value.message
    client.close()


def test_a_wrong_password_is_named_an_authentication_failure(milvus: MilvusServer) -> None:
    """pymilvus says "Fail connecting to server" for a refused password as for a server
    that is down; the server answers, so drconsole says it refused the connection, blames
    the credentials, and does not try again."""
    engine = ADAPTER.open(milvus.url, {}, "not-the-password")
    with pytest.raises(EngineError) as refused:
        engine.info()
    assert ADAPTER.classify(refused.value) is ErrorKind.AUTH
    assert "refused the connection" in refused.value.message
    assert "tried" not in refused.value.message
    assert refused.value.hint and "password" in refused.value.hint
