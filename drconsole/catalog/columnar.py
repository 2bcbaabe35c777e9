"""Parts of ``drconsole-snapshot/2``: Apache Parquet files compressed with zstd, one row per
record, readable as they are by pyarrow, DuckDB or Polars.

- ``records-N.parquet``: ``id`` (string), ``tenant``, ``document``, ``uri`` (strings, null
  when absent), ``metadata`` (the record's metadata as JSON text, an object or null;
  a reader parses and checks each one), ``vector`` (fixed-size list of float32, the
  collection's dimension);
- ``deletes-N.parquet``: ``id``, ``tenant``;
- ``state-N.parquet``: ``id``, ``tenant``, ``h`` (uint64 content hash).

Decoders treat the bytes as untrusted: the schema, the row count and the declared sizes
are checked from the footer before any row group is read, every value's type before a
row group becomes a batch, and any problem is a ValueError with a reason (the reader
names the file and the snapshot).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from drconsole.catalog.parts import no_collection_pauses
from drconsole.records import RecordBatch

ZSTD_LEVEL = 3
pa.set_memory_pool(pa.system_memory_pool())
"""Parts are decoded with the C allocator: pyarrow's default pool (mimalloc) keeps what a
decoded row group freed, and a restore's peak memory grew by tens of MB with it."""
ROW_GROUP = 2048
"""Rows per Parquet row group: the unit a restore decodes at a time, so its memory is
bounded by a few MB whatever the part size."""
MAX_UNCOMPRESSED = 4 * 1024**3
_TEXT = pa.string()
RECORD_COLUMNS = ("id", "tenant", "document", "uri", "metadata", "vector")
DELETE_COLUMNS = ("id", "tenant")
STATE_COLUMNS = ("id", "tenant", "h")


def _write(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        use_dictionary=["tenant"],
        write_statistics=False,
        row_group_size=ROW_GROUP,
    )
    return sink.getvalue()


def encode_records(batch: RecordBatch) -> bytes:
    rows, dimension = len(batch), batch.dimension
    vectors = np.ascontiguousarray(batch.vectors, dtype="<f4").reshape(rows * dimension)
    metadata = [None if meta is None else orjson.dumps(meta) for meta in batch.metadatas]
    return _write(
        pa.table(
            {
                "id": pa.array(batch.ids, _TEXT),
                "tenant": pa.array(batch.tenants, _TEXT),
                "document": pa.array(batch.documents, _TEXT),
                "uri": pa.array(batch.uris, _TEXT),
                "metadata": pa.array(metadata, _TEXT),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors), dimension),
            }
        )
    )


def encode_deletes(ids: list[str], tenants: list[str | None]) -> bytes:
    return _write(pa.table({"id": pa.array(ids, _TEXT), "tenant": pa.array(tenants, _TEXT)}))


def encode_state(ids: list[str], tenants: list[str | None], hashes: np.ndarray) -> bytes:
    return _write(
        pa.table(
            {
                "id": pa.array(ids, _TEXT),
                "tenant": pa.array(tenants, _TEXT),
                "h": pa.array(np.asarray(hashes, dtype=np.uint64)),
            }
        )
    )


def _row_groups(
    data: bytes | bytearray, columns: tuple[str, ...], rows: int | None
) -> Iterator[pa.Table]:
    """A part's row groups as tables, after checking what its footer declares: the
    columns, the row count the manifest lists, and a bounded uncompressed size."""
    try:
        part = pq.ParquetFile(pa.BufferReader(pa.py_buffer(data)))
        footer = part.metadata
        names = tuple(part.schema_arrow.names)
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"not a readable Parquet part ({error})") from None
    if rows is not None and footer.num_rows != rows:
        raise ValueError(f"{footer.num_rows} rows, the manifest says {rows}")
    groups = [footer.row_group(n) for n in range(footer.num_row_groups)]
    declared = sum(group.total_byte_size for group in groups)
    if declared > MAX_UNCOMPRESSED:
        raise ValueError(f"declares {declared} bytes uncompressed, more than a part may hold")
    if names != columns:
        raise ValueError(f"columns are {list(names)}, expected {list(columns)}")
    for number, group in enumerate(groups):
        try:
            table = part.read_row_group(number, use_threads=False)
        except (pa.ArrowException, OSError) as error:
            raise ValueError(f"row group {number} is not readable ({error})") from None
        if table.num_rows != group.num_rows:
            raise ValueError(f"row group {number} has {table.num_rows} rows, not {group.num_rows}")
        yield table


def _read(data: bytes | bytearray, columns: tuple[str, ...], rows: int | None) -> pa.Table:
    """The whole table of a (small) part: deletes and state."""
    tables = list(_row_groups(data, columns, rows))
    if not tables:
        return pa.table({name: pa.array([], _TEXT) for name in columns})
    return pa.concat_tables(tables)


def _strings(table: pa.Table, name: str, nullable: bool) -> list[Any]:
    column = table.column(name)
    if column.type == pa.null() and nullable:  # all null, as some writers type it
        return [None] * table.num_rows
    if column.type not in (pa.string(), pa.large_string()):
        raise ValueError(f"column {name} is {column.type}, expected a string")
    values = column.to_pylist()
    if not nullable and (column.null_count or "" in values):
        raise ValueError(f"column {name} holds an empty value or a null")
    return values


def records_of(
    data: bytes | bytearray, dimension: int, rows: int | None = None
) -> Iterator[RecordBatch]:
    """The records of a part, one batch per row group."""
    for table in _row_groups(data, RECORD_COLUMNS, rows):
        yield _records(table, dimension)


def _records(table: pa.Table, dimension: int) -> RecordBatch:
    ids = _strings(table, "id", nullable=False)
    vector = table.column("vector")
    if not pa.types.is_fixed_size_list(vector.type) or vector.type.value_type != pa.float32():
        raise ValueError(f"column vector is {vector.type}, expected a fixed-size list of float")
    if vector.type.list_size != dimension and table.num_rows:
        raise ValueError(f"vectors have dimension {vector.type.list_size}, expected {dimension}")
    if vector.null_count:
        raise ValueError("column vector holds a null")
    if not table.num_rows:
        vectors = np.zeros((0, dimension), dtype=np.float32)
    else:
        flat = pa.concat_arrays([chunk.flatten() for chunk in vector.chunks])
        if flat.null_count:
            raise ValueError("column vector holds a null element")
        vectors = flat.to_numpy(zero_copy_only=False).reshape(table.num_rows, dimension)
    return RecordBatch(
        ids,
        vectors,
        _strings(table, "document", nullable=True),
        _metadatas(_strings(table, "metadata", nullable=True)),
        _strings(table, "tenant", nullable=True),
        _strings(table, "uri", nullable=True),
    )


def _metadatas(texts: list[str | None]) -> list[dict[str, Any] | None]:
    """Each row's metadata parsed on its own (a text that is not exactly one JSON object
    cannot shift its neighbours' values), the collector paused meanwhile."""
    values: list[dict[str, Any] | None] = []
    with no_collection_pauses():
        for number, text in enumerate(texts, start=1):
            if text is None:
                values.append(None)
                continue
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as error:
                raise ValueError(f"row {number}: metadata is not JSON ({error})") from None
            if not isinstance(value, dict):
                raise ValueError(f"row {number}: metadata must be a JSON object or null")
            values.append(value)
    return values


def decode_deletes(
    data: bytes | bytearray, rows: int | None = None
) -> tuple[list[str], list[str | None]]:
    table = _read(data, DELETE_COLUMNS, rows)
    return _strings(table, "id", nullable=False), _strings(table, "tenant", nullable=True)


def decode_state(
    data: bytes | bytearray, rows: int | None = None
) -> tuple[list[str], list[str | None], np.ndarray]:
    table = _read(data, STATE_COLUMNS, rows)
    hashes = table.column("h")
    if hashes.type != pa.uint64() or hashes.null_count:
        raise ValueError(
            f"column h is {hashes.type} with {hashes.null_count} nulls, expected uint64"
        )
    values = hashes.to_numpy() if table.num_rows else np.zeros(0, dtype=np.uint64)
    return (
        _strings(table, "id", nullable=False),
        _strings(table, "tenant", nullable=True),
        np.asarray(values, dtype=np.uint64),
    )
