"""Milvus collection descriptions mapped to and from the neutral schema.

A Milvus collection has one primary key (INT64 or VARCHAR), one vector field (2.3 has no
second one), typed scalar fields (never null on 2.3), a dynamic JSON field for any other
key, an index per vector field, partitions, and a partition key. The neutral schema keeps
what it has names for (key type, vector, fields, the partition key as the tenant field,
explicit partitions as tenants, aliases); everything else Milvus needs to make the same
collection again (exact integer widths, VARCHAR lengths, array capacities, the index's
own type and parameters, auto_id, the dynamic field, consistency level, partition count)
goes to ``engine_config["milvus"]``, read only here.

A neutral field that may be missing from a record (``nullable``) cannot be a typed Milvus
field, which always holds a value: such fields live in the dynamic field, where a record
may lack the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pymilvus import DataType, MilvusClient

from drconsole.model.schema import (
    CollectionSchema,
    Distance,
    FieldSpec,
    FieldType,
    IndexSpec,
    KeyType,
    ScalarType,
    Tenancy,
    TenancyMode,
    Tenant,
    VectorSpec,
)

ENGINE = "milvus"
DEFAULT_PARTITION = "_default"
DEFAULT_VECTOR = "vector"
DEFAULT_KEY = "id"
MAX_VARCHAR = 65535
MAX_CAPACITY = 4096
METRICS = {"l2": "L2", "ip": "IP", "cosine": "COSINE"}
DISTANCES = {metric: distance for distance, metric in METRICS.items()}
INDEX_NAMES = {"M": "m", "efConstruction": "ef_construction", "nlist": "lists"}
SEARCH_NAMES = {"ef_search": "ef", "probes": "nprobe"}
SCALARS = {
    DataType.BOOL: ScalarType.BOOL,
    DataType.INT8: ScalarType.INT,
    DataType.INT16: ScalarType.INT,
    DataType.INT32: ScalarType.INT,
    DataType.INT64: ScalarType.INT,
    DataType.FLOAT: ScalarType.FLOAT,
    DataType.DOUBLE: ScalarType.FLOAT,
    DataType.VARCHAR: ScalarType.STRING,
    DataType.JSON: ScalarType.JSON,
}
NEUTRAL_TYPES = {
    ScalarType.BOOL: DataType.BOOL,
    ScalarType.INT: DataType.INT64,
    ScalarType.FLOAT: DataType.DOUBLE,
    ScalarType.STRING: DataType.VARCHAR,
    ScalarType.JSON: DataType.JSON,
}


def neutral_schema(
    described: dict[str, Any],
    indexes: dict[str, dict[str, Any]],
    partitions: list[str],
) -> tuple[CollectionSchema, list[str]]:
    """The neutral schema of a described collection (``describe_collection``), with its
    indexes by field (``describe_index``) and partitions; and what of it cannot be kept."""
    config: dict[str, Any] = {
        "auto_id": bool(described.get("auto_id")),
        "dynamic_field": bool(described.get("enable_dynamic_field")),
        "consistency_level": described.get("consistency_level_name") or "Bounded",
        "num_shards": int(described.get("num_shards") or 1),
        "description": str(described.get("description") or ""),
        "fields": {},
    }
    unrestorable: list[str] = []
    key = KeyType.STRING
    vectors: list[VectorSpec] = []
    fields: list[FieldSpec] = []
    tenancy = Tenancy()
    for raw in described["fields"]:
        name, kind, params = raw["name"], DataType(raw["type"]), dict(raw.get("params") or {})
        if raw.get("is_primary"):
            key = KeyType.INT if kind == DataType.INT64 else KeyType.STRING
            config["key"] = {"name": name, **_kept(params, "max_length")}
            continue
        if kind == DataType.FLOAT_VECTOR:
            index = indexes.get(name) or {}
            vectors.append(_vector(name, int(params.get("dim", 0)), index, config))
            continue
        if kind == DataType.BINARY_VECTOR:
            unrestorable.append(f"binary vector field {name} (drconsole keeps float vectors)")
            continue
        element = raw.get("element_type")
        scalar = SCALARS.get(DataType(element) if element is not None else kind)
        if scalar is None or (kind == DataType.ARRAY and element is None):
            unrestorable.append(f"field {name} of type {kind.name}")
            continue
        own: dict[str, Any] = {"type": kind.name, **_kept(params, "max_length", "max_capacity")}
        if element is not None:
            own["element_type"] = DataType(element).name
        if raw.get("default_value") is not None:
            own["default_value"] = _plain(raw["default_value"])
        if name in indexes:
            own["index"] = _index_text(indexes[name])
        config["fields"][name] = own
        partition_key = bool(raw.get("is_partition_key"))
        fields.append(
            FieldSpec(
                name,
                FieldType(scalar, kind == DataType.ARRAY),
                nullable=False,
                indexed=name in indexes,
                is_tenant=partition_key,
            )
        )
        if partition_key:
            tenancy = Tenancy(TenancyMode.FIELD, name)
            config["num_partitions"] = int(described.get("num_partitions") or len(partitions))
    if tenancy.mode == TenancyMode.NONE:
        named = [p for p in partitions if p != DEFAULT_PARTITION]
        if named:
            tenancy = Tenancy(TenancyMode.PARTITION, None, tuple(Tenant(p) for p in named))
    if len(vectors) != 1:
        unrestorable.append(f"{len(vectors)} vector fields (drconsole keeps one on Milvus 2.3)")
    schema = CollectionSchema(
        vectors=tuple(vectors[:1]) or (VectorSpec(DEFAULT_VECTOR, 0, Distance.L2),),
        key=key,
        fields=tuple(fields),
        tenancy=tenancy,
        aliases=tuple(sorted(described.get("aliases") or ())),
        engine_config={ENGINE: config},
    )
    return schema, unrestorable


def _plain(value: Any) -> Any:
    """A default value as Python has it (pymilvus describes it as a protobuf message)."""
    if hasattr(value, "WhichOneof"):
        which = value.WhichOneof("data")
        return getattr(value, which) if which else None
    return value


def _kept(params: dict[str, Any], *names: str) -> dict[str, int]:
    return {name: int(params[name]) for name in names if name in params}


def _vector(name: str, dimension: int, index: dict[str, Any], config: dict[str, Any]) -> VectorSpec:
    metric = str(index.get("metric_type") or config.get("metric") or "").upper()
    distance = Distance(DISTANCES.get(metric, "l2"))
    spec = None
    if index:
        kind_name = str(index.get("index_type", "")).lower()
        params = {
            INDEX_NAMES[key]: int(value)
            for key, value in index.items()
            if key in INDEX_NAMES and str(value).lstrip("-").isdigit()
        }
        spec = IndexSpec(kind_name, params)
        config["index"] = _index_text(index)
    config["metric"] = metric or METRICS[distance.value]
    return VectorSpec(name, dimension, distance, index=spec)


def _index_text(index: dict[str, Any]) -> dict[str, str]:
    """An index as Milvus describes it, less what changes with the data (row counts,
    state): what makes the same index again."""
    dropped = {"total_rows", "indexed_rows", "pending_index_rows", "state", "field_name"}
    return {key: str(value) for key, value in index.items() if key not in dropped}


MILVUS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def milvus_name(name: str) -> str:
    """``name`` when Milvus can hold it (letters, digits, underscores); else the same with
    every other character as ``_`` and a hash of the whole appended, so that the names
    drconsole derives (``drconsole.lease.kb``, ``kb.staging.3f9a``) stay distinct."""
    if MILVUS_NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
    safe = safe if re.match(r"[A-Za-z_]", safe) else f"_{safe}"
    return f"{safe[:200]}_{digest}"


def config_of(schema: CollectionSchema) -> dict[str, Any]:
    raw = schema.engine_config.get(ENGINE)
    return raw if isinstance(raw, dict) else {}


def vector_field(schema: CollectionSchema) -> str:
    return schema.vector.name or DEFAULT_VECTOR


def key_field(schema: CollectionSchema) -> str:
    return str((config_of(schema).get("key") or {}).get("name") or DEFAULT_KEY)


def typed_fields(schema: CollectionSchema) -> list[FieldSpec]:
    """The fields that are typed Milvus fields (never missing); the others live in the
    dynamic field."""
    return [item for item in schema.fields if not item.nullable]


def milvus_schema(schema: CollectionSchema, description: str) -> Any:
    """A pymilvus schema making ``schema`` (a Milvus one as it was; any other with its
    nullable fields in the dynamic field)."""
    config = config_of(schema)
    own_fields = config.get("fields") or {}
    typed = typed_fields(schema)
    made = MilvusClient.create_schema(
        auto_id=False,
        enable_dynamic_field=bool(config.get("dynamic_field", True))
        or len(typed) < len(schema.fields),
        description=description,
    )
    key = config.get("key") or {}
    if schema.key == KeyType.INT:
        made.add_field(key_field(schema), DataType.INT64, is_primary=True)
    else:
        made.add_field(
            key_field(schema),
            DataType.VARCHAR,
            is_primary=True,
            max_length=int(key.get("max_length", MAX_VARCHAR)),
        )
    dimension = schema.vector.dimension or 1  # unknown (an empty collection): Milvus needs one
    made.add_field(vector_field(schema), DataType.FLOAT_VECTOR, dim=dimension)
    for item in typed:
        own = own_fields.get(item.name) or {}
        made.add_field(item.name, **_field_arguments(item, own))
    return made


def _field_arguments(item: FieldSpec, own: dict[str, Any]) -> dict[str, Any]:
    scalar_type = NEUTRAL_TYPES[item.type.scalar]
    arguments: dict[str, Any] = {}
    if item.type.array:
        element = DataType[own["element_type"]] if "element_type" in own else scalar_type
        arguments.update(
            datatype=DataType.ARRAY,
            element_type=element,
            max_capacity=int(own.get("max_capacity", MAX_CAPACITY)),
        )
        if element == DataType.VARCHAR:
            arguments["max_length"] = int(own.get("max_length", MAX_VARCHAR))
    else:
        kind = DataType[own["type"]] if "type" in own else scalar_type
        arguments["datatype"] = kind
        if kind == DataType.VARCHAR:
            arguments["max_length"] = int(own.get("max_length", MAX_VARCHAR))
    if "default_value" in own:
        arguments["default_value"] = own["default_value"]
    if item.is_tenant:
        arguments["is_partition_key"] = True
    return arguments


def index_parameters(schema: CollectionSchema) -> dict[str, Any]:
    """``add_index`` arguments for the vector field: the recorded index when the source
    was Milvus, else the neutral index in Milvus's names (HNSW unless said otherwise)."""
    config = config_of(schema)
    vector = schema.vector
    metric = METRICS[vector.distance.value]
    recorded = config.get("index")
    if isinstance(recorded, dict) and recorded.get("index_type"):
        params = {
            key: _number(value)
            for key, value in recorded.items()
            if key not in ("index_type", "metric_type", "index_name")
        }
        return {"index_type": recorded["index_type"], "metric_type": metric, "params": params}
    index = vector.index
    if index is None or index.kind == "hnsw":
        params = index.params if index else {}
        return {
            "index_type": "HNSW",
            "metric_type": metric,
            "params": {
                "M": int(params.get("m", 16)),
                "efConstruction": int(params.get("ef_construction", 200)),
            },
        }
    if index.kind in ("ivf_flat", "ivfflat"):
        return {
            "index_type": "IVF_FLAT",
            "metric_type": metric,
            "params": {"nlist": int(index.params.get("lists", 128))},
        }
    return {"index_type": "FLAT", "metric_type": metric, "params": {}}


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def description_of(metadata: dict[str, Any] | None) -> str:
    """Collection metadata as Milvus's description (which holds one string)."""
    if not metadata:
        return ""
    if set(metadata) == {"description"} and isinstance(metadata["description"], str):
        return metadata["description"]
    return json.dumps(metadata, sort_keys=True)


def metadata_of(description: str) -> dict[str, Any]:
    if not description:
        return {}
    try:
        loaded = json.loads(description)
    except ValueError:
        return {"description": description}
    return loaded if isinstance(loaded, dict) else {"description": description}
