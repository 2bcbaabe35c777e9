"""Every runbook shipped in runbooks/ loads, and the quick start's drill passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drconsole.runbook.loader import load_runbook

from helpers import run_cli

RUNBOOKS = sorted((Path(__file__).resolve().parents[2] / "runbooks").glob("*.yaml"))


def test_there_are_shipped_runbooks() -> None:
    assert RUNBOOKS


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda path: path.name)
def test_shipped_runbook_is_valid(path: Path) -> None:
    runbook = load_runbook(path)
    assert runbook.plan("drill") and runbook.plan("incident")


def test_quick_start_walkthrough_drill_passes(tmp_path: Path) -> None:
    walkthrough = next(path for path in RUNBOOKS if path.name == "walkthrough.yaml")
    result = run_cli("drill", str(walkthrough), "--json", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    assert summary["rto_met"] is True
