"""Restores into PostgreSQL that are interrupted, on a real PostgreSQL 18 with pgvector:
drconsole SIGKILLed during the COPY of the data and during the index build, each time
resumed to an exact table; and the server restarted in the middle of a restore."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest

from drconsole.engines import open_engine
from drconsole.engines.base import Engine
from drconsole.engines.pgvector.introspect import describe_table
from drconsole.engines.pgvector.server import PostgresServer
from drconsole.incident.record import read_record
from drconsole.sandbox import start_server

from chroma_restore import kill_drill_mid_restore, restore_runbook, run_drill, snapshot
from helpers import process_gone_within, run_cli

pytestmark = pytest.mark.integration

_schemas = itertools.count()
RESUME = ("drill", "--resume", "latest", "--rerun-interrupted", "--yes", "--json")


def _source(server: PostgresServer, rows: int, dimension: int) -> tuple[Engine, str]:
    """A table of ``rows`` random vectors with an HNSW index, in a schema of its own."""
    schema = f"src{next(_schemas)}"
    with server.connect() as connection:
        connection.execute("create extension if not exists vector")
        connection.execute(f"create schema {schema}")
        connection.execute(
            f"create table {schema}.items (id bigint primary key, "
            f"embedding vector({dimension}) not null, label text)"
        )
        connection.execute(
            f"insert into {schema}.items select n, "
            f"(select array_agg(random()::real) from generate_series(1, {dimension}) "
            "where n > 0)::vector, 'item ' || n from generate_series(1, %s::int) n",
            (rows,),
        )
        connection.execute(
            f"create index items_embedding_idx on {schema}.items using hnsw "
            "(embedding vector_cosine_ops) with (m = 16, ef_construction = 200)"
        )
    engine = open_engine(
        {
            "engine": "pgvector",
            "url": server.url,
            "schema": schema,
            "token": server.token_reference,
        }
    )
    return engine, schema


def _rows(engine: Engine, name: str) -> dict[str, tuple[object, bytes]]:
    return {
        record_id: (batch.metadatas[row], batch.vectors[row].tobytes())
        for batch in engine.scan(name, 1000)
        for row, record_id in enumerate(batch.ids)
    }


def _finished(record: Path, step: str) -> list[dict]:
    events = read_record(record).events
    return [e.data for e in events if e.type == "step.finished" and e.step_id == step]


def test_sigkill_during_the_copy_then_resume(postgres: PostgresServer, tmp_path: Path) -> None:
    engine, schema = _source(postgres, 6000, 16)
    expected = _rows(engine, "items")
    snapshot(engine, tmp_path / "catalog", ["items"], part_rows=500)
    target = {
        "engine": "pgvector",
        "url": postgres.url,
        "schema": f"dst{next(_schemas)}",
        "token": postgres.token_reference,
    }
    runbook = restore_runbook(
        tmp_path, tmp_path / "catalog", target, ["items"], batch=100, in_flight=1, counts=True
    )
    runs = tmp_path / "runs"
    kill_drill_mid_restore(runbook, runs, checkpoints=3)
    record = next(runs.glob("*.jsonl"))
    acknowledged = [
        e for e in read_record(record).events if e.type == "step.progress" and e.step_id == "data"
    ][-1].data["checkpoint"]["records"]
    assert 0 < acknowledged < 6000
    resumed = run_cli(*RESUME, "--runs-dir", str(runs))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    details = _finished(record, "data")[-1]["details"]
    assert details["resumed_after"] >= acknowledged and details["records"] == 6000
    assert _rows(open_engine(target), "items") == expected
    with postgres.connect() as connection:
        restored = describe_table(connection, target["schema"], "items")
        assert restored.to_json() == describe_table(connection, schema, "items").to_json()


def test_a_sandbox_drill_killed_during_the_index_build_resumes(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Killed while PostgreSQL builds the HNSW index in the sandbox: the build was one
    transaction, so nothing half-built is left; the resumed drill builds it again on the
    restored rows, the counts and content gate passes, and the finished drill removes
    the sandbox and its cluster."""
    engine, _ = _source(postgres, 8_000, 64)
    snapshot(engine, tmp_path / "catalog", ["items"], part_rows=4096)
    target = {"engine": "pgvector", "url": postgres.url, "schema": "public"}
    runbook = restore_runbook(
        tmp_path, tmp_path / "catalog", target, ["items"], batch=2000, counts=True
    )
    runs = tmp_path / "runs"
    kill_drill_mid_restore(runbook, Path("runs"), 1, "--sandbox", cwd=tmp_path, saying="index")
    record = next(runs.glob("*.jsonl"))
    sandbox = next(e for e in read_record(record).events if e.type == "run.started").data["target"]
    secret = (Path(sandbox["sandbox_dir"]) / "password").read_text()
    assert secret and secret not in record.read_text(), "the record names the file, not the secret"
    assert process_gone_within(sandbox["sandbox_pid"], 30), "the watchdog stops the server"
    cluster = (Path(sandbox["sandbox_dir"]) / "data").resolve().parent
    resumed = run_cli(*RESUME, "--runs-dir", "runs", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    data = _finished(record, "data")
    assert [item["status"] for item in data] == ["cancelled", "succeeded"]
    assert data[-1]["details"]["indexes_built"] == {"items": ["items_embedding_idx"]}, (
        "the index was built by the resumed attempt, so the kill came during its build"
    )
    assert _finished(record, "counts")[-1]["status"] == "succeeded"
    assert not Path(sandbox["sandbox_dir"]).exists() and not cluster.exists()


def test_the_server_restarted_mid_restore(postgres: PostgresServer, tmp_path: Path) -> None:
    """The target PostgreSQL goes down for a second while the data is copied in: the
    upserts' retries carry the restore through, and the table ends exact."""
    engine, _ = _source(postgres, 8_000, 16)
    expected = _rows(engine, "items")
    snapshot(engine, tmp_path / "catalog", ["items"], part_rows=500)
    server = start_server(lambda: PostgresServer(tmp_path / "target", durable=False))
    try:
        target = {
            "engine": "pgvector",
            "url": server.url,
            "schema": "restored",
            "token": server.token_reference,
        }
        runbook = restore_runbook(
            tmp_path, tmp_path / "catalog", target, ["items"], batch=50, in_flight=1
        )
        restarted, finished = threading.Event(), threading.Event()

        def restart_when_copying() -> None:
            with server.connect() as connection:
                while not finished.is_set():
                    found = connection.execute(
                        "select count(*) from pg_tables "
                        "where schemaname = 'restored' and tablename = 'items'"
                    ).fetchone()
                    if found and found[0]:
                        rows = connection.execute("select count(*) from restored.items").fetchone()
                        if rows and rows[0] >= 1000:
                            break
                    threading.Event().wait(0.02)
                else:
                    return
            server.stop()
            server.start()
            restarted.set()

        watcher = threading.Thread(target=restart_when_copying)
        watcher.start()
        try:
            result = run_drill(runbook, tmp_path / "runs")
        finally:
            finished.set()
            watcher.join(60)
        assert restarted.is_set(), "the server was restarted during the restore"
        assert result.exit_code == 0, result.message
        assert _rows(open_engine(target), "items") == expected
    finally:
        server.discard()
