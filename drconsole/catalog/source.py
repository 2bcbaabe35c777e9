"""Whose snapshots a restore may use: one catalog can hold snapshots of several engines,
tenants and databases, and a restore must only ever pick among its own source's.

A source is an engine, a namespace (``{"tenant": ..., "database": ...}`` for Chroma;
None when the runbook cannot say, e.g. a sandbox target with no ``source:``) and the
collections the runbook restores, all of which a snapshot must hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drconsole.catalog.manifest import Manifest
from drconsole.errors import IntegrityError
from drconsole.wording import plural


@dataclass(frozen=True)
class Source:
    engine: str | None
    namespace: dict[str, str] | None
    collections: tuple[str, ...]

    def accepts(self, manifest: Manifest) -> bool:
        theirs = manifest.source
        if self.engine is not None and theirs.get("engine") != self.engine:
            return False
        if self.namespace is not None and not _namespace_matches(
            self.namespace, theirs.get("namespace")
        ):
            return False
        held = {collection.name for collection in manifest.collections}
        return all(name in held for name in self.collections)

    def describe(self) -> str:
        namespace = "/".join(self.namespace.values()) if self.namespace else "any namespace"
        collections = f" with {', '.join(self.collections)}" if self.collections else ""
        return f"{self.engine or 'any engine'} {namespace}{collections}"

    def check(self, snapshots: list[Manifest], url: str) -> None:
        """Refuse, naming what the catalog holds, when none of its snapshots is of this
        source, or when the source names no namespace and its snapshots come from more
        than one (the restore would not know whose data it is)."""
        ours = [manifest for manifest in snapshots if self.accepts(manifest)]
        held = _sources(snapshots)
        if not ours:
            raise IntegrityError(
                f"no snapshot in {url} is of this runbook's source ({self.describe()}); "
                f"the catalog holds: {held or 'no snapshot'}",
                "check the runbook's `source` (or `target`) and `collections`, or the catalog",
            )
        if self.namespace is None and len({describe_source(m.source) for m in ours}) > 1:
            raise IntegrityError(
                f"{url} holds snapshots of several sources that this runbook could restore "
                f"({_sources(ours)}); it must not guess whose data to restore",
                "name the one to restore with `source: {engine, tenant, database}` in the runbook",
            )


def describe_source(source: dict[str, Any]) -> str:
    """``chroma acme/kb_prod`` from a manifest's source."""
    namespace = source.get("namespace")
    if not isinstance(namespace, dict) or not namespace:
        return f"{source.get('engine', '?')} (no namespace recorded)"
    where = "/".join(str(value) for value in namespace.values())
    return f"{source.get('engine', '?')} {where}"


def _namespace_matches(wanted: dict[str, str], theirs: Any) -> bool:
    return isinstance(theirs, dict) and all(theirs.get(k) == v for k, v in wanted.items())


def _sources(snapshots: list[Manifest]) -> str:
    counts: dict[str, int] = {}
    for manifest in snapshots:
        label = describe_source(manifest.source)
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(
        f"{label} ({plural(count, 'snapshot')})" for label, count in sorted(counts.items())
    )
