"""Server-side bulk import into Milvus: records written as Parquet files into the bucket
Milvus keeps its own data in (the only one its import reads), then imported by the
server, one import task per file, polled to completion.

Each file holds the key, the vector (``list<float32>``), every typed field in its Milvus
type, and the other fields as the dynamic field's JSON (``$meta``). An import never
replaces a record with the same key (Milvus 2.3 keeps both), so the restore imports only
into a collection it created and checkpoints every task it submitted; a file submitted
just before a crash is found again among the collection's import tasks by its path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drconsole.catalog.s3 import S3Store
from drconsole.engines.milvus.schema import config_of, key_field, typed_fields, vector_field
from drconsole.model.schema import CollectionSchema, KeyType, ScalarType
from drconsole.records import RecordBatch

ARROW_TYPES = {
    "BOOL": pa.bool_(),
    "INT8": pa.int8(),
    "INT16": pa.int16(),
    "INT32": pa.int32(),
    "INT64": pa.int64(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
}
NEUTRAL_ARROW = {
    ScalarType.BOOL: "BOOL",
    ScalarType.INT: "INT64",
    ScalarType.FLOAT: "DOUBLE",
    ScalarType.STRING: "VARCHAR",
    ScalarType.JSON: "JSON",
}
FINAL_STATES = ("Completed", "Failed", "Failed and cleaned")


@dataclass(frozen=True)
class ImportState:
    """Where one import task stands: its state's name, rows imported, progress (0-100)
    and, when it failed, why."""

    state: str
    rows: int
    percent: int
    reason: str

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def completed(self) -> bool:
        return self.state == "Completed"


def stage_of(url: str | None, endpoint: str | None, credentials: str | None) -> S3Store | None:
    """The stage a target names (``s3://BUCKET/PREFIX``: Milvus's own bucket), or None."""
    if not url:
        return None
    parts = urlsplit(url)
    return S3Store(
        parts.netloc,
        parts.path.strip("/") or "drconsole-import",
        endpoint=endpoint,
        credentials=credentials,
    )


def write_parquet(schema: CollectionSchema, batches: Iterable[RecordBatch], out: Any) -> int:
    """Write the records as one Parquet file Milvus imports; the number of rows."""
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for batch in batches:
            if not len(batch):
                continue
            table = _table(schema, batch)
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema, compression="zstd")
            writer.write_table(table)
            rows += len(batch)
    finally:
        if writer is not None:
            writer.close()
    return rows


def _table(schema: CollectionSchema, batch: RecordBatch) -> pa.Table:
    own = config_of(schema).get("fields") or {}
    typed = typed_fields(schema)
    names = {item.name for item in typed}
    key = key_field(schema)
    keys = (
        pa.array([int(record_id) for record_id in batch.ids], pa.int64())
        if schema.key == KeyType.INT
        else pa.array(batch.ids, pa.string())
    )
    vectors = np.ascontiguousarray(batch.vectors, dtype=np.float32)
    columns: dict[str, pa.Array] = {
        key: keys,
        vector_field(schema): pa.ListArray.from_arrays(
            pa.array(np.arange(0, vectors.size + 1, vectors.shape[1], dtype=np.int32)),
            pa.array(vectors.reshape(-1)),
        ),
    }
    metadatas = [metadata or {} for metadata in batch.metadatas]
    for item in typed:
        values = [metadata.get(item.name) for metadata in metadatas]
        kind = (own.get(item.name) or {}).get("type") or NEUTRAL_ARROW[item.type.scalar]
        if item.type.array:
            element = (own.get(item.name) or {}).get("element_type") or NEUTRAL_ARROW[
                item.type.scalar
            ]
            columns[item.name] = pa.array(values, pa.list_(ARROW_TYPES[element]))
        elif kind == "JSON":
            columns[item.name] = pa.array([json.dumps(value) for value in values], pa.string())
        else:
            columns[item.name] = pa.array(values, ARROW_TYPES[kind])
    if config_of(schema).get("dynamic_field", True) or len(typed) < len(schema.fields):
        columns["$meta"] = pa.array(
            [
                json.dumps({k: v for k, v in metadata.items() if k not in names})
                for metadata in metadatas
            ],
            pa.string(),
        )
    return pa.table(columns)
