"""Encoding and decoding of snapshot parts: ``records-N.jsonl.gz``, ``vectors-N.npy``
and ``deletes-N.jsonl.gz``. Decoders treat bytes as untrusted and raise ValueError with a
reason; callers turn that into an integrity error naming the file and snapshot."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from typing import Any

import numpy as np

from drconsole.records import RecordBatch

GZIP_LEVEL = 6
MAX_PART_BYTES = 2 * 1024**3


def encode_records(batch: RecordBatch) -> bytes:
    lines = [
        json.dumps(
            {"id": id_, "document": doc, "metadata": meta, "tenant": tenant},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for id_, doc, meta, tenant in zip(
            batch.ids, batch.documents, batch.metadatas, batch.tenants, strict=True
        )
    ]
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=GZIP_LEVEL, mtime=0)


def encode_vectors(vectors: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(
        buffer, np.ascontiguousarray(vectors, dtype="<f4"), allow_pickle=False
    )
    return buffer.getvalue()


def encode_deletes(ids: list[str], tenants: list[str | None]) -> bytes:
    lines = [
        json.dumps({"id": id_, "tenant": tenant}, ensure_ascii=False, separators=(",", ":"))
        for id_, tenant in zip(ids, tenants, strict=True)
    ]
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=GZIP_LEVEL, mtime=0)


def json_lines(data: bytes) -> list[Any]:
    """Every line of a gzipped JSON Lines part, parsed in one call (much faster than one
    json.loads per line: JSON escapes newlines, so lines can be joined into an array)."""
    try:
        text = zlib.decompress(data, wbits=31)
    except zlib.error as error:
        raise ValueError(f"not a gzip file ({error})") from None
    body = text.rstrip(b"\n")
    if not body:
        return []
    try:
        items = json.loads(b"[" + body.replace(b"\n", b",") + b"]")
    except (ValueError, RecursionError) as error:
        raise ValueError(f"a line is not JSON ({error})") from None
    if not all(isinstance(item, dict) for item in items):
        raise ValueError("every line must be a JSON object")
    return items


def decode_records(
    data: bytes,
) -> tuple[list[str], list[str | None], list[dict[str, Any] | None], list[str | None]]:
    items = json_lines(data)
    ids, documents, metadatas, tenants = [], [], [], []
    for number, item in enumerate(items, start=1):
        record_id = item.get("id")
        if not isinstance(record_id, str) or not record_id:
            raise ValueError(f"line {number}: id must be a non-empty string")
        document, metadata, tenant = item.get("document"), item.get("metadata"), item.get("tenant")
        if document is not None and not isinstance(document, str):
            raise ValueError(f"line {number}: document must be a string or null")
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError(f"line {number}: metadata must be an object or null")
        if tenant is not None and not isinstance(tenant, str):
            raise ValueError(f"line {number}: tenant must be a string or null")
        ids.append(record_id)
        documents.append(document)
        metadatas.append(metadata)
        tenants.append(tenant)
    return ids, documents, metadatas, tenants


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


def decode_vectors(data: bytes, dimension: int) -> np.ndarray:
    """A float32 little-endian [rows, dimension] array from plain .npy bytes."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"not a plain .npy array ({error})") from None
    if array.dtype != np.dtype("<f4"):
        raise ValueError(f"vectors must be float32 little-endian, not {array.dtype.str}")
    if array.ndim != 2 or array.shape[1] != dimension:
        raise ValueError(f"vectors have shape {array.shape}, expected (rows, {dimension})")
    return np.ascontiguousarray(array)


def make_batch(
    records: tuple[list[str], list[str | None], list[dict[str, Any] | None], list[str | None]],
    vectors: np.ndarray,
) -> RecordBatch:
    ids, documents, metadatas, tenants = records
    if len(ids) != vectors.shape[0]:
        raise ValueError(f"{len(ids)} records but {vectors.shape[0]} vectors")
    return RecordBatch(ids, vectors, documents, metadatas, tenants)
