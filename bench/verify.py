"""`catalog verify --depth full` over ~1 GB of parts on local disk, against `openssl dgst
-sha256` on the same files (OpenSSL uses the CPU's SHA instructions; coreutils `sha256sum`
here does not, and flatters us 6x), alternating in the same run, warm page cache for
both; medians and spread. Goal (issue 14): >= 1.8x openssl on 2 cores (verify hashes
parts in parallel, openssl one file after another).

    python bench/verify.py [--gib 1.0] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.local import LocalStore
from drconsole.catalog.verify import Depth, verify
from drconsole.catalog.writer import SnapshotWriter
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch

DIMENSION = 384
PART_ROWS = 40_000


def build(root: Path, gib: float) -> list[Path]:
    store = LocalStore(root)
    rows = int(gib * 1024**3 / (DIMENSION * 4))
    writer = SnapshotWriter(store, "bench-full", part_rows=PART_ROWS)
    collection = writer.collection("docs", CollectionSchema.dense(DIMENSION, "cosine"))
    rng = np.random.default_rng(0)
    for start in range(0, rows, PART_ROWS):
        count = min(PART_ROWS, rows - start)
        ids = [f"doc-{start + n}" for n in range(count)]
        collection.add(
            RecordBatch(
                ids,
                rng.standard_normal((count, DIMENSION), dtype=np.float32),
                [None] * count,
                [None] * count,
                [None] * count,
            )
        )
    collection.close(total_after_apply=rows)
    now = datetime.now(UTC)
    writer.finish(
        kind="full", parent=None, created_at=now, recovery_point=now, source={"engine": "bench"}
    )
    return sorted((root / "snapshots" / "bench-full" / "docs").iterdir())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as folder:
        root = Path(folder)
        files = build(root, args.gib)
        total = sum(path.stat().st_size for path in files)
        store = LocalStore(root)
        ours, theirs = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            subprocess.run(
                ["openssl", "dgst", "-sha256", *map(str, files)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            theirs.append(time.perf_counter() - started)
            started = time.perf_counter()
            view = load_catalog(store)
            result = verify(view, store, ["bench-full"], Depth.parse("full"))
            ours.append(time.perf_counter() - started)
            assert result.intact and result.bytes_hashed == total
        mib = total / 1024**2
        ours_rates = sorted(mib / seconds for seconds in ours)
        theirs_rates = sorted(mib / seconds for seconds in theirs)
        ratio = statistics.median(ours_rates) / statistics.median(theirs_rates)
        print(f"data: {len(files)} files, {mib:.0f} MiB; rounds: {args.rounds}")
        print(
            f"openssl dgst -sha256:    {statistics.median(theirs_rates):6.0f} MiB/s "
            f"[{theirs_rates[0]:.0f}-{theirs_rates[-1]:.0f}]"
        )
        print(
            f"drconsole verify (full): {statistics.median(ours_rates):6.0f} MiB/s "
            f"[{ours_rates[0]:.0f}-{ours_rates[-1]:.0f}]"
        )
        print(f"ratio drconsole/openssl: {ratio:.2f} (goal >= 1.8)")


if __name__ == "__main__":
    main()
