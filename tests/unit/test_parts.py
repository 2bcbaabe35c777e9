"""Records parts: format 2 is plain Parquet with the documented columns and refuses
hostile parts with a reason; uris kept, content hashes that see them, the garbage
collector paused while decoding format 1; snapshot ids."""

from __future__ import annotations

import gc
import gzip
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drconsole.actions.snapshot import new_snapshot_id
from drconsole.catalog import columnar
from drconsole.catalog.parts import decode_records
from drconsole.catalog.plan import id_hashes
from drconsole.catalog.state import content_hashes
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch
from drconsole.timefmt import parse_compact_utc


def decode_v2(data: bytes, dimension: int, rows: int | None = None) -> RecordBatch:
    """A format 2 records part decoded whole (the reader takes it row group by row group)."""
    schema = CollectionSchema.dense(dimension, "l2")
    return RecordBatch.join(list(columnar.records_of(data, schema, rows)), dimension)


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


def test_uris_round_trip_and_change_the_content_hash() -> None:
    batch = RecordBatch(
        ["a", "b"], np.zeros((2, 2), np.float32), [None, "d"], [None, {"k": 1}], [None, None]
    )
    batch.uris = ["s3://x/a.pdf", None]
    assert decode_v2(columnar.encode_records(batch), 2).uris == ["s3://x/a.pdf", None]
    assert content_hashes(batch)[1] == content_hashes(batch.take([1]))[0]
    moved = batch.take([0, 1])
    moved.uris = ["s3://x/moved.pdf", None]
    assert content_hashes(moved)[0] != content_hashes(batch)[0], "a uri change is a change"
    no_uri = batch.take([0])
    no_uri.uris = [None]
    assert content_hashes(no_uri)[0] != content_hashes(batch)[0]


def test_a_format_2_part_is_a_plain_parquet_table_with_the_documented_columns() -> None:
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2) / 7
    metadatas = [{"lang": "en", "n": 2**53 + 1, "tags": ["a"]}, None, {"f": 0.1}]
    batch = RecordBatch(["a", "b", "c"], vectors, ["doc", None, ""], metadatas, ["t1", None, "t1"])
    data = columnar.encode_records(batch)
    assert data[:4] == b"PAR1" and data[-4:] == b"PAR1"
    table = pq.read_table(pa.BufferReader(data))
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("id", "string"),
        ("tenant", "string"),
        ("document", "string"),
        ("uri", "string"),
        ("metadata", "string"),
        ("vector", "fixed_size_list<element: float>[2]"),
    ]
    assert pq.ParquetFile(pa.BufferReader(data)).metadata.row_group(0).column(0).compression == (
        "ZSTD"
    )
    assert table.column("id").to_pylist() == ["a", "b", "c"]
    assert json.loads(table.column("metadata")[0].as_py()) == metadatas[0]
    assert np.array_equal(np.stack(table.column("vector").to_numpy(zero_copy_only=False)), vectors)
    back = decode_v2(data, 2, rows=3)
    assert back.ids == batch.ids and back.metadatas == metadatas and back.tenants == batch.tenants
    assert back.vectors.tobytes() == vectors.tobytes()
    hashes = np.array([1, 2**64 - 1], dtype=np.uint64)
    ids, tenants, got = columnar.decode_state(
        columnar.encode_state(["a", "b"], [None, "t"], hashes)
    )
    assert (ids, tenants, got.tolist()) == (["a", "b"], [None, "t"], hashes.tolist())
    assert columnar.decode_deletes(columnar.encode_deletes(["x"], ["t"])) == (["x"], ["t"])


def _part(**columns):
    """A one-row records part as another tool might write it, ``columns`` changed."""
    good = {
        "id": ["a"],
        "tenant": [None],
        "document": [None],
        "uri": [None],
        "metadata": [None],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0], pa.float32()), 2),
    }
    return pa.table({**good, **columns})


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        (pa.table({"id": ["a"]}), "columns are"),
        (_part(metadata=["[1]"]), "metadata must be a JSON object"),
        (_part(metadata=['{"a": 1} {"b": 2}']), "metadata is not JSON"),
        (_part(id=[""]), "empty value"),
        (_part(id=pa.array([None], pa.string())), "empty value or a null"),
        (_part(vector=pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0, 3.0]), 3)), "float"),
        (
            _part(vector=pa.FixedSizeListArray.from_arrays(pa.array([1, 2, 3], pa.float32()), 3)),
            "dimension 3",
        ),
        (_part(document=pa.array([7])), "column document is int64"),
    ],
)
def test_a_hostile_format_2_part_is_refused_with_a_reason(table: pa.Table, reason: str) -> None:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    with pytest.raises(ValueError, match=reason):
        decode_v2(sink.getvalue(), 2)
    with pytest.raises(ValueError, match="rows, the manifest says 5"):
        decode_v2(columnar.encode_deletes(["a"], [None]), 2, rows=5)


def test_snapshot_ids_carry_milliseconds_and_parse_back() -> None:
    assert parse_compact_utc("20261122T101500123Z-kb-F-3f9a1c") == datetime(
        2026, 11, 22, 10, 15, 0, 123000, tzinfo=UTC
    )
    assert parse_compact_utc("20261122T101500Z-kb-F") == datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    assert parse_compact_utc("kb-F") is None
    first, second = new_snapshot_id("kb", "F"), new_snapshot_id("kb", "F")
    assert first != second and re.match(r"^\d{8}T\d{9}Z-kb-F-[0-9a-f]{6}$", first)


def test_a_format_2_part_opens_as_it_is_in_duckdb_and_polars(tmp_path: Path) -> None:
    """The README's promise: parts are plain Parquet other tools read without drconsole."""
    import duckdb
    import polars

    batch = RecordBatch(
        ["a", "b"],
        np.array([[1, 2], [3, 4]], np.float32),
        ["doc", None],
        [{"lang": "en"}, None],
        ["acme", None],
    )
    part = tmp_path / "records-00000.parquet"
    part.write_bytes(columnar.encode_records(batch))
    rows = duckdb.sql(
        f"select id, tenant, metadata->>'lang', vector from '{part}' order by id"
    ).fetchall()
    assert rows == [("a", "acme", "en", [1.0, 2.0]), ("b", None, None, [3.0, 4.0])]
    frame = polars.read_parquet(part)
    assert frame["id"].to_list() == ["a", "b"]
    assert frame["vector"].to_list() == [[1.0, 2.0], [3.0, 4.0]]


def test_a_part_is_decoded_a_row_group_at_a_time() -> None:
    rows = 2 * columnar.ROW_GROUP + 5
    batch = RecordBatch(
        [f"r{n}" for n in range(rows)],
        np.arange(rows * 3, dtype=np.float32).reshape(rows, 3),
        [None] * rows,
        [{"n": n} for n in range(rows)],
        [None] * rows,
    )
    schema = CollectionSchema.dense(3, "l2")
    groups = list(columnar.records_of(columnar.encode_records(batch), schema, rows))
    assert [len(group) for group in groups] == [columnar.ROW_GROUP, columnar.ROW_GROUP, 5]
    whole = RecordBatch.join(groups, 3)
    assert whole.ids == batch.ids and whole.vectors.tobytes() == batch.vectors.tobytes()


def test_a_records_key_does_not_depend_on_the_batch_it_comes_in() -> None:
    """The shadow keys the incrementals' ids and the tasks key every part's rows: a
    record without a tenant must key the same beside records with one."""
    alone = id_hashes(["a"], [None])
    mixed = id_hashes(["a", "a", "a"], [None, "t1", ""])
    assert mixed[0] == alone[0]
    assert len(set(mixed.tolist())) == 3, "a tenant, even an empty one, is part of the key"
