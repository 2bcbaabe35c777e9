"""A collection as a PostgreSQL table: the SQL that creates it (columns, primary key,
comment) and its secondary indexes, from a neutral schema and what the adapter recorded
of the original table (``engine_config["pgvector"]``: its exact column types, NOT NULL
columns, indexes, comment).

Nothing recorded reaches SQL as text: a column type is taken apart and rebuilt from a
fixed list of type names and its numeric modifiers; an index's method, operator classes
and options are checked against fixed shapes and passed as identifiers and literals; an
index with a predicate or expressions is not re-created (the restore names it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from drconsole.engines.pgvector.introspect import ENGINE, TABLE_PLACEHOLDER, VECTOR_METHODS
from drconsole.model.schema import (
    CollectionSchema,
    Distance,
    ElementType,
    FieldType,
    IndexSpec,
    KeyType,
    ScalarType,
)

MAX_NAME = 63
"""PostgreSQL's identifier length (NAMEDATALEN - 1), in bytes."""
DEFAULT_VECTOR = "embedding"
"""The column of a collection's first vector when the schema does not name it."""

TYPE_NAMES = {
    "text",
    "character varying",
    "character",
    "smallint",
    "integer",
    "bigint",
    "real",
    "double precision",
    "numeric",
    "boolean",
    "timestamp",
    "date",
    "uuid",
    "json",
    "jsonb",
    "vector",
    "halfvec",
    "sparsevec",
    "bit",
    "bit varying",
}
_TYPE = re.compile(
    r"(?P<base>[a-z][a-z ]*?)(?:\((?P<mods>\d{1,6}(?:,\d{1,6})?)\))?"
    r"(?P<zone> with(?:out)? time zone)?(?P<array>(?:\[\])?)"
)
INDEX_METHODS = {"btree", "hash", "gin", "gist", "brin", *VECTOR_METHODS}
_WORD = re.compile(r"[a-z][a-z0-9_]{0,62}")
_OPTION = re.compile(r"(?P<key>[a-z][a-z_]{0,62})=(?P<value>\d{1,9}|[a-z]{1,16})")

KEY_COLUMNS = {KeyType.STRING: "text", KeyType.INT: "bigint", KeyType.UUID: "uuid"}
SCALAR_COLUMNS = {
    ScalarType.STRING: "text",
    ScalarType.INT: "bigint",
    ScalarType.FLOAT: "double precision",
    ScalarType.BOOL: "boolean",
    ScalarType.DATETIME: "timestamp with time zone",
    ScalarType.JSON: "jsonb",
}
DENSE_COLUMNS = {
    ElementType.FLOAT32: "vector",
    ElementType.FLOAT16: "halfvec",
    ElementType.BIT: "bit",
}
OPCLASS_DISTANCES = {
    Distance.L2: "l2",
    Distance.COSINE: "cosine",
    Distance.IP: "ip",
    Distance.L1: "l1",
    Distance.HAMMING: "hamming",
}


class UnsafeDefinition(ValueError):
    """A recorded type or index that does not have a shape this module rebuilds."""


def column_type(text: str) -> sql.Composable:
    """A column type as recorded (``format_type``: ``character varying(40)[]``, ``vector(384)``,
    ``timestamp(3) with time zone``) rebuilt from known parts."""
    found = _TYPE.fullmatch(text)
    if found is None or found["base"] not in TYPE_NAMES:
        raise UnsafeDefinition(f"column type {text!r} is not one drconsole re-creates")
    if found["zone"] and found["base"] != "timestamp":
        raise UnsafeDefinition(f"column type {text!r} is not one drconsole re-creates")
    mods = f"({found['mods']})" if found["mods"] else ""
    return sql.SQL(found["base"] + mods + (found["zone"] or "") + found["array"])


def type_modifier(text: str) -> int:
    """The first numeric modifier of a recorded type (``sparsevec(1000)``: 1000), or 0."""
    found = _TYPE.fullmatch(text)
    return int(found["mods"].split(",")[0]) if found and found["mods"] else 0


def neutral_type(field: FieldType) -> str:
    return SCALAR_COLUMNS[field.scalar] + ("[]" if field.array else "")


@dataclass(frozen=True)
class TableDefinition:
    """What creating one collection's table takes: the table, then (after the data, when
    loading) its indexes; ``unrestorable`` names what of the original cannot be made."""

    create: list[sql.Composable]
    indexes: list[tuple[str, sql.Composable]]
    unrestorable: list[str]


def define_table(
    schema_name: str, table: str, schema: CollectionSchema, taken: set[str]
) -> TableDefinition:
    """The statements that make ``schema`` a table named ``table`` in ``schema_name``;
    ``taken`` holds the relation names already used in that schema (indexes included)."""
    config = schema.engine_config.get(ENGINE) or {}
    recorded: dict[str, str] = config.get("column_types") or {}
    not_null = set(config.get("not_null") or [])
    key_name = str(config.get("primary_key") or "id")
    columns: list[tuple[str, sql.Composable, bool]] = [
        (key_name, _type(recorded.get(key_name), KEY_COLUMNS[schema.key]), True)
    ]
    for number, vector in enumerate(schema.vectors):
        name = vector.name or (DEFAULT_VECTOR if number == 0 else f"vector_{number}")
        base = DENSE_COLUMNS[vector.element]
        fallback = f"{base}({vector.dimension})" if vector.dimension else base
        columns.append((name, _type(recorded.get(name), fallback), name in not_null))
    for sparse in schema.sparse_vectors:
        columns.append((sparse.name, _type(recorded.get(sparse.name), "sparsevec"), False))
    for item in schema.fields:
        nullable = item.nullable and item.name not in not_null
        columns.append(
            (item.name, _type(recorded.get(item.name), neutral_type(item.type)), not nullable)
        )
    if recorded:  # the original table's column order (an INSERT without names relies on it)
        order = {name: number for number, name in enumerate(recorded)}
        columns.sort(key=lambda column: order.get(column[0], len(order)))
    target = sql.Identifier(schema_name, table)
    body = sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(name), kind, sql.SQL(" not null" if required else "")
        )
        for name, kind, required in columns
    )
    create: list[sql.Composable] = [
        sql.SQL("create table {} ({}, primary key ({}))").format(
            target, body, sql.Identifier(key_name)
        )
    ]
    if config.get("comment") is not None:
        create.append(
            sql.SQL("comment on table {} is {}").format(target, sql.Literal(str(config["comment"])))
        )
    wanted = config["indexes"] if "indexes" in config else _neutral_indexes(schema, columns)
    indexes, unrestorable = [], []
    names = set(taken)
    for index in wanted:
        try:
            name, statement = _index(schema_name, table, index, names)
        except UnsafeDefinition as error:
            unrestorable.append(str(error))
            continue
        names.add(name)
        indexes.append((name, statement))
    return TableDefinition(create, indexes, unrestorable)


def _type(recorded: str | None, fallback: str) -> sql.Composable:
    return column_type(recorded if recorded else fallback)


def _neutral_indexes(
    schema: CollectionSchema, columns: list[tuple[str, sql.Composable, bool]]
) -> list[dict[str, Any]]:
    """Indexes for a schema not taken from PostgreSQL: each dense vector gets the index its
    spec names (HNSW when none: the table must keep the distance), each indexed field a
    btree (GIN for arrays)."""
    names = [name for name, *_ in columns]
    found: list[dict[str, Any]] = []
    for number, vector in enumerate(schema.vectors):
        if not vector.dimension:
            continue
        name = names[1 + number]
        method = "ivfflat" if vector.index and vector.index.kind == "ivf_flat" else "hnsw"
        opclass = f"{DENSE_COLUMNS[vector.element]}_{OPCLASS_DISTANCES[vector.distance]}_ops"
        found.append(_entry(name, method, opclass, _index_options(method, vector.index)))
    for item in schema.fields:
        if item.indexed:
            method = "gin" if item.type.array else "btree"
            found.append(_entry(item.name, method, None, []))
    return found


def _entry(column: str, method: str, opclass: str | None, options: list[str]) -> dict[str, Any]:
    return {
        "name": f"{TABLE_PLACEHOLDER}_{column}_idx",
        "method": method,
        "unique": False,
        "partial": False,
        "columns": [column],
        "opclasses": [opclass] if opclass else [],
        "options": options,
    }


def _index_options(method: str, spec: IndexSpec | None) -> list[str]:
    names = ("m", "ef_construction") if method == "hnsw" else ("lists",)
    params = spec.params if spec else {}
    return [f"{name}={int(params[name])}" for name in names if name in params]


def _index(
    schema_name: str, table: str, index: dict[str, Any], taken: set[str]
) -> tuple[str, sql.Composable]:
    recorded = str(index.get("name", ""))
    shown = recorded.replace(TABLE_PLACEHOLDER, table)
    if index.get("partial"):
        raise UnsafeDefinition(f"index {shown} (it has a predicate or expressions)")
    method = str(index.get("method", ""))
    columns = [str(column) for column in index.get("columns") or []]
    opclasses = [str(opclass) for opclass in index.get("opclasses") or []]
    options = [str(option) for option in index.get("options") or []]
    if method not in INDEX_METHODS or not columns:
        raise UnsafeDefinition(f"index {shown} (method {method!r})")
    if not all(_WORD.fullmatch(opclass) for opclass in opclasses):
        raise UnsafeDefinition(f"index {shown} (operator classes {opclasses})")
    parsed = [_OPTION.fullmatch(option) for option in options]
    if not all(parsed):
        raise UnsafeDefinition(f"index {shown} (options {options})")
    name = index_name(recorded, table, taken)
    keys = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(column), sql.Identifier(opclass))
        if opclass
        else sql.Identifier(column)
        for column, opclass in zip(columns, opclasses + [""] * len(columns), strict=False)
    )
    with_options = sql.SQL("")
    if parsed:
        with_options = sql.SQL(" with ({})").format(
            sql.SQL(", ").join(
                sql.SQL("{} = {}").format(
                    sql.Identifier(found["key"]),
                    sql.Literal(
                        int(found["value"]) if found["value"].isdigit() else found["value"]
                    ),
                )
                for found in parsed
                if found is not None
            )
        )
    statement = sql.SQL("create {}index if not exists {} on {} using {} ({}){}").format(
        sql.SQL("unique " if index.get("unique") else ""),
        sql.Identifier(name),
        sql.Identifier(schema_name, table),
        sql.SQL(method),
        keys,
        with_options,
    )
    return name, statement


def index_name(recorded: str, table: str, taken: set[str]) -> str:
    """The name an index gets on ``table``: a name recorded relative to its table takes
    this table's name; a name of its own is kept unless another relation has it, then it
    is prefixed with the table's. Too long a name is cut and made unique by a hash."""
    if recorded.startswith(TABLE_PLACEHOLDER):
        name = table + recorded[len(TABLE_PLACEHOLDER) :]
    elif recorded and recorded not in taken:
        name = recorded
    else:
        name = f"{table}_{recorded or 'idx'}"
    return fit_name(name)


def fit_name(name: str) -> str:
    """``name`` when PostgreSQL keeps it whole; else cut, with a hash of the whole."""
    if len(name.encode()) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    cut = name.encode()[: MAX_NAME - 9].decode(errors="ignore")
    return f"{cut}_{digest}"
