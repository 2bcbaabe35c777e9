"""What the pgvector adapter says when it cannot do its job, on a real PostgreSQL: a
wrong password is an auth error at once (not retried), a server that is not there is
transient (retried), a missing table is not found, a table it cannot protect is named
with why; every message is one line naming the url."""

from __future__ import annotations

import time

import psycopg
import pytest

from drconsole.engines.adapter import ErrorKind
from drconsole.engines.pgvector import ADAPTER
from drconsole.engines.pgvector.engine import PgVectorError, _kind_of
from drconsole.engines.pgvector.server import PostgresServer
from drconsole.sandbox import free_ports

pytestmark = pytest.mark.integration


def test_a_wrong_password_is_refused_at_once_as_an_auth_error(postgres: PostgresServer) -> None:
    engine = ADAPTER.open(postgres.url, {"schema": "public"}, "not-the-password")
    started = time.monotonic()
    with pytest.raises(PgVectorError) as refused:
        engine.list_collections()
    assert time.monotonic() - started < 5, "an auth failure is not retried"
    assert ADAPTER.classify(refused.value) is ErrorKind.AUTH
    assert "password authentication failed" in refused.value.message
    assert "\n" not in refused.value.message and postgres.url in refused.value.message
    assert "not-the-password" not in refused.value.message


def test_a_server_that_is_not_there_is_transient() -> None:
    port = free_ports(1)[0]
    with pytest.raises(psycopg.OperationalError) as failed:
        psycopg.connect(host="127.0.0.1", port=port, user="x", password="y", connect_timeout=2)
    assert _kind_of(failed.value) is ErrorKind.TRANSIENT


def test_tables_it_cannot_use_are_named(postgres: PostgresServer) -> None:
    with postgres.connect() as connection:
        connection.execute("create extension if not exists vector")
        connection.execute("create schema if not exists errs")
        connection.execute("create table if not exists errs.loose (a int)")
    engine = ADAPTER.open(postgres.url, {"schema": "errs"}, postgres.password)
    assert engine.get_collection("missing") is None
    with pytest.raises(PgVectorError) as missing:
        engine.count("missing")
    assert ADAPTER.classify(missing.value) is ErrorKind.NOT_FOUND
    with pytest.raises(PgVectorError, match=r"errs\.loose has no primary key") as loose:
        engine.count("loose")
    assert loose.value.hint and "one text, integer or uuid column" in loose.value.hint
    assert ADAPTER.classify(loose.value) is ErrorKind.INVALID, "there, but not protectable"
    assert [info.name for info in engine.list_collections()] == [], "only tables it can protect"
    engine.close()
