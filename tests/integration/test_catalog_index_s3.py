"""The catalog index on a real S3 (SeaweedFS): snapshots written there are listed from
it, the CLI shows and verifies the folders' truth when the index lies, and
``catalog reindex`` rebuilds it."""

from __future__ import annotations

import json

from conftest import BUCKET

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.catalog import load_catalog
from drconsole.catalog.index import INDEX
from drconsole.catalog.s3 import S3Store
from drconsole.corpus import CorpusSpec
from drconsole.engines import open_engine
from drconsole.engines.memory.engine import forget
from drconsole.sandbox import SeaweedS3

from chroma_restore import seed
from helpers import run_cli

PREFIX = "index-cli"


def _snapshots(store: S3Store, count: int) -> list[str]:
    url = "memory://index-s3"
    forget(url)
    engine = open_engine({"engine": "memory", "url": url, "database": "prod"})
    engine.ensure_namespace()
    seed(engine, "docs", CorpusSpec("doc", 30, dimension=4, seed=5))
    ids = []
    for number in range(count):
        if number:
            engine.delete("docs", [f"doc-{number:06d}"])
        request = SnapshotRequest(
            engine=engine, store=store, collections=["docs"], name="kb", incremental=number > 0
        )
        ids.append(create_snapshot(request).id)
    return ids


def test_an_s3_catalog_lists_from_its_index_and_acts_on_its_folders(
    seaweed: SeaweedS3, s3_credentials: str
) -> None:
    store = S3Store(BUCKET, PREFIX, endpoint=seaweed.endpoint, credentials=s3_credentials)
    ids = _snapshots(store, 3)
    view = load_catalog(store)
    assert view.unconfirmed == set(ids) and len(view.index.segments) == 3
    direct = load_catalog(store, use_index=False)
    assert {i: m.sha256 for i, m in view.snapshots.items()} == {
        i: m.sha256 for i, m in direct.snapshots.items()
    }

    client = seaweed.client()
    segment = f"{PREFIX}/{view.index.segments[-1]}"
    raw = json.loads(client.get_object(Bucket=BUCKET, Key=segment)["Body"].read())
    raw["snapshots"][0]["manifest"] = raw["snapshots"][0]["manifest"].replace(
        '"kind": "incremental"', '"kind":  "incremental"'
    )
    client.put_object(Bucket=BUCKET, Key=segment, Body=json.dumps(raw).encode())
    assert load_catalog(store).snapshots[ids[-1]].sha256 != direct.snapshots[ids[-1]].sha256

    args = [f"s3://{BUCKET}/{PREFIX}", "--endpoint", seaweed.endpoint]
    args += ["--credentials", s3_credentials]
    shown = run_cli("catalog", "show", *args, ids[-1], "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["sha256"] == direct.snapshots[ids[-1]].sha256, "show reads the folder"
    assert "stale or tampered index" in data["index_disagreed"][ids[-1]]
    checked = run_cli("catalog", "verify", args[0], ids[-1], *args[1:], "--depth", "full")
    assert checked.returncode == 0, checked.stdout

    rebuilt = run_cli("catalog", "reindex", *args)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "indexed 3 snapshots" in rebuilt.stdout and "3 index segments" in rebuilt.stdout
    keys = [item.key for item in store.list(f"{INDEX}/")]
    assert len(keys) == 1
    again = load_catalog(store)
    assert again.snapshots[ids[-1]].sha256 == direct.snapshots[ids[-1]].sha256
    assert not again.confirm(store, ids)
