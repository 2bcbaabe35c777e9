"""Roles, grants, row-level security and policies of a PostgreSQL table, snapshotted and
restored into a fresh PostgreSQL 18 with pgvector, and the permissions gate acting as the
application's role: it passes the faithful restore and fails, naming it, each damage (a
dropped policy, a policy widened to all rows, a policy added, a missing grant, row-level
security disabled). Policies are SQL: from an unsigned catalog they are not restored,
and the restore and the gate both say so. One schema per tenant: each tenant's table and
its role's access restored, and a lost schema usage caught."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from drconsole.engines import open_engine
from drconsole.engines.base import Engine
from drconsole.engines.pgvector.introspect import describe_table
from drconsole.engines.pgvector.server import PostgresServer
from drconsole.incident.record import read_record
from drconsole.sandbox import start_server

from chroma_restore import run_drill, snapshot
from helpers import KEY_FILE, write_runbook

pytestmark = pytest.mark.integration

_schemas = itertools.count()
TENANTS = ("acme", "globex", "initech", "umbrella")
POLICY = "(tenant_id = current_setting('app.tenant', true))"


def _prepare(server: PostgresServer, schema: str) -> None:
    with server.connect() as connection:
        connection.execute("create extension if not exists vector")
        for role, login in (("kb_app", "login password 'app-secret'"), ("kb_admin", "nologin")):
            connection.execute(
                f"do $$ begin create role {role} {login}; "
                "exception when duplicate_object then null; end $$"
            )
        connection.execute(f"create schema {schema}")
        connection.execute(f"grant usage on schema {schema} to kb_app, kb_admin")
        connection.execute(
            f"create table {schema}.docs (id bigint primary key, embedding vector(8) not null, "
            "tenant_id text not null, body text)"
        )
        connection.execute(
            f"insert into {schema}.docs select n, "
            "(select array_agg(random()::real) from generate_series(1, 8) where n > 0)::vector, "
            f"(array{list(TENANTS)})[n % 4 + 1], 'body ' || n from generate_series(1, 200) n"
        )
        connection.execute(
            f"create index docs_embedding_idx on {schema}.docs using hnsw "
            "(embedding vector_cosine_ops)"
        )
        connection.execute(f"grant select on {schema}.docs to kb_app")
        connection.execute(f"grant select, insert on {schema}.docs to kb_admin")
        connection.execute(f"alter table {schema}.docs enable row level security")
        connection.execute(
            f"create policy tenant_rows on {schema}.docs for select to kb_app using {POLICY}"
        )


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[PostgresServer]:
    """A second PostgreSQL, new: no role of the source exists there."""
    server = start_server(lambda: PostgresServer(tmp_path / "fresh", durable=False))
    try:
        yield server
    finally:
        server.discard()


def _runbook(
    folder: Path,
    catalog: Path,
    target: PostgresServer,
    schema: str,
    steps: str,
    *,
    signed: bool = True,
) -> Path:
    key = f', key: "file:{folder / KEY_FILE}"' if signed else ", allow_unsigned: true"
    return write_runbook(
        folder,
        f"""
        schema: drconsole/runbook/v1
        id: kb-access
        title: Restore the tenants' table
        objectives: {{rto: 1h, rpo: 1d}}
        catalog: {{url: {catalog}{key}}}
        target: {{engine: pgvector, url: "{target.url}", schema: restored,
                  token: "{target.token_reference}"}}
        source: {{engine: pgvector, schema: {schema}}}
        collections: [docs]
        permissions: {{tenant_field: tenant_id, tenant_role: kb_app, tenant_setting: app.tenant}}
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
        """
        + steps,
        name=f"runbook-{next(_schemas)}.yaml",
    )


RESTORE = """
          - {id: schema, action: restore_schema, needs: [verify]}
          - {id: data, action: restore_data, needs: [schema], marks: service_restored}
          - {id: permissions, action: check_permissions, needs: [data], gate: true}
"""
RECHECK = """
          - id: permissions
            action: check_permissions
            needs: [verify]
            gate: true
            marks: service_restored
"""


def _source(postgres: PostgresServer) -> tuple[Engine, str]:
    schema = f"tenants{next(_schemas)}"
    _prepare(postgres, schema)
    engine = open_engine(
        {
            "engine": "pgvector",
            "url": postgres.url,
            "schema": schema,
            "token": postgres.token_reference,
        }
    )
    return engine, schema


def _step(runs: Path, step: str) -> dict:
    records = sorted(runs.glob("*.jsonl"), key=lambda path: path.stat().st_mtime_ns)
    events = read_record(records[-1]).events
    return [e.data for e in events if e.type == "step.finished" and e.step_id == step][-1]


def test_access_state_is_restored_and_each_damage_is_caught_by_name(
    postgres: PostgresServer, fresh: PostgresServer, tmp_path: Path
) -> None:
    engine, schema = _source(postgres)
    catalog = tmp_path / "catalog"
    snapshot(engine, catalog, ["docs"])
    runs = tmp_path / "runs"
    restored = run_drill(_runbook(tmp_path, catalog, fresh, schema, RESTORE), runs)
    assert restored.exit_code == 0, restored.message
    data = _step(runs, "data")
    assert any(
        "role kb_app was made without login and password" in n for n in data["details"]["to_do"]
    )
    assert data["details"]["not_restored"] == {
        "docs": ["pgvector.roles.kb_app.login: false, not true"]
    }
    with postgres.connect() as source, fresh.connect() as target:
        original = describe_table(source, schema, "docs").to_json()
        copy = describe_table(target, "restored", "docs").to_json()
    original["engine_config"]["pgvector"]["roles"]["kb_app"]["login"] = False
    assert copy == original
    assert _step(runs, "permissions")["status"] == "succeeded"

    recheck = _runbook(tmp_path, catalog, fresh, schema, RECHECK)
    table = "restored.docs"
    damages: dict[str, tuple[list[str], list[str], str]] = {
        "a dropped policy": (
            [f"drop policy tenant_rows on {table}"],
            [f"create policy tenant_rows on {table} for select to kb_app using {POLICY}"],
            "policies.tenant_rows dropped",
        ),
        "a policy widened to all rows": (
            [
                f"drop policy tenant_rows on {table}",
                f"create policy tenant_rows on {table} for select to kb_app using (true)",
            ],
            [
                f"drop policy tenant_rows on {table}",
                f"create policy tenant_rows on {table} for select to kb_app using {POLICY}",
            ],
            "policies.tenant_rows.using is 'true'",
        ),
        "a permissive policy added": (
            [f"create policy all_rows on {table} for select to kb_app using (true)"],
            [f"drop policy all_rows on {table}"],
            "policies.all_rows added",
        ),
        "a missing grant": (
            [f"revoke select on {table} from kb_app"],
            [f"grant select on {table} to kb_app"],
            "missing select to kb_app",
        ),
        "row-level security disabled": (
            [f"alter table {table} disable row level security"],
            [f"alter table {table} enable row level security"],
            "row_level_security.enabled is False",
        ),
    }
    assert run_drill(recheck, runs).exit_code == 0, "the faithful restore passes"
    for damage, (apply, undo, named) in damages.items():
        _execute(fresh, apply)
        result = run_drill(recheck, runs)
        assert result.exit_code != 0, f"{damage}: the gate passed"
        summary = _step(runs, "permissions")["summary"]
        violations = str(_step(runs, "permissions")["details"]["violations"])
        assert named in summary or named in violations, (damage, summary)
        _execute(fresh, undo)
        assert run_drill(recheck, runs).exit_code == 0, f"{damage} undone"


def test_the_behaviour_as_the_role_is_checked_not_only_the_definitions(
    postgres: PostgresServer, fresh: PostgresServer, tmp_path: Path
) -> None:
    """The table's grants and policies are intact, but the application's role was given
    BYPASSRLS: only acting as the role shows that it now sees every tenant's rows."""
    engine, schema = _source(postgres)
    catalog = tmp_path / "catalog"
    snapshot(engine, catalog, ["docs"])
    runs = tmp_path / "runs"
    assert run_drill(_runbook(tmp_path, catalog, fresh, schema, RESTORE), runs).exit_code == 0
    with fresh.connect() as connection:
        rows = _as_role(connection, "acme", "select count(*) from restored.docs")
    assert rows == 50, "kb_app sees exactly its tenant's rows"
    _execute(fresh, ["alter role kb_app bypassrls"])
    result = run_drill(_runbook(tmp_path, catalog, fresh, schema, RECHECK), runs)
    assert result.exit_code != 0
    violations = _step(runs, "permissions")["details"]["violations"]
    seen = [v for v in violations if v["check"] == "visible_as_role"]
    assert seen and seen[0]["actual"] == 200, "a role that bypasses the policies sees every row"


def test_policies_from_an_unsigned_catalog_are_not_run_and_the_gate_says_so(
    postgres: PostgresServer, fresh: PostgresServer, tmp_path: Path
) -> None:
    engine, schema = _source(postgres)
    catalog = tmp_path / "catalog"
    snapshot(engine, catalog, ["docs"], signed=False)
    runs = tmp_path / "runs"
    result = run_drill(_runbook(tmp_path, catalog, fresh, schema, RESTORE, signed=False), runs)
    assert result.exit_code != 0, "the permissions gate fails: the role sees none of its rows"
    data = _step(runs, "data")
    assert data["status"] == "succeeded"
    assert "policies (the manifest is unsigned" in data["summary"]
    with fresh.connect() as connection:
        assert not connection.execute("select * from pg_policies").fetchall()
    violations = str(_step(runs, "permissions")["details"]["violations"])
    assert "policies.tenant_rows dropped" in violations


def _records(engine: Engine, name: str) -> dict[str, tuple[object, bytes]]:
    return {
        record_id: (batch.metadatas[row], batch.vectors[row].tobytes())
        for batch in engine.scan(name, 100)
        for row, record_id in enumerate(batch.ids)
    }


def _execute(server: PostgresServer, statements: list[str]) -> None:
    with server.connect() as connection:
        for statement in statements:
            connection.execute(statement)


def _as_role(connection, tenant: str, query: str) -> int:
    with connection.transaction():
        connection.execute("set local role kb_app")
        connection.execute("select set_config('app.tenant', %s, true)", (tenant,))
        return connection.execute(query).fetchone()[0]


TENANT_SCHEMA = """
create schema {s};
create table {s}.docs (id bigint primary key, embedding vector(8) not null, body text);
insert into {s}.docs select n,
    (select array_agg(random()::real) from generate_series(1, 8) where n > 0)::vector,
    '{s} ' || n from generate_series(1, {rows}) n;
create index docs_embedding_idx on {s}.docs using hnsw (embedding vector_l2_ops);
do $$ begin create role {s}_app nologin; exception when duplicate_object then null; end $$;
grant usage on schema {s} to {s}_app;
grant select on {s}.docs to {s}_app;
"""


def test_one_schema_per_tenant_restores_each_tenant_and_its_isolation(
    postgres: PostgresServer, fresh: PostgresServer, tmp_path: Path
) -> None:
    """Each tenant's table lives in its own schema, named in the runbook as SCHEMA:TABLE:
    every tenant's table is restored exactly with its role's schema usage and grant, and
    a tenant role that lost the usage of its schema is caught by name."""
    tenants = {f"tn{next(_schemas)}_{name}": rows for name, rows in (("acme", 30), ("globex", 20))}
    with postgres.connect() as connection:
        connection.execute("create extension if not exists vector")
        for schema, rows in tenants.items():
            connection.execute(TENANT_SCHEMA.format(s=schema, rows=rows))
    collections = [f"{schema}:docs" for schema in tenants]
    engine = open_engine(
        {"engine": "pgvector", "url": postgres.url, "token": postgres.token_reference}
    )
    catalog = tmp_path / "catalog"
    snapshot(engine, catalog, collections)
    header = f"""
        schema: drconsole/runbook/v1
        id: per-tenant
        title: Restore every tenant's schema
        objectives: {{rto: 1h, rpo: 1d}}
        catalog: {{url: {catalog}, key: "file:{tmp_path / KEY_FILE}"}}
        target: {{engine: pgvector, url: "{fresh.url}", token: "{fresh.token_reference}"}}
        source: {{engine: pgvector, schema: public}}
        collections: [{", ".join(collections)}]
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
        """
    runbook = write_runbook(
        tmp_path,
        header
        + """
          - {id: schema, action: restore_schema, needs: [verify]}
          - {id: data, action: restore_data, needs: [schema]}
          - {id: counts, action: check_counts, needs: [data], gate: true}
          - {id: permissions, action: check_permissions, needs: [counts], gate: true,
             marks: service_restored}
        """,
        name="per-tenant.yaml",
    )
    recheck = write_runbook(tmp_path, header + RECHECK, name="per-tenant-recheck.yaml")
    runs = tmp_path / "runs"
    result = run_drill(runbook, runs)
    assert result.exit_code == 0, result.message
    restored = open_engine({"engine": "pgvector", "url": fresh.url, "token": fresh.token_reference})
    with postgres.connect() as source, fresh.connect() as target:
        for schema, rows in tenants.items():
            name = f"{schema}:docs"
            assert restored.count(name) == rows
            assert _records(restored, name) == _records(engine, name)
            original = describe_table(source, schema, "docs").to_json()
            assert describe_table(target, schema, "docs").to_json() == original
            assert original["engine_config"]["pgvector"]["schema_usage"] == [f"{schema}_app"]
    acme = next(iter(tenants))
    assert run_drill(recheck, runs).exit_code == 0, "the faithful restore passes again"
    _execute(fresh, [f"revoke usage on schema {acme} from {acme}_app"])
    assert run_drill(recheck, runs).exit_code != 0
    violations = str(_step(runs, "permissions")["details"]["violations"])
    assert f"schema_usage is [], not ['{acme}_app']" in violations
