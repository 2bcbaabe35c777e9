"""One run reads its backup once per purpose: the restore reads each part once, the
counts gate reads it once more (content and truth in the same pass), and the
permissions gate reads it not at all (it takes the truth the counts gate gathered), while
both gates still fail on the damage they claim to catch."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from drconsole.catalog import columnar
from drconsole.corpus import CorpusSpec
from drconsole.engines import open_engine
from drconsole.engines.memory.engine import forget

from chroma_restore import reference_runbook, run_drill, seed, snapshot

SOURCE = {"engine": "memory", "url": "memory://reads-source", "database": "prod"}
TARGET = {"engine": "memory", "url": "memory://reads-target", "database": "restored"}


RESTORE = """
          - {id: schema, action: restore_schema, needs: [verify]}
          - {id: data, action: restore_data, needs: [schema], marks: service_restored}
          - {id: counts, action: check_counts, needs: [data], gate: true}
          - {id: permissions, action: check_permissions, needs: [counts], gate: true}
"""
CHECKS = """
          - id: counts
            action: check_counts
            with: {content: "sample:1%", sample: 1}
            needs: [verify]
            gate: true
          - id: permissions
            action: check_permissions
            needs: [counts]
            gate: true
            marks: service_restored
"""


def test_a_drill_reads_each_part_twice_and_its_gates_still_fail_on_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forget(SOURCE["url"])
    source = open_engine(SOURCE)
    source.ensure_namespace()
    seed(source, "docs", CorpusSpec("doc", 500, dimension=8, seed=4))
    catalog = tmp_path / "catalog"
    snapshot(source, catalog, ["docs"], part_rows=100)
    source.delete("docs", ["doc-000001"])
    snapshot(source, catalog, ["docs"], incremental=True, part_rows=100)

    decoded: Counter[int] = Counter()
    records_of = columnar.records_of

    def counted(data, schema, rows=None):  # type: ignore[no-untyped-def]
        decoded[hash(bytes(data))] += 1
        return records_of(data, schema, rows)

    monkeypatch.setattr(columnar, "records_of", counted)
    forget(TARGET["url"])
    result = run_drill(
        reference_runbook(tmp_path, catalog, TARGET["url"], RESTORE, name="restore.yaml"),
        tmp_path / "runs",
    )
    assert result.exit_code == 0, result.message
    assert len(decoded) == 5, "the full's 5 parts (the incremental only deletes)"
    assert set(decoded.values()) == {2}, "restore once, the counts gate once, permissions never"

    checks = reference_runbook(tmp_path, catalog, TARGET["url"], CHECKS, name="checks.yaml")
    target = open_engine(TARGET)
    records = target.get_records("docs", ["doc-000002", "doc-000004"])
    tenants = [metadata["tenant_id"] for metadata in records.metadatas]  # type: ignore[index]
    assert tenants[0] != tenants[1]
    swapped = [
        {**metadata, "tenant_id": tenant}  # type: ignore[dict-item]
        for metadata, tenant in zip(records.metadatas, reversed(tenants), strict=True)
    ]
    target.upsert("docs", replace(records, metadatas=swapped))  # tenant counts unchanged
    decoded.clear()
    failed = run_drill(checks, tmp_path / "runs")
    assert set(decoded.values()) == {1}, "permissions took the truth the counts gate gathered"
    assert failed.exit_code != 0 and "gate permissions failed" in failed.message, failed.message
    assert "doc-000002" in failed.message or "doc-000004" in failed.message, failed.message
    target.upsert("docs", records)
    assert run_drill(checks, tmp_path / "runs").exit_code == 0
