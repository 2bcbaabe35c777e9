"""Records as table rows and back: the key column (text, int or uuid, carried as its
canonical text), the vector columns (the first is the record's vector, the others its
named vectors), sparse vectors, and every other column as a field of the record's
metadata (a NULL column is a missing key).

A table is typed: a record is refused, naming the record and the column, when it has a
field the table has no column for, a value of another kind than its column's (an int in a
float column would come back as a float, which the content check counts as a change), a
document or uri (the table has no place for them), or a vector the column cannot hold
exactly. Nothing is ever silently changed on the way in.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from psycopg.types.json import Json, Jsonb

from drconsole.engines.pgvector.codecs import NotRepresentable, encode, load_column
from drconsole.engines.pgvector.introspect import ENGINE
from drconsole.engines.pgvector.table import type_modifier
from drconsole.model.schema import CollectionSchema, KeyType
from drconsole.records import RecordBatch, is_missing


class RecordRefused(ValueError):
    """A record the table cannot hold as it is."""


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
    """PostgreSQL's type name (``int8``, ``_text`` for ``text[]``, ``vector``...)."""
    dimension: int = 0

    @property
    def copy_type(self) -> str:
        """The name COPY's binary writer knows the type by."""
        return f"{self.type_name[1:]}[]" if self.type_name.startswith("_") else self.type_name


@dataclass(frozen=True)
class Layout:
    """Which column holds what of a record."""

    key: Column
    key_type: KeyType
    vectors: tuple[Column, ...]
    sparse: tuple[Column, ...]
    fields: tuple[Column, ...]

    @classmethod
    def of(cls, schema: CollectionSchema) -> Layout:
        """From a schema as ``introspect.describe_table`` gives it."""
        config = schema.engine_config[ENGINE]
        types: dict[str, str] = config["columns"]
        exact: dict[str, str] = config.get("column_types") or {}
        key = str(config["primary_key"])
        return cls(
            Column(key, types[key]),
            schema.key,
            tuple(Column(v.name, types[v.name], v.dimension) for v in schema.vectors),
            tuple(
                Column(s.name, "sparsevec", type_modifier(exact.get(s.name, "")))
                for s in schema.sparse_vectors
            ),
            tuple(Column(f.name, types[f.name]) for f in schema.fields),
        )

    @property
    def columns(self) -> tuple[Column, ...]:
        return (self.key, *self.vectors, *self.sparse, *self.fields)

    @property
    def field_types(self) -> dict[str, str]:
        return {column.name: column.type_name for column in self.fields}

    def key_value(self, text: str) -> Any:
        """A record's key as the key column's value."""
        if self.key_type == KeyType.STRING:
            return text
        if (problem := self.key_type.problem(text)) is not None:
            raise RecordRefused(problem)
        return int(text) if self.key_type == KeyType.INT else uuid.UUID(text)

    def rows(self, batch: RecordBatch) -> list[tuple[Any, ...]]:
        """The batch as rows in ``columns`` order (a key sent twice: its last record)."""
        self._check_shape(batch)
        known = {column.name: column for column in self.fields}
        absent = [None] * len(batch)
        sparse = [batch.sparse_vectors.get(column.name, absent) for column in self.sparse]
        rows: dict[str, tuple[Any, ...]] = {}
        for row, record_id in enumerate(batch.ids):
            try:
                metadata = batch.metadatas[row] or {}
                if unknown := sorted(set(metadata) - set(known)):
                    raise RecordRefused(f"field {unknown[0]} has no column in the table")
                rows[record_id] = (
                    self.key_value(record_id),
                    *(
                        None
                        if is_missing(vectors[row])
                        else encode(column.type_name, vectors[row], column.dimension)
                        for column, vectors in zip(self.vectors, self._dense(batch), strict=True)
                    ),
                    *(
                        None
                        if values[row] is None
                        else encode("sparsevec", values[row], column.dimension)
                        for column, values in zip(self.sparse, sparse, strict=True)
                    ),
                    *(_to_column(column, metadata.get(column.name)) for column in self.fields),
                )
            except (RecordRefused, NotRepresentable) as error:
                raise RecordRefused(f"record {record_id}: {error}") from None
        return list(rows.values())

    def _dense(self, batch: RecordBatch) -> list[np.ndarray]:
        return [batch.vectors, *(batch.named_vectors[c.name] for c in self.vectors[1:])]

    def _check_shape(self, batch: RecordBatch) -> None:
        named = {column.name for column in self.vectors[1:]}
        if set(batch.named_vectors) != named:
            raise RecordRefused(
                f"named vectors {sorted(batch.named_vectors)}, the table has {sorted(named)}"
            )
        if not set(batch.sparse_vectors) <= {column.name for column in self.sparse}:
            raise RecordRefused(
                f"sparse vectors {sorted(batch.sparse_vectors)} it has no column for"
            )
        for column, vectors in zip(self.vectors, self._dense(batch), strict=True):
            if len(batch) and column.dimension and vectors.shape[1] != column.dimension:
                raise RecordRefused(
                    f"vector {column.name} has dimension {vectors.shape[1]}, "
                    f"the column {column.dimension}"
                )
        if any(document is not None for document in batch.documents):
            raise RecordRefused("records have documents: the table has no document column")
        if any(uri is not None for uri in batch.uris):
            raise RecordRefused("records have uris: the table has no uri column")

    def batch(self, rows: list[tuple[Any, ...]]) -> RecordBatch:
        """Rows in ``columns`` order as records (decoded column by column)."""
        count = len(rows)
        dense, sparse = len(self.vectors), len(self.sparse)
        try:
            vectors = [
                load_column(column.type_name, [row[1 + n] for row in rows], column.dimension)
                for n, column in enumerate(self.vectors)
            ]
        except NotRepresentable as error:
            raise RecordRefused(str(error)) from None
        first = 1 + dense + sparse
        return RecordBatch(
            ids=[str(row[0]) for row in rows],
            vectors=vectors[0] if vectors else np.zeros((count, 0), dtype=np.float32),
            documents=[None] * count,
            metadatas=self.metadatas([row[first:] for row in rows]),
            tenants=[None] * count,
            named_vectors={c.name: v for c, v in zip(self.vectors[1:], vectors[1:], strict=True)},
            sparse_vectors={
                column.name: [row[1 + dense + number] for row in rows]
                for number, column in enumerate(self.sparse)
            },
        )

    def metadatas(self, rows: list[tuple[Any, ...]]) -> list[dict[str, Any] | None]:
        """Rows of field values as metadata, converted a column at a time (the types
        Python already holds as JSON values are not touched)."""
        names = [column.name for column in self.fields]
        columns = []
        for number, column in enumerate(self.fields):
            values = [row[number] for row in rows]
            if column.type_name == "timestamptz":
                values = [None if value is None else _utc_text(value) for value in values]
            elif column.type_name not in _AS_IS:
                values = [
                    None if value is None else _from_column(column.type_name, value)
                    for value in values
                ]
            columns.append(values)
        return (
            [
                {
                    name: value
                    for name, value in zip(names, values, strict=True)
                    if value is not None
                }
                or None
                for values in zip(*columns, strict=True)
            ]
            if columns
            else [None] * len(rows)
        )


_AS_IS = {"text", "varchar", "bpchar", "int2", "int4", "int8", "float4", "float8", "bool"}
_AS_IS |= {"json", "jsonb", *(f"_{name}" for name in _AS_IS)}
"""Column types whose Python values are the record's values already."""

_KINDS: dict[str, type | tuple[type, ...]] = {
    "text": str,
    "varchar": str,
    "bpchar": str,
    "uuid": str,
    "int2": int,
    "int4": int,
    "int8": int,
    "float4": float,
    "float8": float,
    "numeric": float,
    "bool": bool,
    "timestamptz": str,
    "timestamp": str,
    "date": str,
}


def _to_column(column: Column, value: Any) -> Any:
    if value is None:
        return None
    type_name = column.type_name
    if type_name in ("json", "jsonb"):
        return (Jsonb if type_name == "jsonb" else Json)(value)
    if type_name.startswith("_"):
        if not isinstance(value, list):
            raise RecordRefused(f"field {column.name} is {_kind(value)}, its column an array")
        return [_scalar(column.name, type_name[1:], item) for item in value]
    return _scalar(column.name, type_name, value)


def _scalar(name: str, type_name: str, value: Any) -> Any:
    if value is None:
        return None
    kind = _KINDS.get(type_name)
    if kind is None:
        raise RecordRefused(f"field {name} is a {type_name} column, which drconsole does not write")
    if type(value) is not kind:
        raise RecordRefused(f"field {name} is {_kind(value)}, its column holds {type_name}")
    try:
        if type_name in ("timestamptz", "timestamp"):
            return datetime.fromisoformat(value)
        if type_name == "date":
            return date.fromisoformat(value)
        if type_name == "uuid":
            return uuid.UUID(value)
    except ValueError:
        raise RecordRefused(f"field {name}: {value!r} is not a {type_name}") from None
    if type_name == "numeric":
        return Decimal(repr(value))
    return value


def _from_column(type_name: str, value: Any) -> Any:
    if type_name.startswith("_") and isinstance(value, list):
        return [None if item is None else _from_column(type_name[1:], item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat() if value.tzinfo is None else _utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else float(str(value).lower())
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _utc_text(value: datetime) -> str:
    """RFC 3339 UTC text with microseconds (the sessions run in UTC, so this is mostly a
    formatting; a value in another zone is converted)."""
    text = value.isoformat(timespec="microseconds")
    if text.endswith("+00:00"):
        return text[:-6] + "Z"
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else "a float"
    return {int: "an int", str: "a string", list: "an array", dict: "an object"}.get(
        type(value), type(value).__name__
    )
