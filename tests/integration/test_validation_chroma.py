"""Validation gates on a real Chroma server: a clean restore passes; seeded faults are
caught by the right gate, naming the right ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.local import LocalStore
from drconsole.corpus import CorpusSpec
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.golden import capture, save_golden
from drconsole.incident.record import read_record
from drconsole.incident.store import RunStore
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner

from chroma_restore import seed
from helpers import KEY_FILE, catalog_key, write_runbook

pytestmark = pytest.mark.integration
HELP = CorpusSpec("help", 2400, seed=21, unit=False)
TICKETS = CorpusSpec("ticket", 900, seed=22)


@dataclass
class Backup:
    catalog: Path
    golden: Path
    server: ChromaServer


@pytest.fixture(scope="module")
def backup(chroma: ChromaServer, tmp_path_factory: pytest.TempPathFactory) -> Backup:
    """Production seeded once: two collections, a golden set kept in the snapshot."""
    folder = tmp_path_factory.mktemp("validation")
    production = ChromaEngine(chroma.url, database="validation_prod")
    production.ensure_namespace()
    seed(production, "help_articles", HELP, distance="cosine")
    seed(production, "tickets", TICKETS, distance="l2")
    golden = capture(
        production, "help_articles", queries=24, k=10, filter_field="tenant_id", seed=3
    )
    golden_path = folder / "kb.golden.json"
    save_golden(golden, golden_path)
    catalog = folder / "catalog"
    catalog.mkdir()
    create_snapshot(
        SnapshotRequest(
            engine=production,
            store=LocalStore(catalog),
            key=catalog_key(folder),
            collections=["help_articles", "tickets"],
            name="kb",
            tenant_field="tenant_id",
            acl_field="acl_groups",
            golden=[golden_path],
        )
    )
    production.close()
    return Backup(catalog, golden_path, chroma)


RUNBOOK = """
schema: drconsole/runbook/v1
id: kb-validate
title: Restore and validate
objectives: {{rto: 1h, rpo: 1d}}
catalog: {{url: {catalog}, key: "{key}"}}
target: {{engine: chroma, url: "{url}", database: {database}}}
source: {{engine: chroma, database: validation_prod}}
collections: [help_articles, tickets]
permissions: {{tenant_field: tenant_id, acl_field: acl_groups}}
filters:
  - {{name: english, where: {{lang: en}}}}
  - {{name: published-api, where: {{$and: [{{status: published}}, {{product: api}}]}}}}
  - {{name: early-2026, where: {{updated_day: {{$lt: 100}}}}, collections: [help_articles]}}
steps:
  - {{id: verify, action: verify_chain, with: {{depth: full}}, gate: true}}
  - {{id: schema, action: restore_schema}}
  - {{id: data, action: restore_data, with: {{batch: 600}}}}
  - {{id: counts, action: check_counts, with: {{sample: 300}}, gate: true}}
  - {{id: permissions, action: check_permissions, gate: true}}
  - id: golden
    action: golden_queries
    with: {{min_recall: {min_recall}, mode: exact{golden}}}
    gate: true
    marks: service_restored
"""


class Walk:
    """Restore into a fresh database, then run the gates one by one."""

    def __init__(
        self,
        backup: Backup,
        folder: Path,
        database: str,
        min_recall: float = 0.95,
        golden: Path | None = None,
    ) -> None:
        text = RUNBOOK.format(
            catalog=backup.catalog,
            key=f"file:{backup.catalog.parent / KEY_FILE}",
            url=backup.server.url,
            database=database,
            min_recall=min_recall,
            golden=f", file: {golden}" if golden else "",
        )
        path = write_runbook(folder, text)
        self.runner = Runner.start(load_runbook(path), "drill", RunStore(folder / "runs"))
        self.target = ChromaEngine(backup.server.url, database=database)
        for step in ("verify", "schema", "data"):
            assert self.runner.run_step(step).status == "succeeded", self.runner.state.steps[
                step
            ].summary

    def gate(self, step: str) -> tuple[str, list[dict[str, Any]]]:
        """Run a gate; return its status and its failed findings. A failed gate is
        overridden so the next one can run; gates before it that did not run are skipped."""
        while (pending := self.runner.advance()).step is not None and pending.step.id != step:
            self.runner.skip(pending.step.id, "test: this gate is not under test here")
        state = self.runner.run_step(step)
        failed = [f for f in state.findings if not f["passed"]]
        if state.status != "succeeded":
            self.runner.override(step, "test: look at the next gate too")
        return state.status, failed

    def close(self) -> None:
        self.runner.close()
        self.target.close()


def _rewrite(engine: ChromaEngine, name: str, ids: list[str], change: Any) -> None:
    """Replace records by a changed copy (delete, then upsert: upsert alone merges)."""
    originals = next(iter(engine.scan(name, 100_000)))
    rows = [originals.ids.index(record_id) for record_id in ids]
    batch = originals.take(rows)
    changed = change(batch)
    engine.delete(name, ids)
    engine.upsert(name, changed)


def test_a_clean_restore_passes_every_gate(backup: Backup, tmp_path: Path) -> None:
    walk = Walk(backup, tmp_path, "clean")
    assert walk.gate("counts") == ("succeeded", [])
    assert walk.gate("permissions") == ("succeeded", [])
    status, _ = walk.gate("golden")
    assert status == "succeeded", walk.runner.state.steps["golden"].summary
    assert walk.runner.state.milestones.get("service_restored") is not None
    counts = walk.runner.state.steps["counts"].findings
    checks = {(f["check"], f["subject"]) for f in counts}
    assert ("filter_count", "help_articles[early-2026]") in checks
    assert ("filter_count", "tickets[early-2026]") not in checks, (
        "the filter names help_articles only"
    )
    assert ("tenant_count", "tickets[acme]") in checks
    walk.close()


def test_missing_records_are_named_by_check_counts(backup: Backup, tmp_path: Path) -> None:
    walk = Walk(backup, tmp_path, "missing")
    lost = ["ticket-000010", "ticket-000011", "ticket-000500"]
    walk.target.delete("tickets", lost)
    status, failed = walk.gate("counts")
    assert status == "failed"
    count = next(f for f in failed if f["check"] == "count")
    assert (count["subject"], count["expected"], count["actual"]) == ("tickets", 900, 897)
    assert count["details"]["missing_ids"] == lost
    walk.close()


def test_a_wrong_distance_drops_golden_recall(backup: Backup, tmp_path: Path) -> None:
    walk = Walk(backup, tmp_path, "distance")
    records = next(iter(walk.target.scan("help_articles", 100_000)))
    walk.target.delete_collection("help_articles")
    walk.target.create_collection("help_articles", CollectionSchema.dense(HELP.dimension, "l2"), {})
    walk.target.upsert("help_articles", records)
    status, failed = walk.gate("counts")
    assert status == "failed"
    assert [(f["check"], f["expected"], f["actual"]) for f in failed] == [
        ("distance", "cosine", "l2")
    ]
    status, failed = walk.gate("golden")
    assert status == "failed"
    details = walk.runner.state.steps["golden"].details
    assert details["recall"] < 0.9
    assert "the data is there, the index answers worse" not in details["diagnosis"]
    walk.close()


def test_a_dropped_acl_field_is_a_permission_violation(backup: Backup, tmp_path: Path) -> None:
    walk = Walk(backup, tmp_path, "acl")
    stripped = ["help-000007", "help-000100", "help-001999"]

    def without_acl(batch: RecordBatch) -> RecordBatch:
        metadatas = [
            {k: v for k, v in (meta or {}).items() if k != "acl_groups"} for meta in batch.metadatas
        ]
        return RecordBatch(batch.ids, batch.vectors, batch.documents, metadatas, batch.tenants)

    _rewrite(walk.target, "help_articles", stripped, without_acl)
    status, failed = walk.gate("permissions")
    assert status == "failed"
    present = next(f for f in failed if f["check"] == "permission_field_present")
    assert present["subject"] == "help_articles.acl_groups"
    assert present["details"]["ids"] == sorted(stripped)
    walk.close()


def test_records_moved_to_another_tenant_are_named(backup: Backup, tmp_path: Path) -> None:
    walk = Walk(backup, tmp_path, "tenants")
    original = {"ticket-000000": "acme", "ticket-000001": "acme", "ticket-000008": "acme"}

    def to_globex(batch: RecordBatch) -> RecordBatch:
        metadatas = [{**(meta or {}), "tenant_id": "globex"} for meta in batch.metadatas]
        return RecordBatch(batch.ids, batch.vectors, batch.documents, metadatas, batch.tenants)

    _rewrite(walk.target, "tickets", list(original), to_globex)
    counts_status, counts_failed = walk.gate("counts")
    assert counts_status == "failed"
    assert {(f["check"], f["subject"]) for f in counts_failed} == {
        ("tenant_count", "tickets[acme]"),
        ("tenant_count", "tickets[globex]"),
        ("content", "tickets"),
    }
    content = next(f for f in counts_failed if f["check"] == "content")
    assert content["details"]["differ"] == {
        record_id: ['metadata.tenant_id is "globex" (string), expected "acme" (string)']
        for record_id in original
    }
    status, failed = walk.gate("permissions")
    assert status == "failed"
    moved = next(f for f in failed if f["check"] == "tenant_membership")
    assert moved["subject"] == "tickets[tenant globex]"
    assert moved["details"]["ids"] == sorted(original)
    assert moved["details"]["belong_to"] == original
    assert moved["details"]["query"] == "where tenant_id == 'globex'"
    walk.close()


def test_noise_vectors_are_caught_by_golden_queries_as_changed_data(
    backup: Backup, tmp_path: Path
) -> None:
    walk = Walk(backup, tmp_path, "noise")
    golden = json.loads(backup.golden.read_text())
    victims = sorted({i for query in golden["queries"][:6] for i in query["expected"][:5]})
    rng = np.random.default_rng(5)

    def noisy(batch: RecordBatch) -> RecordBatch:
        noise = rng.standard_normal(batch.vectors.shape).astype(np.float32)
        return RecordBatch(batch.ids, noise, batch.documents, batch.metadatas, batch.tenants)

    _rewrite(walk.target, "help_articles", victims, noisy)
    counts_status, counts_failed = walk.gate("counts")
    assert counts_status == "failed", "the content check reads the vectors back"
    assert [f["check"] for f in counts_failed] == ["content"]
    assert counts_failed[0]["actual"].startswith(f"0 missing, {len(victims)} differ")
    assert set(counts_failed[0]["details"]["differ"]) <= set(victims), "the first 20 named"
    assert all(
        problems[0].startswith("vector differs by up to")
        for problems in counts_failed[0]["details"]["differ"].values()
    )
    status, failed = walk.gate("golden")
    assert status == "failed"
    details = walk.runner.state.steps["golden"].details
    assert details["exact_recall"] < 0.95
    assert "data was lost or changed" in details["diagnosis"]
    by_query = {f["subject"]: set(f["details"]["missing_ids"]) for f in failed}
    for query in golden["queries"][:6]:
        hit = set(query["expected"]) & set(victims)
        assert hit <= by_query[f"help_articles:{query['id']}"], f"{query['id']} does not name {hit}"
    walk.close()


@pytest.mark.parametrize(("min_recall", "passes"), [(0.9, True), (0.89, True), (0.91, False)])
def test_recall_threshold_at_above_and_below(
    backup: Backup, tmp_path: Path, min_recall: float, passes: bool
) -> None:
    raw = json.loads(backup.golden.read_text())
    queries = raw["queries"][:10]
    for query in queries:  # each query now expects one id that does not exist: recall 9/10 exactly
        query["expected"] = [*query["expected"][:9], "no-such-record"]
    raw["queries"] = queries
    (tmp_path / "edited.golden.json").write_text(json.dumps(raw))
    walk = Walk(
        backup,
        tmp_path,
        f"threshold{int(min_recall * 100)}",
        min_recall=min_recall,
        golden=tmp_path / "edited.golden.json",
    )
    status, _ = walk.gate("golden")
    assert (status == "succeeded") is passes
    assert walk.runner.state.steps["golden"].details["recall"] == pytest.approx(0.9)
    walk.close()


def test_the_reported_numbers_recompute_from_the_raw_results(
    backup: Backup, tmp_path: Path
) -> None:
    walk = Walk(backup, tmp_path, "numbers")
    walk.gate("golden")
    events = read_record(walk.runner.record_path).events
    results = [e.data for e in events if e.type == "check.result" and e.step_id == "golden"]
    recalls = [
        len(set(r["details"]["returned"]) & set(r["details"]["expected"]))
        / len(r["details"]["expected"])
        for r in results
    ]
    latencies = np.array([r["details"]["latency_ms"] for r in results])
    finished = next(e for e in events if e.type == "step.finished" and e.step_id == "golden")
    reported = finished.data["details"]
    assert reported["queries"] == len(results) == 24 + 3 * 4
    assert reported["recall"] == pytest.approx(float(np.mean(recalls)), abs=1e-4)
    assert reported["p95_ms"] == pytest.approx(float(np.percentile(latencies, 95)), abs=0.01)
    assert reported["p50_ms"] == pytest.approx(float(np.median(latencies)), abs=0.01)
    walk.close()


def _damaged(name: str):
    """One kind of damage to one record, as a function of its batch."""

    def change(batch: RecordBatch) -> RecordBatch:
        metadata = dict(batch.metadatas[0] or {})
        vectors, documents, uris = batch.vectors.copy(), list(batch.documents), [None]
        if name == "document":
            documents = ["a replaced document"]
        elif name == "vector":
            vectors[0, 5] += 1e-3
        elif name == "int_to_float":
            metadata["updated_day"] = float(metadata["updated_day"])
        elif name == "acl_group_gained":
            metadata["acl_groups"] = [*metadata["acl_groups"], "intruders"]
        elif name == "key_lost":
            del metadata["lang"]
        elif name == "key_appeared":
            metadata["leaked"] = "x"
        elif name == "uri":
            uris = ["s3://elsewhere/doc.pdf"]
        return RecordBatch(batch.ids, vectors, documents, [metadata], batch.tenants, uris)

    return change


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("document", 'document "a replaced document", expected "Search article 42'),
        ("vector", "vector differs by up to"),
        ("int_to_float", "metadata.updated_day is 294.0 (float), expected 294 (int)"),
        ("acl_group_gained", 'metadata.acl_groups is ["engineering", "intruders"] (array)'),
        ("key_lost", "metadata.lang lost"),
        ("key_appeared", 'metadata.leaked appeared ("x" (string))'),
        ("uri", "uri 's3://elsewhere/doc.pdf', expected None"),
    ],
)
def test_the_content_check_names_each_damaged_record(
    backup: Backup, tmp_path: Path, damage: str, problem: str
) -> None:
    walk = Walk(backup, tmp_path, f"content_{damage}")
    _rewrite(walk.target, "help_articles", ["help-000042"], _damaged(damage))
    status, failed = walk.gate("counts")
    assert status == "failed"
    content = next(f for f in failed if f["check"] == "content")
    assert list(content["details"]["differ"]) == ["help-000042"]
    assert content["details"]["differ"]["help-000042"][0].startswith(problem)
    assert f"help-000042: {problem}"[:80] in walk.runner.state.steps["counts"].summary
    walk.close()
