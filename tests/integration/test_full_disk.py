"""A full disk, for real: each command runs in a private mount namespace on a tiny tmpfs
(``unshare -m``, as root), so writes fail with ENOSPC as they would on a full volume.
Every write path says so in one clear line, leaves no temporary file behind, and a run
whose record filled the disk resumes once there is room again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drconsole.corpus import CorpusSpec

from chroma_restore import seed
from helpers import write_runbook

pytestmark = pytest.mark.integration

DRCONSOLE = f"{sys.executable} -m drconsole.cli"


def _on_tiny_disk(folder: Path, size: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh) with ``folder`` a tmpfs of ``size``, seen by nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.strip()}")
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs {folder} && {script}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )


def _leftovers(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("LEFT ")]


def test_a_snapshot_into_a_full_catalog_says_so_and_leaves_nothing_half_written(
    source_engine, tmp_path: Path
) -> None:
    seed(source_engine, "kb_articles", CorpusSpec("kb", 3000))
    catalog = tmp_path / "catalog"
    done = _on_tiny_disk(
        catalog,
        "256k",
        f"{DRCONSOLE} snapshot create --url {source_engine.url} --database "
        f"{source_engine.database} --collections kb_articles --catalog {catalog}; "
        f"echo EXIT=$?; find {catalog} -name '.drconsole-tmp-*' | sed 's/^/LEFT /'",
    )
    assert "EXIT=2" in done.stdout, done.stderr
    assert "Traceback" not in done.stderr
    assert "could not write to the catalog (No space left on device)" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2
    assert _leftovers(done.stdout) == []


def test_reports_and_exports_on_a_full_disk_say_so(tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        schema: drconsole/runbook/v1
        id: tiny
        title: Tiny
        objectives: {rto: 1h}
        steps:
          - {id: one, kind: manual, instructions: "-", auto_confirm_in_drill: true,
             marks: service_restored}
        """,
    )
    out = tmp_path / "out"
    runs = tmp_path / "runs"
    done = _on_tiny_disk(
        out,
        "8k",
        f"head -c 8192 /dev/zero > {out}/filler 2>/dev/null; "
        f"{DRCONSOLE} drill {runbook} --yes --runs-dir {runs} --report {out}/report.md; "
        f"echo DRILL=$?; "
        f"{DRCONSOLE} runs export latest --runs-dir {runs} --format json -o {out}/run.json; "
        f"echo EXPORT=$?; ls -a {out} | grep -v '^[.]*$' | grep -v filler | sed 's/^/LEFT /'",
    )
    assert "DRILL=2" in done.stdout and "EXPORT=2" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("could not write it (No space left on device)") == 2
    assert _leftovers(done.stdout) == []


def test_a_run_that_filled_its_disk_resumes_once_there_is_room(tmp_path: Path) -> None:
    """The runs folder fills mid-run: the drill stops with one clear line; with room made,
    --resume finishes and the record verifies. (Where the disk ran out decides whether a
    line was torn or its head anchor was not written; the torn line's repair is tested in
    tests/unit/test_record.py and test_runner.py.)"""
    steps = "".join(
        f"""
          - id: step{n}
            action: command
            with: {{argv: [{sys.executable}, -c, "print('x' * 2700)"]}}"""
        for n in range(12)
    )
    runbook = write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: filler
        title: Fills its disk
        objectives: {{rto: 1h}}
        steps:{steps}
          - {{id: done, kind: manual, instructions: "-", auto_confirm_in_drill: true,
             marks: service_restored}}
        """,
    )
    runs = tmp_path / "runs"
    done = _on_tiny_disk(
        runs,
        "256k",
        f"head -c 240000 /dev/zero > {runs}/filler 2>/dev/null; "
        f"{DRCONSOLE} drill {runbook} --yes --runs-dir {runs}; echo FIRST=$?; "
        f"rm {runs}/filler; "
        f"{DRCONSOLE} drill --resume latest --rerun-interrupted --yes --runs-dir {runs} --json "
        f"> {runs}/resumed.json; echo SECOND=$?; "
        f"{DRCONSOLE} runs verify latest --runs-dir {runs}; echo VERIFY=$?",
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert "FIRST=2" in done.stdout or "FIRST=1" in done.stdout, done.stdout + done.stderr
    assert "No space left on device" in done.stderr
    assert "SECOND=0" in done.stdout, done.stdout + done.stderr
    assert "VERIFY=0" in done.stdout, done.stdout


def test_a_physical_restore_onto_a_full_disk_says_so_and_leaves_the_target_folder_as_it_was(
    tmp_path: Path,
) -> None:
    """The incident swap's folder is on a disk too small for the backup: the data step
    fails in one clear line and the target's folder is untouched (nothing swapped)."""
    from test_physical_chroma import backup_of_a_stopped_source, drill_runbook

    catalog = tmp_path / "catalog"
    backup_of_a_stopped_source(tmp_path)
    disk = tmp_path / "disk"
    drill_runbook(
        tmp_path,
        target=f'{{engine: chroma, url: "http://127.0.0.1:9", data_dir: "{disk / "data"}"}}',
        steps="""
          - {id: counts, action: check_counts, gate: true, marks: service_restored}
        """,
    )
    assert catalog.is_dir()
    done = _on_tiny_disk(
        disk,
        "1m",
        f"mkdir {disk / 'data'} && echo old > {disk / 'data' / 'marker'} && cd {tmp_path} && "
        f"{DRCONSOLE} drill runbook.yaml --mode incident --json --runs-dir runs; "
        f"echo EXIT=$?; cat {disk / 'data' / 'marker'}; ls {disk} | sed 's/^/HAS /'",
    )
    assert "EXIT=1" in done.stdout, done.stderr
    assert "Traceback" not in done.stderr
    assert "old" in done.stdout.splitlines(), "the target's folder is untouched"
    assert not [line for line in done.stdout.splitlines() if ".before-" in line], "no swap"
    record = next((tmp_path / "runs").glob("*.jsonl")).read_text()
    assert "No space left on device" in record and "run the step again" in record
