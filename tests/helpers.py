"""Helpers shared by tests: a controllable clock, runbook writing, and small actions
that tests register in their own action registry."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drconsole.actions.base import FAILED, SUCCEEDED, ActionContext, Finding, Outcome, Progress
from drconsole.actions.params import Param
from drconsole.actions.registry import BUILTIN, ActionSpec
from drconsole.catalog.auth import CatalogKey
from drconsole.engines.adapter import EngineAdapter

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
KEY_FILE = "catalog.key"


def catalog_key(folder: Path) -> CatalogKey:
    """The catalog key kept in ``folder/catalog.key`` (made on first use, from
    os.urandom: some tests pin the secrets module), as a runbook beside it names it:
    ``key: file:catalog.key``."""
    path = folder / KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(os.urandom(32).hex())
        path.chmod(0o600)
    return CatalogKey.from_reference(f"file:{path}")


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


def write_runbook(folder: Path, text: str, name: str = "runbook.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``drconsole ARGS`` in a subprocess (the real entry point, exit code and streams)."""
    return subprocess.run(
        [sys.executable, "-m", "drconsole.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def process_alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(")", 1)[1].split()[0] != "Z"


def process_gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


_FLAKY_CALLS: dict[str, int] = {}


def flaky(context: ActionContext, progress) -> Outcome:
    """Fails ``fail_times`` times (counted per run and step), then succeeds."""
    key = f"{context.run_id}/{context.step_id}"
    _FLAKY_CALLS[key] = _FLAKY_CALLS.get(key, 0) + 1
    if _FLAKY_CALLS[key] <= context.params["fail_times"]:
        return Outcome(FAILED, f"failure {_FLAKY_CALLS[key]}")
    return Outcome(SUCCEEDED, f"worked on call {_FLAKY_CALLS[key]}")


def check(context: ActionContext, progress) -> Outcome:
    """A gate-like check: reports one finding and passes or fails as told."""
    passed = context.params["passes"]
    context.report_finding(
        Finding("count", passed, "help_articles", expected=10, actual=10 if passed else 7)
    )
    return Outcome(
        SUCCEEDED if passed else FAILED, "counts match" if passed else "3 records missing"
    )


def steps_with_checkpoints(context: ActionContext, progress) -> Outcome:
    """Reports a checkpoint per item, starting after the last checkpoint recorded."""
    start = (context.last_checkpoint or {}).get("done", 0)
    for done in range(start + 1, context.params["items"] + 1):
        progress(Progress(done, context.params["items"], "items", checkpoint={"done": done}))
    return Outcome(SUCCEEDED, f"started at {start}", {"started_at_item": start})


def crash(context: ActionContext, progress) -> Outcome:
    raise ZeroDivisionError("a bug in the action")


TEST_REGISTRY: dict[str, ActionSpec] = {
    **BUILTIN,
    "flaky": ActionSpec(
        "flaky",
        "data",
        "fails some times",
        (Param("fail_times", "int", "", default=0),),
        "helpers:flaky",
    ),
    "check": ActionSpec(
        "check",
        "validation",
        "a check",
        (Param("passes", "bool", "", default=True),),
        "helpers:check",
    ),
    "checkpoints": ActionSpec(
        "checkpoints",
        "data",
        "checkpointed work",
        (Param("items", "int", "", default=5),),
        "helpers:steps_with_checkpoints",
    ),
    "crash": ActionSpec("crash", "prep", "raises", (), "helpers:crash"),
}


LIMITED_ADAPTER = EngineAdapter(
    name="limited",
    title="Limited",
    engine_entry="drconsole.engines.memory.engine:open_memory",
    filter_operators=frozenset({"and", "eq"}),
    distances={"cosine": "cosine", "l2": "l2", "ip": "ip"},
    tested_against="nothing: a test's third-party adapter",
)
"""A third party's adapter that cannot rename and runs only ``and`` and ``eq``."""
