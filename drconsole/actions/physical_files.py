"""A physical chain's files made into one data folder a server can start on: each
snapshot's parts checked and unpacked into a folder of its own, checked by the engine's
own tool where it has one, then combined (``PhysicalMethod.assemble``). Shared by the
snapshot (which reads its backup back) and the restore.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from drconsole.catalog.manifest import FileEntry, Manifest
from drconsole.catalog.physical import check_parts, sync_files, unpack_part
from drconsole.catalog.store import ObjectStore
from drconsole.engines.physical import PhysicalMethod
from drconsole.engines.registry import engine_adapter
from drconsole.errors import DrconsoleError, IntegrityError, UsageError
from drconsole.folder_users import folder_users
from drconsole.wording import plural

ChainParts = list[list[tuple[str, FileEntry]]]
"""Each snapshot of a chain (base first): its (snapshot id, part) pairs."""


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


def unpack_chain(
    store: ObjectStore,
    parts: ChainParts,
    folder: Path,
    *,
    done: set[int] | None = None,
    workers: int = 2,
    unpacked: Callable[[int, FileEntry], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> list[Path]:
    """Unpack every part not in ``done`` (numbered across the chain) into ``folder/K``
    for the K-th snapshot, calling ``unpacked`` after each; returns the K folders."""
    done = set() if done is None else done
    numbered = [
        (number, position, snapshot_id, part)
        for number, (position, snapshot_id, part) in enumerate(
            (position, snapshot_id, part)
            for position, items in enumerate(parts)
            for snapshot_id, part in items
        )
    ]
    folders = [folder / str(position) for position in range(len(parts))]
    for path in folders:
        path.mkdir(parents=True, exist_ok=True)

    def unpack(item: tuple[int, int, str, FileEntry]) -> tuple[int, FileEntry]:
        number, position, snapshot_id, part = item
        if cancelled():
            raise DrconsoleError("cancelled during the unpack; run the step again to continue")
        unpack_part(store, snapshot_id, part, folders[position])
        return number, part

    waiting = [item for item in numbered if item[0] not in done]
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="unpack") as pool:
        for number, part in pool.map(unpack, waiting):
            done.add(number)
            if unpacked is not None:
                sync_files()  # durable before a checkpoint says so
                unpacked(number, part)
    return folders


def assemble_chain(
    store: ObjectStore,
    method: PhysicalMethod,
    parts: ChainParts,
    scratch: Path,
    output: Path,
    *,
    workers: int = 2,
) -> None:
    """Check, unpack and combine a chain into ``output`` in one go (no checkpoints)."""
    check_parts(store, [item for items in parts for item in items], workers=workers)
    folders = unpack_chain(store, parts, scratch, workers=workers)
    combine(method, folders, output, [items[0][0] for items in parts])
    shutil.rmtree(scratch, ignore_errors=True)


def combine(
    method: PhysicalMethod, folders: list[Path], output: Path, names: list[str] | None = None
) -> None:
    """Each unpacked snapshot (``names``: their ids) checked by the engine's tool, then
    the chain combined into ``output`` (made again from the unpacked folders if an
    attempt left one)."""
    for number, folder in enumerate(folders):
        try:
            method.check(folder)
        except IntegrityError as error:
            which = names[number] if names else folder.name
            raise IntegrityError(f"snapshot {which}: {error.message}", error.hint) from None
    if output.exists():
        shutil.rmtree(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    method.assemble(folders, output)
    sync_files()


@dataclass
class ToolChecks:
    """What the engines' own tools said of physical snapshots (``verify`` at depth full)."""

    checked: dict[str, str] = field(default_factory=dict)
    """Snapshot id -> the tool that found it intact."""
    problems: dict[str, str] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)
    """Snapshot id -> why its engine's tool could not run (the engine is not installed)."""

    def note(self) -> str:
        tools = sorted(set(self.checked.values()))
        parts = (
            [f"{', '.join(tools)} passed on {plural(len(self.checked), 'snapshot')}"]
            if tools
            else []
        )
        parts += [
            f"{item} NOT checked by its engine's tool: {why}"
            for item, why in self.unchecked.items()
        ]
        return "; ".join(parts)


def tool_checks(
    store: ObjectStore, manifests: list[Manifest], scratch: Path | None = None
) -> ToolChecks:
    """Each physical snapshot's parts (already hashed) unpacked into a scratch folder and
    checked by its engine's own tool, where it has one (pg_verifybackup)."""
    found = ToolChecks()
    for manifest in manifests:
        if not manifest.is_physical:
            continue
        try:
            method = engine_adapter(str(manifest.physical.get("engine"))).physical()
        except UsageError as error:
            found.unchecked[manifest.id] = error.message
            continue
        if method.check_tool is None:
            continue
        with tempfile.TemporaryDirectory(prefix="drconsole-check-", dir=scratch) as folder:
            parts = [[(manifest.id, part) for part in manifest.physical_parts]]
            unpacked = unpack_chain(store, parts, Path(folder))[0]
            try:
                method.check(unpacked)
            except IntegrityError as error:
                found.problems[manifest.id] = error.message
                continue
        found.checked[manifest.id] = method.check_tool
    return found
