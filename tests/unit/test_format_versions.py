"""Catalogs of ``drconsole-snapshot/1`` (written by hand from the README's description,
as another tool would) stay restorable now that drconsole writes format 2, and a format 2
incremental may follow a format 1 parent: the chain restores exactly and says it mixes
formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.local import LocalStore
from drconsole.catalog.manifest import FORMAT_1, FORMAT_2
from drconsole.engines import open_engine
from drconsole.engines.memory.engine import forget
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch

from catalog_spec import digest, spec_state_file, write_spec_snapshot
from chroma_restore import dump, restore_runbook, run_drill
from helpers import run_cli

SOURCE = {"engine": "memory", "url": "memory://v1-source", "database": "prod"}
SOURCE_JSON = {
    "engine": "memory",
    "url": SOURCE["url"],
    "server_version": "reference",
    "namespace": {"database": "prod"},
}
UNSIGNED = "allow_unsigned: true"


def _records(count: int, version: int = 0) -> tuple[list[dict], np.ndarray]:
    rows = [
        {
            "id": f"r{n:03d}",
            "document": f"doc {n} v{version}",
            "metadata": {"tenant_id": "acme", "n": n, "v": version},
            "tenant": None,
        }
        for n in range(count)
    ]
    vectors = np.random.default_rng(version).standard_normal((count, 8)).astype(np.float32)
    return rows, vectors


def _target(name: str) -> dict[str, str]:
    forget(f"memory://{name}")
    return {"engine": "memory", "url": f"memory://{name}", "database": "restored"}


def test_a_hand_written_format_1_chain_restores_exactly(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "catalog")
    rows, vectors = _records(30)
    full = write_spec_snapshot(store, "v1-full", records=rows, vectors=vectors, source=SOURCE_JSON)
    changed, changed_vectors = _records(5, version=1)
    write_spec_snapshot(
        store,
        "v1-inc",
        records=changed,
        vectors=changed_vectors,
        deletes=[{"id": "r010", "tenant": None}, {"id": "r011", "tenant": None}],
        parent=("v1-full", digest(full)),
        recovery_point="2026-11-22T11:15:00Z",
        source=SOURCE_JSON,
    )
    assert {m.format for m in load_catalog(store).ordered()} == {FORMAT_1}
    target = _target("v1-target")
    runbook = restore_runbook(
        tmp_path, tmp_path / "catalog", target, ["help_articles"], catalog_options=UNSIGNED
    )
    result = run_drill(runbook, tmp_path / "runs")
    assert result.exit_code == 0, result.message
    expected = {row["id"]: row for row in rows if row["id"] not in ("r010", "r011")}
    expected.update({row["id"]: row for row in changed})
    restored = dump(open_engine(target), "help_articles")
    assert set(restored) == set(expected)
    vector_of = {row["id"]: vectors[n] for n, row in enumerate(rows)}
    vector_of.update({row["id"]: changed_vectors[n] for n, row in enumerate(changed)})
    for record_id, (document, metadata, vector, _) in restored.items():
        assert (document, metadata) == (
            expected[record_id]["document"],
            expected[record_id]["metadata"],
        )
        assert vector == vector_of[record_id].tobytes()


def test_a_format_2_incremental_follows_a_format_1_parent_and_says_so(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "catalog")
    rows, vectors = _records(40)
    batch = RecordBatch(
        [row["id"] for row in rows],
        vectors,
        [row["document"] for row in rows],
        [row["metadata"] for row in rows],
        [None] * len(rows),
    )
    state_file = spec_state_file(store, "v1-full", batch)
    write_spec_snapshot(
        store,
        "v1-full",
        records=rows,
        vectors=vectors,
        extra_files=[state_file],
        recovery_point="2026-11-22T10:15:00Z",
        source=SOURCE_JSON,
    )
    forget(SOURCE["url"])
    engine = open_engine(SOURCE)
    engine.ensure_namespace()
    engine.create_collection("help_articles", CollectionSchema.dense(8, "cosine"))
    engine.upsert("help_articles", batch)
    engine.upsert(
        "help_articles",
        batch.take([0, 1, 2]).__class__(
            ["r000", "r001", "new"], vectors[:3] * 2, ["x", "y", "z"], [{"n": -1}] * 3, [None] * 3
        ),
    )
    engine.delete("help_articles", ["r039"])
    head = create_snapshot(
        SnapshotRequest(
            engine=engine, store=store, collections=["help_articles"], name="kb", incremental=True
        )
    )
    assert (head.format, head.parent, head.kind) == (FORMAT_2, "v1-full", "incremental")
    assert head.parent_format == FORMAT_1, "the manifest itself says the chain mixes formats"
    assert load_catalog(store).snapshots[head.id].parent_format == FORMAT_1
    entry = head.collections[0]
    assert (entry.counts["records"], entry.counts["deletes"]) == (3, 1), "only what changed"
    assert all(f.path.endswith(".parquet") for f in entry.files)
    target = _target("mixed-target")
    runbook = restore_runbook(
        tmp_path, tmp_path / "catalog", target, ["help_articles"], catalog_options=UNSIGNED
    )
    result = run_drill(runbook, tmp_path / "runs")
    assert result.exit_code == 0, result.message
    assert dump(open_engine(target), "help_articles") == dump(engine, "help_articles")
    shown = run_cli("catalog", "show", str(tmp_path / "catalog"), head.id)
    assert shown.returncode == 0, shown.stderr
    assert "format: drconsole-snapshot/2" in shown.stdout
    assert f"v1-full (format 1) -> {head.id} (format 2)" in shown.stdout
