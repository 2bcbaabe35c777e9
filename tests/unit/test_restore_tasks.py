"""restore_data works in part tasks: a restore that fails mid-way is retried from its
checkpoint without re-sending any part it finished, continues inside the part it stopped
in, and still ends with exactly the chain's final state."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from drconsole.corpus import CorpusSpec, batches
from drconsole.engines import open_engine
from drconsole.engines.memory.engine import MemoryEngine, forget
from drconsole.errors import EngineError
from drconsole.incident.store import RunStore
from drconsole.records import RecordBatch
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner

from chroma_restore import dump, restore_runbook, seed, snapshot

SOURCE = {"engine": "memory", "url": "memory://tasks-source", "database": "prod"}
TARGET = {"engine": "memory", "url": "memory://tasks-target", "database": "restored"}


def test_a_retried_restore_skips_finished_parts_and_ends_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forget(SOURCE["url"])
    source = open_engine(SOURCE)
    source.ensure_namespace()
    seed(source, "docs", CorpusSpec("doc", 1000, dimension=8, seed=9))
    catalog = tmp_path / "catalog"
    snapshot(source, catalog, ["docs"], part_rows=200)
    for batch in batches(CorpusSpec("doc", 1000, dimension=8, seed=9, version=1), 150):
        source.upsert("docs", batch)
        break  # the first 150 records changed
    source.delete("docs", [f"doc-{n:06d}" for n in range(900, 930)])
    snapshot(source, catalog, ["docs"], incremental=True, part_rows=200)
    forget(TARGET["url"])
    runbook = load_runbook(restore_runbook(tmp_path, catalog, TARGET, ["docs"], batch=50))

    sent: Counter[str] = Counter()
    upsert = MemoryEngine.upsert
    fail_at = {"calls": 9}

    def counted(self: MemoryEngine, name: str, batch: RecordBatch) -> None:
        fail_at["calls"] -= 1
        if fail_at["calls"] == 0:
            raise EngineError("the target went away")
        for record_id in batch.ids:
            sent[record_id] += 1
        upsert(self, name, batch)

    monkeypatch.setattr(MemoryEngine, "upsert", counted)
    runner = Runner.start(runbook, "drill", RunStore(tmp_path / "runs"))
    try:
        for step in ("verify", "schema"):
            assert runner.run_step(step, confirmed=True).status == "succeeded"
        failed = runner.run_step("data")
        assert failed.status == "failed", failed
        checkpoint = runner.state.steps["data"].checkpoint
        # tasks, newest snapshot first: the incremental's part (150 rows, 3 batches), then
        # the full's parts of 200 (the first holds 50 final rows): the 9th upsert is in
        # the full's third part
        assert checkpoint is not None and checkpoint["tasks_done"]["docs"] == [[0, 2]]
        assert checkpoint["task"] is None and checkpoint["records"] == 400
        first_attempt = Counter(sent)
        assert runner.run_step("data").status == "succeeded"
    finally:
        runner.close()

    assert dump(open_engine(TARGET), "docs") == dump(source, "docs")
    resent = {record_id for record_id, count in sent.items() if count > 1}
    incremental_part = {f"doc-{n:06d}" for n in range(150)}
    assert not resent & incremental_part, "the finished part (the incremental's) was re-sent"
    assert len(resent) <= 50 * 2, "at most the batches in flight when the target failed"
    assert sum(first_attempt.values()) >= 8 * 50, "the 8 upserts before the failure landed"
