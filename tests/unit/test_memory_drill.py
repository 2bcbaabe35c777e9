"""A whole drill on the in-process reference engine: the actions, catalog and runner
never name an engine, so a chain snapshotted from one reference server restores into
another exactly, and the gates catch damage there as they do on a real server."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drconsole.corpus import CorpusSpec, batches
from drconsole.engines import open_engine
from drconsole.engines.memory.engine import forget
from drconsole.records import RecordBatch

from chroma_restore import dump, reference_runbook, restore_runbook, run_drill, seed, snapshot

SOURCE = {"engine": "memory", "url": "memory://drill-source", "database": "prod"}


def _source_with_a_chain(catalog: Path):
    forget(SOURCE["url"])
    engine = open_engine(SOURCE)
    engine.ensure_namespace()
    seed(engine, "help_articles", CorpusSpec("help", 600, dimension=32, seed=1))
    seed(engine, "tickets", CorpusSpec("ticket", 300, dimension=32, seed=2), distance="ip")
    snapshot(engine, catalog, ["help_articles", "tickets"], part_rows=250)
    for batch in batches(CorpusSpec("help", 100, dimension=32, seed=1, version=1), 100):
        engine.upsert("help_articles", batch)
    engine.delete("tickets", [f"ticket-{n:06d}" for n in range(0, 300, 7)])
    snapshot(engine, catalog, ["help_articles", "tickets"], incremental=True, part_rows=250)
    return engine


def test_a_chain_restores_exactly_into_the_reference_engine(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    source = _source_with_a_chain(catalog)
    before = {name: dump(source, name) for name in ("help_articles", "tickets")}
    assert len(before["tickets"]) == 300 - 43
    target = {"engine": "memory", "url": "memory://drill-target", "database": "restored"}
    forget(target["url"])
    runbook = restore_runbook(tmp_path, catalog, target, ["tickets"], counts=True)
    result = run_drill(runbook, tmp_path / "runs")
    assert result.exit_code == 0, result.message
    restored = open_engine(target)
    for name, rows in before.items():
        assert dump(restored, name) == rows, name


def test_the_counts_gate_fails_on_each_damage_to_the_reference_target(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    _source_with_a_chain(catalog)
    target = {"engine": "memory", "url": "memory://damaged", "database": "restored"}
    forget(target["url"])
    restore = restore_runbook(tmp_path, catalog, target, ["tickets"])
    assert run_drill(restore, tmp_path / "runs").exit_code == 0
    recheck = reference_runbook(tmp_path, catalog, target["url"], name="recheck.yaml")
    assert run_drill(recheck, tmp_path / "runs").exit_code == 0, "a faithful restore passes"
    engine = open_engine(target)
    ticket = engine.get_records("tickets", ["ticket-000001"])
    article = engine.get_records("help_articles", ["help-000003"])
    damages = {
        "a record deleted": lambda: engine.delete("tickets", ["ticket-000001"]),
        "a metadata value changed": lambda: engine.upsert(
            "help_articles", _changed(article, metadata={"lang": "xx"})
        ),
        "a vector changed": lambda: engine.upsert(
            "help_articles", _changed(article, vector_delta=1e-3)
        ),
    }
    for damage, apply in damages.items():
        apply()
        assert run_drill(recheck, tmp_path / "runs").exit_code != 0, f"{damage}: the gate passed"
        engine.upsert("tickets", ticket)
        engine.upsert("help_articles", article)
        assert run_drill(recheck, tmp_path / "runs").exit_code == 0, f"{damage} undone"


def _changed(batch: RecordBatch, metadata: dict | None = None, vector_delta: float = 0.0):
    """A copy of a one-record batch with its metadata or vector changed."""
    return RecordBatch(
        list(batch.ids),
        batch.vectors + np.float32(vector_delta),
        list(batch.documents),
        [{**(batch.metadatas[0] or {}), **(metadata or {})}],
        list(batch.tenants),
        list(batch.uris),
    )
