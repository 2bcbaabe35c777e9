"""The engine contract on a real Chroma server, and what Chroma refuses of the neutral
filter syntax (the loader refuses it first)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from engine_contract import EngineContract

from drconsole.engines.adapter import EngineAdapter
from drconsole.engines.chroma import ADAPTER
from drconsole.engines.chroma.engine import ChromaEngine, compile_filter
from drconsole.engines.chroma.server import ChromaServer
from drconsole.model.filters import Compare, check_filter
from drconsole.model.schema import CollectionSchema

pytestmark = pytest.mark.integration

_databases = itertools.count()


class TestChromaContract(EngineContract):
    @pytest.fixture
    def adapter(self) -> EngineAdapter:
        return ADAPTER

    @pytest.fixture
    def engine(self, chroma: ChromaServer) -> Iterator[ChromaEngine]:
        options = {"tenant": "default_tenant", "database": f"contract{next(_databases):04d}"}
        engine = ADAPTER.open(chroma.url, options, None)
        engine.ensure_namespace()
        try:
            yield engine
        finally:
            engine.close()


@pytest.mark.parametrize(
    "where",
    [
        {"s": {"$in": ["en", 1, True]}},
        {"n": {"$in": [2001, 2002.0]}},
        {"n": {"$nin": [1, True]}},
    ],
)
def test_what_chroma_refuses_is_refused_at_load_time(chroma: ChromaServer, where: Any) -> None:
    """These are not valid neutral filters either; sent raw, Chroma refuses them too."""
    assert check_filter(where), "the loader refuses it"
    engine = ChromaEngine(chroma.url, database=f"contract{next(_databases):04d}")
    engine.ensure_namespace()
    engine.create_collection("refusals", CollectionSchema.dense(2, "l2"))
    field, condition = next(iter(where.items()))
    operator, operand = next(iter(condition.items()))
    raw = Compare(field, operator[1:], tuple(operand))
    with pytest.raises(Exception, match="Invalid where clause"):
        engine.count("refusals", raw)
    assert compile_filter(raw) == where
    engine.close()
