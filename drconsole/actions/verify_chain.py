"""``verify_chain``: check the catalog at a depth and select the recovery point.

Selects the newest snapshot whose whole chain is intact (or the one the step names, or the
newest at or before a time) and records ``snapshot.selected`` with the chain, recovery
point and depth. With ``fallback: false`` the newest snapshot must itself be intact.
"""

from __future__ import annotations

from drconsole.actions.base import (
    FAILED,
    SUCCEEDED,
    ActionContext,
    Finding,
    Outcome,
    Progress,
    ProgressCallback,
    ResultTable,
)
from drconsole.actions.sources import open_catalog
from drconsole.catalog.select import select_recovery_point
from drconsole.catalog.verify import Depth
from drconsole.errors import IntegrityError
from drconsole.timefmt import format_duration, format_utc, parse_utc, utc_now


def run_verify_chain(context: ActionContext, progress: ProgressCallback) -> Outcome:
    params = context.params
    store, view = open_catalog(context)
    depth = Depth.parse(params.get("depth", "sizes"))
    at_or_before = parse_utc(params["at_or_before"]) if params.get("at_or_before") else None

    def hashed(done: int, total: int) -> None:
        progress(Progress(done, total, "bytes", f"verifying at depth {depth}"))

    try:
        selection = select_recovery_point(
            view,
            store,
            depth,
            at_or_before=at_or_before,
            snapshot_id=params.get("snapshot") or context.requested_snapshot,
            progress=hashed,
            cancel=context.cancel,
        )
    except IntegrityError as error:
        return Outcome(FAILED, error.message, {"hint": error.hint})
    for skipped in selection.skipped:
        context.report_finding(
            Finding("chain_intact", False, skipped["snapshot_id"], "intact", skipped["reason"])
        )
    for manifest in selection.chain:
        context.report_finding(
            Finding("chain_intact", True, manifest.id, "intact", f"intact at {depth}")
        )
    age = (utc_now() - selection.manifest.recovery_point).total_seconds()
    table = ResultTable(
        "chain",
        ("snapshot", "kind", "recovery point (UTC)", "collections"),
        tuple(
            (m.id, m.kind, format_utc(m.recovery_point), ", ".join(c.name for c in m.collections))
            for m in selection.chain
        ),
    )
    if selection.skipped and params.get("fallback") is False:
        newest = selection.skipped[0]
        return Outcome(
            FAILED,
            f"newest snapshot {newest['snapshot_id']} is not intact: {newest['reason']}",
            {"skipped": selection.skipped},
            [table],
        )
    context.select_snapshot(selection.to_record())
    rpo = context.runbook.rpo_s
    verdict = (
        ""
        if rpo is None
        else (" (within RPO)" if age <= rpo else f" (OVER the RPO of {format_duration(rpo)})")
    )
    fallback = (
        f"; passed over {len(selection.skipped)} newer broken snapshot(s)"
        if selection.skipped
        else ""
    )
    point = format_utc(selection.manifest.recovery_point)
    return Outcome(
        SUCCEEDED,
        f"selected {selection.manifest.id}, recovery point {point}, "
        f"age {format_duration(age)}{verdict}{fallback}",
        {
            "snapshot_id": selection.manifest.id,
            "chain": [m.id for m in selection.chain],
            "depth": str(depth),
            "seed": selection.verification.seed,
            "skipped": selection.skipped,
            "age_s": round(age, 3),
        },
        [table],
    )
