"""A PostgreSQL table described in the neutral model, on a real PostgreSQL 18 with
pgvector: key type, every vector column with the distance and parameters of its index,
typed fields, and the access state (grants, row-level security, policies)."""

from __future__ import annotations

import itertools

import pytest

from drconsole.engines.pgvector.introspect import TableUnknown, describe_table
from drconsole.engines.pgvector.server import PostgresServer
from drconsole.model.schema import (
    Distance,
    ElementType,
    FieldSpec,
    FieldType,
    Grant,
    IndexSpec,
    KeyType,
    ScalarType,
    SparseVectorSpec,
    VectorSpec,
)

_schemas = itertools.count()

TABLE = """
create table {s}.docs (
    id uuid primary key,
    embedding vector(8) not null,
    image halfvec(4),
    terms sparsevec(1000),
    signature bit(64),
    title text not null,
    n int,
    score double precision,
    flag boolean,
    created timestamptz,
    meta jsonb,
    tags text[],
    tenant_id text
);
create index docs_embedding on {s}.docs using hnsw (embedding vector_cosine_ops)
    with (m = 24, ef_construction = 100);
create index docs_image on {s}.docs using ivfflat (image halfvec_l2_ops) with (lists = 10);
create index docs_tenant on {s}.docs (tenant_id);
alter table {s}.docs enable row level security;
create policy tenant_rows on {s}.docs for select to kb_reader
    using (tenant_id = current_setting('app.tenant'));
grant select on {s}.docs to kb_reader;
"""


@pytest.fixture
def schema(postgres: PostgresServer) -> str:
    name = f"t{next(_schemas)}"
    with postgres.connect() as connection:
        connection.execute("create extension if not exists vector")
        connection.execute(
            "do $$ begin create role kb_reader; exception when duplicate_object then null; end $$"
        )
        connection.execute(f"create schema {name}")
        connection.execute(TABLE.format(s=name))
    return name


def test_a_table_is_described_as_postgres_has_it(postgres: PostgresServer, schema: str) -> None:
    with postgres.connect() as connection:
        described = describe_table(connection, schema, "docs")
    assert described.key == KeyType.UUID
    assert described.vectors == (
        VectorSpec(
            "embedding",
            8,
            Distance.COSINE,
            index=IndexSpec("hnsw", {"m": 24, "ef_construction": 100, "ef_search": 40}),
        ),
        VectorSpec(
            "image",
            4,
            Distance.L2,
            ElementType.FLOAT16,
            IndexSpec("ivf_flat", {"lists": 10, "probes": 1}),
        ),
        VectorSpec("signature", 64, Distance.HAMMING, ElementType.BIT),
    )
    assert described.sparse_vectors == (SparseVectorSpec("terms"),)
    fields = {field.name: field for field in described.fields}
    assert fields["title"] == FieldSpec("title", FieldType(ScalarType.STRING), nullable=False)
    assert {name: str(field.type) for name, field in fields.items()} == {
        "title": "string",
        "n": "int",
        "score": "float",
        "flag": "bool",
        "created": "datetime",
        "meta": "json",
        "tags": "string[]",
        "tenant_id": "string",
    }
    assert [name for name, field in fields.items() if field.indexed] == ["tenant_id"]
    assert described.access.grants == (Grant("kb_reader", "select"),)
    config = described.engine_config["pgvector"]
    assert config["row_level_security"] == {"enabled": True, "forced": False}
    assert config["policies"] == {
        "tenant_rows": {
            "command": "r",
            "permissive": True,
            "roles": ["kb_reader"],
            "using": "(tenant_id = current_setting('app.tenant'::text))",
            "with_check": None,
        }
    }
    assert config["roles"] == {
        "kb_reader": {"login": False, "bypass_row_level_security": False, "superuser": False}
    }
    assert config["primary_key"] == "id" and config["columns"]["embedding"] == "vector"


def test_tables_it_cannot_protect_are_refused_by_name(
    postgres: PostgresServer, schema: str
) -> None:
    with postgres.connect() as connection:
        connection.execute(f"create table {schema}.pairs (a int, b int, primary key (a, b))")
        connection.execute(f"create table {schema}.loose (a int)")
        connection.execute(f"create table {schema}.pointed (p bytea primary key)")
        for table, why in (
            ("missing", f"no table {schema}.missing"),
            ("pairs", "a composite primary key"),
            ("loose", "no primary key"),
            ("pointed", "keyed by a bytea column"),
        ):
            with pytest.raises(TableUnknown, match=why):
                describe_table(connection, schema, table)
        with pytest.raises(TableUnknown):  # a name is a value, never SQL
            describe_table(connection, schema, "docs; drop table docs")
        assert describe_table(connection, schema, "docs").key == KeyType.UUID
