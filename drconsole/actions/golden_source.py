"""Which golden set a run uses: the runbook's ``golden`` file, else the one the selected
snapshot carries (``golden/`` in its folder, checksum-verified on read)."""

from __future__ import annotations

import io
import json

import numpy as np

from drconsole.actions.base import ActionContext
from drconsole.catalog.catalog import CatalogView
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.reader import SnapshotReader
from drconsole.catalog.store import ObjectStore
from drconsole.golden import GoldenError, GoldenSet, load_golden, parse_golden


def load_run_golden(
    context: ActionContext, store: ObjectStore, view: CatalogView
) -> GoldenSet | None:
    path = context.params.get("file") or context.runbook.golden
    if path:
        return load_golden(context.runbook_dir / path)
    if not context.snapshot:
        return None
    snapshot_id = context.snapshot["snapshot_id"]
    view.confirm(store, [snapshot_id])
    return snapshot_golden(store, view.require(snapshot_id))


def snapshot_golden(store: ObjectStore, manifest: Manifest) -> GoldenSet | None:
    """The golden set stored in a snapshot, or None when it carries none."""
    documents = [entry for entry in manifest.golden if entry.path.endswith(".json")]
    if not documents:
        return None
    reader = SnapshotReader(store, manifest)
    where = f"{documents[0].path} of snapshot {manifest.id}"
    try:
        raw = json.loads(bytes(reader.read_file(documents[0])))
    except ValueError as error:
        raise GoldenError(f"{where} is not JSON ({error})") from None
    vectors = None
    if isinstance(raw, dict) and raw.get("vectors"):
        name = f"golden/{raw['vectors']}"
        entry = next((item for item in manifest.golden if item.path == name), None)
        if entry is None:
            raise GoldenError(f"{where} names {name}, which the manifest does not list")
        vectors = np.load(io.BytesIO(bytes(reader.read_file(entry))), allow_pickle=False)
    return parse_golden(raw, where, vectors=vectors)


def golden_vectors(golden: GoldenSet | None, collection: str, count: int) -> np.ndarray:
    """Up to ``count`` golden query vectors for a collection (none without a golden set)."""
    vectors = [q.vector for q in (golden.queries if golden else []) if q.collection == collection][
        :count
    ]
    return np.stack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
