"""Restoring into staging and cutting over, on a real Chroma server: production is
replaced only after the gates passed, a failed gate leaves it untouched, a cutover cut
short finishes when run again, and a run killed inside restore_schema recognises the
collection it created itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from drconsole.actions import restore_schema as restore_schema_module
from drconsole.corpus import CorpusSpec, records
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.errors import DrconsoleError
from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner

from chroma_restore import dump, seed, snapshot
from helpers import KEY_FILE, write_runbook

pytestmark = pytest.mark.integration


def _runbook(tmp_path: Path, source: ChromaEngine, target: dict[str, str], into: str) -> Path:
    return write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: staged
        title: Restore through staging
        objectives: {{rto: 1h}}
        catalog: {{url: catalog, key: "file:{KEY_FILE}"}}
        target: {{engine: chroma, url: "{target["url"]}", database: {target["database"]}}}
        source: {{engine: chroma, database: {source.database}}}
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
          - {{id: schema, action: restore_schema, with: {{into: {into}}}}}
          - {{id: data, action: restore_data}}
          - {{id: counts, action: check_counts, gate: true}}
          - {{id: cutover, action: cutover, marks: service_restored}}
        """,
        name=f"{into}.yaml",
    )


@pytest.fixture
def world(source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path):
    """The snapshot of 600 records; production in the target holds 50 damaged ones."""
    seed(source_engine, "kb_articles", CorpusSpec("kb", 600))
    snapshot(source_engine, tmp_path / "catalog", ["kb_articles"])
    target = ChromaEngine(chroma_target["url"], database=chroma_target["database"])
    target.ensure_namespace()
    seed(target, "kb_articles", CorpusSpec("broken", 50))
    yield source_engine, target
    target.close()


def _fresh(target: dict[str, str]) -> ChromaEngine:
    """A new client: one that looked a name up before a rename would still reach the
    collection by its old id."""
    return ChromaEngine(target["url"], database=target["database"])


def _runner(runbook: Path, tmp_path: Path) -> Runner:
    return Runner.start(load_runbook(runbook), "drill", RunStore(tmp_path / "runs"))


def _run(runner: Runner, *steps: str) -> None:
    for step in steps:
        state = runner.run_step(step, confirmed=True)
        assert state.status == "succeeded", f"{step}: {state.summary}"


def test_production_is_replaced_only_after_the_gates_pass(
    world, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    source, target = world
    expected, before = dump(source, "kb_articles"), dump(target, "kb_articles")
    runner = _runner(_runbook(tmp_path, source, chroma_target, "staging"), tmp_path)
    _run(runner, "verify", "schema", "data")
    staging = runner.state.placement["kb_articles"]
    assert staging.startswith("kb_articles.staging.")
    assert dump(target, "kb_articles") == before, "production untouched before the cutover"
    assert dump(target, staging) == expected
    _run(runner, "counts", "cutover")
    assert runner.state.placement == {}
    target = _fresh(chroma_target)
    assert dump(target, "kb_articles") == expected
    assert target.get_collection(staging) is None
    aside = f"kb_articles.replaced.{staging.rsplit('.', 1)[-1]}"
    assert dump(target, aside) == before, "production's copy is kept aside, not dropped"
    runner.close()


def test_a_failed_gate_leaves_production_untouched(
    world, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    source, target = world
    before = dump(target, "kb_articles")
    runner = _runner(_runbook(tmp_path, source, chroma_target, "staging"), tmp_path)
    _run(runner, "verify", "schema", "data")
    staging = runner.state.placement["kb_articles"]
    target.delete(staging, ["kb-000007"])  # damage found by the gate
    assert runner.run_step("counts").status == "failed"
    assert runner.advance().step.id == "counts", "the failed gate blocks the cutover"
    assert dump(target, "kb_articles") == before
    runner.close()


def test_an_interrupted_cutover_finishes_when_run_again(
    world, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    source, target = world
    expected = dump(source, "kb_articles")
    runner = _runner(_runbook(tmp_path, source, chroma_target, "staging"), tmp_path)
    _run(runner, "verify", "schema", "data", "counts")
    staging = runner.state.placement["kb_articles"]
    aside = f"kb_articles.replaced.{staging.rsplit('.', 1)[-1]}"
    target.rename_collection("kb_articles", aside)  # the first rename happened, then a crash
    _run(runner, "cutover")
    assert dump(_fresh(chroma_target), "kb_articles") == expected
    runner.close()


def test_a_run_cut_off_inside_restore_schema_recognises_what_it_created(
    world, chroma_target: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = world
    target.delete_collection("kb_articles")
    runner = _runner(_runbook(tmp_path, source, chroma_target, "production"), tmp_path)
    _run(runner, "verify")
    real = restore_schema_module._apply

    def create_then_lose_power(*args, **kwargs):
        real(*args, **kwargs)
        raise DrconsoleError("the machine lost power")

    monkeypatch.setattr(restore_schema_module, "_apply", create_then_lose_power)
    assert runner.run_step("schema").status == "failed"
    assert target.get_collection("kb_articles") is not None, "it was created before the cut"
    monkeypatch.setattr(restore_schema_module, "_apply", real)
    state = runner.run_step("schema")
    assert state.status == "succeeded", state.summary
    assert "created (by this run, before it was interrupted)" in state.summary
    target.upsert("kb_articles", records(CorpusSpec("other", 1)))
    _run(runner, "data")
    runner.close()
