"""Taking a physical snapshot: a database's files packed into the catalog, and described in
logical terms from the backup itself.

Files come from where the engine keeps them (its ``physical`` method): a stopped
server's data folder, or a frozen copy of it (Chroma), refused while a process uses it
and when it changes while it is packed; or the running server's own backup program
(PostgreSQL's ``pg_basebackup``, full or incremental on the newest physical snapshot).
The parts are then unpacked into a scratch folder (with the chain's earlier ones, and
combined), a throwaway server is started on them, and the collections, schemas, counts,
tenants and every record's content are read from that server into the same snapshot,
as a logical snapshot would hold them (an incremental's as a logical incremental on
its parent's). So the console shows a physical backup as clearly as a logical one, the
gates know exactly what to expect after a physical restore, and the backup is proven to
start before it is ever needed.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from drconsole.actions.physical_files import assemble_chain, refuse_live_folder
from drconsole.actions.snapshot import (
    PAGE_SIZE,
    SnapshotProgress,
    SnapshotRequest,
    index_written,
    new_snapshot_id,
    require_collection,
    select_parent,
    snapshot_collection,
)
from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.catalog import CatalogView, load_catalog
from drconsole.catalog.lock import lock_catalog
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.physical import (
    PART_BYTES,
    folder_fingerprint,
    pack_folder,
    read_member,
    store_sink,
)
from drconsole.catalog.store import ObjectStore
from drconsole.catalog.writer import PART_ROWS, SnapshotWriter
from drconsole.engines.adapter import EngineAdapter
from drconsole.engines.base import ScanWindow
from drconsole.engines.physical import PhysicalMethod
from drconsole.engines.registry import engine_adapter
from drconsole.errors import DrconsoleError, UsageError
from drconsole.secrets import resolve
from drconsole.timefmt import format_utc, utc_now

FILES = "files"
"""The progress label of packing (bytes done of bytes in all)."""


@dataclass
class PhysicalRequest:
    """What to back up, where to, and what to record. A folder engine reads
    ``data_dir``; a server engine backs up the server at ``url`` (with ``token``), and
    with ``incremental`` only what changed since the newest physical snapshot of the
    same source (or ``parent_id``). ``namespace`` and ``collections`` say which part of
    the content the logical description covers (all collections of the namespace when
    none is named)."""

    engine: str
    store: ObjectStore
    name: str
    data_dir: Path | None = None
    url: str | None = None
    token: str | None = None
    incremental: bool = False
    parent_id: str | None = None
    namespace: dict[str, Any] = field(default_factory=dict)
    collections: list[str] = field(default_factory=list)
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
    """Where the backup is unpacked to be read (the system's temporary folder if None)."""


def create_physical_snapshot(
    request: PhysicalRequest,
    progress: SnapshotProgress | None = None,
    cancel: threading.Event | None = None,
) -> Manifest:
    adapter = engine_adapter(request.engine)
    method = adapter.physical()
    _check(request, adapter, method)
    unchecked = 0
    if request.data_dir is not None:
        unchecked = refuse_live_folder(request.data_dir.resolve(), "back it up")
    with (
        lock_catalog(request.store, "snapshot create", exclusive=False) as lock,
        tempfile.TemporaryDirectory(
            prefix="drconsole-physical-", dir=request.scratch, ignore_cleanup_errors=True
        ) as scratch_name,
    ):
        scratch = Path(scratch_name)
        view = load_catalog(request.store, request.key, use_index=True)
        chain = _parent_chain(request, view) if request.incremental else []
        parent = chain[-1] if chain else None
        snapshot_id = new_snapshot_id(request.name, "P")
        writer = SnapshotWriter(request.store, snapshot_id, request.part_rows, request.key)
        created_at = utc_now()
        if request.data_dir is not None:
            folder = request.data_dir.resolve()
        else:
            folder = scratch / "taken"
            assert request.url is not None
            method.take(
                request.url,
                request.token,
                folder,
                (lambda: read_member(request.store, parent, method.manifest_name))
                if parent is not None
                else None,
            )
        written_by = method.written_by(folder)
        writer.claim()  # the id, before any part is written under it
        packed = pack_folder(
            store_sink(request.store, snapshot_id),
            folder,
            workers=request.workers,
            part_bytes=request.part_bytes,
            progress=(lambda done, total: progress(FILES, done, total)) if progress else None,
        )
        if request.data_dir is not None:
            refuse_live_folder(folder, "back it up")
            if folder_fingerprint(folder) != packed.fingerprint:
                raise DrconsoleError(
                    f"{folder} changed while it was copied; snapshot {snapshot_id} was not "
                    "recorded (its folder has no manifest)",
                    "stop the server that uses the folder, or copy a frozen snapshot of it",
                )
        else:
            shutil.rmtree(folder)  # its parts are written: free the space for the describe
        parts = [
            *[[(item.id, part) for part in item.physical_parts] for item in chain],
            [(snapshot_id, part) for part in packed.parts],
        ]
        source = _describe(
            request,
            adapter,
            writer,
            parts,
            parent=parent,
            workdir=scratch / "describe",
            progress=progress,
            cancel=cancel,
        )
        for path in request.golden:
            writer.add_golden(path.name, path.read_bytes())
        lock.still_held()
        recovery_point = (
            created_at
            if request.data_dir is None
            else min(packed.newest_change or created_at, created_at)
        )
        manifest = writer.finish(
            kind="physical-incremental" if parent else "physical",
            parent=parent,
            created_at=created_at,
            recovery_point=recovery_point,
            source={
                **source,
                "url": without_password(request.url) if request.url else folder.as_uri(),
                **({"data_dir": str(folder)} if request.data_dir is not None else {}),
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
            point_in_time=_point_in_time(request, written_by, packed.newest_change, unchecked),
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


def _check(request: PhysicalRequest, adapter: EngineAdapter, method: PhysicalMethod) -> None:
    if method.from_server and request.url is None:
        raise UsageError(
            f"a {adapter.title} physical backup is taken from the running server",
            f"give its --url (and --token); {method.method} copies it",
        )
    if method.from_server and request.data_dir is not None:
        raise UsageError(
            f"a {adapter.title} physical backup is taken from the running server, not a folder",
            "drop --data-dir",
        )
    if not method.from_server and request.data_dir is None:
        raise UsageError(
            f"a {adapter.title} physical backup copies a stopped server's data folder",
            "give --data-dir (the folder, or a frozen copy of it)",
        )
    if request.incremental and not method.incremental:
        raise UsageError(
            f"{adapter.title} has no incremental physical backups",
            "drop --incremental: each physical snapshot copies the whole folder",
        )


def _parent_chain(request: PhysicalRequest, view: CatalogView) -> list[Manifest]:
    """The chain of the newest intact physical snapshot of the same server (or the one
    asked for): what an incremental is taken on."""

    def same_source(manifest: Manifest) -> bool:
        return (
            manifest.is_physical
            and manifest.source.get("engine") == request.engine
            and manifest.source.get("url") == without_password(request.url or "")
        )

    selection = select_parent(
        request.store,
        view,
        request.parent_id,
        same_source,
        signed=request.key is not None,
        what="physical snapshot",
    )
    if not same_source(selection.manifest):
        raise DrconsoleError(
            f"snapshot {selection.manifest.id} is not a physical snapshot of {request.url}",
            "name a physical snapshot of the same server with --parent",
        )
    return selection.chain


def without_password(url: str) -> str:
    """The url as a manifest may keep it: a password written into it is left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


def _point_in_time(
    request: PhysicalRequest, written_by: dict[str, Any], newest: Any, unchecked: int
) -> dict[str, Any]:
    if request.data_dir is not None:
        return {
            "kind": "files",
            "newest_change": format_utc(newest) if newest else None,
            "unchecked_processes": unchecked,
        }
    return {
        "kind": "base-backup",
        "engine_instant": {
            key: value
            for key in ("start_wal_location", "start_time")
            if (value := written_by.get(key))
        },
    }


def _describe(
    request: PhysicalRequest,
    adapter: EngineAdapter,
    writer: SnapshotWriter,
    parts: list[list[tuple[str, Any]]],
    *,
    parent: Manifest | None,
    workdir: Path,
    progress: SnapshotProgress | None,
    cancel: threading.Event | None,
) -> dict[str, Any]:
    """Unpack the chain's parts as written, start a server on them and read its
    collections into the snapshot; returns the server's description (the source)."""
    from drconsole.sandbox import start_server

    method = adapter.physical()
    data = method.data_folder(workdir)
    assemble_chain(
        request.store, method, parts, workdir / "unpacked", data, workers=request.workers
    )
    method.adopt(data, workdir, None)
    server = start_server(lambda: method.server(workdir))
    try:
        token = resolve(server.token_reference) if server.token_reference else None
        engine = adapter.open(server.url, request.namespace, token)
        try:
            info = engine.info()
            missing = engine.missing_namespace()
            if missing is not None:
                raise DrconsoleError(f"the backup: {missing}", "check the namespace options")
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
                previous = parent.collection(name) if parent else None
                snapshot_collection(
                    inner,
                    writer,
                    require_collection(engine, info, name),
                    parent=parent if previous else None,
                    previous=previous,
                    window=ScanWindow(),
                    progress=progress,
                    cancel=cancel,
                )
        finally:
            engine.close()
    finally:
        server.discard()
    return info.to_json()
