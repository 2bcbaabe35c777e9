"""The one error family: every failure a user can meet carries a message and a hint.

The CLI prints ``message`` then ``hint`` and exits non-zero; the TUI shows both in its
error modal. Messages name the file, line, key or URL involved and never contain secrets.
"""

from __future__ import annotations


class DrconsoleError(Exception):
    """A failure the user can act on: what went wrong, and what to do about it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(DrconsoleError):
    """Bad command-line input or bad arguments from a caller."""


class RunbookError(DrconsoleError):
    """A runbook failed to load; ``problems`` holds every ``FILE:LINE:COLUMN: message``."""

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        count = len(problems)
        summary = problems[0] if count == 1 else f"{count} problems in the runbook"
        super().__init__(summary, hint)
        self.problems = problems


class RecordError(DrconsoleError):
    """The incident record cannot be read, written or trusted."""


class RecordLockedError(RecordError):
    """Another process holds the record's writer lock."""


class RunStateError(DrconsoleError):
    """A runner request that does not fit the run's state (e.g. confirm a step not waiting)."""


class SecretError(DrconsoleError):
    """A credential reference could not be resolved; never includes the secret itself."""


class StoreError(DrconsoleError):
    """An object store (local folder or S3) failed or refused access."""


class IntegrityError(DrconsoleError):
    """Snapshot bytes or structure do not match what the manifest promises."""


class EngineError(DrconsoleError):
    """A vector database answered with an error or could not be reached."""


class SandboxError(DrconsoleError):
    """A throwaway local server could not be started or stopped."""
