"""What a PostgreSQL table is, in the neutral model: read from the catalogs, never
guessed. The primary key's type, every vector column (``vector`` and ``halfvec`` as
dense vectors, ``sparsevec`` as sparse ones, ``bit`` as binary ones) with its dimension
and the distance and parameters of the index built on it, the other columns as typed
fields (which ones an index covers; a type the model has no name for is a string there, its
own type kept in ``engine_config``), and the table's access state: its grants, whether
row-level security is enabled or forced, and every policy with its command, roles and
expressions (kept for this adapter in ``engine_config``: a policy is SQL, not a filter),
the roles named with their attributes and their usage of the schema. A vector index's
parameters include the session's ``hnsw.ef_search``/``ivfflat.probes`` (what the
application searches with: PostgreSQL keeps them per session, not in the table).

Every query is parameterised; the table is found by its schema and name as values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from drconsole.errors import EngineError
from drconsole.model.schema import (
    AccessPolicy,
    CollectionSchema,
    Distance,
    ElementType,
    FieldSpec,
    FieldType,
    Grant,
    IndexSpec,
    KeyType,
    ScalarType,
    SparseVectorSpec,
    VectorSpec,
)

ENGINE = "pgvector"
KEY_TYPES = {
    "text": KeyType.STRING,
    "varchar": KeyType.STRING,
    "bpchar": KeyType.STRING,
    "int2": KeyType.INT,
    "int4": KeyType.INT,
    "int8": KeyType.INT,
    "uuid": KeyType.UUID,
}
SCALARS = {
    "text": ScalarType.STRING,
    "varchar": ScalarType.STRING,
    "bpchar": ScalarType.STRING,
    "uuid": ScalarType.STRING,
    "int2": ScalarType.INT,
    "int4": ScalarType.INT,
    "int8": ScalarType.INT,
    "float4": ScalarType.FLOAT,
    "float8": ScalarType.FLOAT,
    "numeric": ScalarType.FLOAT,
    "bool": ScalarType.BOOL,
    "timestamptz": ScalarType.DATETIME,
    "timestamp": ScalarType.DATETIME,
    "date": ScalarType.DATETIME,
    "json": ScalarType.JSON,
    "jsonb": ScalarType.JSON,
}
DENSE = {"vector": ElementType.FLOAT32, "halfvec": ElementType.FLOAT16, "bit": ElementType.BIT}
OPERATOR_CLASSES = {"l2": Distance.L2, "cosine": Distance.COSINE, "ip": Distance.IP}
OPERATOR_CLASSES |= {"l1": Distance.L1, "hamming": Distance.HAMMING}
"""``vector_cosine_ops``, ``halfvec_l2_ops``, ``bit_hamming_ops``...: the distance an
index measures, so the one the application searches with."""
INDEX_OPTIONS = {"m": "m", "ef_construction": "ef_construction", "lists": "lists"}
INDEX_OPTIONS |= {"ef_search": "ef_search", "probes": "probes"}

_TABLE = """
select c.oid, c.relrowsecurity, c.relforcerowsecurity, obj_description(c.oid, 'pg_class')
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'p')
"""
_COLUMNS = """
select a.attname, t.typname, a.atttypmod, a.attnotnull, e.typname,
       format_type(a.atttypid, a.atttypmod)
from pg_attribute a
join pg_type t on t.oid = a.atttypid
left join pg_type e on e.oid = t.typelem and t.typcategory = 'A'
where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""
_PRIMARY_KEY = """
select a.attname from pg_index i
join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
where i.indrelid = %s and i.indisprimary
"""
_INDEXES = """
select c.relname, am.amname, i.indisunique, i.indpred is not null or i.indexprs is not null,
       array(select a.attname from unnest(i.indkey::int2[]) with ordinality k(attnum, n)
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
             order by k.n),
       array(select o.opcname from unnest(i.indclass::oid[]) with ordinality k(opclass, n)
             join pg_opclass o on o.oid = k.opclass order by k.n),
       coalesce(c.reloptions, '{}')
from pg_index i
join pg_class c on c.oid = i.indexrelid
join pg_am am on am.oid = c.relam
where i.indrelid = %s and not i.indisprimary
order by c.relname
"""
_POLICIES = """
select p.polname, p.polcmd::text, p.polpermissive,
       array(select case when r = 0 then 'public' else r::regrole::text end
             from unnest(p.polroles) r),
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
from pg_policy p where p.polrelid = %s order by p.polname
"""
_ROLES = """
select rolname, rolcanlogin, rolbypassrls, rolsuper from pg_roles
where rolname = any(%s) order by rolname
"""
_SCHEMA_USAGE = """
select r.rolname from pg_roles r
where r.rolname = any(%s) and has_schema_privilege(r.oid, %s, 'USAGE')
"""
_GRANTS = """
select grantee, privilege_type from information_schema.role_table_grants
where table_schema = %s and table_name = %s and grantee <> current_user
order by grantee, privilege_type
"""


VECTOR_METHODS = ("hnsw", "ivfflat")
TABLE_PLACEHOLDER = "{table}"
"""Index names that begin with their table's name (PostgreSQL's own naming) are kept with
this in its place, so that a table restored under another name (staging) names its
indexes after itself and describes them as the original does."""


@dataclass(frozen=True)
class Index:
    """A secondary index as re-created on restore: method, columns with their operator
    classes, unique, options; ``partial`` marks one with a predicate or expressions,
    which a restore cannot re-create from these (it says so)."""

    name: str
    method: str
    unique: bool
    partial: bool
    columns: tuple[str, ...]
    opclasses: tuple[str, ...]
    options: tuple[str, ...]

    @classmethod
    def of(cls, table: str, row: tuple[Any, ...]) -> Index:
        name, method, unique, partial, columns, opclasses, options = row
        if name.startswith(f"{table}_"):
            name = TABLE_PLACEHOLDER + name[len(table) :]
        return cls(name, method, unique, partial, tuple(columns), tuple(opclasses), tuple(options))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "unique": self.unique,
            "partial": self.partial,
            "columns": list(self.columns),
            "opclasses": list(self.opclasses),
            "options": list(self.options),
        }


class TableUnknown(EngineError):
    """No such table (or not one drconsole can protect)."""


class TableMissing(TableUnknown):
    """No table of that name in that schema."""


def describe_table(connection: Any, schema: str, table: str) -> CollectionSchema:
    """The neutral schema of ``schema.table`` as PostgreSQL describes it."""
    found = connection.execute(_TABLE, (schema, table)).fetchone()
    if found is None:
        raise TableMissing(
            f"no table {schema}.{table}", "check the schema and table names in the runbook"
        )
    oid, rls, forced, comment = found
    columns = connection.execute(_COLUMNS, (oid,)).fetchall()
    key = _primary_key(connection, oid, columns, f"{schema}.{table}")
    indexes = [Index.of(table, row) for row in connection.execute(_INDEXES, (oid,)).fetchall()]
    search = (
        _search_settings(connection)
        if any(index.method in VECTOR_METHODS for index in indexes)
        else {}
    )
    vector_indexes = {
        index.columns[0]: (
            index.method,
            index.opclasses[0],
            _options(index.options) | search.get(index.method, {}),
        )
        for index in indexes
        if index.method in VECTOR_METHODS and not index.partial
    }
    indexed = {
        index.columns[0]
        for index in indexes
        if index.method not in VECTOR_METHODS and not index.partial
    }
    vectors, sparse, fields = [], [], []
    for name, type_name, modifier, not_null, element, _ in columns:
        if name == key[0]:
            continue
        if type_name in DENSE:
            vectors.append(_dense(name, type_name, modifier, vector_indexes.get(name)))
        elif type_name == "sparsevec":
            sparse.append(SparseVectorSpec(name, _index(vector_indexes.get(name))))
        else:
            fields.append(
                FieldSpec(name, _field_type(type_name, element), not not_null, name in indexed)
            )
    policies = {
        name: {
            "command": command,
            "permissive": permissive,
            "roles": list(roles),
            "using": using,
            "with_check": with_check,
        }
        for name, command, permissive, roles, using, with_check in connection.execute(
            _POLICIES, (oid,)
        ).fetchall()
    }
    grants = tuple(
        Grant(role, privilege.lower())
        for role, privilege in connection.execute(_GRANTS, (schema, table)).fetchall()
    )
    roles = sorted(
        {grant.role for grant in grants} | {r for p in policies.values() for r in p["roles"]}
    )
    role_settings = {
        name: {"login": login, "bypass_row_level_security": bypass, "superuser": superuser}
        for name, login, bypass, superuser in connection.execute(_ROLES, (roles,)).fetchall()
    }
    return CollectionSchema(
        vectors=tuple(vectors),
        key=key[1],
        fields=tuple(fields),
        sparse_vectors=tuple(sparse),
        access=AccessPolicy(tuple(roles), grants),
        engine_config={
            ENGINE: {
                "primary_key": key[0],
                "row_level_security": {"enabled": rls, "forced": forced},
                "policies": policies,
                "roles": role_settings,
                "schema_usage": sorted(
                    role
                    for (role,) in connection.execute(_SCHEMA_USAGE, (roles, schema)).fetchall()
                ),
                "comment": comment,
                "columns": {name: type_name for name, type_name, *_ in columns},
                "column_types": {name: row[-1] for name, *row in columns},
                "not_null": [name for name, _, _, not_null, *_ in columns if not_null],
                "indexes": [index.to_json() for index in indexes],
            }
        },
    )


def _primary_key(
    connection: Any, oid: int, columns: list[tuple[Any, ...]], where: str
) -> tuple[str, KeyType]:
    names = [row[0] for row in connection.execute(_PRIMARY_KEY, (oid,)).fetchall()]
    if len(names) != 1:
        raise TableUnknown(
            f"table {where} has {'no' if not names else 'a composite'} primary key",
            "drconsole protects tables keyed by one text, integer or uuid column",
        )
    type_name = next(row[1] for row in columns if row[0] == names[0])
    if type_name not in KEY_TYPES:
        raise TableUnknown(
            f"table {where} is keyed by a {type_name} column",
            "drconsole protects tables keyed by one text, integer or uuid column",
        )
    return names[0], KEY_TYPES[type_name]


def _dense(
    name: str, type_name: str, modifier: int, index: tuple[str, str, dict[str, int]] | None
) -> VectorSpec:
    """A vector column: its dimension is the type modifier (-1: not declared)."""
    element = DENSE[type_name]
    distance = _distance(index[1]) if index else None
    default = Distance.HAMMING if element == ElementType.BIT else Distance.L2
    return VectorSpec(name, max(modifier, 0), distance or default, element, _index(index))


def _distance(opclass: str) -> Distance | None:
    measure = opclass.rsplit("_ops", 1)[0].split("_", 1)[-1]
    return OPERATOR_CLASSES.get(measure)


def _index(index: tuple[str, str, dict[str, int]] | None) -> IndexSpec | None:
    if index is None:
        return None
    method, _, options = index
    params = {INDEX_OPTIONS[key]: value for key, value in options.items() if key in INDEX_OPTIONS}
    return IndexSpec("ivf_flat" if method == "ivfflat" else method, params)


def _search_settings(connection: Any) -> dict[str, dict[str, int]]:
    """The session's ``hnsw.ef_search`` and ``ivfflat.probes`` (the database's or role's
    defaults, what the application's queries search with), by index method, in the
    neutral names. pgvector defines them once its library is loaded: a cast loads it."""
    row = connection.execute(
        "select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace "
        "where e.extname = 'vector'"
    ).fetchone()
    if row is None:
        return {}
    connection.execute(sql.SQL("select '[1]'::{}").format(sql.Identifier(row[0], "vector")))
    ef_search, probes = connection.execute(
        "select current_setting('hnsw.ef_search', true), current_setting('ivfflat.probes', true)"
    ).fetchone()
    found: dict[str, dict[str, int]] = {}
    if ef_search and ef_search.isdigit():
        found["hnsw"] = {"ef_search": int(ef_search)}
    if probes and probes.isdigit():
        found["ivfflat"] = {"probes": int(probes)}
    return found


def _options(options: list[str]) -> dict[str, int]:
    """``{m=16,ef_construction=64}`` as numbers (other options are left out)."""
    parsed = {}
    for option in options:
        key, _, value = option.partition("=")
        if value.isdigit():
            parsed[key] = int(value)
    return parsed


def _field_type(type_name: str, element: str | None) -> FieldType:
    if element is not None:
        return FieldType(SCALARS.get(element, ScalarType.STRING), array=True)
    return FieldType(SCALARS.get(type_name, ScalarType.STRING))
