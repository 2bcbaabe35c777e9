"""Safe YAML reading that keeps where every value came from.

PyYAML's composer builds nodes without constructing Python objects, so nothing runs and
aliases are not expanded. We then walk the nodes ourselves into ``YNode`` values, counting
every visit (an alias counts each time it is used) and the nesting depth, so a "billion
laughs" document or a deeply nested one is refused instead of expanded. Duplicate keys,
which PyYAML would silently overwrite, are refused too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_NODES = 50_000
MAX_DEPTH = 32

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a source file."""

    line: int
    column: int


@dataclass
class YNode:
    """A YAML value with its position.

    ``value`` is a str, int, float, bool or None for scalars, a list of YNode for
    sequences, or a dict of str to YNode for mappings (``key_positions`` then holds where
    each key was written, for "unknown key" messages). ``index`` is the character offset
    of the value in the source text.
    """

    value: Any
    position: Position
    index: int = 0
    style: str | None = None
    key_positions: dict[str, Position] = field(default_factory=dict)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.value, list)

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.value, dict | list)

    def plain(self) -> Any:
        """The value with positions stripped, recursively."""
        if isinstance(self.value, dict):
            return {key: item.plain() for key, item in self.value.items()}
        if isinstance(self.value, list):
            return [item.plain() for item in self.value]
        return self.value


class YamlProblem(Exception):
    """A document that cannot be read; carries the position of the first problem."""

    def __init__(self, position: Position, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


def _position(mark: yaml.Mark | None) -> Position:
    if mark is None:
        return Position(1, 1)
    return Position(mark.line + 1, mark.column + 1)


class _Walker:
    def __init__(self) -> None:
        self.visits = 0
        self._scalars = yaml.constructor.SafeConstructor()

    def walk(self, node: yaml.Node, depth: int) -> YNode:
        self.visits += 1
        position = _position(node.start_mark)
        index = node.start_mark.index if node.start_mark else 0
        if self.visits > MAX_NODES:
            raise YamlProblem(
                position,
                f"the document expands to more than {MAX_NODES} values "
                "(aliases counted each time they are used); refusing to read it",
            )
        if depth > MAX_DEPTH:
            raise YamlProblem(position, f"the document nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            return YNode(self._scalar(node), position, index, style=node.style)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, "tag:yaml.org,2002:seq")
            return YNode([self.walk(item, depth + 1) for item in node.value], position, index)
        if isinstance(node, yaml.MappingNode):
            self._check_tag(node, "tag:yaml.org,2002:map")
            return self._mapping(node, depth, position, index)
        raise YamlProblem(position, f"unsupported YAML node {type(node).__name__}")

    def _mapping(self, node: yaml.MappingNode, depth: int, position: Position, index: int) -> YNode:
        values: dict[str, YNode] = {}
        keys: dict[str, Position] = {}
        for key_node, value_node in node.value:
            key_position = _position(key_node.start_mark)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlProblem(key_position, "YAML merge keys (<<) are not supported here")
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem(key_position, "a mapping key must be a plain string")
            key = self._scalar(key_node)
            if not isinstance(key, str):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            if key in values:
                first = keys[key]
                raise YamlProblem(
                    key_position,
                    f"duplicate key {key!r} (first written at line {first.line})",
                )
            keys[key] = key_position
            values[key] = self.walk(value_node, depth + 1)
        return YNode(values, position, index, key_positions=keys)

    def _check_tag(self, node: yaml.Node, expected: str) -> None:
        if node.tag != expected:
            raise YamlProblem(_position(node.start_mark), f"unsupported YAML tag {node.tag}")

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise YamlProblem(_position(node.start_mark), f"unsupported YAML tag {node.tag}")
        if node.tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp"):
            return str(node.value)
        try:
            return self._scalars.construct_object(node)
        except (
            ValueError,
            KeyError,
            IndexError,
            OverflowError,
            TypeError,
            yaml.YAMLError,
        ) as error:
            raise YamlProblem(
                _position(node.start_mark), f"cannot read value {node.value[:40]!r}: {error}"
            ) from None


def decode(data: bytes) -> str:
    """The text of a YAML file (UTF-8, optional BOM); raises YamlProblem when it is not."""
    if len(data) > MAX_BYTES:
        raise YamlProblem(
            Position(1, 1), f"the file is {len(data)} bytes; runbooks are limited to {MAX_BYTES}"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        raise YamlProblem(Position(line, column), "the file is not UTF-8 text") from None


def read_yaml(text: str) -> YNode:
    """Parse one YAML document into located values; raises YamlProblem on any refusal."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = ", ".join(part for part in (error.context, error.problem) if part) or "unreadable"
        raise YamlProblem(_position(mark), f"YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as error:
        before = text[: error.position]
        line = before.count("\n") + 1
        column = error.position - (before.rfind("\n") + 1) + 1
        raise YamlProblem(
            Position(line, column),
            f"the file contains a character YAML does not allow ({error.reason})",
        ) from None
    except yaml.YAMLError as error:
        raise YamlProblem(Position(1, 1), f"YAML error: {error}") from None
    except RecursionError:
        raise YamlProblem(
            Position(1, 1), f"the document nests deeper than {MAX_DEPTH} levels"
        ) from None
    if root is None:
        raise YamlProblem(Position(1, 1), "the file is empty")
    return _Walker().walk(root, 0)
