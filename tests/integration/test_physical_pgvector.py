"""PostgreSQL's native physical backups on a real PostgreSQL 18 with pgvector: a base
backup and two incrementals (pg_basebackup --incremental) in one chain, each described
from a server started on the chain combined (pg_combinebackup); restored into a sandbox
by combining the chain, where the counts gate (every row's content), the permissions
gate (acting as the application's role under row-level security) and the golden queries
all pass; a damaged incremental stops the restore before anything is unpacked; an
incident restores the stopped server's own cluster folder and keeps the old one aside."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drconsole.actions.physical_snapshot import PhysicalRequest, create_physical_snapshot
from drconsole.catalog.layout import file_key, mac_key, manifest_key
from drconsole.catalog.local import LocalStore
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.physical import pack_folder, store_sink, unpack_part
from drconsole.engines.pgvector.server import PostgresServer
from drconsole.incident.record import read_record
from drconsole.sandbox import start_server

from helpers import KEY_FILE, catalog_key, run_cli, write_runbook

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("physical-pgvector"),  # one worker builds the chain once
]

TENANTS = ("acme", "globex", "initech")
ROWS = "select id, tenant_id, body, embedding::text from docs order by id"


@dataclass
class Chain:
    server: PostgresServer
    folder: Path
    """Holds ``catalog``, the catalog key and ``golden.json``."""
    snapshots: list[Manifest]
    rows: list[tuple]
    """The table as the source held it at the last snapshot."""


def _prepare(server: PostgresServer) -> None:
    with server.connect() as connection:
        connection.execute("create extension if not exists vector")
        connection.execute("create role kb_app nologin")
        connection.execute(
            "create table docs (id bigint primary key, tenant_id text not null, body text, "
            "embedding vector(8) not null)"
        )
        connection.execute(
            "insert into docs select n, (array['acme','globex','initech'])[n % 3 + 1], "
            "'body ' || n, (select array_agg(random()::real) from generate_series(1, 8) "
            "where n > 0)::vector from generate_series(1, 1200) n"
        )
        connection.execute(
            "create index docs_embedding_idx on docs using hnsw (embedding vector_l2_ops)"
        )
        connection.execute("grant select on docs to kb_app")
        connection.execute("create schema src")
        connection.execute(
            "create table src.items (id bigint primary key, embedding vector(4) not null)"
        )
        connection.execute(
            "insert into src.items select n, array[n, 1, 2, 3]::real[]::vector "
            "from generate_series(1, 50) n"
        )
        connection.execute("alter table docs enable row level security")
        connection.execute(
            "create policy tenant_rows on docs for select to kb_app "
            "using (tenant_id = current_setting('app.tenant', true))"
        )


def _backup(server: PostgresServer, folder: Path, *, incremental: bool) -> Manifest:
    return create_physical_snapshot(
        PhysicalRequest(
            engine="pgvector",
            store=LocalStore(folder / "catalog"),
            name="app",
            url=server.url,
            token=server.password,
            incremental=incremental,
            namespace={"schema": "public"},
            tenant_field="tenant_id",
            key=catalog_key(folder),
        )
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """A server whose table changed between a base backup and two incrementals."""
    folder = tmp_path_factory.mktemp("chain")
    (folder / "catalog").mkdir()
    server = start_server(lambda: PostgresServer(folder / "source"))
    found = None
    try:
        _prepare(server)
        snapshots = [_backup(server, folder, incremental=False)]
        with server.connect() as connection:
            connection.execute(
                "insert into docs select n, 'globex', 'new ' || n, "
                "'[1,2,3,4,5,6,7,8]' from generate_series(1201, 1400) n"
            )
            connection.execute("delete from docs where id <= 10")
            connection.execute("update docs set body = 'changed' where id between 100 and 104")
        snapshots.append(_backup(server, folder, incremental=True))
        with server.connect() as connection:
            connection.execute("delete from docs where id between 1300 and 1302")
            connection.execute("update docs set embedding = '[9,9,9,9,9,9,9,9]' where id = 500")
        snapshots.append(_backup(server, folder, incremental=True))
        with server.connect() as connection:
            rows = connection.execute(ROWS).fetchall()
        captured = run_cli(  # what the application saw at the last backup
            *("golden", "capture", "--url", server.url, "--token", server.token_reference),
            *("--collection", "docs", "--queries", "12", "--k", "5"),
            *("--out", str(folder / "golden.json")),
        )
        assert captured.returncode == 0, captured.stderr
        found = Chain(server, folder, snapshots, rows)
        yield found
    finally:
        (found.server if found else server).discard()  # the incident test restarts it


def test_the_chain_is_recorded_with_what_each_backup_changed(chain: Chain) -> None:
    base, first, second = chain.snapshots
    assert [m.kind for m in chain.snapshots] == [
        "physical",
        "physical-incremental",
        "physical-incremental",
    ]
    assert (first.parent, second.parent) == (base.id, first.id)
    assert base.collection("docs").counts == {
        "records": 1200,
        "deletes": 0,
        "total_after_apply": 1200,
    }
    assert first.collection("docs").counts == {
        "records": 205,
        "deletes": 10,
        "total_after_apply": 1390,
    }
    assert second.collection("docs").counts == {
        "records": 1,
        "deletes": 3,
        "total_after_apply": 1387,
    }
    assert second.physical["method"] == "pg_basebackup"
    assert second.physical["written_by"]["incremental_from_lsn"]
    assert "consistent: a base backup" in second.point_in_time_note()
    assert sum(part.bytes for part in second.physical_parts) < sum(
        part.bytes for part in base.physical_parts
    ), "an incremental holds less than its base"


def _runbook(folder: Path, target: str, steps: str, *, depth: str = "full") -> Path:
    return write_runbook(
        folder,
        f"""
        schema: drconsole/runbook/v1
        id: app-physical
        title: Restore the application's cluster from its base backups
        objectives: {{rto: 1h, rpo: 1d}}
        catalog: {{url: catalog, key: "file:{KEY_FILE}"}}
        target: {target}
        source: {{engine: pgvector, schema: public}}
        collections: [docs]
        permissions: {{tenant_field: tenant_id, tenant_role: kb_app, tenant_setting: app.tenant}}
        golden: golden.json
        prefer: physical
        steps:
          - {{id: verify, action: verify_chain, with: {{depth: {depth}}}, gate: true}}
          - {{id: schema, action: restore_schema, needs: [verify]}}
          - {{id: data, action: restore_data, needs: [schema]}}
        """
        + steps,
    )


GATES = """
          - {id: counts, action: check_counts, gate: true, with: {content: full}}
          - {id: permissions, action: check_permissions, gate: true}
          - id: golden
            action: golden_queries
            with: {min_recall: 1.0, mode: exact}
            gate: true
            marks: service_restored
"""


def _copy(chain: Chain, tmp_path: Path) -> Path:
    shutil.copytree(chain.folder / "catalog", tmp_path / "catalog")
    shutil.copy(chain.folder / KEY_FILE, tmp_path / KEY_FILE)
    shutil.copy(chain.folder / "golden.json", tmp_path / "golden.json")
    return tmp_path


def _drill(folder: Path, *flags: str) -> tuple[int, list]:
    done = run_cli("drill", "runbook.yaml", "--json", "--runs-dir", "runs", *flags, cwd=folder)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, read_record(next((folder / "runs").glob("*.jsonl"))).events


def _finished(events: list, step: str) -> dict:
    return [e for e in events if e.type == "step.finished" and e.step_id == step][-1].data


def test_a_sandbox_drill_combines_the_chain_and_every_gate_passes(
    chain: Chain, tmp_path: Path
) -> None:
    folder = _copy(chain, tmp_path)
    _runbook(folder, "{sandbox: pgvector}", GATES)
    code, events = _drill(folder, "--yes")
    summaries = {step: _finished(events, step)["summary"] for step in ("verify", "data")}
    assert code == 0, summaries
    assert _finished(events, "verify")["details"]["chain"] == [m.id for m in chain.snapshots]
    data = _finished(events, "data")
    assert data["details"]["physical"] is True
    assert "combining 3 snapshots" in data["summary"]
    assert _finished(events, "counts")["status"] == "succeeded"
    permissions = _finished(events, "permissions")
    assert permissions["status"] == "succeeded", permissions["summary"]
    checks = [e.data for e in events if e.type == "check.result" and e.step_id == "permissions"]
    assert any("kb_app" in str(check) for check in checks), "the gate acted as the role"
    assert "recall@k 1.000" in _finished(events, "golden")["summary"]


def test_a_damaged_incremental_stops_the_restore_before_anything_is_unpacked(
    chain: Chain, tmp_path: Path
) -> None:
    folder = _copy(chain, tmp_path)
    damaged = chain.snapshots[1]
    path = damaged.physical_parts[0].path
    part = folder / "catalog" / file_key(damaged.id, path)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x10
    part.write_bytes(bytes(data))
    _runbook(folder, "{sandbox: pgvector}", GATES, depth="manifest")
    code, events = _drill(folder, "--yes")
    assert code == 1
    step = _finished(events, "data")
    assert step["status"] == "failed"
    assert damaged.id in step["summary"] and path in step["summary"]
    assert "nothing was unpacked" in step["summary"]


def test_an_incident_restores_the_stopped_cluster_folder_and_keeps_the_old_one(
    chain: Chain, tmp_path: Path
) -> None:
    """The source itself is the incident: the table is dropped, the server stopped, the
    chain restored into its own cluster folder; once started again it serves the rows
    of the last backup, and the damaged folder is kept aside."""
    folder = _copy(chain, tmp_path)
    server = chain.server
    with server.connect() as connection:
        connection.execute("drop table docs")
    server.stop()
    cluster = server.data_dir.resolve()
    _runbook(
        folder,
        f'{{engine: pgvector, url: "{server.url}", token: "{server.token_reference}", '
        f'data_dir: "{cluster}"}}',
        """
          - id: start
            kind: manual
            instructions: Start PostgreSQL on the restored cluster folder.
          - {id: counts, action: check_counts, gate: true, marks: service_restored}
        """,
    )
    code, events = _drill(folder, "--mode", "incident")
    assert code == 3, _finished(events, "data")["summary"]
    data = _finished(events, "data")
    aside = Path(data["details"]["kept_aside"])
    assert aside.name.startswith(f"{cluster.name}.before-") and (aside / "PG_VERSION").exists()
    assert cluster.stat().st_uid == aside.stat().st_uid, "the restored files keep the owner"
    chain.server = start_server(lambda: PostgresServer(server.workdir, port=server.port))
    resumed = run_cli(
        *("drill", "--resume", "latest", "--yes", "--json", "--runs-dir", "runs"), cwd=folder
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with chain.server.connect() as connection:
        assert connection.execute(ROWS).fetchall() == chain.rows


def test_pg_verifybackup_catches_a_backup_whose_parts_match_their_digests(
    chain: Chain, tmp_path: Path
) -> None:
    """A base backup repacked with one data file changed and its manifest rewritten to
    match (unsigned): every digest holds, yet pg_verifybackup, run by verify_chain and
    `catalog verify` at depth full, finds the file against the backup's own manifest."""
    folder = _copy(chain, tmp_path)
    store = LocalStore(folder / "catalog")
    base = chain.snapshots[0]
    unpacked = tmp_path / "unpacked"
    for part in base.physical_parts:
        unpack_part(store, base.id, part, unpacked)
    victim = max((unpacked / "base").rglob("*"), key=lambda path: path.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    for part in base.physical_parts:
        (folder / "catalog" / file_key(base.id, part.path)).unlink()
    packed = pack_folder(store_sink(store, base.id), unpacked)
    manifest_path = folder / "catalog" / manifest_key(base.id)
    manifest = json.loads(manifest_path.read_text())
    manifest["physical"]["parts"] = [part.to_json() for part in packed.parts]
    manifest_path.write_text(json.dumps(manifest))
    (folder / "catalog" / mac_key(base.id)).unlink()
    shutil.rmtree(folder / "catalog" / "index", ignore_errors=True)
    hashed = run_cli("catalog", "verify", str(folder / "catalog"), base.id, "--depth", "full")
    assert hashed.returncode != 0, hashed.stdout
    assert f"{base.id}: engine_check: pg_verifybackup" in hashed.stdout.replace("\n", " ")
    runbook = _runbook(folder, "{sandbox: pgvector}", GATES)
    runbook.write_text(
        runbook.read_text().replace(f'key: "file:{KEY_FILE}"', "allow_unsigned: true")
    )
    code, events = _drill(folder, "--yes")
    assert code == 1
    verify = _finished(events, "verify")
    assert verify["status"] == "failed" and "pg_verifybackup" in verify["summary"]
    assert base.id in verify["summary"]


def test_the_command_line_takes_a_base_backup_then_an_incremental_and_keeps_the_password_out(
    chain: Chain, tmp_path: Path
) -> None:
    server = chain.server
    take = (
        *("snapshot", "create", "--physical", "--url", server.url),
        *("--token", server.token_reference, "--catalog", str(tmp_path / "catalog")),
    )
    full = run_cli(*take)
    assert full.returncode == 0, full.stderr
    assert full.stdout.startswith("physical snapshot") and "files: " in full.stdout
    inline = server.url.replace("drconsole@", f"drconsole:{server.password}@")
    incremental = run_cli(  # the password written into the url instead of a reference
        *("snapshot", "create", "--physical", "--url", inline, "--incremental"),
        *("--catalog", str(tmp_path / "catalog")),
    )
    assert incremental.returncode == 0, incremental.stderr
    assert incremental.stdout.startswith("physical-incremental snapshot")
    stored = b"".join(path.read_bytes() for path in (tmp_path / "catalog").rglob("*.json"))
    assert server.password is not None and server.password.encode() not in stored
    unreachable = run_cli(
        *("snapshot", "create", "--physical", "--catalog", str(tmp_path / "elsewhere")),
        *("--url", server.url.replace(f":{server.port}/", ":1/")),
    )
    assert unreachable.returncode != 0 and "check the url" in unreachable.stderr
    assert not list((tmp_path / "elsewhere").glob("snapshots/*")), "nothing claimed"
    refused = run_cli(*take, "--data-dir", str(tmp_path))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "taken from the running server" in refused.stderr


def test_a_sandbox_serves_the_restored_tables_in_their_own_schema(
    chain: Chain, tmp_path: Path
) -> None:
    """Files bring tables back where they were: a snapshot of schema src restored into a
    sandbox (whose own default is public) is checked in src; an incident target that
    names another schema is refused before anything is touched."""
    backup = create_physical_snapshot(
        PhysicalRequest(
            engine="pgvector",
            store=LocalStore(tmp_path / "catalog"),
            name="src",
            url=chain.server.url,
            token=chain.server.password,
            namespace={"schema": "src"},
            key=catalog_key(tmp_path),
        )
    )
    assert backup.source["namespace"] == {"schema": "src"}
    write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: src-physical
        title: Restore the src schema's items
        objectives: {{rto: 1h, rpo: 1d}}
        catalog: {{url: catalog, key: "file:{KEY_FILE}"}}
        target: {{sandbox: pgvector}}
        source: {{engine: pgvector, schema: src}}
        collections: [items]
        prefer: physical
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
          - {{id: schema, action: restore_schema, needs: [verify]}}
          - {{id: data, action: restore_data, needs: [schema]}}
          - {{id: counts, action: check_counts, gate: true, marks: service_restored}}
        """,
    )
    code, events = _drill(tmp_path, "--yes")
    assert code == 0, _finished(events, "counts")["summary"]
    assert _finished(events, "data")["details"]["target"]["namespace"] == {"schema": "src"}

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "PG_VERSION").write_text("18\n")
    runbook = tmp_path / "runbook.yaml"
    runbook.write_text(
        runbook.read_text().replace(
            "target: {sandbox: pgvector}",
            f'target: {{engine: pgvector, url: "{chain.server.url}", schema: public, '
            f'data_dir: "{elsewhere}"}}',
        )
    )
    shutil.rmtree(tmp_path / "runs")
    code, events = _drill(tmp_path, "--yes", "--mode", "incident")
    assert code == 1
    data = _finished(events, "data")
    assert "names another place: schema 'public', the snapshot's is 'src'" in data["summary"]
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("else")) == [
        "elsewhere"
    ], "nothing unpacked beside the folder, nothing swapped"
    assert (elsewhere / "PG_VERSION").read_text() == "18\n"
