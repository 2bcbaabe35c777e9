"""check_permissions passes a faithful restore of data as it really is, on a real Chroma
server: records that never had an ACL field are not a violation (unless the runbook
requires the fields), and an empty collection with golden queries is checked, not a
crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from drconsole.corpus import CorpusSpec, records
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.golden import capture, save_golden
from drconsole.incident.store import RunStore
from drconsole.model.schema import CollectionSchema
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner

from chroma_restore import snapshot
from helpers import KEY_FILE, write_runbook

pytestmark = pytest.mark.integration


def _runbook(tmp_path: Path, source: ChromaEngine, target: dict[str, str], extra: str) -> Path:
    return write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: permissions
        title: Permissions on real data
        objectives: {{rto: 1h}}
        catalog: {{url: catalog, key: "file:{KEY_FILE}"}}
        target: {{engine: chroma, url: "{target["url"]}", database: {target["database"]}}}
        source: {{engine: chroma, database: {source.database}}}
        permissions: {{tenant_field: tenant_id, acl_field: acl_groups{extra}}}
        golden: kb.golden.json
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
          - {{id: schema, action: restore_schema}}
          - {{id: data, action: restore_data}}
          - {{id: permissions, action: check_permissions, gate: true, marks: service_restored}}
        """,
        name=f"permissions{len(extra)}.yaml",
    )


def _run(runbook: Path, runs: Path):
    runner = Runner.start(load_runbook(runbook), "drill", RunStore(runs))
    try:
        for step in ("verify", "schema", "data"):
            assert runner.run_step(step).status == "succeeded", runner.state.steps[step].summary
        return runner.run_step("permissions")
    finally:
        runner.close()


@pytest.fixture
def public_and_empty(source_engine: ChromaEngine, tmp_path: Path) -> ChromaEngine:
    """kb_docs: 300 records, the first 40 public (no acl_groups at all); drafts: golden
    queries captured where it had records (an older database), and no record (so no
    dimension) when the snapshot was taken. Nothing is deleted: deleting a collection
    with array metadata makes Chroma 1.5 attach its arrays to later records, which the
    gates rightly fail."""
    source_engine.create_collection("kb_docs", CollectionSchema.dense(384, "cosine"))
    batch = records(CorpusSpec("kb_docs", 300))
    for row in range(40):
        batch.metadatas[row] = {
            k: v for k, v in (batch.metadatas[row] or {}).items() if k != "acl_groups"
        }
    source_engine.upsert("kb_docs", batch)
    elsewhere = ChromaEngine(source_engine.url, database=f"{source_engine.database}_old")
    elsewhere.ensure_namespace()
    elsewhere.create_collection("drafts", CollectionSchema.dense(384, "cosine"))
    elsewhere.upsert("drafts", records(CorpusSpec("draft", 50)))
    golden = capture(elsewhere, "drafts", queries=5, k=5)
    golden.queries += capture(source_engine, "kb_docs", queries=5, k=5).queries
    save_golden(golden, tmp_path / "kb.golden.json")
    elsewhere.close()
    source_engine.create_collection("drafts", CollectionSchema.dense(384, "cosine"))  # never filled
    snapshot(source_engine, tmp_path / "catalog", ["kb_docs", "drafts"])
    return source_engine


def test_records_that_never_had_an_acl_field_pass(
    public_and_empty: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    state = _run(_runbook(tmp_path, public_and_empty, chroma_target, ""), tmp_path / "runs")
    assert state.status == "succeeded", state.summary
    present = next(
        f
        for f in state.findings
        if f["check"] == "permission_field_present" and f["subject"] == "kb_docs.acl_groups"
    )
    assert present["passed"] and present["details"]["lacking_in_the_snapshot"] == 40


def test_with_require_fields_they_are_named(
    public_and_empty: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    runbook = _runbook(tmp_path, public_and_empty, chroma_target, ", require_fields: true")
    state = _run(runbook, tmp_path / "runs")
    assert state.status == "failed"
    present = next(f for f in state.findings if not f["passed"])
    assert present["subject"] == "kb_docs.acl_groups" and present["actual"] == 40
    assert present["details"]["ids"] == [f"kb_docs-{n:06d}" for n in range(20)]
