"""Snapshots of Milvus collections and their restore into another database of a real
Milvus 2.3.5: every field type round-trips (vectors bit for bit), the partition key and
explicit partitions keep each record's tenant, aliases point at the restored collections,
a chain with upserts and deletes restores the newest state, and the counts gate fails a
moved alias and a lost partition, naming them."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import MILVUS_BUCKET
from pymilvus import DataType, MilvusClient

from drconsole.engines import open_engine
from drconsole.engines.base import Engine
from drconsole.engines.milvus.server import MilvusServer
from drconsole.golden import capture, save_golden
from drconsole.incident import events as ev
from drconsole.incident.record import read_record
from drconsole.sandbox import SeaweedS3

from chroma_restore import kill_drill_mid_restore, restore_runbook, run_drill, snapshot
from helpers import KEY_FILE, process_alive, run_cli, write_runbook

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("milvus")]

_databases = itertools.count()
TENANTS = ("acme", "globex", "initech")


def _articles(client: MilvusClient) -> None:
    """Every scalar type, an array, JSON, a default value, the dynamic field, a
    partition key, an HNSW index with cosine, and an alias."""
    schema = MilvusClient.create_schema(
        auto_id=False, enable_dynamic_field=True, description='{"owner": "kb"}'
    )
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=16)
    schema.add_field("title", DataType.VARCHAR, max_length=200)
    schema.add_field("n8", DataType.INT8)
    schema.add_field("n32", DataType.INT32)
    schema.add_field("n64", DataType.INT64, default_value=7)
    schema.add_field("score", DataType.FLOAT)
    schema.add_field("weight", DataType.DOUBLE)
    schema.add_field("flag", DataType.BOOL)
    schema.add_field("meta", DataType.JSON)
    schema.add_field(
        "tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=8, max_length=16
    )
    schema.add_field("tenant_id", DataType.VARCHAR, max_length=32, is_partition_key=True)
    index = client.prepare_index_params()
    index.add_index(
        "embedding", index_type="HNSW", metric_type="COSINE", params={"M": 8, "efConstruction": 64}
    )
    client.create_collection(
        "articles", schema=schema, index_params=index, num_partitions=4, consistency_level="Strong"
    )
    client.create_alias("articles", "kb_live")


def _article_rows(ids: range, version: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(version)
    return [
        {
            "id": f"a-{n}",
            "embedding": rng.standard_normal(16).astype(np.float32),
            "title": f"title {n} ü v{version}",
            "n8": n % 100 - 50,
            "n32": n * 1000,
            "n64": 2**62 + n,
            "score": float(np.float32(n / 3)),
            "weight": n / 7,
            "flag": n % 2 == 0,
            "meta": {"n": n, "x": 1.5, "list": [1, "a", None]},
            "tags": [f"t{n % 3}", "all"],
            "tenant_id": TENANTS[n % 3],
            **({"extra": n, "label": f"l{n}"} if n % 4 else {}),
        }
        for n in ids
    ]


def _notes(client: MilvusClient) -> None:
    """Integer keys, an IVF index with l2, and explicit partitions as tenants."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("note_id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
    schema.add_field("body", DataType.VARCHAR, max_length=100)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 4})
    client.create_collection("notes", schema=schema, index_params=index)
    for tenant in TENANTS[:2]:
        client.create_partition("notes", tenant)


def _note_rows(ids: range, version: int) -> dict[str, list[dict[str, Any]]]:
    rng = np.random.default_rng(100 + version)
    rows: dict[str, list[dict[str, Any]]] = {}
    for n in ids:
        partition = ("_default", *TENANTS[:2])[n % 3]
        rows.setdefault(partition, []).append(
            {
                "note_id": -(2**63) + n if n % 5 == 0 else n,
                "vector": rng.standard_normal(8).astype(np.float32),
                "body": f"body {n} v{version}",
            }
        )
    return rows


def _write(client: MilvusClient, articles: range, notes: range, version: int) -> None:
    client.upsert("articles", _article_rows(articles, version))
    for partition, rows in _note_rows(notes, version).items():
        client.upsert("notes", rows, partition_name=partition)


@pytest.fixture
def source(milvus: MilvusServer) -> tuple[Engine, MilvusClient]:
    database = f"prod{next(_databases)}"
    root = milvus.client()
    root.create_database(database)
    root.close()
    client = milvus.client(database)
    _articles(client)
    _notes(client)
    _write(client, range(300), range(90), version=0)
    engine = open_engine(
        {
            "engine": "milvus",
            "url": milvus.url,
            "database": database,
            "token": milvus.token_reference,
        }
    )
    yield engine, client
    engine.close()
    client.close()


def _dump(engine: Engine, name: str) -> dict[str, tuple[Any, ...]]:
    """Every record: metadata, tenant, and the vector's exact bytes."""
    return {
        record_id: (batch.metadatas[row], batch.tenants[row], batch.vectors[row].tobytes())
        for batch in engine.scan(name, 128)
        for row, record_id in enumerate(batch.ids)
    }


def test_a_chain_restores_every_field_partition_and_alias(
    milvus: MilvusServer, source: tuple[Engine, MilvusClient], tmp_path: Path
) -> None:
    engine, client = source
    catalog = tmp_path / "catalog"
    full = snapshot(engine, catalog, ["articles", "notes"], part_rows=64)
    assert full.point_in_time["kind"] != "consistent", "Milvus 2.3 reads no past instant"
    _write(client, range(250, 340), range(80, 110), version=1)
    client.delete("articles", filter='id in ["a-3", "a-13", "a-23"]')
    client.delete("notes", filter="note_id in [1, 2, 4]")
    snapshot(engine, catalog, ["articles", "notes"], incremental=True, part_rows=64)
    expected = {name: _dump(engine, name) for name in ("articles", "notes")}
    assert len(expected["articles"]) == 340 - 3
    assert {tenant for _, tenant, _ in expected["notes"].values()} == {"acme", "globex", None}
    target = {
        "engine": "milvus",
        "url": milvus.url,
        "database": f"restored{next(_databases)}",
        "token": milvus.token_reference,
    }
    runbook = restore_runbook(tmp_path, catalog, target, ["notes", "articles"], counts=True)
    result = run_drill(runbook, tmp_path / "runs")
    assert result.exit_code == 0, result.message
    restored = open_engine(target)
    for name, rows in expected.items():
        assert _dump(restored, name) == rows, name
    for name in ("articles", "notes"):
        original, copy = engine.get_collection(name), restored.get_collection(name)
        assert original is not None and copy is not None
        assert copy.schema == original.schema, name
        assert copy.metadata == original.metadata
    _the_gate_names_a_moved_alias_and_a_lost_partition(milvus, tmp_path, catalog, target)


def _the_gate_names_a_moved_alias_and_a_lost_partition(
    milvus: MilvusServer, folder: Path, catalog: Path, target: dict[str, str]
) -> None:
    """The faithful restore passes a counts gate run on its own; an alias moved to
    another collection, then a partition dropped, each fail it naming what is wrong."""
    recheck = write_runbook(
        folder,
        f"""
        schema: drconsole/runbook/v1
        id: recheck
        title: Check the restored collections
        objectives: {{rto: 1h}}
        catalog: {{url: {catalog}, key: "file:{folder / KEY_FILE}"}}
        target: {{engine: milvus, url: "{target["url"]}", database: {target["database"]},
                  token: "{target["token"]}"}}
        source: {{engine: milvus, database: {_source_database(catalog)}}}
        collections: [notes, articles]
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
          - {{id: counts, action: check_counts, gate: true, marks: service_restored}}
        """,
        name="recheck.yaml",
    )
    runs = folder / "recheck-runs"
    assert run_drill(recheck, runs).exit_code == 0, "the faithful restore passes"
    client = milvus.client(target["database"])
    client.alter_alias("notes", "kb_live")
    moved = run_drill(recheck, runs)
    assert moved.exit_code != 0
    assert "aliases" in moved.message and "kb_live" in moved.message, moved.message
    client.alter_alias("articles", "kb_live")
    assert run_drill(recheck, runs).exit_code == 0, "passes again once the alias is back"
    client.delete("notes", filter="note_id < 0 or note_id >= 0", partition_name="globex")
    client.release_collection("notes")
    client.drop_partition("notes", "globex")
    assert run_drill(recheck, runs).exit_code != 0
    tenants = [f for f in _failed_checks(runs) if f["check"] == "tenants"]
    assert tenants and tenants[0]["subject"] == "notes", _failed_checks(runs)
    assert "globex" in tenants[0]["expected"] and "globex" not in tenants[0]["actual"]
    client.close()


def _failed_checks(runs: Path) -> list[dict[str, Any]]:
    """The failed findings of the newest run in ``runs``."""
    newest = max(runs.glob("*.jsonl"), key=lambda path: path.stat().st_mtime_ns)
    return [
        event.data
        for event in read_record(newest).events
        if event.type == ev.CHECK_RESULT and not event.data["passed"]
    ]


def _source_database(catalog: Path) -> str:
    from drconsole.catalog.catalog import load_catalog
    from drconsole.catalog.local import LocalStore

    return next(iter(load_catalog(LocalStore(catalog)).ordered())).source["namespace"]["database"]


def test_the_import_path_restores_the_source_exactly_and_resumes_after_a_kill(
    milvus: MilvusServer,
    seaweed: SeaweedS3,
    s3_credentials: str,
    source: tuple[Engine, MilvusClient],
    tmp_path: Path,
) -> None:
    """``method: auto`` imports the partition-key collection server-side from files
    staged in Milvus's bucket (and inserts the one whose tenants are partitions, which an
    import cannot fill); a drill SIGKILLed once an import task was submitted resumes
    without importing twice; the result is the source's, record for record, as the
    insert path's is (the chain test restores the same records by inserts)."""
    engine, client = source
    catalog = tmp_path / "catalog"
    snapshot(engine, catalog, ["articles", "notes"], part_rows=64)
    _write(client, range(250, 340), range(80, 110), version=1)
    client.delete("articles", filter='id in ["a-3", "a-13", "a-23"]')
    snapshot(engine, catalog, ["articles", "notes"], incremental=True, part_rows=64)
    expected = {name: _dump(engine, name) for name in ("articles", "notes")}

    imported = {
        "engine": "milvus",
        "url": milvus.url,
        "database": f"imported{next(_databases)}",
        "token": milvus.token_reference,
        "stage": f"s3://{MILVUS_BUCKET}/staged",
        "stage_endpoint": seaweed.endpoint,
        "stage_credentials": s3_credentials,
    }
    runbook = restore_runbook(
        tmp_path,
        catalog,
        imported,
        ["articles", "notes"],
        counts=True,
        data_options=", import_from: 0, import_file_rows: 150",
        name="import.yaml",
    )
    kill_drill_mid_restore(runbook, tmp_path / "runs", 1, saying="submitted")
    resumed = run_cli(
        *("drill", "--resume", "latest", "--rerun-interrupted", "--yes", "--json"),
        *("--runs-dir", str(tmp_path / "runs")),
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:] + resumed.stdout[-2000:]
    events = read_record(next((tmp_path / "runs").glob("*.jsonl"))).events
    data = [e for e in events if e.type == "step.finished" and e.step_id == "data"][-1].data
    assert data["details"]["methods"] == {"articles": "import", "notes": "insert"}
    assert any(
        "taken up after the resume" in str(e.data.get("message"))
        for e in events
        if e.type == "step.progress" and e.step_id == "data"
    ), "the resumed run took up the import the killed one had submitted"
    assert data["details"]["per_collection"]["articles"] == len(expected["articles"])
    for name, rows in expected.items():
        assert _dump(open_engine(imported), name) == rows, name
    staged = seaweed.client().list_objects_v2(Bucket=MILVUS_BUCKET, Prefix="staged/")
    assert staged.get("KeyCount", 0) == 0, "imported files are removed from the stage"


def test_roles_grants_and_users_are_restored_and_a_missing_grant_is_named(
    milvus: MilvusServer, source: tuple[Engine, MilvusClient], tmp_path: Path
) -> None:
    """A role with two privileges on the collection and a user holding it are captured;
    restored into another database after the user was dropped, the grants are made
    again, the user is made again (with a password nobody knows, and the step says so),
    and check_permissions passes; a grant revoked afterwards fails it, named."""
    engine, _ = source
    suffix = next(_databases)
    role, user = f"kb_reader_{suffix}", f"kb_alice_{suffix}"
    root = milvus.client()
    root.create_role(role)
    for privilege in ("Search", "Query"):
        root.grant_privilege(role, "Collection", privilege, "articles", db_name=engine.database)
    root.create_user(user, "a-password-1")
    root.grant_role(user, role)
    catalog = tmp_path / "catalog"
    full = snapshot(engine, catalog, ["articles"], part_rows=64)
    access = full.collection("articles").schema.access
    assert {(g.role, g.privilege) for g in access.grants} == {(role, "Search"), (role, "Query")}
    root.revoke_role(user, role)
    root.drop_user(user)
    target = f"granted{suffix}"
    steps = f"""
        schema: drconsole/runbook/v1
        id: kb-restore
        title: Restore the knowledge base
        objectives: {{rto: 1h}}
        catalog: {{url: {catalog}, key: "file:{tmp_path / KEY_FILE}"}}
        target: {{engine: milvus, url: "{milvus.url}", database: {target},
                  token: "{milvus.token_reference}"}}
        source: {{engine: milvus, database: {engine.database}}}
        collections: [articles]
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
    """
    restore = write_runbook(
        tmp_path,
        steps
        + """
          - {id: schema, action: restore_schema, needs: [verify]}
          - {id: data, action: restore_data, needs: [schema]}
          - {id: access, action: check_permissions, needs: [data], gate: true,
             marks: service_restored}
        """,
        name="restore.yaml",
    )
    result = run_drill(restore, tmp_path / "runs")
    assert result.exit_code == 0, result.message
    events = read_record(next((tmp_path / "runs").glob("*.jsonl"))).events
    data = [e for e in events if e.type == "step.finished" and e.step_id == "data"][-1].data
    assert any(user in note and "password" in note for note in data["details"]["to_do"])
    assert role in (root.describe_user(user).get("roles") or ())
    granted = root.describe_role(role, db_name=target)["privileges"]
    assert {(g["object_name"], g["privilege"]) for g in granted} == {
        ("articles", "Search"),
        ("articles", "Query"),
    }
    recheck = write_runbook(
        tmp_path,
        steps
        + "\n          - {id: access, action: check_permissions, gate: true,"
        + " marks: service_restored}\n",
        name="recheck.yaml",
    )
    assert run_drill(recheck, tmp_path / "recheck-runs").exit_code == 0
    root.revoke_privilege(role, "Collection", "Query", "articles", db_name=target)
    assert run_drill(recheck, tmp_path / "recheck-runs").exit_code != 0
    grants = [f for f in _failed_checks(tmp_path / "recheck-runs") if f["check"] == "grants"]
    assert grants and grants[0]["details"]["missing"] == [f"Query to {role}"], grants
    root.close()


def test_a_drill_into_a_milvus_sandbox_passes_every_gate_then_drops_it(
    source: tuple[Engine, MilvusClient], tmp_path: Path
) -> None:
    """``target: {sandbox: milvus}`` starts a throwaway Milvus of its own (its own
    namespace and root password): the chain restores into it, the counts, permissions
    and golden-query gates pass (the queries searched with the collection's metric), and
    the sandbox is gone afterwards."""
    engine, _ = source
    snapshot(engine, tmp_path / "catalog", ["articles"], part_rows=64)
    save_golden(capture(engine, "articles", queries=5, k=10), tmp_path / "golden.json")
    write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: kb-drill
        title: Drill the knowledge base
        objectives: {{rto: 1h}}
        catalog: {{url: catalog, key: "file:{KEY_FILE}"}}
        target: {{sandbox: milvus}}
        source: {{engine: milvus, database: {engine.database}}}
        collections: [articles]
        golden: golden.json
        steps:
          - {{id: verify, action: verify_chain, gate: true}}
          - {{id: schema, action: restore_schema}}
          - {{id: data, action: restore_data}}
          - {{id: counts, action: check_counts, gate: true}}
          - {{id: permissions, action: check_permissions, gate: true}}
          - id: golden
            action: golden_queries
            with: {{min_recall: 0.9}}
            gate: true
            marks: service_restored
          - {{id: drop, action: drop_sandbox}}
        """,
    )
    done = run_cli("drill", "runbook.yaml", "--json", "--runs-dir", "runs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    events = read_record(next((tmp_path / "runs").glob("*.jsonl"))).events
    recall = [
        e.data for e in events if e.type == ev.CHECK_RESULT and e.data["check"] == "golden_recall"
    ]
    assert recall and all(item["passed"] for item in recall), recall
    target = next(e.data for e in events if e.type == "run.started")["target"]
    assert target["sandbox_pid"] and not process_alive(int(target["sandbox_pid"]))
