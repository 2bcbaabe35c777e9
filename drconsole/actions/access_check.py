"""Isolation as the database enforces it, for engines with access policies
(``Capability.ACCESS_POLICIES``: PostgreSQL's grants and row-level security).

Two checks. The target's access state against the snapshot's, both ways: a grant or a
policy missing, changed (its roles, its USING or WITH CHECK expression) or added (a
permissive policy added widens what a role sees), row-level security disabled; each
named. And the behaviour: for every tenant, acting as the application's role with the
tenant's setting (``permissions: {tenant_role, tenant_setting}``), the rows the role can
count and the ids an unfiltered similarity query returns are that tenant's and no
other's, and all of them: the database filters, drconsole does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from drconsole.actions.base import Finding
from drconsole.actions.truth import Truth
from drconsole.engines.adapter import EngineAdapter
from drconsole.errors import DrconsoleError
from drconsole.model.schema import CollectionSchema

NAMED = 20


def access_findings(
    name: str, wanted: CollectionSchema, current: CollectionSchema, adapter: EngineAdapter
) -> list[Finding]:
    """The target's grants and access settings compared with the snapshot's."""
    expected = set(wanted.access.grants)
    actual = set(current.access.grants)
    found = [
        Finding(
            "grants",
            expected == actual,
            f"{name}[grants]",
            sorted(f"{g.privilege} to {g.role}" for g in expected),
            sorted(f"{g.privilege} to {g.role}" for g in actual),
            {
                "missing": sorted(f"{g.privilege} to {g.role}" for g in expected - actual),
                "added": sorted(f"{g.privilege} to {g.role}" for g in actual - expected),
            },
        )
    ]
    theirs = wanted.engine_config.get(adapter.name) or {}
    ours = current.engine_config.get(adapter.name) or {}
    for key in adapter.access_config:
        problems = _compared(key, theirs.get(key), ours.get(key))
        found.append(
            Finding(
                key,
                not problems,
                f"{name}[{key.replace('_', ' ')}]",
                theirs.get(key),
                ours.get(key),
                {"problems": problems},
            )
        )
    return found


def _compared(path: str, wanted: Any, actual: Any) -> list[str]:
    """Every difference, both ways, by name: ``policies.tenant_rows dropped``,
    ``policies.all_rows added``, ``policies.tenant_rows.using is "true", not ...``."""
    if isinstance(wanted, dict) and isinstance(actual, dict):
        found = [f"{path}.{key} dropped" for key in sorted(set(wanted) - set(actual))]
        found += [f"{path}.{key} added" for key in sorted(set(actual) - set(wanted))]
        for key in sorted(set(wanted) & set(actual)):
            found += _compared(f"{path}.{key}", wanted[key], actual[key])
        return found
    if wanted != actual:
        return [f"{path} is {actual!r}, not {wanted!r}"]
    return []


def role_findings(
    engine: Any,
    name: str,
    truth: Truth,
    *,
    role: str,
    setting: str,
    vectors: np.ndarray,
    k: int,
) -> list[Finding]:
    """For each tenant: as ``role`` with ``setting`` set to the tenant, the rows counted
    are the tenant's count, and queries return none of another tenant's records."""
    found = []
    for tenant, allowed in sorted(truth.tenant_ids.items()):
        subject = f"{name}[as role {role}, {setting}={tenant}]"
        try:
            count, results = engine.visible_as(name, role, {setting: tenant}, vectors, k)
        except DrconsoleError as error:
            found.append(
                Finding(
                    "visible_as_role", False, subject, len(allowed), None, {"error": error.message}
                )
            )
            continue
        strangers = sorted({i for ids in results for i in allowed.outside(ids)})
        found.append(
            Finding(
                "visible_as_role",
                count == len(allowed) and not strangers,
                subject,
                len(allowed),
                count,
                {
                    "ids": strangers[:NAMED],
                    "belong_to": {i: truth.tenant_of(i) for i in strangers[:NAMED]},
                    "tenant": tenant,
                    "queries": len(vectors),
                    "why": "rows of other tenants visible"
                    if strangers
                    else (
                        ""
                        if count == len(allowed)
                        else f"sees {count} rows, the tenant has {len(allowed)}"
                    ),
                },
            )
        )
    return found
