"""``drop_sandbox``: stop the run's throwaway target server and delete its data."""

from __future__ import annotations

from pathlib import Path

from drconsole.actions.base import SUCCEEDED, ActionContext, Outcome, ProgressCallback
from drconsole.sandbox import remove_sandbox


def run_drop_sandbox(context: ActionContext, progress: ProgressCallback) -> Outcome:
    pid = context.target.get("sandbox_pid")
    folder = context.target.get("sandbox_dir")
    if not pid or not folder:
        return Outcome(SUCCEEDED, "no sandbox in this run: nothing to drop")
    running = remove_sandbox(int(pid), Path(folder))
    state = "stopped" if running else "already gone"
    return Outcome(
        SUCCEEDED,
        f"sandbox server pid {pid} {state}; its data deleted",
        {"pid": pid, "folder": folder},
    )
