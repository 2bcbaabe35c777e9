"""The ``command`` action: run a program from an argv list (never through a shell).

The program runs in its own process group so a timeout or a cancel stops it and its
children; its pid is recorded so an operator resuming after a crash can find it. The exit
code and the last lines of output are recorded with secrets masked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

from drconsole.actions.base import (
    FAILED,
    SUCCEEDED,
    ActionContext,
    Outcome,
    Progress,
    ProgressCallback,
)
from drconsole.errors import DrconsoleError
from drconsole.hooks import child_environment
from drconsole.secrets import is_reference, redact, resolve

STOP_GRACE_S = 5.0


def run_command(context: ActionContext, progress: ProgressCallback) -> Outcome:
    argv: list[str] = context.params["argv"]
    cwd = _working_dir(context)
    env, secrets = _environment(context.params.get("env") or {})
    for secret in secrets:
        context.add_secret(secret)
    tail: deque[str] = deque(maxlen=int(context.params.get("tail_lines", 40)))
    shown_argv = [redact(arg, secrets) for arg in argv]
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError:
        return Outcome(FAILED, f"command not found: {shown_argv[0]}", {"argv": shown_argv})
    except PermissionError:
        return Outcome(FAILED, f"command not executable: {shown_argv[0]}", {"argv": shown_argv})
    except OSError as error:
        return Outcome(
            FAILED, f"cannot start {shown_argv[0]}: {error.strerror}", {"argv": shown_argv}
        )
    progress(Progress(0, None, "", f"started pid {process.pid}", data={"pid": process.pid}))
    reader = threading.Thread(target=_collect, args=(process, tail), daemon=True)
    reader.start()
    while process.poll() is None:
        if context.cancel.wait(0.1):
            _stop(process)
            break
    reader.join(STOP_GRACE_S)
    output = redact("\n".join(tail), secrets)
    details = {
        "argv": shown_argv,
        "exit_code": process.returncode,
        "pid": process.pid,
        "output_tail": output,
    }
    if context.cancel.is_set():
        return Outcome(FAILED, f"stopped {shown_argv[0]} (pid {process.pid})", details)
    if process.returncode == 0:
        return Outcome(SUCCEEDED, f"{shown_argv[0]} exited 0", details)
    return Outcome(FAILED, f"{shown_argv[0]} exited {process.returncode}", details)


def _working_dir(context: ActionContext) -> Path:
    cwd = context.params.get("cwd")
    folder = context.runbook_dir if cwd is None else (context.runbook_dir / cwd)
    if not folder.is_dir():
        raise DrconsoleError(
            f"working directory {folder} does not exist", "fix `with.cwd` in the runbook"
        )
    return folder


def _environment(extra: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """A minimal environment (PATH, HOME, LANG, LC_ALL, TZ: none of drconsole's own
    credentials) plus ``extra``, with references resolved to secrets."""
    resolved: dict[str, str] = {}
    secrets: list[str] = []
    for name, value in extra.items():
        resolved[name] = resolve(value) if is_reference(value) else value
        if is_reference(value):
            secrets.append(resolved[name])
    return child_environment(resolved), secrets


def _collect(process: subprocess.Popen[bytes], tail: deque[str]) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        tail.append(raw.decode("utf-8", errors="replace").rstrip("\n"))


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL it after a grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return
            time.sleep(0.05)
