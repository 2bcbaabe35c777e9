"""How the CLI writes: rich tables to stdout, errors in one or two lines to stderr."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from drconsole.errors import DrconsoleError, RunbookError, UsageError

PIPE_WIDTH = 160


def _console(stderr: bool = False) -> Console:
    """A console that keeps tables readable when piped (rich assumes 80 columns)."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=PIPE_WIDTH)
    return console


stdout = _console()
stderr = _console(stderr=True)


def require_terminal(what: str, instead: str) -> None:
    """Refuse to draw a full-screen console on anything but a terminal (a pipe or a file
    would fill with escape codes until killed)."""
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise UsageError(f"{what} needs a terminal, and this is not one", f"use {instead}")


def print_error(error: DrconsoleError) -> None:
    """``error: message`` (one line per runbook problem), then ``hint: ...``."""
    lines = error.problems if isinstance(error, RunbookError) else [f"error: {error.message}"]
    for line in lines:
        print(line, file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def write_output(text: str, output: str | None) -> None:
    """Text to stdout, or atomically to a file (a reader never sees half a report)."""
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    target = Path(output)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    except OSError as error:
        raise UsageError(f"{target}: cannot write here ({error.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise DrconsoleError(
            f"{target}: could not write it ({error.strerror}); nothing was written",
            "free disk space or choose another place",
        ) from None
