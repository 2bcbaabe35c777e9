"""Milvus: the adapter's declaration. A collection of the target's database is a
collection; the client is in ``engine``, the schema mapping in ``schema``, filters in
``filters``, the sandbox server (in a network namespace of its own) in ``server``."""

from __future__ import annotations

from drconsole.engines.adapter import Capability, EngineAdapter, TargetOption
from drconsole.model.filters import OPERATORS

ADAPTER = EngineAdapter(
    name="milvus",
    title="Milvus",
    engine_entry="drconsole.engines.milvus.engine:open_milvus",
    options=(
        TargetOption("database", "Milvus database holding the collections", default="default"),
        TargetOption(
            "stage",
            "s3://BUCKET/PREFIX in the bucket Milvus keeps its data in: where restores stage "
            "files for a server-side import",
            namespace=False,
        ),
        TargetOption("stage_endpoint", "the S3 endpoint of the stage", namespace=False),
        TargetOption(
            "stage_credentials",
            "reference to the stage's ACCESS_KEY_ID:SECRET_ACCESS_KEY (env:, file:, keyring:)",
            namespace=False,
        ),
    ),
    capabilities=frozenset(
        {
            Capability.RENAME,
            Capability.FREE_FIELDS,
            Capability.NATIVE_TENANTS,
            Capability.ALIASES,
            Capability.DEFERRED_INDEXES,
            Capability.NEEDS_FLUSH,
            Capability.BULK_LOAD,
            Capability.ACCESS_POLICIES,
        }
    ),
    filter_operators=OPERATORS,
    distances={"cosine": "COSINE", "l2": "L2", "ip": "IP"},
    key_types=("string", "int"),
    sandbox_entry="drconsole.engines.milvus.server:MilvusServer",
    classify_entry="drconsole.engines.milvus.engine:classify",
    tested_against=(
        "Milvus 2.3.5 standalone (the milvus wheel, a real server in the test suite, in a "
        "network namespace of its own, on SeaweedFS S3), with pymilvus 2.6; Milvus 2.4+ adds "
        "several vector fields per collection and sparse vectors, which this adapter does "
        "not use yet"
    ),
    url_example="http://root@milvus.internal:19530",
    extra="milvus",
    deferred_config=("index", "users"),
    access_config=("users",),
)
