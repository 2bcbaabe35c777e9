"""Sandbox S3 catalogs: one server per folder, served on demand, refused when taken."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from drconsole.catalog.open import open_runbook_catalog
from drconsole.engines.chroma.server import ChromaServer
from drconsole.errors import SandboxError
from drconsole.runbook.loader import load_runbook
from drconsole.sandbox import PortTaken, serve_s3, start_server

from helpers import write_runbook

pytestmark = pytest.mark.integration

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from drconsole.sandbox import serve_s3
    serve_s3(Path(sys.argv[1]))
    print("serving", flush=True)
    time.sleep(600)
    """
)


def test_a_runbook_serves_its_sandbox_s3_once_and_masks_its_secret(tmp_path: Path) -> None:
    (tmp_path / "s3" / "data").mkdir(parents=True)
    serve_s3(tmp_path / "s3").create_bucket("backups")
    runbook = load_runbook(
        write_runbook(
            tmp_path,
            """
            schema: drconsole/runbook/v1
            id: sandboxed
            title: A catalog in a sandbox S3
            objectives: {rto: 1h}
            catalog: {sandbox: s3, folder: s3, url: "s3://backups/kb"}
            steps:
              - {id: done, kind: manual, instructions: "-", marks: service_restored}
            """,
        )
    )
    secrets: list[str] = []
    store = open_runbook_catalog(runbook, secrets.append)
    with store.writer("hello.txt") as out:
        out.write(b"hi")
    assert open_runbook_catalog(runbook).read("hello.txt") == b"hi"
    server = serve_s3(tmp_path / "s3")
    assert secrets == [server.secret_key], "the sandbox's secret is masked in records"
    assert serve_s3(tmp_path / "s3") is server, "one server per folder and process"
    server.stop()
    assert open_runbook_catalog(runbook).read("hello.txt") == b"hi", (
        "a stopped sandbox is served again from its folder, data intact"
    )
    serve_s3(tmp_path / "s3").stop()


def test_a_folder_served_by_another_process_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "s3"
    (folder / "data").mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "serving"
        with pytest.raises(SandboxError) as refused:
            serve_s3(folder)
        assert f"being served by another drconsole (pid {holder.pid})" in refused.value.message
    finally:
        holder.terminate()
        holder.wait(30)


def test_a_missing_sandbox_folder_is_a_clear_refusal(tmp_path: Path) -> None:
    with pytest.raises(SandboxError) as refused:
        serve_s3(tmp_path / "nowhere")
    assert "no sandbox S3 folder here" in refused.value.message
    assert "drconsole demo --s3" in (refused.value.hint or "")


def test_a_port_taken_before_the_server_binds_it_is_retried_on_fresh_ports(
    tmp_path: Path,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        made: list[ChromaServer] = []

        def make() -> ChromaServer:
            made.append(ChromaServer(tmp_path, port=taken if not made else None))
            return made[-1]

        server = start_server(make)
        try:
            assert [m.port for m in made] == [taken, server.port], "retried once, on a new port"
            assert "not available" in (tmp_path / "chroma.log").read_text()
            assert httpx.get(f"{server.url}/api/v2/heartbeat").status_code == 200
        finally:
            server.stop()
        with pytest.raises(PortTaken, match="not available"):
            start_server(lambda: ChromaServer(tmp_path, port=taken), attempts=2)


def test_a_folder_it_cannot_write_in_is_a_clear_refusal(tmp_path: Path) -> None:
    (tmp_path / "s3" / "data").mkdir(parents=True)
    (tmp_path / "s3" / "serving.lock").mkdir()  # a lock file that cannot be opened
    with pytest.raises(SandboxError) as refused:
        serve_s3(tmp_path / "s3")
    assert "cannot write the sandbox's lock file" in refused.value.message
