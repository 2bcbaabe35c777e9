"""Shared steps of the restore tests (on Chroma, or on the reference engine): seed,
snapshot, write a restore runbook, run it, and dump a collection for comparison."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.local import LocalStore
from drconsole.catalog.manifest import Manifest
from drconsole.corpus import CorpusSpec, batches
from drconsole.drill import DrillOptions, DrillResult, drive
from drconsole.engines.base import Engine
from drconsole.incident.record import read_record
from drconsole.incident.store import RunStore
from drconsole.model.schema import CollectionSchema
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner

from helpers import KEY_FILE, catalog_key, write_runbook


def seed(engine: Engine, name: str, spec: CorpusSpec, distance: str = "l2") -> None:
    engine.create_collection(
        name, CollectionSchema.dense(spec.dimension, distance), {"embedding_model": "test-model"}
    )
    for batch in batches(spec, 1000):
        engine.upsert(name, batch)


def snapshot(
    engine: Engine,
    catalog: Path,
    collections: list[str],
    *,
    incremental: bool = False,
    part_rows: int = 2000,
    signed: bool = True,
) -> Manifest:
    request = SnapshotRequest(
        engine=engine,
        store=LocalStore(catalog),
        key=catalog_key(catalog.parent) if signed else None,
        collections=collections,
        name="kb",
        incremental=incremental,
        tenant_field="tenant_id",
        acl_field="acl_groups",
        ingest_checkpoint={"kafka:kb-updates": "offset 1234"},
        part_rows=part_rows,
    )
    catalog.mkdir(parents=True, exist_ok=True)
    return create_snapshot(request)


COUNTS_ONLY = """
          - id: counts
            action: check_counts
            needs: [verify]
            gate: true
            marks: service_restored
"""


def reference_runbook(
    folder: Path, catalog: Path, target_url: str, steps: str = COUNTS_ONLY, *, name: str
) -> Path:
    """A runbook on the reference engine: verify the catalog's newest chain, then
    ``steps`` against the target at ``target_url`` (database ``restored``)."""
    return write_runbook(
        folder,
        f"""
        schema: drconsole/runbook/v1
        id: kb-check
        title: Check the restored knowledge base
        objectives: {{rto: 1h, rpo: 1d}}
        catalog: {{url: {catalog}, key: "file:{folder / KEY_FILE}"}}
        target: {{engine: memory, url: "{target_url}", database: restored}}
        source: {{engine: memory, database: prod}}
        permissions: {{tenant_field: tenant_id, acl_field: acl_groups}}
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
        """
        + steps,
        name=name,
    )


COUNTS_STEP = """
          - id: counts
            action: check_counts
            needs: [data]
            gate: true
"""


def restore_runbook(
    folder: Path,
    catalog: Path,
    target: dict[str, str],
    collections: list[str],
    *,
    on_exists: str = "fail",
    depth: str = "full",
    batch: int = 500,
    in_flight: int = 2,
    fallback: bool = True,
    counts: bool = False,
    name: str = "restore.yaml",
    catalog_options: str | None = None,
    data_options: str = "",
) -> Path:
    """verify, schema and data steps (and a check_counts gate with ``counts``;
    ``data_options`` adds to the data step's ``with``, after a comma). The
    target is another database than the snapshots' source, so the runbook names that
    source (the namespace of the catalog's snapshots)."""
    destructive = "true" if on_exists == "replace" else "false"
    namespaces = {
        tuple(m.source["namespace"].items()) for m in load_catalog(LocalStore(catalog)).ordered()
    }
    assert len(namespaces) == 1, f"one source per test catalog, not {namespaces}"
    source = ", ".join(f"{key}: {value}" for key, value in namespaces.pop())
    engine = target["engine"]
    where = ", ".join(f'{key}: "{value}"' for key, value in target.items() if key != "engine")
    return write_runbook(
        folder,
        f"""
        schema: drconsole/runbook/v1
        id: kb-restore
        title: Restore the knowledge base
        objectives: {{rto: 1h, rpo: 1d}}
        catalog: {{url: {catalog}, {catalog_options or f'key: "file:{catalog.parent / KEY_FILE}"'}}}
        target: {{engine: {engine}, {where}}}
        source: {{engine: {engine}, {source}}}
        collections: [{", ".join(collections)}]
        steps:
          - id: verify
            action: verify_chain
            with: {{depth: "{depth}", fallback: {str(fallback).lower()}}}
            gate: true
          - id: schema
            action: restore_schema
            with: {{on_exists: {on_exists}}}
            needs: [verify]
            destructive: {destructive}
          - id: data
            action: restore_data
            with: {{batch: {batch}, in_flight: {in_flight}{data_options}}}
            needs: [schema]
            marks: service_restored
    """
        + (COUNTS_STEP if counts else ""),
        name=name,
    )


def run_drill(runbook: Path, runs: Path, *, yes: bool = True) -> DrillResult:
    runner = Runner.start(load_runbook(runbook), "drill", RunStore(runs))
    try:
        return drive(runner, DrillOptions(yes=yes))
    finally:
        runner.close()


def dump(engine: Engine, name: str) -> dict[str, tuple[Any, Any, bytes, str | None]]:
    """id -> (document, metadata, vector bytes, uri) of a whole collection."""
    rows: dict[str, tuple[Any, Any, bytes, str | None]] = {}
    for batch in engine.scan(name, 1000):
        for index, record_id in enumerate(batch.ids):
            rows[record_id] = (
                batch.documents[index],
                batch.metadatas[index],
                batch.vectors[index].tobytes(),
                batch.uris[index],
            )
    return rows


def kill_drill_mid_restore(
    runbook: Path,
    runs: Path,
    checkpoints: int,
    *flags: str,
    cwd: Path | None = None,
    saying: str = "",
) -> None:
    """Run `drconsole drill` (with ``flags``; ``runs`` relative to ``cwd`` when given) in a
    subprocess and SIGKILL it once restore_data has recorded ``checkpoints`` progress
    events (whose message has ``saying`` in it) (bounded: fails after two minutes)."""
    drill = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drconsole.cli",
            "drill",
            str(runbook),
            "--yes",
            "--runs-dir",
            str(runs),
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
    )
    runs = (cwd / runs) if cwd else runs
    deadline = time.monotonic() + 120
    seen = 0
    while seen < checkpoints and time.monotonic() < deadline and drill.poll() is None:
        time.sleep(0.05)
        records = list(runs.glob("*.jsonl"))
        if records:
            events = read_record(records[0]).events
            seen = sum(
                1
                for e in events
                if e.type == "step.progress"
                and e.step_id == "data"
                and saying in str(e.data.get("message", ""))
            )
    drill.send_signal(signal.SIGKILL)
    drill.wait(10)
    assert seen >= checkpoints, "restore_data never got going"
