"""Records parts: uris kept, content hashes that see them, the garbage collector paused
while decoding; snapshot ids."""

from __future__ import annotations

import gc
import gzip
import re
from datetime import UTC, datetime

import numpy as np
import pytest

from drconsole.actions.snapshot import new_snapshot_id
from drconsole.catalog.parts import decode_records, encode_records
from drconsole.catalog.state import content_hashes
from drconsole.records import RecordBatch
from drconsole.timefmt import parse_compact_utc

GOOD = gzip.compress(b'{"id": "a", "document": "x", "metadata": {"acl": ["g"]}, "tenant": null}\n')
BAD = gzip.compress(b'{"id": "a"}\n{not json\n')


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_state_is_restored_after_decoding(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        ids, documents, metadatas, tenants, _ = decode_records(GOOD)
        assert (ids, documents, metadatas, tenants) == (["a"], ["x"], [{"acl": ["g"]}], [None])
        assert gc.isenabled() is enabled
        with pytest.raises(ValueError, match="not JSON"):
            decode_records(BAD)
        assert gc.isenabled() is enabled, "a part that fails to decode restores it too"
    finally:
        (gc.enable if was else gc.disable)()


def test_uris_round_trip_and_only_records_with_one_carry_the_key() -> None:
    batch = RecordBatch(
        ["a", "b"], np.zeros((2, 2), np.float32), [None, "d"], [None, {"k": 1}], [None, None]
    )
    batch.uris = ["s3://x/a.pdf", None]
    data = encode_records(batch)
    assert gzip.decompress(data).count(b'"uri"') == 1
    assert decode_records(data)[4] == ["s3://x/a.pdf", None]
    assert content_hashes(batch)[1] == content_hashes(batch.take([1]))[0]
    moved = batch.take([0, 1])
    moved.uris = ["s3://x/moved.pdf", None]
    assert content_hashes(moved)[0] != content_hashes(batch)[0], "a uri change is a change"
    no_uri = batch.take([0])
    no_uri.uris = [None]
    assert content_hashes(no_uri)[0] != content_hashes(batch)[0]


def test_snapshot_ids_carry_milliseconds_and_parse_back() -> None:
    assert parse_compact_utc("20261122T101500123Z-kb-F-3f9a1c") == datetime(
        2026, 11, 22, 10, 15, 0, 123000, tzinfo=UTC
    )
    assert parse_compact_utc("20261122T101500Z-kb-F") == datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    assert parse_compact_utc("kb-F") is None
    first, second = new_snapshot_id("kb", "F"), new_snapshot_id("kb", "F")
    assert first != second and re.match(r"^\d{8}T\d{9}Z-kb-F-[0-9a-f]{6}$", first)
