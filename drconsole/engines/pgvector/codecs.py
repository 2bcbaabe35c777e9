"""pgvector's types in PostgreSQL's binary wire format, as drconsole's neutral values:
``vector`` and ``halfvec`` as float32 arrays (a halfvec value only when float16 holds it
exactly), ``bit`` as a float32 array of 0 and 1, ``sparsevec`` as a ``SparseVector``.
Registered on each connection by type oid, so that COPY ... (FORMAT BINARY) and binary
query results read and write them without text conversions (which would round).

Formats (pgvector 0.8, big-endian): vector ``uint16 dim, uint16 0, float32[dim]``;
halfvec the same with float16; sparsevec ``int32 dim, int32 nnz, int32 0, int32[nnz]
indices (from 0), float32[nnz]``; bit is PostgreSQL's ``varbit``: ``int32 bits`` then the
bits, most significant first.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

from drconsole.records import SparseVector, missing_vectors

SPARSE_MAX_DIMENSION = 1_000_000_000
"""pgvector's limit; a column declared without a dimension gets values of this one."""

_HEAD = struct.Struct(">HH")
_SPARSE_HEAD = struct.Struct(">iii")
_BITS = struct.Struct(">i")


class NotRepresentable(ValueError):
    """A value the column's type cannot hold exactly."""


def dump_vector(values: np.ndarray) -> bytes:
    return _HEAD.pack(len(values), 0) + np.asarray(values, dtype=">f4").tobytes()


def load_vector(data: Any) -> np.ndarray:
    dimension, _ = _HEAD.unpack_from(data)
    return np.frombuffer(data, dtype=">f4", count=dimension, offset=4).astype(np.float32)


def dump_halfvec(values: np.ndarray) -> bytes:
    half = np.asarray(values, dtype=np.float32).astype(">f2")
    if not np.array_equal(half.astype(np.float32), values, equal_nan=True):
        raise NotRepresentable("a value of a halfvec column that float16 does not hold exactly")
    return _HEAD.pack(len(values), 0) + half.tobytes()


def load_halfvec(data: Any) -> np.ndarray:
    dimension, _ = _HEAD.unpack_from(data)
    return np.frombuffer(data, dtype=">f2", count=dimension, offset=4).astype(np.float32)


def dump_bits(values: np.ndarray) -> bytes:
    flat = np.asarray(values, dtype=np.float32)
    if not np.all((flat == 0) | (flat == 1)):
        raise NotRepresentable("a value of a bit column other than 0 and 1")
    return _BITS.pack(len(flat)) + np.packbits(flat.astype(np.uint8)).tobytes()


def load_bits(data: Any) -> np.ndarray:
    (length,) = _BITS.unpack_from(data)
    packed = np.frombuffer(data, dtype=np.uint8, offset=4)
    return np.unpackbits(packed, count=length).astype(np.float32)


def dump_sparse(value: SparseVector, dimension: int) -> bytes:
    size = int(value.indices.size)
    if size and int(value.indices[-1]) >= dimension:
        raise NotRepresentable(
            f"a sparse vector with position {int(value.indices[-1])} in a column of "
            f"dimension {dimension}"
        )
    return (
        _SPARSE_HEAD.pack(dimension, size, 0)
        + value.indices.astype(">i4").tobytes()
        + value.values.astype(">f4").tobytes()
    )


def load_sparse(data: Any) -> SparseVector:
    _, size, _ = _SPARSE_HEAD.unpack_from(data)
    indices = np.frombuffer(data, dtype=">i4", count=size, offset=12)
    values = np.frombuffer(data, dtype=">f4", count=size, offset=12 + 4 * size)
    return SparseVector(indices.astype(np.uint32), values.astype(np.float32))


_CODECS = {
    "vector": (dump_vector, load_vector),
    "halfvec": (dump_halfvec, load_halfvec),
    "bit": (dump_bits, load_bits),
}


def register_types(connection: Any) -> dict[str, int]:
    """Register the binary loaders and dumpers of pgvector's types on ``connection``;
    their oids by name (empty when the extension is not installed)."""
    oids = {}
    for name in ("vector", "halfvec", "sparsevec", "bit"):
        info = TypeInfo.fetch(connection, name)
        if info is None:
            return {}
        info.register(connection)
        oids[name] = info.oid
        connection.adapters.register_loader(info.oid, _loader(name))
    return oids


def _loader(name: str) -> type[Loader]:
    """Sparse vectors are decoded row by row; dense ones are kept as their bytes and
    decoded a whole column at a time (``load_column``), far faster than per row."""
    load = load_sparse if name == "sparsevec" else bytes

    class _Load(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> Any:
            return load(bytes(data))

    return _Load


def load_column(type_name: str, values: list[bytes | None], dimension: int) -> np.ndarray:
    """A dense vector column's binary values as ``(rows, dimension)`` float32; a NULL is
    a vector without a value (all NaN: ``records.missing_vectors``)."""
    present = [value for value in values if value is not None]
    if type_name == "bit" or len({len(value) for value in present}) > 1:
        decoded = [_CODECS[type_name][1](value) for value in present]
        width = dimension or (len(decoded[0]) if decoded else 0)
        if any(len(vector) != width for vector in decoded):
            raise NotRepresentable(f"a {type_name} column holding vectors of several dimensions")
        stacked = np.array(decoded, dtype=np.float32).reshape(len(decoded), width)
    else:
        width = _HEAD.unpack_from(present[0])[0] if present else dimension
        element = ">f2" if type_name == "halfvec" else ">f4"
        layout = np.dtype([("head", ">u4"), ("values", element, (width,))])
        stacked = np.frombuffer(b"".join(present), dtype=layout)["values"].astype(np.float32)
    if len(present) == len(values):
        return np.ascontiguousarray(stacked)
    filled = missing_vectors(len(values), stacked.shape[1] if present else dimension)
    filled[[row for row, value in enumerate(values) if value is not None]] = stacked
    return filled


def binary_dumper(oid: int) -> type[Dumper]:
    """A dumper that sends already-encoded bytes as a value of type ``oid`` (the
    encoding is done per column by ``encode``, which knows the column's type)."""

    class _Dump(Dumper):
        format = Format.BINARY

        def dump(self, obj: Any) -> bytes:
            return bytes(obj)

    _Dump.oid = oid
    return _Dump


def encode(type_name: str, value: Any, dimension: int) -> bytes:
    """A neutral vector value in the binary format of a column of ``type_name``."""
    if type_name == "sparsevec":
        return dump_sparse(value, dimension or SPARSE_MAX_DIMENSION)
    return _CODECS[type_name][0](value)
