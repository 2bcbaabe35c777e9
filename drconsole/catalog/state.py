"""State files (kind ``state``): every record of a snapshot's full state with ``h``, a
64-bit content hash of the vector, document, metadata and uri (a record without a uri
hashes as it did before uris were kept, so older state files still diff correctly). The
next incremental diffs against these hashes instead of reading the parent's data.
Format 2 writes them as Parquet (``catalog.columnar``); format 1's ``state-N.jsonl.gz``
(``{"id", "tenant", "h"}`` per line, h in hex) is still read, so an incremental can
follow a format 1 parent.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import orjson

from drconsole.catalog.parts import json_lines
from drconsole.records import RecordBatch


def content_hashes(batch: RecordBatch) -> np.ndarray:
    """A 64-bit hash per record of its vector bytes, document, metadata and uri, and of
    its named and sparse vectors when it has any (so a record with one vector hashes as
    it did before they existed: an incremental diffs against older state files)."""
    vectors = np.ascontiguousarray(batch.vectors, dtype="<f4")
    named = {
        name: np.ascontiguousarray(batch.named_vectors[name], dtype="<f4")
        for name in sorted(batch.named_vectors)
    }
    sparse = {name: batch.sparse_vectors[name] for name in sorted(batch.sparse_vectors)}
    hashes = np.empty(len(batch), dtype=np.uint64)
    rows = zip(batch.documents, batch.metadatas, batch.uris, strict=True)
    for row, (document, metadata, uri) in enumerate(rows):
        digest = hashlib.blake2b(vectors[row].tobytes(), digest_size=8)
        digest.update(b"\x00" if document is None else b"\x01" + document.encode())
        digest.update(orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS))
        if uri is not None:
            digest.update(b"\x02" + uri.encode())
        for name, values in named.items():
            digest.update(b"\x03" + name.encode() + b"\x00" + values[row].tobytes())
        for name, column in sparse.items():
            vector = column[row]
            digest.update(b"\x04" + name.encode() + b"\x00")
            if vector is not None:
                digest.update(len(vector.indices).to_bytes(4, "little"))
                digest.update(vector.indices.astype("<u4").tobytes())
                digest.update(vector.values.astype("<f4").tobytes())
        hashes[row] = int.from_bytes(digest.digest(), "little")
    return hashes


def decode_state(data: bytes) -> tuple[list[str], list[str | None], np.ndarray]:
    items: list[Any] = json_lines(data)
    ids, tenants, hashes = [], [], np.empty(len(items), dtype=np.uint64)
    for number, item in enumerate(items):
        record_id, tenant, value = item.get("id"), item.get("tenant"), item.get("h")
        if not isinstance(record_id, str) or not isinstance(value, str) or len(value) != 16:
            raise ValueError(f"line {number + 1}: a state line needs id and a 16-hex-digit h")
        try:
            hashes[number] = int(value, 16)
        except ValueError:
            raise ValueError(f"line {number + 1}: h is not hexadecimal") from None
        ids.append(record_id)
        tenants.append(tenant if isinstance(tenant, str) else None)
    return ids, tenants, hashes
