"""`catalog list` over 500 snapshots on SeaweedFS, against a plain serial boto3 loop that
lists the prefix and gets every manifest, same server, same run, rounds alternating:
drconsole from its catalog index (built once by `catalog reindex`), and without it.

    python bench/catalog_list.py [--snapshots 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from drconsole.catalog.catalog import load_catalog, rebuild_index
from drconsole.catalog.s3 import S3Store
from drconsole.sandbox import SeaweedS3

BUCKET = "bench-catalog"


def manifest(number: int) -> bytes:
    snapshot_id = f"2026{number:06d}-kb-F"
    return json.dumps(
        {
            "format": "drconsole-snapshot/1",
            "id": snapshot_id,
            "kind": "full",
            "parent": None,
            "parent_manifest_sha256": None,
            "created_at": "2026-11-22T10:00:00Z",
            "completed_at": "2026-11-22T10:01:00Z",
            "recovery_point": "2026-11-22T10:00:00Z",
            "source": {"engine": "chroma", "url": "http://x"},
            "ingest_checkpoint": {},
            "permissions": {},
            "collections": [
                {
                    "name": "docs",
                    "schema": {"dimension": 384, "distance": "cosine"},
                    "counts": {"records": 0, "deletes": 0, "total_after_apply": 0},
                    "files": [],
                }
            ],
            "tool": {"name": "bench", "version": "0"},
        }
    ).encode()


def serial_loop(client: Any, prefix: str) -> int:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys += [
            item["Key"]
            for item in page.get("Contents", [])
            if item["Key"].endswith("/manifest.json")
        ]
    for key in keys:
        json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return len(keys)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as folder:
        server = SeaweedS3(Path(folder))
        server.start()
        try:
            client = server.client()
            client.create_bucket(Bucket=BUCKET)
            with ThreadPoolExecutor(16) as pool:
                list(
                    pool.map(
                        lambda n: client.put_object(
                            Bucket=BUCKET,
                            Key=f"kb/snapshots/2026{n:06d}-kb-F/manifest.json",
                            Body=manifest(n),
                        ),
                        range(args.snapshots),
                    )
                )
            os.environ["BENCH_S3"] = server.credentials_value
            store = S3Store(BUCKET, "kb", endpoint=server.endpoint, credentials="env:BENCH_S3")
            rebuild_index(store)
            timings: dict[str, list[float]] = {"serial boto3": [], "indexed": [], "folders": []}
            for _ in range(args.rounds):
                started = time.perf_counter()
                assert serial_loop(client, "kb/snapshots/") == args.snapshots
                timings["serial boto3"].append(time.perf_counter() - started)
                for name, use_index in (("indexed", True), ("folders", False)):
                    started = time.perf_counter()
                    view = load_catalog(store, use_index=use_index)
                    assert len(view.snapshots) == args.snapshots
                    timings[name].append(time.perf_counter() - started)
        finally:
            server.stop()
    print(f"{args.snapshots} snapshots on SeaweedFS, {args.rounds} rounds: median [min-max]")
    labels = {
        "serial boto3": "serial boto3 list + get",
        "indexed": "drconsole, catalog index",
        "folders": "drconsole, every folder",
    }
    for name, label in labels.items():
        values = timings[name]
        print(
            f"{label:26} {statistics.median(values):6.2f} s [{min(values):.2f}-{max(values):.2f}]"
        )
    peer = statistics.median(timings["serial boto3"])
    for name in ("indexed", "folders"):
        print(f"{labels[name]}: {peer / statistics.median(timings[name]):.2f}x the boto3 loop")
    print("goal: the listing of 5,000 snapshots in <= 1 s")


if __name__ == "__main__":
    main()
