"""The action registry: every action a runbook step can name, with its parameters.

Specs are declarative and cheap to import (the runbook loader and the TUI need them at
start-up); an action's code is imported only when a step runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drconsole.actions.base import ActionFunction
from drconsole.actions.params import Param
from drconsole.engines.adapter import Capability
from drconsole.entries import load_entry


@dataclass(frozen=True)
class ActionSpec:
    """An action's name, default phase, parameters and where its code lives.

    ``requires`` names the runbook sections the action cannot work without
    (``catalog``, ``target``), checked when the runbook loads. ``destructive_when`` lists
    parameter values that make a step destructive (it then needs confirmation).
    ``default_timeout_s`` bounds a step that sets no ``timeout``: nothing runs unbounded.
    """

    name: str
    phase: str
    summary: str
    params: tuple[Param, ...]
    entry: str
    destructive: bool = False
    destructive_when: tuple[tuple[str, Any], ...] = ()
    requires: tuple[str, ...] = ()
    default_timeout_s: float = 3600.0
    needs: tuple[Capability, ...] = ()
    needs_when: tuple[tuple[str, Any, Capability], ...] = ()

    def capabilities_needed(self, params: dict[str, Any]) -> list[Capability]:
        """What the target engine must be able to do for a step with these parameters
        (checked when the runbook loads: a step the engine cannot perform is refused)."""
        return [*self.needs] + [
            capability
            for key, value, capability in self.needs_when
            if params.get(key) == value and capability not in self.needs
        ]

    def is_destructive(self, params: dict[str, Any]) -> bool:
        """Destructive always, or with a parameter value that deletes data."""
        return self.destructive or any(
            params.get(key) == value for key, value in self.destructive_when
        )

    def param(self, name: str) -> Param | None:
        return next((param for param in self.params if param.name == name), None)

    def load(self) -> ActionFunction:
        """The action's function, imported from ``entry`` (``module:function``)."""
        return load_entry(self.entry)


COMMAND = ActionSpec(
    name="command",
    phase="prep",
    summary="Run a program (an argv list, no shell) and record its exit code and output tail",
    params=(
        Param("argv", "str_list", "the program and its arguments", required=True),
        Param("cwd", "str", "working directory, relative to the runbook's folder"),
        Param("env", "str_map", "extra environment; secrets as keyring:/env: references"),
        Param(
            "tail_lines",
            "int",
            "lines of output kept in the record",
            default=40,
            minimum=1,
            maximum=1000,
        ),
    ),
    entry="drconsole.actions.command:run_command",
    default_timeout_s=3600.0,
)

VERIFY_CHAIN = ActionSpec(
    name="verify_chain",
    phase="verify",
    summary="Verify the catalog and select the recovery point (newest intact chain)",
    params=(
        Param("depth", "depth", "manifest | sizes | full | sample:N%", default="sizes"),
        Param("snapshot", "str", "restore exactly this snapshot id"),
        Param("at_or_before", "timestamp", "newest recovery point at or before this time (UTC)"),
        Param(
            "fallback",
            "bool",
            "pass over newer broken snapshots (false: the newest must be intact)",
            default=True,
        ),
        Param(
            "after_impact_reason",
            "str",
            "in an incident, why a snapshot taken after the impact started may be restored "
            "(it may hold the damage); without it only earlier ones are",
        ),
    ),
    entry="drconsole.actions.verify_chain:run_verify_chain",
    requires=("catalog",),
    default_timeout_s=14400.0,
)

RESTORE_SCHEMA = ActionSpec(
    name="restore_schema",
    phase="schema",
    summary="Create the namespace and collections from the snapshot's schemas",
    params=(
        Param(
            "on_exists",
            "choice",
            "what to do with an existing collection",
            default="fail",
            choices=("fail", "replace", "merge"),
        ),
        Param("create_namespace", "bool", "create the tenant/database when missing", default=True),
        Param(
            "into",
            "choice",
            "production, or staging: restore under staging names, checked by the gates, "
            "put in place by a cutover step",
            default="production",
            choices=("production", "staging"),
        ),
    ),
    entry="drconsole.actions.restore_schema:run_restore_schema",
    destructive_when=(("on_exists", "replace"),),
    needs_when=(("into", "staging", Capability.RENAME),),
    requires=("catalog", "target"),
    default_timeout_s=600.0,
)

RESTORE_DATA = ActionSpec(
    name="restore_data",
    phase="data",
    summary="Stream the chain's final state into the target, priority collections first",
    params=(
        Param("batch", "int", "records per upsert", default=1000, minimum=1, maximum=100_000),
        Param("in_flight", "int", "upserts at once", default=2, minimum=1, maximum=16),
        Param(
            "method",
            "choice",
            "insert (batched upserts), import (the target's server-side import), or auto: "
            "import a collection of at least import_from records where the target can",
            default="auto",
            choices=("auto", "insert", "import"),
        ),
        Param(
            "import_from",
            "int",
            "records from which auto imports a collection",
            default=50_000,
            minimum=0,
        ),
        Param(
            "import_file_rows",
            "int",
            "records per staged import file",
            default=500_000,
            minimum=1,
        ),
    ),
    entry="drconsole.actions.restore_data:run_restore_data",
    requires=("catalog", "target"),
    default_timeout_s=86400.0,
)

CHECK_COUNTS = ActionSpec(
    name="check_counts",
    phase="validation",
    summary="Counts (per tenant), schema, content, sampled fields and filter counts match "
    "the snapshot",
    params=(
        Param(
            "content",
            "content",
            "records read back and compared field by field with the snapshot: full or "
            "sample:N% (seeded by id)",
            default="full",
        ),
        Param(
            "sample",
            "int",
            "records sampled for the field check",
            default=200,
            minimum=0,
            maximum=100_000,
        ),
        Param("seed", "int", "seed of the sample", default=0),
        Param(
            "tenant_field",
            "str",
            "metadata field holding the tenant (default: permissions.tenant_field)",
        ),
    ),
    entry="drconsole.actions.check_counts:run_check_counts",
    requires=("catalog", "target"),
    default_timeout_s=21600.0,
)

CHECK_PERMISSIONS = ActionSpec(
    name="check_permissions",
    phase="permissions",
    summary="Tenants and ACL groups are kept apart; permission fields are on every record",
    params=(
        Param(
            "queries_per_group",
            "int",
            "random-vector queries per tenant and group",
            default=5,
            minimum=0,
            maximum=1000,
        ),
        Param("k", "int", "neighbours per query", default=10, minimum=1, maximum=1000),
        Param("seed", "int", "seed of the random query vectors", default=0),
    ),
    entry="drconsole.actions.check_permissions:run_check_permissions",
    requires=("catalog", "target"),
    default_timeout_s=7200.0,
)

GOLDEN_QUERIES = ActionSpec(
    name="golden_queries",
    phase="validation",
    summary="The golden queries find what they found before: recall@k, rank overlap, p95 latency",
    params=(
        Param(
            "k",
            "int",
            "neighbours per query (default: each query's own k)",
            minimum=1,
            maximum=1000,
        ),
        Param(
            "min_recall",
            "float",
            "fail below this overall recall@k",
            default=0.95,
            minimum=0,
            maximum=1,
        ),
        Param("max_p95_ms", "float", "fail above this p95 latency", minimum=0),
        Param(
            "mode",
            "choice",
            "ann, or exact to also brute-force the neighbours",
            default="ann",
            choices=("ann", "exact"),
        ),
        Param(
            "file", "str", "golden set file (default: the runbook's golden, else the snapshot's)"
        ),
    ),
    entry="drconsole.actions.golden_queries:run_golden_queries",
    requires=("catalog", "target"),
    default_timeout_s=7200.0,
)

CUTOVER = ActionSpec(
    name="cutover",
    phase="cutover",
    summary="Rename collections restored into staging into production's place "
    "(production's copy kept aside)",
    params=(),
    entry="drconsole.actions.cutover:run_cutover",
    destructive=True,
    needs=(Capability.RENAME,),
    requires=("target",),
    default_timeout_s=600.0,
)

DROP_SANDBOX = ActionSpec(
    name="drop_sandbox",
    phase="cleanup",
    summary="Stop the run's sandbox target server and delete its data",
    params=(),
    entry="drconsole.actions.drop_sandbox:run_drop_sandbox",
    default_timeout_s=300.0,
)

BUILTIN: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        COMMAND,
        VERIFY_CHAIN,
        RESTORE_SCHEMA,
        RESTORE_DATA,
        CHECK_COUNTS,
        CHECK_PERMISSIONS,
        GOLDEN_QUERIES,
        CUTOVER,
        DROP_SANDBOX,
    )
}
