"""Run records copied into the catalog (real S3, SeaweedFS): the team's timeline survives
the laptop, and the copy catches a record rolled back together with its head."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import BUCKET

from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner
from drconsole.sandbox import SeaweedS3
from drconsole.tui.app import Services

from helpers import run_cli, write_runbook

pytestmark = pytest.mark.integration


def test_records_are_copied_to_the_catalog_and_the_copy_catches_a_rollback(
    seaweed: SeaweedS3, s3_credentials: str, tmp_path: Path
) -> None:
    runbook_path = write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: mirrored
        title: A run copied to the catalog
        objectives: {{rto: 1h}}
        catalog: {{url: "s3://{BUCKET}/mirror-{tmp_path.name}", endpoint: "{seaweed.endpoint}",
                   credentials: "{s3_credentials}", allow_unsigned: true}}
        steps:
          - {{id: one, action: command, with: {{argv: ["true"]}}}}
          - {{id: two, action: command, with: {{argv: ["true"]}}}}
          - {{id: three, action: command, with: {{argv: ["true"]}}, marks: service_restored}}
        """,
    )
    runbook = load_runbook(runbook_path)
    runs = tmp_path / "runs"
    runner = Runner.start(runbook, "drill", RunStore(runs))
    runner.run_step("one")
    early = tmp_path / "early"
    early.mkdir()
    for path in runs.glob(f"{runner.run_id}.*"):
        shutil.copy(path, early / path.name)
    runner.run_step("two")
    runner.run_step("three")
    assert runner.finish() == "succeeded"
    runner.close()
    run_id = runner.run_id

    listed = json.loads(run_cli("runs", "list", "--catalog", str(runbook_path), "--json").stdout)
    assert [(run["run_id"], run["status"]) for run in listed] == [(run_id, "succeeded")]
    for path in early.iterdir():  # the local record and its head, rolled back together
        shutil.copy(path, runs / path.name)
    local = run_cli("runs", "verify", run_id, "--runs-dir", str(runs))
    assert local.returncode == 0, "alone, a record rolled back with its head verifies"
    assert "not checked: that the record and its head were not both rolled back" in local.stdout
    checked = run_cli(
        "runs", "verify", run_id, "--runs-dir", str(runs), "--catalog", str(runbook_path)
    )
    assert checked.returncode == 1
    assert "more than this record: this record was cut back" in checked.stdout
    shutil.rmtree(runs)
    again = json.loads(run_cli("runs", "list", "--catalog", str(runbook_path), "--json").stdout)
    assert [run["run_id"] for run in again] == [run_id], "the laptop's runs folder is gone"
    console = Services(runs=RunStore(tmp_path / "elsewhere"), runbook_path=runbook_path)
    timeline, _ = console.all_runs()
    assert [run.run_id for run in timeline] == [run_id], "the timeline reads the catalog's copy"
