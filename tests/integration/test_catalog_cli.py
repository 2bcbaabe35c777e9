"""`drconsole catalog` and `drconsole secrets` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.local import LocalStore
from drconsole.catalog.lock import lock_catalog
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.s3 import S3Store
from drconsole.catalog.store import ObjectStore
from drconsole.catalog.writer import SnapshotWriter
from drconsole.corpus import CorpusSpec
from drconsole.model.schema import CollectionSchema
from drconsole.records import RecordBatch
from drconsole.sandbox import SeaweedS3
from drconsole.timefmt import compact_utc

from chroma_restore import seed
from helpers import catalog_key, run_cli, write_runbook

T0 = datetime.now(UTC) - timedelta(hours=30)


def _snapshot(
    store: ObjectStore,
    name: str,
    hours: float,
    parent: Manifest | None = None,
    key: CatalogKey | None = None,
) -> Manifest:
    writer = SnapshotWriter(store, name, key=key)
    collection = writer.collection("tickets", CollectionSchema.dense(4, "l2"))
    collection.add(
        RecordBatch(
            [f"{name}-a", f"{name}-b"],
            np.ones((2, 4), np.float32),
            ["x", "y"],
            [{"tenant_id": "acme"}, None],
            [None, None],
        )
    )
    collection.close(total_after_apply=2)
    moment = T0 + timedelta(hours=hours)
    return writer.finish(
        kind="incremental" if parent else "full",
        parent=parent,
        created_at=moment,
        recovery_point=moment,
        source={"engine": "chroma", "url": "http://x"},
    )


def _three(store: ObjectStore) -> None:
    full = _snapshot(store, "s1-full", 0)
    inc = _snapshot(store, "s2-inc", 1, full)
    _snapshot(store, "s3-inc", 26, inc)


def test_list_show_verify_prune_on_a_local_catalog(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    store = LocalStore(root)
    _three(store)
    listed = run_cli("catalog", "list", str(root), "--rpo", "5h")
    assert listed.returncode == 0
    rows = {name: line for line in listed.stdout.splitlines() for name in line.split()}
    assert "within RPO" in rows["s3-inc"] and "over RPO" in rows["s1-full"], listed.stdout
    assert "local disk only" in listed.stderr
    assert (
        listed.stdout.index("s1-full")
        < listed.stdout.index("s2-inc")
        < listed.stdout.index("s3-inc")
    )
    data = json.loads(run_cli("catalog", "list", str(root), "--json").stdout)
    assert data["local_only"] is True
    assert [s["chain"] for s in data["snapshots"]][-1] == ["s1-full", "s2-inc", "s3-inc"]
    shown = run_cli("catalog", "show", str(root), "s2-inc")
    assert (
        shown.returncode == 0 and "s1-full -> s2-inc" in shown.stdout and "tickets" in shown.stdout
    )
    assert run_cli("catalog", "verify", str(root), "--depth", "full").returncode == 0
    part = next((root / "snapshots" / "s2-inc" / "tickets").glob("records-*.parquet"))
    part.write_bytes(part.read_bytes()[:-1] + b"\x01")
    broken = run_cli("catalog", "verify", str(root), "s3-inc", "--depth", "full")
    assert broken.returncode == 1
    assert "s2-inc: checksum_mismatch" in broken.stdout and "records-00000.parquet" in broken.stdout
    assert run_cli("catalog", "verify", str(root), "--depth", "sizes").returncode == 0
    dry = json.loads(
        run_cli("catalog", "prune", str(root), "--keep-last", "1", "--dry-run", "--json").stdout
    )
    assert dry["remove"] == [] and dry["keep"][0]["reasons"] == ["last 1"]
    missing = run_cli("catalog", "list", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no such catalog folder" in missing.stderr


def test_a_runbook_names_the_catalog_to_open(tmp_path: Path) -> None:
    _three(LocalStore(tmp_path / "catalog"))
    runbook = write_runbook(
        tmp_path,
        """
        schema: drconsole/runbook/v1
        id: kb
        title: KB
        objectives: {rto: 1h}
        catalog: {url: catalog}
        steps:
          - {id: done, kind: manual, instructions: "-", marks: service_restored}
        """,
    )
    listed = json.loads(run_cli("catalog", "list", str(runbook), "--json").stdout)
    assert [s["id"] for s in listed["snapshots"]] == ["s1-full", "s2-inc", "s3-inc"]
    mixed = run_cli("catalog", "list", str(runbook), "--endpoint", "http://127.0.0.1:1")
    assert mixed.returncode == 2 and "come from the runbook" in mixed.stderr


def test_prune_yes_deletes_and_keeps_dependencies(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    store = LocalStore(root)
    _three(store)
    _snapshot(store, "s4-full", 28)
    result = json.loads(
        run_cli("catalog", "prune", str(root), "--keep-last", "1", "--yes", "--json").stdout
    )
    assert result["remove"] == ["s3-inc", "s2-inc", "s1-full"]
    assert sorted(p.name for p in (root / "snapshots").iterdir()) == ["s4-full"]


def test_prune_is_refused_while_a_snapshot_is_being_taken(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    store = LocalStore(root)
    _three(store)
    with lock_catalog(store, "snapshot create", exclusive=False):
        refused = run_cli("catalog", "prune", str(root), "--keep-last", "1", "--yes")
        dry = run_cli("catalog", "prune", str(root), "--keep-last", "1", "--dry-run")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "is locked: snapshot create (pid" in refused.stderr
    assert len(list((root / "snapshots").iterdir())) == 3, "nothing was removed"
    assert dry.returncode == 0, "a dry run removes nothing and needs no lock"
    done = run_cli("catalog", "prune", str(root), "--keep-last", "1", "--yes")
    assert done.returncode == 0 and not (root / "locks").exists()


def test_prune_removes_abandoned_uploads_only_when_asked(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    store = LocalStore(root)
    _three(store)
    abandoned = f"{compact_utc(datetime.now(UTC) - timedelta(days=2))}-kb-F"
    (root / "snapshots" / abandoned / "tickets").mkdir(parents=True)
    (root / "snapshots" / abandoned / "tickets" / "records-00000.jsonl.gz").write_bytes(b"x")

    def prune(*flags: str) -> subprocess.CompletedProcess[str]:
        return run_cli("catalog", "prune", str(root), "--keep-last", "3", *flags)

    plain = prune("--yes")
    assert plain.returncode == 0 and (root / "snapshots" / abandoned).exists()
    bad = prune("--dry-run", "--unfinished-older-than", "soon")
    assert bad.returncode == 2 and "--unfinished-older-than" in bad.stderr
    dry = prune("--dry-run", "--unfinished-older-than", "1d")
    assert f"would remove {abandoned}  (unfinished upload, abandoned)" in dry.stdout
    assert (root / "snapshots" / abandoned).exists(), "a dry run deletes nothing"
    done = prune("--yes", "--unfinished-older-than", "1d")
    assert "0 snapshots, 1 abandoned upload and 0 leftovers removed" in done.stdout
    listed = json.loads(run_cli("catalog", "list", str(root), "--json").stdout)
    assert listed["unfinished"] == [] and len(listed["snapshots"]) == 3


def _set_secret(name: str, value: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drconsole.cli", "secrets", "set", name],
        input=value + "\n",
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )


def test_s3_catalog_with_a_keyring_credential(seaweed: SeaweedS3, tmp_path: Path) -> None:
    stored = _set_secret("kb-backups", seaweed.credentials_value)
    assert stored.returncode == 0, stored.stderr
    assert "keyring:drconsole/kb-backups" in stored.stdout
    assert seaweed.secret_key not in stored.stdout + stored.stderr
    store = S3Store(
        "drconsole-tests",
        "cli-keyring",
        endpoint=seaweed.endpoint,
        credentials="keyring:drconsole/kb-backups",
    )
    _three(store)
    args = [
        "s3://drconsole-tests/cli-keyring",
        "--endpoint",
        seaweed.endpoint,
        "--credentials",
        "keyring:drconsole/kb-backups",
    ]
    listed = run_cli("catalog", "list", *args, "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["local_only"] is False and len(data["snapshots"]) == 3
    assert run_cli("catalog", "verify", *args, "--depth", "full").returncode == 0

    assert _set_secret("kb-backups", f"{seaweed.access_key}:wrong-secret-value").returncode == 0
    refused = run_cli("catalog", "list", *args)
    assert refused.returncode == 2
    assert "access refused" in refused.stderr and "keyring:drconsole/kb-backups" in refused.stderr
    assert "wrong-secret-value" not in refused.stderr and "Traceback" not in refused.stderr

    assert run_cli("secrets", "delete", "kb-backups").returncode == 0
    gone = run_cli("catalog", "list", *args)
    assert gone.returncode == 2 and "no such secret" in gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 2


def test_no_keyring_backend_is_a_clear_message(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    result = subprocess.run(
        [sys.executable, "-m", "drconsole.cli", "secrets", "set", "x"],
        input="v\n",
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 2
    assert "no keyring backend" in result.stderr and "keyrings.alt" in result.stderr
    assert "Traceback" not in result.stderr


def test_object_lock_keeps_a_compromised_writer_from_destroying_snapshots(
    seaweed: SeaweedS3, s3_credentials: str, source_engine, tmp_path: Path
) -> None:
    """A snapshot taken under Object Lock (compliance, 1 day) on real SeaweedFS: shown by
    catalog show, left alone by prune, and its manifest's version cannot be deleted."""

    bucket = "drconsole-locked"
    seaweed.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    seed(source_engine, "kb_articles", CorpusSpec("kb", 30))
    url = f"s3://{bucket}/kb"
    common = ("--endpoint", seaweed.endpoint, "--credentials", s3_credentials)

    def create(
        *extra: str, catalog: tuple[str, ...] = (url, *common)
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(
            "snapshot",
            "create",
            "--url",
            source_engine.url,
            "--database",
            source_engine.database,
            "--collections",
            "kb_articles",
            "--catalog",
            *catalog,
            "--json",
            *extra,
        )

    locked = create("--object-lock-mode", "compliance", "--object-lock-days", "1")
    assert locked.returncode == 0, locked.stderr
    snapshot_id = json.loads(locked.stdout)["id"]
    shown = run_cli("catalog", "show", url, snapshot_id, *common)
    assert "object lock: COMPLIANCE until" in shown.stdout
    plain = create()
    plain_id = json.loads(plain.stdout)["id"]
    assert "object lock: none" in run_cli("catalog", "show", url, plain_id, *common).stdout
    pruned = run_cli("catalog", "prune", url, *common, "--keep-last", "1", "--yes")
    assert pruned.returncode == 0, pruned.stderr
    assert f"left   {snapshot_id}  (not removed: under Object Lock, COMPLIANCE until" in (
        pruned.stdout
    )
    client = seaweed.client()
    key = f"kb/snapshots/{snapshot_id}/manifest.json"
    version = client.list_object_versions(Bucket=bucket, Prefix=key)["Versions"][0]
    with pytest.raises(Exception, match="AccessDenied"):
        client.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
    unlocked = create(
        "--object-lock-mode",
        "governance",
        "--object-lock-days",
        "1",
        catalog=(str(tmp_path / "local"),),
    )
    assert unlocked.returncode == 2 and "needs an s3:// catalog" in unlocked.stderr


def test_leftovers_of_killed_writes_are_listed_and_pruned(
    seaweed: SeaweedS3, s3_credentials: str, tmp_path: Path
) -> None:
    """A temporary file a killed local write left, and an incomplete multipart upload on
    real S3: `catalog list` names them as debris, `catalog prune` removes them."""
    root = tmp_path / "catalog"
    _three(LocalStore(root))
    (root / "snapshots" / "s1-full" / ".drconsole-tmp-k1ll3d").write_bytes(b"half a part")
    prefix = f"debris-{tmp_path.name}"
    s3 = S3Store("drconsole-tests", prefix, endpoint=seaweed.endpoint, credentials=s3_credentials)
    _three(s3)
    seaweed.client().create_multipart_upload(
        Bucket="drconsole-tests", Key=f"{prefix}/snapshots/s9/x/vectors-00000.npy"
    )
    common = ("--endpoint", seaweed.endpoint, "--credentials", s3_credentials)
    for url, extra in ((str(root), ()), (f"s3://drconsole-tests/{prefix}", common)):
        listing = json.loads(run_cli("catalog", "list", url, *extra, "--json").stdout)
        assert len(listing["debris"]) == 1, url
        assert "1 leftover of writes that never completed" in (
            run_cli("catalog", "list", url, *extra).stdout
        )
        pruned = run_cli("catalog", "prune", url, *extra, "--keep-last", "3", "--yes")
        assert pruned.returncode == 0 and "left by a write that never completed" in pruned.stdout
        after = json.loads(run_cli("catalog", "list", url, *extra, "--json").stdout)
        assert after["debris"] == [] and len(after["snapshots"]) == 3, url


def test_the_last_verification_is_kept_in_the_catalog_and_listed(
    store: ObjectStore, tmp_path: Path
) -> None:
    """catalog list no longer says "unverified" right after a full verify: it shows the
    last verification (depth, when, verdict); a record stops applying when its manifest
    changes, one that is not signed is said so, and prune takes the records along."""
    key = catalog_key(tmp_path)
    first = _snapshot(store, "s1-full", 0, key=key)
    _snapshot(store, "s2-inc", 1, first, key=key)
    where = [store.url]
    if isinstance(store, S3Store):
        where += ["--endpoint", store.endpoint or "", "--credentials", "env:DRCONSOLE_TEST_S3"]
    where += ["--catalog-key", f"file:{tmp_path / 'catalog.key'}"]

    def table() -> dict[str, str]:
        return _statuses(run_cli("catalog", "list", *where).stdout)

    def listing() -> dict[str, dict]:
        listed = run_cli("catalog", "list", *where, "--json")
        assert listed.returncode == 0, listed.stderr
        return {item["id"]: item for item in json.loads(listed.stdout)["snapshots"]}

    assert {i: s["status"] for i, s in listing().items()} == {
        "s1-full": "unverified",
        "s2-inc": "unverified",
    }
    assert run_cli("catalog", "verify", *where, "--depth", "full").returncode == 0
    listed = listing()
    assert {i: s["status"] for i, s in listed.items()} == {
        "s1-full": "verified",
        "s2-inc": "verified",
    }
    last = listed["s2-inc"]["last_verification"]
    assert last["depth"] == "full" and last["intact"] is True and last["authenticated"] is True
    for status in table().values():
        assert status.startswith("verified full ") and status.endswith("ago: intact, signed")

    part = next(iter(f for f in _names(store) if "s2-inc" in f and f.endswith(".parquet")))
    _overwrite(store, part, b"PAR1 broken")
    assert (
        run_cli("catalog", "verify", where[0], "s2-inc", *where[1:], "--depth", "full").returncode
        == 1
    )
    damaged = listing()["s2-inc"]
    assert damaged["status"] == "unverified"
    assert damaged["last_verification"]["intact"] is False
    assert damaged["last_verification"]["problems"] == ["size_mismatch"]
    assert "ago: FOUND size_mismatch, signed" in table()["s2-inc"]

    planted = json.loads(store.read(_records(store, "s1-full")[0]))
    planted["verified_at"] = "2099-01-01T00:00:00.000Z"
    _overwrite(
        store, "verifications/s1-full/29990101T000000000Z-forged.json", json.dumps(planted).encode()
    )
    forged = listing()["s1-full"]
    assert forged["status"] == "unverified", "an unsigned record is never proof"
    assert forged["last_verification"]["authenticated"] is False
    assert "ago: intact (record not authenticated), signed" in table()["s1-full"]

    _snapshot(store, "s3-full", 2, key=key)
    pruned = run_cli("catalog", "prune", *where, "--keep-last", "1", "--yes", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["remove"] == ["s2-inc", "s1-full"]
    assert not [name for name in _names(store) if name.startswith("verifications/")]


def _statuses(table: str) -> dict[str, str]:
    """The status column of `catalog list`, each cell joined back from its wrapped lines."""
    statuses: dict[str, str] = {}
    current = None
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if not cells:
            continue
        if cells[0]:
            current = cells[0].lstrip("└ ")
            statuses[current] = cells[-1]
        elif current is not None:
            statuses[current] += " " + cells[-1]
    return statuses


def _names(store: ObjectStore) -> list[str]:
    return [info.key for info in store.list("")]


def _records(store: ObjectStore, snapshot_id: str) -> list[str]:
    return [
        n
        for n in _names(store)
        if n.startswith(f"verifications/{snapshot_id}/") and n.endswith(".json")
    ]


def _overwrite(store: ObjectStore, name: str, data: bytes) -> None:
    with store.writer(name) as stream:
        stream.write(data)
