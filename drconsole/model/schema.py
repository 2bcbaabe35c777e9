"""A collection's schema in the neutral model: what every engine's adapter maps its own
collection description to and from, and what a manifest keeps. Free of numpy, so that
listing a catalog does not load it.

Names are said once here (distances, field types, index parameters, tenancy modes and
tenant states); each adapter maps its engine's names to these. What an engine says that
the model has no place for round-trips through ``engine_config``, keyed by the engine's
name and read only by its adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MAX_DIMENSION = 65536
SEARCH_PARAMS = ("ef_search", "probes")
"""Index parameters that shape a search, not the index built (HNSW's ``ef_search``,
IVF's ``probes``)."""


class SchemaError(ValueError):
    """A schema description that is not valid, naming the field (``vectors[0].distance``)."""


class Distance(StrEnum):
    """How similarity is measured; an adapter maps its engine's names to these."""

    COSINE = "cosine"
    L2 = "l2"
    IP = "ip"
    L1 = "l1"
    HAMMING = "hamming"

    @classmethod
    def parse(cls, text: str) -> Distance:
        """A distance by its name or a common synonym (``euclidean``, ``dot``, ``manhattan``)."""
        name = _DISTANCE_SYNONYMS.get(str(text).lower(), str(text).lower())
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(item.value for item in cls)
            raise SchemaError(f"unknown distance {text!r} (one of {known})") from None


_DISTANCE_SYNONYMS = {
    "euclidean": "l2",
    "euclid": "l2",
    "dot": "ip",
    "inner_product": "ip",
    "manhattan": "l1",
}


class KeyType(StrEnum):
    """The type of a collection's primary key. Records carry keys as canonical text: an
    int in decimal without leading zeros (64-bit signed), a UUID in lowercase 8-4-4-4-12
    form, so that one key has one spelling (and one id hash) everywhere."""

    STRING = "string"
    INT = "int"
    UUID = "uuid"

    def problem(self, text: str) -> str | None:
        """Why ``text`` is not a canonical key of this type; None when it is."""
        if self == KeyType.INT:
            if not _INT_KEY.match(text) or not -(2**63) <= int(text) < 2**63:
                return f"key {text[:40]!r} is not a canonical 64-bit integer"
        elif self == KeyType.UUID and not _UUID_KEY.match(text):
            return f"key {text[:40]!r} is not a canonical lowercase UUID"
        return None


_INT_KEY = re.compile(r"^(0|-?[1-9][0-9]{0,18})$")
_UUID_KEY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ElementType(StrEnum):
    """How a dense vector's components are stored."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    BIT = "bit"
    """A binary vector (one bit a dimension), measured by hamming distance."""


class ScalarType(StrEnum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATETIME = "datetime"
    JSON = "json"
    """Any JSON value: also what a field holding values of several types is."""


@dataclass(frozen=True)
class FieldType:
    """A scalar type, or an array of one (written ``int[]``)."""

    scalar: ScalarType
    array: bool = False

    @classmethod
    def parse(cls, text: str) -> FieldType:
        name = str(text)
        array = name.endswith("[]")
        scalar = name[:-2] if array else name
        if scalar == "mixed":  # what format 2 manifests before the neutral schema said
            return cls(ScalarType.JSON, array)
        try:
            return cls(ScalarType(scalar), array)
        except ValueError:
            known = ", ".join(item.value for item in ScalarType)
            raise SchemaError(f"unknown field type {text!r} (one of {known}, or X[])") from None

    def __str__(self) -> str:
        return f"{self.scalar.value}[]" if self.array else self.scalar.value


@dataclass(frozen=True)
class FieldSpec:
    """A typed field of the records (a metadata key, a column, a payload property)."""

    name: str
    type: FieldType
    nullable: bool = True
    indexed: bool = False
    is_tenant: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": str(self.type),
            "nullable": self.nullable,
            "indexed": self.indexed,
            "is_tenant": self.is_tenant,
        }


INDEX_PARAMETERS = ("m", "ef_construction", "ef_search", "lists", "probes")
"""Index parameters by their neutral names: HNSW graph degree (``m``), construction and
search beam (``ef_construction``, ``ef_search``), IVF lists and probes. An adapter maps
its engine's names (Chroma's ``max_neighbors`` is ``m``, pgvector's ``lists``...) and
keeps any other setting in ``engine_config``."""


@dataclass(frozen=True)
class IndexSpec:
    """A vector index: its kind (``hnsw``, ``ivf_flat``, ``flat``, ``diskann``...) and
    its parameters by their neutral names."""

    kind: str
    params: dict[str, int | float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params)}


@dataclass(frozen=True)
class VectorSpec:
    """A dense vector of the records: name ("" for a collection's single unnamed one),
    dimension (0 when unknown: an empty collection), distance, element type, index."""

    name: str
    dimension: int
    distance: Distance
    element: ElementType = ElementType.FLOAT32
    index: IndexSpec | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dimension": self.dimension,
            "distance": self.distance.value,
            "element": self.element.value,
            "index": self.index.to_json() if self.index else None,
        }


@dataclass(frozen=True)
class SparseVectorSpec:
    """A sparse vector of the records (kept as index and value lists)."""

    name: str
    index: IndexSpec | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index.to_json() if self.index else None}


class TenancyMode(StrEnum):
    """How a collection keeps tenants apart: not at all, by a field of each record, by
    the engine's own tenants, or by partitions."""

    NONE = "none"
    FIELD = "field"
    NATIVE = "native"
    PARTITION = "partition"


class TenantState(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    OFFLOADED = "offloaded"


@dataclass(frozen=True)
class Tenant:
    name: str
    state: TenantState = TenantState.ACTIVE

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state.value}


@dataclass(frozen=True)
class Tenancy:
    """The tenancy mode, the field holding the tenant (``field`` mode), and the tenants
    the engine declares with their states (``native`` and ``partition`` modes)."""

    mode: TenancyMode = TenancyMode.NONE
    field: str | None = None
    tenants: tuple[Tenant, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "field": self.field,
            "tenants": [tenant.to_json() for tenant in self.tenants],
        }


@dataclass(frozen=True)
class Grant:
    """A privilege (``select``, ``insert``, ``search``...) of a role on the collection."""

    role: str
    privilege: str

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "privilege": self.privilege}


@dataclass(frozen=True)
class RowRule:
    """A row-level rule: records ``role`` may see, as a filter in the ``where`` syntax."""

    role: str
    where: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "where": self.where}


@dataclass(frozen=True)
class AccessPolicy:
    """Who may do what with the collection: roles, grants and row-level rules."""

    roles: tuple[str, ...] = ()
    grants: tuple[Grant, ...] = ()
    row_rules: tuple[RowRule, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "roles": list(self.roles),
            "grants": [grant.to_json() for grant in self.grants],
            "row_rules": [rule.to_json() for rule in self.row_rules],
        }

    def __bool__(self) -> bool:
        return bool(self.roles or self.grants or self.row_rules)


@dataclass(frozen=True)
class CollectionSchema:
    """A collection's neutral schema: key type, dense vectors (the first is the one an
    engine with a single vector has), sparse vectors, typed fields, tenancy, aliases,
    access policy, and per-engine settings only that engine's adapter reads."""

    vectors: tuple[VectorSpec, ...]
    key: KeyType = KeyType.STRING
    fields: tuple[FieldSpec, ...] = ()
    sparse_vectors: tuple[SparseVectorSpec, ...] = ()
    tenancy: Tenancy = Tenancy()
    aliases: tuple[str, ...] = ()
    access: AccessPolicy = AccessPolicy()
    engine_config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def dense(
        cls,
        dimension: int,
        distance: str,
        *,
        index: IndexSpec | None = None,
        **rest: Any,
    ) -> CollectionSchema:
        """A collection with one unnamed dense vector (Chroma's kind)."""
        return cls((VectorSpec("", dimension, Distance.parse(distance), index=index),), **rest)

    @property
    def vector(self) -> VectorSpec:
        """The first dense vector: the one a single-vector engine stores."""
        if not self.vectors:
            raise SchemaError("the collection has no dense vector")
        return self.vectors[0]

    @property
    def dimension(self) -> int:
        return self.vector.dimension

    @property
    def distance(self) -> Distance:
        return self.vector.distance

    @property
    def index(self) -> IndexSpec | None:
        return self.vector.index

    def field(self, name: str) -> FieldSpec | None:
        return next((item for item in self.fields if item.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key.value,
            "vectors": [vector.to_json() for vector in self.vectors],
            "sparse_vectors": [vector.to_json() for vector in self.sparse_vectors],
            "fields": [item.to_json() for item in self.fields],
            "tenancy": self.tenancy.to_json(),
            "aliases": list(self.aliases),
            "access": self.access.to_json(),
            "engine_config": self.engine_config,
        }


def parse_schema(raw: Any, where: str = "schema") -> CollectionSchema:
    """A schema from its JSON (``to_json``); SchemaError naming the field otherwise.
    Schemas come from manifests nobody vouches for: every value is checked."""
    reader = _Reader(raw, where)
    vectors = tuple(
        _vector(item, f"{where}.vectors[{n}]") for n, item in enumerate(reader.items("vectors"))
    )
    sparse = tuple(
        _sparse(item, f"{where}.sparse_vectors[{n}]")
        for n, item in enumerate(reader.items("sparse_vectors", optional=True))
    )
    _unique([v.name for v in vectors] + [v.name for v in sparse], f"{where}: vector names")
    fields = tuple(
        _field(item, f"{where}.fields[{n}]")
        for n, item in enumerate(reader.items("fields", optional=True))
    )
    _unique([item.name for item in fields], f"{where}: field names")
    aliases = tuple(
        _text(alias, f"{where}.aliases[{n}]")
        for n, alias in enumerate(reader.items("aliases", optional=True))
    )
    return CollectionSchema(
        vectors=vectors,
        key=reader.choice("key", KeyType, KeyType.STRING),
        fields=fields,
        sparse_vectors=sparse,
        tenancy=_tenancy(reader.raw.get("tenancy"), f"{where}.tenancy"),
        aliases=aliases,
        access=_access(reader.raw.get("access"), f"{where}.access"),
        engine_config=reader.mapping("engine_config"),
    )


def legacy_schema(raw: Any, where: str = "schema") -> CollectionSchema:
    """A schema as manifests wrote it before the neutral model (format 1, and format 2
    until it carried the neutral schema): one vector's ``dimension`` and ``distance``,
    ``index`` as ``{"hnsw": {...}}`` in Chroma's names, ``metadata_fields`` as
    ``{name: type}``."""
    reader = _Reader(raw, where)
    dimension = reader.dimension("dimension")
    try:
        distance = Distance.parse(reader.raw.get("distance"))
    except SchemaError as error:
        raise SchemaError(f"{where}.distance: {error}") from None
    hnsw = reader.mapping("index").get("hnsw")
    index = None
    if isinstance(hnsw, dict) and hnsw:
        index = IndexSpec("hnsw", _params(_renamed(hnsw, LEGACY_HNSW_NAMES), f"{where}.index"))
    fields = tuple(
        FieldSpec(_text(name, f"{where}.metadata_fields"), _field_type(kind, f"{where}.{name}"))
        for name, kind in sorted(reader.mapping("metadata_fields").items())
    )
    return CollectionSchema(
        vectors=(VectorSpec("", dimension, distance, index=index),),
        fields=fields,
        engine_config=reader.mapping("engine_config"),
    )


LEGACY_HNSW_NAMES = {
    "max_neighbors": "m",
    "ef_construction": "ef_construction",
    "ef_search": "ef_search",
}
"""Chroma's HNSW names, which manifests used before the neutral model, to neutral ones."""


def _renamed(params: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names[key]: value for key, value in params.items() if key in names}


def _vector(raw: Any, where: str) -> VectorSpec:
    reader = _Reader(raw, where)
    return VectorSpec(
        name=reader.name("name", allow_empty=True),
        dimension=reader.dimension("dimension"),
        distance=reader.choice("distance", Distance, None),
        element=reader.choice("element", ElementType, ElementType.FLOAT32),
        index=_index(reader.raw.get("index"), f"{where}.index"),
    )


def _sparse(raw: Any, where: str) -> SparseVectorSpec:
    reader = _Reader(raw, where)
    return SparseVectorSpec(reader.name("name"), _index(reader.raw.get("index"), f"{where}.index"))


def _index(raw: Any, where: str) -> IndexSpec | None:
    if raw is None:
        return None
    reader = _Reader(raw, where)
    return IndexSpec(reader.name("kind"), _params(reader.mapping("params"), f"{where}.params"))


def _params(raw: dict[str, Any], where: str) -> dict[str, int | float]:
    params: dict[str, int | float] = {}
    for key, value in raw.items():
        if key not in INDEX_PARAMETERS:
            raise SchemaError(
                f"{where}.{key}: not a neutral index parameter ({', '.join(INDEX_PARAMETERS)})"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"{where}.{key} must be a number")
        params[key] = value
    return params


def _field(raw: Any, where: str) -> FieldSpec:
    reader = _Reader(raw, where)
    return FieldSpec(
        name=reader.name("name"),
        type=_field_type(reader.raw.get("type"), f"{where}.type"),
        nullable=reader.flag("nullable", True),
        indexed=reader.flag("indexed", False),
        is_tenant=reader.flag("is_tenant", False),
    )


def _field_type(raw: Any, where: str) -> FieldType:
    if not isinstance(raw, str):
        raise SchemaError(f"{where} must be a type name")
    try:
        return FieldType.parse(raw)
    except SchemaError as error:
        raise SchemaError(f"{where}: {error}") from None


def _tenancy(raw: Any, where: str) -> Tenancy:
    if raw is None:
        return Tenancy()
    reader = _Reader(raw, where)
    tenants = tuple(
        Tenant(
            _Reader(item, f"{where}.tenants[{n}]").name("name"),
            _Reader(item, f"{where}.tenants[{n}]").choice("state", TenantState, TenantState.ACTIVE),
        )
        for n, item in enumerate(reader.items("tenants", optional=True))
    )
    _unique([tenant.name for tenant in tenants], f"{where}: tenant names")
    field_name = reader.raw.get("field")
    if field_name is not None:
        field_name = _text(field_name, f"{where}.field")
    mode = reader.choice("mode", TenancyMode, TenancyMode.NONE)
    if (mode == TenancyMode.FIELD) != (field_name is not None):
        raise SchemaError(f"{where}: a field is named exactly when the mode is field")
    return Tenancy(mode, field_name, tenants)


def _access(raw: Any, where: str) -> AccessPolicy:
    if raw is None:
        return AccessPolicy()
    reader = _Reader(raw, where)
    roles = tuple(
        _text(role, f"{where}.roles[{n}]")
        for n, role in enumerate(reader.items("roles", optional=True))
    )
    grants = tuple(
        Grant(
            _Reader(item, f"{where}.grants[{n}]").name("role"),
            _Reader(item, f"{where}.grants[{n}]").name("privilege"),
        )
        for n, item in enumerate(reader.items("grants", optional=True))
    )
    rules = tuple(
        RowRule(
            _Reader(item, f"{where}.row_rules[{n}]").name("role"),
            _Reader(item, f"{where}.row_rules[{n}]").mapping("where"),
        )
        for n, item in enumerate(reader.items("row_rules", optional=True))
    )
    return AccessPolicy(roles, grants, rules)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SchemaError(f"{where} must be a non-empty string")
    return value


def _unique(names: list[str], where: str) -> None:
    if len(set(names)) != len(names):
        raise SchemaError(f"{where} must be unique")


class _Reader:
    """Typed access to a JSON object, raising SchemaError naming the field."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, dict):
            raise SchemaError(f"{where} must be a JSON object")
        self.raw = raw
        self.where = where

    def name(self, key: str, *, allow_empty: bool = False) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str) or (not value and not allow_empty):
            raise SchemaError(
                f"{self.where}.{key} must be a {'' if allow_empty else 'non-empty '}string"
            )
        return value

    def dimension(self, key: str) -> int:
        value = self.raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DIMENSION:
            raise SchemaError(f"{self.where}.{key} must be 0 (unknown: empty) to {MAX_DIMENSION}")
        return value

    def choice(self, key: str, kind: type[StrEnum], default: Any) -> Any:
        value = self.raw.get(key, default)
        try:
            return kind(value)
        except ValueError:
            known = ", ".join(item.value for item in kind)
            raise SchemaError(f"{self.where}.{key} must be one of {known}") from None

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise SchemaError(f"{self.where}.{key} must be true or false")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise SchemaError(f"{self.where}.{key} must be a JSON object")
        return value

    def items(self, key: str, *, optional: bool = False) -> list[Any]:
        value = self.raw.get(key)
        if value is None and optional:
            return []
        if not isinstance(value, list):
            raise SchemaError(f"{self.where}.{key} must be a list")
        return value
