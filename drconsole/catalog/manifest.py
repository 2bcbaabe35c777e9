"""``manifest.json`` of ``drconsole-snapshot/2`` (and of ``/1``, still read): the model, a
strict parser and the serializer. The two formats share the manifest; they differ in
their parts (format 1: JSON Lines records beside ``.npy`` vectors; format 2: Parquet
parts holding both, ``catalog.columnar``). The format is a contract other tools write
and read, so the parser checks every field and refuses anything that could make a
reader leave the snapshot folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from drconsole.catalog.layout import KNOWN_FILES
from drconsole.errors import IntegrityError
from drconsole.model.schema import CollectionSchema, SchemaError, legacy_schema, parse_schema
from drconsole.sizes import format_bytes
from drconsole.timefmt import format_duration, format_utc, parse_utc
from drconsole.wording import plural

FORMAT_1 = "drconsole-snapshot/1"
FORMAT_2 = "drconsole-snapshot/2"
FORMATS = (FORMAT_1, FORMAT_2)
FORMAT = FORMAT_2
"""What this drconsole writes."""
KINDS = ("full", "incremental", "physical", "physical-incremental")
BASE_KINDS = ("full", "physical")
"""Kinds that start a chain (no parent)."""
PHYSICAL_KINDS = ("physical", "physical-incremental")
"""Kinds that hold a database's files (``catalog.physical``) beside their logical copy."""
KIND_LETTERS = {"full": "F", "incremental": "I", "physical": "P", "physical-incremental": "P+"}
"""How listings mark each kind."""
FILE_KINDS = ("records", "vectors", "deletes", "state")
COUNT_KEYS = ("records", "deletes", "total_after_apply")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_NOT_A_STEP = frozenset(("..", ".", ""))
_ENTRY_KINDS = (*FILE_KINDS, "golden", "physical")


class ManifestError(IntegrityError):
    """A manifest that is not a valid ``drconsole-snapshot`` manifest."""


@dataclass(frozen=True)
class FileEntry:
    """One stored file: path relative to the snapshot folder, kind, rows, size, digest."""

    path: str
    kind: str
    rows: int
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class CollectionEntry:
    name: str
    schema: CollectionSchema
    embedding: dict[str, Any]
    tenants: list[dict[str, Any]]
    """Tenants as the snapshot counted them: name, status, records."""
    counts: dict[str, int]
    files: list[FileEntry]
    not_restorable: list[str] = field(default_factory=list)
    scan: dict[str, Any] = field(default_factory=dict)

    def files_of(self, kind: str) -> list[FileEntry]:
        return [entry for entry in self.files if entry.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "schema": self.schema.to_json(),
            "embedding": self.embedding,
            "tenants": self.tenants,
            "counts": self.counts,
            "files": [entry.to_json() for entry in self.files],
            "not_restorable": self.not_restorable,
            "scan": self.scan,
        }


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest; ``sha256`` is the digest of its bytes as stored."""

    id: str
    kind: str
    parent: str | None
    parent_manifest_sha256: str | None
    created_at: datetime
    completed_at: datetime
    recovery_point: datetime
    source: dict[str, Any]
    ingest_checkpoint: dict[str, str]
    permissions: dict[str, Any]
    collections: list[CollectionEntry]
    golden: list[FileEntry]
    tool: dict[str, Any]
    sha256: str = ""
    point_in_time: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    parent_format: str | None = None
    """The format of the parent, as its writer saw it (format 2 manifests record it, so a
    chain that mixes formats says so by itself)."""
    physical: dict[str, Any] = field(default_factory=dict)
    """Of a physical snapshot: how its files were taken (``method``), by which engine and
    version, how many files and bytes (everything but the parts)."""
    physical_parts: list[FileEntry] = field(default_factory=list)
    """Of a physical snapshot: the packed parts of the database's files."""

    @property
    def is_physical(self) -> bool:
        return self.kind in PHYSICAL_KINDS

    @property
    def version(self) -> int:
        """1 or 2: how its parts are encoded."""
        return FORMATS.index(self.format) + 1

    def collection(self, name: str) -> CollectionEntry | None:
        return next((entry for entry in self.collections if entry.name == name), None)

    @property
    def all_files(self) -> list[FileEntry]:
        return (
            [entry for collection in self.collections for entry in collection.files]
            + self.golden
            + self.physical_parts
        )

    @property
    def size(self) -> int:
        return sum(entry.bytes for entry in self.all_files)

    def physical_note(self) -> str | None:
        """``data-folder of chroma: 11 files (8.0 MiB) in 1 part, read by chromadb 1.5.9``
        for a physical snapshot; None for a logical one."""
        if not self.is_physical:
            return None
        section = self.physical
        return (
            f"{section.get('method')} of {section.get('engine')}: "
            f"{plural(int(section.get('files') or 0), 'file')} "
            f"({format_bytes(int(section.get('bytes') or 0))}) in "
            f"{plural(len(self.physical_parts), 'part')}"
            + (f", read by {section['read_by']}" if section.get("read_by") else "")
        )

    def point_in_time_note(self) -> str:
        """What the recovery point means, for people: ``fuzzy over 42s, 600 changes seen``,
        ``quiesced over 12s, no change seen`` or ``consistent: every collection read at
        one instant (wal lsn 0/1A2B3C0, ...)``."""
        window = self.point_in_time
        if not window.get("kind"):
            return "unknown (taken before drconsole recorded scan windows)"
        span = ""
        if window.get("scan_started_at") and window.get("scan_ended_at"):
            seconds = (
                parse_utc(window["scan_ended_at"]) - parse_utc(window["scan_started_at"])
            ).total_seconds()
            span = f" over {format_duration(seconds)}"
        changes = int(window.get("changes_seen") or 0)
        seen = "no change seen" if not changes else f"{changes} changes seen"
        if window["kind"] == "consistent":
            named = ", ".join(
                f"{key.replace('_', ' ')} {value}"
                for key, value in (window.get("engine_instant") or {}).items()
            )
            return (
                f"consistent: every collection read at one instant{f' ({named})' if named else ''}"
            )
        if window["kind"] == "base-backup":
            named = ", ".join(
                f"{key.replace('_', ' ')} {value}"
                for key, value in (window.get("engine_instant") or {}).items()
            )
            return (
                "consistent: a base backup, the state at its end; the recovery point is its "
                f"start, before which everything committed is in{f' ({named})' if named else ''}"
            )
        if window["kind"] == "files":
            unchecked = int(window.get("unchecked_processes") or 0)
            unknown = plural(unchecked, "process", "processes")
            return "files as of their newest change; no process used the folder while it was " + (
                f"copied ({unknown} could not be checked)" if unchecked else "copied"
            )
        if window["kind"] == "quiesced":
            return f"quiesced{span}, {seen}"
        if window.get("quiesced"):
            return f"fuzzy{span}: ingestion was paused by a hook, yet {seen}"
        return f"fuzzy{span}, {seen}"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "id": self.id,
            "kind": self.kind,
            "parent": self.parent,
            "parent_manifest_sha256": self.parent_manifest_sha256,
            "created_at": format_utc(self.created_at),
            "completed_at": format_utc(self.completed_at),
            "recovery_point": format_utc(self.recovery_point),
            "source": self.source,
            "ingest_checkpoint": self.ingest_checkpoint,
            "permissions": self.permissions,
            "collections": [collection.to_json() for collection in self.collections],
            "golden": {"files": [entry.to_json() for entry in self.golden]},
            "tool": self.tool,
            "point_in_time": self.point_in_time,
            **({"parent_format": self.parent_format} if self.parent_format else {}),
            **(
                {
                    "physical": {
                        **self.physical,
                        "parts": [entry.to_json() for entry in self.physical_parts],
                    }
                }
                if self.is_physical
                else {}
            ),
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False).encode() + b"\n"


def check_relative_path(path: Any, where: str) -> str:
    """A file path inside the snapshot folder; anything else is refused as tampering."""
    if not isinstance(path, str) or not path:
        raise ManifestError(f"{where}: path must be a non-empty string")
    if path.startswith("/") or _DRIVE.match(path):
        raise ManifestError(f"{where}: absolute path {path!r} refused as tampering")
    if "\\" in path:
        raise ManifestError(f"{where}: path {path!r} with a backslash refused as tampering")
    if _CONTROL.search(path):
        raise ManifestError(f"{where}: path with control characters refused as tampering")
    if not _NOT_A_STEP.isdisjoint(path.split("/")):
        raise ManifestError(
            f"{where}: path {path!r} leaves or escapes the snapshot folder; refused as tampering"
        )
    return path


def parse_manifest(data: bytes, sha256: str, folder_id: str | None = None) -> Manifest:
    """Parse and check manifest bytes; raises ManifestError naming the problem."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"manifest.json is not valid JSON ({error})") from None
    except RecursionError:
        raise ManifestError("manifest.json nests too deeply") from None
    reader = _Fields(raw, "manifest")
    version = reader.text("format")
    if version not in FORMATS:
        raise ManifestError(f"manifest format is not one of {', '.join(FORMATS)}")
    snapshot_id = reader.text("id")
    if not _SNAPSHOT_ID.match(snapshot_id):
        raise ManifestError(f"manifest id {snapshot_id!r} is not a valid snapshot id")
    if folder_id is not None and snapshot_id != folder_id:
        raise ManifestError(f"manifest id {snapshot_id!r} differs from its folder {folder_id!r}")
    kind = reader.choice("kind", KINDS)
    parent = reader.optional_text("parent")
    parent_digest = reader.optional_text("parent_manifest_sha256")
    if kind in BASE_KINDS and (parent is not None or parent_digest is not None):
        raise ManifestError(f"a {kind} snapshot must have parent null")
    if kind not in BASE_KINDS:
        if parent is None or not _SNAPSHOT_ID.match(parent):
            raise ManifestError("an incremental snapshot must name its parent")
        if parent_digest is None or not _SHA256.match(parent_digest):
            raise ManifestError("an incremental snapshot must give parent_manifest_sha256 (64 hex)")
    golden_raw = reader.optional_mapping("golden")
    golden = (
        [
            _file(item, f"golden.files[{n}]")
            for n, item in enumerate(_Fields(golden_raw, "golden").items("files"))
        ]
        if golden_raw
        else []
    )
    collections = [
        _collection(item, n, kind, version) for n, item in enumerate(reader.items("collections"))
    ]
    names = [collection.name for collection in collections]
    if len(set(names)) != len(names):
        raise ManifestError("a collection is listed twice")
    physical, physical_parts = _physical(reader, kind)
    paths = [entry.path for collection in collections for entry in collection.files] + [
        g.path for g in [*golden, *physical_parts]
    ]
    if len(set(paths)) != len(paths):
        raise ManifestError("a file is listed twice")
    if any(path in KNOWN_FILES for path in paths):
        raise ManifestError("a file entry names one of the snapshot's own files")
    created, completed = reader.time("created_at"), reader.time("completed_at")
    recovery_point = reader.time("recovery_point")
    if completed < created or completed < recovery_point:
        raise ManifestError("completed_at is before created_at or the recovery point")
    return Manifest(
        id=snapshot_id,
        kind=kind,
        parent=parent,
        parent_manifest_sha256=parent_digest,
        created_at=created,
        completed_at=completed,
        recovery_point=recovery_point,
        source=reader.mapping("source"),
        ingest_checkpoint={
            str(k): str(v) for k, v in reader.optional_mapping("ingest_checkpoint").items()
        },
        permissions=reader.optional_mapping("permissions"),
        collections=collections,
        golden=golden,
        tool=reader.optional_mapping("tool"),
        sha256=sha256,
        point_in_time=reader.optional_mapping("point_in_time"),
        format=version,
        parent_format=_parent_format(reader, parent),
        physical=physical,
        physical_parts=physical_parts,
    )


def _physical(reader: _Fields, kind: str) -> tuple[dict[str, Any], list[FileEntry]]:
    """A physical snapshot's description and parts; other kinds must have none."""
    if kind not in PHYSICAL_KINDS:
        if "physical" in reader.raw:
            raise ManifestError(f"a {kind} snapshot must not have a physical section")
        return {}, []
    section = _Fields(reader.mapping("physical"), "physical")
    section.text("method")
    section.text("engine")
    parts = [_file(item, f"physical.parts[{n}]") for n, item in enumerate(section.items("parts"))]
    if not parts or any(entry.kind != "physical" for entry in parts):
        raise ManifestError("physical.parts must list the packed parts (kind physical)")
    return {key: value for key, value in section.raw.items() if key != "parts"}, parts


def _parent_format(reader: _Fields, parent: str | None) -> str | None:
    value = reader.optional_text("parent_format")
    if value is not None and (parent is None or value not in FORMATS):
        raise ManifestError(f"parent_format must be one of {', '.join(FORMATS)}, with a parent")
    return value


def _collection(raw: Any, number: int, kind: str, version: str) -> CollectionEntry:
    where = f"collections[{number}]"
    reader = _Fields(raw, where)
    name = reader.text("name")
    check_relative_path(name, f"{where}.name")
    if "/" in name:
        raise ManifestError(f"{where}.name {name!r} must not contain '/'")
    schema = _schema(reader.mapping("schema"), f"{where}.schema", reader)
    counts_reader = _Fields(reader.mapping("counts"), f"{where}.counts")
    counts = {
        key: counts_reader.integer(key) for key in ("records", "deletes", "total_after_apply")
    }
    files = [_file(item, f"{where}.files[{n}]") for n, item in enumerate(reader.items("files"))]
    _check_counts(
        where, kind=kind, version=version, dimension=schema.dimension, counts=counts, files=files
    )
    return CollectionEntry(
        name=name,
        schema=schema,
        embedding=reader.optional_mapping("embedding"),
        tenants=[_Fields(t, f"{where}.tenants").raw for t in reader.optional_items("tenants")],
        counts=counts,
        files=files,
        not_restorable=[str(item) for item in reader.optional_items("not_restorable")],
        scan=reader.optional_mapping("scan"),
    )


def _schema(raw: dict[str, Any], where: str, collection: _Fields) -> CollectionSchema:
    """The neutral schema (``vectors``...), or the one-vector schema manifests wrote
    before it, with their collection-level ``aliases``. Parts hold one dense vector per
    record (and the others by name), so a schema without one is refused here, not at
    restore."""
    try:
        if "vectors" in raw:
            schema = parse_schema(raw, where)
        else:
            aliases = tuple(str(alias) for alias in collection.optional_items("aliases"))
            schema = replace(legacy_schema(raw, where), aliases=aliases)
    except SchemaError as error:
        raise ManifestError(str(error)) from None
    if not schema.vectors:
        raise ManifestError(f"{where}: a collection needs a dense vector (parts keep one)")
    return schema


def _check_counts(
    where: str,
    *,
    kind: str,
    version: str,
    dimension: int,
    counts: dict[str, int],
    files: list[FileEntry],
) -> None:
    """Counts that cannot be true of the files listed are refused: a manifest that lies
    about its own data is not one to restore from."""
    if any(value < 0 for value in counts.values()):
        raise ManifestError(f"{where}.counts must not be negative")
    rows = {
        file_kind: sum(entry.rows for entry in files if entry.kind == file_kind)
        for file_kind in ("records", "vectors", "deletes")
    }
    vector_rows = counts["records"] if version == FORMAT_1 else 0
    if rows["records"] != counts["records"] or rows["vectors"] != vector_rows:
        raise ManifestError(
            f"{where}.counts.records is {counts['records']}, but its records files hold "
            f"{rows['records']} rows and its vectors files {rows['vectors']}"
            + ("" if version == FORMAT_1 else f" (a {version} snapshot keeps vectors in records)")
        )
    if rows["deletes"] != counts["deletes"]:
        raise ManifestError(
            f"{where}.counts.deletes is {counts['deletes']}, its deletes files hold "
            f"{rows['deletes']}"
        )
    if kind in BASE_KINDS and counts["total_after_apply"] != counts["records"]:
        raise ManifestError(
            f"{where}: a {kind} snapshot's total_after_apply must equal its records"
        )
    if counts["records"] and not dimension:
        raise ManifestError(f"{where}.schema.dimension is 0 but the collection has records")


def _file(raw: Any, where: str) -> FileEntry:
    reader = _Fields(raw, where)
    digest = reader.text("sha256")
    if not _SHA256.match(digest):
        raise ManifestError(f"{where}.sha256 must be 64 lowercase hex digits")
    entry = FileEntry(
        path=check_relative_path(reader.text("path"), where),
        kind=reader.choice("kind", _ENTRY_KINDS),
        rows=reader.integer("rows") if "rows" in reader.raw else 0,
        bytes=reader.integer("bytes"),
        sha256=digest,
    )
    if entry.rows < 0 or entry.bytes < 0:
        raise ManifestError(f"{where}: rows and bytes must not be negative")
    return entry


class _Fields:
    """Typed access to a JSON object that raises ManifestError naming the field."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, dict):
            raise ManifestError(f"{where} must be a JSON object")
        self.raw = raw
        self.where = where

    def _get(self, key: str) -> Any:
        if key not in self.raw:
            raise ManifestError(f"{self.where}.{key} is missing")
        return self.raw[key]

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value:
            raise ManifestError(f"{self.where}.{key} must be a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ManifestError(f"{self.where}.{key} must be a string or null")
        return value

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ManifestError(f"{self.where}.{key} must be a whole number")
        return value

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self._get(key)
        if value not in options:
            raise ManifestError(f"{self.where}.{key} must be one of {', '.join(options)}")
        return value

    def time(self, key: str) -> datetime:
        value = self.text(key)
        try:
            return parse_utc(value)
        except ValueError as error:
            raise ManifestError(f"{self.where}.{key}: {error}") from None

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._get(key)
        if not isinstance(value, dict):
            raise ManifestError(f"{self.where}.{key} must be a JSON object")
        return value

    def optional_mapping(self, key: str) -> dict[str, Any]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ManifestError(f"{self.where}.{key} must be a JSON object")
        return value

    def items(self, key: str) -> list[Any]:
        value = self._get(key)
        if not isinstance(value, list):
            raise ManifestError(f"{self.where}.{key} must be a list")
        return value

    def optional_items(self, key: str) -> list[Any]:
        value = self.raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ManifestError(f"{self.where}.{key} must be a list")
        return value
