"""``drop_sandbox``: stop the run's throwaway target server and delete its data."""

from __future__ import annotations

import shutil
from pathlib import Path

from drconsole.actions.base import SUCCEEDED, ActionContext, Outcome, ProgressCallback
from drconsole.sandbox import stop_pid


def run_drop_sandbox(context: ActionContext, progress: ProgressCallback) -> Outcome:
    pid = context.target.get("sandbox_pid")
    folder = context.target.get("sandbox_dir")
    if not pid or not folder:
        return Outcome(SUCCEEDED, "no sandbox in this run: nothing to drop")
    running = stop_pid(int(pid), Path(folder))
    shutil.rmtree(folder, ignore_errors=True)
    state = "stopped" if running else "already gone"
    return Outcome(
        SUCCEEDED,
        f"sandbox server pid {pid} {state}; its data deleted",
        {"pid": pid, "folder": folder},
    )
