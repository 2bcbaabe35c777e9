"""Restoring 20,000 records of 384-d from a local catalog into a fresh Chroma server, with
drconsole's real restore (a drill: verify, schema, data), against the official
``chromadb.HttpClient`` adding the same records in its maximum batches to the same
server in the same run. Alternating rounds; the median ratio of records/s is reported.
Goal: >= 1.0x the client; aim 1.3x with requests in flight.

    python bench/restore_chroma.py [--records 20000] [--rounds 3] [--in-flight 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import chromadb

from drconsole.catalog.local import LocalStore
from drconsole.catalog.writer import SnapshotWriter
from drconsole.corpus import CorpusSpec, records
from drconsole.drill import DrillOptions, drive
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.incident.record import read_record
from drconsole.incident.store import RunStore
from drconsole.model.schema import CollectionSchema
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner

BENCH_SOURCE = {"engine": "chroma", "namespace": {"tenant": "default_tenant", "database": "bench"}}


def build_catalog(folder: Path, count: int) -> None:
    writer = SnapshotWriter(LocalStore(folder), "bench-F")
    collection = writer.collection("kb_articles", CollectionSchema.dense(384, "l2"))
    collection.add(records(CorpusSpec("kb", count)))
    collection.close(total_after_apply=count)
    now = datetime.now(UTC)
    writer.finish(kind="full", parent=None, created_at=now, recovery_point=now, source=BENCH_SOURCE)


def drconsole_round(folder: Path, url: str, database: str, in_flight: int, batch: int) -> float:
    runbook = folder / f"{database}.yaml"
    runbook.write_text(
        textwrap.dedent(f"""
        schema: drconsole/runbook/v1
        id: bench
        title: bench
        objectives: {{rto: 1h}}
        catalog: {{url: {folder / "catalog"}, allow_unsigned: true}}
        source: {{engine: chroma, database: bench}}
        target: {{engine: chroma, url: "{url}", database: {database}}}
        steps:
          - {{id: verify, action: verify_chain, with: {{depth: manifest}}}}
          - {{id: schema, action: restore_schema}}
          - id: data
            action: restore_data
            with: {{batch: {batch}, in_flight: {in_flight}}}
            marks: service_restored
    """)
    )
    runner = Runner.start(load_runbook(runbook), "drill", RunStore(folder / "runs"))
    try:
        result = drive(runner, DrillOptions(yes=True))
    finally:
        runner.close()
    assert result.exit_code == 0, result.message
    events = read_record(runner.record_path).events
    return next(
        e.data["duration_s"] for e in events if e.type == "step.finished" and e.step_id == "data"
    )


def client_round(url: str, database: str, count: int) -> float:
    host, port = url.removeprefix("http://").split(":")
    setup = ChromaEngine(url, database=database)
    setup.ensure_namespace()
    setup.close()
    client = chromadb.HttpClient(host=host, port=int(port), database=database)
    data = records(CorpusSpec("kb", count))
    started = time.perf_counter()
    collection = client.create_collection(
        "kb_articles", configuration={"hnsw": {"space": "l2"}}, embedding_function=None
    )
    step = client.get_max_batch_size()
    for start in range(0, count, step):
        stop = start + step
        collection.add(
            ids=data.ids[start:stop],
            embeddings=data.vectors[start:stop],
            documents=data.documents[start:stop],
            metadatas=data.metadatas[start:stop],
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        build_catalog(folder / "catalog", args.records)
        server = ChromaServer(folder / "chroma")
        server.start()
        try:
            ours, theirs = [], []
            for number in range(args.rounds):
                theirs.append(
                    args.records / client_round(server.url, f"client{number}", args.records)
                )
                ours.append(
                    args.records
                    / drconsole_round(
                        folder, server.url, f"ours{number}", args.in_flight, args.batch
                    )
                )
                print(
                    f"round {number + 1}: client {theirs[-1]:.0f} records/s, "
                    f"drconsole {ours[-1]:.0f} records/s"
                )
        finally:
            server.stop()
    ratios = [mine / client for mine, client in zip(ours, theirs, strict=True)]
    print(
        f"median: client {statistics.median(theirs):.0f} records/s, "
        f"drconsole {statistics.median(ours):.0f} records/s"
    )
    print(
        f"median ratio drconsole/client: {statistics.median(ratios):.2f}x (goal >= 1.0x, aim 1.3x)"
    )


if __name__ == "__main__":
    main()
