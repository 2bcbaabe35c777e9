"""Random and mutated manifest JSON: a clean ManifestError or a valid manifest, never
another exception."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drconsole.catalog.manifest import Manifest, ManifestError, parse_manifest

VALID: dict[str, Any] = {
    "format": "drconsole-snapshot/1",
    "id": "20261122T101500Z-kb-prod-I",
    "kind": "incremental",
    "parent": "20261121T101500Z-kb-prod-F",
    "parent_manifest_sha256": "a" * 64,
    "created_at": "2026-11-22T10:15:00Z",
    "completed_at": "2026-11-22T10:19:41Z",
    "recovery_point": "2026-11-22T10:15:00Z",
    "source": {"engine": "chroma", "url": "http://chroma.internal:8000"},
    "ingest_checkpoint": {"kafka:kb-updates": "offset 88123"},
    "permissions": {"tenant_field": "tenant_id"},
    "collections": [
        {
            "name": "help_articles",
            "schema": {
                "dimension": 384,
                "distance": "cosine",
                "index": {},
                "metadata_fields": {},
                "engine_config": {},
            },
            "embedding": {"model": "m"},
            "tenants": [{"name": "acme", "status": "active"}],
            "aliases": [],
            "counts": {"records": 1, "deletes": 0, "total_after_apply": 1},
            "files": [
                {
                    "path": "help_articles/records-00000.jsonl.gz",
                    "kind": "records",
                    "rows": 1,
                    "bytes": 10,
                    "sha256": "b" * 64,
                },
                {
                    "path": "help_articles/vectors-00000.npy",
                    "kind": "vectors",
                    "rows": 1,
                    "bytes": 1664,
                    "sha256": "c" * 64,
                },
            ],
        }
    ],
    "tool": {"name": "drconsole", "version": "0.1.0"},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _parse(data: bytes) -> None:
    try:
        assert isinstance(parse_manifest(data, "0" * 64), Manifest)
    except ManifestError as error:
        assert error.message


def test_the_valid_example_parses() -> None:
    manifest = parse_manifest(json.dumps(VALID).encode(), "0" * 64, "20261122T101500Z-kb-prod-I")
    assert manifest.parent == "20261121T101500Z-kb-prod-F"
    assert manifest.collections[0].files[0].rows == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | json_values.map(lambda value: json.dumps(value).encode()))
def test_random_input_is_a_clean_error_or_valid(data: bytes) -> None:
    _parse(data)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


PATHS = _paths(VALID)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), st.sampled_from(["delete", "replace"]), json_values)
def test_mutated_manifests_are_a_clean_error_or_valid(
    path: tuple[Any, ...], how: str, value: Any
) -> None:
    mutated = copy.deepcopy(VALID)
    container = mutated
    for key in path[:-1]:
        container = container[key]
    if how == "delete":
        del container[path[-1]]
    else:
        container[path[-1]] = value
    _parse(json.dumps(mutated).encode())


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["../x", "/etc/passwd", "a\\b", "a/./b", "a//b", "C:/x", "a/\x00", "", ".."])
)
def test_traversal_paths_are_refused(path: str) -> None:
    mutated = copy.deepcopy(VALID)
    mutated["collections"][0]["files"][0]["path"] = path
    try:
        parse_manifest(json.dumps(mutated).encode(), "0" * 64)
    except ManifestError as error:
        assert "path" in error.message
    else:
        raise AssertionError(f"{path!r} was accepted")
