"""Physical kinds in the manifest: a physical snapshot lists its packed parts (checked
like every file), other kinds have none, and a chain never mixes files and records."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from drconsole.catalog.catalog import MISSING_PARENT, CatalogView
from drconsole.catalog.manifest import Manifest, ManifestError, parse_manifest

PART = {
    "path": "physical/part-00000.tar.zst",
    "kind": "physical",
    "rows": 3,
    "bytes": 10,
    "sha256": "a" * 64,
}


def raw(snapshot_id: str, kind: str, parent: Manifest | None = None, **extra: Any) -> dict:
    return {
        "format": "drconsole-snapshot/2",
        "id": snapshot_id,
        "kind": kind,
        "parent": parent.id if parent else None,
        "parent_manifest_sha256": parent.sha256 if parent else None,
        "created_at": "2026-11-22T10:00:00Z",
        "completed_at": "2026-11-22T10:05:00Z",
        "recovery_point": "2026-11-22T10:00:00Z" if parent is None else "2026-11-22T10:01:00Z",
        "source": {"engine": "chroma"},
        "collections": [],
        **extra,
    }


def parsed(data: dict) -> Manifest:
    text = json.dumps(data).encode()
    return parse_manifest(text, hashlib.sha256(text).hexdigest())


def test_a_physical_snapshot_lists_its_parts_as_files() -> None:
    manifest = parsed(
        raw(
            "p1",
            "physical",
            physical={"method": "data-folder", "engine": "chroma", "parts": [PART]},
        )
    )
    assert manifest.is_physical and manifest.physical == {
        "method": "data-folder",
        "engine": "chroma",
    }
    assert [entry.path for entry in manifest.all_files] == [PART["path"]]
    assert manifest.size == 10
    assert parsed(json.loads(manifest.to_bytes())).physical_parts == manifest.physical_parts


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (raw("p1", "physical"), "physical is missing"),
        (
            raw("p1", "physical", physical={"method": "m", "engine": "e", "parts": []}),
            "must list the packed parts",
        ),
        (
            raw(
                "p1",
                "physical",
                physical={"method": "m", "engine": "e", "parts": [{**PART, "path": "../x"}]},
            ),
            "tampering",
        ),
        (
            raw("f1", "full", physical={"method": "m", "engine": "e", "parts": [PART]}),
            "must not have a physical section",
        ),
        (
            {
                **raw("p1", "physical", physical={"method": "m", "engine": "e", "parts": [PART]}),
                "parent": "f0",
                "parent_manifest_sha256": "b" * 64,
            },
            "must have parent null",
        ),
    ],
)
def test_a_physical_section_is_checked(data: dict, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parsed(data)


@pytest.mark.parametrize(
    ("base_kind", "child_kind"), [("full", "physical-incremental"), ("physical", "incremental")]
)
def test_a_chain_never_mixes_files_and_records(base_kind: str, child_kind: str) -> None:
    section = {"physical": {"method": "m", "engine": "e", "parts": [PART]}}
    base = parsed(raw("b1", base_kind, **(section if base_kind == "physical" else {})))
    child_part = {**PART, "path": "physical/part-00001.tar.zst"}
    child = parsed(
        raw(
            "c1",
            child_kind,
            base,
            **(
                {"physical": {"method": "m", "engine": "e", "parts": [child_part]}}
                if child_kind == "physical-incremental"
                else {}
            ),
        )
    )
    view = CatalogView("mem://", True, {"b1": base, "c1": child}, {}, [])
    _, findings = view.chain("c1")
    assert [finding.kind for finding in findings] == [MISSING_PARENT]
    assert f"a {child_kind} snapshot cannot follow b1" in findings[0].message
    assert "c1" in view.broken()
