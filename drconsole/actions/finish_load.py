"""The last part of a restore into an engine that builds indexes and access state after
the data (``Capability.DEFERRED_INDEXES``): build them, then compare what the target has
with what the snapshot recorded, so the step names what is NOT restored.

Settings the engine runs as code (``EngineAdapter.executable_config``: pgvector's
policies, which are SQL) are only handed over from a manifest the catalog key
authenticated; from any other manifest they are left out, and said to be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from drconsole.actions.restore_schema import differences
from drconsole.catalog.auth import SIGNED
from drconsole.engines.adapter import EngineAdapter
from drconsole.engines.base import Engine
from drconsole.errors import DrconsoleError
from drconsole.model.schema import CollectionSchema


@dataclass
class FinishedLoad:
    """One collection's finish: indexes built, what the operator must still do, and what
    of the snapshot the target does not have."""

    indexes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)


def finish_load(
    engine: Engine,
    adapter: EngineAdapter,
    name: str,
    wanted: CollectionSchema,
    *,
    authenticity: str,
    progress: Callable[[str], None],
) -> FinishedLoad:
    """Finish one collection's load (``wanted``: the snapshot's schema, ``authenticity``:
    its manifest's) and say what it lacks afterwards."""
    withheld = [] if authenticity == SIGNED else _withheld(adapter, wanted)
    given = without(wanted, adapter, withheld)
    done = engine.finish_load(name, given, progress)  # type: ignore[attr-defined]
    current = engine.get_collection(name)
    if current is None:
        raise DrconsoleError(f"collection {name} vanished from the target while it was indexed")
    lost = [
        f"{key} (the manifest is {authenticity}: drconsole runs {key} only from a manifest "
        "the catalog key signed)"
        for key in withheld
    ] + done.skipped
    deferred = {
        adapter.name: _only(wanted.engine_config.get(adapter.name), adapter.deferred_config)
    }
    lost += [
        item
        for item in differences(deferred, current.schema.engine_config)
        if not any(f"{adapter.name}.{key}" in item for key in withheld)
    ]
    have = set(current.schema.access.grants)
    lost += [
        f"grant {grant.privilege} to {grant.role}"
        for grant in wanted.access.grants
        if grant not in have
    ]
    return FinishedLoad(done.indexes, done.notes, lost)


def without(schema: CollectionSchema, adapter: EngineAdapter, keys: list[str]) -> CollectionSchema:
    """``schema`` less the adapter's settings named by ``keys``."""
    if not keys:
        return schema
    config = dict(schema.engine_config.get(adapter.name) or {})
    for key in keys:
        config.pop(key, None)
    return replace(schema, engine_config={**schema.engine_config, adapter.name: config})


def _withheld(adapter: EngineAdapter, schema: CollectionSchema) -> list[str]:
    config = schema.engine_config.get(adapter.name) or {}
    return [key for key in adapter.executable_config if config.get(key)]


def _only(config: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(config, dict):
        return {}
    return {key: value for key, value in config.items() if key in keys}
