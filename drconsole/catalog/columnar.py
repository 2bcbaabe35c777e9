"""Parts of ``drconsole-snapshot/2``: Apache Parquet files compressed with zstd, one row per
record, readable as they are by pyarrow, DuckDB or Polars.

- ``records-N.parquet``: ``id`` (string), ``tenant``, ``document``, ``uri`` (strings, null
  when absent), ``metadata`` (the record's metadata as JSON text, an object or null;
  a reader parses and checks each one), ``vector`` (fixed-size list of float32, the
  collection's dimension); then, for each further dense vector of the collection,
  ``vector.NAME`` (the same, of its dimension), and for each sparse vector
  ``sparse.NAME`` (a struct of ``indices`` list of uint32, strictly increasing, and
  ``values`` list of float32; null when the record has none);
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
from drconsole.model.schema import CollectionSchema, KeyType
from drconsole.records import RecordBatch, SparseVector

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
    """Text columns compressed with zstd; dense vectors stored as they are: embeddings
    shrink by about 8% under zstd, and reading them compressed took twice as long (a
    20,000-row part of 384-d vectors: 36 ms compressed, 17 ms not)."""
    compressed = [name for name in table.column_names if not name.startswith("vector")]
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression={name: "zstd" if name in compressed else "none" for name in table.column_names},
        compression_level=dict.fromkeys(compressed, ZSTD_LEVEL),
        use_dictionary=["tenant"],
        write_statistics=False,
        row_group_size=ROW_GROUP,
    )
    return sink.getvalue()


_SPARSE = pa.struct([("indices", pa.list_(pa.uint32())), ("values", pa.list_(pa.float32()))])


def encode_records(batch: RecordBatch) -> bytes:
    metadata = [None if meta is None else orjson.dumps(meta) for meta in batch.metadatas]
    columns = {
        "id": pa.array(batch.ids, _TEXT),
        "tenant": pa.array(batch.tenants, _TEXT),
        "document": pa.array(batch.documents, _TEXT),
        "uri": pa.array(batch.uris, _TEXT),
        "metadata": pa.array(metadata, _TEXT),
        "vector": _dense(batch.vectors),
    }
    for name, vectors in batch.named_vectors.items():
        columns[f"vector.{name}"] = _dense(vectors)
    for name, column in batch.sparse_vectors.items():
        columns[f"sparse.{name}"] = pa.array(
            [None if v is None else {"indices": v.indices, "values": v.values} for v in column],
            _SPARSE,
        )
    return _write(pa.table(columns))


def _dense(vectors: np.ndarray) -> pa.FixedSizeListArray:
    rows, dimension = vectors.shape
    flat = np.ascontiguousarray(vectors, dtype="<f4").reshape(rows * dimension)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), dimension)


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
    data: bytes | bytearray,
    columns: tuple[str, ...] | set[str],
    rows: int | None,
    read: list[str] | None = None,
) -> Iterator[pa.Table]:
    """A part's row groups as tables (of the ``read`` columns only, when given), after
    checking what its footer declares: the columns, the row count the manifest lists,
    and a bounded uncompressed size."""
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
    if (set(names) if isinstance(columns, set) else names) != columns or len(set(names)) != len(
        names
    ):
        raise ValueError(f"columns are {list(names)}, expected {sorted(columns)}")
    for number, group in enumerate(groups):
        try:
            table = part.read_row_group(number, columns=read, use_threads=False)
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


def record_keys(
    data: bytes | bytearray, schema: CollectionSchema, rows: int | None = None
) -> tuple[list[str], list[str | None]]:
    """(ids, tenants) of a records part, its other columns left undecoded."""
    ids: list[str] = []
    tenants: list[str | None] = []
    for table in _row_groups(data, _record_columns(schema), rows, ["id", "tenant"]):
        ids += _checked_ids(table, schema)
        tenants += _strings(table, "tenant", nullable=True)
    return ids, tenants


def _record_columns(schema: CollectionSchema) -> set[str]:
    return {
        *RECORD_COLUMNS,
        *(f"vector.{vector.name}" for vector in schema.vectors[1:]),
        *(f"sparse.{vector.name}" for vector in schema.sparse_vectors),
    }


def _checked_ids(table: pa.Table, schema: CollectionSchema) -> list[str]:
    ids = _strings(table, "id", nullable=False)
    if schema.key != KeyType.STRING:
        for record_id in ids:
            if (problem := schema.key.problem(record_id)) is not None:
                raise ValueError(problem)
    return ids


def records_of(
    data: bytes | bytearray, schema: CollectionSchema, rows: int | None = None
) -> Iterator[RecordBatch]:
    """The records of a part of a collection of this schema, one batch per row group."""
    named = {f"vector.{vector.name}": vector.dimension for vector in schema.vectors[1:]}
    sparse = [f"sparse.{vector.name}" for vector in schema.sparse_vectors]
    for table in _row_groups(data, _record_columns(schema), rows):
        yield RecordBatch(
            _checked_ids(table, schema),
            _vectors(table, "vector", schema.dimension),
            _strings(table, "document", nullable=True),
            _metadatas(_strings(table, "metadata", nullable=True)),
            _strings(table, "tenant", nullable=True),
            _strings(table, "uri", nullable=True),
            named_vectors={
                column[len("vector.") :]: _vectors(table, column, dimension)
                for column, dimension in named.items()
            },
            sparse_vectors={column[len("sparse.") :]: _sparse(table, column) for column in sparse},
        )


def _vectors(table: pa.Table, name: str, dimension: int) -> np.ndarray:
    vector = table.column(name)
    if not pa.types.is_fixed_size_list(vector.type) or vector.type.value_type != pa.float32():
        raise ValueError(f"column {name} is {vector.type}, expected a fixed-size list of float")
    if vector.type.list_size != dimension and table.num_rows:
        raise ValueError(
            f"column {name} has dimension {vector.type.list_size}, expected {dimension}"
        )
    if vector.null_count:
        raise ValueError(f"column {name} holds a null")
    if not table.num_rows:
        return np.zeros((0, dimension), dtype=np.float32)
    flat = pa.concat_arrays([chunk.flatten() for chunk in vector.chunks])
    if flat.null_count:
        raise ValueError(f"column {name} holds a null element")
    return flat.to_numpy(zero_copy_only=False).reshape(table.num_rows, dimension)


def _sparse(table: pa.Table, name: str) -> list[SparseVector | None]:
    column = table.column(name)
    if column.type != _SPARSE:
        raise ValueError(f"column {name} is {column.type}, expected {_SPARSE}")
    values: list[SparseVector | None] = []
    for number, item in enumerate(column.to_pylist(), start=1):
        if item is None:
            values.append(None)
            continue
        indices, weights = item["indices"], item["values"]
        if indices is None or weights is None or None in indices or None in weights:
            raise ValueError(f"row {number}: {name} holds a null index or value")
        try:
            values.append(SparseVector.of(indices, weights))
        except ValueError as error:
            raise ValueError(f"row {number}: {name}: {error}") from None
    return values


def _metadatas(texts: list[str | None]) -> list[dict[str, Any] | None]:
    """Each row's metadata parsed on its own (a text that is not exactly one JSON object
    cannot shift its neighbours' values), the collector paused meanwhile."""
    loads = orjson.loads
    with no_collection_pauses():
        try:
            values = [None if text is None else loads(text) for text in texts]
            if all(type(value) is dict or value is None for value in values):
                return values
        except orjson.JSONDecodeError:
            pass
    raise ValueError(_first_bad_metadata(texts))


def _first_bad_metadata(texts: list[str | None]) -> str:
    """Which row's metadata is not a JSON object, and why (a failing part only)."""
    for number, text in enumerate(texts, start=1):
        if text is None:
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            return f"row {number}: metadata is not JSON ({error})"
        if not isinstance(value, dict):
            return f"row {number}: metadata must be a JSON object or null"
    return "a metadata is not a JSON object"


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
