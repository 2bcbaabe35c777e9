"""``drconsole catalog list|show|verify|prune``: browse and check snapshot catalogs."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from drconsole.actions.physical_files import ToolChecks, tool_checks
from drconsole.catalog.auth import FORGED, SIGNED, UNCHECKED, UNSIGNED, CatalogKey
from drconsole.catalog.catalog import CatalogView, Finding, load_catalog, rebuild_index
from drconsole.catalog.index import INDEX
from drconsole.catalog.layout import manifest_key
from drconsole.catalog.lock import lock_catalog
from drconsole.catalog.manifest import KIND_LETTERS, Manifest
from drconsole.catalog.open import open_runbook_catalog, open_store
from drconsole.catalog.retention import (
    KeepPolicy,
    abandoned_uploads,
    apply_retention,
    plan_retention,
)
from drconsole.catalog.source import describe_source
from drconsole.catalog.store import ObjectStore
from drconsole.catalog.verifications import Verification, keep_verification, last_verifications
from drconsole.catalog.verify import Depth, verify
from drconsole.commands.output import print_json, stderr, stdout
from drconsole.errors import UsageError
from drconsole.runbook.loader import load_runbook
from drconsole.sizes import format_bytes
from drconsole.timefmt import format_duration, format_utc, parse_duration, utc_now
from drconsole.wording import plural

EXIT_FINDINGS = 1
LOCAL_ONLY = (
    "this catalog is on local disk only: a node or disk failure can take the database and "
    "its backups together; keep a copy elsewhere (S3)"
)


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        metavar="URL",
        help="s3://BUCKET/PREFIX, a folder, or a runbook (.yaml) whose catalog to open",
    )
    parser.add_argument("--endpoint", help="S3-compatible endpoint URL (path-style addressing)")
    parser.add_argument("--region", help="S3 region")
    parser.add_argument(
        "--credentials",
        metavar="REF",
        help="keyring:SERVICE/NAME or env:VAR holding ACCESS_KEY_ID:SECRET (default: AWS chain)",
    )
    parser.add_argument(
        "--catalog-key",
        metavar="REF",
        help="the catalog key (keyring:, env: or file: reference) to check manifests with",
    )


def open_view(args: argparse.Namespace) -> tuple[ObjectStore, CatalogView]:
    """The catalog listed, its manifests' tags checked when a key is given."""
    store, key = open_catalog_args(args)
    return store, load_catalog(store, key)


def open_catalog_args(args: argparse.Namespace) -> tuple[ObjectStore, CatalogKey | None]:
    """The catalog named on the command line, or the one a runbook file names (with its
    endpoint, credentials and catalog key), and its key if one is given."""
    if args.url.endswith((".yaml", ".yml")) and Path(args.url).is_file():
        if args.endpoint or args.region or args.credentials or args.catalog_key:
            raise UsageError(
                "--endpoint, --region, --credentials and --catalog-key come from the runbook here",
                "drop them, or give the catalog URL instead of the runbook",
            )
        runbook = load_runbook(Path(args.url))
        store, reference = open_runbook_catalog(runbook), runbook.catalog_key()
    else:
        store = open_store(
            args.url, endpoint=args.endpoint, region=args.region, credentials=args.credentials
        )
        reference = args.catalog_key
    return store, CatalogKey.from_reference(reference) if reference else None


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    catalog = subparsers.add_parser("catalog", help="browse, verify and prune snapshot catalogs")
    commands = catalog.add_subparsers(dest="catalog_command", required=True)
    listing = commands.add_parser("list", help="chains of snapshots, like `pgbackrest info`")
    add_store_options(listing)
    listing.add_argument(
        "--rpo", metavar="DURATION", help="say which ages are within or over this RPO (e.g. 4h)"
    )
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=list_command)
    show = commands.add_parser("show", help="one snapshot's manifest, readable")
    add_store_options(show)
    show.add_argument("snapshot_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=show_command)
    check = commands.add_parser("verify", help="check snapshots at a depth; exit 1 on any finding")
    add_store_options(check)
    check.add_argument("snapshot_id", nargs="?", metavar="ID", help="one snapshot and its chain")
    check.add_argument(
        "--depth", default="sizes", help="manifest | sizes | full | sample:N%% (default sizes)"
    )
    check.add_argument("--seed", type=int, help="seed for sample:N%% (recorded in the result)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=verify_command)
    reindex = commands.add_parser(
        "reindex", help="rebuild the catalog index from every snapshot folder"
    )
    add_store_options(reindex)
    reindex.set_defaults(handler=reindex_command)
    prune = commands.add_parser("prune", help="remove snapshots no retention rule keeps")
    add_store_options(prune)
    prune.add_argument("--keep-last", type=int, required=True, metavar="N")
    prune.add_argument("--keep-daily", type=int, default=0, metavar="N")
    prune.add_argument("--keep-weekly", type=int, default=0, metavar="N")
    prune.add_argument(
        "--unfinished-older-than",
        metavar="DURATION",
        help="also remove unfinished uploads started longer ago than this (e.g. 2d); "
        "by default they are left alone, since one may be in progress",
    )
    mode = prune.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="show the plan, delete nothing")
    mode.add_argument("--yes", action="store_true", help="delete what the plan removes")
    prune.add_argument("--json", action="store_true")
    prune.set_defaults(handler=prune_command)


def list_command(args: argparse.Namespace) -> int:
    try:
        rpo_s = parse_duration(args.rpo) if args.rpo else None
    except ValueError as error:
        raise UsageError(f"--rpo: {error}") from None
    store, key = open_catalog_args(args)
    view = load_catalog(store, key)
    checked = last_verifications(store, view, key)
    debris = store.debris()
    now = utc_now()
    if args.json:
        print_json(
            {
                **_listing_json(view, now, checked),
                "debris": [{"key": item.key, "bytes": item.size} for item in debris],
            }
        )
        return 0
    if view.local:
        stderr.print(f"warning: {LOCAL_ONLY}")
    for note in view.index.ignored:
        stderr.print(f"warning: catalog index segment {escape(note)}; listed from the folders")
    roots, orphans = view.trees()
    table = Table(title=f"catalog {escape(view.url)}", title_justify="left")
    table.add_column("snapshot", no_wrap=True)  # an id must stay whole to be copied
    for column in (
        "type",
        "recovery point (UTC)",
        "age",
        "size",
        "chain size",
        "source",
        "collections",
        "status",
    ):
        table.add_column(column)
    for root in roots:
        for depth, node in root.walk():
            table.add_row(*_row(view, node.manifest, depth, now=now, rpo_s=rpo_s, checked=checked))
    for manifest in orphans:
        table.add_row(*_row(view, manifest, 0, now=now, rpo_s=rpo_s, checked=checked))
    stdout.print(table)
    for snapshot_id, problem in sorted(view.invalid.items()):
        stdout.print(f"[red]invalid[/red] {snapshot_id}: {escape(problem)}")
    for item in view.unfinished:
        stdout.print(
            f"[yellow]unfinished[/yellow] {item.id}: {item.files} files, "
            f"{format_bytes(item.bytes)}; no manifest, never restorable"
        )
    if debris:
        stdout.print(
            f"[yellow]debris[/yellow]: {plural(len(debris), 'leftover')} of writes that never "
            f"completed ({format_bytes(sum(item.size for item in debris))}), e.g. "
            f"{escape(debris[0].key)}; `catalog prune` removes them"
        )
    if not view.snapshots and not view.unfinished and not view.invalid:
        stdout.print("no snapshots yet")
    return 0


def _row(
    view: CatalogView,
    manifest: Manifest,
    depth: int,
    *,
    now: datetime,
    rpo_s: float | None,
    checked: dict[str, Verification],
) -> list[str]:
    _, findings = view.chain(manifest.id)
    age = (now - manifest.recovery_point).total_seconds()
    age_text = format_duration(age)
    if rpo_s is not None:  # in words as well: colour does not survive a pipe
        age_text = (
            f"[green]{age_text} within RPO[/]" if age <= rpo_s else f"[red]{age_text} over RPO[/]"
        )
    rejection = view.rejection(manifest, now, allow_unsigned=not view.key_checked)
    if findings:
        status = "[red]broken[/red]: " + escape(findings[0].message)
    elif rejection:
        status = "[red]refused[/red]: " + escape(rejection)
    elif manifest.id in checked:
        last = checked[manifest.id]
        colour = "green" if last.intact and last.authenticated else "yellow"
        colour = colour if last.intact else "red"
        status = (
            f"[{colour}]{escape(last.describe(now))}[/], {authenticity_label(view, manifest.id)}"
        )
    else:
        status = f"unverified, {authenticity_label(view, manifest.id)}"
    return [
        "  " * depth + ("└ " if depth else "") + manifest.id,
        KIND_LETTERS[manifest.kind],
        format_utc(manifest.recovery_point),
        age_text,
        format_bytes(manifest.size),
        format_bytes(view.chain_size(manifest.id)),
        escape(describe_source(manifest.source)),
        ", ".join(c.name for c in manifest.collections),
        status,
    ]


def _status(findings: list[Finding], last: Verification | None) -> str:
    """broken (its chain), verified (its last verification found it intact and its record
    is signed with the catalog key), else unverified."""
    if findings:
        return "broken"
    return "verified" if last is not None and last.intact and last.authenticated else "unverified"


def authenticity_label(view: CatalogView, snapshot_id: str) -> str:
    """signed, unsigned, FORGED, or signed (not checked) when no key was given."""
    status, _ = view.authenticity.get(snapshot_id, (UNSIGNED, ""))
    return {SIGNED: "signed", UNCHECKED: "signed (not checked: no key)", FORGED: "FORGED"}.get(
        status, "unsigned"
    )


def _listing_json(
    view: CatalogView, now: datetime, checked: dict[str, Verification]
) -> dict[str, object]:
    snapshots = []
    for manifest in view.ordered():
        chain, findings = view.chain(manifest.id)
        snapshots.append(
            {
                "id": manifest.id,
                "kind": manifest.kind,
                "format": manifest.format,
                "parent": manifest.parent,
                "recovery_point": format_utc(manifest.recovery_point),
                "age_s": round((now - manifest.recovery_point).total_seconds(), 3),
                "bytes": manifest.size,
                "chain": [item.id for item in chain],
                "chain_bytes": view.chain_size(manifest.id),
                "source": manifest.source,
                "collections": [c.name for c in manifest.collections],
                "point_in_time": manifest.point_in_time,
                "authenticity": view.authenticity.get(manifest.id, (UNSIGNED, ""))[0],
                "refused": view.rejection(manifest, now, allow_unsigned=not view.key_checked),
                "status": _status(findings, checked.get(manifest.id)),
                "last_verification": (
                    checked[manifest.id].to_json() if manifest.id in checked else None
                ),
                "findings": [finding.to_json() for finding in findings],
            }
        )
    return {
        "url": view.url,
        "local_only": view.local,
        "snapshots": snapshots,
        "invalid": [
            {"id": sid, "problem": problem} for sid, problem in sorted(view.invalid.items())
        ],
        "unfinished": [{"id": u.id, "files": u.files, "bytes": u.bytes} for u in view.unfinished],
    }


def chain_text(chain: list[Manifest]) -> str:
    """``A -> B``; each snapshot's format named when the chain mixes them."""
    mixed = len({item.format for item in chain}) > 1
    return " -> ".join(item.id + (f" (format {item.version})" if mixed else "") for item in chain)


def show_command(args: argparse.Namespace) -> int:
    store, view = open_view(args)
    chain, findings = view.confirmed_chain(store, view.require(args.snapshot_id).id)
    manifest = view.require(args.snapshot_id)
    lock = store.retention(manifest_key(manifest.id))
    if args.json:
        print_json(
            {
                **manifest.to_json(),
                "sha256": manifest.sha256,
                "authenticity": view.authenticity.get(manifest.id, (UNSIGNED, ""))[0],
                "object_lock": (
                    {"mode": lock.mode, "until": format_utc(lock.until)} if lock else None
                ),
                "chain": [m.id for m in chain],
                "findings": [f.to_json() for f in findings],
                "index_disagreed": {
                    m.id: view.index_disagreed[m.id] for m in chain if m.id in view.index_disagreed
                },
            }
        )
        return 0
    stdout.print(
        f"[bold]{manifest.id}[/bold]  {manifest.kind}, "
        f"recovery point {format_utc(manifest.recovery_point)}"
    )
    stdout.print(f"point in time: {escape(manifest.point_in_time_note())}")
    if physical := manifest.physical_note():
        stdout.print(f"physical: {escape(physical)}")
    _, why = view.authenticity.get(manifest.id, (UNSIGNED, "not signed"))
    stdout.print(f"authenticity: {escape(why)}")
    stdout.print(
        "object lock: "
        + (
            f"{lock.describe()} (cannot be deleted before then)"
            if lock
            else "none (anyone who can write the catalog can delete it)"
        )
    )
    source = manifest.source
    stdout.print(
        f"source: {escape(describe_source(source))} at {escape(str(source.get('url')))} "
        f"(server {escape(str(source.get('server_version', '?')))})"
    )
    stdout.print(f"format: {manifest.format}")
    stdout.print(f"chain: {chain_text(chain)}")
    checkpoint = ", ".join(f"{k}={v}" for k, v in manifest.ingest_checkpoint.items()) or "-"
    stdout.print(f"ingest checkpoint: {escape(checkpoint)}")
    table = Table(title="collections", title_justify="left")
    for column in (
        "name",
        "dimension",
        "distance",
        "records",
        "deletes",
        "total",
        "tenants",
        "aliases",
        "embedding",
    ):
        table.add_column(column)
    for entry in manifest.collections:
        embedding = entry.embedding
        table.add_row(
            entry.name,
            str(entry.schema.dimension),
            entry.schema.distance,
            str(entry.counts["records"]),
            str(entry.counts["deletes"]),
            str(entry.counts["total_after_apply"]),
            ", ".join(str(t.get("name")) for t in entry.tenants) or "-",
            ", ".join(entry.schema.aliases) or "-",
            escape(f"{embedding.get('model', '-')} {embedding.get('version', '')}".strip()),
        )
    stdout.print(table)
    for entry in manifest.collections:
        for item in entry.not_restorable:
            stdout.print(f"[yellow]not restorable[/yellow] {entry.name}: {escape(item)}")
    files = Table(title="files", title_justify="left")
    for column in ("path", "kind", "rows", "bytes", "sha256"):
        files.add_column(column)
    for entry in manifest.all_files:
        files.add_row(
            entry.path,
            entry.kind,
            "-" if entry.kind == "golden" else str(entry.rows),
            str(entry.bytes),
            entry.sha256[:16] + "…",
        )
    stdout.print(files)
    for finding in findings:
        stdout.print(f"[red]{finding.kind}[/red]: {escape(finding.message)}")
    for item in chain:
        if item.id in view.index_disagreed:
            stdout.print(
                f"[yellow]catalog index[/yellow] {item.id}: {escape(view.index_disagreed[item.id])}"
            )
    return 0


def verify_command(args: argparse.Namespace) -> int:
    """Exit 0 when everything checked is intact, 1 when anything is wrong."""
    depth = Depth.parse(args.depth)
    store, key = open_catalog_args(args)
    view = load_catalog(store, key, use_index=bool(args.snapshot_id))  # all: every folder
    if args.snapshot_id:
        chain, _ = view.confirmed_chain(store, view.require(args.snapshot_id).id)
        ids = [m.id for m in chain]
    else:
        ids = [m.id for m in view.ordered()]
    result = verify(view, store, ids, depth, seed=args.seed)
    tools = ToolChecks()
    if depth.name == "full":
        intact = {item for item in ids if not result.findings_for(item)}
        tools = tool_checks(store, [view.snapshots[item] for item in ids if item in intact])
    not_kept = keep_verification(store, view, result, key, utc_now())
    if not_kept:
        stderr.print(f"warning: {escape(not_kept)}")
    invalid = [] if args.snapshot_id else sorted(view.invalid.items())
    if args.json:
        print_json(
            {
                **result.to_json(),
                "invalid": [{"id": i, "problem": p} for i, p in invalid],
                "engine_checks": {
                    "passed": tools.checked,
                    "problems": tools.problems,
                    "not_checked": tools.unchecked,
                },
            }
        )
    else:
        for finding in result.findings:
            stdout.print(f"{finding.snapshot_id}: {finding.kind}: {escape(finding.message)}")
        for snapshot_id, problem in invalid:
            stdout.print(f"{snapshot_id}: manifest_invalid: {escape(problem)}")
        for snapshot_id, problem in tools.problems.items():
            stdout.print(f"{snapshot_id}: engine_check: {escape(problem)}")
        seed = f", seed {result.seed}" if result.seed is not None else ""
        clean = result.intact and not invalid and not tools.problems
        verdict = "intact" if clean else "PROBLEMS FOUND"
        stdout.print(
            f"{plural(len(ids), 'snapshot')} at depth {result.depth}{seed}: {verdict} "
            f"({result.files_checked} files, {format_bytes(result.bytes_hashed)} hashed)"
        )
        if tools.note():
            stdout.print(escape(tools.note()))
        stdout.print(_authenticity_summary(view, ids))
    return 0 if result.intact and not invalid and not tools.problems else EXIT_FINDINGS


def _authenticity_summary(view: CatalogView, ids: list[str]) -> str:
    """What the verification proved about who wrote the manifests."""
    counts: dict[str, int] = {}
    for snapshot_id in ids:
        label = authenticity_label(view, snapshot_id)
        counts[label] = counts.get(label, 0) + 1
    shown = ", ".join(f"{count} {label}" for label, count in sorted(counts.items()))
    if not view.key_checked:
        return f"authenticity NOT checked (no catalog key given): {shown or 'nothing'}"
    return f"authenticity checked with the catalog key: {shown or 'nothing'}"


def reindex_command(args: argparse.Namespace) -> int:
    """Replace the index (``catalog.index``) with one read from the folders: for a
    catalog written before the index, or one whose listing warned about its index."""
    store, _ = open_catalog_args(args)
    before = len(list(store.list(f"{INDEX}/")))
    view = rebuild_index(store)
    stdout.print(
        f"indexed {plural(len(view.snapshots), 'snapshot')} of {escape(view.url)} "
        f"(replacing {plural(before, 'index segment')}); listings now read them in one go"
    )
    return 0


def prune_command(args: argparse.Namespace) -> int:
    if min(args.keep_last, args.keep_daily, args.keep_weekly) < 0:
        raise UsageError("keep counts must not be negative")
    try:
        older_than_s = (
            parse_duration(args.unfinished_older_than) if args.unfinished_older_than else None
        )
    except ValueError as error:
        raise UsageError(f"--unfinished-older-than: {error}") from None
    store, key = open_catalog_args(args)
    lock = None if args.dry_run else lock_catalog(store, "catalog prune", exclusive=True)
    try:
        view = load_catalog(store, key, use_index=False)  # deletes follow the folders only
        now = utc_now()
        refused = {
            manifest.id: reason
            for manifest in view.snapshots.values()
            if (reason := view.rejection(manifest, now, allow_unsigned=key is None))
        }
        counted = replace(
            view, snapshots={i: m for i, m in view.snapshots.items() if i not in refused}
        )
        plan = plan_retention(
            counted, KeepPolicy(args.keep_last, args.keep_daily, args.keep_weekly)
        )
        for snapshot_id in list(plan.remove):
            retained = store.retention(manifest_key(snapshot_id))
            if retained is not None and retained.until > now:
                plan.remove.remove(snapshot_id)
                refused[snapshot_id] = f"under Object Lock, {retained.describe()}"
        if older_than_s is not None:
            plan.abandoned = abandoned_uploads(view, older_than_s, utc_now())
        debris = store.debris()
        deleted = 0
        if lock is not None:
            deleted = apply_retention(store, plan)
            store.remove_debris(debris)
    finally:
        if lock is not None:
            lock.release()
    if args.json:
        print_json(
            {
                **plan.to_json(),
                "left_alone": [{"snapshot_id": i, "reason": r} for i, r in refused.items()],
                "debris": [item.key for item in debris],
                "dry_run": args.dry_run,
                "objects_deleted": deleted,
            }
        )
        return 0
    for snapshot_id, reason in refused.items():
        stdout.print(f"left   {snapshot_id}  (not removed: {escape(reason)})")
    for snapshot_id, reasons in plan.keep.items():
        stdout.print(f"keep   {snapshot_id}  ({', '.join(reasons)})")
    for snapshot_id in plan.remove:
        stdout.print(f"{'would remove' if args.dry_run else 'removed'} {snapshot_id}")
    for snapshot_id in plan.abandoned:
        stdout.print(
            f"{'would remove' if args.dry_run else 'removed'} {snapshot_id}  "
            "(unfinished upload, abandoned)"
        )
    for item in debris:
        stdout.print(
            f"{'would remove' if args.dry_run else 'removed'} {escape(item.key)}  "
            "(left by a write that never completed)"
        )
    if not args.dry_run:
        stdout.print(
            f"{plural(len(plan.remove), 'snapshot')}, "
            f"{plural(len(plan.abandoned), 'abandoned upload')} and "
            f"{plural(len(debris), 'leftover')} removed, {plural(deleted, 'object')} deleted"
        )
    return 0
