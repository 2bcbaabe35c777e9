"""The catalog index: a listing from it equals a listing from the folders, writers keep
it whole and folded, and a stale, tampered or hostile index changes at most what a
listing shows, never what is selected, verified or shown as a snapshot's chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drconsole.catalog import index as catalog_index
from drconsole.catalog.auth import FORGED, SIGNED
from drconsole.catalog.catalog import CatalogView, load_catalog, rebuild_index
from drconsole.catalog.index import INDEX, SEGMENT_FORMAT, parse_segment
from drconsole.catalog.layout import manifest_key
from drconsole.catalog.local import LocalStore
from drconsole.catalog.select import select_recovery_point
from drconsole.catalog.verifications import keep_verification, last_verifications
from drconsole.catalog.verify import Depth, verify
from drconsole.corpus import CorpusSpec
from drconsole.engines import open_engine
from drconsole.engines.memory.engine import forget
from drconsole.timefmt import utc_now

from chroma_restore import seed, snapshot
from helpers import catalog_key

SOURCE = {"engine": "memory", "url": "memory://index-source", "database": "prod"}


def _chain(catalog: Path, incrementals: int = 2, *, signed: bool = False) -> list[str]:
    forget(SOURCE["url"])
    engine = open_engine(SOURCE)
    engine.ensure_namespace()
    seed(engine, "docs", CorpusSpec("doc", 40, dimension=8, seed=3))
    ids = [snapshot(engine, catalog, ["docs"], part_rows=20, signed=signed).id]
    for number in range(incrementals):
        engine.delete("docs", [f"doc-{number:06d}"])
        ids.append(snapshot(engine, catalog, ["docs"], incremental=True, signed=signed).id)
    return ids


def _segments(catalog: Path) -> list[Path]:
    return sorted((catalog / INDEX).glob("*.json"))


def _same(left: CatalogView, right: CatalogView) -> None:
    assert {i: m.sha256 for i, m in left.snapshots.items()} == {
        i: m.sha256 for i, m in right.snapshots.items()
    }
    assert left.authenticity == right.authenticity
    assert left.invalid == right.invalid


def _rewrite_entry(catalog: Path, snapshot_id: str, old: str, new: str) -> None:
    """Change the index's copy of one manifest (as someone with write access could)."""
    for path in _segments(catalog):
        raw = json.loads(path.read_bytes())
        for item in raw["snapshots"]:
            if item["id"] == snapshot_id:
                assert old in item["manifest"]
                item["manifest"] = item["manifest"].replace(old, new)
        path.write_text(json.dumps(raw))


def test_a_listing_from_the_index_equals_one_from_the_folders(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ids = _chain(catalog, signed=True)
    store, key = LocalStore(catalog), catalog_key(tmp_path)
    indexed = load_catalog(store, key, use_index=True)
    direct = load_catalog(store, key, use_index=False)
    _same(indexed, direct)
    assert set(indexed.authenticity.values()) == {(SIGNED, "signed with the catalog key")}
    assert indexed.unconfirmed == set(ids), "every manifest came from the index"
    assert indexed.index_complete and len(_segments(catalog)) == len(ids)
    assert not direct.unconfirmed


def test_writers_fold_a_fragmented_index_into_one_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_index, "COMPACT_AT", 3)
    catalog = tmp_path / "catalog"
    ids = _chain(catalog, incrementals=4)
    # segments: 1, 2, 3, then the 4th snapshot folds the three read into one, the 5th adds
    assert len(_segments(catalog)) == 2
    entries = [
        entry.id for path in _segments(catalog) for entry in parse_segment(path.read_bytes())
    ]
    assert sorted(entries) == sorted(ids)
    view = load_catalog(LocalStore(catalog), use_index=True)
    assert view.unconfirmed == set(ids)


def test_a_snapshot_the_index_lacks_is_read_from_its_folder_and_then_folded_in(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog"
    ids = _chain(catalog, incrementals=1)
    newest = _segments(catalog)[-1]
    newest.unlink()  # as if the writer died between its manifest and its index segment
    store = LocalStore(catalog)
    view = load_catalog(store, use_index=True)
    _same(view, load_catalog(store, use_index=False))
    assert view.unconfirmed == {ids[0]} and not view.index_complete
    engine = open_engine(SOURCE)
    ids.append(snapshot(engine, catalog, ["docs"], incremental=True, signed=False).id)
    assert len(_segments(catalog)) == 1, "the next writer rewrote the index whole"
    assert load_catalog(store, use_index=True).unconfirmed == set(ids)


def test_hostile_segments_are_ignored_with_a_reason_and_the_folders_listed(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog"
    _chain(catalog, incrementals=1)
    store = LocalStore(catalog)
    first, second = _segments(catalog)
    first.write_bytes(b"\x00not json")
    second.write_text(json.dumps({"format": SEGMENT_FORMAT, "snapshots": [{"id": 7}]}))
    (catalog / INDEX / "other.json").write_text(json.dumps({"format": "restic", "snapshots": []}))
    view = load_catalog(store, use_index=True)
    _same(view, load_catalog(store, use_index=False))
    assert not view.unconfirmed
    assert [note.split(": ", 1)[1] for note in view.index.ignored] == [
        "not valid JSON",
        "snapshots[0] must have id, manifest and mac (text or null)",
        "not a drconsole-index/1 segment",
    ]


def test_two_segments_disagreeing_on_a_snapshot_leave_it_to_its_folder(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ids = _chain(catalog, incrementals=1)
    copy = catalog / INDEX / "zz-copy.json"
    copy.write_bytes(_segments(catalog)[0].read_bytes())
    _rewrite_entry(catalog, ids[0], '"kind": "full"', '"kind":  "full"')  # both copies
    copy.write_bytes(copy.read_bytes().replace(b'\\"kind\\":  ', b'\\"kind\\": '))
    view = load_catalog(LocalStore(catalog), use_index=True)
    assert ids[0] not in view.index.entries and ids[0] not in view.unconfirmed
    _same(view, load_catalog(LocalStore(catalog), use_index=False))


def test_a_tampered_index_never_changes_what_is_selected_verified_or_chained(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog"
    ids = _chain(catalog, incrementals=2)
    store = LocalStore(catalog)
    truth = load_catalog(store, use_index=False)
    newest = truth.snapshots[ids[-1]]
    stamp = newest.to_json()["recovery_point"]
    _rewrite_entry(
        catalog, ids[-1], f'"recovery_point": "{stamp}"', '"recovery_point": "2001-01-01T00:00:00Z"'
    )
    listed = load_catalog(store, use_index=True)
    assert listed.snapshots[ids[-1]].recovery_point.year == 2001, "a listing trusts the index"
    selection = select_recovery_point(listed, store, Depth.parse("sizes"), allow_unsigned=True)
    assert selection.manifest.id == ids[-1]
    assert selection.manifest.sha256 == newest.sha256, "selection re-read the folder"
    assert [m.sha256 for m in selection.chain] == [truth.snapshots[i].sha256 for i in ids]
    assert "stale or tampered index" in listed.index_disagreed[ids[-1]]
    again = load_catalog(store, use_index=True)
    shown = again.snapshots  # what the console's thread may be iterating meanwhile
    chain, findings = again.confirmed_chain(store, ids[-1])
    assert not findings and chain[-1].sha256 == newest.sha256
    assert shown[ids[-1]].recovery_point.year == 2001 and shown is not again.snapshots, (
        "a confirm swaps in new mappings instead of changing the ones a reader holds"
    )


def test_a_signed_catalog_shows_a_tampered_index_entry_as_forged(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ids = _chain(catalog, incrementals=1, signed=True)
    _rewrite_entry(catalog, ids[0], '"kind": "full"', '"kind":  "full"')
    _rewrite_entry(catalog, ids[1], '"kind": "incremental"', '"kind":  "incremental"')
    store = LocalStore(catalog)
    view = load_catalog(store, catalog_key(tmp_path), use_index=True)
    assert view.authenticity[ids[0]][0] == FORGED, "the tag does not cover the index's copy"
    selection = select_recovery_point(view, store, Depth.parse("sizes"))
    assert selection.manifest.id == ids[1] and selection.signed, "the folders' are authentic"
    assert view.authenticity[ids[0]][0] == SIGNED and not selection.skipped


def test_a_manifest_gone_from_its_folder_is_not_selected_on_the_index_word(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog"
    ids = _chain(catalog, incrementals=2)
    store = LocalStore(catalog)
    (catalog / manifest_key(ids[-1])).unlink()  # a half-pruned snapshot: parts remain
    view = load_catalog(store, use_index=True)
    assert ids[-1] in view.snapshots, "the index still lists it"
    result = verify(view, store, [ids[-1]], Depth.parse("manifest"))
    assert not result.intact
    assert "folder has no manifest.json" in result.findings[0].message
    view = load_catalog(store, use_index=True)
    selection = select_recovery_point(view, store, Depth.parse("sizes"), allow_unsigned=True)
    assert selection.manifest.id == ids[-2]
    assert [item.id for item in view.unfinished] == [ids[-1]]


def test_an_index_entry_without_its_folder_is_not_listed(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ids = _chain(catalog, incrementals=1)
    for path in (catalog / "snapshots" / ids[-1]).rglob("*"):
        if path.is_file():
            path.unlink()
    for path in sorted((catalog / "snapshots" / ids[-1]).rglob("*"), reverse=True):
        path.rmdir()
    (catalog / "snapshots" / ids[-1]).rmdir()
    view = load_catalog(LocalStore(catalog), use_index=True)
    assert set(view.snapshots) == {ids[0]}


def test_rebuilding_replaces_the_index_with_the_folders_truth(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ids = _chain(catalog, incrementals=2)
    _rewrite_entry(catalog, ids[0], '"kind": "full"', '"kind":  "full"')
    store = LocalStore(catalog)
    rebuilt = rebuild_index(store)
    assert len(_segments(catalog)) == 1
    view = load_catalog(store, use_index=True)
    _same(view, rebuilt)
    assert view.unconfirmed == set(ids)
    assert not view.confirm(store, ids), "every entry now equals its folder"


def test_a_verification_is_never_shown_for_an_index_copy_the_folder_no_longer_holds(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog"
    ids = _chain(catalog, incrementals=1)
    store = LocalStore(catalog)
    view = load_catalog(store, use_index=True)
    result = verify(view, store, ids, Depth.parse("full"))
    assert result.intact and keep_verification(store, view, result, None, utc_now()) is None
    assert set(last_verifications(store, load_catalog(store, use_index=True), None)) == set(ids)
    folder_manifest = catalog / manifest_key(ids[-1])
    original = folder_manifest.read_bytes()
    folder_manifest.write_bytes(
        original.replace(b'"kind": "incremental"', b'"kind":  "incremental"')
    )
    assert folder_manifest.read_bytes() != original
    listed = load_catalog(store, use_index=True)
    shown = last_verifications(store, listed, None)
    assert ids[-1] not in shown, "the verified manifest is no longer the folder's"
    assert ids[0] in shown and ids[-1] in listed.index_disagreed
