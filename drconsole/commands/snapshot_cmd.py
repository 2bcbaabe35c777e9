"""``drconsole snapshot create``: back up collections of a live database into a catalog."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from drconsole.actions.physical_snapshot import PhysicalRequest, create_physical_snapshot
from drconsole.actions.snapshot import SnapshotProgress, SnapshotRequest, create_snapshot
from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.open import open_store
from drconsole.catalog.s3 import S3Store
from drconsole.catalog.store import ObjectStore
from drconsole.commands.output import print_json, stderr, stdout
from drconsole.commands.target_args import add_target_arguments, snapshot_name, target_from_args
from drconsole.engines import open_engine
from drconsole.engines.registry import engine_adapter
from drconsole.errors import UsageError
from drconsole.golden import load_golden
from drconsole.hooks import hook_argv
from drconsole.secrets import resolve
from drconsole.sizes import format_bytes
from drconsole.timefmt import format_utc
from drconsole.wording import plural


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    snapshot = subparsers.add_parser("snapshot", help="take snapshots of a live database")
    commands = snapshot.add_subparsers(dest="snapshot_command", required=True)
    create = commands.add_parser("create", help="a full or incremental snapshot into a catalog")
    add_target_arguments(create, url_required=False)
    create.add_argument(
        "--collections",
        help="comma-separated collection names (with --physical: the ones its logical "
        "description covers, default all of the namespace)",
    )
    create.add_argument(
        "--physical",
        action="store_true",
        help="back up the database's files instead of reading its records: a stopped "
        "server's --data-dir (Chroma), or the running server's own base backup (PostgreSQL: "
        "pg_basebackup; with --incremental, only what changed since the newest one)",
    )
    create.add_argument(
        "--scratch",
        type=Path,
        metavar="DIR",
        help="with --physical: where the backup is unpacked and read back (default: the "
        "system's temporary folder)",
    )
    create.add_argument("--catalog", required=True, help="s3://BUCKET/PREFIX or a folder")
    create.add_argument("--endpoint", help="S3-compatible endpoint URL")
    create.add_argument("--region", help="S3 region")
    create.add_argument("--credentials", metavar="REF", help="S3 credentials reference")
    create.add_argument(
        "--catalog-key",
        metavar="REF",
        help="the key that signs the manifest (keyring:, env: or file: reference; a "
        "keyring or file key is created on first use); without it the snapshot is unsigned",
    )
    create.add_argument(
        "--incremental", action="store_true", help="only what changed since the parent"
    )
    create.add_argument(
        "--parent", metavar="ID", help="the parent of an incremental (default: newest intact)"
    )
    create.add_argument("--name", help="name in the snapshot id (default: the database name)")
    create.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="ingest checkpoint to record, e.g. kafka:kb-updates='offset 88123'",
    )
    create.add_argument("--embedding-model", help="embedding model name to record")
    create.add_argument("--embedding-version", help="embedding model version to record")
    create.add_argument(
        "--tenant-field", help="metadata field holding the tenant (counts per tenant)"
    )
    create.add_argument("--acl-field", help="metadata field holding ACL groups")
    create.add_argument(
        "--golden",
        type=Path,
        metavar="FILE",
        help="a golden set to keep in the snapshot (golden/, checksummed)",
    )
    create.add_argument(
        "--object-lock-mode",
        choices=("governance", "compliance"),
        help="write the snapshot under S3 Object Lock (the bucket must have it enabled)",
    )
    create.add_argument(
        "--object-lock-days",
        type=float,
        metavar="DAYS",
        help="how long the Object Lock keeps the snapshot from deletion",
    )
    create.add_argument(
        "--quiesce",
        metavar="CMD",
        help="a command that pauses ingestion before the scan (run without a shell); "
        "with it the snapshot is exact when the scan sees no change",
    )
    create.add_argument(
        "--unquiesce",
        metavar="CMD",
        help="a command that resumes ingestion after the scan (run also when it fails)",
    )
    create.add_argument(
        "--json", action="store_true", help="print the manifest summary as JSON, no progress"
    )
    create.set_defaults(handler=create_command)


def create_command(args: argparse.Namespace) -> int:
    checkpoint = {}
    for item in args.checkpoint:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise UsageError(f"--checkpoint {item!r} is not KEY=VALUE")
        checkpoint[key] = value
    collections = [name.strip() for name in (args.collections or "").split(",") if name.strip()]
    if (args.object_lock_mode is None) != (args.object_lock_days is None):
        raise UsageError("--object-lock-mode and --object-lock-days go together")
    if args.object_lock_days is not None and args.object_lock_days <= 0:
        raise UsageError("--object-lock-days must be more than 0")
    if args.physical:
        return report(args, _physical(args, checkpoint, collections))
    if getattr(args, "data_dir", None) or args.scratch:
        raise UsageError("--data-dir and --scratch go with --physical")
    if not collections:
        raise UsageError("--collections names no collection")
    if not args.url:
        raise UsageError("--url is required", "give the database's url")
    target = target_from_args(args)
    engine = open_engine(target)
    store = _catalog_store(args)
    request = SnapshotRequest(
        engine=engine,
        store=store,
        collections=collections,
        name=args.name or snapshot_name(target),
        incremental=args.incremental or bool(args.parent),
        parent_id=args.parent,
        **_recorded(args, checkpoint),
        quiesce=hook_argv(args.quiesce, "--quiesce") if args.quiesce else None,
        unquiesce=hook_argv(args.unquiesce, "--unquiesce") if args.unquiesce else None,
    )
    try:
        if args.json or not stderr.is_terminal:
            manifest = create_snapshot(request)
        else:
            manifest = with_progress(lambda progress: create_snapshot(request, progress))
    finally:
        engine.close()
    return report(args, (manifest, store))


def _physical(
    args: argparse.Namespace, checkpoint: dict[str, str], collections: list[str]
) -> tuple[Manifest, ObjectStore]:
    """``--physical``: the database's files packed, described from a server started on them
    (a stopped server's folder with --data-dir, or the running server's own backup)."""
    if args.quiesce or args.unquiesce:
        raise UsageError(
            "--quiesce and --unquiesce do not go with --physical",
            "a physical backup copies a stopped server's folder, or is the server's own",
        )
    target = target_from_args(args)
    adapter = engine_adapter(target["engine"])
    data_dir = Path(target["data_dir"]) if target.get("data_dir") else None
    if data_dir is not None and not data_dir.is_dir():
        raise UsageError(f"--data-dir {data_dir} is not a folder")
    token = resolve(args.token) if args.token else None
    store = _catalog_store(args)
    request = PhysicalRequest(
        engine=adapter.name,
        store=store,
        name=args.name or snapshot_name(target),
        data_dir=data_dir,
        url=args.url,
        token=token,
        incremental=args.incremental or bool(args.parent),
        parent_id=args.parent,
        namespace={
            option.name: target.get(option.name) for option in adapter.options if option.namespace
        },
        collections=collections,
        **_recorded(args, checkpoint),
        scratch=args.scratch,
    )
    if args.json or not stderr.is_terminal:
        return create_physical_snapshot(request), store
    return with_progress(lambda progress: create_physical_snapshot(request, progress)), store


def _catalog_store(args: argparse.Namespace) -> ObjectStore:
    store = open_store(
        args.catalog,
        endpoint=args.endpoint,
        region=args.region,
        credentials=args.credentials,
        create=True,
    )
    if args.object_lock_mode:
        if not isinstance(store, S3Store):
            raise UsageError("--object-lock-mode needs an s3:// catalog")
        store.lock_snapshots(args.object_lock_mode, args.object_lock_days)
    return store


def _recorded(args: argparse.Namespace, checkpoint: dict[str, str]) -> dict[str, Any]:
    """What a snapshot of either kind records besides its data, and the key it is signed
    with."""
    return {
        "ingest_checkpoint": checkpoint,
        "embedding": {"model": args.embedding_model, "version": args.embedding_version},
        "tenant_field": args.tenant_field,
        "acl_field": args.acl_field,
        "golden": golden_files(args.golden) if args.golden else [],
        "key": (
            CatalogKey.from_reference(args.catalog_key, create=True) if args.catalog_key else None
        ),
    }


def report(args: argparse.Namespace, written: tuple[Manifest, ObjectStore]) -> int:
    """Print what a snapshot wrote (a summary, or JSON with --json)."""
    manifest, store = written
    parent_format = manifest.parent_format
    summary = {
        "id": manifest.id,
        "kind": manifest.kind,
        "format": manifest.format,
        "parent": manifest.parent,
        "parent_format": parent_format,
        "recovery_point": format_utc(manifest.recovery_point),
        "point_in_time": manifest.point_in_time,
        "signed": args.catalog_key is not None,
        "catalog": store.url,
        "bytes": manifest.size,
        "collections": {c.name: c.counts for c in manifest.collections},
    }
    if args.json:
        print_json(summary)
    else:
        counts = ", ".join(
            f"{c.name}: {c.counts['records']} written, {c.counts['deletes']} deleted, "
            f"{c.counts['total_after_apply']} total"
            for c in manifest.collections
        )
        stdout.print(f"{manifest.kind} snapshot {manifest.id} in {store.url} ({counts})")
        if manifest.is_physical:
            stdout.print(
                f"files: {manifest.physical['files']} ({format_bytes(manifest.physical['bytes'])})"
                f" packed into {plural(len(manifest.physical_parts), 'part')}, "
                f"{format_bytes(sum(part.bytes for part in manifest.physical_parts))}"
            )
        stdout.print(
            f"recovery point {format_utc(manifest.recovery_point)}: {manifest.point_in_time_note()}"
        )
        if parent_format not in (None, manifest.format):
            stdout.print(
                f"[yellow]note[/]: chained onto {manifest.parent}, a {parent_format} snapshot; "
                f"this one is {manifest.format}. A restore reads each in its own format; "
                "a full snapshot starts a chain of one format."
            )
    return 0


def with_progress(create: Callable[[SnapshotProgress], Manifest]) -> Manifest:
    """Run ``create`` with a progress bar per collection on the terminal."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(collection: str, done: int, total: int) -> None:
            if collection not in tasks:
                tasks[collection] = bar.add_task(collection, total=total)
            bar.update(tasks[collection], completed=done, total=max(total, done))

        return create(progress)


def golden_files(path: Path) -> list[Path]:
    """The golden set's JSON and its vectors file, if any (the set is checked readable)."""
    load_golden(path)
    companion = path.with_name(path.name + ".npy")
    return [path, companion] if companion.exists() else [path]
