"""Taking a snapshot of a live database into a catalog: full or incremental.

A full snapshot streams every record of each collection into parts, with the schema,
counts, tenants, embedding provenance, the ingest checkpoint and the recovery point (the
time the scan started). An incremental diffs each record's content hash against the
parent's state file and writes only new or changed records and the ids deleted since;
it never reads the parent's data. Memory stays bounded by one part plus the id index.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np

from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.catalog import CatalogView, index_new_snapshot, load_catalog
from drconsole.catalog.lock import CatalogLock, lock_catalog
from drconsole.catalog.manifest import CollectionEntry, Manifest
from drconsole.catalog.plan import id_hashes
from drconsole.catalog.reader import SnapshotReader
from drconsole.catalog.select import Selection, select_recovery_point
from drconsole.catalog.state import content_hashes
from drconsole.catalog.store import ObjectStore
from drconsole.catalog.verify import Depth
from drconsole.catalog.writer import PART_ROWS, CollectionWriter, SnapshotWriter
from drconsole.engines.adapter import Capability
from drconsole.engines.base import CollectionInfo, Engine, ScanWindow
from drconsole.engines.registry import engine_adapter
from drconsole.errors import DrconsoleError, IntegrityError, StoreError
from drconsole.hooks import run_hook
from drconsole.model.schema import (
    CollectionSchema,
    FieldSpec,
    FieldType,
    ScalarType,
    Tenancy,
    TenancyMode,
)
from drconsole.records import RecordBatch
from drconsole.timefmt import compact_utc_ms, format_utc, utc_now

PAGE_SIZE = 1000
EMBEDDING_KEYS = ("model", "version", "dimension", "normalized", "preprocessing", "chunking")
SnapshotProgress = Callable[[str, int, int], None]


@dataclass
class SnapshotRequest:
    """What to snapshot, where to, and what to record about it. ``quiesce`` and
    ``unquiesce`` are argv lists of hooks that pause and resume ingestion around the scan."""

    engine: Engine
    store: ObjectStore
    collections: list[str]
    name: str
    incremental: bool = False
    parent_id: str | None = None
    ingest_checkpoint: dict[str, str] = field(default_factory=dict)
    embedding: dict[str, Any] = field(default_factory=dict)
    tenant_field: str | None = None
    acl_field: str | None = None
    golden: list[Path] = field(default_factory=list)
    part_rows: int = PART_ROWS
    page_size: int = PAGE_SIZE
    quiesce: list[str] | None = None
    unquiesce: list[str] | None = None
    key: CatalogKey | None = None


def create_snapshot(
    request: SnapshotRequest,
    progress: SnapshotProgress | None = None,
    cancel: threading.Event | None = None,
) -> Manifest:
    """Write one snapshot and return its manifest (written last), holding the catalog
    lock shared so that no prune runs meanwhile."""
    with lock_catalog(request.store, "snapshot create", exclusive=False) as lock:
        return _create(request, lock, progress, cancel)


def _create(
    request: SnapshotRequest,
    lock: CatalogLock,
    progress: SnapshotProgress | None,
    cancel: threading.Event | None,
) -> Manifest:
    engine = request.engine
    info = engine.info()
    missing = engine.missing_namespace()
    if missing is not None:
        raise DrconsoleError(missing, "check --tenant and --database against the database")
    for name in request.collections:  # before anything is written
        require_collection(engine, info, name)
    consistent = engine_adapter(info.engine).can(Capability.CONSISTENT_READ)
    view = load_catalog(request.store, request.key, use_index=True)  # and keeps it current
    parent = _parent(request, view, info.to_json()) if request.incremental else None
    snapshot_id = new_snapshot_id(request.name, "I" if parent else "F")
    writer = SnapshotWriter(
        request.store, snapshot_id, part_rows=request.part_rows, key=request.key
    )
    windows: list[ScanWindow] = []
    with _Quiesced(request) as quiesced, _reading(engine, consistent) as instant:
        recovery_point = instant.get("at") or utc_now()
        collections = [require_collection(engine, info, name) for name in request.collections]
        for collection in collections:
            previous = parent.collection(collection.name) if parent else None
            window = ScanWindow()
            snapshot_collection(
                request,
                writer,
                collection,
                parent=parent if previous else None,
                previous=previous,
                window=window,
                progress=progress,
                cancel=cancel,
            )
            windows.append(window)
    for path in request.golden:
        writer.add_golden(path.name, path.read_bytes())
    permissions = {
        key: value
        for key, value in (("tenant_field", request.tenant_field), ("acl_field", request.acl_field))
        if value
    }
    lock.still_held()
    manifest = writer.finish(
        kind="incremental" if parent else "full",
        parent=parent,
        created_at=recovery_point,
        recovery_point=recovery_point,
        source=info.to_json(),
        ingest_checkpoint=request.ingest_checkpoint,
        permissions=permissions,
        point_in_time=point_in_time(windows, quiesced=request.quiesce is not None, instant=instant),
    )
    index_written(request.store, view, writer)
    if quiesced.resume_error is not None:
        raise DrconsoleError(
            f"snapshot {manifest.id} was written, but {quiesced.resume_error.message}",
            "ingestion may still be paused: resume it by hand",
        )
    return manifest


def index_written(store: ObjectStore, view: CatalogView, writer: SnapshotWriter) -> None:
    """Add the snapshot to the catalog index. The index only speeds up listings: when
    it cannot be written, listings read this snapshot's folder, and the next snapshot
    taken folds it in (a writer that finds the index incomplete rewrites it whole)."""
    if writer.written is None:
        return
    with contextlib.suppress(StoreError):
        index_new_snapshot(store, view, writer.written)


def new_snapshot_id(name: str, kind_letter: str) -> str:
    """``20261122T101500123Z-NAME-F-3f9a1c``: the time to the millisecond and a random
    suffix, so two snapshots taken at once never share an id (and the manifest is written
    create-only besides, so a collision would be an error, never an overwrite)."""
    return f"{compact_utc_ms(utc_now())}-{name}-{kind_letter}-{secrets.token_hex(3)}"


def point_in_time(
    windows: list[ScanWindow], *, quiesced: bool, instant: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the snapshot's point in time means: ``consistent`` when the engine read every
    collection at one instant (with the engine's name for it: a transaction snapshot and
    WAL position), ``quiesced`` when a hook paused ingestion and the scan saw no change,
    else ``fuzzy`` over the scan window, with the changes the scan saw."""
    changes = sum(window.changes_seen for window in windows)
    started = [window.started_at for window in windows if window.started_at]
    ended = [window.ended_at for window in windows if window.ended_at]
    kind = "quiesced" if quiesced and not changes else "fuzzy"
    exact = {
        key: value for key, value in (instant or {}).items() if key != "at" and value is not None
    }
    if instant:
        kind = "consistent"
    return {
        **({"engine_instant": exact} if instant else {}),
        "kind": kind,
        "quiesced": quiesced,
        "scan_started_at": format_utc(min(started)) if started else None,
        "scan_ended_at": format_utc(max(ended)) if ended else None,
        "changes_seen": changes,
        "added": sum(window.added for window in windows),
        "deleted": sum(window.deleted for window in windows),
    }


class _Quiesced:
    """Runs the quiesce hook on entry and the unquiesce hook on exit, also when the scan
    fails. A failing quiesce stops the snapshot before any scan; a failing unquiesce
    after a good scan is kept in ``resume_error`` (the snapshot is still written)."""

    def __init__(self, request: SnapshotRequest) -> None:
        self.request = request
        self.resume_error: DrconsoleError | None = None

    def __enter__(self) -> _Quiesced:
        if self.request.quiesce:
            try:
                run_hook(self.request.quiesce, "quiesce")
            except DrconsoleError:
                self._resume()
                raise
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._resume()
        if kind is not None and self.resume_error is not None:
            raise self.resume_error

    def _resume(self) -> None:
        if self.request.unquiesce:
            try:
                run_hook(self.request.unquiesce, "unquiesce")
            except DrconsoleError as error:
                self.resume_error = error


@contextmanager
def _reading(engine: Any, consistent: bool) -> Iterator[dict[str, Any]]:
    """Inside, the engine's reads see one instant when it can read so (its
    ``consistent_read``: the instant as it names it, ``at`` in UTC); else nothing."""
    if not consistent:
        yield {}
        return
    with engine.consistent_read() as instant:
        at = instant.get("at")
        yield {**instant, "at": at.astimezone(UTC) if at is not None else None}


def require_collection(engine: Any, info: Any, name: str) -> CollectionInfo:
    collection = engine.get_collection(name)
    if collection is None:
        raise DrconsoleError(
            f"collection {name} does not exist in {_namespace(info.namespace)} at {info.url}",
            "check --collections against the database",
        )
    return collection


def _namespace(namespace: dict[str, str]) -> str:
    return "/".join(namespace.values()) or "the database"


def _parent(request: SnapshotRequest, view: CatalogView, source: dict[str, Any]) -> Manifest:
    """The newest intact snapshot of the same source (or the one asked for)."""

    def same_source(manifest: Manifest) -> bool:
        theirs = manifest.source
        return (theirs.get("engine"), theirs.get("url"), theirs.get("namespace")) == (
            source["engine"],
            source["url"],
            source["namespace"],
        )

    return select_parent(
        request.store, view, request.parent_id, same_source, signed=request.key is not None
    ).manifest


def select_parent(
    store: ObjectStore,
    view: CatalogView,
    parent_id: str | None,
    where: Callable[[Manifest], bool],
    *,
    signed: bool,
    what: str = "snapshot",
) -> Selection:
    """What an incremental is taken on: the newest intact snapshot ``where`` accepts (or
    the one named), checked at depth sizes."""
    try:
        return select_recovery_point(
            view,
            store,
            Depth.parse("sizes"),
            snapshot_id=parent_id,
            where=where,
            allow_unsigned=not signed,
        )
    except IntegrityError as error:
        raise DrconsoleError(
            f"no intact parent for an incremental {what}: {error.message}",
            f"take a full {what} first (drop --incremental), or name one with --parent",
        ) from None


def snapshot_collection(
    request: SnapshotRequest,
    writer: SnapshotWriter,
    collection: CollectionInfo,
    *,
    parent: Manifest | None,
    previous: CollectionEntry | None,
    window: ScanWindow,
    progress: SnapshotProgress | None,
    cancel: threading.Event | None,
) -> None:
    engine = request.engine
    total = engine.count(collection.name)
    schema = collection.schema
    if (
        previous is not None
        and schema.dimension
        and previous.schema.dimension not in (0, schema.dimension)
    ):
        raise DrconsoleError(
            f"collection {collection.name} changed dimension since the parent snapshot",
            "take a full snapshot (drop --incremental)",
        )
    out = writer.collection(collection.name, schema)
    baseline = _Baseline.load(request.store, parent, previous) if previous is not None else None
    profile = _Profile(request.tenant_field)
    state = _StateWriter(out, request.part_rows)
    done = 0
    for batch in engine.scan(collection.name, request.page_size, window):
        if cancel is not None and cancel.is_set():
            raise DrconsoleError(
                "snapshot cancelled; its folder has no manifest and will show as unfinished"
            )
        keys = id_hashes(batch.ids, batch.tenants)
        contents = content_hashes(batch)
        changed = baseline.changed(keys, contents) if baseline else np.ones(len(batch), dtype=bool)
        if changed.any():
            out.add(batch if changed.all() else batch.take(np.flatnonzero(changed)))
        state.add(batch.ids, batch.tenants, contents)
        profile.add(batch)
        done += len(batch)
        if progress is not None:
            progress(collection.name, done, max(total, done))
    state.close()
    if baseline is not None:
        for ids, tenants in baseline.deleted():
            out.delete(ids, tenants)
    dimension = schema.dimension or profile.dimension
    out.schema = replace(
        schema,
        vectors=(replace(schema.vector, dimension=dimension), *schema.vectors[1:]),
        fields=_fields(schema, profile),
        tenancy=(
            Tenancy(TenancyMode.FIELD, request.tenant_field)
            if request.tenant_field and schema.tenancy.mode == TenancyMode.NONE
            else schema.tenancy
        ),
    )
    out.close(
        total_after_apply=done,
        embedding=_embedding(request.embedding, collection.metadata, dimension, profile),
        tenants=profile.tenants(),
        not_restorable=list(collection.unrestorable),
        scan={
            "started_at": format_utc(window.started_at) if window.started_at else None,
            "ended_at": format_utc(window.ended_at) if window.ended_at else None,
            "listed": window.listed,
            "changes_seen": window.changes_seen,
            "added": window.added,
            "deleted": window.deleted,
        },
    )


class _Baseline:
    """The parent's state of one collection: sorted id keys with their content hashes,
    and which of them the current scan has seen."""

    def __init__(
        self, reader: SnapshotReader, entry: CollectionEntry, keys: np.ndarray, contents: np.ndarray
    ) -> None:
        self.reader = reader
        self.entry = entry
        order = np.argsort(keys)
        self.keys = keys[order]
        self.contents = contents[order]
        self.seen = np.zeros(len(keys), dtype=bool)

    @classmethod
    def load(cls, store: ObjectStore, parent: Manifest | None, entry: CollectionEntry) -> _Baseline:
        assert parent is not None
        if not entry.files_of("state"):
            raise DrconsoleError(
                f"snapshot {parent.id} has no state file for {entry.name}, so it cannot be diffed",
                "take a full snapshot (drop --incremental)",
            )
        reader = SnapshotReader(store, parent)
        keys, contents = [], []
        for ids, tenants, hashes in reader.states(entry):
            keys.append(id_hashes(ids, tenants))
            contents.append(hashes)
        empty = np.zeros(0, dtype=np.uint64)
        return cls(
            reader,
            entry,
            np.concatenate(keys) if keys else empty,
            np.concatenate(contents) if contents else empty,
        )

    def changed(self, keys: np.ndarray, contents: np.ndarray) -> np.ndarray:
        if not len(self.keys):
            return np.ones(len(keys), dtype=bool)
        positions = np.searchsorted(self.keys, keys)
        positions[positions == len(self.keys)] = 0
        known = self.keys[positions] == keys
        self.seen[positions[known]] = True
        return ~known | (self.contents[positions] != contents)

    def deleted(self) -> Iterator[tuple[list[str], list[str | None]]]:
        """Ids of the parent's state that the current scan did not see (re-read, so
        memory holds hashes only)."""
        for ids, tenants, _ in self.reader.states(self.entry):
            keys = id_hashes(ids, tenants)
            positions = np.searchsorted(self.keys, keys)
            gone = [i for i, pos in enumerate(positions) if not self.seen[pos]]
            if gone:
                yield [ids[i] for i in gone], [tenants[i] for i in gone]


class _StateWriter:
    """Writes the collection's full state in parts beside its records."""

    def __init__(self, out: CollectionWriter, part_rows: int) -> None:
        self.out = out
        self.part_rows = part_rows
        self.ids: list[str] = []
        self.tenants: list[str | None] = []
        self.hashes: list[np.ndarray] = []
        self.parts = 0

    def add(self, ids: list[str], tenants: list[str | None], hashes: np.ndarray) -> None:
        self.ids += ids
        self.tenants += tenants
        self.hashes.append(hashes)
        if len(self.ids) >= self.part_rows:
            self._flush()

    def close(self) -> None:
        if self.ids or not self.parts:
            self._flush()

    def _flush(self) -> None:
        hashes = np.concatenate(self.hashes) if self.hashes else np.zeros(0, dtype=np.uint64)
        self.out.add_state(self.ids, self.tenants, hashes)
        self.ids, self.tenants, self.hashes = [], [], []
        self.parts += 1


class _Profile:
    """What a scan learns about a collection: metadata field types, tenant counts,
    whether vectors are unit length. Types are gathered as Python types (cheap) and
    named once at the end."""

    def __init__(self, tenant_field: str | None) -> None:
        self.tenant_field = tenant_field
        self.types: dict[str, set[Any]] = {}
        self.tenant_counts: dict[str, int] = {}
        self.dimension = 0
        self.normalized = True
        self.rows = 0

    def add(self, batch: RecordBatch) -> None:
        self.rows += len(batch)
        if len(batch):
            self.dimension = batch.dimension
            norms = np.linalg.norm(batch.vectors, axis=1)
            self.normalized = self.normalized and bool(np.all(np.abs(norms - 1.0) < 1e-3))
        types = self.types
        for metadata in batch.metadatas:
            if not metadata:
                continue
            for key, value in metadata.items():
                kind = type(value)
                if kind is list:
                    kind = (list, type(value[0]) if value else str)
                kinds = types.get(key)
                if kinds is None:
                    types[key] = {kind}
                else:
                    kinds.add(kind)
        if self.tenant_field:
            counts = self.tenant_counts
            for metadata in batch.metadatas:
                tenant = (metadata or {}).get(self.tenant_field)
                label = str(tenant) if tenant is not None else "(none)"
                counts[label] = counts.get(label, 0) + 1

    def fields(self) -> tuple[FieldSpec, ...]:
        """The metadata keys seen, typed (JSON where values of several types were seen)."""
        named = {key: {_type_name(kind) for kind in kinds} for key, kinds in self.types.items()}
        return tuple(
            FieldSpec(
                key,
                FieldType.parse(names.pop()) if len(names) == 1 else FieldType(ScalarType.JSON),
                is_tenant=key == self.tenant_field,
            )
            for key, names in sorted(named.items())
        )

    def tenants(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "status": "active", "records": count}
            for name, count in sorted(self.tenant_counts.items())
        ]


_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "string"}


def _type_name(kind: Any) -> str:
    if isinstance(kind, tuple):
        return f"{_TYPE_NAMES.get(kind[1], 'string')}[]"
    return _TYPE_NAMES.get(kind, "string")


def _fields(schema: CollectionSchema, profile: _Profile) -> tuple[FieldSpec, ...]:
    """The fields the engine declares, then those only the scan saw (typed by it)."""
    declared = {item.name for item in schema.fields}
    return schema.fields + tuple(item for item in profile.fields() if item.name not in declared)


def _embedding(
    flags: dict[str, Any], metadata: dict[str, Any], dimension: int, profile: _Profile
) -> dict[str, Any]:
    """Embedding provenance: the flags, else ``embedding_*`` keys of the collection's
    metadata; dimension and unit length as observed."""
    found = {
        key: metadata[f"embedding_{key}"]
        for key in EMBEDDING_KEYS
        if f"embedding_{key}" in metadata
    }
    found.update({key: value for key, value in flags.items() if value is not None})
    found.setdefault("dimension", dimension)
    if profile.rows:
        found["normalized"] = profile.normalized
    return found
