"""The data step of a physical snapshot: its files unpacked into a server's data folder.

Every part of the chain is checked against its digest before anything is touched (a
tampered or truncated part stops the step with the target as it was). Then:

- **sandbox** (a drill): drconsole's throwaway server is stopped, the parts are
  unpacked beside its folder, the folder is replaced and the server started again on
  the restored files; its new address goes into the run's target for the gates.
- **data_dir** (an incident): the target's data folder, with its server stopped (a
  process using it is refused, named), gets the parts unpacked beside it, then the two
  are swapped by renames: the old folder is kept aside, named in the result, until the
  operator has confirmed the restore. Starting the server is the runbook's next step
  (a ``command`` step, or a person).

The checkpoint names the parts unpacked and whether the swap happened, so a run killed
during the unpack continues with the parts it had not finished.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from drconsole.actions.base import SUCCEEDED, ActionContext, Outcome, Progress, ProgressCallback
from drconsole.actions.physical_snapshot import refuse_live_folder
from drconsole.actions.sources import target_adapter
from drconsole.catalog.manifest import FileEntry, Manifest
from drconsole.catalog.physical import check_parts, unpack_part
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
    if len(chain) != 1:
        raise DrconsoleError(
            f"{chain[-1].id} is a chain of {len(chain)} physical snapshots; combining "
            "chains is not supported for this engine",
            "restore its base, or prefer logical restores",
        )
    started = time.monotonic()
    parts = [(manifest.id, part) for manifest in chain for part in manifest.physical_parts]
    checkpoint = dict(context.last_checkpoint or {})
    unpacked = set(checkpoint.get("unpacked", []))
    resumed = len(unpacked)
    total = sum(part.bytes for _, part in parts)
    progress(Progress(0, total, "bytes", f"checking {plural(len(parts), 'part')}"))
    check_parts(
        store,
        parts,
        progress=lambda done, all_bytes: progress(
            Progress(done, all_bytes, "bytes", "checking the parts before unpacking")
        ),
    )
    adapter = target_adapter(context)
    method = adapter.physical()
    suffix = context.run_id.rsplit("-", 1)[-1]
    if way == SANDBOX:
        folder = Path(context.target["sandbox_dir"])
        from drconsole.sandbox import stop_pid

        stop_pid(int(context.target.get("sandbox_pid") or 0), folder)
        data_dir = method.server(folder).data_dir
    else:
        data_dir = Path(context.target["data_dir"]).resolve()
        if not checkpoint.get("swapped"):
            refuse_live_folder(data_dir, "replace")
    staging = data_dir.with_name(f"{data_dir.name}.restoring-{suffix}")
    aside = data_dir.with_name(f"{data_dir.name}.before-{suffix}")
    if not checkpoint.get("swapped"):
        _unpack(context, progress, store, parts, staging, unpacked=unpacked)
        if data_dir.exists():
            data_dir.rename(aside)
        staging.rename(data_dir)
        progress(
            Progress(
                total,
                total,
                "bytes",
                "swapped in the restored folder",
                checkpoint={"unpacked": sorted(unpacked), "swapped": True},
            )
        )
    manifest = chain[-1]
    details: dict[str, Any] = {
        "physical": True,
        "chain": [item.id for item in chain],
        "files": manifest.physical.get("files"),
        "bytes": manifest.physical.get("bytes"),
        "engine_version": manifest.physical.get("engine_version"),
        "resumed_after_parts": resumed,
    }
    what = (
        f"unpacked {plural(int(manifest.physical.get('files') or 0), 'file')} "
        f"({format_bytes(int(manifest.physical.get('bytes') or 0))}) of {manifest.id}"
        + (f" (resumed after {plural(resumed, 'part')} of {len(parts)})" if resumed else "")
    )
    if way == SANDBOX:
        shutil.rmtree(aside, ignore_errors=True)
        from drconsole.sandbox import start_server

        server = start_server(lambda: method.server(folder))
        details["target"] = {"url": server.url, "sandbox_pid": server.pid}
        summary = (
            f"{what} into the sandbox and started its server on them "
            f"in {format_duration(time.monotonic() - started)}"
        )
    else:
        details["kept_aside"] = str(aside) if aside.exists() else None
        details["to_do"] = [
            f"start the {adapter.title} server on {data_dir} "
            f"({manifest.physical.get('engine_version') or 'the same version'} or newer)"
        ] + (
            [f"delete {aside} once the restore is confirmed (the folder it replaced)"]
            if aside.exists()
            else []
        )
        summary = (
            f"{what} into {data_dir} in {format_duration(time.monotonic() - started)}; "
            + (
                f"the folder it replaced is kept at {aside} until you confirm"
                if aside.exists()
                else "there was no folder to replace"
            )
            + f"; to do: start the server on {data_dir}"
        )
    return Outcome(SUCCEEDED, summary, details)


def _unpack(
    context: ActionContext,
    progress: ProgressCallback,
    store: ObjectStore,
    parts: list[tuple[str, FileEntry]],
    staging: Path,
    *,
    unpacked: set[int],
) -> None:
    """Unpack the parts not yet unpacked, a checkpoint after each one."""
    staging.mkdir(parents=True, exist_ok=True)
    total = sum(part.bytes for _, part in parts)
    done = [sum(parts[number][1].bytes for number in unpacked)]

    def unpack(number: int) -> int:
        if context.cancel.is_set():
            raise DrconsoleError("restore cancelled during the unpack; run it again to continue")
        snapshot_id, part = parts[number]
        unpack_part(store, snapshot_id, part, staging)
        return number

    waiting = [number for number in range(len(parts)) if number not in unpacked]
    with ThreadPoolExecutor(max_workers=UNPACK_WORKERS, thread_name_prefix="unpack") as pool:
        for number in pool.map(unpack, waiting):
            unpacked.add(number)
            done[0] += parts[number][1].bytes
            progress(
                Progress(
                    done[0],
                    total,
                    "bytes",
                    f"unpacked {parts[number][1].path} ({len(unpacked)}/{len(parts)})",
                    checkpoint={"unpacked": sorted(unpacked), "swapped": False},
                )
            )
