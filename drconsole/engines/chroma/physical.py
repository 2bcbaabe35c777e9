"""Chroma's physical backups: its data folder (``chroma.sqlite3`` and one folder of
index files per collection segment), copied while no server uses it."""

from __future__ import annotations

import sqlite3
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from drconsole.engines.chroma.server import ChromaServer
from drconsole.sandbox import EngineServer

SQLITE = "chroma.sqlite3"


class ChromaDataFolder:
    method = "data-folder"

    def written_by(self, folder: Path) -> dict[str, Any]:
        """The schema migrations the folder's database has applied, per part of Chroma
        (``sysdb``, ``metadb``, ``embeddings_queue``): which Chroma releases can open it
        without migrating it."""
        database = folder / SQLITE
        if not database.is_file():
            return {"migrations": None, "note": f"no {SQLITE} in the folder"}
        try:
            with sqlite3.connect(f"{database.as_uri()}?mode=ro&immutable=1", uri=True) as db:
                rows = db.execute(
                    "SELECT dir, MAX(version) FROM migrations GROUP BY dir"
                ).fetchall()
        except sqlite3.Error as error:
            return {"migrations": None, "note": f"{SQLITE} cannot be read ({error})"}
        return {"migrations": {str(part): int(version) for part, version in rows}}

    def release(self) -> str:
        try:
            return f"chromadb {version('chromadb')}"
        except PackageNotFoundError:
            return "chromadb (version unknown)"

    def server(self, workdir: Path) -> EngineServer:
        return ChromaServer(workdir)


DATA_FOLDER = ChromaDataFolder()
