"""The engine contract on a real PostgreSQL 18 with pgvector: every test in a schema of
its own."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from engine_contract import EngineContract

from drconsole.engines.adapter import EngineAdapter
from drconsole.engines.pgvector import ADAPTER
from drconsole.engines.pgvector.engine import PgVectorEngine
from drconsole.engines.pgvector.server import PostgresServer

pytestmark = pytest.mark.integration

_schemas = itertools.count()


class TestPgVectorContract(EngineContract):
    @pytest.fixture
    def adapter(self) -> EngineAdapter:
        return ADAPTER

    @pytest.fixture
    def engine(self, postgres: PostgresServer) -> Iterator[PgVectorEngine]:
        engine = ADAPTER.open(
            postgres.url, {"schema": f"contract{next(_schemas):04d}"}, postgres.password
        )
        engine.ensure_namespace()
        try:
            yield engine
        finally:
            engine.close()
