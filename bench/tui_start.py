"""The console with a large catalog: time to the first frame, and time per filter keystroke.

Goals (issue 13): first frame <= 0.5 s and a keystroke <= 50 ms at 2,000 snapshots.
Each round starts two processes, alternating: the console on a catalog of N snapshots
(chains of one full and 19 incrementals), and the floor, a bare Textual app (one input,
one line of text) measured the same way. Both are timed from process start to the
first frame showing, then per keystroke from the key press until the frame after it is
drawn: the key is posted as a terminal would post it, and the clock stops at the first
refresh after the filter holds it (the same harness for both). The keys type a filter
that narrows and widens the list (``kb-i``, ``-0``, then back to empty).

    python bench/tui_start.py [--snapshots 2000] [--rounds 5] [--load 0]

``--load N`` keeps N busy processes spinning while measuring: a shared, loaded machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

CHILD = "--child"
KEYS = ["slash", *"kb-i", "backspace", "backspace", *"-0", *["backspace"] * 5]


def build(folder: Path, count: int) -> None:
    from drconsole.catalog.local import LocalStore
    from drconsole.catalog.writer import SnapshotWriter
    from drconsole.model.schema import CollectionSchema
    from drconsole.records import RecordBatch

    store = LocalStore(folder)
    start = datetime.now(UTC) - timedelta(hours=count + 1)
    parent = None
    for number in range(count):
        full = number % 20 == 0
        writer = SnapshotWriter(store, f"2026{number:05d}-kb-{'F' if full else 'I'}")
        collection = writer.collection("kb_articles", CollectionSchema.dense(8, "cosine"))
        collection.add(
            RecordBatch([f"r{number}"], np.ones((1, 8), np.float32), [None], [None], [None])
        )
        collection.close(total_after_apply=1)
        moment = start + timedelta(hours=number)
        parent = writer.finish(
            kind="full" if full else "incremental",
            parent=None if full else parent,
            created_at=moment,
            recovery_point=moment,
            source={"engine": "bench", "url": "x"},
        )


def console_child(catalog: str, runs: str, expected: int) -> None:
    from textual.widgets import Input

    from drconsole.tui.app import make_app, run_console
    from drconsole.tui.snapshot_list import SnapshotList

    app = make_app(runs_dir=Path(runs), catalog=catalog)

    def ready() -> bool:
        try:
            return len(app.screen.query_one(SnapshotList).shown) >= expected
        except Exception:  # noqa: BLE001 - the screen is not up yet
            return False

    def holds(typed: str) -> bool:
        return (
            app.screen.query_one("#filter", Input).has_focus
            and app.screen.query_one(SnapshotList).filter_text == typed.lower()
        )

    _measure(app, ready, holds, run_console)


def bare_child() -> None:
    from textual.app import App
    from textual.widgets import Input, Static

    class Bare(App[None]):
        def compose(self):  # type: ignore[no-untyped-def]
            yield Input(id="filter")
            yield Static("ready", id="text")

        def key_slash(self) -> None:
            self.query_one(Input).focus()

    app = Bare()

    def holds(typed: str) -> bool:
        field = app.query_one(Input)
        return field.has_focus and field.value == typed

    _measure(
        app,
        lambda: bool(app.screen.query("#text")),
        holds,
        lambda app, **options: app.run(**options),
    )


def _measure(app, ready, holds, run) -> None:  # type: ignore[no-untyped-def]
    async def refreshed() -> None:
        done = asyncio.get_running_loop().create_future()
        app.call_after_refresh(lambda: done.set_result(None))
        await done

    async def watch(pilot) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 60
        while not ready() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        await refreshed()
        print("first-frame", flush=True)
        await pilot.pause(0.5)
        times, typed = [], ""
        for key in KEYS:
            typed = typed[:-1] if key == "backspace" else typed if key == "slash" else typed + key
            started = time.perf_counter()
            app.simulate_key(key)
            while not holds(typed) and time.perf_counter() - started < 10:
                await asyncio.sleep(0)
            await refreshed()
            times.append(time.perf_counter() - started)
        print(json.dumps(times), flush=True)
        app.exit()

    run(app, headless=True, size=(120, 36), auto_pilot=watch)


def timed(argv: list[str]) -> tuple[float, list[float]]:
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first = None
    for line in process.stdout:
        if "first-frame" in line:
            first = time.perf_counter() - started
        elif line.startswith("["):
            keys = json.loads(line)
            break
    else:
        raise RuntimeError(f"{argv[2]} never showed its first frame")
    process.wait(60)
    assert first is not None
    return first, keys


def spin() -> None:
    while True:
        pass


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        if sys.argv[2] == "bare":
            bare_child()
        else:
            console_child(sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--load", type=int, default=0, help="busy processes while measuring")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        build(folder / "catalog", args.snapshots)
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.load)]
        for spinner in spinners:
            spinner.start()
        try:
            results: dict[str, tuple[list[float], list[float]]] = {
                "console": ([], []),
                "bare": ([], []),
            }
            for _ in range(args.rounds):
                for kind in ("bare", "console"):
                    argv = [sys.executable, __file__, CHILD, kind]
                    if kind == "console":
                        argv += [str(folder / "catalog"), str(folder / "runs"), str(args.snapshots)]
                    first, keys = timed(argv)
                    results[kind][0].append(first)
                    results[kind][1].extend(keys)
        finally:
            for spinner in spinners:
                spinner.kill()
    print(f"{args.snapshots} snapshots, {args.rounds} rounds, {args.load} busy processes")
    for kind, label in (("bare", "bare Textual app (floor)"), ("console", "drconsole catalog")):
        firsts, keys = results[kind]
        print(
            f"{label:26} first frame median {statistics.median(firsts):.2f}s "
            f"[{min(firsts):.2f}-{max(firsts):.2f}]; keystroke median "
            f"{statistics.median(keys) * 1000:.0f} ms, p90 "
            f"{statistics.quantiles(keys, n=10)[-1] * 1000:.0f} ms, max {max(keys) * 1000:.0f} ms"
        )
    console_first = statistics.median(results["console"][0])
    console_key = statistics.median(results["console"][1])
    bare_first = statistics.median(results["bare"][0])
    bare_key = statistics.median(results["bare"][1])
    print(
        f"ratio to the floor: first frame {console_first / bare_first:.2f}x, "
        f"keystroke {console_key / bare_key:.2f}x; goals: first "
        f"frame <= 0.5 s ({'met' if console_first <= 0.5 else 'MISSED'}), keystroke <= 50 ms "
        f"({'met' if console_key <= 0.05 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
