"""``restore_schema``: create the target namespace and collections from the snapshot.

Every collection is checked before anything is written, so a refusal leaves the target
untouched. An existing collection is refused (``on_exists: fail``, the default), deleted
and re-created (``replace``: destructive, the step needs confirmation), or kept when its
schema matches (``merge``). With ``into: staging`` the collections are created under
staging names (``help_articles.staging.3f9a``, from the run id) and production is not
touched: the data restore and the gates work on staging, and a ``cutover`` step renames
staging into place once they passed.

Before each collection is created, the step records which one it is about to create; a
run resumed after a crash here recognises a collection it created itself (present, and
its schema the snapshot's) instead of refusing it as someone else's.
"""

from __future__ import annotations

import json
from typing import Any

from drconsole.actions.base import (
    FAILED,
    SUCCEEDED,
    ActionContext,
    Outcome,
    Progress,
    ProgressCallback,
    ResultTable,
)
from drconsole.actions.lease import release_leases, take_leases
from drconsole.actions.restore_physical import files_restore
from drconsole.actions.sources import (
    open_catalog,
    open_target,
    restore_order,
    selected_chain,
    target_adapter,
)
from drconsole.engines.adapter import Capability, EngineAdapter
from drconsole.engines.base import CollectionInfo, Engine
from drconsole.engines.placed import PlacedEngine
from drconsole.errors import DrconsoleError
from drconsole.model.schema import CollectionSchema


def staging_name(name: str, run_id: str) -> str:
    """Where a collection is restored before the cutover: unique to the run."""
    return f"{name}.staging.{run_id.rsplit('-', 1)[-1]}"


def run_restore_schema(context: ActionContext, progress: ProgressCallback) -> Outcome:
    on_exists = context.params.get("on_exists", "fail")
    store, view = open_catalog(context)
    manifest = selected_chain(context, store, view)[-1]
    if files_restore(context, manifest):
        if context.params.get("into") == "staging":
            raise DrconsoleError(
                "a physical restore replaces the whole data folder; it cannot go into staging",
                "drop `into: staging` from this step, or prefer logical restores",
            )
        return Outcome(
            SUCCEEDED,
            f"nothing to create: physical snapshot {manifest.id} brings its collections and "
            "their schemas with its files (the data step unpacks them; the counts gate "
            "compares them with the snapshot)",
            {"physical": True},
        )
    order = restore_order(context, manifest)
    placement = (
        {name: staging_name(name, context.run_id) for name in order}
        if context.params.get("into") == "staging"
        else {}
    )
    engine: Engine = open_target(context)
    if placement:
        engine = PlacedEngine(engine, placement)  # type: ignore[assignment]
    ours = _created_before(context)
    try:
        if context.params.get("create_namespace", True):
            engine.ensure_namespace()
        take_leases(engine, order, context.run_id)
        existing = {name: engine.get_collection(name) for name in order}
        adapter = target_adapter(context)
        deferred = adapter.can(Capability.DEFERRED_INDEXES)
        refusals = [
            f"collection {name} has what the {adapter.title} engine cannot hold: "
            f"{', '.join(gaps)}; nothing was written. Restore it into an engine that can "
            "(`drconsole engines` lists what each can do)"
            for name in order
            if (gaps := adapter.schema_gaps(manifest.collection(name).schema))
        ] + [
            problem
            for name in order
            if (
                problem := _refusal(
                    name,
                    existing[name],
                    manifest.collection(name).schema,
                    "merge" if name in ours else on_exists,
                    placement.get(name, name),
                )
            )
        ]
        if refusals:
            release_leases(engine, order, context.run_id)
            return Outcome(FAILED, refusals[0], {"refusals": refusals, "written": False})
        rows = []
        not_restored: dict[str, list[str]] = {}
        created: list[str] = []
        for name in order:
            entry = manifest.collection(name)
            progress(
                Progress(
                    len(created),
                    len(order),
                    "collections",
                    f"creating {name}",
                    checkpoint={"created": created, "creating": name},
                )
            )
            if name in ours and existing[name] is not None:
                action, result = "created (by this run, before it was interrupted)", existing[name]
            else:
                action, result = _apply(
                    engine, name, entry.schema, existing[name], on_exists, deferred=deferred
                )
            created.append(name)
            lost = entry.not_restorable + differences(
                _without(entry.schema.engine_config, adapter)
                if deferred
                else entry.schema.engine_config,
                result.schema.engine_config,
            )
            if lost:
                not_restored[name] = lost
            schema = entry.schema
            rows.append(
                (name, placement.get(name, name), action, schema.distance, str(schema.dimension))
            )
        progress(
            Progress(
                len(created),
                len(order),
                "collections",
                "done",
                checkpoint={"created": created, "creating": None},
            )
        )
    finally:
        engine.close()
    table = ResultTable(
        "collections",
        ("collection", "in the target as", "action", "distance", "dimension"),
        tuple(rows),
    )
    summary = ", ".join(f"{name} {action}" for name, _, action, *_ in rows)
    where = " into STAGING (production untouched until the cutover)" if placement else ""
    lost_note = "".join(
        f"; NOT restored in {name}: {', '.join(items)}" for name, items in not_restored.items()
    )
    return Outcome(
        SUCCEEDED,
        f"schema restored from {manifest.id}{where}: {summary}{lost_note}",
        {
            "snapshot_id": manifest.id,
            "collections": {row[0]: row[2] for row in rows},
            "not_restored": not_restored,
            "placement": placement,
            "leases": order,
        },
        [table],
    )


def _created_before(context: ActionContext) -> set[str]:
    """Collections an earlier, interrupted attempt of this step created (or was about to
    create), from its last recorded checkpoint."""
    checkpoint = context.last_checkpoint or {}
    names = set(checkpoint.get("created") or [])
    if checkpoint.get("creating"):
        names.add(checkpoint["creating"])
    return names


def _refusal(
    name: str,
    current: CollectionInfo | None,
    wanted: CollectionSchema,
    on_exists: str,
    where: str,
) -> str | None:
    if current is None or on_exists == "replace":
        return None
    if on_exists == "fail":
        return (
            f"collection {where} already exists in the target (on_exists: fail); "
            "nothing was written. Use on_exists: replace to re-create it, or merge to keep it"
        )
    mismatch = schema_mismatch(current.schema, wanted)
    if mismatch:
        return (
            f"collection {where} exists with a different schema ({mismatch}); "
            "on_exists: merge refuses it"
        )
    return None


def differences(wanted: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` does not have what ``wanted`` has, as dotted paths (``a.b: x, not
    y``). Settings the engine has that the snapshot did not record are not differences:
    nothing of the snapshot was lost to them."""
    if isinstance(wanted, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(wanted, key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                found.append(f"{where} (missing after the restore)")
            else:
                found += differences(wanted[key], actual[key], where)
        return found
    if wanted != actual or type(wanted) is not type(actual):
        return [f"{path or 'value'}: {_short(actual)}, not {_short(wanted)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _without(config: dict[str, Any], adapter: EngineAdapter) -> dict[str, Any]:
    """An engine's recorded settings less those it restores after the data (indexes,
    access: restore_data compares them once it has)."""
    settings = config.get(adapter.name)
    if not isinstance(settings, dict):
        return config
    kept = {key: value for key, value in settings.items() if key not in adapter.deferred_config}
    return {**config, adapter.name: kept}


def schema_mismatch(current: CollectionSchema, wanted: CollectionSchema) -> str | None:
    """Why a target collection cannot take the snapshot's data, or None. A collection
    whose vector has no index yet while the snapshot's has one (indexes built after the
    data) cannot tell its distance: only its dimension is compared."""
    unindexed = current.vectors and current.index is None and wanted.index is not None
    if current.distance != wanted.distance and not unindexed:
        return f"distance {current.distance} in the target, {wanted.distance} in the snapshot"
    if current.dimension and wanted.dimension and current.dimension != wanted.dimension:
        return f"dimension {current.dimension} in the target, {wanted.dimension} in the snapshot"
    return None


def _apply(
    engine: Engine,
    name: str,
    schema: CollectionSchema,
    current: CollectionInfo | None,
    on_exists: str,
    *,
    deferred: bool,
) -> tuple[str, CollectionInfo]:
    """What was done to the collection, and the collection as the engine now has it (an
    engine that builds indexes after the data gets a table without them)."""
    if current is not None and on_exists == "merge":
        return "kept", current
    action = "created"
    if current is not None:
        engine.delete_collection(name)
        action = "replaced"
    if deferred:
        result = engine.create_collection(name, schema, indexes=False)  # type: ignore[call-arg]
        return f"{action} (indexes after the data)", result
    return action, engine.create_collection(name, schema)
