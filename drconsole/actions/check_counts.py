"""``check_counts``: the restored collections hold what the snapshot's final state holds.

Per collection: the record count (naming missing and unexpected ids when it differs), the
count per tenant, the dimension, distance and index settings, the content of every record
(or a seeded share: ``content: sample:N%``) read back and compared with the snapshot field
by field, that a seeded sample of records has exactly the snapshot's metadata keys (none
lost, none gained), and for each runbook filter that the target and the snapshot match as
many records.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from drconsole.actions.base import (
    FAILED,
    SUCCEEDED,
    ActionContext,
    Finding,
    Outcome,
    ProgressCallback,
    ResultTable,
)
from drconsole.actions.content import ContentCheck, ContentDepth
from drconsole.actions.sources import open_catalog, open_target, restore_order, selected_chain
from drconsole.actions.truth import KeySet, Truth, TruthBuilder, TruthSpec, id_keys, names_of
from drconsole.catalog.manifest import CollectionEntry
from drconsole.catalog.plan import RestorePlan
from drconsole.engines.base import Engine
from drconsole.model.filters import Compare, parse_where
from drconsole.model.schema import CollectionSchema

NAMED = 20
INDEX_KEYS = ("m", "ef_construction")
"""The index parameters compared: the ones that shape the graph an engine builds."""


def run_check_counts(context: ActionContext, progress: ProgressCallback) -> Outcome:
    store, view = open_catalog(context)
    chain = selected_chain(context, store, view)
    plan = RestorePlan(store, chain)
    permissions = {**chain[-1].permissions, **context.runbook.permissions}
    tenant_field = context.params.get("tenant_field") or permissions.get("tenant_field")
    seed = int(context.params.get("seed", 0))
    depth = ContentDepth.parse(context.params.get("content", "full"))
    engine = open_target(context)
    findings: list[Finding] = []
    try:
        for name in restore_order(context, chain[-1]):
            entry = chain[-1].collection(name)
            assert entry is not None
            filters = [
                {**f, "tree": parse_where(f["where"])}
                for f in context.runbook.filters
                if not f["collections"] or name in f["collections"]
            ]
            spec = TruthSpec(
                tenant_field,
                permissions.get("acl_field"),  # not checked here: gathered for check_permissions
                tuple((f["name"], f["tree"]) for f in filters),
                int(context.params.get("sample", 200)),
                seed,
            )
            content = ContentCheck(
                name, engine, depth, seed=seed, ulps=engine.vector_ulps(entry.schema.distance)
            )
            truth = _read_once(context, plan, name, spec=spec, content=content)
            findings += _collection_findings(
                engine,
                name,
                entry=entry,
                truth=truth,
                tenant_field=tenant_field,
                filters=filters,
                plan=plan,
            )
            findings.append(_content_finding(content, name))
    finally:
        engine.close()
    for finding in findings:
        context.report_finding(finding)
    failed = [finding for finding in findings if not finding.passed]
    rows = tuple(  # failures first, the verdict first: what a reader looks for
        ("ok" if f.passed else "MISMATCH", f.subject, f.check, _short(f.expected), _short(f.actual))
        for f in sorted(findings, key=lambda f: f.passed)
    )
    table = ResultTable(
        "counts and schema", ("result", "collection", "check", "expected", "actual"), rows
    )
    if failed:
        first = failed[0]
        return Outcome(
            FAILED,
            f"{len(failed)} of {len(findings)} checks failed; first: {first.subject} "
            f"{first.check} expected {_short(first.expected)}, got {_short(first.actual, 160)}",
            {"failed": [f.__dict__ for f in failed]},
            [table],
        )
    return Outcome(
        SUCCEEDED,
        f"all {len(findings)} count, schema and filter checks match the snapshot",
        {"checks": len(findings)},
        [table],
    )


def _read_once(
    context: ActionContext,
    plan: RestorePlan,
    name: str,
    *,
    spec: TruthSpec,
    content: ContentCheck,
) -> Truth:
    """One pass over the collection's final state: the content compared batch by batch,
    and the truth gathered on the way (kept for the run's later gates), unless an earlier
    step of the run gathered one that covers it."""
    chain_ids = [manifest.id for manifest in plan.chain]
    kept = context.shared.kept_truth(chain_ids, name, spec)
    builder = TruthBuilder(name, spec)
    for batch in plan.batches(name):
        content.add(batch)
        if kept is None:
            builder.add(batch)
    if kept is not None:
        return kept
    truth = builder.finish()
    context.shared.keep_truth(chain_ids, name, spec, truth)
    return truth


def _collection_findings(
    engine: Engine,
    name: str,
    *,
    entry: CollectionEntry,
    truth: Truth,
    tenant_field: str | None,
    filters: list[dict[str, Any]],
    plan: RestorePlan,
) -> list[Finding]:
    found: list[Finding] = []
    current = engine.get_collection(name)
    if current is None:
        return [Finding("collection", False, name, "present", "missing")]
    actual = engine.count(name)
    count = Finding("count", actual == truth.count, name, truth.count, actual)
    if not count.passed:
        target_ids = [record_id for ids, _ in engine.scan_metadata(name) for record_id in ids]
        extra = sorted(truth.ids.outside(target_ids))
        present = KeySet(id_keys(target_ids))
        missing = KeySet(truth.ids.keys[~np.isin(truth.ids.keys, present.keys)])
        count = Finding(
            "count",
            False,
            name,
            truth.count,
            actual,
            {
                "missing_ids": names_of(plan, name, missing, NAMED) if len(missing) else [],
                "missing": len(missing),
                "unexpected_ids": extra[:NAMED],
                "unexpected": len(extra),
            },
        )
    found.append(count)
    if entry.counts["total_after_apply"] != truth.count:
        found.append(
            Finding(
                "manifest_count",
                False,
                name,
                entry.counts["total_after_apply"],
                truth.count,
                {"note": "the snapshot's own count disagrees with its data"},
            )
        )
    for tenant, ids in sorted(truth.tenant_ids.items()):
        tenant_count = (
            engine.count(name, Compare(tenant_field, "eq", tenant)) if tenant_field else 0
        )
        found.append(
            Finding(
                "tenant_count",
                tenant_count == len(ids),
                f"{name}[{tenant}]",
                len(ids),
                tenant_count,
                {"tenant": tenant, "field": tenant_field},
            )
        )
    wanted, have = entry.schema, current.schema
    found.append(
        Finding("distance", have.distance == wanted.distance, name, wanted.distance, have.distance)
    )
    found.append(
        Finding(
            "dimension",
            have.dimension in (wanted.dimension, 0) or not truth.count,
            name,
            wanted.dimension,
            have.dimension,
        )
    )
    if len(wanted.vectors) > 1 or wanted.sparse_vectors:
        want_vectors, have_vectors = _vector_layout(wanted), _vector_layout(have)
        found.append(
            Finding("vectors", want_vectors == have_vectors, name, want_vectors, have_vectors)
        )
    if wanted.aliases or have.aliases:
        want_aliases, have_aliases = sorted(wanted.aliases), sorted(have.aliases)
        found.append(
            Finding("aliases", want_aliases == have_aliases, name, want_aliases, have_aliases)
        )
    if wanted.tenancy.tenants:
        want_tenants = sorted(tenant.name for tenant in wanted.tenancy.tenants)
        have_tenants = sorted(tenant.name for tenant in have.tenancy.tenants)
        found.append(
            Finding("tenants", want_tenants == have_tenants, name, want_tenants, have_tenants)
        )
    want_index, have_index = _index_settings(wanted), _index_settings(have)
    found.append(Finding("index", want_index == have_index, name, want_index, have_index))
    found.append(_sample_finding(engine, name, truth))
    for item in filters:
        matched = engine.count(name, item["tree"])
        expected = truth.filter_counts[item["name"]]
        found.append(
            Finding(
                "filter_count",
                matched == expected,
                f"{name}[{item['name']}]",
                expected,
                matched,
                {"filter": item["name"], "where": item["where"]},
            )
        )
    return found


def _vector_layout(schema: CollectionSchema) -> list[str]:
    """Each vector's name, dimension and distance (``image: 512 l1``; ``bm25: sparse``)."""
    return [f"{v.name}: {v.dimension} {v.distance.value}" for v in schema.vectors] + [
        f"{v.name}: sparse" for v in schema.sparse_vectors
    ]


def _index_settings(schema: CollectionSchema) -> dict[str, object]:
    index = schema.index
    if index is None:
        return {}
    return {"kind": index.kind} | {k: v for k, v in index.params.items() if k in INDEX_KEYS}


def _sample_finding(engine: Engine, name: str, truth: Truth) -> Finding:
    """Every sampled record exists with exactly the metadata keys the snapshot had: none
    lost, and none gained (a key that appeared is as wrong as one that went)."""
    ids = [record_id for record_id, _ in truth.sample]
    stored = engine.get_metadata(name, ids) if ids else {}
    missing_records = [record_id for record_id in ids if record_id not in stored]
    lost_fields: dict[str, list[str]] = {}
    appeared_fields: dict[str, list[str]] = {}
    for record_id, metadata in truth.sample:
        if record_id in stored:
            want, have = set(metadata or {}), set(stored[record_id] or {})
            if gone := sorted(want - have):
                lost_fields[record_id] = gone
            if new := sorted(have - want):
                appeared_fields[record_id] = new
    passed = not missing_records and not lost_fields and not appeared_fields
    return Finding(
        "sample_fields",
        passed,
        name,
        f"{len(ids)} sampled records with exactly their fields",
        f"{len(missing_records)} missing, {len(lost_fields)} lost fields, "
        f"{len(appeared_fields)} with fields that appeared",
        {
            "missing_ids": missing_records[:NAMED],
            "lost_fields": dict(list(lost_fields.items())[:NAMED]),
            "appeared_fields": dict(list(appeared_fields.items())[:NAMED]),
        },
    )


def _content_finding(content: ContentCheck, name: str) -> Finding:
    result, depth, seed, ulps = content.result, content.depth, content.seed, content.ulps
    named = dict(list(result.differ.items())[:NAMED])
    first = next(iter(named.items()), None)
    example = f"; {first[0]}: {first[1][0]}" if first else ""
    return Finding(
        "content",
        result.passed,
        name,
        f"{result.compared} records ({depth}) as in the snapshot",
        f"{len(result.missing)} missing, {len(result.differ)} differ{example}",
        {
            "depth": str(depth),
            "seed": seed,
            "compared": result.compared,
            "vector_ulps_allowed": ulps,
            "missing_ids": result.missing[:NAMED],
            "differ": named,
            "ids": list(named) + result.missing[: max(0, NAMED - len(named))],
        },
    )


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
