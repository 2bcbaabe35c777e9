"""Chroma's physical backups: its data folder (``chroma.sqlite3`` and one folder of
index files per collection segment), copied while no server uses it."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from drconsole.engines.chroma.server import ChromaServer
from drconsole.engines.physical import give_to
from drconsole.errors import UsageError
from drconsole.sandbox import EngineServer

SQLITE = "chroma.sqlite3"


class ChromaDataFolder:
    method = "data-folder"
    from_server = False
    incremental = False
    manifest_name = ""
    check_tool = None

    def written_by(self, folder: Path) -> dict[str, Any]:
        """The schema migrations the folder's database has applied, per part of Chroma
        (``sysdb``, ``metadb``, ``embeddings_queue``): which Chroma releases can open it
        without migrating it."""
        database = folder / SQLITE
        if not database.is_file():
            return {"migrations": None, "note": f"no {SQLITE} in the folder"}
        try:
            with sqlite3.connect(f"{database.as_uri()}?mode=ro&immutable=1", uri=True) as db:
                query = "SELECT dir, MAX(version) FROM migrations GROUP BY dir"
                rows = db.execute(query).fetchall()
        except sqlite3.Error as error:
            return {"migrations": None, "note": f"{SQLITE} cannot be read ({error})"}
        return {"migrations": {str(part): int(version) for part, version in rows}}

    def release(self) -> str:
        try:
            return f"chromadb {version('chromadb')}"
        except PackageNotFoundError:
            return "chromadb (version unknown)"

    def take(
        self, url: str, token: str | None, into: Path, parent_manifest: Callable[[], bytes] | None
    ) -> None:
        raise UsageError("Chroma's physical backups copy a stopped server's folder")

    def check(self, folder: Path) -> None:
        """Chroma has no tool of its own to check a folder: the parts' digests are all."""

    def assemble(self, folders: list[Path], output: Path) -> None:
        if len(folders) != 1:
            raise UsageError("Chroma's physical snapshots have no incrementals to combine")
        folders[0].rename(output)

    def adopt(self, folder: Path, workdir: Path | None, owner: tuple[int, int] | None) -> None:
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            give_to(folder, owner)

    def data_folder(self, workdir: Path) -> Path:
        return ChromaServer(workdir).data_dir

    def server(self, workdir: Path) -> EngineServer:
        return ChromaServer(workdir)


DATA_FOLDER = ChromaDataFolder()
