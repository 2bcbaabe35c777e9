"""The engine contract on the in-process reference engine."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from engine_contract import EngineContract

from drconsole.engines.adapter import EngineAdapter
from drconsole.engines.memory import ADAPTER
from drconsole.engines.memory.engine import MemoryEngine, forget

_servers = itertools.count()


class TestMemoryContract(EngineContract):
    @pytest.fixture
    def adapter(self) -> EngineAdapter:
        return ADAPTER

    @pytest.fixture
    def engine(self) -> Iterator[MemoryEngine]:
        url = f"memory://contract-{next(_servers)}"
        engine = ADAPTER.open(url, {"database": "contract"}, None)
        engine.ensure_namespace()
        try:
            yield engine
        finally:
            engine.close()
            forget(url)
