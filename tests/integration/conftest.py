"""Real servers for integration tests, started once per test run on 127.0.0.1."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from drconsole.catalog.local import LocalStore
from drconsole.catalog.s3 import S3Store
from drconsole.catalog.store import ObjectStore
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.engines.milvus.server import MilvusServer, ObjectStorage
from drconsole.engines.pgvector.server import PostgresServer
from drconsole.sandbox import SeaweedS3, start_server

BUCKET = "drconsole-tests"
MILVUS_BUCKET = "milvus-data"
_prefixes = itertools.count()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    folder = tmp_path_factory.mktemp("seaweedfs")
    server = start_server(lambda: SeaweedS3(folder))
    try:
        server.create_bucket(BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_credentials(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """An env: reference to the server's real credentials."""
    monkeypatch.setenv("DRCONSOLE_TEST_S3", seaweed.credentials_value)
    return "env:DRCONSOLE_TEST_S3"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """A fresh, empty catalog store: a local folder, or a new prefix on SeaweedFS S3."""
    if request.param == "local":
        return LocalStore(tmp_path / "catalog")
    seaweed = request.getfixturevalue("seaweed")
    credentials = request.getfixturevalue("s3_credentials")
    return S3Store(
        BUCKET,
        f"test-{next(_prefixes)}-{tmp_path.name}",
        endpoint=seaweed.endpoint,
        credentials=credentials,
    )


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One real PostgreSQL 18 with pgvector for the run, as an unprivileged user."""
    folder = tmp_path_factory.mktemp("postgres")
    server = start_server(lambda: PostgresServer(folder / "server", durable=False))
    try:
        yield server
    finally:
        server.discard()


_databases = itertools.count()


@pytest.fixture(scope="session")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One real Chroma server for the run; tests keep apart by database."""
    folder = tmp_path_factory.mktemp("chroma")
    server = start_server(lambda: ChromaServer(folder))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def chroma_target(chroma: ChromaServer) -> dict[str, str]:
    """A runbook target for a fresh, empty database on the shared server."""
    return {
        "engine": "chroma",
        "url": chroma.url,
        "tenant": "default_tenant",
        "database": f"db{next(_databases):04d}",
    }


@pytest.fixture
def source_engine(chroma: ChromaServer) -> Iterator[ChromaEngine]:
    """The "production" database: its own, empty, on the shared server."""
    engine = ChromaEngine(chroma.url, database=f"prod{next(_databases):04d}")
    engine.ensure_namespace()
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def milvus(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[MilvusServer]:
    """One real Milvus 2.3.5 for the run (its test modules share one xdist worker), in a
    network namespace of its own, authorization on, its data in a bucket of the test
    SeaweedFS (so a server-side import reads what drconsole put there)."""
    seaweed.create_bucket(MILVUS_BUCKET)
    storage = ObjectStorage(seaweed.endpoint, MILVUS_BUCKET, *seaweed.keys)
    folder = tmp_path_factory.mktemp("milvus")
    server = start_server(lambda: MilvusServer(folder / "server", storage))
    try:
        yield server
    finally:
        server.discard()


@pytest.fixture
def milvus_database(milvus: MilvusServer) -> str:
    """A fresh database name on the shared server (made by the test's engine)."""
    return f"db{next(_databases):04d}"
