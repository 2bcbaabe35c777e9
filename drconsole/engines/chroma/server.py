"""A throwaway Chroma server: the sandbox target of drills, the demo and the tests."""

from __future__ import annotations

from pathlib import Path

from drconsole.sandbox import EngineServer, find_executable, free_ports, http_ok


class ChromaServer(EngineServer):
    """``chroma run`` on a free port with its data in ``workdir/data``."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / "data"
        argv = [
            find_executable("chroma"),
            "run",
            "--path",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        super().__init__("chroma", argv, workdir, http_ok(f"{self.url}/api/v2/heartbeat"))
