"""Metadata filters: one neutral language (Chroma's ``where`` operators) that engines run
natively and drconsole evaluates in Python over a snapshot's records, so the number of
matches in the target can be compared with the number in the backup.

Semantics follow Chroma: several keys at one level need ``$and``; a record without the key
never matches a positive operator but does match ``$ne``/``$nin``/``$not_contains``;
``$contains`` tests membership in an array value; ordering operators take numbers only.
"""

from __future__ import annotations

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
_NUMBER = (int, float)
_SCALAR = (str, int, float, bool)


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
        return []
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
    if operator in ("$in", "$nin") and (
        not isinstance(operand, list)
        or not operand
        or not all(isinstance(item, _SCALAR) for item in operand)
    ):
        return [f"{where_op} needs a non-empty list of values"]
    if operator in ("$eq", "$ne", "$contains", "$not_contains") and not isinstance(
        operand, _SCALAR
    ):
        return [f"{where_op} needs a string, number or boolean"]
    return []


def matches(where: dict[str, Any], metadata: dict[str, Any] | None) -> bool:
    """Whether a record's metadata passes a (valid) filter."""
    key, value = next(iter(where.items()))
    if key == "$and":
        return all(matches(item, metadata) for item in value)
    if key == "$or":
        return any(matches(item, metadata) for item in value)
    operator, operand = next(iter(value.items())) if isinstance(value, dict) else ("$eq", value)
    present = metadata is not None and key in metadata
    actual = metadata.get(key) if metadata is not None else None
    if operator == "$ne":
        return not present or not _equal(actual, operand)
    if operator == "$nin":
        return not present or not any(_equal(actual, item) for item in operand)
    if operator == "$not_contains":
        return not present or not (isinstance(actual, list) and operand in actual)
    if not present:
        return False
    if operator == "$eq":
        return _equal(actual, operand)
    if operator == "$in":
        return any(_equal(actual, item) for item in operand)
    if operator == "$contains":
        return isinstance(actual, list) and operand in actual
    if isinstance(actual, bool) or not isinstance(actual, _NUMBER):
        return False
    return {
        "$gt": actual > operand,
        "$gte": actual >= operand,
        "$lt": actual < operand,
        "$lte": actual <= operand,
    }[operator]


def _equal(actual: Any, expected: Any) -> bool:
    """Equality as Chroma sees it: arrays never equal a scalar; 1 equals 1.0; a boolean
    only equals a boolean."""
    if isinstance(actual, list):
        return False
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    return actual == expected
