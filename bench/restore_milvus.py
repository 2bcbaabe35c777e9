"""Restoring a 100,000 x 384-d Milvus collection with fields into a real Milvus 2.3.5
(its data in a SeaweedFS bucket), three ways, alternating in one run:

- **peer**: a plain pymilvus script that does what a restore must: create the database
  and the same collection (same schema, HNSW M=16 efConstruction=200 COSINE defined
  before the data, as drconsole does), insert the same rows from memory in batches of
  ``--batch`` (5,000), flush, wait until ``describe_index`` says Finished with every row
  indexed, load. Generating the rows is not timed.
- **drconsole import**: a drill from a local catalog (verify_chain at depth sizes,
  restore_schema, restore_data ``method: import``, then one golden query): the records
  are staged as Parquet in Milvus's own bucket, imported server-side, then flushed,
  indexed, loaded and waited for until served. Timed from restore_schema's
  ``step.started`` to restore_data's ``step.finished`` in the run record.
- **drconsole insert**: the same drill with ``method: insert`` (batched upserts).

Each is also timed until its first query was answered (the golden step's end; the
peer's first search after the load). The import path's time is split by the data step's
``step.progress`` events (staging, submit, import tasks, flush, index, load, waiting for
the imported rows to be served). Each round restores into fresh databases, which are
dropped after the round. Goal: the import path >= 2x faster than the peer.

    python bench/restore_milvus.py [--records 100000] [--rounds 3] [--insert-rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.local import LocalStore
from drconsole.drill import DrillOptions, drive
from drconsole.engines import open_engine
from drconsole.engines.milvus.server import MilvusServer, ObjectStorage
from drconsole.golden import capture, save_golden
from drconsole.incident.events import Event
from drconsole.incident.record import read_record
from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner
from drconsole.sandbox import SeaweedS3, start_server

DIMENSION = 384
COLLECTION = "articles"
SOURCE_DATABASE = "src"
BUCKET = "milvus-data"
CREDENTIALS = "DRCONSOLE_BENCH_MILVUS_S3"
INDEX = {"index_type": "HNSW", "metric_type": "COSINE", "params": {"M": 16, "efConstruction": 200}}
POLL_S = 0.5
K = 10

IMPORT_PHASES = (
    ("staging (parquet + upload)", "staging tasks"),
    ("submit", "staged "),
    ("import tasks", "submitted"),
    ("flush", "flushing"),
    ("index", "building index"),
    ("load", "loading"),
    ("wait until served", "waiting for imported rows"),
)
INSERT_PHASES = (("flush", "flushing"), ("index", "building index"), ("load", "loading"))


@dataclass
class Timed:
    """One round of one path: seconds until restored, until the first query answered,
    and where the time went."""

    seconds: float
    until_query: float
    parts: dict[str, float] = field(default_factory=dict)
    note: str = ""


# ----- the data and the collection ----------------------------------------------------


def make_rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    vectors = np.random.default_rng(seed).standard_normal((count, DIMENSION)).astype(np.float32)
    return [
        {
            "id": n,
            "embedding": vectors[n],
            "title": f"document {n} about things",
            "n": n % 1000,
            "score": n / 7,
            "tenant_id": f"tenant-{n % 8}",
        }
        for n in range(count)
    ]


def create_collection(client: MilvusClient, name: str) -> None:
    """The collection with its index defined and not loaded (as a restore makes it)."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIMENSION)
    schema.add_field("title", DataType.VARCHAR, max_length=200)
    schema.add_field("n", DataType.INT64)
    schema.add_field("score", DataType.DOUBLE)
    schema.add_field("tenant_id", DataType.VARCHAR, max_length=32)
    client.create_collection(name, schema=schema)
    index = client.prepare_index_params()
    index.add_index("embedding", index_name="embedding", **INDEX)
    client.create_index(name, index)


def fill(client: MilvusClient, name: str, rows: list[dict[str, Any]], batch: int) -> dict:
    """Insert, flush, wait for the index, load: the seconds each took."""
    parts = {}
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        client.insert(name, rows[start : start + batch])
    inserted = time.perf_counter()
    parts["insert"] = inserted - started
    client.flush(name)
    flushed = time.perf_counter()
    parts["flush"] = flushed - inserted
    while True:
        state = client.describe_index(name, "embedding")
        total, done = int(state.get("total_rows", 0)), int(state.get("indexed_rows", 0))
        if str(state.get("state")) == "Finished" and done >= total == len(rows):
            break
        assert str(state.get("state")) != "Failed", state
        time.sleep(POLL_S)
    indexed = time.perf_counter()
    parts["index"] = indexed - flushed
    client.load_collection(name)
    parts["load"] = time.perf_counter() - indexed
    return parts


def first_query(client: MilvusClient, name: str, vector: np.ndarray) -> list[Any]:
    answer = client.search(
        name,
        data=[vector.tolist()],
        limit=K,
        search_params={"metric_type": "COSINE", "params": {"ef": 64}},
    )
    return [hit["id"] for hit in answer[0]]


def drop_database(server: MilvusServer, database: str) -> None:
    client = server.client(database)
    for name in client.list_collections():
        client.release_collection(name)
        client.drop_collection(name)
    client.close()
    root = server.client()
    root.drop_database(database)
    root.close()


# ----- setting up ---------------------------------------------------------------------


def seed_source(server: MilvusServer, rows: list[dict[str, Any]], batch: int) -> float:
    root = server.client()
    root.create_database(SOURCE_DATABASE)
    root.close()
    client = server.client(SOURCE_DATABASE)
    started = time.perf_counter()
    create_collection(client, COLLECTION)
    fill(client, COLLECTION, rows, batch)
    client.close()
    return time.perf_counter() - started


def snapshot(server: MilvusServer, folder: Path, query: np.ndarray) -> float:
    """A full snapshot into the local catalog, and a golden set of one query."""
    engine = open_engine(
        {
            "engine": "milvus",
            "url": server.url,
            "database": SOURCE_DATABASE,
            "token": server.token_reference,
        }
    )
    (folder / "catalog").mkdir()
    started = time.perf_counter()
    try:
        create_snapshot(
            SnapshotRequest(
                engine=engine,
                store=LocalStore(folder / "catalog"),
                collections=[COLLECTION],
                name="bench",
            )
        )
        elapsed = time.perf_counter() - started
        golden = capture(engine, COLLECTION, queries=1, k=K, query_vectors=query[None, :])
    finally:
        engine.close()
    save_golden(golden, folder / "golden.json")
    return elapsed


# ----- the rounds ---------------------------------------------------------------------


def peer_round(
    server: MilvusServer, database: str, rows: list[dict[str, Any]], batch: int, query: np.ndarray
) -> Timed:
    started = time.perf_counter()
    root = server.client()
    root.create_database(database)
    root.close()
    client = server.client(database)
    create_collection(client, COLLECTION)
    created = time.perf_counter()
    parts = {"create": created - started, **fill(client, COLLECTION, rows, batch)}
    restored = time.perf_counter()
    hits = first_query(client, COLLECTION, query)
    answered = time.perf_counter()
    client.close()
    return Timed(restored - started, answered - started, parts, f"{len(hits)} hits")


def write_runbook(
    folder: Path, server: MilvusServer, seaweed: SeaweedS3, database: str, method: str
) -> Path:
    path = folder / f"{database}.yaml"
    path.write_text(
        textwrap.dedent(f"""
        schema: drconsole/runbook/v1
        id: bench-{method}
        title: bench {method}
        objectives: {{rto: 1h}}
        catalog: {{url: {folder / "catalog"}, allow_unsigned: true}}
        source: {{engine: milvus, database: {SOURCE_DATABASE}}}
        target: {{engine: milvus, url: "{server.url}", database: {database},
                  token: "{server.token_reference}", stage: "s3://{BUCKET}/staged",
                  stage_endpoint: "{seaweed.endpoint}", stage_credentials: "env:{CREDENTIALS}"}}
        collections: [{COLLECTION}]
        golden: {folder / "golden.json"}
        steps:
          - {{id: verify, action: verify_chain, with: {{depth: sizes}}, gate: true}}
          - {{id: schema, action: restore_schema, needs: [verify]}}
          - {{id: data, action: restore_data, with: {{method: {method}}}, needs: [schema]}}
          - id: query
            action: golden_queries
            with: {{min_recall: 0.0}}
            needs: [data]
            gate: true
            marks: service_restored
        """)
    )
    return path


def moment(events: list[Event], kind: str, step: str) -> float:
    return next(e.time.timestamp() for e in events if e.type == kind and e.step_id == step)


def finished(events: list[Event], step: str) -> dict[str, Any]:
    found = [e.data for e in events if e.type == "step.finished" and e.step_id == step]
    return found[-1] if found else {}


def phases(events: list[Event], markers: tuple[tuple[str, str], ...], first: str) -> dict:
    """The data step split at the first progress message holding each marker: each
    phase runs until the next phase found (the last one until the step's end)."""
    reports = [
        (e.time.timestamp(), str(e.data.get("message", "")))
        for e in events
        if e.type == "step.progress" and e.step_id == "data"
    ]
    starts = [(first, moment(events, "step.started", "data"))]
    for label, marker in markers:
        at = next((at for at, message in reports if marker in message), None)
        if at is not None:
            starts.append((label, at))
    done = next((at for at, message in reports if f"{COLLECTION} done" in message), None)
    ends = [*(at for _, at in starts[1:]), done or moment(events, "step.finished", "data")]
    parts = {label: end - at for (label, at), end in zip(starts, ends, strict=True)}
    if done is not None:
        parts["after"] = moment(events, "step.finished", "data") - done
    return parts


def drconsole_round(folder: Path, runbook: Path, method: str) -> Timed:
    runner = Runner.start(load_runbook(runbook), "drill", RunStore(folder / "runs"))
    started = time.perf_counter()
    try:
        result = drive(runner, DrillOptions(yes=True))
    finally:
        runner.close()
    wall = time.perf_counter() - started
    events = read_record(runner.record_path).events
    steps = ("verify", "schema", "data", "query")
    assert result.exit_code == 0, (result.message, [finished(events, s) for s in steps])
    data = finished(events, "data")
    assert data["details"]["methods"] == {COLLECTION: method}, data["details"]
    schema = moment(events, "step.started", "schema")
    markers = IMPORT_PHASES if method == "import" else INSERT_PHASES
    parts = {
        "verify": finished(events, "verify")["duration_s"],
        "schema": finished(events, "schema")["duration_s"],
        **phases(events, markers, "checks" if method == "import" else "upserts"),
    }
    query = finished(events, "query").get("details") or {}
    return Timed(
        moment(events, "step.finished", "data") - schema,
        moment(events, "step.finished", "query") - schema,
        parts,
        f"drill wall {wall:.1f} s, recall {query.get('recall', float('nan')):.2f}",
    )


# ----- reporting ----------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} s [{min(values):.1f}-{max(values):.1f}]"


def ratio(peer: list[float], ours: list[float]) -> str:
    """The ratio of medians, and the spread of the per-round ratios."""
    pairs = [p / o for p, o in zip(peer, ours, strict=False)]
    return (
        f"{statistics.median(peer) / statistics.median(ours):.2f}x "
        f"(per round {min(pairs):.2f}-{max(pairs):.2f}x)"
    )


def breakdown(label: str, rounds: list[Timed]) -> None:
    print(f"{label}, where the time goes (median [min-max] s):")
    labels = list(dict.fromkeys(key for timed in rounds for key in timed.parts))
    for key in labels:
        values = [timed.parts.get(key, 0.0) for timed in rounds]
        print(f"  {key:28} {spread(values)}")


def report(records: int, results: dict[str, list[Timed]]) -> None:
    print(f"\n== restore of {records:,} x {DIMENSION}-d with fields ==")
    for label, rounds in results.items():
        if rounds:
            print(
                f"{label:18} restored {spread([t.seconds for t in rounds])}, "
                f"first query {spread([t.until_query for t in rounds])}, "
                f"{records / statistics.median([t.seconds for t in rounds]):,.0f} records/s"
            )
    peer = [t.seconds for t in results["peer"]]
    for label in ("drconsole import", "drconsole insert"):
        if results[label]:
            ours = [t.seconds for t in results[label]]
            goal = " (goal >= 2x)" if label.endswith("import") else ""
            print(f"peer / {label}: {ratio(peer, ours)}{goal}")
    print()
    for label, rounds in results.items():
        if rounds:
            breakdown(label, rounds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--insert-rounds", type=int, default=None, help="default: --rounds")
    parser.add_argument("--batch", type=int, default=5000, help="the peer's insert batch")
    args = parser.parse_args()
    insert_rounds = args.rounds if args.insert_rounds is None else args.insert_rounds
    rows = make_rows(args.records)
    query = rows[args.records // 3]["embedding"] + np.float32(0.01)
    results: dict[str, list[Timed]] = {"peer": [], "drconsole import": [], "drconsole insert": []}
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        seaweed = start_server(lambda: SeaweedS3(folder / "s3"))
        server = None
        try:
            seaweed.create_bucket(BUCKET)
            os.environ[CREDENTIALS] = seaweed.credentials_value
            storage = ObjectStorage(seaweed.endpoint, BUCKET, *seaweed.keys)
            server = start_server(lambda: MilvusServer(folder / "milvus", storage))
            seeded = seed_source(server, rows, args.batch)
            print(f"source seeded in {seeded:.1f} s; ", end="", flush=True)
            print(f"snapshot in {snapshot(server, folder, query):.1f} s", flush=True)
            for number in range(args.rounds):
                timed = peer_round(server, f"peer{number}", rows, args.batch, query)
                results["peer"].append(timed)
                drop_database(server, f"peer{number}")
                line = f"round {number + 1}: peer {timed.seconds:.1f} s"
                ways = ["import"] + (["insert"] if number < insert_rounds else [])
                for method in ways:
                    database = f"{method}{number}"
                    runbook = write_runbook(folder, server, seaweed, database, method)
                    timed = drconsole_round(folder, runbook, method)
                    results[f"drconsole {method}"].append(timed)
                    drop_database(server, database)
                    line += f", drconsole {method} {timed.seconds:.1f} s ({timed.note})"
                print(line, flush=True)
        finally:
            if server is not None:
                server.discard()
            seaweed.stop()
    report(args.records, results)


if __name__ == "__main__":
    main()
