"""Where runs live: one ``<run-id>.jsonl`` per run in the runs folder, found by id."""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path

from drconsole.durable import private_folder
from drconsole.errors import DrconsoleError, RecordError
from drconsole.incident.lock import is_locked
from drconsole.incident.metrics import RunMetrics, compute_metrics
from drconsole.incident.record import RecordRead, read_record
from drconsole.timefmt import compact_utc

ENV_RUNS_DIR = "DRCONSOLE_RUNS_DIR"


def default_runs_dir() -> Path:
    """``$DRCONSOLE_RUNS_DIR``, else the user data folder's ``drconsole/runs``."""
    if configured := os.environ.get(ENV_RUNS_DIR):
        return Path(configured).expanduser()
    import platformdirs

    return platformdirs.user_data_path("drconsole") / "runs"


class RunStore:
    """The runs folder: creates run ids, finds records, computes their metrics."""

    def __init__(self, folder: Path) -> None:
        """``folder`` is made absolute once, here: paths recorded in a run (its sandbox's
        folder) must mean the same thing when it is resumed from another directory."""
        self.folder = folder.expanduser().absolute()

    def ensure(self) -> None:
        try:
            private_folder(self.folder)
        except OSError as error:
            raise RecordError(
                f"{self.folder}: cannot create the runs folder ({error.strerror})",
                f"pass --runs-dir DIR or set {ENV_RUNS_DIR} to a writable folder",
            ) from None

    def record_path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.jsonl"

    def writer_alive(self, run_id: str) -> bool:
        return is_locked(self.record_path(run_id))

    def new_run_id(self, runbook_id: str, mode: str, moment: datetime) -> str:
        return f"{compact_utc(moment)}-{runbook_id}-{mode}-{secrets.token_hex(2)}"

    def run_ids(self) -> list[str]:
        """Every run in the folder, oldest first (ids start with their UTC start time)."""
        if not self.folder.is_dir():
            return []
        return sorted(path.stem for path in self.folder.glob("*.jsonl"))

    def resolve(self, reference: str) -> str:
        """A run id from an exact id, a unique prefix, or ``latest``."""
        ids = self.run_ids()
        if not ids:
            raise DrconsoleError(
                f"no runs in {self.folder}", "start one with `drconsole drill RUNBOOK`"
            )
        if reference == "latest":
            return ids[-1]
        if reference in ids:
            return reference
        matches = [run_id for run_id in ids if run_id.startswith(reference)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise DrconsoleError(
                f"no run {reference!r} in {self.folder}", "list runs with `drconsole runs list`"
            )
        shown = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise DrconsoleError(
            f"{reference!r} matches {len(matches)} runs: {shown}", "give more of the id"
        )

    def read(self, run_id: str) -> RecordRead:
        return read_record(self.record_path(run_id))

    def metrics(self, run_id: str) -> RunMetrics:
        read = self.read(run_id)
        if not read.events:
            raise RecordError(
                f"{read.path}: {read.problem}; no event can be read",
                f"inspect it with `drconsole runs verify {run_id}`",
            )
        return compute_metrics(read.events, self.writer_alive(run_id), read.integrity)

    def all_metrics(self) -> tuple[list[RunMetrics], list[str]]:
        """Metrics of every readable run (oldest first), and one message per unreadable one."""
        runs: list[RunMetrics] = []
        unreadable: list[str] = []
        for run_id in self.run_ids():
            try:
                runs.append(self.metrics(run_id))
            except RecordError as error:
                unreadable.append(error.message)
        runs.sort(key=lambda run: (run.started_at is None, run.started_at))
        return runs, unreadable
