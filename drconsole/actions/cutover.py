"""``cutover``: put collections restored into staging in production's place.

Run after the gates passed on staging. For each collection: the production collection
(if any) is renamed aside to ``NAME.replaced.TAG`` (kept, not deleted: it is the operator's
to drop once satisfied), then staging is renamed to ``NAME``. Each rename is one atomic
step of the engine; between the two, for a few milliseconds, the name is free. The step
decides from what it finds, so a cutover interrupted halfway is finished by running it
again. Afterwards the run's collections are production's again.
"""

from __future__ import annotations

from drconsole.actions.base import (
    SUCCEEDED,
    ActionContext,
    Outcome,
    Progress,
    ProgressCallback,
    ResultTable,
)
from drconsole.engines import open_engine
from drconsole.engines.base import Engine
from drconsole.errors import DrconsoleError


def replaced_name(name: str, staging: str) -> str:
    """Where production goes aside: the staging suffix's run tag, so the two pair up."""
    return f"{name}.replaced.{staging.rsplit('.', 1)[-1]}"


def run_cutover(context: ActionContext, progress: ProgressCallback) -> Outcome:
    placement = {name: where for name, where in context.placement.items() if where != name}
    if not placement:
        return Outcome(
            SUCCEEDED,
            "nothing to cut over: this run restored into production directly",
            {"placement": {}, "moved": {}},
        )
    engine = open_engine(context.target, context.add_secret)
    rows = []
    try:
        for number, (name, staging) in enumerate(placement.items()):
            progress(Progress(number, len(placement), "collections", f"cutting over {name}"))
            rows.append((name, staging, *_cut_over(engine, name, staging)))
    finally:
        engine.close()
    table = ResultTable(
        "cutover", ("collection", "from staging", "production before", "now"), tuple(rows)
    )
    return Outcome(
        SUCCEEDED,
        "in production now: "
        + ", ".join(f"{name} (was {staging}; {before})" for name, staging, before, _ in rows),
        {"placement": {}, "moved": {name: staging for name, staging, *_ in rows}},
        [table],
    )


def _cut_over(engine: Engine, name: str, staging: str) -> tuple[str, str]:
    """Rename production aside (if there) and staging into place; what production was."""
    aside = replaced_name(name, staging)
    if engine.get_collection(staging) is None:
        if engine.get_collection(name) is not None and engine.get_collection(aside) is not None:
            return f"kept as {aside}", "done before (an earlier attempt)"
        raise DrconsoleError(
            f"staging collection {staging} is not in the target, so {name} cannot be cut over",
            "restore the schema and data into staging again",
        )
    before = "none"
    if engine.get_collection(name) is not None:
        if engine.get_collection(aside) is not None:
            raise DrconsoleError(
                f"both {name} and {aside} exist; cutting over would lose one of them",
                "look at both, drop the one not needed, and run the cutover again",
            )
        engine.rename_collection(name, aside)
        before = f"kept as {aside}"
    elif engine.get_collection(aside) is not None:
        before = f"kept as {aside}"
    engine.rename_collection(staging, name)
    return before, "restored"
