"""What the pgvector benchmarks share: a PostgreSQL 18 with pgvector (the sandbox
starter), a source table of N x 384-d rows with fields and an HNSW index, filled by
binary COPY, and a minimal psycopg connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from drconsole.engines.pgvector.codecs import binary_dumper, encode, register_types
from drconsole.engines.pgvector.server import PostgresServer

DIMENSION = 384
COLUMNS = (
    "id bigint primary key, embedding vector(384) not null, title text not null, "
    "n bigint, score double precision, tenant_id text, created timestamptz"
)
COPY_TYPES = ["int8", "vector", "text", "int8", "float8", "text", "timestamptz"]
INDEX = "using hnsw (embedding vector_cosine_ops) with (m = 16, ef_construction = 64)"
BUILD = ("set maintenance_work_mem = '256MB'", "set max_parallel_maintenance_workers = 2")
"""The settings drconsole builds indexes with after a load: the bare script uses them too."""


def start(folder: Path) -> PostgresServer:
    server = PostgresServer(folder / "postgres")
    server.start()
    return server


def connect(server: PostgresServer) -> Any:
    connection = server.connect()
    connection.autocommit = True
    connection.execute("create extension if not exists vector")
    for oid in register_types(connection).values():
        connection.adapters.register_dumper(None, binary_dumper(oid))
    return connection


def rows(count: int, seed: int = 7) -> list[tuple[Any, ...]]:
    """The table's rows, vectors already in pgvector's binary format."""
    import datetime as dt

    vectors = np.random.default_rng(seed).standard_normal((count, DIMENSION)).astype(np.float32)
    start_time = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return [
        (
            n,
            encode("vector", vectors[n], DIMENSION),
            f"document {n} about things",
            n % 1000,
            n / 7,
            f"tenant-{n % 8}",
            start_time + dt.timedelta(seconds=n),
        )
        for n in range(count)
    ]


def create_source(
    connection: Any, schema: str, data: list[tuple[Any, ...]], *, index: bool = True
) -> None:
    """The source table, with its HNSW index unless a benchmark does not need it."""
    connection.execute(f"create schema {schema}")
    connection.execute(f"create table {schema}.items ({COLUMNS})")
    copy_in(connection, f"{schema}.items", data)
    if index:
        for setting in BUILD:
            connection.execute(setting)
        connection.execute(f"create index items_embedding_idx on {schema}.items {INDEX}")
    connection.execute(f"analyze {schema}.items")


def copy_in(connection: Any, table: str, data: list[tuple[Any, ...]]) -> None:
    with connection.cursor().copy(f"copy {table} from stdin (format binary)") as copy:
        copy.set_types(COPY_TYPES)
        for row in data:
            copy.write_row(row)


def ratio_line(label: str, ours: list[float], theirs: list[float], goal: str) -> str:
    import statistics

    ratios = [mine / bare for mine, bare in zip(ours, theirs, strict=True)]
    return (
        f"{label}: drconsole median {statistics.median(ours):.2f} s "
        f"[{min(ours):.2f}-{max(ours):.2f}], bare median {statistics.median(theirs):.2f} s "
        f"[{min(theirs):.2f}-{max(theirs):.2f}]; ratio median {statistics.median(ratios):.2f}x "
        f"[{min(ratios):.2f}-{max(ratios):.2f}] ({goal})"
    )
