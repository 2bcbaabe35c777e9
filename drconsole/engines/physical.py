"""What an engine with physical backups declares: how its files are taken, what wrote
them, and how a server is started on a folder of them (``EngineAdapter.physical``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from drconsole.sandbox import EngineServer


class PhysicalMethod(Protocol):
    method: str
    """How the files are taken, for the manifest (``data-folder``)."""

    def written_by(self, folder: Path) -> dict[str, Any]:
        """What the folder says about the engine version that wrote it."""
        ...

    def release(self) -> str:
        """The engine release drconsole starts on backed-up files (``chromadb 1.5.9``):
        the backup is read, and a sandbox restore served, by it."""
        ...

    def server(self, workdir: Path) -> EngineServer:
        """A throwaway server whose data folder is ``workdir/data`` (``data_dir``)."""
        ...
