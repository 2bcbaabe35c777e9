"""Snapshot and restore against a real Chroma server: round trip, chains, refusals."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx
import numpy as np
import pytest

from drconsole.corpus import CorpusSpec, records
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.incident.record import read_record
from drconsole.model.schema import CollectionSchema

from chroma_restore import dump, restore_runbook, run_drill, seed, snapshot

pytestmark = pytest.mark.integration


def _target_engine(target: dict[str, str]) -> ChromaEngine:
    return ChromaEngine(target["url"], tenant=target["tenant"], database=target["database"])


def _document_search(target: dict[str, str], name: str, text: str) -> httpx.Response:
    """A full-text ``where_document`` query, as an application would send it."""
    base = f"{target['url']}/api/v2/tenants/{target['tenant']}/databases/{target['database']}"
    collection = httpx.get(f"{base}/collections/{name}").json()["id"]
    body = {"where_document": {"$contains": text}, "include": []}
    return httpx.post(f"{base}/collections/{collection}/get", json=body)


def test_round_trip_is_exact(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    seed(source_engine, "help_articles", CorpusSpec("help", 1500, seed=1), distance="l2")
    seed(source_engine, "tickets", CorpusSpec("ticket", 700, seed=2), distance="ip")
    seed(source_engine, "notes", CorpusSpec("note", 300, seed=3), distance="cosine")
    names = ["help_articles", "tickets", "notes"]
    before = {name: dump(source_engine, name) for name in names}
    manifest = snapshot(source_engine, tmp_path / "catalog", names)
    assert {c.name: c.counts["records"] for c in manifest.collections} == {
        "help_articles": 1500,
        "tickets": 700,
        "notes": 300,
    }
    assert manifest.collections[0].embedding["model"] == "test-model"
    assert {t["name"] for t in manifest.collections[0].tenants} == {
        "acme",
        "globex",
        "initech",
        "umbrella",
    }
    for name in names:
        source_engine.delete_collection(name)

    result = run_drill(
        restore_runbook(tmp_path, tmp_path / "catalog", chroma_target, ["tickets"]),
        tmp_path / "runs",
    )
    assert result.exit_code == 0, result.message
    target = _target_engine(chroma_target)
    for name in ("help_articles", "tickets"):
        after = dump(target, name)
        assert after == before[name], f"{name} differs after the restore"
    notes = dump(target, "notes")
    assert notes.keys() == before["notes"].keys()
    for record_id, (document, metadata, vector, _) in notes.items():
        assert (document, metadata) == before["notes"][record_id][:2]
        original = np.frombuffer(before["notes"][record_id][2], dtype=np.float32)
        # Chroma stores cosine vectors to within an ulp or two, not bit for bit.
        np.testing.assert_allclose(
            np.frombuffer(vector, dtype=np.float32), original, rtol=1e-6, atol=1e-7
        )
    restored = target.get_collection("help_articles")
    assert (
        restored is not None
        and restored.schema.distance == "l2"
        and restored.schema.dimension == 384
    )
    assert target.get_collection("notes").schema.distance == "cosine"  # type: ignore[union-attr]
    events = read_record(Path(tmp_path / "runs").glob("*.jsonl").__next__()).events
    data_started = [e for e in events if e.type == "step.progress" and e.step_id == "data"]
    assert data_started[0].data["checkpoint"]["collection"] == "tickets", (
        "priority collection first"
    )
    target.close()


def test_chain_restores_the_state_at_the_last_recovery_point(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    spec = CorpusSpec("kb", 2000, seed=5)
    seed(source_engine, "kb_articles", spec)
    catalog = tmp_path / "catalog"
    snapshot(source_engine, catalog, ["kb_articles"])
    rng = np.random.default_rng(9)
    for version in (1, 2, 3):
        changed = sorted(rng.choice(2000 + 100 * version, 150, replace=False).tolist())
        updates = records(
            CorpusSpec("kb", 2000 + 100 * version, seed=5, version=version), 0, 2000 + 100 * version
        )
        source_engine.upsert("kb_articles", updates.take([i for i in changed if i < len(updates)]))
        source_engine.upsert(
            "kb_articles", updates.slice(2000 + 100 * (version - 1), 2000 + 100 * version)
        )
        victims = [f"kb-{n:06d}" for n in rng.choice(2000, 40, replace=False).tolist()]
        source_engine.delete("kb_articles", victims)
        manifest = snapshot(source_engine, catalog, ["kb_articles"], incremental=True)
        assert manifest.kind == "incremental"
        assert 0 < manifest.collections[0].counts["records"] < 400
    final_source = dump(source_engine, "kb_articles")
    assert manifest.collections[0].counts["total_after_apply"] == len(final_source)
    source_engine.delete_collection("kb_articles")

    result = run_drill(
        restore_runbook(tmp_path, catalog, chroma_target, ["kb_articles"]), tmp_path / "runs"
    )
    assert result.exit_code == 0, result.message
    target = _target_engine(chroma_target)
    assert dump(target, "kb_articles") == final_source
    events = read_record(next((tmp_path / "runs").glob("*.jsonl"))).events
    finished = next(e for e in events if e.type == "step.finished" and e.step_id == "data")
    assert finished.data["details"]["records"] == len(final_source), (
        "a record was written twice or lost"
    )
    selected = next(e for e in events if e.type == "snapshot.selected")
    assert len(selected.data["chain"]) == 4
    assert selected.data["ingest_checkpoint"] == {"kafka:kb-updates": "offset 1234"}
    target.close()


def _target_is_untouched(target: dict[str, str], expected: dict[str, int]) -> None:
    engine = _target_engine(target)
    assert {info.name: engine.count(info.name) for info in engine.list_collections()} == expected
    engine.close()


def test_refuses_an_existing_collection_with_on_exists_fail(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    seed(source_engine, "kb_articles", CorpusSpec("kb", 300))
    seed(source_engine, "faq", CorpusSpec("faq", 100))
    snapshot(source_engine, tmp_path / "catalog", ["kb_articles", "faq"])
    target = _target_engine(chroma_target)
    target.ensure_namespace()
    target.create_collection("faq", CollectionSchema.dense(384, "l2"), {})
    target.upsert("faq", records(CorpusSpec("other", 5)))
    result = run_drill(
        restore_runbook(tmp_path, tmp_path / "catalog", chroma_target, ["kb_articles"]),
        tmp_path / "runs",
    )
    assert result.exit_code == 1
    assert (
        "collection faq already exists in the target (on_exists: fail); nothing was written"
        in result.message
    )
    _target_is_untouched(chroma_target, {"faq": 5})


def test_refuses_a_dimension_or_distance_mismatch_before_writing(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    seed(source_engine, "kb_articles", CorpusSpec("kb", 200))
    snapshot(source_engine, tmp_path / "catalog", ["kb_articles"])
    target = _target_engine(chroma_target)
    target.ensure_namespace()
    target.create_collection("kb_articles", CollectionSchema.dense(8, "l2"), {})
    target.upsert("kb_articles", records(CorpusSpec("small", 3, dimension=8)))
    merge = run_drill(
        restore_runbook(
            tmp_path, tmp_path / "catalog", chroma_target, ["kb_articles"], on_exists="merge"
        ),
        tmp_path / "runs",
    )
    assert merge.exit_code == 1
    assert "dimension 8 in the target, 384 in the snapshot" in merge.message
    _target_is_untouched(chroma_target, {"kb_articles": 3})
    target.delete_collection("kb_articles")
    target.create_collection("kb_articles", CollectionSchema.dense(384, "cosine"), {})
    again = run_drill(
        restore_runbook(
            tmp_path,
            tmp_path / "catalog",
            chroma_target,
            ["kb_articles"],
            on_exists="merge",
            name="again.yaml",
        ),
        tmp_path / "runs",
    )
    assert "distance cosine in the target, l2 in the snapshot" in again.message
    _target_is_untouched(chroma_target, {"kb_articles": 0})
    target.close()


def test_replace_recreates_the_collection(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    seed(source_engine, "kb_articles", CorpusSpec("kb", 400))
    expected = dump(source_engine, "kb_articles")
    snapshot(source_engine, tmp_path / "catalog", ["kb_articles"])
    target = _target_engine(chroma_target)
    target.ensure_namespace()
    target.create_collection("kb_articles", CollectionSchema.dense(384, "l2"), {})
    target.upsert("kb_articles", records(CorpusSpec("stale", 50)))
    runbook = restore_runbook(
        tmp_path, tmp_path / "catalog", chroma_target, ["kb_articles"], on_exists="replace"
    )
    assert run_drill(runbook, tmp_path / "runs", yes=False).exit_code == 3, (
        "a destructive step waits for a person"
    )
    assert run_drill(runbook, tmp_path / "runs").exit_code == 0
    assert dump(target, "kb_articles") == expected
    target.close()


def test_a_broken_newest_snapshot_is_refused_or_passed_over(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    seed(source_engine, "kb_articles", CorpusSpec("kb", 300))
    snapshot(source_engine, catalog, ["kb_articles"])
    source_engine.upsert("kb_articles", records(CorpusSpec("kb", 320, version=1), 290, 320))
    newest = snapshot(source_engine, catalog, ["kb_articles"], incremental=True)
    part = catalog / "snapshots" / newest.id / newest.collections[0].files_of("records")[0].path
    data = bytearray(part.read_bytes())
    data[-3] ^= 0x40
    part.write_bytes(bytes(data))
    strict = run_drill(
        restore_runbook(tmp_path, catalog, chroma_target, ["kb_articles"], fallback=False),
        tmp_path / "runs",
    )
    assert strict.exit_code == 1
    assert f"newest snapshot {newest.id} is not restorable" in strict.message
    _target_is_untouched(chroma_target, {})
    lenient = run_drill(
        restore_runbook(tmp_path, catalog, chroma_target, ["kb_articles"], name="lenient.yaml"),
        tmp_path / "runs",
    )
    assert lenient.exit_code == 4, "restored, with a fallback to look at"
    _target_is_untouched(chroma_target, {"kb_articles": 300})


def test_uris_and_the_collection_schema_are_kept(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    """Everything Chroma stores comes back: uris on records (a uri-only change is an
    incremental change), and the collection's schema: full-text search off, an inverted
    index off for one key, HNSW threads and batch size."""
    custom = source_engine.create_collection("probe", CollectionSchema.dense(8, "l2"))
    schema = copy.deepcopy(custom.schema.engine_config["chroma"]["schema"])
    source_engine.delete_collection("probe")
    schema["keys"]["#document"]["string"]["fts_index"]["enabled"] = False
    schema["keys"]["internal_note"] = {
        "string": {"string_inverted_index": {"enabled": False, "config": {}}}
    }
    hnsw = schema["keys"]["#embedding"]["float_list"]["vector_index"]["config"]["hnsw"]
    hnsw.update(num_threads=1, batch_size=50)
    source_engine.create_collection(
        "docs", CollectionSchema.dense(8, "l2", engine_config={"chroma": {"schema": schema}})
    )
    batch = records(CorpusSpec("doc", 300, dimension=8), 0, 300)
    batch.uris = [f"s3://docs/{i}.pdf" if n % 3 else None for n, i in enumerate(batch.ids)]
    source_engine.upsert("docs", batch)
    full = snapshot(source_engine, tmp_path / "catalog", ["docs"])
    kept = full.collection("docs").schema.engine_config["chroma"]["schema"]["keys"]
    assert kept["#document"] == schema["keys"]["#document"]
    assert kept["internal_note"] == schema["keys"]["internal_note"]
    assert kept["#embedding"] == schema["keys"]["#embedding"]
    moved = batch.slice(1, 2)
    moved.uris = ["s3://docs/moved.pdf"]
    source_engine.upsert("docs", moved)
    incremental = snapshot(source_engine, tmp_path / "catalog", ["docs"], incremental=True)
    assert incremental.collection("docs").counts["records"] == 1, "a uri change is a change"
    expected = dump(source_engine, "docs")
    assert expected[moved.ids[0]][3] == "s3://docs/moved.pdf"
    source_info = source_engine.get_collection("docs")
    source_engine.delete_collection("docs")

    runs = tmp_path / "runs"
    result = run_drill(
        restore_runbook(tmp_path, tmp_path / "catalog", chroma_target, ["docs"]), runs
    )
    assert result.exit_code == 0, result.message
    target = _target_engine(chroma_target)
    assert dump(target, "docs") == expected
    restored = target.get_collection("docs")
    assert restored.schema.engine_config == source_info.schema.engine_config
    search = _document_search(chroma_target, "docs", "doc")
    assert search.status_code == 400 and "FTS indexing is disabled" in search.text
    finished = [
        e
        for e in read_record(next(runs.glob("*.jsonl"))).events
        if e.type == "step.finished" and e.step_id == "schema"
    ]
    assert finished[0].data["details"]["not_restored"] == {}
