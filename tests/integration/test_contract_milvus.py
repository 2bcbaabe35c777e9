"""The engine contract on a real Milvus 2.3.5: every test in a database of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_contract import EngineContract

from drconsole.engines.adapter import EngineAdapter
from drconsole.engines.milvus import ADAPTER
from drconsole.engines.milvus.engine import MilvusEngine
from drconsole.engines.milvus.server import MilvusServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("milvus")]


class TestMilvusContract(EngineContract):
    INT_KEYS = ("0", "-9223372036854775808", "9223372036854775806")
    """Milvus 2.3 never returns a record keyed 2**63 - 1: see the test of its refusal."""

    @pytest.fixture
    def adapter(self) -> EngineAdapter:
        return ADAPTER

    @pytest.fixture
    def engine(self, milvus: MilvusServer, milvus_database: str) -> Iterator[MilvusEngine]:
        engine = ADAPTER.open(milvus.url, {"database": milvus_database}, milvus.password)
        engine.ensure_namespace()
        try:
            yield engine
        finally:
            engine.close()
