"""The restore pipeline from a local catalog into a null sink: decode, chain collapse,
batching and request encoding (exactly the body the Chroma adapter sends), for 1,000,000
records of 384-d in a full snapshot plus an incremental. Reports records/s and the peak
RSS of the process that runs the pipeline (a fresh one, so building the catalog does not
count). Goals: >= 100,000 records/s, peak RSS < 400 MB.

    python bench/restore_pipeline.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from drconsole.actions.restore_data import _batches
from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.local import LocalStore
from drconsole.catalog.plan import RestorePlan
from drconsole.catalog.writer import SnapshotWriter
from drconsole.corpus import CorpusSpec, records
from drconsole.engines.chroma.engine import upsert_body
from drconsole.schema import CollectionSchema

BATCH = 1000


def build(root: Path, count: int) -> None:
    store = LocalStore(root)
    moment = datetime.now(UTC) - timedelta(hours=1)
    writer = SnapshotWriter(store, "bench-F", part_rows=20_000)
    collection = writer.collection("kb_articles", CollectionSchema(384, "cosine"))
    spec = CorpusSpec("kb", count)
    for start in range(0, count, 20_000):
        collection.add(records(spec, start, min(count, start + 20_000)))
    collection.close(total_after_apply=count)
    full = writer.finish(
        kind="full",
        parent=None,
        created_at=moment,
        recovery_point=moment,
        source={"engine": "bench"},
    )
    changed = count // 20
    writer = SnapshotWriter(store, "bench-I", part_rows=20_000)
    collection = writer.collection("kb_articles", CollectionSchema(384, "cosine"))
    collection.add(records(CorpusSpec("kb", count, version=1), 0, changed))
    collection.delete([f"kb-{n:06d}" for n in range(changed, 2 * changed)], [None] * changed)
    collection.close(total_after_apply=count - changed)
    writer.finish(
        kind="incremental",
        parent=full,
        created_at=moment + timedelta(minutes=5),
        recovery_point=moment + timedelta(minutes=5),
        source={"engine": "bench"},
    )


def pipeline(root: Path) -> None:
    """Runs in a fresh process: prints records, seconds and peak RSS as JSON."""
    store = LocalStore(root)
    chain, _ = load_catalog(store).chain("bench-I")
    plan = RestorePlan(store, chain)
    started = time.perf_counter()
    written = 0
    body_bytes = 0
    for batch in _batches(plan, "kb_articles", BATCH):
        body_bytes += len(orjson.dumps(upsert_body(batch)))
        written += len(batch)
    seconds = time.perf_counter() - started
    peak_mib = peak_rss_mib()
    print(
        json.dumps(
            {
                "records": written,
                "seconds": seconds,
                "peak_rss_mib": peak_mib,
                "body_mib": body_bytes / 2**20,
            }
        )
    )


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM). Not getrusage's ru_maxrss: on Linux that survives
    execve, so a fresh child would report the peak of the parent that spawned it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        pipeline(args.run)
        return
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as folder:
        started = time.perf_counter()
        build(Path(folder), args.records)
        print(
            f"built a {args.records}-record chain (full + incremental) "
            f"in {time.perf_counter() - started:.0f}s"
        )
        output = subprocess.run(
            [sys.executable, __file__, "--run", folder], capture_output=True, text=True, check=True
        )
        result = json.loads(output.stdout)
    rate = result["records"] / result["seconds"]
    print(f"records written (final state): {result['records']}")
    print(f"pipeline: {rate:,.0f} records/s (goal >= 100,000)  in {result['seconds']:.1f}s")
    print(
        f"peak RSS: {result['peak_rss_mib']:.0f} MiB (goal < 400)  "
        f"request bodies: {result['body_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
