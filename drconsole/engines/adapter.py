"""What an engine adapter declares about itself, so that the runbook loader, the CLI, the
actions and ``drconsole engines`` ask it instead of knowing any engine by name.

A declaration is cheap to import (no client library, no numpy): the loader reads it at
start-up. The engine itself, its sandbox server and its filter compiler are imported
only when a step opens the engine (``entry`` strings, ``module:attribute``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drconsole.entries import load_entry
from drconsole.errors import UsageError
from drconsole.retry import DEFAULT, RetryPolicy

if TYPE_CHECKING:
    from drconsole.engines.base import Engine
    from drconsole.engines.physical import PhysicalMethod
    from drconsole.model.schema import CollectionSchema
    from drconsole.sandbox import EngineServer


class Capability(StrEnum):
    """What an engine can do beyond the common core (collections, upsert, scan, count,
    query, delete, filters)."""

    RENAME = "rename"
    """A collection can be renamed in one step (restore into staging, then cut over)."""
    DOCUMENTS = "documents"
    URIS = "uris"
    NAMED_VECTORS = "named_vectors"
    SPARSE_VECTORS = "sparse_vectors"
    NATIVE_TENANTS = "native_tenants"
    TENANT_STATES = "tenant_states"
    ALIASES = "aliases"
    ACCESS_POLICIES = "access_policies"
    NATIVE_BACKUP = "native_backup"
    BULK_LOAD = "bulk_load"
    NEEDS_FLUSH = "needs_flush"
    FREE_FIELDS = "free_fields"
    """Records carry fields of any kind without declaring them (a typed table cannot)."""
    CONSISTENT_READ = "consistent_read"
    """``consistent_read()``: every read of a snapshot sees one instant, which it names."""
    DEFERRED_INDEXES = "deferred_indexes"
    """``create_collection(indexes=False)`` then ``finish_load``: indexes built after the data."""
    PHYSICAL_BACKUP = "physical_backup"
    """Its data folder can be backed up as files and restored by unpacking them into a
    stopped server's folder (``physical_entry``)."""

    def describe(self) -> str:
        return _CAPABILITY_WORDS[self]


_CAPABILITY_WORDS = {
    Capability.RENAME: "renaming a collection in one step (restore into staging, then cut over)",
    Capability.DOCUMENTS: "a document stored with each record",
    Capability.URIS: "a uri stored with each record",
    Capability.NAMED_VECTORS: "several named vectors per record",
    Capability.SPARSE_VECTORS: "sparse vectors",
    Capability.NATIVE_TENANTS: "tenants of its own (not a field)",
    Capability.TENANT_STATES: "tenant states (active, inactive, offloaded)",
    Capability.ALIASES: "collection aliases",
    Capability.ACCESS_POLICIES: "access policies (roles, grants, row-level rules)",
    Capability.NATIVE_BACKUP: "backups of its own",
    Capability.BULK_LOAD: "a bulk loader",
    Capability.NEEDS_FLUSH: "a flush before written records are counted",
    Capability.FREE_FIELDS: "fields of any kind in any record, without declaring them",
    Capability.CONSISTENT_READ: "snapshots read at one instant (a transaction), named exactly",
    Capability.DEFERRED_INDEXES: "indexes built after a restore's data is loaded",
    Capability.PHYSICAL_BACKUP: "physical backups: its data folder packed as files, restored "
    "by unpacking them into a stopped server's folder",
}


class ErrorKind(StrEnum):
    """How an engine error is treated: ``transient`` is tried again under the retry
    policy; the others fail the step at once with the engine's message."""

    TRANSIENT = "transient"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    AUTH = "auth"
    INVALID = "invalid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TargetOption:
    """A setting of a target beyond ``engine``, ``url``, ``token`` and ``sandbox``: the
    runbook's ``target``/``source`` keys and the CLI's flags are derived from these."""

    name: str
    help: str
    default: str | None = None
    namespace: bool = True
    """Part of the namespace a snapshot records as its source (tenant, database...)."""


@dataclass(frozen=True)
class EngineAdapter:
    """One engine: its name, options, capabilities and the entries of its code."""

    name: str
    title: str
    engine_entry: str
    """``module:function(url, options, token) -> Engine``."""
    options: tuple[TargetOption, ...] = ()
    capabilities: frozenset[Capability] = frozenset()
    filter_operators: frozenset[str] = frozenset()
    """The filter operators (``and``, ``or``, ``eq``, ``in``...) the engine can run."""
    distances: dict[str, str] = field(default_factory=dict)
    """Neutral distance name -> the engine's own name for it."""
    key_types: tuple[str, ...] = ("string",)
    """The primary key types (``model.schema.KeyType``) the engine keeps as they are."""
    sandbox_entry: str | None = None
    """``module:class(folder) -> EngineServer``: a throwaway server for drills."""
    physical_entry: str | None = None
    """``module:object``: its ``physical.PhysicalMethod`` (how its files are taken, checked
    and served), for engines with ``physical_backup``."""
    classify_entry: str | None = None
    """``module:function(error) -> ErrorKind``."""
    retry: RetryPolicy = DEFAULT
    tested_against: str = ""
    """Which server versions the suite runs this adapter against, and how."""
    url_example: str = ""
    url_schemes: tuple[str, ...] = ()
    """The URL schemes of its servers (``http``, ``postgresql``): a URL names its engine
    when only one adapter claims its scheme."""
    deferred_config: tuple[str, ...] = ()
    """``engine_config`` settings that ``finish_load`` restores (indexes, access), not
    the collection's creation: compared once the load is finished."""
    access_config: tuple[str, ...] = ()
    """``engine_config`` settings that decide who sees what (row-level security,
    policies): ``check_permissions`` compares them with the snapshot's, both ways."""
    executable_config: tuple[str, ...] = ()
    """``engine_config`` settings the engine runs as code (SQL policies): restored only
    from a manifest the catalog key authenticated."""
    extra: str | None = None
    """The pip extra of drconsole that installs the libraries its engine needs."""
    in_process: bool = False
    """The engine lives inside drconsole's process (the reference engine): nothing a
    separate command could reach later."""

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def default_namespace(self) -> dict[str, str]:
        return {
            option.name: option.default
            for option in self.options
            if option.namespace and option.default is not None
        }

    def schema_gaps(self, schema: CollectionSchema) -> list[str]:
        """What of a neutral schema this engine cannot hold, for people; empty when it
        can hold all of it. A restore refuses a collection with gaps before writing."""
        gaps = [
            f"distance {vector.distance.value} of vector {vector.name or '(unnamed)'}"
            for vector in schema.vectors
            if vector.distance.value not in self.distances
        ]
        if schema.key.value not in self.key_types:
            gaps.append(f"{schema.key.value} primary keys")
        needs = [
            (len(schema.vectors) > 1, Capability.NAMED_VECTORS, "named vectors"),
            (bool(schema.sparse_vectors), Capability.SPARSE_VECTORS, "sparse vectors"),
            (
                schema.tenancy.mode.value in ("native", "partition"),
                Capability.NATIVE_TENANTS,
                f"{schema.tenancy.mode.value} tenants",
            ),
            (
                any(tenant.state.value != "active" for tenant in schema.tenancy.tenants),
                Capability.TENANT_STATES,
                "tenant states other than active",
            ),
            (bool(schema.aliases), Capability.ALIASES, "aliases"),
            (bool(schema.access), Capability.ACCESS_POLICIES, "access policies"),
        ]
        gaps += [what for used, capability, what in needs if used and not self.can(capability)]
        return gaps

    def unsupported_operators(self, used: set[str]) -> list[str]:
        return sorted(used - self.filter_operators)

    def open(self, url: str, options: dict[str, Any], token: str | None) -> Engine:
        return self._load(self.engine_entry)(url, options, token)

    def _load(self, entry: str) -> Any:
        """The code behind an entry; a library it needs that is not installed is a usage
        error naming it (drconsole's engines: an extra of the same name brings it)."""
        try:
            return load_entry(entry)
        except ImportError as error:
            missing = error.name or str(error)
            raise UsageError(
                f"the {self.title} engine needs {missing}, which is not installed",
                f"install it: pip install 'drconsole[{self.extra}]'"
                if self.extra
                else "install the package that provides this engine",
            ) from None

    def sandbox(self, folder: Path) -> EngineServer:
        if self.sandbox_entry is None:
            raise UsageError(
                f"the {self.title} engine has no sandbox server to start",
                "restore into a target with a url, or drill an engine that has one "
                "(`drconsole engines` lists them)",
            )
        return self._load(self.sandbox_entry)(folder)

    def physical(self) -> PhysicalMethod:
        if self.physical_entry is None:
            raise UsageError(
                f"the {self.title} engine has no physical backups",
                "take a logical snapshot (drop --physical); `drconsole engines` lists the "
                "engines that have them",
            )
        return self._load(self.physical_entry)

    def classify(self, error: BaseException) -> ErrorKind:
        if self.classify_entry is None:
            return ErrorKind.UNKNOWN
        return load_entry(self.classify_entry)(error)
