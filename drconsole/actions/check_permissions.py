"""``check_permissions``: the restored store still keeps tenants and ACL groups apart.

Compared with the snapshot's final state: every record carries its permission fields (a
record without its ACL field may become visible to everyone); no record appears under a
tenant or group it did not belong to; counts per tenant match; and filtered similarity
queries per tenant and per group (random vectors, and the golden set's) return only
records that belong there. Every violation names the ids, the tenant or group, and the query.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from drconsole.actions.access_check import access_findings, role_findings
from drconsole.actions.base import (
    FAILED,
    SUCCEEDED,
    ActionContext,
    Finding,
    Outcome,
    ProgressCallback,
    ResultTable,
)
from drconsole.actions.golden_source import golden_vectors, load_run_golden
from drconsole.actions.sources import (
    open_catalog,
    open_target,
    restore_order,
    selected_chain,
    target_adapter,
)
from drconsole.actions.truth import (
    EMPTY,
    KeySet,
    Truth,
    TruthSpec,
    final_state_truth,
    permission_values,
)
from drconsole.catalog.plan import RestorePlan
from drconsole.engines.adapter import Capability, EngineAdapter
from drconsole.engines.base import Engine
from drconsole.errors import DrconsoleError
from drconsole.golden import GoldenSet
from drconsole.model.filters import Compare, Filter, to_where
from drconsole.model.schema import CollectionSchema
from drconsole.wording import plural

NAMED = 20


def run_check_permissions(context: ActionContext, progress: ProgressCallback) -> Outcome:
    store, view = open_catalog(context)
    chain = selected_chain(context, store, view)
    permissions = {**chain[-1].permissions, **context.runbook.permissions}
    tenant_field, acl_field = permissions.get("tenant_field"), permissions.get("acl_field")
    adapter = target_adapter(context)
    enforced = adapter.can(Capability.ACCESS_POLICIES)
    if not tenant_field and not acl_field and not enforced:
        raise DrconsoleError(
            "no permission fields to check",
            "set permissions: {tenant_field: ..., acl_field: ...} in the runbook",
        )
    principals = permissions.get("principals") or []
    rng = np.random.default_rng(int(context.params.get("seed", 0)))
    per_group = int(context.params.get("queries_per_group", 5))
    k = int(context.params.get("k", 10))
    plan = RestorePlan(store, chain)
    golden = load_run_golden(context, store, view)
    engine = open_target(context)
    findings: list[Finding] = []
    try:
        for name in restore_order(context, chain[-1]):
            entry = chain[-1].collection(name)
            assert entry is not None
            if enforced:
                findings += _enforced(engine, adapter, name, entry.schema)
            if not tenant_field and not acl_field:
                continue  # the database's own access state is all there is to check
            truth = _truth(context, plan, name, TruthSpec(tenant_field, acl_field))
            groups = {
                g: ids for g, ids in truth.group_ids.items() if not principals or g in principals
            }
            vectors = _query_vectors(golden, name, entry.schema.dimension, per_group, rng)
            check = _Checker(engine, name, truth, vectors, k)
            findings += check.fields_and_membership(
                tenant_field, acl_field, groups, required=bool(permissions.get("require_fields"))
            )
            findings += [
                check.queries("tenant", tenant, Compare(tenant_field, "eq", tenant), ids)
                for tenant, ids in sorted(truth.tenant_ids.items())
            ]
            declared = entry.schema.field(acl_field or "")
            acl_type = str(declared.type) if declared else "string[]"
            findings += [
                check.queries("acl group", group, _group_filter(acl_field, acl_type, group), ids)
                for group, ids in sorted(groups.items())
            ]
            if enforced and permissions.get("tenant_role"):
                findings += _as_role(check, permissions)
    finally:
        engine.close()
    for finding in findings:
        context.report_finding(finding)
    failed = [f for f in findings if not f.passed]
    rows = tuple(  # failures first, the verdict first: what a reader looks for
        ("ok" if f.passed else f"VIOLATION: {_ids(f)}", f.subject, f.check)
        for f in sorted(findings, key=lambda f: f.passed)
    )
    table = ResultTable("permissions and isolation", ("result", "subject", "check"), rows)
    if failed:
        first = failed[0]
        return Outcome(
            FAILED,
            f"{plural(len(failed), 'permission violation')}; first: {first.subject} {first.check}: "
            f"{_ids(first)}",
            {"violations": [f.__dict__ for f in failed]},
            [table],
        )
    return Outcome(
        SUCCEEDED,
        f"tenants and ACL groups kept apart: {len(findings)} checks passed",
        {"checks": len(findings)},
        [table],
    )


def _enforced(
    engine: Engine, adapter: EngineAdapter, name: str, wanted: CollectionSchema
) -> list[Finding]:
    """The database's own access state (grants, row-level security, policies, schema
    usage) against the snapshot's."""
    current = engine.get_collection(name)
    if current is None:
        raise DrconsoleError(f"collection {name} is not in the target")
    return access_findings(name, wanted, current.schema, adapter)


def _as_role(check: _Checker, permissions: dict[str, Any]) -> list[Finding]:
    """What the application's role sees as each tenant (``tenant_role``, with the
    tenant in ``tenant_setting``)."""
    setting = permissions.get("tenant_setting")
    if not setting or not permissions.get("tenant_field"):
        raise DrconsoleError(
            "permissions.tenant_role needs permissions.tenant_field and tenant_setting",
            "name the tenant field and the setting the policies read it from (e.g. app.tenant)",
        )
    return role_findings(
        check.engine,
        check.name,
        check.truth,
        role=str(permissions["tenant_role"]),
        setting=str(setting),
        vectors=check.vectors,
        k=check.k,
    )


def _truth(context: ActionContext, plan: RestorePlan, name: str, spec: TruthSpec) -> Truth:
    """The truth the counts gate gathered for this run's chain, else gathered now."""
    chain_ids = [manifest.id for manifest in plan.chain]
    truth = context.shared.kept_truth(chain_ids, name, spec)
    if truth is None:
        truth = final_state_truth(plan, name, spec)
        context.shared.keep_truth(chain_ids, name, spec, truth)
    return truth


class _Checker:
    def __init__(
        self, engine: Engine, name: str, truth: Truth, vectors: np.ndarray, k: int
    ) -> None:
        self.engine = engine
        self.name = name
        self.truth = truth
        self.vectors = vectors
        self.k = k

    def fields_and_membership(
        self,
        tenant_field: str | None,
        acl_field: str | None,
        groups: dict[str, KeySet],
        *,
        required: bool,
    ) -> list[Finding]:
        """One full metadata scan of the target: records that lost a permission field
        they had in the snapshot (or lack one at all, when the runbook requires the
        fields), records under a tenant or group they did not belong to, counts per
        tenant."""
        missing: dict[str, list[str]] = {}
        tenants: dict[str, set[str]] = {}
        members: dict[str, set[str]] = {}
        labels = [label for label in (tenant_field, acl_field) if label]
        for ids, metadatas in self.engine.scan_metadata(self.name):
            lacked = {label: self.truth.lacking.get(label, EMPTY).has(ids) for label in labels}
            for row, (record_id, metadata) in enumerate(zip(ids, metadatas, strict=True)):
                for label in labels:
                    if (metadata is None or metadata.get(label) is None) and (
                        required or not lacked[label][row]
                    ):
                        missing.setdefault(label, []).append(record_id)
                for tenant in permission_values(metadata, tenant_field):
                    tenants.setdefault(tenant, set()).add(record_id)
                for group in permission_values(metadata, acl_field):
                    members.setdefault(group, set()).add(record_id)
        found = [
            Finding(
                "permission_field_present",
                not missing.get(label),
                f"{self.name}.{label}",
                0,
                len(missing.get(label, [])),
                {
                    "ids": sorted(missing.get(label, []))[:NAMED],
                    "why": "a record without it may become visible to everyone",
                    "lacking_in_the_snapshot": len(self.truth.lacking.get(label, EMPTY)),
                    "required": required,
                },
            )
            for label in (tenant_field, acl_field)
            if label
        ]
        for tenant, expected in sorted(self.truth.tenant_ids.items()):
            strangers = sorted(expected.outside(tenants.get(tenant, set())))
            found.append(
                Finding(
                    "tenant_membership",
                    not strangers,
                    f"{self.name}[tenant {tenant}]",
                    0,
                    len(strangers),
                    {
                        "ids": strangers[:NAMED],
                        "tenant": tenant,
                        "belong_to": {i: self.truth.tenant_of(i) for i in strangers[:NAMED]},
                        "query": f"where {tenant_field} == {tenant!r}",
                    },
                )
            )
            have = len(tenants.get(tenant, set()))
            found.append(
                Finding(
                    "tenant_count",
                    have == len(expected),
                    f"{self.name}[tenant {tenant}]",
                    len(expected),
                    have,
                    {"tenant": tenant},
                )
            )
        for group, expected in sorted(groups.items()):
            strangers = sorted(expected.outside(members.get(group, set())))
            found.append(
                Finding(
                    "group_membership",
                    not strangers,
                    f"{self.name}[group {group}]",
                    0,
                    len(strangers),
                    {
                        "ids": strangers[:NAMED],
                        "group": group,
                        "query": f"where {acl_field} contains {group!r}",
                    },
                )
            )
        return found

    def queries(self, kind: str, value: str, where: Filter, allowed: KeySet) -> Finding:
        """Filtered similarity queries for one tenant or group return only its records."""
        leaks: dict[str, str] = {}
        for number, vector in enumerate(self.vectors, start=1):
            result = self.engine.query(self.name, vector[None, :], self.k, where)[0]
            for record_id in allowed.outside(result.ids):
                leaks.setdefault(record_id, f"query #{number} where {to_where(where)}")
        return Finding(
            "filtered_queries",
            not leaks,
            f"{self.name}[{kind} {value}]",
            0,
            len(leaks),
            {
                "ids": sorted(leaks)[:NAMED],
                kind.replace(" ", "_"): value,
                "queries": len(self.vectors),
                "first_query": next(iter(leaks.values()), None),
            },
        )


def _group_filter(acl_field: str, field_type: str, group: str) -> Filter:
    """ACL groups held in an array match with contains, a single value with equality."""
    return Compare(acl_field, "contains" if field_type.endswith("[]") else "eq", group)


def _query_vectors(
    golden: GoldenSet | None, collection: str, dimension: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Random unit vectors, plus the golden set's vectors for this collection if any
    (none for a collection the snapshot holds no record of: its dimension is unknown)."""
    if not dimension:
        return np.zeros((0, 0), dtype=np.float32)
    random = rng.standard_normal((count, dimension)).astype(np.float32)
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    chosen = golden_vectors(golden, collection, count)
    return np.concatenate([random, chosen]) if len(chosen) else random


def _ids(finding: Finding) -> str:
    """What a violation is: the ids it concerns, or the differences it found."""
    named = finding.details.get("problems") or [
        f"{kind} {item}"
        for kind in ("missing", "added")
        for item in finding.details.get(kind) or []
    ]
    if named:
        return "; ".join(named[:3]) + (" ..." if len(named) > 3 else "")
    if finding.details.get("error"):
        return str(finding.details["error"])
    ids = finding.details.get("ids") or []
    if not ids and finding.details.get("why"):
        return str(finding.details["why"])
    return (
        f"{plural(finding.actual, 'id')} " + ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
    )
