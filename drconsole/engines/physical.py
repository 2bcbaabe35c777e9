"""What an engine with physical backups declares: where its files come from, how they are
checked and combined, and how a server is started on them (``EngineAdapter.physical``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from drconsole.sandbox import EngineServer


class PhysicalMethod(Protocol):
    method: str
    """How the files are taken, for the manifest (``data-folder``, ``pg_basebackup``)."""
    from_server: bool
    """Taken from the running server by its own program (``take``), not from a stopped
    server's folder."""
    incremental: bool
    """Can take incrementals on an earlier physical snapshot."""
    manifest_name: str
    """The file an incremental needs of its parent (``backup_manifest``), if any."""
    check_tool: str | None
    """The engine's own tool that ``check`` runs (``pg_verifybackup``), if it has one."""

    def written_by(self, folder: Path) -> dict[str, Any]:
        """What the files say about the engine version that wrote them."""
        ...

    def release(self) -> str:
        """The engine release drconsole starts on backed-up files (``chromadb 1.5.9``):
        the backup is read, and a sandbox restore served, by it."""
        ...

    def take(
        self, url: str, token: str | None, into: Path, parent_manifest: Callable[[], bytes] | None
    ) -> None:
        """Back up the running server at ``url`` into the folder ``into``."""
        ...

    def check(self, folder: Path) -> None:
        """The engine's own check of one unpacked snapshot (raises IntegrityError)."""
        ...

    def assemble(self, folders: list[Path], output: Path) -> None:
        """One data folder from a chain's unpacked snapshots (oldest first)."""
        ...

    def adopt(self, folder: Path, workdir: Path | None, owner: tuple[int, int] | None) -> None:
        """Make a restored folder one its server may start on: owned by ``owner`` (the
        folder it replaces), or ready for the sandbox server working in ``workdir``."""
        ...

    def data_folder(self, workdir: Path) -> Path:
        """Where the sandbox server working in ``workdir`` keeps its data."""
        ...

    def server(self, workdir: Path) -> EngineServer:
        """A throwaway server on the data in ``data_folder(workdir)``."""
        ...


def give_to(folder: Path, owner: tuple[int, int]) -> None:
    """``chown -R`` without following links."""
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), *owner, follow_symlinks=False)
    os.chown(folder, *owner)
