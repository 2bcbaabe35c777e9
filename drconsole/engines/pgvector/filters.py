"""The neutral filter tree (``model.filters``) compiled to a parameterised SQL condition
over a table's typed columns, with the reference semantics: a NULL column is a missing
key; values of different kinds never compare, which is decided here from the column's
type and never left to PostgreSQL (it would read ``'5'`` as an integer); an integer
column meets a float operand truncated toward zero (NaN as 0); on a float column NaN
equals nothing and orders after nothing (PostgreSQL holds NaN equal to itself and
greater than every number); ``contains``
tests an array column for an element of the operand's exact type. Identifiers are quoted
by psycopg and every operand is a bound parameter: nothing of a filter reaches SQL as text.

A filter on a column of a type this cannot compare with the reference semantics (json,
uuid, timestamps...) raises ``FilterError``: the loader and the golden step refuse it
rather than count or search with a different meaning.
"""

from __future__ import annotations

import math
from typing import Any

from psycopg import sql

from drconsole.model.filters import AllOf, AnyOf, Compare, Filter, FilterError, truncate_int64

SCALAR_COLUMNS = {
    "text": str,
    "varchar": str,
    "bpchar": str,
    "int2": int,
    "int4": int,
    "int8": int,
    "float4": float,
    "float8": float,
    "bool": bool,
}
ARRAY_COLUMNS = {f"_{name}": kind for name, kind in SCALAR_COLUMNS.items()}
NEGATIVE = ("ne", "nin", "not_contains")
ORDERING = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
TRUE, FALSE = sql.SQL("true"), sql.SQL("false")


def compile_filter(node: Filter, columns: dict[str, str]) -> tuple[sql.Composable, list[Any]]:
    """(condition, parameters) for ``node`` over a table whose ``columns`` map each name
    to its PostgreSQL type name (``int8``, ``_text`` for ``text[]``...)."""
    params: list[Any] = []
    return _node(node, columns, params), params


def _node(node: Filter, columns: dict[str, str], params: list[Any]) -> sql.Composable:
    if isinstance(node, AllOf | AnyOf):
        joiner = sql.SQL(" and " if isinstance(node, AllOf) else " or ")
        parts = [_node(item, columns, params) for item in node.items]
        return sql.SQL("({})").format(joiner.join(parts))
    return _compare(node, columns, params)


def _compare(node: Compare, columns: dict[str, str], params: list[Any]) -> sql.Composable:
    type_name = columns.get(node.field)
    if type_name is None:  # no such column: the key is missing from every record
        return TRUE if node.op in NEGATIVE else FALSE
    column = sql.Identifier(node.field)
    missing = sql.SQL("{} is null").format(column)
    if type_name in ARRAY_COLUMNS:
        kind = ARRAY_COLUMNS[type_name]
        holds = (
            node.op in ("contains", "not_contains")
            and type(node.value) is kind
            and not _nan(node.value)
        )
        if not holds:
            return TRUE if node.op in NEGATIVE else FALSE
        params.append(node.value)
        inside = sql.SQL("%s = any({})").format(column)
        if node.op == "contains":
            return inside
        return sql.SQL("({} or not coalesce({}, false))").format(missing, inside)
    kind = SCALAR_COLUMNS.get(type_name)
    if kind is None:
        raise FilterError(
            [f"field {node.field} is a {type_name} column: filters on it are not supported"]
        )
    if node.op in ("contains", "not_contains"):
        return TRUE if node.op == "not_contains" else FALSE
    if node.op in ("in", "nin"):
        values = [value for item in node.value if (value := _operand(kind, item)) is not None]  # type: ignore[union-attr]
        if not values:
            return TRUE if node.op == "nin" else FALSE
        params.append(values)
        inside = sql.SQL("{} = any(%s)").format(column)
        if node.op == "in":
            return inside
        return sql.SQL("({} or not {})").format(missing, inside)
    if node.op in ("eq", "ne"):
        value = _operand(kind, node.value)
        if value is None:
            return TRUE if node.op == "ne" else FALSE
        params.append(value)
        if node.op == "eq":
            return sql.SQL("{} = %s").format(column)
        return sql.SQL("({} or {} <> %s)").format(missing, column)
    if kind not in (int, float) or type(node.value) not in (int, float):
        return FALSE  # ordering takes numbers only
    value = _operand(kind, node.value)
    if value is None:
        return FALSE
    params.append(value)
    compared = sql.SQL("{} " + ORDERING[node.op] + " %s").format(column)
    if kind is float:  # PostgreSQL orders NaN after every number
        return sql.SQL("({} and {} <> 'NaN'::float8)").format(compared, column)
    return compared


def _operand(kind: type, value: Any) -> Any:
    """The operand as the column's kind compares it, or None when they never compare."""
    given = type(value)
    if kind in (str, bool) or given in (str, bool):
        return value if given is kind else None
    if kind is int:
        return truncate_int64(value) if given is float else value
    return None if _nan(value) else float(value)


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
