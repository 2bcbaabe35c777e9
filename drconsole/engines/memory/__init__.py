"""The in-process reference engine: the neutral model's semantics, held in memory. The
contract suite runs on it first, and action tests that need no real server use it."""

from __future__ import annotations

from drconsole.engines.adapter import Capability, EngineAdapter, TargetOption
from drconsole.model.filters import OPERATORS

ADAPTER = EngineAdapter(
    name="memory",
    title="in-memory reference",
    engine_entry="drconsole.engines.memory.engine:open_memory",
    options=(TargetOption("database", "database inside the in-memory server", default="default"),),
    capabilities=frozenset(
        {
            Capability.RENAME,
            Capability.DOCUMENTS,
            Capability.URIS,
            Capability.NAMED_VECTORS,
            Capability.SPARSE_VECTORS,
            Capability.FREE_FIELDS,
        }
    ),
    filter_operators=OPERATORS,
    distances={"cosine": "cosine", "l2": "l2", "ip": "ip"},
    key_types=("string", "int", "uuid"),
    classify_entry="drconsole.engines.memory.engine:classify",
    tested_against="itself: the reference of the contract suite (in the unit tests)",
    url_example="memory://test",
    url_schemes=("memory",),
    in_process=True,
)
