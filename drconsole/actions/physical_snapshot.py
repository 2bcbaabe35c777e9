"""Taking a physical snapshot: a stopped server's data folder (or a frozen copy of it)
packed into the catalog as files, and described in logical terms from the backup itself.

The folder is refused while a process uses it (copying a live Chroma folder is not
safe) and when it changes while it is packed. The parts are then unpacked into a
scratch folder and a throwaway server is started on them: the collections, schemas,
counts, tenants and every record's content are read from that server into the same
snapshot, as a logical full snapshot would hold them. So the console shows a physical
backup as clearly as a logical one, the gates know exactly what to expect after a
physical restore, and the backup is proven to start before it is ever needed.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drconsole.actions.snapshot import (
    PAGE_SIZE,
    SnapshotProgress,
    SnapshotRequest,
    index_written,
    new_snapshot_id,
    require_collection,
    snapshot_collection,
)
from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.lock import lock_catalog
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.physical import (
    PART_BYTES,
    PackedFolder,
    check_parts,
    folder_fingerprint,
    pack_folder,
    store_sink,
    unpack_part,
)
from drconsole.catalog.store import ObjectStore
from drconsole.catalog.writer import PART_ROWS, SnapshotWriter
from drconsole.engines.adapter import EngineAdapter
from drconsole.engines.base import ScanWindow
from drconsole.engines.registry import engine_adapter
from drconsole.errors import DrconsoleError
from drconsole.folder_users import folder_users
from drconsole.secrets import resolve
from drconsole.timefmt import format_utc, utc_now

FILES = "files"
"""The progress label of packing (bytes done of bytes in all)."""


@dataclass
class PhysicalRequest:
    """What to back up (an engine's data folder), where to, and what to record. The
    ``namespace`` and ``collections`` say which part of the folder's content the
    logical description covers (all collections of the namespace when none is named)."""

    engine: str
    data_dir: Path
    store: ObjectStore
    name: str
    namespace: dict[str, Any] = field(default_factory=dict)
    collections: list[str] = field(default_factory=list)
    source_url: str | None = None
    ingest_checkpoint: dict[str, str] = field(default_factory=dict)
    embedding: dict[str, Any] = field(default_factory=dict)
    tenant_field: str | None = None
    acl_field: str | None = None
    golden: list[Path] = field(default_factory=list)
    key: CatalogKey | None = None
    part_rows: int = PART_ROWS
    workers: int = 2
    part_bytes: int = PART_BYTES
    scratch: Path | None = None
    """Where the parts are unpacked to be read (the system's temporary folder if None)."""


def create_physical_snapshot(
    request: PhysicalRequest,
    progress: SnapshotProgress | None = None,
    cancel: threading.Event | None = None,
) -> Manifest:
    adapter = engine_adapter(request.engine)
    method = adapter.physical()
    folder = request.data_dir.resolve()
    unchecked = refuse_live_folder(folder, "back it up")
    with lock_catalog(request.store, "snapshot create", exclusive=False) as lock:
        view = load_catalog(request.store, request.key, use_index=True)
        snapshot_id = new_snapshot_id(request.name, "P")
        writer = SnapshotWriter(request.store, snapshot_id, request.part_rows, request.key)
        writer.claim()
        created_at = utc_now()
        written_by = method.written_by(folder)
        packed = pack_folder(
            store_sink(request.store, snapshot_id),
            folder,
            workers=request.workers,
            part_bytes=request.part_bytes,
            progress=(lambda done, total: progress(FILES, done, total)) if progress else None,
        )
        refuse_live_folder(folder, "back it up")
        if folder_fingerprint(folder) != packed.fingerprint:
            raise DrconsoleError(
                f"{folder} changed while it was copied; snapshot {snapshot_id} was not "
                "recorded (its folder has no manifest)",
                "stop the server that uses the folder, or copy a frozen snapshot of it",
            )
        source = _describe(request, adapter, writer, packed, progress=progress, cancel=cancel)
        for path in request.golden:
            writer.add_golden(path.name, path.read_bytes())
        lock.still_held()
        recovery_point = min(packed.newest_change or created_at, created_at)
        manifest = writer.finish(
            kind="physical",
            parent=None,
            created_at=created_at,
            recovery_point=recovery_point,
            source={
                **source,
                "url": request.source_url or folder.as_uri(),
                "data_dir": str(folder),
            },
            ingest_checkpoint=request.ingest_checkpoint,
            permissions={
                key: value
                for key, value in (
                    ("tenant_field", request.tenant_field),
                    ("acl_field", request.acl_field),
                )
                if value
            },
            point_in_time={
                "kind": "files",
                "newest_change": format_utc(recovery_point),
                "copied_at": format_utc(created_at),
                "unchecked_processes": unchecked,
            },
            physical={
                "method": method.method,
                "engine": adapter.name,
                "engine_version": source.get("server_version", ""),
                "read_by": method.release(),
                "written_by": written_by,
                "files": packed.files,
                "bytes": packed.bytes,
            },
            physical_parts=packed.parts,
        )
        index_written(request.store, view, writer)
    return manifest


def refuse_live_folder(folder: Path, doing: str) -> int:
    """Refuse a folder that a process uses, naming it and how that is known; returns how
    many processes could not be checked (none when running as root)."""
    found = folder_users(folder)
    if found.users:
        raise DrconsoleError(
            f"{folder} is in use, so its files are not safe to {doing}: "
            + "; ".join(user.describe() for user in found.users[:3])
            + " (seen in /proc)",
            "stop the server first, or back up a frozen copy of the folder "
            "(a filesystem or volume snapshot mounted elsewhere)",
        )
    return found.unreadable


def _describe(
    request: PhysicalRequest,
    adapter: EngineAdapter,
    writer: SnapshotWriter,
    packed: PackedFolder,
    *,
    progress: SnapshotProgress | None,
    cancel: threading.Event | None,
) -> dict[str, Any]:
    """Unpack the parts as written, start a server on them and read its collections
    into the snapshot; returns the server's description (the snapshot's source)."""
    from drconsole.sandbox import start_server

    method = adapter.physical()
    with tempfile.TemporaryDirectory(
        prefix="drconsole-physical-", dir=request.scratch, ignore_cleanup_errors=True
    ) as scratch:
        workdir = Path(scratch)
        parts = [(writer.snapshot_id, part) for part in packed.parts]
        check_parts(request.store, parts, workers=request.workers)
        data_dir = method.server(workdir).data_dir
        for snapshot_id, part in parts:
            unpack_part(request.store, snapshot_id, part, data_dir)
        server = start_server(lambda: method.server(workdir))
        try:
            token = resolve(server.token_reference) if server.token_reference else None
            engine = adapter.open(server.url, request.namespace, token)
            try:
                info = engine.info()
                missing = engine.missing_namespace()
                if missing is not None:
                    raise DrconsoleError(
                        f"the backed-up folder: {missing}", "check --tenant and --database"
                    )
                names = request.collections or [c.name for c in engine.list_collections()]
                inner = SnapshotRequest(
                    engine=engine,
                    store=request.store,
                    collections=names,
                    name=request.name,
                    embedding=request.embedding,
                    tenant_field=request.tenant_field,
                    acl_field=request.acl_field,
                    part_rows=request.part_rows,
                    page_size=PAGE_SIZE,
                )
                for name in names:
                    snapshot_collection(
                        inner,
                        writer,
                        require_collection(engine, info, name),
                        parent=None,
                        previous=None,
                        window=ScanWindow(),
                        progress=progress,
                        cancel=cancel,
                    )
            finally:
                engine.close()
        finally:
            server.discard()
    return info.to_json()
