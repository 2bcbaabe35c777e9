"""Secrets stay secret: distinctive tokens planted in `env:` and `keyring:` references (the
target's token, the S3 catalog's credentials, a step's environment) and in drconsole's
own environment never appear in any byte drconsole writes, nor in the environment of any
process it starts; what it writes is readable by its owner only."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BUCKET

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.s3 import S3Store
from drconsole.corpus import CorpusSpec
from drconsole.engines.chroma.server import ChromaServer
from drconsole.sandbox import SeaweedS3, start_server

from chroma_restore import seed
from helpers import catalog_key, run_cli, write_runbook

pytestmark = pytest.mark.integration

TARGET_TOKEN = "planted-target-7f3c9a01"
STEP_TOKEN = "planted-step-91b2e4c7"
AMBIENT = "planted-ambient-5d1e88aa"


def _every_byte(folder: Path) -> list[tuple[Path, bytes]]:
    return [(path, path.read_bytes()) for path in folder.rglob("*") if path.is_file()]


def test_no_planted_token_reaches_anything_drconsole_writes(
    source_engine, chroma_target: dict[str, str], seaweed: SeaweedS3, tmp_path: Path
) -> None:
    seed(source_engine, "kb_articles", CorpusSpec("kb", 60))
    prefix = f"hygiene-{tmp_path.name}"

    create_snapshot(
        SnapshotRequest(
            engine=source_engine,
            store=S3Store(BUCKET, prefix, endpoint=seaweed.endpoint, keys=seaweed.keys),
            collections=["kb_articles"],
            name="kb",
            key=catalog_key(tmp_path),
        )
    )
    env = {
        **os.environ,
        "DRC_TARGET_TOKEN": TARGET_TOKEN,
        "DRC_STEP_TOKEN": STEP_TOKEN,
        "AWS_SECRET_ACCESS_KEY": AMBIENT,
    }
    stored = subprocess.run(
        [sys.executable, "-m", "drconsole.cli", "secrets", "set", "hygiene-s3"],
        input=seaweed.credentials_value,
        text=True,
        capture_output=True,
        env=env,
        check=False,
    )
    assert stored.returncode == 0, stored.stderr
    s3_secret = seaweed.credentials_value.partition(":")[2]
    printenv = f'[{sys.executable}, -c, "import os; print(dict(os.environ))"]'
    runbook = write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: hygiene
        title: Secrets stay secret
        objectives: {{rto: 1h}}
        catalog: {{url: "s3://{BUCKET}/{prefix}", endpoint: "{seaweed.endpoint}",
                   credentials: "keyring:drconsole/hygiene-s3", key: "file:catalog.key"}}
        target: {{engine: chroma, url: "{chroma_target["url"]}",
                  database: {chroma_target["database"]}, token: "env:DRC_TARGET_TOKEN"}}
        source: {{engine: chroma, database: {source_engine.database}}}
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
          - {{id: schema, action: restore_schema}}
          - {{id: data, action: restore_data}}
          - id: leak
            action: command
            with: {{argv: {printenv}, env: {{API_TOKEN: "env:DRC_STEP_TOKEN"}}}}
          - id: crash
            action: command
            with: {{argv: [/nonexistent/tool]}}
            on_failure: continue
          - {{id: counts, action: check_counts, gate: true, marks: service_restored}}
        """,
    )
    runs = tmp_path / "runs"
    drill = subprocess.run(
        [
            sys.executable,
            "-m",
            "drconsole.cli",
            "drill",
            str(runbook),
            "--yes",
            "--json",
            "--runs-dir",
            str(runs),
            "--report",
            str(tmp_path / "report.md"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert drill.returncode == 0, drill.stderr[-2000:]
    exported = [
        run_cli("runs", "export", "latest", "--format", fmt, "--runs-dir", str(runs), env=env)
        for fmt in ("json", "md")
    ]
    leak = next(
        e
        for e in json.loads(exported[0].stdout)["events"]
        if e["type"] == "step.finished" and e["step_id"] == "leak"
    )
    assert "API_TOKEN" in leak["data"]["details"]["output_tail"], "the step printed its env"
    assert "DRC_TARGET_TOKEN" not in leak["data"]["details"]["output_tail"], "a minimal env"
    outputs = [drill.stdout, drill.stderr] + [r.stdout + r.stderr for r in exported]
    report = tmp_path / "report.md"
    written = [*_every_byte(runs), (report, report.read_bytes())]
    for token in (TARGET_TOKEN, STEP_TOKEN, AMBIENT, s3_secret):
        assert not any(token in text for text in outputs), f"{token} in the output"
        hits = [path for path, data in written if token.encode() in data]
        assert not hits, f"{token} written to {hits}"
    for path, _ in written:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is readable by others"
    assert stat.S_IMODE(runs.stat().st_mode) == 0o700


@pytest.mark.parametrize("kind", ["chroma", "seaweedfs"])
def test_sandbox_servers_and_their_watchdogs_get_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AMBIENT)
    monkeypatch.setenv("DRC_TARGET_TOKEN", TARGET_TOKEN)

    def make():
        return ChromaServer(tmp_path / "c") if kind == "chroma" else SeaweedS3(tmp_path / "s")

    server = start_server(make)
    try:
        for pid in (server.pid, server._guard.pid):  # type: ignore[union-attr]
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert AMBIENT.encode() not in environ and TARGET_TOKEN.encode() not in environ
            assert b"PATH=" in environ
        assert stat.S_IMODE(server.workdir.stat().st_mode) == 0o700
        assert stat.S_IMODE(server.log_path.stat().st_mode) == 0o600
    finally:
        server.stop()
