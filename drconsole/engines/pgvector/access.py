"""A table's access state, re-created last in a restore: its roles (made when missing,
without LOGIN and without a password, which drconsole never has: the operator sets
them), their USAGE of the table's schema, its GRANTs, row-level security (enabled,
forced) and its policies.

Names go to SQL as identifiers, privileges and commands from fixed lists. A policy's
USING and WITH CHECK are SQL expressions, so they are text that PostgreSQL runs: they are
only given here from a manifest the catalog key authenticated (the caller decides), and
each statement is sent through the extended query protocol, which runs one statement and
nothing after it.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from drconsole.model.schema import AccessPolicy

PRIVILEGES = {"select", "insert", "update", "delete", "truncate", "references", "trigger"}
COMMANDS = {"r": "select", "a": "insert", "w": "update", "d": "delete", "*": "all"}
_ROLE_EXISTS = "select 1 from pg_roles where rolname = %s"
_POLICY_EXISTS = """
select 1 from pg_policy p join pg_class c on c.oid = p.polrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relname = %s and p.polname = %s
"""


class AccessRefused(ValueError):
    """Recorded access state that does not have a shape this module re-creates."""


def restore_access(
    connection: Any, schema: str, table: str, access: AccessPolicy, config: dict[str, Any]
) -> list[str]:
    """Make roles, grants, row-level security and policies as recorded; what the
    operator must still do (roles made without login or password), for people."""
    notes = []
    target = sql.Identifier(schema, table)
    for role in access.roles:
        if role == "public" or connection.execute(_ROLE_EXISTS, (role,)).fetchone():
            continue
        connection.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
        wanted = (config.get("roles") or {}).get(role) or {}
        if wanted.get("login"):
            notes.append(
                f"role {role} was made without login and password: set them "
                f"(ALTER ROLE {role} LOGIN PASSWORD ...)"
            )
    for role in config.get("schema_usage") or []:
        connection.execute(
            sql.SQL("grant usage on schema {} to {}").format(
                sql.Identifier(schema), sql.Identifier(str(role))
            )
        )
    for grant in access.grants:
        if grant.privilege not in PRIVILEGES:
            raise AccessRefused(f"privilege {grant.privilege!r} of role {grant.role}")
        connection.execute(
            sql.SQL("grant {} on {} to {}").format(
                sql.SQL(grant.privilege), target, _grantee(grant.role)
            )
        )
    security = config.get("row_level_security") or {}
    if security.get("enabled"):
        connection.execute(sql.SQL("alter table {} enable row level security").format(target))
    if security.get("forced"):
        connection.execute(sql.SQL("alter table {} force row level security").format(target))
    for name, policy in (config.get("policies") or {}).items():
        if connection.execute(_POLICY_EXISTS, (schema, table, name)).fetchone():
            continue
        with connection.cursor(binary=True) as cursor:  # extended protocol: one statement
            cursor.execute(_create_policy(target, str(name), policy))
    return notes


def _grantee(role: str) -> sql.Composable:
    return sql.SQL("public") if role == "public" else sql.Identifier(role)


def _create_policy(target: sql.Composable, name: str, policy: dict[str, Any]) -> sql.Composable:
    command = COMMANDS.get(str(policy.get("command")))
    if command is None:
        raise AccessRefused(f"policy {name} with command {policy.get('command')!r}")
    roles = [str(role) for role in policy.get("roles") or ["public"]]
    parts = [
        sql.SQL("create policy {} on {} as {} for {} to {}").format(
            sql.Identifier(name),
            target,
            sql.SQL("permissive" if policy.get("permissive", True) else "restrictive"),
            sql.SQL(command),
            sql.SQL(", ").join(_grantee(role) for role in roles),
        )
    ]
    for clause, key in (("using", "using"), ("with check", "with_check")):
        if policy.get(key) is not None:
            parts.append(sql.SQL(f" {clause} ({{}})").format(sql.SQL(str(policy[key]))))
    return sql.Composed(parts)
