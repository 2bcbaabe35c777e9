"""Decoding of ``drconsole-snapshot/1`` parts (still read, no longer written):
``records-N.jsonl.gz``, ``vectors-N.npy`` and ``deletes-N.jsonl.gz``. Decoders treat bytes
as untrusted and raise ValueError with a reason; callers turn that into an integrity
error naming the file and snapshot. Format 2 is ``catalog.columnar``."""

from __future__ import annotations

import gc
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import orjson

from drconsole.records import RecordBatch

MAX_PART_BYTES = 2 * 1024**3
NPY_HEADER_LIMIT = 65536


def json_lines(data: bytes) -> list[Any]:
    """Every line of a gzipped JSON Lines part, parsed in one call (much faster than one
    call per line: JSON escapes newlines, so lines can be joined into an array)."""
    try:
        text = zlib.decompress(data, wbits=31)
    except zlib.error as error:
        raise ValueError(f"not a gzip file ({error})") from None
    body = text.rstrip(b"\n")
    if not body:
        return []
    try:
        with no_collection_pauses():
            items = orjson.loads(b"[" + body.replace(b"\n", b",") + b"]")
    except orjson.JSONDecodeError as error:
        raise ValueError(f"a line is not JSON ({error})") from None
    if not all(isinstance(item, dict) for item in items):
        raise ValueError("every line must be a JSON object")
    return items


@contextmanager
def no_collection_pauses() -> Iterator[None]:
    """The cyclic garbage collector paused while a part's objects are built: tens of
    thousands of new dicts and lists would otherwise trigger collection after collection,
    each walking objects that cannot be garbage yet (the restore pipeline runs about 15%
    faster without them). JSON makes no reference cycles; the next collection sees the
    new objects as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


RecordColumns = tuple[
    list[str], list[str | None], list[dict[str, Any] | None], list[str | None], list[str | None]
]


def decode_records(data: bytes) -> RecordColumns:
    """(ids, documents, metadatas, tenants, uris) of a records part."""
    items = json_lines(data)
    ids = [item.get("id") for item in items]
    documents = [item.get("document") for item in items]
    metadatas = [item.get("metadata") for item in items]
    tenants = [item.get("tenant") for item in items]
    uris = [item.get("uri") for item in items]
    _check(ids, (str,), "id must be a non-empty string")
    if "" in ids:
        _check([value or None for value in ids], (str,), "id must be a non-empty string")
    _check(documents, (str, type(None)), "document must be a string or null")
    _check(metadatas, (dict, type(None)), "metadata must be an object or null")
    _check(tenants, (str, type(None)), "tenant must be a string or null")
    _check(uris, (str, type(None)), "uri must be a string or null")
    return ids, documents, metadatas, tenants, uris


def _check(values: list[Any], kinds: tuple[type, ...], message: str) -> None:
    """Raise naming the first line whose value is not of the allowed kinds (the common,
    valid case costs one C-level pass over the types)."""
    if set(map(type, values)) <= set(kinds):
        return
    number = next(index for index, value in enumerate(values, start=1) if type(value) not in kinds)
    raise ValueError(f"line {number}: {message}")


def decode_deletes(data: bytes) -> tuple[list[str], list[str | None]]:
    ids, tenants = [], []
    for number, item in enumerate(json_lines(data), start=1):
        record_id, tenant = item.get("id"), item.get("tenant")
        if not isinstance(record_id, str) or not record_id:
            raise ValueError(f"line {number}: id must be a non-empty string")
        if tenant is not None and not isinstance(tenant, str):
            raise ValueError(f"line {number}: tenant must be a string or null")
        ids.append(record_id)
        tenants.append(tenant)
    return ids, tenants


def decode_vectors(data: bytes | bytearray, dimension: int) -> np.ndarray:
    """A float32 little-endian [rows, dimension] array from plain .npy bytes, viewing the
    data in place (no copy) once the header is checked."""
    header = io.BytesIO(bytes(data[:NPY_HEADER_LIMIT]))
    try:
        version = np.lib.format.read_magic(header)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(header)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(header)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError) as error:
        raise ValueError(f"not a plain .npy array ({error})") from None
    if dtype != np.dtype("<f4"):
        raise ValueError(f"vectors must be float32 little-endian, not {dtype.str}")
    if len(shape) != 2 or shape[1] != dimension or fortran_order:
        raise ValueError(f"vectors have shape {shape}, expected (rows, {dimension}) in C order")
    offset = header.tell()
    if len(data) - offset != shape[0] * dimension * 4:
        raise ValueError(f"{len(data) - offset} bytes of data for shape {shape}")
    return np.frombuffer(data, dtype="<f4", offset=offset).reshape(shape)


def make_batch(records: RecordColumns, vectors: np.ndarray) -> RecordBatch:
    ids, documents, metadatas, tenants, uris = records
    if len(ids) != vectors.shape[0]:
        raise ValueError(f"{len(ids)} records but {vectors.shape[0]} vectors")
    return RecordBatch(ids, vectors, documents, metadatas, tenants, uris)
