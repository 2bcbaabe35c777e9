"""Restoring the same 100,000 x 384-d Chroma collection with fields three ways, in one run:

- **logical**: drconsole's drill from a logical snapshot into a sandbox Chroma server
  (verify_chain, restore_schema, restore_data re-inserting every record through the API
  while the server builds its index, then one golden query). Timed from restore_schema's
  ``step.started`` to restore_data's ``step.finished`` in the run record (and, beside it,
  until the first query was answered, and the drill's whole wall time).
- **physical**: drconsole's drill from a physical snapshot of the stopped server's data
  folder, ``prefer: physical`` (verify_chain at depth manifest, restore_schema,
  restore_data: check every part's sha256, stop the sandbox server, unpack the parts,
  swap the folder, start Chroma on it; then golden_queries with a one-query golden set).
  Timed from restore_data's ``step.started`` to the golden step's ``step.finished``:
  restore until the server answers its first query.
- **floor**: ``cp -a`` of the stopped data folder into a fresh folder, ``chroma run`` on
  the copy, wait for the heartbeat (polled every 0.1 s, as drconsole's sandbox does),
  one query over HTTP (n_results 10); the server is stopped after the clock stops.

Physical and floor alternate over ``--rounds``; the logical drill (about 90 s at 100k
records) runs ``--logical-rounds`` times. Medians and spreads; goal: physical <= 2x the
floor.

    python bench/restore_physical.py [--records 100000] [--rounds 3] [--logical-rounds 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from drconsole.actions.base import Progress
from drconsole.actions.physical_snapshot import FILES, PhysicalRequest, create_physical_snapshot
from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.local import LocalStore
from drconsole.corpus import CorpusSpec, batches
from drconsole.drill import DrillOptions, drive
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.golden import capture, save_golden
from drconsole.hooks import child_environment
from drconsole.incident.events import Event
from drconsole.incident.record import read_record
from drconsole.incident.store import RunStore
from drconsole.model.schema import CollectionSchema
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner
from drconsole.sandbox import find_executable, free_ports, start_server
from drconsole.sizes import format_bytes
from drconsole.wording import plural

COLLECTION = "kb_articles"
COLLECTIONS_PATH = "/api/v2/tenants/default_tenant/databases/default_database/collections"
POLL_S = 0.1
K = 10


@dataclass
class Source:
    """The stopped source server's data folder and what the floor's query needs."""

    data_dir: Path
    collection_id: str
    vector: np.ndarray
    expected: list[str]
    golden: Path


@dataclass
class Timed:
    """One drill or floor round: the measured seconds and where they went."""

    seconds: float
    parts: dict[str, float] = field(default_factory=dict)
    note: str = ""


# ----- setting up ---------------------------------------------------------------------


def seed_source(folder: Path, count: int) -> tuple[Source, ChromaServer]:
    """A Chroma server with ``count`` records of 384-d with fields, and a golden set of
    one query captured from it (the server is left running for the logical snapshot)."""
    server = start_server(lambda: ChromaServer(folder / "source"))
    engine = ChromaEngine(server.url)
    try:
        engine.create_collection(
            COLLECTION, CollectionSchema.dense(384, "l2"), {"embedding_model": "bench-model"}
        )
        for batch in batches(CorpusSpec("kb", count), 1000):
            engine.upsert(COLLECTION, batch)
        golden = capture(engine, COLLECTION, queries=1, k=K)
    finally:
        engine.close()
    path = folder / "golden.json"
    save_golden(golden, path)
    collection_id = httpx.get(f"{server.url}{COLLECTIONS_PATH}/{COLLECTION}").json()["id"]
    query = golden.queries[0]
    return Source(server.data_dir, collection_id, query.vector, list(query.expected), path), server


def logical_snapshot(url: str, catalog: Path) -> float:
    catalog.mkdir(parents=True)
    engine = ChromaEngine(url)
    started = time.perf_counter()
    try:
        create_snapshot(
            SnapshotRequest(
                engine=engine,
                store=LocalStore(catalog),
                collections=[COLLECTION],
                name="kb",
                tenant_field="tenant_id",
                acl_field="acl_groups",
            )
        )
    finally:
        engine.close()
    return time.perf_counter() - started


def physical_snapshot(source: Source, catalog: Path) -> tuple[float, float, int, int]:
    """Seconds in all, seconds until the files were packed, packed bytes, parts."""
    catalog.mkdir(parents=True)
    started = time.perf_counter()
    packed_at = [0.0]

    def progress(label: str, done: int, total: int) -> None:
        if label == FILES and done >= total and not packed_at[0]:
            packed_at[0] = time.perf_counter()

    manifest = create_physical_snapshot(
        PhysicalRequest(
            engine="chroma",
            data_dir=source.data_dir,
            store=LocalStore(catalog),
            name="kb",
            collections=[COLLECTION],
            tenant_field="tenant_id",
            acl_field="acl_groups",
            golden=[source.golden],
        ),
        progress=progress,
    )
    elapsed = time.perf_counter() - started
    packed = sum(part.bytes for part in manifest.physical_parts)
    return elapsed, (packed_at[0] or started) - started, packed, len(manifest.physical_parts)


def folder_size(folder: Path) -> tuple[int, int, int]:
    """(files, apparent bytes, allocated bytes) of everything under ``folder``."""
    files = apparent = allocated = 0
    for root, _, names in os.walk(folder):
        for name in names:
            status = (Path(root) / name).lstat()
            files += 1
            apparent += status.st_size
            allocated += status.st_blocks * 512
    return files, apparent, allocated


def write_runbook(folder: Path, kind: str) -> Path:
    """verify, schema, data into a sandbox Chroma server, then one golden query that
    marks the service restored; ``kind`` is the catalog's folder and what is preferred."""
    path = folder / f"{kind}.yaml"
    path.write_text(
        textwrap.dedent(f"""
        schema: drconsole/runbook/v1
        id: bench-{kind}
        title: bench {kind} restore
        objectives: {{rto: 1h}}
        catalog: {{url: {folder / kind}, allow_unsigned: true}}
        target: {{sandbox: chroma}}
        source: {{engine: chroma}}
        collections: [{COLLECTION}]
        golden: {folder / "golden.json"}
        prefer: {kind}
        steps:
          - {{id: verify, action: verify_chain, with: {{depth: manifest}}, gate: true}}
          - {{id: schema, action: restore_schema, needs: [verify]}}
          - {{id: data, action: restore_data, needs: [schema]}}
          - id: query
            action: golden_queries
            with: {{min_recall: 0.5}}
            needs: [data]
            gate: true
            marks: service_restored
        """)
    )
    return path


# ----- the rounds ---------------------------------------------------------------------


def run_drill(
    folder: Path, runbook: Path, reports: list[tuple[float, Progress]] | None = None
) -> tuple[list[Event], float]:
    """The drill's events and its wall time (sandbox start and removal included);
    ``reports`` gets every progress report of the data step, with the time it came."""

    def progress_for(step_id: str) -> Any:
        if reports is None or step_id != "data":
            return None
        return lambda progress: reports.append((time.time(), progress))

    started = time.perf_counter()
    runner = Runner.start(load_runbook(runbook), "drill", RunStore(folder / "runs"))
    try:
        result = drive(runner, DrillOptions(yes=True), progress_for)
    finally:
        runner.close()
    wall = time.perf_counter() - started
    events = read_record(runner.record_path).events
    assert result.exit_code == 0, (result.message, [finished(events, s) for s in STEPS])
    return events, wall


STEPS = ("verify", "schema", "data", "query")


def finished(events: list[Event], step: str) -> dict[str, Any]:
    found = [e.data for e in events if e.type == "step.finished" and e.step_id == step]
    return found[-1] if found else {}


def moment(events: list[Event], kind: str, step: str) -> float:
    return next(e.time.timestamp() for e in events if e.type == kind and e.step_id == step)


def query_note(events: list[Event]) -> str:
    details = finished(events, "query").get("details") or {}
    timing = details.get("timing") or {}
    return (
        f"recall {details.get('recall', float('nan')):.2f}, "
        f"query waited on the server {1000 * timing.get('server_s', float('nan')):.0f} ms"
    )


def logical_round(folder: Path, runbook: Path) -> tuple[Timed, Timed, float]:
    """(schema start -> data end, schema start -> first query answered, drill wall)."""
    events, wall = run_drill(folder, runbook)
    schema = moment(events, "step.started", "schema")
    data_end = moment(events, "step.finished", "data")
    answered = moment(events, "step.finished", "query")
    data = finished(events, "data")
    restore = Timed(
        data_end - schema,
        {
            "schema": finished(events, "schema")["duration_s"],
            "data": data["duration_s"],
        },
        data["summary"],
    )
    until_query = Timed(
        answered - schema,
        {"first query step": finished(events, "query")["duration_s"]},
        query_note(events),
    )
    return restore, until_query, wall


def physical_round(folder: Path, runbook: Path) -> tuple[Timed, float]:
    """restore_data's start -> the golden query step's end, and where it went."""
    reports: list[tuple[float, Progress]] = []
    events, wall = run_drill(folder, runbook, reports)
    data = finished(events, "data")
    assert (data.get("details") or {}).get("physical") is True, data.get("summary")
    started = moment(events, "step.started", "data")
    ended = moment(events, "step.finished", "data")
    query_started = moment(events, "step.started", "query")
    answered = moment(events, "step.finished", "query")
    checked = max((at for at, p in reports if p.message.startswith("checking")), default=started)
    first_unpacked = min(
        (at for at, p in reports if p.message.startswith("unpacked")), default=checked
    )
    swapped = next((at for at, p in reports if p.message.startswith("swapped")), ended)
    parts = {
        "check sha256": checked - started,
        "stop sandbox + 1st part": first_unpacked - checked,
        "rest of unpack + swap": swapped - first_unpacked,
        "start chroma": ended - swapped,
        "between steps": query_started - ended,
        "first query step": answered - query_started,
    }
    note = f"schema step {finished(events, 'schema')['duration_s']:.2f} s; {query_note(events)}"
    return Timed(answered - started, parts, note), wall


def floor_round(folder: Path, source: Source, number: int) -> tuple[Timed, float]:
    """cp -a, chroma run, heartbeat, one query; and the seconds stopping the server took."""
    work = folder / f"floor{number}"
    work.mkdir()
    copy = work / "data"
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    argv = [find_executable("chroma"), "run", "--path", str(copy)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    body = {"query_embeddings": [source.vector.tolist()], "n_results": K, "include": ["distances"]}
    stop_s = 0.0
    with (work / "chroma.log").open("wb") as log, httpx.Client(base_url=url) as client:
        started = time.perf_counter()
        subprocess.run(["cp", "-a", str(source.data_dir), str(copy)], check=True)
        copied = time.perf_counter()
        process = subprocess.Popen(
            argv,
            cwd=work,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, f"chroma exited: see {work / 'chroma.log'}"
                assert time.monotonic() < deadline, "chroma was not ready within 120 s"
                try:
                    if client.get("/api/v2/heartbeat", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(POLL_S)
            up = time.perf_counter()
            answer = client.post(
                f"{COLLECTIONS_PATH}/{source.collection_id}/query", json=body, timeout=120
            )
            answer.raise_for_status()
            answered = time.perf_counter()
        finally:
            stopping = time.perf_counter()
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            stop_s = time.perf_counter() - stopping
    ids = answer.json()["ids"][0]
    same = "same 10 ids as the source" if ids == source.expected else f"DIFFERENT ids: {ids}"
    shutil.rmtree(work)
    parts = {"cp -a": copied - started, "start chroma": up - copied, "first query": answered - up}
    return Timed(answered - started, parts, same), stop_s


# ----- reporting ----------------------------------------------------------------------


def spread(values: list[float], unit: str = " s", digits: int = 2) -> str:
    return (
        f"median {statistics.median(values):.{digits}f}{unit} "
        f"[{min(values):.{digits}f}-{max(values):.{digits}f}]"
    )


def breakdown(timed: Timed) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in timed.parts.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logical-rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        started = time.perf_counter()
        source, server = seed_source(folder, args.records)
        try:
            print(f"seeded {args.records:,} records x 384 in {time.perf_counter() - started:.1f} s")
            logical_s = logical_snapshot(server.url, folder / "logical")
            print(f"logical snapshot created in {logical_s:.1f} s")
        finally:
            server.stop()
        files, apparent, allocated = folder_size(source.data_dir)
        physical_s, packed_s, packed, parts = physical_snapshot(source, folder / "physical")
        print(
            f"physical snapshot created in {physical_s:.1f} s (files packed after "
            f"{packed_s:.1f} s; the rest starts a server on the parts and reads every record)"
        )
        print(
            f"data folder: {files} files, {format_bytes(apparent)} ({apparent:,} bytes; "
            f"{format_bytes(allocated)} allocated); packed: {format_bytes(packed)} "
            f"({packed:,} bytes) in {plural(parts, 'part')}, {packed / apparent:.2f} of the folder"
        )
        logical_book = write_runbook(folder, "logical")
        physical_book = write_runbook(folder, "physical")

        logical, logical_query, logical_wall = [], [], []
        for number in range(args.logical_rounds):
            restore, until_query, wall = logical_round(folder, logical_book)
            logical.append(restore.seconds)
            logical_query.append(until_query.seconds)
            logical_wall.append(wall)
            print(
                f"logical round {number + 1}: schema start -> data end {restore.seconds:.2f} s "
                f"({breakdown(restore)}); until first query answered "
                f"{until_query.seconds:.2f} s; drill wall {wall:.2f} s; {restore.note}; "
                f"{until_query.note}"
            )

        physical, floor, physical_wall, floor_stop = [], [], [], []
        for number in range(args.rounds):
            ours, wall = physical_round(folder, physical_book)
            physical.append(ours.seconds)
            physical_wall.append(wall)
            print(
                f"round {number + 1}: physical {ours.seconds:.2f} s ({breakdown(ours)}); "
                f"drill wall {wall:.2f} s; {ours.note}"
            )
            bare, stop_s = floor_round(folder, source, number)
            floor.append(bare.seconds)
            floor_stop.append(stop_s)
            print(
                f"round {number + 1}: floor {bare.seconds:.2f} s ({breakdown(bare)}); "
                f"{bare.note}; stopping it took {stop_s:.2f} s (not timed)"
            )

    print()
    print(f"physical snapshot creation: {physical_s:.1f} s (once)")
    print(
        f"data folder {format_bytes(apparent)}, "
        f"packed {format_bytes(packed)} ({plural(parts, 'part')})"
    )
    print(
        f"logical restore (schema start -> data end, from the run record): {spread(logical)}; "
        f"until the first query answered {spread(logical_query)}; "
        f"drill wall {spread(logical_wall)}"
    )
    print(
        f"physical restore (data start -> first query answered, from the run record): "
        f"{spread(physical)}; drill wall {spread(physical_wall)}"
    )
    print(f"floor (cp -a + chroma run + heartbeat + first query): {spread(floor)}")
    ratios = [mine / bare for mine, bare in zip(physical, floor, strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"physical / floor: median {ratio:.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] "
        f"(goal <= 2x: {'met' if ratio <= 2 else 'MISSED'})"
    )
    rto_ratio = statistics.median(logical) / statistics.median(physical)
    print(
        f"logical-vs-physical RTO ratio: {rto_ratio:.1f}x "
        f"(logical schema->data end / physical data->first query; "
        f"both until the first query: "
        f"{statistics.median(logical_query) / statistics.median(physical):.1f}x)"
    )


if __name__ == "__main__":
    main()
