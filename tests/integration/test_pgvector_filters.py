"""Neutral filters compiled to SQL over typed columns, on a real PostgreSQL: for hundreds
of generated filters, the rows PostgreSQL counts are the records the reference evaluator
passes; filters on columns it cannot compare the same way are refused; nothing of a
filter reaches SQL as text."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest
from engine_contract import CORPUS, FILTERS, corpus_metadata, generated_filter
from psycopg import sql
from psycopg.types.json import Jsonb

from drconsole.engines.pgvector.filters import compile_filter
from drconsole.engines.pgvector.server import PostgresServer
from drconsole.model.filters import FilterError, evaluate, parse_where

COLUMNS = {
    "n": "int8",
    "x": "float8",
    "s": "text",
    "b": "bool",
    "tags": "_text",
    "ints": "_int8",
    "floats": "_float8",
    "flags": "_bool",
    "m": "jsonb",
}
_tables = itertools.count()


@pytest.fixture
def corpus(postgres: PostgresServer) -> tuple[str, list[dict[str, Any] | None]]:
    """A table holding 400 seeded records, one typed column per field (``m``, whose
    values mix types, as jsonb), and the records as the reference sees them."""
    table = f"filtered_{next(_tables)}"
    rng = random.Random(20261201)
    records = [corpus_metadata(rng) for _ in range(CORPUS)]
    with postgres.connect() as connection:
        connection.execute(
            sql.SQL("create table {} (id text primary key, {})").format(
                sql.Identifier(table),
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind.lstrip("_")))
                    + (sql.SQL("[]") if kind.startswith("_") else sql.SQL(""))
                    for name, kind in COLUMNS.items()
                ),
            )
        )
        insert = sql.SQL("insert into {} values (%s, {})").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Placeholder() for _ in COLUMNS)
        )
        for number, record in enumerate(records):
            values = [(record or {}).get(name) for name in COLUMNS]
            values[-1] = None if values[-1] is None else Jsonb(values[-1])
            connection.execute(insert, [f"r{number}", *values])
    return table, records


def _count(postgres: PostgresServer, table: str, where: dict[str, Any]) -> int:
    condition, params = compile_filter(parse_where(where), COLUMNS)
    query = sql.SQL("select count(*) from {} where {}").format(sql.Identifier(table), condition)
    with postgres.connect() as connection:
        return connection.execute(query, params).fetchone()[0]  # type: ignore[index]


def test_counts_are_what_the_reference_evaluator_counts(
    postgres: PostgresServer, corpus: tuple[str, list[dict[str, Any] | None]]
) -> None:
    table, records = corpus
    rng = random.Random(7)
    compared = refused = 0
    extra = [
        {"x": {"$gt": math.nan}},
        {"x": {"$ne": math.nan}},
        {"n": {"$eq": math.nan}},
        {"n": {"$gte": 2.5}},
        {"n": {"$lt": -math.inf}},
        {"n": {"$eq": "1"}},
        {"b": {"$eq": 1}},
        {"floats": {"$contains": 1}},
        {"ints": {"$contains": 1.0}},
        {"absent": {"$nin": [1, 2]}},
    ]
    for where in extra + [generated_filter(rng) for _ in range(FILTERS)]:
        tree = parse_where(where)
        try:
            counted = _count(postgres, table, where)
        except FilterError as error:
            assert "field m is a jsonb column" in str(error), where
            refused += 1
            continue
        expected = sum(1 for record in records if evaluate(tree, record))
        assert counted == expected, where
        compared += 1
    assert compared >= 200 and refused, (compared, refused)


def test_a_field_name_is_an_identifier_never_sql(
    postgres: PostgresServer, corpus: tuple[str, list[dict[str, Any] | None]]
) -> None:
    table, records = corpus
    hostile = 'n" = 0 or 1=1; drop table docs; --'
    assert _count(postgres, table, {hostile: {"$eq": 1}}) == 0
    assert _count(postgres, table, {hostile: {"$ne": 1}}) == len(records)
    condition, params = compile_filter(parse_where({"s": {"$eq": "'; drop table x; --"}}), COLUMNS)
    assert params == ["'; drop table x; --"]
    with postgres.connect() as connection:
        assert "drop table" not in condition.as_string(connection)
