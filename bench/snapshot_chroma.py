"""``snapshot create`` (full) against a plain loop of ``get`` pages with the official
client (embeddings, documents, metadatas; page size 1000), same server, same run,
alternating rounds. Goal: drconsole >= 1.0x the plain loop's records/s, although it also
hashes, compresses and writes every record.

    python bench/snapshot_chroma.py [--records 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import chromadb

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.local import LocalStore
from drconsole.corpus import CorpusSpec, batches
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.model.schema import CollectionSchema

PAGE = 1000


def client_loop(url: str, count: int) -> float:
    host, port = url.removeprefix("http://").split(":")
    collection = chromadb.HttpClient(host=host, port=int(port)).get_collection("kb_articles")
    started = time.perf_counter()
    seen = 0
    while True:
        page = collection.get(
            include=["embeddings", "documents", "metadatas"], limit=PAGE, offset=seen
        )
        seen += len(page["ids"])
        if len(page["ids"]) < PAGE:
            break
    assert seen == count
    return time.perf_counter() - started


def ours(engine: ChromaEngine, folder: Path, count: int) -> float:
    started = time.perf_counter()
    manifest = create_snapshot(
        SnapshotRequest(
            engine=engine,
            store=LocalStore(folder),
            collections=["kb_articles"],
            name="bench",
            page_size=PAGE,
        )
    )
    assert manifest.collections[0].counts["records"] == count
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        server = ChromaServer(folder / "chroma")
        server.start()
        try:
            engine = ChromaEngine(server.url)
            engine.create_collection("kb_articles", CollectionSchema.dense(384, "l2"), {})
            for batch in batches(CorpusSpec("kb", args.records), 2000):
                engine.upsert("kb_articles", batch)
            theirs, mine = [], []
            for number in range(args.rounds):
                theirs.append(args.records / client_loop(server.url, args.records))
                target = folder / f"catalog{number}"
                target.mkdir()
                mine.append(args.records / ours(engine, target, args.records))
                print(
                    f"round {number + 1}: client get loop {theirs[-1]:.0f} records/s, "
                    f"drconsole snapshot {mine[-1]:.0f} records/s"
                )
        finally:
            server.stop()
    ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
    print(f"median ratio drconsole/client: {statistics.median(ratios):.2f}x (goal >= 1.0x)")


if __name__ == "__main__":
    main()
