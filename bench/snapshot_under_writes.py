"""A full snapshot of a large collection while another client keeps writing.

The scenario of issue 11: 200,000 records; a writer deletes the oldest 200, adds 200 and
updates 200 per round, as fast as it can, for the whole scan. Reports the records that
existed for the whole scan and are missing from the snapshot (must be 0), the changes the
scan saw, the scan window, and the writer's rounds. With ``--offset`` the same run uses
offset paging (the scan drconsole had before) for comparison.

    python bench/snapshot_under_writes.py [--records 200000] [--dimension 128] [--offset]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.local import LocalStore
from drconsole.catalog.plan import RestorePlan
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch
from drconsole.sandbox import start_server

PER_ROUND = 200


class OffsetPagingChroma(ChromaEngine):
    """The scan drconsole used before: offset paging, which shifts under deletes."""

    def scan(self, name: str, page_size: int = 1000, window: Any = None):  # type: ignore[override]
        offset = 0
        while True:
            body = {
                "include": ["embeddings", "documents", "metadatas"],
                "limit": page_size,
                "offset": offset,
            }
            page = self._on_collection(name, "POST", "get", body)
            ids = page["ids"]
            if not ids:
                return
            offset += len(ids)
            vectors = np.asarray(page["embeddings"], dtype=np.float32)
            yield RecordBatch(ids, vectors, page["documents"], page["metadatas"], [None] * len(ids))
            if len(ids) < page_size:
                return


def batch(ids: list[str], dimension: int, version: int) -> RecordBatch:
    rng = np.random.default_rng(version)
    return RecordBatch(
        ids,
        rng.standard_normal((len(ids), dimension)).astype(np.float32),
        [f"{i} v{version}" for i in ids],
        [{"version": version} for _ in ids],
        [None] * len(ids),
    )


def load(engine: ChromaEngine, count: int, dimension: int) -> list[str]:
    engine.create_collection("docs", CollectionSchema.dense(dimension, "l2"))
    ids = [f"r{n:08d}" for n in range(count)]
    chunks = [ids[start : start + 2000] for start in range(0, count, 2000)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda chunk: engine.upsert("docs", batch(chunk, dimension, 0)), chunks))
    return ids


def write_until(
    stop: threading.Event,
    *,
    engine: ChromaEngine,
    live: list[str],
    dimension: int,
    touched: set[str],
    rounds: list[int],
) -> None:
    queue = collections.deque(live)
    next_id = len(live)
    version = 0
    while not stop.is_set():
        version += 1
        gone = [queue.popleft() for _ in range(PER_ROUND)]
        engine.delete("docs", gone)
        new = [f"r{next_id + n:08d}" for n in range(PER_ROUND)]
        next_id += PER_ROUND
        engine.upsert("docs", batch(new, dimension, version))
        queue.extend(new)
        rng = np.random.default_rng(version)
        changed = [queue[int(i)] for i in rng.choice(len(queue), PER_ROUND, replace=False)]
        engine.upsert("docs", batch(changed, dimension, version))
        touched.update(gone + new + changed)
        rounds[0] += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--dimension", type=int, default=128)
    parser.add_argument("--offset", action="store_true", help="use offset paging (the old scan)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = start_server(lambda: ChromaServer(Path(folder) / "chroma"))
        try:
            started = time.monotonic()
            writer_engine = ChromaEngine(server.url)
            live = load(writer_engine, args.records, args.dimension)
            print(
                f"loaded {args.records} x {args.dimension}-d in {time.monotonic() - started:.0f} s"
            )
            kind = OffsetPagingChroma if args.offset else ChromaEngine
            source = kind(server.url)
            touched: set[str] = set()
            rounds = [0]
            stop = threading.Event()
            writer = threading.Thread(
                target=write_until,
                args=(stop,),
                kwargs={
                    "engine": writer_engine,
                    "live": live,
                    "dimension": args.dimension,
                    "touched": touched,
                    "rounds": rounds,
                },
            )
            store = LocalStore(Path(folder) / "catalog")
            writer.start()
            try:
                manifest = create_snapshot(
                    SnapshotRequest(engine=source, store=store, collections=["docs"], name="busy")
                )
            finally:
                stop.set()
                writer.join()
            seen: set[str] = set()
            for part in RestorePlan(store, [manifest]).batches("docs"):
                seen.update(part.ids)
            untouched = set(live) - touched
            missing = untouched - seen
            window = manifest.point_in_time
            print(f"scan: {'offset paging (old)' if args.offset else 'ids listed, fetched by id'}")
            print(
                f"records missing that existed for the whole scan: {len(missing)} "
                f"of {len(untouched)} untouched"
            )
            print(
                f"records in the snapshot: {len(seen)}; writer rounds during the scan: {rounds[0]} "
                f"({rounds[0] * PER_ROUND * 3} writes)"
            )
            print(
                f"point in time: {manifest.point_in_time_note()} "
                f"(added {window['added']}, deleted {window['deleted']})"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
