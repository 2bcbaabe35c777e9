"""A full snapshot taken while another client keeps writing, on a real Chroma server.

The writer deletes the oldest records, adds new ones and updates others, a round after
every page the snapshot reads (so the writes really interleave with the scan). Offset
paging skipped records that nobody touched here; the scan must not: every record that
existed for the whole scan is in the snapshot, a changed one in a state it had, and the
manifest says how fuzzy the point in time is.
"""

from __future__ import annotations

import collections
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.local import LocalStore
from drconsole.catalog.plan import RestorePlan
from drconsole.catalog.verify import Depth, verify
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch

from helpers import run_cli

pytestmark = pytest.mark.integration

DIMENSION = 8
RECORDS = 6000
PER_ROUND = 200
PAGE = 500


def _batch(ids: list[str], version: int) -> RecordBatch:
    rng = np.random.default_rng(len(ids) + version)
    return RecordBatch(
        ids,
        rng.standard_normal((len(ids), DIMENSION)).astype(np.float32),
        [f"{record_id} v{version}" for record_id in ids],
        [{"version": version} for _ in ids],
        [None] * len(ids),
    )


class Writer:
    """Deletes the oldest PER_ROUND records, adds PER_ROUND and updates PER_ROUND per
    round; remembers every id it touched and every document a record ever had."""

    def __init__(self, engine: ChromaEngine, name: str, live: list[str]) -> None:
        self.engine = engine
        self.name = name
        self.live = collections.deque(live)
        self.next_id = len(live)
        self.touched: set[str] = set()
        self.documents: dict[str, set[str | None]] = {i: {f"{i} v0"} for i in live}
        self.rounds = 0
        self.paused = threading.Event()

    def round(self) -> None:
        if self.paused.is_set():
            return
        self.rounds += 1
        version = self.rounds
        gone = [self.live.popleft() for _ in range(PER_ROUND)]
        self.engine.delete(self.name, gone)
        new = [f"r{self.next_id + n:07d}" for n in range(PER_ROUND)]
        self.next_id += PER_ROUND
        self.engine.upsert(self.name, _batch(new, version))
        self.live.extend(new)
        picks = np.random.default_rng(version).choice(len(self.live), PER_ROUND, replace=False)
        changed = [self.live[int(i)] for i in picks]
        self.engine.upsert(self.name, _batch(changed, version))
        for record_id in new + changed:
            self.documents.setdefault(record_id, set()).add(f"{record_id} v{version}")
        self.touched.update(gone + new + changed)


@pytest.fixture
def busy(chroma: ChromaServer, source_engine: ChromaEngine):
    source_engine.create_collection("docs", CollectionSchema.dense(DIMENSION, "l2"))
    ids = [f"r{n:07d}" for n in range(RECORDS)]
    for start in range(0, RECORDS, 1000):
        source_engine.upsert("docs", _batch(ids[start : start + 1000], 0))
    engine = ChromaEngine(chroma.url, database=source_engine.database)
    try:
        yield Writer(engine, "docs", ids)
    finally:
        engine.close()


def _snapshot(source: ChromaEngine, catalog: Path, writer: Writer, **hooks: list[str]):
    def progress(collection: str, done: int, total: int) -> None:
        writer.round()

    store = LocalStore(catalog)
    request = SnapshotRequest(
        engine=source,
        store=store,
        collections=["docs"],
        name="busy",
        page_size=PAGE,
        **hooks,
    )
    return store, create_snapshot(request, progress)


def _contents(store: LocalStore, manifest) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for batch in RestorePlan(store, [manifest]).batches("docs"):
        for record_id, document in zip(batch.ids, batch.documents, strict=True):
            assert record_id not in found, f"{record_id} appears twice"
            found[record_id] = document
    return found


def test_a_snapshot_under_concurrent_writes_misses_nothing(
    busy: Writer, source_engine: ChromaEngine, tmp_path: Path
) -> None:
    initial = set(busy.live)
    store, manifest = _snapshot(source_engine, tmp_path / "catalog", busy)
    assert busy.rounds >= RECORDS // PAGE, "the writer ran during the whole scan"
    snapshot = _contents(store, manifest)
    untouched = initial - busy.touched
    missing = sorted(untouched - set(snapshot))
    assert not missing, f"{len(missing)} records nobody touched are missing: {missing[:5]}"
    for record_id, document in snapshot.items():
        assert document in busy.documents[record_id], f"{record_id} in a state it never had"
    window = manifest.point_in_time
    assert window["kind"] == "fuzzy" and not window["quiesced"]
    assert window["scan_started_at"] <= window["scan_ended_at"]
    assert window["changes_seen"] == window["added"] + window["deleted"] > 0
    entry = manifest.collection("docs")
    assert entry.counts["total_after_apply"] == len(snapshot)
    assert entry.scan["changes_seen"] == window["changes_seen"]
    view = load_catalog(store)
    assert verify(view, store, [manifest.id], Depth.parse("full")).intact
    shown = run_cli("catalog", "show", str(tmp_path / "catalog"), manifest.id)
    assert "fuzzy over" in shown.stdout and f"{window['changes_seen']} changes seen" in shown.stdout
    print(
        f"records missing: {len(missing)} of {len(untouched)} untouched; "
        f"changes seen {window['changes_seen']} (added {window['added']}, deleted "
        f"{window['deleted']}); writer rounds {busy.rounds}",
        file=sys.stderr,
    )


def test_quiesce_hooks_make_the_point_in_time_exact(
    busy: Writer, source_engine: ChromaEngine, tmp_path: Path
) -> None:
    """The hooks stand for the real thing: quiesce pauses the writer and returns once it
    acknowledged (as scaling ingestion to zero and waiting would); unquiesce resumes it."""
    pause, paused = tmp_path / "pause", tmp_path / "paused"
    watcher = threading.Thread(target=_obey, args=(busy, pause, paused), daemon=True)
    watcher.start()
    quiesce = ["sh", "-c", f"touch {pause}; while [ ! -f {paused} ]; do sleep 0.02; done"]
    unquiesce = ["rm", "-f", str(pause)]
    store, manifest = _snapshot(
        source_engine, tmp_path / "catalog", busy, quiesce=quiesce, unquiesce=unquiesce
    )
    assert not pause.exists(), "unquiesce ran"
    window = manifest.point_in_time
    assert window == {**window, "kind": "quiesced", "quiesced": True, "changes_seen": 0}
    assert set(_contents(store, manifest)) == set(busy.live)
    assert manifest.point_in_time_note().startswith("quiesced over")


def test_a_quiesce_that_does_not_pause_is_reported_fuzzy(
    busy: Writer, source_engine: ChromaEngine, tmp_path: Path
) -> None:
    _, manifest = _snapshot(
        source_engine, tmp_path / "catalog", busy, quiesce=["true"], unquiesce=["true"]
    )
    window = manifest.point_in_time
    assert window["kind"] == "fuzzy" and window["quiesced"] and window["changes_seen"] > 0
    assert "ingestion was paused by a hook, yet" in manifest.point_in_time_note()


def test_a_failing_quiesce_stops_the_snapshot_and_still_resumes(
    busy: Writer, source_engine: ChromaEngine, tmp_path: Path
) -> None:
    resumed = tmp_path / "resumed"
    result = run_cli(
        "snapshot",
        "create",
        "--url",
        source_engine.url,
        "--database",
        source_engine.database,
        "--collections",
        "docs",
        "--catalog",
        str(tmp_path / "catalog"),
        "--quiesce",
        "sh -c 'echo cannot reach the ingestion API; exit 3'",
        "--unquiesce",
        f"touch {resumed}",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "quiesce command sh exited 3: cannot reach the ingestion API" in result.stderr
    assert resumed.exists(), "ingestion is resumed even when pausing it failed"
    listing = json.loads(run_cli("catalog", "list", str(tmp_path / "catalog"), "--json").stdout)
    assert listing["snapshots"] == [] and listing["unfinished"] == [], "nothing was written"


def _obey(writer: Writer, pause: Path, paused: Path) -> None:
    """Pause the writer once the pause file appears (acknowledged with another file),
    and resume it when the pause file is gone."""
    tick = threading.Event()
    while not pause.exists():
        tick.wait(0.01)
    writer.paused.set()
    paused.touch()
    while pause.exists():
        tick.wait(0.01)
    writer.paused.clear()
