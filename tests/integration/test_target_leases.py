"""Two runs never restore into the same target collection at once, on a real Chroma
server: the second is refused before it writes anything, naming the first; a finished
run frees the collection; a resumed run keeps its own lease."""

from __future__ import annotations

from pathlib import Path

import pytest

from drconsole.corpus import CorpusSpec
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner

from chroma_restore import restore_runbook, seed, snapshot

pytestmark = pytest.mark.integration


def test_a_second_run_into_the_same_collections_is_refused(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    seed(source_engine, "kb_articles", CorpusSpec("kb", 200))
    snapshot(source_engine, tmp_path / "catalog", ["kb_articles"])
    runbook = load_runbook(
        restore_runbook(tmp_path, tmp_path / "catalog", chroma_target, ["kb_articles"])
    )
    first = Runner.start(runbook, "drill", RunStore(tmp_path / "runs-a"))
    second = Runner.start(runbook, "drill", RunStore(tmp_path / "runs-b"))
    for runner in (first, second):
        assert runner.run_step("verify").status == "succeeded"
    assert first.run_step("schema").status == "succeeded"
    refused = second.run_step("schema")
    assert refused.status == "failed"
    assert f"being restored by run {first.run_id}" in refused.summary
    target = ChromaEngine(chroma_target["url"], database=chroma_target["database"])
    assert target.count("kb_articles") == 0, "the second run wrote nothing"
    first.close()
    first = Runner.resume(RunStore(tmp_path / "runs-a"), first.run_id)
    assert first.run_step("data").status == "succeeded", "a resumed run keeps its lease"
    assert first.finish() == "succeeded"
    assert target.get_collection("drconsole.lease.kb_articles") is None, "freed at finish"
    first.close()
    assert second.run_step("schema").status == "failed", "the collection exists now"
    assert "already exists" in second.state.steps["schema"].summary
    second.close()
    target.close()
