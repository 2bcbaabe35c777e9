"""Real servers for integration tests, started once per test run on 127.0.0.1."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from drconsole.catalog.local import LocalStore
from drconsole.catalog.s3 import S3Store
from drconsole.catalog.store import ObjectStore
from drconsole.sandbox import SeaweedS3

BUCKET = "drconsole-tests"
_prefixes = itertools.count()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
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
