"""Checks of one runbook step, producing a ``Step`` with every default applied."""

from __future__ import annotations

import re
from typing import Any

from drconsole.actions.registry import ActionSpec
from drconsole.runbook import placeholders
from drconsole.runbook.checks import (
    Problems,
    boolean,
    check_keys,
    choice,
    duration,
    mapping,
    string,
    string_list,
    suggestion,
)
from drconsole.runbook.model import KINDS, MILESTONES, MODES, ON_FAILURE, PHASES, Retries, Step
from drconsole.runbook.yamlsource import Position, YNode

STEP_KEYS = (
    "id",
    "title",
    "phase",
    "action",
    "with",
    "kind",
    "instructions",
    "needs",
    "when",
    "timeout",
    "retries",
    "on_failure",
    "gate",
    "destructive",
    "marks",
    "auto_confirm_in_drill",
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
STEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_RETRIES = 100


class StepReader:
    """Reads steps one by one; keeps what the graph checks need (ids, needs positions)."""

    def __init__(self, registry: dict[str, ActionSpec], problems: Problems, source: str) -> None:
        self.registry = registry
        self.problems = problems
        self.source = source
        self.seen_automated = False
        self.id_nodes: list[tuple[str, YNode]] = []
        self.need_nodes: dict[str, list[tuple[str, YNode]]] = {}
        self.mark_nodes: dict[Position, YNode] = {}

    def read(self, node: YNode, index: int) -> Step | None:
        fields = mapping(node, f"step #{index + 1}", self.problems)
        if fields is None:
            return None
        check_keys(node, STEP_KEYS, "a step", self.problems, extensions=True)
        step_id = self._step_id(fields, node, index)
        kind, spec = self._kind_and_action(fields, node)
        params = self._params(fields, spec)
        instructions = self._instructions(fields, kind, node)
        phase = choice(fields.get("phase"), "phase", PHASES, self.problems)
        if phase is None:
            phase = self._default_phase(kind, spec)
        if kind == "action":
            self.seen_automated = True
        on_failure = choice(fields.get("on_failure"), "on_failure", ON_FAILURE, self.problems)
        gate = bool(boolean(fields.get("gate"), "gate", self.problems))
        if gate and on_failure == "continue":
            self.problems.add(
                fields["on_failure"],
                "a gate cannot continue on failure: drop `gate: true` or use on_failure ask/abort",
            )
        auto_confirm = bool(
            boolean(fields.get("auto_confirm_in_drill"), "auto_confirm_in_drill", self.problems)
        )
        if auto_confirm and kind == "action":
            self.problems.add(
                fields["auto_confirm_in_drill"],
                "auto_confirm_in_drill applies to manual and approval steps only",
            )
        destructive = boolean(fields.get("destructive"), "destructive", self.problems)
        if destructive is False and spec is not None and spec.is_destructive(params):
            self.problems.add(
                fields["destructive"],
                f"{spec.name} with these parameters deletes data: "
                "it cannot be `destructive: false`",
            )
        needs = string_list(fields.get("needs"), "needs", self.problems) or []
        if step_id is None:
            return None
        self.id_nodes.append((step_id, fields["id"]))
        self.need_nodes.setdefault(step_id, needs)
        if "marks" in fields:
            self.mark_nodes[node.position] = fields["marks"]
        if kind is None:
            return None
        return Step(
            id=step_id,
            title=string(fields.get("title"), "title", self.problems) or _title_from(step_id),
            kind=kind,
            phase=phase,
            action=spec.name if spec else None,
            params=params,
            instructions=instructions,
            needs=tuple(dict.fromkeys(name for name, _ in needs)),
            modes=self._modes(fields.get("when")),
            timeout_s=duration(fields.get("timeout"), "timeout", self.problems),
            retries=self._retries(fields.get("retries")),
            on_failure=on_failure or "ask",
            gate=gate,
            destructive=destructive
            if destructive is not None
            else bool(spec and spec.is_destructive(params)),
            marks=self._marks(fields.get("marks")),
            auto_confirm_in_drill=auto_confirm,
            position=node.position,
        )

    def _step_id(self, fields: dict[str, YNode], node: YNode, index: int) -> str | None:
        if "id" not in fields:
            self.problems.add(node, f"step #{index + 1} has no id")
            return None
        step_id = string(fields["id"], "id", self.problems)
        if step_id is not None and not STEP_ID.match(step_id):
            self.problems.add(
                fields["id"],
                f"step id {step_id!r} must be letters, digits, '.', '_' or '-' (at most 64)",
            )
            return None
        return step_id

    def _kind_and_action(
        self, fields: dict[str, YNode], node: YNode
    ) -> tuple[str | None, ActionSpec | None]:
        kind = choice(fields.get("kind"), "kind", KINDS, self.problems)
        action_node = fields.get("action")
        if kind in ("manual", "approval"):
            if action_node is not None:
                self.problems.add(action_node, f"a {kind} step cannot also name an action")
            return kind, None
        if action_node is None:
            if "kind" not in fields:
                self.problems.add(
                    node, "a step needs `action: NAME` or `kind: manual` / `kind: approval`"
                )
            elif kind == "action":
                self.problems.add(fields["kind"], "a `kind: action` step needs `action: NAME`")
            return None, None
        name = string(action_node, "action", self.problems)
        if name is None:
            return None, None
        spec = self.registry.get(name)
        if spec is None:
            self.problems.add(
                action_node,
                f"unknown action {name!r}{suggestion(name, self.registry)} "
                f"(known: {', '.join(sorted(self.registry))})",
            )
            return None, None
        return "action", spec

    def _params(self, fields: dict[str, YNode], spec: ActionSpec | None) -> dict[str, Any]:
        with_node = fields.get("with")
        if with_node is not None and spec is None:
            if "action" not in fields:
                self.problems.add(with_node, "`with` belongs to action steps only")
            return {}
        if spec is None:
            return {}
        given = mapping(with_node, "with", self.problems) or {}
        if with_node is not None and with_node.is_mapping:
            check_keys(
                with_node, [p.name for p in spec.params], f"`with` of {spec.name}", self.problems
            )
        params: dict[str, Any] = {}
        for param in spec.params:
            if param.name not in given:
                if param.required:
                    where = with_node if with_node is not None else fields["action"]
                    self.problems.add(where, f"{spec.name} needs `with.{param.name}`: {param.help}")
                elif param.default is not None:
                    params[param.name] = param.default
                continue
            value_node = given[param.name]
            try:
                params[param.name] = param.convert(value_node.plain())
            except ValueError as error:
                self.problems.add(value_node, f"with.{param.name} {error}")
        return params

    def _instructions(self, fields: dict[str, YNode], kind: str | None, node: YNode) -> str:
        instructions_node = fields.get("instructions")
        if instructions_node is None:
            if kind in ("manual", "approval"):
                self.problems.add(
                    node, f"a {kind} step needs instructions: what the operator must do"
                )
            return ""
        text = string(instructions_node, "instructions", self.problems)
        if text is None:
            return ""
        for offset, raw, problem in placeholders.find(text):
            if problem:
                self.problems.add(self._locate(instructions_node, raw, offset), problem)
        return text

    def _locate(self, node: YNode, raw: str, offset: int) -> Position:
        """The position of a placeholder inside a scalar, found in the source text."""
        found = node.index - 1
        for _ in range(node.value[:offset].count(raw) + 1):
            found = self.source.find(raw, found + 1)
            if found < 0:
                return node.position
        breaks = list(_LINE_BREAK.finditer(self.source, 0, found))
        line_start = breaks[-1].end() if breaks else 0
        return Position(len(breaks) + 1, found - line_start + 1)

    def _default_phase(self, kind: str | None, spec: ActionSpec | None) -> str:
        if spec is not None:
            return spec.phase
        return "cutover" if self.seen_automated else "prep"

    def _modes(self, node: YNode | None) -> tuple[str, ...]:
        fields = mapping(node, "when", self.problems)
        if fields is None or node is None:
            return MODES
        check_keys(node, ("modes",), "when", self.problems)
        if "modes" not in fields:
            self.problems.add(node, "when needs `modes: [incident, drill]` (or one of them)")
            return MODES
        modes: list[str] = []
        for name, item in string_list(fields["modes"], "when.modes", self.problems) or []:
            if name not in MODES:
                self.problems.add(
                    item, f"unknown mode {name!r} (use incident or drill){suggestion(name, MODES)}"
                )
            elif name not in modes:
                modes.append(name)
        if not modes:
            return MODES
        return tuple(mode for mode in MODES if mode in modes)

    def _retries(self, node: YNode | None) -> Retries:
        fields = mapping(node, "retries", self.problems)
        if fields is None or node is None:
            return Retries()
        check_keys(node, ("max", "delay"), "retries", self.problems)
        count = 0
        max_node = fields.get("max")
        if max_node is None:
            self.problems.add(node, "retries needs `max: N`")
        elif (
            isinstance(max_node.value, bool)
            or not isinstance(max_node.value, int)
            or not (0 <= max_node.value <= MAX_RETRIES)
        ):
            self.problems.add(
                max_node, f"retries.max must be a whole number from 0 to {MAX_RETRIES}"
            )
        else:
            count = max_node.value
        delay = duration(fields.get("delay"), "retries.delay", self.problems, positive=False)
        return Retries(max=count, delay_s=delay or 0.0)

    def _marks(self, node: YNode | None) -> tuple[str, ...]:
        marks: list[str] = []
        for name, item in string_list(node, "marks", self.problems) or []:
            if name not in MILESTONES:
                self.problems.add(
                    item,
                    f"unknown milestone {name!r}{suggestion(name, MILESTONES)} "
                    f"(known: {', '.join(MILESTONES)})",
                )
            elif name not in marks:
                marks.append(name)
        return tuple(marks)


def _title_from(step_id: str) -> str:
    words = re.split(r"[-_.]+", step_id)
    return " ".join(words).strip().capitalize() or step_id
