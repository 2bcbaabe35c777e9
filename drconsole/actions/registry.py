"""The action registry: every action a runbook step can name, with its parameters.

Specs are declarative and cheap to import (the runbook loader and the TUI need them at
start-up); an action's code is imported only when a step runs it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from drconsole.actions.base import ActionFunction
from drconsole.actions.params import Param


@dataclass(frozen=True)
class ActionSpec:
    """An action's name, default phase, parameters and where its code lives.

    ``requires`` names the runbook sections the action cannot work without
    (``catalog``, ``target``), checked when the runbook loads.
    """

    name: str
    phase: str
    summary: str
    params: tuple[Param, ...]
    entry: str
    destructive: bool = False
    requires: tuple[str, ...] = ()

    def param(self, name: str) -> Param | None:
        return next((param for param in self.params if param.name == name), None)

    def load(self) -> ActionFunction:
        """The action's function, imported from ``entry`` (``module:function``)."""
        module_name, _, function_name = self.entry.partition(":")
        return getattr(importlib.import_module(module_name), function_name)


COMMAND = ActionSpec(
    name="command",
    phase="prep",
    summary="Run a program (an argv list, no shell) and record its exit code and output tail",
    params=(
        Param("argv", "str_list", "the program and its arguments", required=True),
        Param("cwd", "str", "working directory, relative to the runbook's folder"),
        Param("env", "str_map", "extra environment; secrets as keyring:/env: references"),
        Param(
            "tail_lines",
            "int",
            "lines of output kept in the record",
            default=40,
            minimum=1,
            maximum=1000,
        ),
    ),
    entry="drconsole.actions.command:run_command",
)

BUILTIN: dict[str, ActionSpec] = {spec.name: spec for spec in (COMMAND,)}
