"""Chroma (1.x, v2 REST API): the adapter's declaration. The client is in ``engine``, the
sandbox server in ``server``."""

from __future__ import annotations

from drconsole.engines.adapter import Capability, EngineAdapter, TargetOption
from drconsole.model.filters import OPERATORS

DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"

ADAPTER = EngineAdapter(
    name="chroma",
    title="Chroma",
    engine_entry="drconsole.engines.chroma.engine:open_chroma",
    options=(
        TargetOption("tenant", "Chroma tenant", default=DEFAULT_TENANT),
        TargetOption("database", "Chroma database", default=DEFAULT_DATABASE),
        TargetOption(
            "data_dir",
            "the server's data folder (physical backups and restores; the server stopped)",
            namespace=False,
        ),
    ),
    capabilities=frozenset(
        {
            Capability.RENAME,
            Capability.DOCUMENTS,
            Capability.URIS,
            Capability.FREE_FIELDS,
            Capability.PHYSICAL_BACKUP,
        }
    ),
    filter_operators=OPERATORS,
    distances={"cosine": "cosine", "l2": "l2", "ip": "ip"},
    sandbox_entry="drconsole.engines.chroma.server:ChromaServer",
    physical_entry="drconsole.engines.chroma.physical:DATA_FOLDER",
    classify_entry="drconsole.engines.chroma.engine:classify",
    tested_against="Chroma 1.5 (`chroma run`, a real server in the test suite)",
    url_example="http://chroma.internal:8000",
    url_schemes=("http", "https"),
    extra="sandbox",
)
