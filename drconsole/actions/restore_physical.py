"""The data step of a physical snapshot: its chain's files made into a server's data folder.

Every part of the chain is checked against its digest before anything is touched (a
tampered or truncated part stops the step with the target as it was). Each snapshot's
parts are unpacked into a folder of their own beside the data folder, checked by the
engine's own tool where it has one (``pg_verifybackup``) and combined
(``pg_combinebackup`` for a base backup and its incrementals). Then:

- **sandbox** (a drill): drconsole's throwaway server is stopped, its folder replaced by
  the restored one and the server started again on it; its new address goes into the
  run's target for the gates.
- **data_dir** (an incident): the target's data folder, with its server stopped (a
  process using it is refused, named), is swapped with the restored one by renames; the
  old folder is kept aside, named in the result, until the operator has confirmed the
  restore. The restored files get the old folder's owner. Starting the server is the
  runbook's next step (a ``command`` step, or a person).

The checkpoint names the parts unpacked and whether the swap happened, so a run killed
during the unpack continues with the parts it had not finished.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from drconsole.actions.base import SUCCEEDED, ActionContext, Outcome, Progress, ProgressCallback
from drconsole.actions.physical_files import combine, refuse_live_folder, unpack_chain
from drconsole.actions.sources import target_adapter
from drconsole.catalog.manifest import FileEntry, Manifest
from drconsole.catalog.physical import check_parts, sync_files
from drconsole.catalog.store import ObjectStore
from drconsole.errors import DrconsoleError
from drconsole.sizes import format_bytes
from drconsole.timefmt import format_duration
from drconsole.wording import plural

UNPACK_WORKERS = 2
SANDBOX = "sandbox"
DATA_DIR = "data_dir"


def files_restore(context: ActionContext, manifest: Manifest) -> str | None:
    """How the selected snapshot's files reach the target (``sandbox`` or ``data_dir``),
    or None when it is restored record by record: it is not physical, the runbook does
    not prefer physical restores, or the target cannot take this engine's files."""
    if not manifest.is_physical or context.runbook.prefer != "physical":
        return None
    adapter = target_adapter(context)
    if manifest.physical.get("engine") != adapter.name or adapter.physical_entry is None:
        return None
    if context.target.get("sandbox_dir"):
        return SANDBOX
    if context.target.get("data_dir"):
        return DATA_DIR
    return None


def restore_files(
    context: ActionContext,
    progress: ProgressCallback,
    store: ObjectStore,
    chain: list[Manifest],
    way: str,
) -> Outcome:
    started = time.monotonic()
    if way == DATA_DIR:
        _refuse_another_namespace(context, chain[-1])
    parts = [[(manifest.id, part) for part in manifest.physical_parts] for manifest in chain]
    flat = [item for items in parts for item in items]
    checkpoint = dict(context.last_checkpoint or {})
    unpacked = set(checkpoint.get("unpacked", []))
    resumed = len(unpacked)
    total = sum(part.bytes for _, part in flat)
    progress(Progress(0, total, "bytes", f"checking {plural(len(flat), 'part')}"))
    check_parts(
        store,
        flat,
        progress=lambda done, all_bytes: progress(
            Progress(done, all_bytes, "bytes", "checking the parts before unpacking")
        ),
    )
    adapter = target_adapter(context)
    method = adapter.physical()
    suffix = context.run_id.rsplit("-", 1)[-1]
    workdir: Path | None = None
    if way == SANDBOX:
        from drconsole.sandbox import stop_pid

        workdir = Path(context.target["sandbox_dir"])
        stop_pid(int(context.target.get("sandbox_pid") or 0), workdir)
        data_dir = method.data_folder(workdir)
    else:
        data_dir = Path(context.target["data_dir"]).resolve()
        if not checkpoint.get("swapped"):
            refuse_live_folder(data_dir, "replace")
    staging = data_dir.with_name(f"{data_dir.name}.restoring-{suffix}")
    aside = data_dir.with_name(f"{data_dir.name}.before-{suffix}")
    if not checkpoint.get("swapped"):
        done = [sum(flat[number][1].bytes for number in unpacked)]

        def unpacked_one(number: int, part: FileEntry) -> None:
            done[0] += part.bytes
            progress(
                Progress(
                    done[0],
                    total,
                    "bytes",
                    f"unpacked {part.path} ({len(unpacked)}/{len(flat)})",
                    checkpoint={"unpacked": sorted(unpacked), "swapped": False},
                )
            )

        folders = unpack_chain(
            store,
            parts,
            staging / "unpacked",
            done=unpacked,
            workers=UNPACK_WORKERS,
            unpacked=unpacked_one,
            cancelled=context.cancel.is_set,
        )
        progress(Progress(total, total, "bytes", f"combining {plural(len(chain), 'snapshot')}"))
        combine(method, folders, staging / "restored", [item.id for item in chain])
        owner = _owner(data_dir) if way == DATA_DIR else None
        method.adopt(staging / "restored", workdir, owner)
        if data_dir.exists() and aside.exists():
            shutil.rmtree(data_dir)  # swapped in by an attempt cut off before its checkpoint
        elif data_dir.exists():
            data_dir.rename(aside)
        (staging / "restored").rename(data_dir)
        sync_files()
        progress(
            Progress(
                total,
                total,
                "bytes",
                "swapped in the restored folder",
                checkpoint={"unpacked": sorted(unpacked), "swapped": True},
            )
        )
    outcome = _outcome(
        context, chain, way, data_dir=data_dir, aside=aside, resumed=resumed, started=started
    )
    shutil.rmtree(staging, ignore_errors=True)  # the unpacked snapshots: after the server is up
    return outcome


def _outcome(
    context: ActionContext,
    chain: list[Manifest],
    way: str,
    *,
    data_dir: Path,
    aside: Path,
    resumed: int,
    started: float,
) -> Outcome:
    adapter = target_adapter(context)
    method = adapter.physical()
    manifest = chain[-1]
    parts = sum(len(item.physical_parts) for item in chain)
    files = sum(int(item.physical.get("files") or 0) for item in chain)
    size = sum(int(item.physical.get("bytes") or 0) for item in chain)
    details: dict[str, Any] = {
        "physical": True,
        "chain": [item.id for item in chain],
        "files": files,
        "bytes": size,
        "engine_version": manifest.physical.get("engine_version"),
        "resumed_after_parts": resumed,
    }
    combined = f", combining {plural(len(chain), 'snapshot')}" if len(chain) > 1 else ""
    what = (
        f"unpacked {plural(files, 'file')} ({format_bytes(size)}) of "
        f"{'the chain ending in ' if len(chain) > 1 else ''}{manifest.id}{combined}"
        + (f" (resumed after {plural(resumed, 'part')} of {parts})" if resumed else "")
    )
    if way == SANDBOX:
        from drconsole.sandbox import start_server

        shutil.rmtree(aside, ignore_errors=True)
        workdir = Path(context.target["sandbox_dir"])
        server = start_server(lambda: method.server(workdir))
        details["target"] = {
            "url": server.url,
            "sandbox_pid": server.pid,
            "namespace": dict(manifest.source.get("namespace") or {}),
        }
        return Outcome(
            SUCCEEDED,
            f"{what} into the sandbox and started its server on them "
            f"in {format_duration(time.monotonic() - started)}",
            details,
        )
    kept = aside.exists()
    details["kept_aside"] = str(aside) if kept else None
    details["to_do"] = [
        f"start the {adapter.title} server on {data_dir} "
        f"({manifest.physical.get('read_by') or 'the same release'} or a newer one)"
    ] + ([f"delete {aside} once the restore is confirmed (the folder it replaced)"] if kept else [])
    return Outcome(
        SUCCEEDED,
        f"{what} into {data_dir} in {format_duration(time.monotonic() - started)}; "
        + (
            f"the folder it replaced is kept at {aside} until you confirm"
            if kept
            else "there was no folder to replace"
        )
        + f"; to do: start the server on {data_dir}",
        details,
    )


def _refuse_another_namespace(context: ActionContext, manifest: Manifest) -> None:
    """Files bring collections back where they were: a target that names another
    namespace (schema, tenant, database) than the snapshot's source is refused before
    anything is touched (the gates would look in the wrong place)."""
    adapter = target_adapter(context)
    source = manifest.source.get("namespace") or {}
    defaults = adapter.default_namespace()
    differ = [
        f"{key} {wanted!r}, the snapshot's is {source[key]!r}"
        for key in source
        if (wanted := context.target.get(key) or defaults.get(key)) not in (None, source[key])
    ]
    if differ:
        raise DrconsoleError(
            "a physical restore brings the collections back where they were, and the target "
            f"names another place: {'; '.join(differ)}; nothing was touched",
            "name the snapshot's namespace in the target, or prefer logical restores",
        )


def _owner(folder: Path) -> tuple[int, int] | None:
    """The owner the restored files must have: the folder's they replace."""
    try:
        status = folder.stat()
    except FileNotFoundError:
        return None
    return status.st_uid, status.st_gid
