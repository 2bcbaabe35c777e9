"""`drconsole snapshot create` as a user runs it, against a real Chroma server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drconsole.catalog.local import LocalStore
from drconsole.corpus import CorpusSpec, records
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.records import RecordBatch
from drconsole.sandbox import free_ports

from catalog_spec import spec_state_file, write_spec_snapshot
from chroma_restore import seed
from helpers import run_cli

pytestmark = pytest.mark.integration


def _create(engine: ChromaEngine, catalog: Path, *extra: str):
    return run_cli(
        "snapshot",
        "create",
        "--url",
        engine.url,
        "--database",
        engine.database,
        "--collections",
        "help_articles",
        "--catalog",
        str(catalog),
        "--json",
        *extra,
    )


def test_full_then_incremental_from_the_command_line(
    source_engine: ChromaEngine, tmp_path: Path
) -> None:
    seed(source_engine, "help_articles", CorpusSpec("help", 1200))
    catalog = tmp_path / "catalog"
    full = _create(
        source_engine,
        catalog,
        "--checkpoint",
        "kafka:kb-updates=offset 88123",
        "--embedding-model",
        "all-MiniLM-L6-v2",
        "--embedding-version",
        "2024-05",
        "--tenant-field",
        "tenant_id",
        "--acl-field",
        "acl_groups",
    )
    assert full.returncode == 0, full.stderr
    summary = json.loads(full.stdout)
    assert summary["kind"] == "full" and summary["collections"]["help_articles"]["records"] == 1200
    shown = json.loads(run_cli("catalog", "show", str(catalog), summary["id"], "--json").stdout)
    collection = shown["collections"][0]
    assert shown["ingest_checkpoint"] == {"kafka:kb-updates": "offset 88123"}
    assert shown["permissions"] == {"tenant_field": "tenant_id", "acl_field": "acl_groups"}
    assert collection["embedding"]["model"] == "all-MiniLM-L6-v2"
    assert (
        collection["embedding"]["normalized"] is True
        and collection["embedding"]["dimension"] == 384
    )
    fields = {item["name"]: item for item in collection["schema"]["fields"]}
    assert fields["acl_groups"]["type"] == "string[]" and not fields["acl_groups"]["is_tenant"]
    assert fields["tenant_id"]["is_tenant"] and fields["tenant_id"]["type"] == "string"
    assert collection["schema"]["tenancy"] == {"mode": "field", "field": "tenant_id", "tenants": []}
    assert collection["schema"]["vectors"][0]["index"]["kind"] == "hnsw"
    assert sum(t["records"] for t in collection["tenants"]) == 1200

    source_engine.upsert("help_articles", records(CorpusSpec("help", 1250, version=1), 1190, 1250))
    source_engine.delete("help_articles", ["help-000003", "help-000004"])
    incremental = _create(source_engine, catalog, "--incremental")
    assert incremental.returncode == 0, incremental.stderr
    summary = json.loads(incremental.stdout)
    assert summary["collections"]["help_articles"] == {
        "records": 60,
        "deletes": 2,
        "total_after_apply": 1248,
    }
    assert summary["format"] == summary["parent_format"] == "drconsole-snapshot/2"
    assert run_cli("catalog", "verify", str(catalog), "--depth", "full").returncode == 0


def test_an_incremental_on_a_format_1_parent_says_it_mixes_formats(
    source_engine: ChromaEngine, tmp_path: Path
) -> None:
    """A catalog taken before format 2: the next incremental chains onto it, and says so."""
    seed(source_engine, "help_articles", CorpusSpec("help", 40, seed=3))
    batch = RecordBatch.join(list(source_engine.scan("help_articles", 100)), 384)
    store = LocalStore(tmp_path / "catalog")
    state = spec_state_file(store, "v1-full", batch)
    rows = [
        {"id": i, "document": d, "metadata": m, "tenant": None}
        for i, d, m in zip(batch.ids, batch.documents, batch.metadatas, strict=True)
    ]
    info = source_engine.info().to_json()
    write_spec_snapshot(
        store,
        "v1-full",
        records=rows,
        vectors=batch.vectors,
        extra_files=[state],
        source=info,
        recovery_point="2026-11-22T10:15:00Z",
    )
    source_engine.delete("help_articles", [batch.ids[0]])
    argv = ["snapshot", "create", "--url", source_engine.url, "--database"]
    argv += [source_engine.database, "--collections", "help_articles"]
    argv += ["--catalog", str(tmp_path / "catalog"), "--incremental"]
    created = run_cli(*argv)
    assert created.returncode == 0, created.stderr
    assert "chained onto v1-full, a drconsole-snapshot/1 snapshot" in " ".join(
        created.stdout.split()
    )
    assert "1 deleted" in created.stdout
    next_one = run_cli(*argv)
    assert next_one.returncode == 0, next_one.stderr
    assert "note" not in next_one.stdout, "a format 2 parent is not a mixed chain"


def test_clear_errors(source_engine: ChromaEngine, tmp_path: Path) -> None:
    missing = _create(source_engine, tmp_path / "catalog")
    assert missing.returncode == 2
    assert "collection help_articles does not exist" in missing.stderr
    nobody = run_cli(
        "snapshot",
        "create",
        "--url",
        f"http://127.0.0.1:{free_ports(1)[0]}",
        "--collections",
        "x",
        "--catalog",
        str(tmp_path / "c2"),
        "--json",
    )
    assert nobody.returncode == 2
    assert "did not answer" in nobody.stderr and "Traceback" not in nobody.stderr
    seed(source_engine, "help_articles", CorpusSpec("help", 10))
    no_parent = _create(source_engine, tmp_path / "empty", "--incremental")
    assert no_parent.returncode == 2
    assert "no intact parent for an incremental snapshot" in no_parent.stderr
    no_tenant = _create(source_engine, tmp_path / "c3", "--tenant", "nosuch")
    assert no_tenant.returncode == 2
    assert f"tenant nosuch does not exist at {source_engine.url}" in no_tenant.stderr
    no_database = _create(source_engine, tmp_path / "c3", "--database", "nosuch")
    assert no_database.returncode == 2
    assert "database nosuch does not exist in tenant default_tenant" in no_database.stderr


def test_golden_capture_from_the_command_line(source_engine: ChromaEngine, tmp_path: Path) -> None:
    seed(source_engine, "help_articles", CorpusSpec("help", 800))
    out = tmp_path / "kb.golden.json"
    captured = run_cli(
        "golden",
        "capture",
        "--url",
        source_engine.url,
        "--database",
        source_engine.database,
        "--collection",
        "help_articles",
        "--queries",
        "60",
        "--k",
        "5",
        "--filter-field",
        "tenant_id",
        "--out",
        str(out),
        "--json",
    )
    assert captured.returncode == 0, captured.stderr
    summary = json.loads(captured.stdout)
    assert summary["queries"] == 60 + 3 * 4 and summary["filtered"] == 12
    raw = json.loads(out.read_text())
    assert raw["format"] == "drconsole-golden/1" and raw["vectors"] == "kb.golden.json.npy"
    assert (tmp_path / "kb.golden.json.npy").exists(), (
        "a large set keeps its vectors beside the JSON"
    )
    filtered = [q for q in raw["queries"] if q["filter"]]
    assert {q["tenant"] for q in filtered} == {"acme", "globex", "initech", "umbrella"}
    assert all(len(q["expected"]) == 5 for q in raw["queries"])

    vectors = np.random.default_rng(1).standard_normal((3, 384)).astype(np.float32)
    np.save(tmp_path / "mine.npy", vectors)
    small = tmp_path / "small.json"
    mine = run_cli(
        "golden",
        "capture",
        "--url",
        source_engine.url,
        "--database",
        source_engine.database,
        "--collection",
        "help_articles",
        "--query-vectors",
        str(tmp_path / "mine.npy"),
        "--k",
        "4",
        "--out",
        str(small),
    )
    assert mine.returncode == 0, mine.stderr
    inline = json.loads(small.read_text())["queries"]
    assert len(inline) == 3 and np.allclose(inline[0]["vector"], vectors[0])


def test_two_creates_at_once_keep_both_snapshots(
    source_engine: ChromaEngine, seaweed, s3_credentials: str
) -> None:
    """Two `snapshot create` runs started together into one S3 catalog (the same second,
    likely the same millisecond): both exit 0 with different ids, and both verify."""
    seed(source_engine, "help_articles", CorpusSpec("help", 300))
    catalog = f"s3://drconsole-tests/twins-{source_engine.database}"
    s3 = ("--endpoint", seaweed.endpoint, "--credentials", s3_credentials)
    argv = [
        sys.executable,
        "-m",
        "drconsole.cli",
        "snapshot",
        "create",
        "--url",
        source_engine.url,
        "--database",
        source_engine.database,
        "--collections",
        "help_articles",
        "--catalog",
        catalog,
        *s3,
        "--json",
    ]
    twins = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    ids = [json.loads(twin.communicate(timeout=120)[0])["id"] for twin in twins]
    assert [twin.returncode for twin in twins] == [0, 0]
    assert ids[0] != ids[1]
    listing = json.loads(run_cli("catalog", "list", catalog, *s3, "--json").stdout)
    assert sorted(s["id"] for s in listing["snapshots"]) == sorted(ids)
    verified = run_cli("catalog", "verify", catalog, *s3, "--depth", "full")
    assert verified.returncode == 0, verified.stdout
