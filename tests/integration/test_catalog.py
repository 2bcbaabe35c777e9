"""The catalog suite, run against a local folder and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drconsole.catalog import catalog as findings
from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.local import LocalStore
from drconsole.catalog.lock import lock_catalog
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.plan import RestorePlan
from drconsole.catalog.reader import SnapshotReader
from drconsole.catalog.retention import (
    KeepPolicy,
    abandoned_uploads,
    apply_retention,
    plan_retention,
)
from drconsole.catalog.s3 import S3Store
from drconsole.catalog.select import select_recovery_point
from drconsole.catalog.store import ObjectExists, ObjectStore
from drconsole.catalog.verify import Depth, verify
from drconsole.catalog.writer import SnapshotWriter
from drconsole.errors import DrconsoleError, IntegrityError, StoreError
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch
from drconsole.retry import RetryPolicy
from drconsole.sandbox import SeaweedS3, free_ports
from drconsole.timefmt import compact_utc

from catalog_spec import digest, write_spec_snapshot

T0 = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)
DIM = 8
SOURCE = {"engine": "chroma", "url": "http://chroma.test:8000"}
FULL = Depth.parse("full")


def _batch(ids: list[str], version: int = 0, seed: int = 0) -> RecordBatch:
    rng = np.random.default_rng(seed)
    return RecordBatch(
        ids=ids,
        vectors=rng.standard_normal((len(ids), DIM)).astype(np.float32),
        documents=[f"{i} v{version}" for i in ids],
        metadatas=[
            {"tenant_id": f"t{n % 3}", "version": version, "tags": ["a", "b"]}
            for n in range(len(ids))
        ],
        tenants=[None] * len(ids),
    )


def _snapshot(
    store: ObjectStore,
    name: str,
    hours: float,
    batches: list[RecordBatch],
    *,
    parent: Manifest | None = None,
    deletes: list[str] | None = None,
    part_rows: int = 10,
    total: int = 0,
) -> Manifest:
    writer = SnapshotWriter(store, name, part_rows=part_rows)
    collection = writer.collection("help_articles", CollectionSchema.dense(DIM, "cosine"))
    for batch in batches:
        collection.add(batch)
    if deletes:
        collection.delete(deletes, [None] * len(deletes))
    collection.close(total_after_apply=total)
    moment = T0 + timedelta(hours=hours)
    return writer.finish(
        kind="incremental" if parent else "full",
        parent=parent,
        created_at=moment,
        recovery_point=moment,
        source=SOURCE,
    )


def _overwrite(store: ObjectStore, key: str, data: bytes) -> None:
    with store.writer(key) as handle:
        handle.write(data)


def _kinds(items: list[findings.Finding]) -> set[str]:
    return {finding.kind for finding in items}


def test_round_trip_through_parts(store: ObjectStore) -> None:
    original = _batch([f"r{n:03d}" for n in range(25)], seed=3)
    manifest = _snapshot(
        store, "full-1", 0, [original.slice(0, 7), original.slice(7, 25)], total=25
    )
    assert [entry.rows for entry in manifest.collections[0].files_of("records")] == [10, 10, 5]
    reader = SnapshotReader(store, load_catalog(store).snapshots["full-1"])
    collection = manifest.collections[0]
    parts = [
        batch
        for entry in reader.records_parts(collection)
        for batch in reader.part(collection, entry)
    ]
    assert [i for batch in parts for i in batch.ids] == original.ids
    assert [d for batch in parts for d in batch.documents] == original.documents
    assert [m for batch in parts for m in batch.metadatas] == original.metadatas
    assert (
        np.concatenate([batch.vectors for batch in parts]).tobytes() == original.vectors.tobytes()
    )


def test_reader_accepts_a_catalog_written_by_hand_from_the_spec(store: ObjectStore) -> None:
    vectors = np.arange(3 * 4, dtype=np.float32).reshape(3, 4) / 7
    records = [
        {
            "id": f"doc-{n}",
            "document": f"text {n}",
            "metadata": {"tenant_id": "acme"},
            "tenant": None,
        }
        for n in range(3)
    ]
    full = write_spec_snapshot(
        store,
        "20261121T101500Z-kb-F",
        records=records,
        vectors=vectors,
        recovery_point="2026-11-21T10:15:00Z",
    )
    update = [
        {
            "id": "doc-1",
            "document": "text 1 updated",
            "metadata": {"tenant_id": "acme"},
            "tenant": None,
        }
    ]
    write_spec_snapshot(
        store,
        "20261122T101500Z-kb-I",
        records=update,
        vectors=vectors[:1] * 2,
        deletes=[{"id": "doc-2", "tenant": None}],
        parent=("20261121T101500Z-kb-F", digest(full)),
    )
    view = load_catalog(store)
    assert set(view.snapshots) == {"20261121T101500Z-kb-F", "20261122T101500Z-kb-I"}
    chain, problems = view.chain("20261122T101500Z-kb-I")
    assert problems == []
    assert verify(view, store, [m.id for m in chain], Depth.parse("full")).intact
    final = {}
    for batch in RestorePlan(store, chain).batches("help_articles"):
        for index, record_id in enumerate(batch.ids):
            assert record_id not in final
            final[record_id] = (batch.documents[index], batch.vectors[index].tobytes())
    assert final == {
        "doc-1": ("text 1 updated", (vectors[0] * 2).tobytes()),
        "doc-0": ("text 0", vectors[0].tobytes()),
    }


@pytest.mark.parametrize(
    "tamper", ["missing_parent", "parent_digest", "recovery_point_order", "cycle"]
)
def test_chain_findings(store: ObjectStore, tamper: str) -> None:
    vectors = np.ones((1, 4), dtype=np.float32)
    records = [{"id": "a", "document": None, "metadata": None, "tenant": None}]
    full = write_spec_snapshot(
        store, "full", records=records, vectors=vectors, recovery_point="2026-11-21T10:00:00Z"
    )
    when = "2026-11-20T10:00:00Z" if tamper == "recovery_point_order" else "2026-11-22T10:00:00Z"
    write_spec_snapshot(
        store,
        "inc",
        records=records,
        vectors=vectors,
        parent=("full", digest(full)),
        recovery_point=when,
    )
    if tamper == "missing_parent":
        store.delete(["snapshots/full/manifest.json"])
    elif tamper == "parent_digest":
        _overwrite(store, "snapshots/full/manifest.json", full + b"\n")
    elif tamper == "cycle":
        write_spec_snapshot(
            store,
            "loop-a",
            records=records,
            vectors=vectors,
            parent=("loop-b", "0" * 64),
            recovery_point="2026-11-23T10:00:00Z",
        )
        write_spec_snapshot(
            store,
            "loop-b",
            records=records,
            vectors=vectors,
            parent=("loop-a", "0" * 64),
            recovery_point="2026-11-24T10:00:00Z",
        )
    view = load_catalog(store)
    assert view.broken() == {i for i in view.snapshots if view.chain(i)[1]}, "one-pass verdict"
    assert view.broken() >= ({"loop-a", "loop-b"} if tamper == "cycle" else {"inc"})
    if tamper == "cycle":
        assert findings.CYCLE in _kinds(view.chain("loop-a")[1])
        assert view.trees()[1], "snapshots in a cycle hang from no full base"
        return
    expected = {
        "missing_parent": findings.MISSING_PARENT,
        "parent_digest": findings.PARENT_DIGEST,
        "recovery_point_order": findings.RECOVERY_POINT_ORDER,
    }[tamper]
    assert expected in _kinds(view.chain("inc")[1])
    if tamper == "missing_parent":
        assert [u.id for u in view.unfinished] == ["full"]


@pytest.mark.parametrize(
    ("tamper", "caught_at", "kind"),
    [
        ("delete", "sizes", findings.FILE_MISSING),
        ("grow", "sizes", findings.SIZE_MISMATCH),
        ("flip", "full", findings.CHECKSUM_MISMATCH),
    ],
)
def test_file_findings_at_their_depth(
    store: ObjectStore, tamper: str, caught_at: str, kind: str
) -> None:
    manifest = _snapshot(store, "full-1", 0, [_batch([f"r{n}" for n in range(20)])], total=20)
    entry = manifest.collections[0].files_of("records")[1]
    key = f"snapshots/full-1/{entry.path}"
    if tamper == "delete":
        store.delete([key])
    else:
        data = bytearray(store.read(key))
        if tamper == "grow":
            data += b"\0"
        else:
            data[-1] ^= 0xFF
        _overwrite(store, key, bytes(data))
    view = load_catalog(store)
    order = ["manifest", "sizes", "full"]
    for depth in order:
        result = verify(view, store, ["full-1"], Depth.parse(depth))
        if order.index(depth) < order.index(caught_at):
            assert result.intact, f"{depth} should not see a {tamper}"
        else:
            assert [(f.kind, f.file) for f in result.findings] == [(kind, entry.path)]
    assert (
        verify(view, store, ["full-1"], Depth.parse("sample:100%"), seed=1).findings[0].kind == kind
    )
    with pytest.raises(IntegrityError, match=r"records-00001\.parquet of snapshot full-1"):
        list(RestorePlan(store, [view.snapshots["full-1"]]).batches("help_articles"))


def test_sample_depth_is_seeded_and_recorded(store: ObjectStore) -> None:
    _snapshot(store, "full-1", 0, [_batch([f"r{n}" for n in range(100)])], total=100)
    view = load_catalog(store)
    first = verify(view, store, ["full-1"], Depth.parse("sample:30%"), seed=7)
    again = verify(view, store, ["full-1"], Depth.parse("sample:30%"), seed=7)
    full = verify(view, store, ["full-1"], Depth.parse("full"))
    assert first.seed == 7 and first.depth == "sample:30%"
    assert first.bytes_hashed == again.bytes_hashed
    assert 0 < first.bytes_hashed < full.bytes_hashed
    assert verify(view, store, ["full-1"], Depth.parse("sample:30%")).seed is not None


def test_traversal_paths_in_a_manifest_are_refused(store: ObjectStore) -> None:
    vectors = np.ones((1, 4), dtype=np.float32)
    records = [{"id": "a", "document": None, "metadata": None, "tenant": None}]
    evil = {
        "path": "../../outside.bin",
        "kind": "records",
        "rows": 1,
        "bytes": 1,
        "sha256": "0" * 64,
    }
    write_spec_snapshot(store, "evil", records=records, vectors=vectors, extra_files=[evil])
    view = load_catalog(store)
    assert "evil" not in view.snapshots
    assert "tampering" in view.invalid["evil"]
    with pytest.raises(DrconsoleError, match="invalid manifest"):
        view.require("evil")


def test_an_unfinished_upload_is_never_offered(store: ObjectStore) -> None:
    full = _snapshot(store, "full-1", 0, [_batch(["a", "b"])], total=2)
    writer = SnapshotWriter(store, "full-2", part_rows=1)
    collection = writer.collection("help_articles", CollectionSchema.dense(DIM, "cosine"))
    collection.add(_batch(["a", "b", "c"]))  # parts written, then the writer "crashes"
    view = load_catalog(store)
    assert [(u.id, u.files) for u in view.unfinished] == [("full-2", 4)]  # 3 parts, a claim
    assert select_recovery_point(view, store, FULL, allow_unsigned=True).manifest.id == full.id
    with pytest.raises(DrconsoleError, match="unfinished"):
        view.require("full-2")


def test_only_abandoned_uploads_are_pruned_and_only_when_asked(store: ObjectStore) -> None:
    now = datetime.now(UTC)
    kept = _snapshot(store, "kept-full", 0, [_batch(["a"])], total=1)
    for name, started in (("old", now - timedelta(days=3)), ("new", now - timedelta(minutes=5))):
        writer = SnapshotWriter(store, f"{compact_utc(started)}-kb-{name}", part_rows=1)
        writer.collection("help_articles", CollectionSchema.dense(DIM, "cosine")).add(_batch(["a"]))
    writer = SnapshotWriter(store, "no-time-in-this-id", part_rows=1)
    writer.collection("help_articles", CollectionSchema.dense(DIM, "cosine")).add(_batch(["a"]))
    view = load_catalog(store)
    assert len(view.unfinished) == 3
    plan = plan_retention(view, KeepPolicy(last=1))
    assert plan.abandoned == [], "unfinished uploads are left alone unless asked"
    plan.abandoned = abandoned_uploads(view, 86400, now)
    old_id = f"{compact_utc(now - timedelta(days=3))}-kb-old"
    assert plan.abandoned == [old_id], "only one started over a day ago, and whose id says so"
    assert apply_retention(store, plan) == 2, "its records part and its claim"
    after = load_catalog(store)
    assert sorted(u.id for u in after.unfinished) == sorted(
        u.id for u in view.unfinished if u.id != old_id
    )
    assert list(after.snapshots) == [kept.id]


def test_selection_falls_back_past_a_tampered_snapshot(store: ObjectStore) -> None:
    full = _snapshot(store, "s1-full", 0, [_batch(["a", "b", "c"])], total=3)
    inc = _snapshot(store, "s2-inc", 1, [_batch(["a"], version=1)], parent=full, total=3)
    bad = _snapshot(store, "s3-inc", 2, [_batch(["b"], version=2)], parent=inc, total=3)
    key = f"snapshots/s3-inc/{bad.collections[0].files_of('records')[0].path}"
    data = bytearray(store.read(key))
    data[20] ^= 0x01
    _overwrite(store, key, bytes(data))
    view = load_catalog(store)
    selection = select_recovery_point(view, store, FULL, allow_unsigned=True)
    assert selection.manifest.id == "s2-inc"
    assert [m.id for m in selection.chain] == ["s1-full", "s2-inc"]
    assert selection.skipped[0]["snapshot_id"] == "s3-inc"
    assert "checksum" in selection.skipped[0]["reason"]
    manifest_only = select_recovery_point(view, store, Depth.parse("manifest"), allow_unsigned=True)
    assert manifest_only.manifest.id == "s3-inc"
    earlier = select_recovery_point(
        view,
        store,
        Depth.parse("sizes"),
        at_or_before=T0 + timedelta(minutes=30),
        allow_unsigned=True,
    )
    assert earlier.manifest.id == "s1-full"
    with pytest.raises(IntegrityError, match="no restorable recovery point"):
        select_recovery_point(
            view, store, FULL, at_or_before=T0 - timedelta(days=1), allow_unsigned=True
        )


def _brute_force(operations: list[tuple[str, str, int]]) -> dict[str, int]:
    state: dict[str, int] = {}
    for op, record_id, version in operations:
        if op == "put":
            state[record_id] = version
        else:
            state.pop(record_id, None)
    return state


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chain_final_state_equals_a_brute_force_replay(store: ObjectStore, seed: int) -> None:
    rng = random.Random(seed)
    ids = [f"id-{n:03d}" for n in range(60)]
    history: list[tuple[str, str, int]] = [("put", i, 0) for i in ids[:40]]
    parent = _snapshot(store, "c0-full", 0, [_batch(ids[:40], version=0)], total=40)
    for number in range(1, 4):
        live = sorted(_brute_force(history))
        changed = rng.sample(ids, 15)
        removed = [i for i in rng.sample(live, 6) if i not in changed]
        history += [("put", i, number) for i in changed] + [("delete", i, number) for i in removed]
        parent = _snapshot(
            store,
            f"c{number}-inc",
            number,
            [_batch(changed, version=number)],
            parent=parent,
            deletes=removed,
            part_rows=4,
            total=len(_brute_force(history)),
        )
    chain, problems = load_catalog(store).chain(parent.id)
    assert problems == [] and len(chain) == 4
    plan = RestorePlan(store, chain)
    tasks = plan.tasks("help_articles")
    for order in (tasks, list(reversed(tasks)), rng.sample(tasks, len(tasks))):
        written: list[tuple[str, Any]] = []
        for task in order:  # tasks are independent: any order gives the final state
            for batch in plan.task_batches(task):
                written += [
                    (record_id, meta["version"])
                    for record_id, meta in zip(batch.ids, batch.metadatas, strict=True)
                ]
        assert len(written) == len({record_id for record_id, _ in written}), (
            "a record was written twice"
        )
        assert dict(written) == _brute_force(history)
        assert len(written) == parent.collections[0].counts["total_after_apply"]
    newer = {i for _, i, version in history if version > 0}
    assert len(plan.shadow("help_articles").keys) == len(newer), (
        "only the incrementals' ids are in the shadow: the base's 40 are never indexed"
    )


def test_retention_keeps_what_kept_snapshots_depend_on(store: ObjectStore) -> None:
    full_a = _snapshot(store, "d1-full", 0, [_batch(["a"])], total=1)
    inc = _snapshot(store, "d1-inc", 1, [_batch(["b"])], parent=full_a, total=2)
    _snapshot(store, "d2-inc", 25, [_batch(["c"])], parent=inc, total=3)
    full_b = _snapshot(store, "d3-full", 49, [_batch(["a"])], total=1)
    _snapshot(store, "d3-inc", 50, [_batch(["d"])], parent=full_b, total=2)
    view = load_catalog(store)
    plan = plan_retention(view, KeepPolicy(last=1, daily=2))
    assert plan.keep["d3-inc"] == ["last 1", "daily #1"]
    assert plan.keep["d3-full"] == ["newest full", "base of kept d3-inc"]
    assert "daily #2" in plan.keep["d2-inc"]
    assert plan.keep["d1-inc"] == ["base of kept d2-inc"]
    assert plan.keep["d1-full"] == ["base of kept d2-inc"]
    assert plan.remove == []
    tight = plan_retention(view, KeepPolicy(last=1))
    assert tight.remove == ["d2-inc", "d1-inc", "d1-full"]
    apply_retention(store, tight)
    after = load_catalog(store)
    assert set(after.snapshots) == {"d3-full", "d3-inc"}
    assert after.unfinished == []
    assert verify(after, store, list(after.snapshots), Depth.parse("sizes")).intact


def test_retention_never_orphans_a_dependent(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "catalog")
    rng = random.Random(5)
    for trial in range(20):
        prefix = f"t{trial}-"
        parents: list[Manifest] = []
        for number in range(rng.randint(3, 9)):
            parent = rng.choice(parents) if parents and rng.random() < 0.7 else None
            parents.append(
                _snapshot(
                    store,
                    f"{prefix}{number:02d}",
                    trial * 100 + number * rng.uniform(1, 30),
                    [_batch(["x"])],
                    parent=parent,
                    total=1,
                )
            )
        view = load_catalog(store)
        ours = {sid: m for sid, m in view.snapshots.items() if sid.startswith(prefix)}
        view.snapshots = ours
        plan = plan_retention(
            view, KeepPolicy(rng.randint(0, 3), rng.randint(0, 3), rng.randint(0, 2))
        )
        for kept in plan.keep:
            assert all(m.id in plan.keep for m in view.chain(kept)[0]), (
                f"trial {trial}: orphaned {kept}"
            )
        newest_full = max(
            (m for m in ours.values() if m.kind == "full"), key=lambda m: m.recovery_point
        )
        assert "newest full" in plan.keep[newest_full.id]
        assert all(plan.keep[kept] for kept in plan.keep)
        assert set(plan.keep) | set(plan.remove) == set(ours)


def test_a_wrong_s3_secret_is_refused_by_the_server_and_reported_clearly(
    seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRCONSOLE_BAD_S3", f"{seaweed.access_key}:not-the-secret-0123")
    store = S3Store(
        "drconsole-tests", "kb-prod", endpoint=seaweed.endpoint, credentials="env:DRCONSOLE_BAD_S3"
    )
    with pytest.raises(StoreError) as caught:
        load_catalog(store)
    message = caught.value.message
    assert (
        "drconsole-tests" in message and "kb-prod" in message and "env:DRCONSOLE_BAD_S3" in message
    )
    assert "not-the-secret-0123" not in message + (caught.value.hint or "")


def test_manifest_json_is_the_contract(store: ObjectStore) -> None:
    manifest = _snapshot(store, "full-1", 0, [_batch(["a", "b"])], total=2)
    raw = json.loads(store.read("snapshots/full-1/manifest.json"))
    assert raw["format"] == "drconsole-snapshot/2"
    assert raw["parent"] is None and raw["kind"] == "full"
    entry = raw["collections"][0]
    assert entry["files"][0] == {
        "path": "help_articles/records-00000.parquet",
        "kind": "records",
        "rows": 2,
        "bytes": manifest.collections[0].files[0].bytes,
        "sha256": manifest.collections[0].files[0].sha256,
    }
    assert entry["counts"] == {"records": 2, "deletes": 0, "total_after_apply": 2}


def test_large_objects_use_multipart_upload_and_stream_back(
    seaweed: SeaweedS3, s3_credentials: str
) -> None:
    store = S3Store(
        "drconsole-tests",
        "multipart",
        endpoint=seaweed.endpoint,
        credentials=s3_credentials,
        multipart_threshold=5 * 1024 * 1024,
    )
    payload = np.random.default_rng(1).bytes(12 * 1024 * 1024 + 17)
    with store.writer("snapshots/big/blob.bin") as handle:
        handle.write(payload)
    head = seaweed.client().head_object(
        Bucket="drconsole-tests", Key="multipart/snapshots/big/blob.bin"
    )
    assert head["ETag"].strip('"').endswith("-3"), "expected a 3-part multipart upload"
    with store.open("snapshots/big/blob.bin") as stream:
        chunks = []
        while chunk := stream.read(1024 * 1024):
            chunks.append(chunk)
    assert len(chunks) > 1 and b"".join(chunks) == payload


def test_an_unreachable_endpoint_is_a_clear_error(s3_credentials: str) -> None:
    endpoint = f"http://127.0.0.1:{free_ports(1)[0]}"
    store = S3Store(
        "drconsole-tests",
        "kb",
        endpoint=endpoint,
        credentials=s3_credentials,
        retry=RetryPolicy(attempts=2, first_delay_s=0.01),
    )
    with pytest.raises(StoreError) as caught:
        load_catalog(store)
    assert f"cannot connect to {endpoint}" in caught.value.message
    assert "retried: 2 attempts" in caught.value.message


def test_a_create_only_write_never_overwrites(store: ObjectStore) -> None:
    store.create("snapshots/x/manifest.json", b"first")
    with pytest.raises(ObjectExists):
        store.create("snapshots/x/manifest.json", b"second")
    assert store.read("snapshots/x/manifest.json") == b"first"
    assert [info.key for info in store.list("snapshots/x/")] == ["snapshots/x/manifest.json"]


def test_a_snapshot_id_collision_is_an_error_never_an_overwrite(store: ObjectStore) -> None:
    first = _snapshot(store, "same-id", 1, [_batch(["a", "b"])], total=2)
    with pytest.raises(StoreError, match="is taken"):
        _snapshot(store, "same-id", 2, [_batch(["c"])], total=1)
    kept = load_catalog(store).snapshots["same-id"]
    assert kept.sha256 == first.sha256, "the first snapshot's manifest is untouched"
    assert verify(load_catalog(store), store, ["same-id"], Depth.parse("full")).intact


def test_the_catalog_lock_keeps_prune_and_create_apart(store: ObjectStore) -> None:
    first = lock_catalog(store, "snapshot create", exclusive=False)
    second = lock_catalog(store, "snapshot create", exclusive=False)
    with pytest.raises(StoreError, match=r"locked: snapshot create \(pid \d+ on .*\) holds it"):
        lock_catalog(store, "catalog prune", exclusive=True)
    first.release()
    second.release()
    prune = lock_catalog(store, "catalog prune", exclusive=True)
    with pytest.raises(StoreError, match=r"catalog prune .* holds it exclusively"):
        lock_catalog(store, "snapshot create", exclusive=False)
    prune.still_held()
    store.delete([prune.key])
    with pytest.raises(StoreError, match="was lost"):
        prune.still_held()
    prune.release()
    assert list(store.list("locks/")) == []


def test_a_lock_whose_lease_ran_out_is_ignored(store: ObjectStore) -> None:
    stale = lock_catalog(store, "snapshot create", exclusive=True, lease_s=0.05, renew_every_s=60)
    time.sleep(0.2)
    with (
        lock_catalog(store, "catalog prune", exclusive=True),
        pytest.raises(StoreError, match="was lost"),
    ):
        stale.still_held()
    stale.release()


def test_a_renewed_lock_outlives_its_lease(store: ObjectStore) -> None:
    held = lock_catalog(store, "snapshot create", exclusive=False, lease_s=0.5, renew_every_s=0.1)
    try:
        time.sleep(1.0)
        held.still_held()
        with pytest.raises(StoreError, match="locked"):
            lock_catalog(store, "catalog prune", exclusive=True)
    finally:
        held.release()
