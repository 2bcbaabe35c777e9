"""Catalogs built by hand from the spec (DESIGN section 4), byte by byte, without
drconsole's writer: the reader must accept what any conforming tool writes."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from typing import Any

import numpy as np

from drconsole.catalog.store import ObjectStore


def npy_bytes(vectors: np.ndarray) -> bytes:
    """A version 1.0 .npy file written by hand: magic, header length, header, data."""
    rows, dimension = vectors.shape
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dimension}), }}"
    padding = 64 - (10 + len(header) + 1) % 64
    header_bytes = (header + " " * padding + "\n").encode("latin1")
    return (
        b"\x93NUMPY\x01\x00"
        + struct.pack("<H", len(header_bytes))
        + header_bytes
        + vectors.astype("<f4").tobytes()
    )


def jsonl_gz(rows: list[dict[str, Any]]) -> bytes:
    return gzip.compress("".join(json.dumps(row) + "\n" for row in rows).encode())


def put(store: ObjectStore, key: str, data: bytes) -> dict[str, Any]:
    with store.writer(key) as handle:
        handle.write(data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_spec_snapshot(
    store: ObjectStore,
    snapshot_id: str,
    *,
    records: list[dict[str, Any]],
    vectors: np.ndarray,
    deletes: list[dict[str, Any]] | None = None,
    parent: tuple[str, str] | None = None,
    recovery_point: str = "2026-11-22T10:15:00Z",
    collection: str = "help_articles",
    extra_files: list[dict[str, Any]] | None = None,
    source: dict[str, Any] | None = None,
) -> bytes:
    """Write a one-collection snapshot by hand and return the manifest bytes."""
    base = f"snapshots/{snapshot_id}/"
    files = []
    if records:
        files.append(
            {
                "path": f"{collection}/records-00000.jsonl.gz",
                "kind": "records",
                "rows": len(records),
                **put(store, base + f"{collection}/records-00000.jsonl.gz", jsonl_gz(records)),
            }
        )
        files.append(
            {
                "path": f"{collection}/vectors-00000.npy",
                "kind": "vectors",
                "rows": len(records),
                **put(store, base + f"{collection}/vectors-00000.npy", npy_bytes(vectors)),
            }
        )
    if deletes:
        files.append(
            {
                "path": f"{collection}/deletes-00000.jsonl.gz",
                "kind": "deletes",
                "rows": len(deletes),
                **put(store, base + f"{collection}/deletes-00000.jsonl.gz", jsonl_gz(deletes)),
            }
        )
    files.extend(extra_files or [])
    manifest = {
        "format": "drconsole-snapshot/1",
        "id": snapshot_id,
        "kind": "incremental" if parent else "full",
        "parent": parent[0] if parent else None,
        "parent_manifest_sha256": parent[1] if parent else None,
        "created_at": recovery_point,
        "completed_at": recovery_point,
        "recovery_point": recovery_point,
        "source": source
        or {
            "engine": "chroma",
            "url": "http://chroma.internal:8000",
            "server_version": "1.0.0",
            "namespace": {"tenant": "acme", "database": "prod"},
        },
        "ingest_checkpoint": {"kafka:kb-updates": "offset 88123"},
        "permissions": {"tenant_field": "tenant_id", "acl_field": "acl_groups"},
        "collections": [
            {
                "name": collection,
                "schema": {
                    "dimension": int(vectors.shape[1]),
                    "distance": "cosine",
                    "index": {"hnsw": {"ef_construction": 100, "max_neighbors": 16}},
                    "metadata_fields": {"tenant_id": "string"},
                    "engine_config": {},
                },
                "embedding": {"model": "all-MiniLM-L6-v2", "version": "2024-05"},
                "tenants": [{"name": "acme", "status": "active"}],
                "aliases": [],
                "counts": {
                    "records": len(records),
                    "deletes": len(deletes or []),
                    "total_after_apply": len(records),
                },
                "files": files,
            }
        ],
        "tool": {"name": "hand-written", "version": "0"},
    }
    data = json.dumps(manifest, indent=1).encode()
    put(store, base + "manifest.json", data)
    return data


def spec_state_file(
    store: ObjectStore, snapshot_id: str, batch: Any, collection: str = "help_articles"
) -> dict[str, Any]:
    """A format 1 ``state-00000.jsonl.gz`` of ``batch`` (a RecordBatch) written by hand,
    and its file entry for the manifest: what an incremental diffs against."""
    from drconsole.catalog.state import content_hashes

    rows = [
        {"id": record_id, "tenant": tenant, "h": f"{int(value):016x}"}
        for record_id, tenant, value in zip(
            batch.ids, batch.tenants, content_hashes(batch), strict=True
        )
    ]
    path = f"{collection}/state-00000.jsonl.gz"
    return {
        "path": path,
        "kind": "state",
        "rows": len(rows),
        **put(store, f"snapshots/{snapshot_id}/{path}", jsonl_gz(rows)),
    }


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
