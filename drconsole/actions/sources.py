"""Opening what a step works on: the run's catalog, its target engine, the selected chain.

Credentials are resolved here from their references and registered with the context so
the runner masks them in everything it records.
"""

from __future__ import annotations

from drconsole.actions.base import ActionContext
from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.catalog import CatalogView, load_catalog
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.open import open_runbook_catalog
from drconsole.catalog.source import Source
from drconsole.catalog.store import ObjectStore
from drconsole.engines import default_namespace, namespace_keys, open_engine
from drconsole.engines.adapter import EngineAdapter
from drconsole.engines.base import Engine
from drconsole.engines.placed import PlacedEngine
from drconsole.engines.registry import engine_adapter
from drconsole.errors import DrconsoleError
from drconsole.runbook.model import Runbook


def open_catalog(context: ActionContext, *, fresh: bool = False) -> tuple[ObjectStore, CatalogView]:
    """The run's catalog, its manifests checked with the catalog key when the runbook
    names one: listed by the run's first step that asks, and shared by the others
    (``fresh``: listed again, as the step that selects the recovery point does, so that
    a retry after the catalog was repaired sees the repair)."""
    return context.shared.catalog(lambda: _open_catalog(context), fresh=fresh)


def _open_catalog(context: ActionContext) -> tuple[ObjectStore, CatalogView]:
    store = open_runbook_catalog(context.runbook, context.add_secret)
    reference = context.runbook.catalog_key()
    key = CatalogKey.from_reference(reference) if reference else None
    if key is not None:
        context.add_secret(key.secret.decode())
    return store, load_catalog(store, key)


def runbook_source(runbook: Runbook) -> Source:
    """Whose snapshots the runbook restores: its ``source``, else its target's engine
    and namespace (unknown for a sandbox target), and its collections."""
    source, target = runbook.source, runbook.target
    engine = source.get("engine") or target.get("engine")
    keys = namespace_keys(engine or "")
    named = {key: source[key] for key in keys if key in source}
    if not named and target.get("url"):
        named = {key: target[key] for key in keys if target.get(key)}
    elif not named:
        return Source(engine, None, runbook.collections)
    return Source(engine, {**default_namespace(engine or ""), **named}, runbook.collections)


def target_adapter(context: ActionContext) -> EngineAdapter:
    """The declaration of the run's target engine (what it can run and do)."""
    return engine_adapter(context.target.get("engine") or context.target.get("sandbox") or "")


def open_target(context: ActionContext) -> Engine:
    """The target engine, its collections under the names the run placed them (staging
    until the cutover)."""
    engine = open_engine(context.target, context.add_secret)
    if not context.placement:
        return engine
    return PlacedEngine(engine, context.placement)  # type: ignore[return-value]


def selected_chain(context: ActionContext, store: ObjectStore, view: CatalogView) -> list[Manifest]:
    """The chain recorded by ``verify_chain``, re-read from the snapshot folders and
    re-checked structurally."""
    if not context.snapshot:
        raise DrconsoleError(
            "no snapshot has been selected in this run",
            "run the verify_chain step first; it selects the recovery point",
        )
    snapshot_id = context.snapshot["snapshot_id"]
    chain, findings = view.confirmed_chain(store, view.require(snapshot_id).id)
    if findings:
        raise DrconsoleError(
            f"the chain of {snapshot_id} is broken: {findings[0].message}",
            "run verify_chain again to select an intact recovery point",
        )
    if [item.id for item in chain] != context.snapshot.get("chain"):
        raise DrconsoleError(
            f"the chain of {snapshot_id} changed since it was selected", "run verify_chain again"
        )
    return chain


def restore_order(context: ActionContext, manifest: Manifest) -> list[str]:
    """The runbook's priority collections first, then the snapshot's others."""
    names = [collection.name for collection in manifest.collections]
    first = [name for name in context.runbook.collections if name in names]
    return first + [name for name in names if name not in first]
