"""`drconsole demo` and sandbox drills, end to end, as a new user and cron would run them."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drconsole.corpus import CorpusSpec, records
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.pgvector.server import cluster_folder
from drconsole.incident import events as ev
from drconsole.incident.record import read_record

from chroma_restore import restore_runbook, seed, snapshot
from helpers import run_cli
from tmux import TmuxSession

pytestmark = pytest.mark.integration


def _processes_under(folder: Path) -> list[str]:
    """Live processes (other than this test) whose command line mentions folder."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in command and int(proc.name) != os.getpid():
            found.append(f"{proc.name}: {command[:120]}")
    return found


@pytest.mark.parametrize("catalog", ["local", "s3"])
def test_demo_headless_small_end_to_end(tmp_path: Path, catalog: str) -> None:
    workdir = tmp_path / "demo"
    started = time.monotonic()
    extra = ["--s3"] if catalog == "s3" else []
    result = run_cli(
        "demo", "--headless", "--size", "small", "--workdir", str(workdir), *extra, timeout=300
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert took < 120, f"the small demo took {took:.0f}s"
    assert "DISASTER" in result.stderr and "every gate passed" in result.stderr
    assert (workdir / "report.md").read_text().startswith("# Recovery report:")
    assert ("sandbox: s3" in (workdir / "demo.yaml").read_text()) is (catalog == "s3")
    runs = workdir / "runs"
    assert run_cli("runs", "verify", "latest", "--runs-dir", str(runs)).returncode == 0
    shown = json.loads(run_cli("runs", "show", "latest", "--json", "--runs-dir", str(runs)).stdout)
    assert shown["status"] == "succeeded" and shown["rto_met"] is True and shown["rto_s"] > 0
    steps = {step["id"]: step["status"] for step in shown["steps"]}
    assert all(steps[gate] == "succeeded" for gate in ("verify", "counts", "permissions", "golden"))
    assert steps["cleanup"] == "succeeded"
    assert _processes_under(workdir) == []

    again = run_cli("drill", str(workdir / "demo.yaml"), "--yes", "--json", "--runs-dir", str(runs))
    assert again.returncode == 0, (
        "the demo's runbook drills again later, in a new process: " + again.stdout[-1500:]
    )
    assert json.loads(again.stdout)["status"] == "succeeded"
    assert _processes_under(workdir) == [], "its sandbox S3 and Chroma were stopped again"
    checked = run_cli("catalog", "verify", str(workdir / "demo.yaml"), "--depth", "full", "--json")
    assert checked.returncode == 0, checked.stderr[-2000:]
    verified = json.loads(checked.stdout)
    assert verified["intact"] is True and verified["depth"] == "full"
    assert len(verified["snapshots"]) == 3, "a full and two incrementals, read through the runbook"


def test_demo_headless_on_pgvector(tmp_path: Path) -> None:
    """The demo with PostgreSQL as production: typed tables, an application role and
    row-level security, restored into a sandbox PostgreSQL and proven by every gate (the
    permissions gate acting as the role); no server or cluster folder is left behind."""
    workdir = tmp_path / "demo"
    result = run_cli(
        "demo", "--headless", "--engine", "pgvector", "--workdir", str(workdir), timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "every gate passed" in result.stderr
    runbook = (workdir / "demo.yaml").read_text()
    assert "target: {sandbox: pgvector}" in runbook and "tenant_role: kb_app" in runbook
    shown = json.loads(
        run_cli("runs", "show", "latest", "--json", "--runs-dir", str(workdir / "runs")).stdout
    )
    steps = {step["id"]: step["status"] for step in shown["steps"]}
    assert all(steps[gate] == "succeeded" for gate in ("verify", "counts", "permissions", "golden"))
    events = read_record(next((workdir / "runs").glob("*.jsonl"))).events
    as_role = [
        e.data for e in events if e.type == ev.CHECK_RESULT and e.data["check"] == "visible_as_role"
    ]
    assert len(as_role) == 8 and all(check["passed"] for check in as_role), (
        "four tenants in each of two tables, seen as kb_app"
    )
    sandbox = next(e for e in events if e.type == "run.started").data["target"]["sandbox_dir"]
    for folder in (workdir / "production", Path(sandbox)):
        assert not cluster_folder(folder).exists(), f"the cluster of {folder} was left behind"
    assert _processes_under(workdir) == []


def _finished_steps(runs: Path) -> dict[str, str]:
    records = sorted(runs.glob("*.jsonl"))
    if not records:
        return {}
    events = read_record(records[-1]).events
    return {e.step_id or "": e.data["status"] for e in events if e.type == "step.finished"}


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize(("catalog", "size"), [("local", (80, 24)), ("s3", (200, 50))])
def test_walking_the_demo_in_the_console(
    tmp_path: Path, catalog: str, size: tuple[int, int]
) -> None:
    """What a new user does: `drconsole demo` (the README's first command) in a terminal,
    press r on the newest snapshot, then x for each automated step and c for each manual
    one, f to finish, q; on a laptop's 80x24 and on a large screen."""
    workdir = tmp_path / "demo"
    extra = " --s3" if catalog == "s3" else ""
    terminal = TmuxSession(
        f"drconsole-demo-{catalog}-{os.getpid()}",
        f"{sys.executable} -m drconsole.cli demo{extra} --workdir {workdir}",
        width=size[0],
        height=size[1],
    )
    try:
        screen = terminal.wait_for("kb-I", 180)
        label = "s3://demo-backups/kb (sandbox S3 in s3)" if catalog == "s3" else "— catalog"
        assert label in screen
        newest = max(re.findall(r"\d{8}T\d{9}Z-kb-[FI]", screen))  # a narrow tree cuts the rest
        terminal.keys("r")
        terminal.wait_for("which kind of run?", 30)
        terminal.keys("Enter")
        runs = workdir / "runs"
        walk = [("announce", "c"), ("verify", "x"), ("schema", "x"), ("data", "x")]
        walk += [("counts", "x"), ("permissions", "x"), ("golden", "x")]
        walk += [("resume-ingestion", "c"), ("cleanup", "x")]
        for step, key in walk:
            deadline = time.monotonic() + 120
            while step not in _finished_steps(runs) and time.monotonic() < deadline:
                terminal.keys(key)
                time.sleep(1.0)
            assert _finished_steps(runs).get(step) == "succeeded", terminal.screen()
        deadline = time.monotonic() + 60  # the console takes f once it has seen every
        while "e export the report" not in terminal.screen() and time.monotonic() < deadline:
            terminal.keys("f")  # step settled, which the record may say first
            time.sleep(1.0)
        terminal.wait_for("e export the report", 5)
        terminal.keys("q")
        assert terminal.closed_within(60), "q did not end the demo"
    finally:
        terminal.kill()
    shown = json.loads(run_cli("runs", "show", "latest", "--json", "--runs-dir", str(runs)).stdout)
    assert shown["status"] == "succeeded" and shown["rto_met"] is True
    started = read_record(next(runs.glob("*.jsonl"))).events[0].data
    assert started["snapshot_request"].startswith(newest), "r restores the newest, selected first"
    deadline = time.monotonic() + 30
    while _processes_under(workdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_under(workdir) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupting_the_demo_leaves_no_process(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C runs drconsole's own clean-up; SIGKILL runs none, the watchdog does it."""
    workdir = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "drconsole.cli", "demo", "--headless", "--workdir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert demo.stderr is not None
    for line in demo.stderr:
        if "seeding" in line:
            break
    assert _processes_under(workdir), "the demo's production server should be running by now"
    demo.send_signal(sig)
    assert demo.wait(60) != 0
    deadline = time.monotonic() + 30
    while _processes_under(workdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_under(workdir) == []


def test_a_sandbox_drill_passes_over_a_tampered_newest_snapshot(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    seed(source_engine, "kb_articles", CorpusSpec("kb", 500))
    snapshot(source_engine, catalog, ["kb_articles"])
    source_engine.upsert("kb_articles", records(CorpusSpec("kb", 520, version=1), 500, 520))
    newest = snapshot(source_engine, catalog, ["kb_articles"], incremental=True)
    part = catalog / "snapshots" / newest.id / newest.collections[0].files_of("records")[0].path
    data = bytearray(part.read_bytes())
    data[12] ^= 0x20
    part.write_bytes(bytes(data))
    runs = tmp_path / "runs"
    lenient = restore_runbook(
        tmp_path, catalog, chroma_target, ["kb_articles"], name="lenient.yaml"
    )
    passed = run_cli(
        "drill",
        str(lenient),
        "--sandbox",
        "--yes",
        "--json",
        "--runs-dir",
        str(runs),
        "--report",
        str(tmp_path / "drill.md"),
    )
    assert passed.returncode == 4, passed.stderr[-2000:]  # restored, with a fallback to look at
    assert (
        json.loads(passed.stdout)["status_label"]
        == "succeeded with a fallback past 1 newer snapshot"
    )
    events = read_record(sorted(runs.glob("*.jsonl"))[-1]).events
    selected = next(e for e in events if e.type == "snapshot.selected").data
    assert selected["snapshot_id"] != newest.id
    assert (
        selected["skipped"][0]["snapshot_id"] == newest.id
        and "checksum" in selected["skipped"][0]["reason"]
    )
    started = next(e for e in events if e.type == "run.started").data["target"]
    assert started["url"] != chroma_target["url"], (
        "the drill restored into a sandbox, not the runbook's target"
    )
    assert "Recovery report" in (tmp_path / "drill.md").read_text()
    strict = restore_runbook(
        tmp_path, catalog, chroma_target, ["kb_articles"], fallback=False, name="strict.yaml"
    )
    failed = run_cli("drill", str(strict), "--sandbox", "--yes", "--runs-dir", str(runs))
    assert failed.returncode == 1
    assert f"newest snapshot {newest.id} is not restorable" in failed.stderr
    assert "checksum" in failed.stderr
    leftovers = list((runs / "sandboxes").iterdir()) if (runs / "sandboxes").exists() else []
    assert leftovers == [], "a finished drill's sandbox data must not be left behind"


def test_the_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = run_cli("demo", "--headless", "--workdir", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path} is not empty" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"], "nothing was touched"
    on_a_file = run_cli("demo", "--headless", "--workdir", str(tmp_path / "notes.txt"))
    assert on_a_file.returncode == 2 and "is a file, not a folder" in on_a_file.stderr
    assert "Traceback" not in on_a_file.stderr


def test_no_sandbox_extra_is_a_clear_message(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    code = (
        "import sys; from drconsole import sandbox; "
        "sandbox.sys.executable = '/nonexistent/python'; "
        "from drconsole.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "demo", "--headless", "--workdir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "pip install 'drconsole[sandbox]'" in result.stderr and "Traceback" not in result.stderr
