"""The PostgreSQL sandbox server: a real PostgreSQL 18 with pgvector, started as an
unprivileged user when we are root, on 127.0.0.1 only, every connection authenticated
with a password nobody else sees, and stopped without a trace."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from drconsole.engines.pgvector.server import DATABASE, SUPERUSER, PostgresServer
from drconsole.sandbox import start_server


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def test_a_real_postgres_with_pgvector_as_an_unprivileged_user(postgres: PostgresServer) -> None:
    with postgres.connect() as connection:
        connection.execute("create extension if not exists vector")
        version, pgvector = connection.execute(
            "select current_setting('server_version'), extversion from pg_extension "
            "where extname = 'vector'"
        ).fetchone()  # type: ignore[misc]
        assert version.startswith("18.") and pgvector.startswith("0.8.")
        assert connection.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
        backend = connection.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        distance = connection.execute("select '[1,2,3]'::vector <-> '[1,2,5]'").fetchone()
        assert distance == (2.0,)
        assert postgres.pid is not None
        if os.geteuid() == 0:  # the backend lives while its connection does
            assert _uid_of(postgres.pid) != 0 and _uid_of(backend) != 0, "PostgreSQL as root"
    exposed = Path(f"/proc/{postgres.pid}/cmdline").read_bytes()
    exposed += Path(f"/proc/{postgres.pid}/environ").read_bytes()
    assert postgres.password.encode() not in exposed
    assert not list(postgres.cluster.glob("*password*")), "initdb's password file is gone"


def test_every_connection_needs_the_password(postgres: PostgresServer) -> None:
    for password in ("", "wrong-password"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(
                host="127.0.0.1",
                port=postgres.port,
                user=SUPERUSER,
                password=password,
                dbname=DATABASE,
                connect_timeout=5,
            )
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=str(postgres.cluster), port=postgres.port, user=SUPERUSER)


def test_a_stopped_server_leaves_no_process_and_starts_again_on_its_data(tmp_path: Path) -> None:
    first = start_server(lambda: PostgresServer(tmp_path / "pg", durable=False))
    with first.connect() as connection:
        connection.execute("create table kept (n int)")
        connection.execute("insert into kept values (42)")
    pid = first.pid
    first.stop()
    assert pid is not None and not Path(f"/proc/{pid}").exists()
    again = PostgresServer(tmp_path / "pg", durable=False)
    again.password = first.password  # the cluster keeps the password it was made with
    again.start()
    try:
        with again.connect() as connection:
            assert connection.execute("select n from kept").fetchall() == [(42,)]
    finally:
        again.discard()
    assert not again.cluster.exists() or again.cluster == again.workdir
    assert not (tmp_path / "pg" / "data").exists()
