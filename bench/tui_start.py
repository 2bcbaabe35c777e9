"""Time from process start to the first rendered frame of the catalog screen with 200
snapshots listed, against ``python -c "import textual"`` alone, same run, alternating.
Goal: the first frame within 1 second.

    python bench/tui_start.py [--snapshots 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

CHILD = "--child"


def build(folder: Path, count: int) -> None:
    from drconsole.catalog.local import LocalStore
    from drconsole.catalog.writer import SnapshotWriter
    from drconsole.records import CollectionSchema, RecordBatch

    store = LocalStore(folder)
    start = datetime.now(UTC) - timedelta(days=count)
    parent = None
    for number in range(count):
        writer = SnapshotWriter(store, f"2026{number:05d}-kb-{'F' if number % 20 == 0 else 'I'}")
        collection = writer.collection("kb_articles", CollectionSchema(8, "cosine"))
        collection.add(
            RecordBatch([f"r{number}"], np.ones((1, 8), np.float32), [None], [None], [None])
        )
        collection.close(total_after_apply=1)
        moment = start + timedelta(hours=number)
        parent = writer.finish(
            kind="full" if number % 20 == 0 else "incremental",
            parent=None if number % 20 == 0 else parent,
            created_at=moment,
            recovery_point=moment,
            source={"engine": "bench", "url": "x"},
        )


def child(catalog: str, runs: str, expected: int) -> None:
    """Open the console and report (on stdout) once the tree shows every snapshot."""
    from textual.widgets import Tree

    from drconsole.tui.app import make_app

    app = make_app(runs_dir=Path(runs), catalog=catalog)

    async def watch(pilot) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                tree = app.screen.query_one("#tree", Tree)
            except Exception:  # noqa: BLE001 - the screen is not up yet
                tree = None
            if tree is not None and sum(1 for _ in _nodes(tree.root)) >= expected:
                await pilot.pause()
                print("first-frame", flush=True)
                break
            await asyncio.sleep(0.002)
        app.exit()

    app.run(headless=True, size=(120, 36), auto_pilot=watch)


def _nodes(node):
    for child_node in node.children:
        yield child_node
        yield from _nodes(child_node)


def timed(argv: list[str], marker: str | None) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if marker is not None:
        for line in process.stdout:
            if marker in line:
                elapsed = time.perf_counter() - started
                break
        else:
            raise RuntimeError("the console never showed its first frame")
        process.wait(30)
        return elapsed
    process.wait(30)
    return time.perf_counter() - started


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        build(folder / "catalog", args.snapshots)
        ours, textual_only = [], []
        for _ in range(args.rounds):
            textual_only.append(timed([sys.executable, "-c", "import textual"], None))
            ours.append(
                timed(
                    [
                        sys.executable,
                        __file__,
                        CHILD,
                        str(folder / "catalog"),
                        str(folder / "runs"),
                        str(args.snapshots),
                    ],
                    "first-frame",
                )
            )
    print(
        f"python -c 'import textual': {statistics.median(textual_only):.2f}s "
        f"(median of {args.rounds})"
    )
    print(
        f"drconsole catalog with {args.snapshots} snapshots, first frame: "
        f"{statistics.median(ours):.2f}s (goal < 1.0s)"
    )


if __name__ == "__main__":
    main()
