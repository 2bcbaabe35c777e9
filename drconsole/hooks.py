"""Commands drconsole runs around its own work, such as the pair that pauses ingestion
before a snapshot's scan and resumes it after (``--quiesce`` / ``--unquiesce``).

A hook runs without a shell, in its own process group, with a minimal environment (no
credential of drconsole's leaks into it), bounded by a timeout that stops the whole group.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess

from drconsole.errors import DrconsoleError, UsageError

KEPT_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
HOOK_TIMEOUT_S = 300.0


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What a child process of drconsole gets: PATH, HOME, LANG, LC_ALL and TZ as
    drconsole has them, plus ``extra``; nothing else of drconsole's environment."""
    env = {name: os.environ[name] for name in KEPT_VARIABLES if name in os.environ}
    env.update(extra or {})
    return env


def hook_argv(command: str, option: str) -> list[str]:
    """The argv of a hook given as one string (split like a shell would, never run by
    one); refused when empty or unbalanced."""
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise UsageError(f"{option} {command!r}: {error}") from None
    if not argv:
        raise UsageError(f"{option} names no command")
    return argv


def run_hook(argv: list[str], role: str, timeout_s: float = HOOK_TIMEOUT_S) -> None:
    """Run a hook to completion; raises DrconsoleError naming it when it cannot be
    started, exits non-zero, or runs past the timeout (its process group is killed)."""
    try:
        process = subprocess.Popen(
            argv,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        raise DrconsoleError(
            f"the {role} command {argv[0]} cannot be started ({error.strerror})",
            "check the command and that it is on PATH",
        ) from None
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise DrconsoleError(
            f"the {role} command {argv[0]} did not finish within {timeout_s:g} s; it was stopped"
        ) from None
    if process.returncode != 0:
        lines = output.decode("utf-8", errors="replace").strip().splitlines()
        last = f": {lines[-1][:200]}" if lines else ""
        raise DrconsoleError(
            f"the {role} command {argv[0]} exited {process.returncode}{last}",
            "fix the command, or run without it",
        )
