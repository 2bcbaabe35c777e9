"""The neutral filter tree (``model.filters``) compiled to a Milvus 2.3 boolean expression,
with the reference semantics. A typed field always holds a value (2.3 has no NULL); any
other key lives in the dynamic field and is read as ``$meta["key"]``, which a record
without the key never matches (``==``, ``in``, ``json_contains`` and comparisons are false
there), so every negative operator is ``not (positive)``: true for a missing key, as the
reference wants. Kinds never meet: a typed field's kind decides here whether an operand
can equal it, and a dynamic key compares strings only with strings, booleans only with
booleans, and numbers only with numbers (Milvus reads a JSON value as the literal's kind
and finds nothing when it is another).

Numbers in the dynamic field need care: Milvus compares a JSON integer with a float
literal as a float, where the reference truncates the operand toward zero (``{n: 1.5}``
matches 1). A float operand with no fraction is written as an integer literal (Milvus
falls back to comparing a JSON float with it as a float, which is the reference); a
fractional one differs only at ``t = trunc(operand)``, so that integer is added or taken
out with a test that holds for the JSON integer ``t`` but not the float ``t.0`` (integer
division by ``2|t|`` is 0 only for the integer; for 0, ``+ 2**53 + 1`` is exact only in
integers). ``json_contains`` with a float finds an equal integer too, so membership of an
integral float in a dynamic array is refused, as are float operands a JSON integer meets
saturated (infinities, beyond 64 bits) and NaN in an ordering (an integer meets it as 0).

On typed fields: an int field meets a float operand truncated toward zero (Milvus refuses
a float literal there); a float field meets NaN as nothing (it may hold NaN and
infinities, which Milvus compares as C++ does); arrays hold an operand of their
element's exact kind. The parser reads no literal for the lowest 64-bit integer or the
infinities: they are written as constant expressions it folds. String operands are
written as escaped literals (every character outside printable ASCII as ``\\u`` or
``\\U``) and names are checked, so nothing of a filter changes the expression's
structure. Whatever Milvus cannot run with the reference meaning raises ``FilterError``
naming the field: a typed JSON field (2.3 compares only paths inside it), names it cannot
spell.
"""

from __future__ import annotations

import math
import operator
import re
import sys
import unicodedata
from typing import Any

from drconsole.model.filters import INT64, AllOf, AnyOf, Compare, Filter, FilterError
from drconsole.model.filters import truncate_int64 as truncate

SCALARS: dict[str, type] = {"string": str, "int": int, "float": float, "bool": bool}
ARRAYS = {f"{name}[]": kind for name, kind in SCALARS.items()}
NEGATIVE = {"ne": "eq", "nin": "in", "not_contains": "contains"}
OPERATORS = {"eq": "==", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
COMPARE = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
KEYWORDS = frozenset(
    (
        *("and", "or", "not", "in", "like", "exists", "true", "false", "array_length"),
        *(
            f"{kind}_contains{suffix}"
            for kind in ("json", "array")
            for suffix in ("", "_all", "_any")
        ),
    )
)
"""Words Milvus's expression lexer reads as operators, never as a field name."""
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SURROGATE = re.compile("[\ud800-\udfff]")
MAX_DOUBLE = repr(sys.float_info.max)
EXACT = 2**53 + 1
"""An integer a float cannot hold: ``k + EXACT != 2**53`` holds for the integer 0 only."""


def compile_filter(node: Filter, fields: dict[str, str]) -> str:
    """The Milvus expression of ``node`` over a collection whose typed ``fields`` map each
    name to its neutral type (``int``, ``string[]``...); other keys are dynamic."""
    if isinstance(node, AllOf | AnyOf):
        joiner = " and " if isinstance(node, AllOf) else " or "
        return "(" + joiner.join(compile_filter(item, fields) for item in node.items) + ")"
    operands = node.value if isinstance(node.value, tuple) else (node.value,)
    if any(isinstance(item, str) and SURROGATE.search(item) for item in operands):
        raise FilterError([f"field {node.field}: a string holds a lone surrogate (not text)"])
    type_name = fields.get(node.field)
    if node.op in NEGATIVE:
        positive = Compare(node.field, NEGATIVE[node.op], node.value)
        return f"not ({_positive(positive, type_name)})"
    return _positive(node, type_name)


def _positive(node: Compare, type_name: str | None) -> str:
    if type_name is None:
        return _dynamic(node, f"$meta[{_key(node.field)}]")
    if type_name in SCALARS:
        return _typed(node, _identifier(node.field), SCALARS[type_name])
    if type_name in ARRAYS:
        return _array(node, _identifier(node.field), ARRAYS[type_name])
    raise FilterError(
        [f"field {node.field} is a {type_name} field: Milvus cannot filter on its whole value"]
    )


def _typed(node: Compare, name: str, kind: type) -> str:
    """A positive comparison on a typed scalar field (which always holds a value)."""
    values = node.value if node.op == "in" else (node.value,)
    found = [value for item in values if (value := _as(kind, item)) is not None]  # type: ignore[union-attr]
    ordering = node.op not in ("eq", "in")
    if node.op == "contains" or not found or (ordering and kind not in (int, float)):
        return f"{name} in []"
    if node.op == "in":
        return f"{name} in [{', '.join(_literal(value) for value in found)}]"
    return f"{name} {OPERATORS[node.op]} {_literal(found[0])}"


def _as(kind: type, value: Any) -> Any:
    """The operand as a field of ``kind`` meets it, or None when they never compare."""
    given = type(value)
    if kind in (str, bool) or given in (str, bool):
        return value if given is kind else None
    if kind is int:
        return truncate(value) if given is float else value
    return None if _nan(value) else float(value)


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _array(node: Compare, name: str, kind: type) -> str:
    """``contains`` on a typed array field: an element of the operand's exact kind."""
    value = node.value
    if node.op == "contains" and type(value) is kind and not _nan(value):
        return f"array_contains({name}, {_literal(value)})"
    sample = _literal(kind())  # a test and its negation: never true
    return f"(array_contains({name}, {sample}) and not array_contains({name}, {sample}))"


def _dynamic(node: Compare, path: str) -> str:
    """A positive comparison on a key of the dynamic field (which may be missing). An ``in``
    list of numbers is a disjunction: Milvus's ``in`` on a JSON key finds 1e300 among
    ``[-2**63]``."""
    if node.op == "contains":
        return _json_contains(node, path)
    if node.op != "in":
        return _json_compare(node.field, path, node.op, node.value)
    values: tuple[Any, ...] = node.value  # type: ignore[assignment]
    if isinstance(values[0], str | bool):
        return f"{path} in [{', '.join(_literal(value) for value in values)}]"
    parts = [_json_compare(node.field, path, "eq", value) for value in values]
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def _json_compare(field: str, path: str, op: str, value: Any) -> str:
    if isinstance(value, float):
        return _json_float(field, path, op, value)
    return f"{path} {OPERATORS[op]} {_literal(value)}"


def _json_float(field: str, path: str, op: str, value: float) -> str:
    """``path OP value`` for a float operand: a JSON integer meets it truncated."""
    if math.isnan(value):  # an integer meets NaN as 0, a float never
        if op != "eq":
            raise FilterError([f"field {field}: Milvus cannot order JSON numbers against NaN"])
        return _integer(path, 0)
    if not INT64[0] <= value < -INT64[0]:  # an integer meets it saturated: not writable
        raise FilterError(
            [f"field {field}: Milvus cannot compare dynamic-field integers with {value!r}"]
        )
    whole = truncate(value)
    if whole == value:
        return f"{path} {OPERATORS[op]} {_literal(whole)}"
    compared = f"{path} {OPERATORS[op]} {_literal(value)}"
    wanted = op in ("eq", "gte", "lte")  # the reference: `whole OP whole`
    found = COMPARE[op](whole, value)  # Milvus: `whole OP value`, as floats
    if wanted and not found:
        return f"({compared} or {_integer(path, whole)})"
    if found and not wanted:
        return f"({compared} and not {_integer(path, whole)})"
    return compared


def _integer(path: str, value: int) -> str:
    """The JSON value at ``path`` is the integer ``value`` (not the float ``value.0``)."""
    if value == 0:
        return f"({path} == 0 and {path} + {EXACT} != {EXACT - 1})"
    return f"({path} == {value} and {path} / {2 * abs(value)} == 0)"


def _json_contains(node: Compare, path: str) -> str:
    """An array at ``path`` holds the operand with its exact kind."""
    value = node.value
    if isinstance(value, float):
        if not math.isfinite(value):  # JSON holds no NaN or infinity
            return f"{path} in []"
        if value == int(value) and abs(value) <= 2.0**63:  # an integer may equal it
            raise FilterError(
                [
                    f"field {node.field}: Milvus finds {value!r} in a JSON array holding "
                    f"{int(value)} too (look for an integer, or use a typed float[] field)"
                ]
            )
    return f"json_contains({path}, {_literal(value)})"


def _literal(value: Any) -> str:
    """A Milvus literal for a string, boolean, integer or float (not NaN); the lowest
    64-bit integer and the infinities as constant expressions the parser folds, since
    it reads no literal for them."""
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if type(value) is int and value == INT64[0]:
        return f"({INT64[0] + 1} - 1)"
    if isinstance(value, float) and math.isinf(value):
        return f"({'' if value > 0 else '-'}{MAX_DOUBLE} * 2)"
    return repr(value)


def string_literal(value: str) -> str:
    """A double-quoted literal: quote and backslash escaped, anything outside printable
    ASCII as a ``\\u``/``\\U`` escape (the parser unquotes as Go's ``strconv.Unquote``)."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out) + '"'


def _identifier(name: str) -> str:
    """A typed field's name as the expression names it (an identifier, not a keyword)."""
    if not IDENTIFIER.fullmatch(name) or name.lower() in KEYWORDS:
        raise FilterError([f"field {name!r}: not a name a Milvus expression can use"])
    return name


def _key(name: str) -> str:
    """A dynamic key as a quoted path step: Milvus 2.3 takes the text between the quotes
    as it is (no unescaping), so a key holding a double quote, backslash, bracket or control
    character cannot be written."""
    if not name or any(
        char in '"\\[]' or unicodedata.category(char) in ("Cc", "Cs") for char in name
    ):
        raise FilterError([f"field {name!r}: Milvus cannot name this dynamic-field key"])
    return f'"{name}"'
