"""What the pgvector adapter lets a manifest put into SQL: recorded column types and
index definitions are rebuilt from fixed parts, and anything else is refused; names too
long for PostgreSQL are cut and kept unique; pgvector's binary formats round-trip."""

from __future__ import annotations

import numpy as np
import pytest
from psycopg import sql

from drconsole.engines.pgvector.codecs import (
    NotRepresentable,
    dump_bits,
    dump_halfvec,
    dump_sparse,
    dump_vector,
    load_column,
    load_sparse,
)
from drconsole.engines.pgvector.table import (
    UnsafeDefinition,
    column_type,
    define_table,
    fit_name,
    index_name,
)
from drconsole.model.schema import CollectionSchema
from drconsole.records import SparseVector


def _text(composable: sql.Composable) -> str:
    return composable.as_string(None)


@pytest.mark.parametrize(
    "recorded",
    [
        "text",
        "character varying(40)",
        "numeric(10,2)",
        "timestamp(3) with time zone",
        "timestamp without time zone",
        "vector(384)",
        "halfvec(4)",
        "bit(64)",
        "integer[]",
        "character varying(8)[]",
        "jsonb",
    ],
)
def test_recorded_column_types_are_rebuilt_as_they_were(recorded: str) -> None:
    assert _text(column_type(recorded)) == recorded


@pytest.mark.parametrize(
    "hostile",
    [
        "text); drop table users; --",
        "text default 'x'",
        "integer check (true)",
        'vector(384) collate "C"',
        "bytea",
        "text with time zone",
        "int4 references other(id)",
        "text[][]",
        "numeric(1,2,3)",
    ],
)
def test_anything_else_in_a_type_is_refused(hostile: str) -> None:
    with pytest.raises(UnsafeDefinition):
        column_type(hostile)


def _indexed(index: dict) -> CollectionSchema:
    return CollectionSchema.dense(
        4, "l2", engine_config={"pgvector": {"primary_key": "id", "indexes": [index]}}
    )


GOOD_INDEX = {
    "name": "{table}_embedding_idx",
    "method": "hnsw",
    "unique": False,
    "partial": False,
    "columns": ["embedding"],
    "opclasses": ["vector_cosine_ops"],
    "options": ["m=16", "ef_construction=64"],
}


def test_a_recorded_index_is_rebuilt_from_identifiers_and_literals() -> None:
    definition = define_table("s", "docs", _indexed(GOOD_INDEX), set())
    assert definition.unrestorable == []
    [(name, statement)] = definition.indexes
    assert name == "docs_embedding_idx"
    assert _text(statement) == (
        'create index if not exists "docs_embedding_idx" on "s"."docs" using hnsw '
        '("embedding" "vector_cosine_ops") with ("m" = 16, "ef_construction" = 64)'
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"method": "hnsw); drop table x; --"}, "method"),
        ({"opclasses": ["vector_l2_ops) where (true"]}, "operator classes"),
        ({"options": ["m=16); drop table x"]}, "options"),
        ({"options": ["fillfactor='90'"]}, "options"),
        ({"partial": True}, "predicate or expressions"),
        ({"columns": []}, "method"),
    ],
)
def test_a_hostile_index_definition_is_named_and_not_created(change: dict, why: str) -> None:
    definition = define_table("s", "docs", _indexed({**GOOD_INDEX, **change}), set())
    assert definition.indexes == []
    assert len(definition.unrestorable) == 1 and why in definition.unrestorable[0]


def test_index_names_follow_their_table_and_never_collide() -> None:
    assert index_name("{table}_embedding_idx", "docs.staging.3f9a", set()) == (
        "docs.staging.3f9a_embedding_idx"
    )
    assert index_name("kb_tenant", "docs", set()) == "kb_tenant"
    assert index_name("kb_tenant", "docs", {"kb_tenant"}) == "docs_kb_tenant"
    long = "x" * 60
    cut = fit_name(f"{long}_embedding_idx")
    assert len(cut.encode()) <= 63 and cut != fit_name(f"{long}_embedding_idy")


def test_pgvector_binary_values_round_trip_exactly() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((5, 7)).astype(np.float32)
    loaded = load_column("vector", [dump_vector(v) for v in vectors], 7)
    assert loaded.tobytes() == vectors.tobytes()
    halves = vectors.astype(np.float16).astype(np.float32)
    assert load_column("halfvec", [dump_halfvec(v) for v in halves], 7).tobytes() == (
        halves.tobytes()
    )
    with pytest.raises(NotRepresentable):
        dump_halfvec(np.array([0.1], dtype=np.float32))
    bits = np.array([[1, 0, 1, 1, 0, 0, 0, 1, 1]], dtype=np.float32)
    assert np.array_equal(load_column("bit", [dump_bits(bits[0])], 9), bits)
    with pytest.raises(NotRepresentable):
        dump_bits(np.array([0.5], dtype=np.float32))
    sparse = SparseVector.of([0, 9, 99], [1.5, -2.0, 1e-30])
    assert load_sparse(dump_sparse(sparse, 100)) == sparse
    with pytest.raises(NotRepresentable):
        dump_sparse(sparse, 50)


def test_a_null_vector_reads_as_a_vector_without_a_value() -> None:
    vector = np.array([1, 2, 3], dtype=np.float32)
    loaded = load_column("vector", [None, dump_vector(vector), None], 3)
    assert np.isnan(loaded[0]).all() and np.isnan(loaded[2]).all()
    assert loaded[1].tobytes() == vector.tobytes()


def test_names_derived_from_a_scoped_collection_keep_its_scope() -> None:
    """``tenant_acme:docs`` is table docs in schema tenant_acme: its lease, staging and
    aside names stay in that schema, and a plain name is left as it was."""
    from drconsole.actions.cutover import replaced_name
    from drconsole.actions.lease import lease_name
    from drconsole.actions.restore_schema import staging_name
    from drconsole.engines.pgvector.engine import PgVectorEngine

    engine = PgVectorEngine("postgresql://u@127.0.0.1:1/db", schema="public")
    assert lease_name("kb") == "drconsole.lease.kb"
    for derived in (
        lease_name("tenant_acme:docs"),
        staging_name("tenant_acme:docs", "run-3f9a"),
        replaced_name("tenant_acme:docs", "tenant_acme:docs.staging.3f9a"),
    ):
        assert engine._place(derived)[0] == "tenant_acme", derived
    assert engine._place("docs") == ("public", "docs")
    assert engine._place(lease_name("tenant_acme:docs")) == ("tenant_acme", "drconsole.lease.docs")
