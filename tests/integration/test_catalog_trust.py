"""Catalogs that cannot be forged or rolled back silently, on a local folder and on real
S3 (SeaweedFS): a consistently forged head, a planted snapshot dated 2099, an invalid
newest manifest, an unsigned legacy catalog, files the manifest does not list, counts that
lie, an oversized manifest."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drconsole.catalog import catalog as catalog_module
from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.catalog import (
    FUTURE,
    NOT_AUTHENTIC,
    UNLISTED_FILE,
    CatalogView,
    load_catalog,
)
from drconsole.catalog.layout import file_key, mac_key, manifest_key
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.plan import RestorePlan
from drconsole.catalog.select import select_recovery_point
from drconsole.catalog.store import ObjectStore
from drconsole.catalog.verify import Depth, verify
from drconsole.catalog.writer import SnapshotWriter
from drconsole.errors import IntegrityError
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch

pytestmark = pytest.mark.integration

KEY = CatalogKey(b"k" * 64)
OTHER_KEY = CatalogKey(b"o" * 64)
NOW = datetime.now(UTC)
SOURCE = {
    "engine": "chroma",
    "url": "http://chroma.test:8000",
    "namespace": {"tenant": "acme", "database": "kb_prod"},
}
DEPTHS = [Depth.parse(depth) for depth in ("manifest", "sizes", "full", "sample:50%")]


def _snapshot(
    store: ObjectStore,
    name: str,
    hours_ago: float,
    ids: list[str],
    *,
    parent: Manifest | None = None,
    key: CatalogKey | None = KEY,
) -> Manifest:
    writer = SnapshotWriter(store, name, part_rows=4, key=key)
    collection = writer.collection("help_articles", CollectionSchema.dense(4, "l2"))
    collection.add(
        RecordBatch(
            ids,
            np.arange(len(ids) * 4, dtype=np.float32).reshape(-1, 4),
            [f"{i} in {name}" for i in ids],
            [{"tenant_id": "acme"} for _ in ids],
            [None] * len(ids),
        )
    )
    collection.close(total_after_apply=len(ids) if parent is None else 10)
    moment = NOW - timedelta(hours=hours_ago)
    return writer.finish(
        kind="incremental" if parent else "full",
        parent=parent,
        created_at=moment,
        recovery_point=moment,
        source=SOURCE,
    )


def _forge(store: ObjectStore, manifest: Manifest) -> None:
    """What an attacker who can write the catalog but lacks the key does: change a
    record, then fix the file's size and sha256 in the manifest so every depth agrees."""
    entry = manifest.collections[0].files_of("records")[0]
    key = file_key(manifest.id, entry.path)
    table = pq.read_table(pa.BufferReader(store.read(key)))
    documents = table.column("document").to_pylist()
    documents[0] = "transfer the funds to account 666"
    table = table.set_column(2, "document", pa.array(documents, pa.string()))
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    forged = sink.getvalue()
    _put(store, key, forged)
    raw = json.loads(store.read(manifest_key(manifest.id)))
    for item in raw["collections"][0]["files"]:
        if item["path"] == entry.path:
            item.update(bytes=len(forged), sha256=hashlib.sha256(forged).hexdigest())
    _put(store, manifest_key(manifest.id), json.dumps(raw, indent=2).encode())


def _put(store: ObjectStore, key: str, data: bytes) -> None:
    with store.writer(key) as handle:
        handle.write(data)


def _kinds(result_findings: list) -> set[str]:
    return {finding.kind for finding in result_findings}


def _documents(store: ObjectStore, chain: list[Manifest]) -> set[str]:
    return {
        document
        for batch in RestorePlan(store, chain).batches("help_articles")
        for document in batch.documents
    }


def test_a_consistently_forged_head_fails_at_every_depth(store: ObjectStore) -> None:
    full = _snapshot(store, "s1-full", 3, [f"r{n}" for n in range(10)])
    head = _snapshot(store, "s2-inc", 1, ["r0", "r1"], parent=full)
    _forge(store, head)
    view = load_catalog(store, KEY)
    for depth in DEPTHS:
        result = verify(view, store, [head.id], depth)
        assert NOT_AUTHENTIC in _kinds(result.findings), f"missed at depth {depth}"
        assert "does not match the manifest" in result.findings[0].message
    selection = select_recovery_point(view, store, Depth.parse("full"))
    assert selection.manifest.id == full.id and selection.signed
    assert selection.skipped == [
        {
            "snapshot_id": head.id,
            "reason": "manifest.mac does not match the manifest: it was changed or forged",
        }
    ]
    assert "transfer the funds to account 666" not in _documents(store, selection.chain)
    wrong_key = load_catalog(store, OTHER_KEY)
    assert "made with another key" in wrong_key.rejection(full, NOW)
    unkeyed = load_catalog(store)
    assert verify(unkeyed, store, [head.id], Depth.parse("full")).intact, (
        "without the key the bytes agree with the manifest: that is all a keyless check "
        "can say, and the CLI says authenticity was not checked"
    )
    with pytest.raises(IntegrityError, match=r"no manifest\.mac|not checked|catalog key"):
        select_recovery_point(unkeyed, store, Depth.parse("full"))


def test_a_stripped_tag_is_refused_even_when_unsigned_snapshots_are_allowed(
    store: ObjectStore,
) -> None:
    legacy = _snapshot(store, "s0-legacy", 5, ["r0"], key=None)
    full = _snapshot(store, "s1-full", 3, [f"r{n}" for n in range(10)])
    head = _snapshot(store, "s2-inc", 1, ["r0"], parent=full)
    store.delete([mac_key(head.id)])
    view = load_catalog(store, KEY)
    selection = select_recovery_point(view, store, Depth.parse("sizes"), allow_unsigned=True)
    assert selection.manifest.id == full.id
    assert "yet newer than signed snapshots" in selection.skipped[0]["reason"]
    assert view.rejection(legacy, NOW, allow_unsigned=True) is None, "older than the key"
    assert "allow_unsigned" in view.rejection(legacy, NOW)


def test_a_planted_full_dated_2099_is_never_selected(store: ObjectStore) -> None:
    real = _snapshot(store, "s1-full", 2, ["r0", "r1"], key=None)
    planted = _snapshot(store, "z9-planted", -(24 * 365 * 73), ["evil"], key=None)
    raw = json.loads(store.read(manifest_key(planted.id)))
    raw["completed_at"] = raw["recovery_point"]  # a careful planter keeps it consistent
    _put(store, manifest_key(planted.id), json.dumps(raw).encode())
    assert planted.recovery_point.year == 2099
    view = load_catalog(store)
    selection = select_recovery_point(view, store, Depth.parse("full"), allow_unsigned=True)
    assert selection.manifest.id == real.id
    assert selection.skipped[0]["snapshot_id"] == planted.id
    assert "after this machine's clock" in selection.skipped[0]["reason"]
    assert FUTURE in _kinds(verify(view, store, [planted.id], Depth.parse("manifest")).findings)


def test_an_invalid_newest_manifest_is_passed_over_and_named(store: ObjectStore) -> None:
    good = _snapshot(store, "20261101T000000000Z-kb-F-aaaaaa", 2, ["r0"])
    broken = (NOW - timedelta(minutes=5)).strftime("%Y%m%dT%H%M%S000Z") + "-kb-F-bbbbbb"
    _put(store, manifest_key(broken), b"{not json")
    view = load_catalog(store, KEY)
    assert broken in view.invalid
    selection = select_recovery_point(view, store, Depth.parse("sizes"))
    assert selection.manifest.id == good.id
    assert selection.skipped[0]["snapshot_id"] == broken
    assert selection.skipped[0]["reason"].startswith("invalid manifest: manifest.json is not")


def test_files_the_manifest_does_not_list_are_found_at_depth_manifest(store: ObjectStore) -> None:
    manifest = _snapshot(store, "s1-full", 1, ["r0", "r1"])
    _put(store, file_key(manifest.id, "help_articles/records-00099.jsonl.gz"), b"planted")
    view = load_catalog(store, KEY)
    result = verify(view, store, [manifest.id], Depth.parse("manifest"))
    assert _kinds(result.findings) == {UNLISTED_FILE}
    assert result.findings[0].file == "help_articles/records-00099.jsonl.gz"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("records", 999, "counts.records is 999, but its records files hold 2 rows"),
        ("deletes", -1, "counts must not be negative"),
        ("total_after_apply", 7, "total_after_apply must equal its records"),
    ],
)
def test_counts_that_cannot_be_true_make_the_manifest_invalid(
    store: ObjectStore, field: str, value: int, problem: str
) -> None:
    manifest = _snapshot(store, "s1-full", 1, ["r0", "r1"])
    raw = json.loads(store.read(manifest_key(manifest.id)))
    raw["collections"][0]["counts"][field] = value
    _put(store, manifest_key(manifest.id), json.dumps(raw).encode())
    assert problem in load_catalog(store, KEY).invalid[manifest.id]


def test_an_oversized_manifest_is_refused_unread(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _snapshot(store, "s1-full", 1, ["r0", "r1"])
    monkeypatch.setattr(catalog_module, "MAX_MANIFEST_BYTES", 1024)
    view: CatalogView = load_catalog(store, KEY)
    assert "larger than" in view.invalid[manifest.id]
