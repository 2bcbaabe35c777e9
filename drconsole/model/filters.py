"""Metadata filters in the neutral model: a tree (``Compare``, ``AllOf``, ``AnyOf``) parsed
from the runbook's ``where`` syntax (Chroma's operators, so runbooks written for it keep
working), evaluated here over a snapshot's records and compiled by each engine adapter
into its own dialect. An adapter names the operators it can run; the loader refuses a
filter that uses another, with its file and line.

The reference semantics (a contract test compares every adapter with them on hundreds of
generated filters): several keys at one level need ``$and``; a record without the key
never matches a positive operator but does match ``ne``/``nin``/``not_contains``; strings,
booleans and numbers never equal one another; an int field compared with a float operand
compares with the operand truncated toward zero (``{year: 2001.5}`` matches 2001,
``{n: {$gte: 299.5}}`` matches 299), a float field with an int operand compares as floats;
``contains`` tests membership in an array value with the operand's exact type (2.0 is not
in [1, 2]); ordering operators take numbers only; an ``in`` list holds values of one type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

COMPARISONS = (
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$contains",
    "$not_contains",
)
LOGICAL = ("$and", "$or")
OPERATORS = frozenset(operator[1:] for operator in (*COMPARISONS, *LOGICAL))
"""Every operator of the neutral filter tree (what an adapter that runs them all declares)."""
_NUMBER = (int, float)
_SCALAR = (str, int, float, bool)
INT64 = (-(2**63), 2**63 - 1)


def check_filter(where: Any, path: str = "where") -> list[str]:
    """Every problem with a filter, each naming where it is (empty when valid)."""
    if not isinstance(where, dict) or len(where) != 1:
        return [f"{path} must be a mapping with exactly one key (combine several with $and)"]
    key, value = next(iter(where.items()))
    if key in LOGICAL:
        if not isinstance(value, list) or not value:
            return [f"{path}.{key} must be a non-empty list of filters"]
        return [
            problem
            for n, item in enumerate(value)
            for problem in check_filter(item, f"{path}.{key}[{n}]")
        ]
    if not isinstance(key, str) or key.startswith("$"):
        return [f"{path}: unknown operator {key!r} (use {', '.join(LOGICAL)} or a field name)"]
    if isinstance(value, _SCALAR):
        return _int64(value, f"{path}.{key}")
    if not isinstance(value, dict) or len(value) != 1:
        return [f"{path}.{key} must be a value or one {{$operator: value}}"]
    operator, operand = next(iter(value.items()))
    where_op = f"{path}.{key}.{operator}"
    if operator not in COMPARISONS:
        return [f"{where_op}: unknown operator (use one of {', '.join(COMPARISONS)})"]
    if operator in ("$gt", "$gte", "$lt", "$lte") and (
        isinstance(operand, bool) or not isinstance(operand, _NUMBER)
    ):
        return [
            f"{where_op} needs a number (to range over dates, store them as numbers, "
            "e.g. epoch days)"
        ]
    if operator in ("$in", "$nin"):
        if (
            not isinstance(operand, list)
            or not operand
            or not all(isinstance(item, _SCALAR) for item in operand)
        ):
            return [f"{where_op} needs a non-empty list of values"]
        if len({type(item) for item in operand}) > 1:
            return [
                f"{where_op} mixes value types ({', '.join(_kinds(operand))}); Chroma refuses "
                "that: use one type (1 and 1.0 are different types)"
            ]
        return [problem for item in operand for problem in _int64(item, where_op)]
    if operator in ("$eq", "$ne", "$contains", "$not_contains") and not isinstance(
        operand, _SCALAR
    ):
        return [f"{where_op} needs a string, number or boolean"]
    return _int64(operand, where_op)


def _int64(value: Any, where: str) -> list[str]:
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        return [f"{where}: {value} does not fit a 64-bit integer"]
    return []


def _kinds(values: list[Any]) -> list[str]:
    names = {bool: "boolean", int: "integer", float: "float", str: "string"}
    return sorted({names[type(value)] for value in values})


Scalar = str | int | float | bool


@dataclass(frozen=True)
class Compare:
    """``field OP value``; ``op`` is one of ``COMPARISONS`` without its ``$``, ``value`` a
    tuple for ``in``/``nin``."""

    field: str
    op: str
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True)
class AllOf:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Filter, ...]


Filter = Compare | AllOf | AnyOf


def parse_where(where: Any, path: str = "where") -> Filter:
    """The tree of a ``where`` filter; FilterError lists every problem if it is invalid."""
    if problems := check_filter(where, path):
        raise FilterError(problems)
    return _tree(where)


class FilterError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _tree(where: dict[str, Any]) -> Filter:
    key, value = next(iter(where.items()))
    if key in LOGICAL:
        items = tuple(_tree(item) for item in value)
        return AllOf(items) if key == "$and" else AnyOf(items)
    operator, operand = next(iter(value.items())) if isinstance(value, dict) else ("$eq", value)
    return Compare(key, operator[1:], tuple(operand) if isinstance(operand, list) else operand)


def to_where(node: Filter) -> dict[str, Any]:
    """The ``where`` syntax of a tree (what golden files and records keep)."""
    if isinstance(node, Compare):
        value = list(node.value) if isinstance(node.value, tuple) else node.value
        return {node.field: {f"${node.op}": value}}
    return {"$and" if isinstance(node, AllOf) else "$or": [to_where(item) for item in node.items]}


def operators(node: Filter) -> set[str]:
    """The operators a tree uses: ``and``/``or`` and the comparisons, without ``$``."""
    if isinstance(node, Compare):
        return {node.op}
    own = "and" if isinstance(node, AllOf) else "or"
    return {own}.union(*(operators(item) for item in node.items))


def evaluate(node: Filter, fields: dict[str, Any] | None) -> bool:
    """Whether a record's fields pass a filter: the reference every adapter must match."""
    if isinstance(node, AllOf):
        return all(evaluate(item, fields) for item in node.items)
    if isinstance(node, AnyOf):
        return any(evaluate(item, fields) for item in node.items)
    op, operand = node.op, node.value
    present = fields is not None and node.field in fields
    actual = fields.get(node.field) if fields is not None else None
    if op == "ne":
        return not present or not _compare(actual, "eq", operand)
    if op == "nin":
        return not present or not any(_compare(actual, "eq", item) for item in operand)  # type: ignore[union-attr]
    if op == "not_contains":
        return not present or not _holds(actual, operand)
    if not present:
        return False
    if op == "in":
        return any(_compare(actual, "eq", item) for item in operand)  # type: ignore[union-attr]
    if op == "contains":
        return _holds(actual, operand)
    return _compare(actual, op, operand)


def _compare(actual: Any, operator: str, operand: Any) -> bool:
    """``actual OPERATOR operand`` for one stored scalar: values of different kinds never
    compare; an int field meets a float operand truncated toward zero (as a Rust ``as
    i64`` cast, saturating); a float field meets an int operand as a float."""
    kind, other = type(actual), type(operand)
    if kind is bool or other is bool or kind is str or other is str:
        return operator == "eq" and kind is other and actual == operand
    if kind not in (int, float):
        return False
    if kind is int and other is float:
        operand = truncate_int64(operand)
    elif kind is float and other is int:
        operand = float(operand)
    return {
        "eq": actual == operand,
        "gt": actual > operand,
        "gte": actual >= operand,
        "lt": actual < operand,
        "lte": actual <= operand,
    }[operator]


def truncate_int64(value: float) -> int:
    """A float operand as an int field meets it: toward zero, NaN as 0, saturating."""
    if math.isnan(value):
        return 0
    if math.isinf(value):
        return INT64[1] if value > 0 else INT64[0]
    return max(INT64[0], min(INT64[1], int(value)))


def _holds(actual: Any, operand: Any) -> bool:
    """An array value holds the operand (same type exactly: 2.0 is not in [1, 2])."""
    return isinstance(actual, list) and any(
        type(item) is type(operand) and item == operand for item in actual
    )
