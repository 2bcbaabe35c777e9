"""The validated runbook: plain frozen dataclasses, no YAML left in them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drconsole.runbook.yamlsource import Position

SCHEMA = "drconsole/runbook/v1"
MODES = ("incident", "drill")
PHASES = ("prep", "verify", "schema", "data", "validation", "permissions", "cutover", "cleanup")
MILESTONES = ("impact_start", "declared", "restore_started", "service_restored", "closed")
KINDS = ("action", "manual", "approval")
ON_FAILURE = ("abort", "ask", "continue")


@dataclass(frozen=True)
class Retries:
    """How often a failed attempt is tried again, and how long to wait in between."""

    max: int = 0
    delay_s: float = 0.0


@dataclass(frozen=True)
class Step:
    """One step of the runbook, with every default already applied."""

    id: str
    title: str
    kind: str
    phase: str
    action: str | None
    params: dict[str, Any]
    instructions: str
    needs: tuple[str, ...]
    modes: tuple[str, ...]
    timeout_s: float | None
    retries: Retries
    on_failure: str
    gate: bool
    destructive: bool
    marks: tuple[str, ...]
    auto_confirm_in_drill: bool
    position: Position

    @property
    def is_manual(self) -> bool:
        """True for steps that wait for a person (manual work or an approval)."""
        return self.kind in ("manual", "approval")

    def runs_in(self, mode: str) -> bool:
        return mode in self.modes


@dataclass(frozen=True)
class Runbook:
    """A runbook that passed every load-time rule."""

    path: Path
    sha256: str
    id: str
    title: str
    owner: str | None
    description: str | None
    rto_s: float | None
    rpo_s: float | None
    catalog: dict[str, Any]
    target: dict[str, Any]
    source: dict[str, str]
    collections: tuple[str, ...]
    permissions: dict[str, Any]
    golden: str | None
    filters: tuple[dict[str, Any], ...]
    steps: tuple[Step, ...]
    extensions: dict[str, Any] = field(default_factory=dict)
    prefer: str = "logical"
    """Which snapshots a restore prefers: ``physical`` restores the newest physical
    backup by unpacking its files (into a sandbox, or a stopped target's ``data_dir``)."""

    def step(self, step_id: str) -> Step:
        return next(step for step in self.steps if step.id == step_id)

    def plan(self, mode: str) -> list[Step]:
        """The steps that run in mode, in execution order: ``needs`` first, then document
        order (the loader has already refused cycles)."""
        active = [step for step in self.steps if step.runs_in(mode)]
        ids = {step.id for step in active}
        placed: set[str] = set()
        ordered: list[Step] = []
        while len(ordered) < len(active):
            ready = next(
                step
                for step in active
                if step.id not in placed
                and all(need in placed or need not in ids for need in step.needs)
            )
            ordered.append(ready)
            placed.add(ready.id)
        return ordered

    @property
    def folder(self) -> Path:
        return self.path.parent

    def catalog_sandbox_folder(self) -> Path | None:
        """The folder a ``sandbox: s3`` catalog is served from (relative to the runbook)."""
        folder = self.catalog.get("folder")
        return self.folder / Path(folder).expanduser() if folder else None

    def catalog_key(self) -> str | None:
        """The catalog key's reference; a relative ``file:`` path is read from the
        runbook's own folder."""
        key = self.catalog.get("key")
        if key and key.startswith("file:"):
            path = Path(key.removeprefix("file:")).expanduser()
            return f"file:{path if path.is_absolute() else self.folder / path}"
        return key

    def catalog_location(self) -> str | None:
        """The catalog URL, a relative folder read from the runbook's own folder."""
        url = self.catalog.get("url")
        if url and "://" not in url and not Path(url).expanduser().is_absolute():
            return str(self.folder / url)
        return url
