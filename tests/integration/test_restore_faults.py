"""Restores that survive faults: the drill killed mid-restore, the server restarted."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drconsole.actions.base import Progress
from drconsole.corpus import CorpusSpec
from drconsole.drill import DrillOptions, drive
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.incident.record import read_record
from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner

from chroma_restore import dump, kill_drill_mid_restore, restore_runbook, seed, snapshot
from helpers import process_alive, process_gone_within, run_cli

pytestmark = pytest.mark.integration


def _target(target: dict[str, str]) -> ChromaEngine:
    return ChromaEngine(target["url"], tenant=target["tenant"], database=target["database"])


def test_sigkill_during_restore_data_then_resume(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    seed(source_engine, "kb_articles", CorpusSpec("kb", 6000, seed=11))
    expected = dump(source_engine, "kb_articles")
    snapshot(source_engine, tmp_path / "catalog", ["kb_articles"])
    runbook = restore_runbook(
        tmp_path, tmp_path / "catalog", chroma_target, ["kb_articles"], batch=100, in_flight=1
    )
    runs = tmp_path / "runs"
    kill_drill_mid_restore(runbook, runs, checkpoints=3)
    killed_at = read_record(next(runs.glob("*.jsonl"))).events
    last_checkpoint = [e for e in killed_at if e.type == "step.progress" and e.step_id == "data"][
        -1
    ]
    acknowledged = last_checkpoint.data["checkpoint"]["records"]
    assert 0 < acknowledged < 6000

    resumed = run_cli(
        "drill",
        "--resume",
        "latest",
        "--rerun-interrupted",
        "--yes",
        "--json",
        "--runs-dir",
        str(runs),
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    assert dump(_target(chroma_target), "kb_articles") == expected
    events = read_record(next(runs.glob("*.jsonl"))).events
    finished = [e for e in events if e.type == "step.finished" and e.step_id == "data"]
    assert [e.data["status"] for e in finished] == ["cancelled", "succeeded"]
    details = finished[-1].data["details"]
    assert details["resumed_after"] >= acknowledged, (
        "the resumed attempt started over instead of continuing"
    )
    assert details["records"] == 6000, "a batch was lost or counted twice"
    assert run_cli("runs", "verify", "latest", "--runs-dir", str(runs)).returncode == 0


def test_server_restarted_mid_restore(tmp_path: Path) -> None:
    server = ChromaServer(tmp_path / "chroma")
    server.start()
    try:
        source = ChromaEngine(server.url, database="production")
        source.ensure_namespace()
        seed(source, "kb_articles", CorpusSpec("kb", 5000, seed=12))
        expected = dump(source, "kb_articles")
        snapshot(source, tmp_path / "catalog", ["kb_articles"])
        target = {
            "engine": "chroma",
            "url": server.url,
            "tenant": "default_tenant",
            "database": "restored",
        }
        runbook = restore_runbook(
            tmp_path, tmp_path / "catalog", target, ["kb_articles"], batch=250, in_flight=2
        )
        restarted = threading.Event()
        stopped_at: list[datetime] = []

        def bounce() -> None:
            nonlocal server
            server.stop()
            stopped_at.append(datetime.now(UTC))
            time.sleep(1.0)
            server = ChromaServer(tmp_path / "chroma", port=server.port)
            server.start()
            restarted.set()

        bouncer = threading.Thread(target=bounce)

        def progress_for(step_id: str):
            def seen(progress: Progress) -> None:
                if (
                    step_id == "data"
                    and progress.done >= 1000
                    and not bouncer.is_alive()
                    and not restarted.is_set()
                ):
                    bouncer.start()

            return seen

        runner = Runner.start(load_runbook(runbook), "drill", RunStore(tmp_path / "runs"))
        try:
            result = drive(runner, DrillOptions(yes=True), progress_for)
        finally:
            runner.close()
        bouncer.join(60)
        assert restarted.is_set(), "the server was never restarted during the restore"
        assert result.exit_code == 0, result.message
        events = read_record(next((tmp_path / "runs").glob("*.jsonl"))).events
        data_done = next(e for e in events if e.type == "step.finished" and e.step_id == "data")
        assert data_done.time > stopped_at[0], (
            "the restore had finished before the server went down"
        )
        assert data_done.attempt == 1, "the upserts' own retries carried the restore through"
        assert dump(ChromaEngine(server.url, database="restored"), "kb_articles") == expected
    finally:
        server.stop()


def test_a_killed_sandbox_drill_resumes_on_its_restored_data(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL takes the sandbox server down with drconsole (its watchdog); the resume
    serves the sandbox's folder again and continues after the last checkpoint, and the
    counts gate proves nothing restored before the kill was lost."""
    seed(source_engine, "kb_articles", CorpusSpec("kb", 3000, seed=13))
    snapshot(source_engine, tmp_path / "catalog", ["kb_articles"])
    runbook = restore_runbook(
        tmp_path,
        tmp_path / "catalog",
        chroma_target,
        ["kb_articles"],
        batch=100,
        in_flight=1,
        counts=True,
    )
    runs = tmp_path / "runs"
    kill_drill_mid_restore(runbook, Path("runs"), 3, "--sandbox", cwd=tmp_path)  # relative
    record = next(runs.glob("*.jsonl"))
    events = read_record(record).events
    sandbox = next(e for e in events if e.type == "run.started").data["target"]
    folder = Path(sandbox["sandbox_dir"])
    assert process_gone_within(sandbox["sandbox_pid"], 30), "the watchdog stops the server"
    acknowledged = [e for e in events if e.type == "step.progress" and e.step_id == "data"][-1]
    resume = ("drill", "--resume", "latest", "--rerun-interrupted", "--yes", "--json")

    folder.rename(folder.with_name("moved-away"))
    before = record.read_bytes()
    refused = run_cli(*resume, "--runs-dir", "runs", cwd=tmp_path)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert f"{folder} was deleted" in refused.stderr and "start a new drill" in refused.stderr
    assert record.read_bytes() == before, "a refused resume must not touch the record"

    folder.with_name("moved-away").rename(folder)
    resumed = run_cli(*resume, "--runs-dir", "runs", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    events = read_record(record).events
    revived = next(e for e in events if e.type == "run.resumed").data["target"]
    assert revived["url"] != sandbox["url"] and revived["sandbox_pid"] != sandbox["sandbox_pid"]
    data = [e for e in events if e.type == "step.finished" and e.step_id == "data"][-1].data
    assert data["details"]["resumed_after"] >= acknowledged.data["checkpoint"]["records"] > 0
    counts = [e for e in events if e.type == "step.finished" and e.step_id == "counts"][-1]
    assert counts.data["status"] == "succeeded", counts.data
    assert not folder.exists(), "the finished drill releases its sandbox"
    assert not process_alive(revived["sandbox_pid"])
