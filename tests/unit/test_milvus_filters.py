"""Neutral filters compiled to Milvus 2.3 expressions (checked here without a server; a
probe compared them with the reference evaluator on a real 2.3.5): typed fields compare
only values of their own kind, a missing dynamic key matches exactly the negative
operators, a JSON integer meets a fractional operand truncated, strings and names never
change an expression's structure, and what Milvus cannot run exactly is refused."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from drconsole.engines.milvus.filters import compile_filter
from drconsole.model.filters import FilterError, parse_where

FIELDS = {
    "n": "int",
    "x": "float",
    "s": "string",
    "b": "bool",
    "tags": "string[]",
    "ints": "int[]",
    "floats": "float[]",
    "flags": "bool[]",
    "j": "json",
}
M = '$meta["m"]'


def _compiled(where: dict[str, Any]) -> str:
    return compile_filter(parse_where(where), FIELDS)


def _unquote(literal: str) -> str:
    """What Milvus's parser reads from a double-quoted literal (Go's strconv.Unquote, for
    the escapes the compiler writes); fails on an unescaped quote or any character
    outside printable ASCII."""
    assert literal[0] == literal[-1] == '"'
    escapes = re.compile(r'\\(["\\]|u[0-9a-f]{4}|U[0-9a-f]{8})|([ -!#-\[\]-~])')
    out, at = [], 1
    while at < len(literal) - 1:
        found = escapes.match(literal, at)
        assert found, f"{literal[at:]!r} is not an escape or a plain character"
        escaped, plain = found.groups()
        if plain:
            out.append(plain)
        elif len(escaped) == 1:
            out.append(escaped)
        else:
            out.append(chr(int(escaped[1:], 16)))
        at = found.end()
    return "".join(out)


@pytest.mark.parametrize(
    ("where", "expression"),
    [
        ({"n": 3}, "n == 3"),
        ({"n": {"$ne": 3}}, "not (n == 3)"),
        ({"n": 2001.5}, "n == 2001"),
        ({"n": {"$gte": -0.5}}, "n >= 0"),
        ({"n": {"$lt": math.nan}}, "n < 0"),
        ({"n": {"$lte": math.inf}}, "n <= 9223372036854775807"),
        ({"n": {"$gt": -math.inf}}, "n > (-9223372036854775807 - 1)"),
        ({"n": {"$in": [1.5, -2.5]}}, "n in [1, -2]"),
        ({"n": {"$nin": [1, 2]}}, "not (n in [1, 2])"),
        ({"x": 2}, "x == 2.0"),
        ({"x": {"$gt": 0.1}}, "x > 0.1"),
        ({"x": {"$lt": math.inf}}, "x < (1.7976931348623157e+308 * 2)"),
        ({"x": {"$eq": -math.inf}}, "x == (-1.7976931348623157e+308 * 2)"),
        ({"x": {"$in": [math.nan, 1.5]}}, "x in [1.5]"),
        ({"s": "a"}, 's == "a"'),
        ({"s": {"$in": ["a", "b"]}}, 's in ["a", "b"]'),
        ({"b": True}, "b == true"),
        ({"b": {"$ne": False}}, "not (b == false)"),
        ({"tags": {"$contains": "a"}}, 'array_contains(tags, "a")'),
        ({"ints": {"$not_contains": 2}}, "not (array_contains(ints, 2))"),
        ({"floats": {"$contains": 2.0}}, "array_contains(floats, 2.0)"),
        ({"flags": {"$contains": False}}, "array_contains(flags, false)"),
        (
            {"$or": [{"n": 1}, {"$and": [{"s": "a"}, {"b": False}]}]},
            '(n == 1 or (s == "a" and b == false))',
        ),
    ],
)
def test_typed_fields_compile_to_plain_comparisons(where: dict[str, Any], expression: str) -> None:
    assert _compiled(where) == expression


@pytest.mark.parametrize(
    ("where", "matches"),
    [
        ({"n": "3"}, False),
        ({"n": {"$ne": True}}, True),
        ({"n": {"$in": ["1", "2"]}}, False),
        ({"n": {"$contains": 1}}, False),
        ({"x": math.nan}, False),
        ({"x": {"$ne": math.nan}}, True),
        ({"x": {"$gte": math.nan}}, False),
        ({"s": 1}, False),
        ({"s": {"$nin": [1, 2]}}, True),
        ({"s": {"$gt": 1}}, False),
        ({"b": 1}, False),
        ({"b": {"$lte": 1}}, False),
        ({"b": {"$not_contains": True}}, True),
    ],
)
def test_kinds_that_never_meet_are_decided_here(where: dict[str, Any], matches: bool) -> None:
    """A string never equals an int field (Milvus would refuse or convert it): the
    comparison is a test on the field that is always false (or its negation)."""
    field = next(iter(where))
    never = f"{field} in []"
    assert _compiled(where) == (f"not ({never})" if matches else never)


@pytest.mark.parametrize(
    ("where", "matches"),
    [
        ({"ints": {"$contains": 2.0}}, False),
        ({"floats": {"$contains": 2}}, False),
        ({"floats": {"$contains": math.nan}}, False),
        ({"tags": {"$contains": 1}}, False),
        ({"flags": {"$contains": 1}}, False),
        ({"tags": {"$eq": "a"}}, False),
        ({"ints": {"$gt": 1}}, False),
        ({"ints": {"$in": [1, 2]}}, False),
        ({"ints": {"$ne": 1}}, True),
        ({"ints": {"$not_contains": 1.0}}, True),
    ],
)
def test_an_array_holds_only_its_own_kind(where: dict[str, Any], matches: bool) -> None:
    field = next(iter(where))
    sample = {"tags": '""', "ints": "0", "floats": "0.0", "flags": "false"}[field]
    contains = f"array_contains({field}, {sample})"
    never = f"({contains} and not {contains})"
    assert _compiled(where) == (f"not ({never})" if matches else never)


@pytest.mark.parametrize(
    ("where", "expression"),
    [
        ({"m": 5}, f"{M} == 5"),
        ({"m": "5"}, f'{M} == "5"'),
        ({"m": True}, f"{M} == true"),
        ({"m": {"$ne": 5}}, f"not ({M} == 5)"),
        ({"m": {"$gt": 2}}, f"{M} > 2"),
        ({"m": 2.0}, f"{M} == 2"),
        ({"m": {"$lte": -3.0}}, f"{M} <= -3"),
        ({"m": {"$gte": -(2.0**63)}}, f"{M} >= (-9223372036854775807 - 1)"),
        ({"m": {"$in": ["a", "b"]}}, f'{M} in ["a", "b"]'),
        ({"m": {"$nin": [True]}}, f"not ({M} in [true])"),
        ({"m": {"$in": [1, 2]}}, f"({M} == 1 or {M} == 2)"),
        ({"m": {"$in": [-(2**63)]}}, f"{M} == (-9223372036854775807 - 1)"),
        ({"m": {"$contains": "a"}}, f'json_contains({M}, "a")'),
        ({"m": {"$contains": 2}}, f"json_contains({M}, 2)"),
        ({"m": {"$not_contains": 2.5}}, f"not (json_contains({M}, 2.5))"),
        ({"m": {"$contains": -1e300}}, f"json_contains({M}, -1e+300)"),
        ({"m": {"$contains": math.nan}}, f"{M} in []"),
        ({"m": {"$not_contains": math.inf}}, f"not ({M} in [])"),
        ({"absent key": 1}, '$meta["absent key"] == 1'),
        ({"ünï/~.": 1}, '$meta["ünï/~."] == 1'),
        ({"it's": 1}, '$meta["it\'s"] == 1'),
    ],
)
def test_other_keys_are_read_from_the_dynamic_field(where: dict[str, Any], expression: str) -> None:
    """A missing key makes every positive test false, so ``not (...)`` matches it: the
    reference's answer for ``ne``, ``nin`` and ``not_contains``."""
    assert _compiled(where) == expression


def _integer(value: int) -> str:
    if value == 0:
        return f"({M} == 0 and {M} + 9007199254740993 != 9007199254740992)"
    return f"({M} == {value} and {M} / {2 * abs(value)} == 0)"


@pytest.mark.parametrize(
    ("where", "expression"),
    [
        ({"m": 1.5}, f"({M} == 1.5 or {_integer(1)})"),
        ({"m": -0.5}, f"({M} == -0.5 or {_integer(0)})"),
        ({"m": {"$ne": 2001.5}}, f"not (({M} == 2001.5 or {_integer(2001)}))"),
        ({"m": {"$gte": 299.5}}, f"({M} >= 299.5 or {_integer(299)})"),
        ({"m": {"$lt": 299.5}}, f"({M} < 299.5 and not {_integer(299)})"),
        ({"m": {"$gt": -2.5}}, f"({M} > -2.5 and not {_integer(-2)})"),
        ({"m": {"$lte": -0.25}}, f"({M} <= -0.25 or {_integer(0)})"),
        ({"m": {"$gt": 2.5}}, f"{M} > 2.5"),
        ({"m": {"$lte": 2.5}}, f"{M} <= 2.5"),
        ({"m": {"$gte": -2.5}}, f"{M} >= -2.5"),
        ({"m": {"$lt": -2.5}}, f"{M} < -2.5"),
        ({"m": math.nan}, _integer(0)),
        ({"m": {"$in": [0.5, 3.0]}}, f"(({M} == 0.5 or {_integer(0)}) or {M} == 3)"),
    ],
)
def test_a_json_integer_meets_a_fractional_operand_truncated(
    where: dict[str, Any], expression: str
) -> None:
    """Milvus compares a JSON integer with 299.5 as a float; the reference truncates the
    operand (``$gte: 299.5`` matches 299), so the integer ``trunc(operand)`` is added or
    taken out where the two differ, with a test that is false for the float 299.0."""
    assert _compiled(where) == expression


@pytest.mark.parametrize(
    "hostile",
    [
        'a"b',
        "\\",
        '\\"',
        "'",
        '" or id >= 0 or s == "',
        '") or not (s == "',
        "x\ny\r\t",
        "\x00",
        "é",
        "😀",
        "\u2028",
        '$meta["s"] == 1 || true',
        "",
    ],
)
def test_a_string_operand_is_one_literal_whatever_it_holds(hostile: str) -> None:
    expression = _compiled({"s": hostile})
    assert expression.startswith("s == ")
    assert _unquote(expression.removeprefix("s == ")) == hostile
    listed = _compiled({"m": {"$nin": [hostile, "x"]}})
    assert listed.startswith(f"not ({M} in [") and listed.endswith(', "x"])')
    literal = listed.removeprefix(f"not ({M} in [").removesuffix(', "x"])')
    assert _unquote(literal) == hostile


@pytest.mark.parametrize(
    ("where", "named"),
    [
        ({"s": "\ud800"}, "field s: a string holds a lone surrogate"),
        ({"m": {"$in": ["a", "b\udfff"]}}, "field m: a string holds a lone surrogate"),
        ({"j": {"$eq": 1}}, "field j is a json field"),
        ({"j": {"$ne": 1}}, "field j is a json field"),
        ({"m": {"$contains": 2.0}}, "field m: Milvus finds 2.0 in a JSON array holding 2"),
        ({"m": {"$not_contains": -0.0}}, "field m: Milvus finds -0.0"),
        ({"m": {"$eq": math.inf}}, "field m: Milvus cannot compare"),
        ({"m": {"$gte": 1e19}}, "field m: Milvus cannot compare"),
        ({"m": {"$in": [1.5, 2.0**63]}}, "field m: Milvus cannot compare"),
        ({"m": {"$lt": math.nan}}, "field m: Milvus cannot order JSON numbers against NaN"),
        ({'k"ey': 1}, "field 'k\"ey'"),
        ({"k\\ey": 1}, "field 'k\\\\ey'"),
        ({"k]ey": 1}, "field 'k]ey'"),
        ({"k\ney": 1}, "field 'k\\ney'"),
        ({"": 1}, "field ''"),
    ],
)
def test_what_milvus_cannot_run_exactly_is_refused(where: dict[str, Any], named: str) -> None:
    with pytest.raises(FilterError, match=re.escape(named)):
        _compiled(where)


@pytest.mark.parametrize("name", ["in", "NOT", "like", "true", "json_contains", "a b", "1st"])
def test_a_typed_field_needs_a_name_the_expression_can_spell(name: str) -> None:
    with pytest.raises(FilterError, match="not a name a Milvus expression can use"):
        compile_filter(parse_where({name: 1}), {name: "int"})


def test_an_unknown_field_type_is_refused() -> None:
    with pytest.raises(FilterError, match="field when is a datetime field"):
        compile_filter(parse_where({"when": 1}), {"when": "datetime"})
