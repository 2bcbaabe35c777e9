"""The restore pipeline from a local catalog into a null sink: decode, chain collapse,
batching and request encoding (exactly the body the Chroma adapter sends), for 1,000,000
records of 384-d in a full snapshot and 10 incrementals. Reports records per CPU-second
and the peak RSS of the process that runs the pipeline (a fresh one per round, so
building the catalog does not count), median and spread of the rounds. Goals (issue 14):
>= 300,000 records per CPU-second, peak RSS <= 150 MB and flat at 1M, 3M and 6M.

    python bench/restore_pipeline.py [--records 1000000 3000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from drconsole.actions.restore_data import batches
from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.local import LocalStore
from drconsole.catalog.plan import RestorePlan
from drconsole.catalog.writer import SnapshotWriter
from drconsole.corpus import CorpusSpec, records
from drconsole.engines.chroma.engine import upsert_body
from drconsole.model.schema import CollectionSchema

BATCH = 1000


def build(root: Path, count: int, incrementals: int) -> str:
    """A full snapshot of ``count`` records, then ``incrementals`` each changing 1% of
    the records and deleting 0.5%; the newest snapshot's id."""
    store = LocalStore(root)
    moment = datetime.now(UTC) - timedelta(hours=1)
    writer = SnapshotWriter(store, "bench-F")
    collection = writer.collection("kb_articles", CollectionSchema.dense(384, "cosine"))
    spec = CorpusSpec("kb", count)
    for start in range(0, count, 20_000):
        collection.add(records(spec, start, min(count, start + 20_000)))
    collection.close(total_after_apply=count)
    parent = writer.finish(
        kind="full",
        parent=None,
        created_at=moment,
        recovery_point=moment,
        source={"engine": "bench"},
    )
    alive = count
    changed, deleted = count // 100, count // 200
    for number in range(1, incrementals + 1):
        writer = SnapshotWriter(store, f"bench-I{number:02d}")
        collection = writer.collection("kb_articles", CollectionSchema.dense(384, "cosine"))
        first = (number * 7919 * changed) % max(1, count - changed - deleted)
        collection.add(records(CorpusSpec("kb", count, version=number), first, first + changed))
        gone = [f"kb-{n:06d}" for n in range(first + changed, first + changed + deleted)]
        collection.delete(gone, [None] * deleted)
        alive -= deleted
        collection.close(total_after_apply=alive)
        parent = writer.finish(
            kind="incremental",
            parent=parent,
            created_at=moment + timedelta(minutes=5 * number),
            recovery_point=moment + timedelta(minutes=5 * number),
            source={"engine": "bench"},
        )
    return parent.id


def pipeline(root: Path) -> None:
    """Runs in a fresh process: prints records, seconds and peak RSS as JSON."""
    store = LocalStore(root)
    view = load_catalog(store)
    chain, _ = view.chain(view.ordered()[-1].id)
    plan = RestorePlan(store, chain)
    started = time.perf_counter()
    cpu_started = time.process_time()
    written = 0
    body_bytes = 0
    for batch in batches(plan.batches("kb_articles"), BATCH):
        body_bytes += len(orjson.dumps(upsert_body(batch)))
        written += len(batch)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak_mib = peak_rss_mib()
    print(
        json.dumps(
            {
                "records": written,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "snapshots": len(chain),
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
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--incrementals", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        pipeline(args.run)
        return
    for count in args.records:
        with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as folder:
            started = time.perf_counter()
            build(Path(folder), count, args.incrementals)
            print(
                f"built {count:,} records, a full + {args.incrementals} incrementals, "
                f"in {time.perf_counter() - started:.0f}s"
            )
            results = [
                json.loads(
                    subprocess.run(
                        [sys.executable, __file__, "--run", folder],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
                for _ in range(args.rounds)
            ]
        rates = sorted(r["records"] / r["cpu_seconds"] for r in results)
        walls = sorted(r["records"] / r["seconds"] for r in results)
        peaks = sorted(r["peak_rss_mib"] for r in results)
        print(f"  final state: {results[0]['records']:,} records from {results[0]['snapshots']}")
        print(
            f"  {statistics.median(rates):,.0f} records per CPU-second "
            f"[{rates[0]:,.0f}-{rates[-1]:,.0f}] (goal >= 300,000); "
            f"{statistics.median(walls):,.0f} records/s wall"
        )
        print(
            f"  peak RSS {statistics.median(peaks):.0f} MiB [{peaks[0]:.0f}-{peaks[-1]:.0f}] "
            f"(goal <= 150)"
        )


if __name__ == "__main__":
    main()
