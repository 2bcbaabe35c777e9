"""``verify_chain``: check the catalog at a depth and select the recovery point.

Only snapshots of the runbook's own source are candidates. Selects the newest restorable
one (authentic, not dated in the future, its whole chain intact), or the one the step
names, or the newest at or before a time, and records ``snapshot.selected`` with the
chain, recovery point, depth and whether it is signed. With ``fallback: false`` the
newest snapshot must itself be restorable; with ``fallback: true`` the newer ones passed
over are listed with the reason in the result (and the record).
"""

from __future__ import annotations

from collections.abc import Callable

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
from drconsole.actions.physical_files import ToolChecks, tool_checks
from drconsole.actions.sources import open_catalog, runbook_source
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.select import Selection, select_recovery_point
from drconsole.catalog.source import describe_source
from drconsole.catalog.verify import Depth
from drconsole.errors import IntegrityError
from drconsole.timefmt import format_duration, format_utc, parse_utc, utc_now
from drconsole.wording import plural


def run_verify_chain(context: ActionContext, progress: ProgressCallback) -> Outcome:
    params = context.params
    store, view = open_catalog(context, fresh=True)
    depth = Depth.parse(params.get("depth", "sizes"))
    at_or_before = parse_utc(params["at_or_before"]) if params.get("at_or_before") else None
    source = runbook_source(context.runbook)
    wanted = params.get("snapshot") or context.requested_snapshot
    impact = context.impact_start
    after_impact = params.get("after_impact_reason")
    if impact is not None and not after_impact:
        at_or_before = min(at_or_before, impact) if at_or_before else impact
        if wanted and wanted in view.snapshots and view.snapshots[wanted].recovery_point > impact:
            return Outcome(
                FAILED,
                f"snapshot {wanted}'s recovery point is after the impact started "
                f"({format_utc(impact)}): it may hold the damage",
                {"hint": "choose an earlier one, or give verify_chain after_impact_reason"},
            )

    def hashed(done: int, total: int) -> None:
        progress(Progress(done, total, "bytes", f"verifying at depth {depth}"))

    try:
        source.check(list(view.snapshots.values()), view.url)
        if wanted and wanted in view.snapshots and not source.accepts(view.snapshots[wanted]):
            raise IntegrityError(
                f"snapshot {wanted} is of {describe_source(view.snapshots[wanted].source)}, "
                f"not of this runbook's source ({source.describe()})",
                "choose a snapshot of this runbook's source",
            )

        def select(where: Callable[[Manifest], bool]) -> Selection:
            return select_recovery_point(
                view,
                store,
                depth,
                at_or_before=at_or_before,
                snapshot_id=wanted,
                where=where,
                allow_unsigned=bool(context.runbook.catalog.get("allow_unsigned")),
                progress=hashed,
                cancel=context.cancel,
            )

        no_physical = None
        if context.runbook.prefer == "physical" and not wanted:
            try:
                selection = select(
                    lambda manifest: source.accepts(manifest) and manifest.is_physical
                )
            except IntegrityError as error:
                no_physical = error.message
                selection = select(source.accepts)
        else:
            selection = select(source.accepts)
    except IntegrityError as error:
        return Outcome(FAILED, error.message, {"hint": error.hint})
    tools = tool_checks(store, selection.chain) if depth.name == "full" else ToolChecks()
    if tools.problems:
        return Outcome(
            FAILED,
            "; ".join(f"{item}: {problem}" for item, problem in tools.problems.items()),
            {"hint": "restore another snapshot (verify_chain with snapshot: ID)"},
        )
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
            f"newest snapshot {newest['snapshot_id']} is not restorable: {newest['reason']} "
            "(fallback: false)",
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
        f"; FELL BACK past {plural(len(selection.skipped), 'newer snapshot')}: "
        + "; ".join(f"{item['snapshot_id']}: {item['reason']}" for item in selection.skipped[:3])
        if selection.skipped
        else ""
    )
    unsigned = (
        ""
        if selection.signed
        else "; NOT AUTHENTICATED (unsigned, or no key to check it; allowed by "
        "catalog.allow_unsigned)"
    )
    if impact is None:
        impact_note = ""
    elif selection.manifest.recovery_point <= impact:
        impact_note = f"; the newest at or before the impact start {format_utc(impact)}"
    else:
        impact_note = f"; AFTER the impact start {format_utc(impact)}, because: {after_impact}"
    point = format_utc(selection.manifest.recovery_point)
    preferred = (
        f"; the runbook prefers physical backups, but there is NO restorable one ({no_physical})"
        if no_physical
        else ""
    )
    return Outcome(
        SUCCEEDED,
        f"selected {selection.manifest.kind} snapshot {selection.manifest.id}, recovery point "
        f"{point}, age {format_duration(age)}{verdict}{unsigned}{impact_note}{fallback}{preferred}"
        + (f"; {tools.note()}" if tools.note() else ""),
        {
            "snapshot_id": selection.manifest.id,
            "chain": [m.id for m in selection.chain],
            "depth": str(depth),
            "seed": selection.verification.seed,
            "skipped": selection.skipped,
            "signed": selection.signed,
            "after_impact_reason": after_impact,
            "source": describe_source(selection.manifest.source),
            "point_in_time": selection.manifest.point_in_time_note(),
            "age_s": round(age, 3),
            "kind": selection.manifest.kind,
            "no_physical": no_physical,
            "engine_checks": tools.checked,
        },
        [table],
    )
