"""Records of the neutral model beyond one vector, through a whole drill on the reference
engine: UUID keys, two named dense vectors and a sparse vector are snapshotted (full,
then an incremental that changed only named or sparse vectors), restored exactly, and
the counts gate fails on damage to any of them."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

from drconsole.engines import open_engine
from drconsole.engines.base import Engine
from drconsole.engines.memory.engine import forget
from drconsole.model.schema import (
    CollectionSchema,
    Distance,
    FieldSpec,
    FieldType,
    KeyType,
    ScalarType,
    SparseVectorSpec,
    VectorSpec,
)
from drconsole.records import RecordBatch, SparseVector

from chroma_restore import reference_runbook, restore_runbook, run_drill, snapshot

SOURCE = {"engine": "memory", "url": "memory://named-source", "database": "prod"}
TARGET = {"engine": "memory", "url": "memory://named-target", "database": "restored"}
SCHEMA = CollectionSchema(
    vectors=(VectorSpec("text", 8, Distance.COSINE), VectorSpec("image", 4, Distance.L2)),
    key=KeyType.UUID,
    sparse_vectors=(SparseVectorSpec("bm25"),),
    fields=(FieldSpec("n", FieldType(ScalarType.INT), nullable=False, indexed=True),),
)


def _records(numbers: range, version: int = 0) -> RecordBatch:
    rng = np.random.default_rng(version * 1000 + numbers.start)
    rows = len(numbers)
    return RecordBatch(
        [str(uuid.uuid5(uuid.NAMESPACE_URL, f"doc-{n}")) for n in numbers],
        rng.standard_normal((rows, 8)).astype(np.float32),
        [f"document {n}" for n in numbers],
        [{"n": n, "tenant_id": f"t{n % 3}", "acl_groups": ["all"]} for n in numbers],
        [None] * rows,
        named_vectors={"image": rng.standard_normal((rows, 4)).astype(np.float32)},
        sparse_vectors={
            "bm25": [
                None
                if n % 5 == 0
                else SparseVector.of(sorted({n % 97, 100 + n % 13, 1000}), [0.5, 1.5, n / 7])
                for n in numbers
            ]
        },
    )


def _dump(engine: Engine) -> dict[str, tuple]:
    batch = engine.get_records(
        "docs", [item for page in engine.scan("docs", 1000) for item in page.ids]
    )
    return {
        record_id: (
            batch.vectors[row].tobytes(),
            batch.named_vectors["image"][row].tobytes(),
            batch.sparse_vectors["bm25"][row],
            batch.documents[row],
            batch.metadatas[row],
        )
        for row, record_id in enumerate(batch.ids)
    }


def test_named_and_sparse_vectors_and_uuid_keys_restore_exactly_and_are_checked(
    tmp_path: Path,
) -> None:
    forget(SOURCE["url"])
    source = open_engine(SOURCE)
    source.ensure_namespace()
    source.create_collection("docs", SCHEMA)
    source.upsert("docs", _records(range(300)))
    catalog = tmp_path / "catalog"
    snapshot(source, catalog, ["docs"], part_rows=128)

    image_only = source.get_records("docs", _records(range(10, 20)).ids)
    image_only.named_vectors["image"] += np.float32(0.25)  # nothing else changes
    source.upsert("docs", image_only)
    sparse_only = source.get_records("docs", _records(range(21, 24)).ids)
    sparse_only.sparse_vectors["bm25"] = [SparseVector.of([7], [2.0])] * 3
    source.upsert("docs", sparse_only)
    source.delete("docs", _records(range(290, 297)).ids)
    source.upsert("docs", _records(range(300, 320), version=1))
    incremental = snapshot(source, catalog, ["docs"], incremental=True, part_rows=128)
    entry = incremental.collection("docs")
    assert entry is not None and entry.counts["records"] == 10 + 3 + 20, "named/sparse changes"
    assert entry.schema.vectors == SCHEMA.vectors and entry.schema.key == KeyType.UUID
    fields = {item.name: item for item in entry.schema.fields}
    assert fields["n"] == SCHEMA.fields[0], "what the engine declares wins over the scan"
    assert str(fields["acl_groups"].type) == "string[]" and fields["tenant_id"].is_tenant

    forget(TARGET["url"])
    runbook = restore_runbook(tmp_path, catalog, TARGET, ["docs"], counts=True)
    result = run_drill(runbook, tmp_path / "runs")
    assert result.exit_code == 0, result.message
    target = open_engine(TARGET)
    assert _dump(target) == _dump(source)
    assert target.get_collection("docs").schema.sparse_vectors == SCHEMA.sparse_vectors  # type: ignore[union-attr]

    one = target.get_records("docs", [_records(range(5, 6)).ids[0]])
    damages = {
        "vector image": replace(one, named_vectors={"image": one.named_vectors["image"] + 1}),
        "sparse vector bm25": replace(one, sparse_vectors={"bm25": [SparseVector.of([1], [1])]}),
    }
    recheck = reference_runbook(tmp_path, catalog, TARGET["url"], name="recheck.yaml")
    assert run_drill(recheck, tmp_path / "runs").exit_code == 0, "a faithful restore passes"
    for damage, changed in damages.items():
        target.upsert("docs", changed)
        failed = run_drill(recheck, tmp_path / "runs")
        assert failed.exit_code != 0, f"{damage}: the gate passed"
        assert damage in failed.message, failed.message
        target.upsert("docs", one)
        assert run_drill(recheck, tmp_path / "runs").exit_code == 0, f"{damage} undone"

    everything = target.get_records("docs", list(_dump(target)))
    target.delete_collection("docs")  # the same records, but "image" measured by ip
    target.create_collection(
        "docs",
        replace(
            SCHEMA, vectors=(SCHEMA.vectors[0], replace(SCHEMA.vectors[1], distance=Distance.IP))
        ),
    )
    target.upsert("docs", everything)
    failed = run_drill(recheck, tmp_path / "runs")
    assert failed.exit_code != 0 and "vectors" in failed.message, failed.message
    assert "image: 4 l2" in failed.message, failed.message
