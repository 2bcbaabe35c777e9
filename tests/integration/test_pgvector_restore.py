"""Snapshots of PostgreSQL tables and their restore, on a real PostgreSQL 18 with
pgvector: every column and vector type round-trips (vectors bit for bit), a chain with
updates and deletes restores the newest state, the restored table is described as the
original (types, NOT NULL, indexes with their parameters, comment), and a snapshot taken
under a concurrent writer holds every table exactly as one committed instant had it."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.local import LocalStore
from drconsole.catalog.plan import RestorePlan
from drconsole.engines import open_engine
from drconsole.engines.base import Engine
from drconsole.engines.pgvector.introspect import describe_table
from drconsole.engines.pgvector.server import PostgresServer
from drconsole.golden import capture, save_golden
from drconsole.incident import events as ev
from drconsole.incident.record import read_record

from chroma_restore import restore_runbook, run_drill, snapshot
from helpers import KEY_FILE, write_runbook

pytestmark = pytest.mark.integration

_schemas = itertools.count()

TABLES = """
create table {s}.docs (
    id bigint primary key,
    embedding vector(16) not null,
    image halfvec(4),
    terms sparsevec(100),
    signature bit(8),
    title text not null,
    n integer,
    score double precision,
    flag boolean,
    created timestamptz,
    meta jsonb,
    tags text[],
    tenant_id text
);
comment on table {s}.docs is 'the knowledge base';
create index docs_embedding_idx on {s}.docs using hnsw (embedding vector_cosine_ops)
    with (m = 8, ef_construction = 32);
create index kb_tenant on {s}.docs (tenant_id);
create table {s}.notes (
    id text primary key,
    embedding vector(8) not null,
    body text
);
create index notes_embedding_idx on {s}.notes using ivfflat (embedding vector_l2_ops)
    with (lists = 4);
"""


def _fill(connection: Any, schema: str, docs: range, notes: range, version: int = 0) -> None:
    rng = np.random.default_rng(version)
    connection.execute(
        f"""
        insert into {schema}.docs
        select n,
               (select array_agg(random()::real) from generate_series(1, 16) where n > 0)::vector,
               case when n %% 3 = 0 then null
                    else (array[n * 0.5, -1.25, 0.0009765625, 65504])::halfvec end,
               case when n %% 4 = 0 then null
                    else ('{{' || (n %% 99 + 1) || ':0.1,100:-2.5}}/100')::sparsevec end,
               (n %% 256)::bit(8),
               'title ' || n || ' v{version}',
               case when n %% 5 = 0 then null else n * {version + 1} end,
               n / 7.0,
               n %% 2 = 0,
               timestamptz '2026-01-01 00:00:00.123456+00' + n * interval '1 minute',
               jsonb_build_object('n', n, 'x', 1.5, 'list', jsonb_build_array(1, 'a', null)),
               array['t' || (n %% 3), 'all'],
               'tenant-' || (n %% 4)
        from generate_series(%s::int, %s::int) n
        on conflict (id) do update set embedding = excluded.embedding, title = excluded.title,
            n = excluded.n
        """,
        (docs.start, docs.stop - 1),
    )
    for n in notes:
        vector = (
            "[" + ",".join(str(float(v)) for v in rng.standard_normal(8).astype(np.float32)) + "]"
        )
        connection.execute(
            f"insert into {schema}.notes values (%s, %s::vector, %s) "
            "on conflict (id) do update set embedding = excluded.embedding, body = excluded.body",
            (f"note-{n}", vector, None if n % 6 == 0 else f"body {n} ü v{version}"),
        )


@pytest.fixture
def source(postgres: PostgresServer) -> tuple[Engine, str]:
    schema = f"prod{next(_schemas)}"
    with postgres.connect() as connection:
        connection.execute("create extension if not exists vector")
        connection.execute(f"create schema {schema}")
        connection.execute(TABLES.format(s=schema))
        _fill(connection, schema, range(1, 301), range(100))
    engine = open_engine(
        {
            "engine": "pgvector",
            "url": postgres.url,
            "schema": schema,
            "token": postgres.token_reference,
        }
    )
    yield engine, schema
    engine.close()


def _target(postgres: PostgresServer) -> dict[str, str]:
    return {
        "engine": "pgvector",
        "url": postgres.url,
        "schema": f"restored{next(_schemas)}",
        "token": postgres.token_reference,
    }


def _rows(engine: Engine, name: str) -> dict[str, tuple[Any, ...]]:
    """Every record of a table: metadata, and each vector's exact bytes."""
    rows = {}
    for batch in engine.scan(name, 128):
        for row, record_id in enumerate(batch.ids):
            rows[record_id] = (
                batch.metadatas[row],
                batch.vectors[row].tobytes(),
                {name: vectors[row].tobytes() for name, vectors in batch.named_vectors.items()},
                {
                    name: None
                    if (value := column[row]) is None
                    else (value.indices.tobytes(), value.values.tobytes())
                    for name, column in batch.sparse_vectors.items()
                },
            )
    return rows


def test_a_chain_of_tables_restores_exactly_and_as_described(
    postgres: PostgresServer, source: tuple[Engine, str], tmp_path: Path
) -> None:
    engine, schema = source
    catalog = tmp_path / "catalog"
    full = snapshot(engine, catalog, ["docs", "notes"], part_rows=64)
    assert full.point_in_time["kind"] == "consistent"
    assert full.point_in_time["engine_instant"]["wal_lsn"]
    with postgres.connect() as connection:
        _fill(connection, schema, range(250, 340), range(90, 110), version=1)
        connection.execute(f"delete from {schema}.docs where id % 10 = 3")
        connection.execute(f"delete from {schema}.notes where id in ('note-1', 'note-2')")
    snapshot(engine, catalog, ["docs", "notes"], incremental=True, part_rows=64)
    expected = {name: _rows(engine, name) for name in ("docs", "notes")}
    assert len(expected["docs"]) == 339 - 34 and len(expected["notes"]) == 108
    target = _target(postgres)
    runbook = restore_runbook(tmp_path, catalog, target, ["notes", "docs"], counts=True)
    result = run_drill(runbook, tmp_path / "runs")
    assert result.exit_code == 0, result.message
    restored = open_engine(target)
    for name, rows in expected.items():
        assert _rows(restored, name) == rows, name
    with postgres.connect() as connection:
        for name in ("docs", "notes"):
            original = describe_table(connection, schema, name)
            copy = describe_table(connection, target["schema"], name)
            assert copy.to_json() == original.to_json(), name
            columns = [list(t.engine_config["pgvector"]["column_types"]) for t in (copy, original)]
            assert columns[0] == columns[1], "the columns in their original order"
    _the_counts_gate_names_each_damage(postgres, tmp_path, catalog, target)


def _the_counts_gate_names_each_damage(
    postgres: PostgresServer, folder: Path, catalog: Path, target: dict[str, str]
) -> None:
    """The faithful restore passes a counts and content gate run on its own; each damage
    to the restored tables fails it naming the record, and passes again once undone."""
    table = f"{target['schema']}.docs"
    recheck = write_runbook(
        folder,
        f"""
        schema: drconsole/runbook/v1
        id: recheck
        title: Check the restored tables
        objectives: {{rto: 1h}}
        catalog: {{url: {catalog}, key: "file:{folder / KEY_FILE}"}}
        target: {{engine: pgvector, url: "{target["url"]}", schema: {target["schema"]},
                  token: "{target["token"]}"}}
        source: {{engine: pgvector, schema: {_source_schema(catalog)}}}
        collections: [notes, docs]
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
          - {{id: counts, action: check_counts, gate: true, marks: service_restored}}
        """,
        name="recheck.yaml",
    )
    runs = folder / "recheck-runs"
    assert run_drill(recheck, runs).exit_code == 0, "the faithful restore passes"
    with postgres.connect() as connection:
        kept = connection.execute(
            f"select embedding::text, image::text, title, tags from {table} where id = 5"
        ).fetchone()
    damages = {
        "5: metadata.title": f"update {table} set title = 'changed' where id = 5",
        "5: vector image differs": f"update {table} set image = '[9,9,9,9]' where id = 5",
        "5: metadata.tags": f"update {table} set tags = array['x'] where id = 5",
        "5: vector differs": f"update {table} set embedding = "
        f"(select embedding from {table} where id = 7) where id = 5",
        "docs count expected 305, got 304": f"delete from {table} where id = 5",
    }
    for damage, statement in damages.items():
        with postgres.connect() as connection:
            connection.execute(statement)
        failed = run_drill(recheck, runs)
        assert failed.exit_code != 0, f"{damage}: the gate passed"
        records = sorted(runs.glob("*.jsonl"), key=lambda path: path.stat().st_mtime_ns)
        events = read_record(records[-1]).events
        summary = next(
            e.data["summary"] for e in events if e.type == "step.finished" and e.step_id == "counts"
        )
        assert damage in summary, summary
        with postgres.connect() as connection:
            connection.execute(f"delete from {table} where id = 5")
            connection.execute(
                f"insert into {table} select * from {_source_schema(catalog)}.docs where id = 5"
            )
            assert (
                connection.execute(
                    f"select embedding::text, image::text, title, tags from {table} where id = 5"
                ).fetchone()
                == kept
            )
        assert run_drill(recheck, runs).exit_code == 0, f"{damage} undone"


def _source_schema(catalog: Path) -> str:
    manifests = load_catalog(LocalStore(catalog)).ordered()
    return str(manifests[0].source["namespace"]["schema"])


def test_a_snapshot_under_a_concurrent_writer_is_one_committed_instant(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """A writer commits, as fast as it can, transactions that each add a row to one table,
    delete the row 20 before it, and write the newest row's number in another table. The
    snapshot must hold both tables as one commit left them: 20 consecutive rows, and the
    number of the newest."""
    schema = f"ledger{next(_schemas)}"
    with postgres.connect() as connection:
        connection.execute("create extension if not exists vector")
        connection.execute(f"create schema {schema}")
        connection.execute(
            f"create table {schema}.rows (id bigint primary key, embedding vector(2), n bigint)"
        )
        connection.execute(
            f"create table {schema}.head (id text primary key, embedding vector(2), n bigint)"
        )
        connection.execute(f"insert into {schema}.head values ('head', '[0,0]', 0)")
    stop = threading.Event()
    written = [0]

    def write() -> None:
        with postgres.connect() as connection:
            connection.autocommit = True
            number = 0
            while not stop.is_set():
                number += 1
                with connection.transaction():
                    connection.execute(
                        f"insert into {schema}.rows values (%s, '[1,2]', %s)", (number, number)
                    )
                    connection.execute(f"delete from {schema}.rows where id = %s", (number - 20,))
                    connection.execute(f"update {schema}.head set n = %s", (number,))
                written[0] = number

    engine = open_engine(
        {
            "engine": "pgvector",
            "url": postgres.url,
            "schema": schema,
            "token": postgres.token_reference,
        }
    )
    writer = threading.Thread(target=write)
    writer.start()
    try:
        while written[0] < 50:
            threading.Event().wait(0.01)
        before = written[0]
        manifest = snapshot(engine, tmp_path / "catalog", ["rows", "head"], part_rows=8)
        during = written[0] - before
    finally:
        stop.set()
        writer.join()
        engine.close()
    assert during > 0, "the writer committed while the snapshot was taken"
    plan = RestorePlan(LocalStore(tmp_path / "catalog"), [manifest])
    state = {}
    for name in ("rows", "head"):
        state[name] = {
            record_id: metadata["n"]
            for task in plan.tasks(name)
            for batch in plan.task_batches(task)
            for record_id, metadata in zip(batch.ids, batch.metadatas, strict=True)
        }
    newest = state["head"]["head"]
    assert newest >= 50
    assert sorted(int(key) for key in state["rows"]) == list(range(newest - 19, newest + 1))
    assert manifest.point_in_time["kind"] == "consistent"
    assert (
        load_catalog(LocalStore(tmp_path / "catalog"))
        .ordered()[0]
        .point_in_time_note()
        .startswith("consistent")
    )


def test_a_restore_through_staging_cuts_over_with_the_original_index_names(
    postgres: PostgresServer, source: tuple[Engine, str], tmp_path: Path
) -> None:
    """Production holds an older copy of the table; the restore writes a staging table
    beside it, the counts gate passes on staging, and the cutover renames production
    aside and staging into place, each in one transaction: the restored table has the
    snapshot's rows, and its HNSW index the original name again."""
    engine, schema = source
    catalog = tmp_path / "catalog"
    snapshot(engine, catalog, ["docs"], part_rows=64)
    expected = _rows(engine, "docs")
    target = _target(postgres)
    with postgres.connect() as connection:
        connection.execute(f"create schema {target['schema']}")
        connection.execute(TABLES.format(s=target["schema"]))
        _fill(connection, target["schema"], range(1, 11), range(3), version=9)
    runbook = write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: staged
        title: Restore through staging
        objectives: {{rto: 1h}}
        catalog: {{url: catalog, key: "file:{KEY_FILE}"}}
        target: {{engine: pgvector, url: "{target["url"]}", schema: {target["schema"]},
                  token: "{target["token"]}"}}
        source: {{engine: pgvector, schema: {schema}}}
        collections: [docs]
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
          - {{id: schema, action: restore_schema, with: {{into: staging}}}}
          - {{id: data, action: restore_data}}
          - {{id: counts, action: check_counts, gate: true}}
          - {{id: cutover, action: cutover, marks: service_restored}}
        """,
        name="staged.yaml",
    )
    result = run_drill(runbook, tmp_path / "runs")
    assert result.exit_code == 0, result.message
    restored = open_engine(target)
    assert _rows(restored, "docs") == expected
    with postgres.connect() as connection:
        names = {
            row[0]
            for row in connection.execute(
                "select indexname from pg_indexes where schemaname = %s and tablename = 'docs'",
                (target["schema"],),
            ).fetchall()
        }
        aside = [
            row[0]
            for row in connection.execute(
                "select tablename from pg_tables where schemaname = %s", (target["schema"],)
            ).fetchall()
            if row[0].startswith("docs.replaced.")
        ]
    assert "docs_embedding_idx" in names, names
    assert len(aside) == 1 and len(_rows(restored, aside[0])) == 10, "production kept aside"


def test_golden_queries_search_with_the_source_databases_ef_search(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """PostgreSQL keeps ``hnsw.ef_search`` per session (here the source database's default,
    5), not in the table: the snapshot records it with the index, the engine searches
    with it when asked (an HNSW scan returns at most ef_search rows), and the golden step
    asks for the snapshot's, not the target database's default (40)."""
    database = f"efsrc{next(_schemas)}"
    with postgres.connect() as connection:
        connection.autocommit = True
        connection.execute(f"create database {database}")
        connection.execute(f"alter database {database} set hnsw.ef_search = 5")
    with postgres.connect(database) as connection:
        connection.execute("create extension vector")
        connection.execute("create table items (id bigint primary key, embedding vector(8))")
        connection.execute(
            "insert into items select n, (select array_agg(random()::real) "
            "from generate_series(1, 8) where n > 0)::vector from generate_series(1, 5000) n"
        )
        connection.execute("create index on items using hnsw (embedding vector_l2_ops)")
        connection.execute("analyze items")
    url = postgres.url.rsplit("/", 1)[0] + f"/{database}"
    source = open_engine({"engine": "pgvector", "url": url, "token": postgres.token_reference})
    info = source.get_collection("items")
    assert info is not None and info.schema.index is not None
    assert info.schema.index.params["ef_search"] == 5
    vector = np.ones((1, 8), dtype=np.float32)
    assert len(source.query("items", vector, 10)[0].ids) == 5, "the database's ef_search"
    assert len(source.query("items", vector, 10, search={"ef_search": 10})[0].ids) == 10
    golden = capture(source, "items", queries=4, k=10)
    save_golden(golden, tmp_path / "golden.json")
    snapshot(source, tmp_path / "catalog", ["items"])
    target = _target(postgres)
    runbook = write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: ef
        title: Restore and search as the source did
        objectives: {{rto: 1h}}
        catalog: {{url: catalog, key: "file:{KEY_FILE}"}}
        target: {{engine: pgvector, url: "{target["url"]}", schema: {target["schema"]},
                  token: "{target["token"]}"}}
        source: {{engine: pgvector, schema: public}}
        collections: [items]
        golden: golden.json
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
          - {{id: schema, action: restore_schema}}
          - {{id: data, action: restore_data}}
          - id: golden
            action: golden_queries
            with: {{min_recall: 0.0, k: 10}}
            marks: service_restored
        """,
        name="ef.yaml",
    )
    result = run_drill(runbook, tmp_path / "runs")
    assert result.exit_code == 0, result.message
    events = read_record(next((tmp_path / "runs").glob("*.jsonl"))).events
    returned = [
        len(e.data["details"]["returned"])
        for e in events
        if e.type == ev.CHECK_RESULT and e.data["check"] == "golden_recall"
    ]
    assert returned and all(count == 5 for count in returned), returned
    source.close()


def test_indexes_it_cannot_rebuild_are_named_not_restored(
    postgres: PostgresServer, source: tuple[Engine, str], tmp_path: Path
) -> None:
    """A partial index and an expression index cannot be re-created from their parts:
    the restore says so by name, and never reports the table as restored whole."""
    engine, schema = source
    with postgres.connect() as connection:
        connection.execute(f"create index docs_recent on {schema}.docs (n) where n > 5")
        connection.execute(f"create index docs_lower_title on {schema}.docs (lower(title))")
    snapshot(engine, tmp_path / "catalog", ["docs"])
    target = _target(postgres)
    runbook = restore_runbook(tmp_path, tmp_path / "catalog", target, ["docs"])
    assert run_drill(runbook, tmp_path / "runs").exit_code == 0
    events = read_record(next((tmp_path / "runs").glob("*.jsonl"))).events
    schema_step = next(
        e.data for e in events if e.type == "step.finished" and e.step_id == "schema"
    )
    assert "NOT restored in docs" in schema_step["summary"]
    for name in ("docs_recent", "docs_lower_title"):
        assert f"index {name} (it has a predicate or expressions)" in schema_step["summary"]
    with postgres.connect() as connection:
        names = {
            row[0]
            for row in connection.execute(
                "select indexname from pg_indexes where schemaname = %s", (target["schema"],)
            ).fetchall()
        }
    assert "docs_recent" not in names and "docs_embedding_idx" in names
    data_step = next(e.data for e in events if e.type == "step.finished" and e.step_id == "data")
    assert "index docs_recent (it has a predicate or expressions)" in str(
        data_step["details"]["not_restored"]
    )
