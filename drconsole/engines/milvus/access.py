"""Milvus's access state for one collection (RBAC): the roles granted privileges on it in
its database, each grant, and the users holding those roles.

The neutral policy keeps the roles and grants (``Search to reader``); the users of each
role go to ``engine_config["milvus"]["users"]``. Restored after the data: missing roles
are made and granted, missing users are made and given their roles. Passwords are never
read (Milvus gives none out) nor stored: a user drconsole makes gets a random password
nobody keeps, and the restore names every such user, who needs a new one. Grants on every
collection (``*``) and global grants belong to no collection: they are not captured here.
"""

from __future__ import annotations

import secrets
from typing import Any

from pymilvus import MilvusClient

from drconsole.model.schema import AccessPolicy, Grant

COLLECTION = "Collection"


def read_access(
    client: MilvusClient, database: str, name: str
) -> tuple[AccessPolicy, dict[str, list[str]]]:
    """The collection's roles and grants, and the users of each of those roles."""
    grants: set[Grant] = set()
    for role in client.list_roles():
        described = client.describe_role(role, db_name=database)
        for item in described.get("privileges") or []:
            if item.get("object_type") == COLLECTION and item.get("object_name") == name:
                grants.add(Grant(role, str(item["privilege"])))
    roles = sorted({grant.role for grant in grants})
    users: dict[str, list[str]] = {role: [] for role in roles}
    if roles:
        for user in client.list_users():
            for role in client.describe_user(user).get("roles") or ():
                if role in users:
                    users[role].append(user)
    policy = AccessPolicy(
        roles=tuple(roles), grants=tuple(sorted(grants, key=lambda g: (g.role, g.privilege)))
    )
    return policy, {role: sorted(members) for role, members in users.items()}


def restore_access(
    client: MilvusClient,
    database: str,
    name: str,
    policy: AccessPolicy,
    users: dict[str, Any],
) -> list[str]:
    """Make what of ``policy`` and ``users`` the target lacks; notes for the operator."""
    have_roles = set(client.list_roles())
    for role in policy.roles:
        if role not in have_roles:
            client.create_role(role)
    for grant in policy.grants:
        client.grant_privilege(grant.role, COLLECTION, grant.privilege, name, db_name=database)
    have_users = set(client.list_users())
    notes = []
    for role, members in sorted(users.items()):
        for user in members:
            if user not in have_users:
                client.create_user(user, secrets.token_urlsafe(24))
                have_users.add(user)
                notes.append(
                    f"user {user} was made with a random password nobody keeps: set its "
                    "password (Milvus gives none out, and drconsole stores none)"
                )
            if role not in (client.describe_user(user).get("roles") or ()):
                client.grant_role(user, role)
    return notes
