"""The neutral collection schema: every part of it round-trips through its JSON, hostile
JSON is refused naming the field, manifests written before it still read, and a restore
refuses, before writing anything, a collection its target engine cannot hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drconsole.catalog.local import LocalStore
from drconsole.catalog.manifest import ManifestError, parse_manifest
from drconsole.corpus import CorpusSpec
from drconsole.engines import open_engine
from drconsole.engines.memory.engine import forget
from drconsole.engines.registry import engine_adapter
from drconsole.model.schema import (
    AccessPolicy,
    CollectionSchema,
    Distance,
    ElementType,
    FieldSpec,
    FieldType,
    Grant,
    IndexSpec,
    KeyType,
    RowRule,
    ScalarType,
    SchemaError,
    SparseVectorSpec,
    Tenancy,
    TenancyMode,
    Tenant,
    TenantState,
    VectorSpec,
    legacy_schema,
    parse_schema,
)

from chroma_restore import restore_runbook, run_drill, seed, snapshot

RICH = CollectionSchema(
    vectors=(
        VectorSpec("text", 384, Distance.COSINE, index=IndexSpec("hnsw", {"m": 16})),
        VectorSpec("image", 512, Distance.L1, element=ElementType.FLOAT16),
    ),
    key=KeyType.UUID,
    fields=(
        *(
            FieldSpec(f"{scalar.value}{'s' if array else ''}", FieldType(scalar, array))
            for scalar in ScalarType
            for array in (False, True)
        ),
        FieldSpec(
            "org", FieldType(ScalarType.STRING), nullable=False, indexed=True, is_tenant=True
        ),
    ),
    sparse_vectors=(SparseVectorSpec("bm25", IndexSpec("inverted", {})),),
    tenancy=Tenancy(
        TenancyMode.NATIVE,
        None,
        (
            Tenant("acme"),
            Tenant("globex", TenantState.INACTIVE),
            Tenant("old", TenantState.OFFLOADED),
        ),
    ),
    aliases=("kb", "kb-live"),
    access=AccessPolicy(
        ("reader", "writer"),
        (Grant("reader", "search"), Grant("writer", "insert")),
        (RowRule("reader", {"org": {"$eq": "acme"}}),),
    ),
    engine_config={"milvus": {"consistency": "Strong"}},
)


def test_every_part_of_a_schema_round_trips_through_its_json() -> None:
    again = parse_schema(json.loads(json.dumps(RICH.to_json())))
    assert again == RICH
    assert again.vectors[1].element == "float16"
    assert again.field("org") == FieldSpec(
        "org", FieldType(ScalarType.STRING), nullable=False, indexed=True, is_tenant=True
    )
    assert str(again.field("jsons").type) == "json[]"


@pytest.mark.parametrize(
    ("text", "distance"),
    [("cosine", "cosine"), ("L2", "l2"), ("euclidean", "l2"), ("dot", "ip"), ("manhattan", "l1")],
)
def test_distances_are_named_once_with_their_synonyms(text: str, distance: str) -> None:
    assert Distance.parse(text) == distance


def test_an_unknown_distance_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(SchemaError, match=r"unknown distance 'jaccard' \(one of cosine, l2, ip"):
        Distance.parse("jaccard")


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    raw = RICH.to_json()
    target = raw
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["vectors"], "x", "schema.vectors must be a list"),
        (["vectors", 0, "dimension"], 70000, r"schema.vectors\[0\].dimension must be 0"),
        (["vectors", 0, "dimension"], True, r"schema.vectors\[0\].dimension must be 0"),
        (["vectors", 0, "distance"], "euclidean", r"schema.vectors\[0\].distance must be one of"),
        (["vectors", 0, "element"], "int8", r"schema.vectors\[0\].element must be one of"),
        (["vectors", 1, "name"], "text", "vector names must be unique"),
        (["vectors", 0, "index", "params"], {"nlist": 4}, "not a neutral index parameter"),
        (["vectors", 0, "index", "params"], {"m": "16"}, r"params.m must be a number"),
        (["key"], "bytes", "schema.key must be one of string, int, uuid"),
        (["fields", 0, "type"], "decimal", r"fields\[0\].type: unknown field type 'decimal'"),
        (["fields", 0, "nullable"], "yes", r"fields\[0\].nullable must be true or false"),
        (["fields", 1, "name"], "string", "field names must be unique"),
        (["tenancy", "mode"], "field", "a field is named exactly when the mode is field"),
        (["tenancy", "tenants", 1, "state"], "frozen", r"tenants\[1\].state must be one of"),
        (["tenancy", "tenants", 1, "name"], "acme", "tenant names must be unique"),
        (["aliases", 0], "", r"aliases\[0\] must be a non-empty string"),
        (["access", "row_rules", 0, "where"], [], r"row_rules\[0\].where must be a JSON object"),
        (["engine_config"], [], "schema.engine_config must be a JSON object"),
    ],
)
def test_hostile_schema_json_is_refused_naming_the_field(
    path: list[Any], value: Any, message: str
) -> None:
    with pytest.raises(SchemaError, match=message):
        parse_schema(_broken(path, value))


def test_a_schema_written_before_the_neutral_model_still_reads() -> None:
    schema = legacy_schema(
        {
            "dimension": 8,
            "distance": "cosine",
            "index": {"hnsw": {"max_neighbors": 32, "ef_construction": 200, "space": "cosine"}},
            "metadata_fields": {"tags": "string[]", "n": "int", "odd": "mixed"},
            "engine_config": {"chroma": {"metadata": {"a": 1}}},
        }
    )
    assert schema == CollectionSchema.dense(
        8,
        "cosine",
        index=IndexSpec("hnsw", {"m": 32, "ef_construction": 200}),
        fields=(
            FieldSpec("n", FieldType(ScalarType.INT)),
            FieldSpec("odd", FieldType(ScalarType.JSON)),
            FieldSpec("tags", FieldType(ScalarType.STRING, array=True)),
        ),
        engine_config={"chroma": {"metadata": {"a": 1}}},
    )


def test_a_manifest_keeps_the_whole_schema_and_refuses_one_without_a_dense_vector() -> None:
    manifest = {
        "format": "drconsole-snapshot/2",
        "id": "20261201T000000000Z-kb-F-000000",
        "kind": "full",
        "parent": None,
        "parent_manifest_sha256": None,
        "created_at": "2026-12-01T00:00:00Z",
        "completed_at": "2026-12-01T00:00:01Z",
        "recovery_point": "2026-12-01T00:00:00Z",
        "source": {"engine": "memory"},
        "collections": [
            {
                "name": "docs",
                "schema": RICH.to_json() | {"vectors": []},
                "counts": {"records": 0, "deletes": 0, "total_after_apply": 0},
                "files": [],
            }
        ],
    }
    with pytest.raises(ManifestError, match="a collection needs a dense vector"):
        parse_manifest(json.dumps(manifest).encode(), "0" * 64)
    manifest["collections"][0]["schema"] = RICH.to_json()  # type: ignore[index]
    parsed = parse_manifest(json.dumps(manifest).encode(), "0" * 64)
    assert parsed.collections[0].schema == RICH


def test_each_engine_names_what_of_a_schema_it_cannot_hold() -> None:
    assert engine_adapter("chroma").schema_gaps(RICH) == [
        "distance l1 of vector image",
        "uuid primary keys",
        "named vectors",
        "sparse vectors",
        "native tenants",
        "tenant states other than active",
        "aliases",
        "access policies",
    ]
    for name in ("chroma", "memory"):
        assert engine_adapter(name).schema_gaps(CollectionSchema.dense(8, "ip")) == []


def test_a_restore_refuses_a_collection_the_target_cannot_hold_before_writing(
    tmp_path: Path,
) -> None:
    source = {"engine": "memory", "url": "memory://aliased-source", "database": "prod"}
    forget(source["url"])
    engine = open_engine(source)
    engine.ensure_namespace()
    seed(engine, "plain", CorpusSpec("plain", 20, dimension=4, seed=1))
    engine.create_collection("aliased", CollectionSchema.dense(4, "l2", aliases=("kb",)))
    catalog = tmp_path / "catalog"
    manifest = snapshot(engine, catalog, ["plain", "aliased"])
    assert manifest.collection("aliased").schema.aliases == ("kb",)  # type: ignore[union-attr]
    target = {"engine": "memory", "url": "memory://aliased-target", "database": "restored"}
    forget(target["url"])
    runbook = restore_runbook(tmp_path, catalog, target, ["plain"])
    result = run_drill(runbook, tmp_path / "runs")
    assert result.exit_code != 0
    assert "collection aliased has what the in-memory reference engine cannot hold: aliases" in (
        result.message
    )
    assert open_engine(target).list_collections() == [], "nothing was written"
    assert LocalStore(catalog).size(f"snapshots/{manifest.id}/manifest.json")
