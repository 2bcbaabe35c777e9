"""``restore_data``: stream the chain's final state into the target.

Priority collections first; each collection as the plan's part tasks (a records part of
one snapshot, its rows that are in the final state: independent of one another), each
in batches of ``batch`` records with up to ``in_flight`` upserts at once. The checkpoint
names the tasks finished and, for the task under way, the batches the target
acknowledged (a contiguous prefix, since batches finish out of order), so a resumed run
skips finished parts and continues inside the one it stopped in; upserts make a re-sent
batch harmless. A dimension or distance mismatch between snapshot and target is refused
before any write.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from drconsole.actions.base import (
    SUCCEEDED,
    ActionContext,
    Outcome,
    Progress,
    ProgressCallback,
    ResultTable,
)
from drconsole.actions.finish_load import FinishedLoad, finish_load
from drconsole.actions.lease import check_leases
from drconsole.actions.restore_import import chooses_import, import_collection
from drconsole.actions.restore_physical import files_restore, restore_files
from drconsole.actions.restore_schema import schema_mismatch
from drconsole.actions.sources import (
    open_catalog,
    open_target,
    restore_order,
    selected_chain,
    target_adapter,
)
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.plan import RestorePlan
from drconsole.engines.adapter import Capability
from drconsole.engines.base import Engine
from drconsole.errors import DrconsoleError
from drconsole.records import RecordBatch
from drconsole.timefmt import format_duration
from drconsole.wording import plural


@dataclass
class _Tally:
    """Where the restore stands: collections finished, part tasks finished (by their
    index in the plan's task list, as ranges), batches acknowledged in the task under
    way, records written; rebuilt from the last checkpoint on resume."""

    done_collections: list[str] = field(default_factory=list)
    tasks_done: dict[str, list[list[int]]] = field(default_factory=dict)
    collection: str | None = None
    task: int | None = None
    batches: int = 0
    records: int = 0
    per_collection: dict[str, int] = field(default_factory=dict)
    imports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per collection restored by import: its staged files, their import tasks, done."""

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any] | None) -> _Tally:
        """The tally a checkpoint recorded (one from before part tasks restarts its
        collection: re-sent upserts change nothing)."""
        if not checkpoint:
            return cls()
        return cls(
            list(checkpoint.get("done_collections", [])),
            {k: [list(r) for r in v] for k, v in checkpoint.get("tasks_done", {}).items()},
            checkpoint.get("collection"),
            checkpoint.get("task"),
            int(checkpoint.get("batches", 0)) if checkpoint.get("task") is not None else 0,
            int(checkpoint.get("records", 0)),
            dict(checkpoint.get("per_collection", {})),
            {k: [dict(e) for e in v] for k, v in checkpoint.get("imports", {}).items()},
        )

    def done(self, collection: str, task: int) -> bool:
        return any(start <= task <= end for start, end in self.tasks_done.get(collection, []))

    def finish_task(self, collection: str, task: int) -> None:
        ranges = self.tasks_done.setdefault(collection, [])
        if ranges and ranges[-1][1] == task - 1:
            ranges[-1][1] = task
        else:
            ranges.append([task, task])
        self.task, self.batches = None, 0

    def checkpoint(self) -> dict[str, Any]:
        return {
            "done_collections": self.done_collections,
            "tasks_done": self.tasks_done,
            "collection": self.collection,
            "task": self.task,
            "batches": self.batches,
            "records": self.records,
            "per_collection": self.per_collection,
            "imports": self.imports,
        }


def run_restore_data(context: ActionContext, progress: ProgressCallback) -> Outcome:
    batch_size = int(context.params.get("batch", 1000))
    in_flight = int(context.params.get("in_flight", 2))
    store, view = open_catalog(context)
    chain = selected_chain(context, store, view)
    if way := files_restore(context, chain[-1]):
        return restore_files(context, progress, store, chain, way)
    plan = RestorePlan(store, chain)
    order = restore_order(context, chain[-1])
    engine = open_target(context)
    adapter = target_adapter(context)
    finished: dict[str, FinishedLoad] = {}
    methods: dict[str, str] = {}
    try:
        check_leases(engine, order, context.run_id)
        _check_targets(engine, chain[-1], order)
        tally = _Tally.from_checkpoint(context.last_checkpoint)
        resumed_at = tally.records
        total = sum(plan.final_count(name) for name in order)
        meter = _Meter(progress, total, tally.records)
        for name in order:
            if name in tally.done_collections:
                continue
            if tally.collection != name:
                tally.collection, tally.task, tally.batches = name, None, 0
            try:
                if name in tally.imports or chooses_import(context, adapter, engine, plan, name):
                    import_collection(
                        engine,
                        plan,
                        name,
                        context=context,
                        tally=tally,
                        report=lambda text: meter.report(tally, text),
                    )
                    methods[name] = "import"
                for number, task in enumerate(plan.tasks(name) if name not in methods else []):
                    if tally.done(name, number):
                        continue
                    skip = tally.batches if tally.task == number else 0
                    tally.task, tally.batches = number, skip
                    _restore_task(
                        engine,
                        name,
                        batches(plan.task_batches(task), batch_size),
                        skip=skip,
                        in_flight=in_flight,
                        tally=tally,
                        meter=meter,
                        context=context,
                    )
                    tally.finish_task(name, number)
                    meter.report(tally, f"{name}: {task.path} of {task.snapshot_id} restored")
            except DrconsoleError as error:
                state = (
                    f"{context.placement[name]} (staging) is partly written; production "
                    "is untouched"
                    if name in context.placement
                    else f"{name} in the target is HALF-WRITTEN until this step completes"
                )
                raise DrconsoleError(f"{error.message}; {state}", error.hint) from None
            if adapter.can(Capability.DEFERRED_INDEXES):
                finished[name] = finish_load(
                    engine,
                    adapter,
                    name,
                    chain[-1].collection(name).schema,
                    authenticity=view.authenticity.get(chain[-1].id, ("unsigned", ""))[0],
                    progress=lambda doing, name=name: meter.report(tally, f"{name}: {doing}"),
                )
            tally.done_collections.append(name)
            tally.collection = None
            meter.report(tally, f"{name} done")
    finally:
        engine.close()
    rows = tuple(
        (
            name,
            methods.get(name, "insert"),
            str(tally.per_collection.get(name, 0)),
            str(plan.final_count(name)),
        )
        for name in order
    )
    table = ResultTable(
        "records restored", ("collection", "method", "written", "final state"), rows
    )
    lost_note = "".join(
        f"; NOT restored in {name}: {', '.join(done.not_restored)}"
        for name, done in finished.items()
        if done.not_restored
    ) + "".join(f"; to do: {note}" for done in finished.values() for note in done.notes)
    return Outcome(
        SUCCEEDED,
        f"restored {plural(tally.records, 'record')} into {plural(len(order), 'collection')} "
        f"from {chain[-1].id} "
        f"in {format_duration(meter.elapsed)} ({meter.rate:.0f} records/s)"
        + (f"; resumed after {resumed_at} records" if resumed_at else "")
        + lost_note,
        {
            "not_restored": {name: done.not_restored for name, done in finished.items()},
            "indexes_built": {name: done.indexes for name, done in finished.items()},
            "to_do": [note for done in finished.values() for note in done.notes],
            "records": tally.records,
            "per_collection": tally.per_collection,
            "methods": {name: methods.get(name, "insert") for name in order},
            "resumed_after": resumed_at,
            "chain": [m.id for m in chain],
        },
        [table],
    )


def _check_targets(engine: Engine, manifest: Manifest, order: list[str]) -> None:
    """Refuse before any write when a target collection is missing or cannot take the data."""
    for name in order:
        current = engine.get_collection(name)
        if current is None:
            raise DrconsoleError(
                f"collection {name} does not exist in the target",
                "run the restore_schema step first",
            )
        mismatch = schema_mismatch(current.schema, manifest.collection(name).schema)
        if mismatch:
            raise DrconsoleError(
                f"collection {name}: {mismatch}; refusing to write",
                "restore the schema again with on_exists: replace, or fix the target",
            )


def batches(parts: Iterable[RecordBatch], size: int) -> Iterator[RecordBatch]:
    """Records in upsert batches of ``size`` (the last one may be smaller)."""
    pending: list[RecordBatch] = []
    rows = 0
    for part in parts:
        start = 0
        while start < len(part):
            take = min(size - rows, len(part) - start)
            pending.append(part.slice(start, start + take))
            rows += take
            start += take
            if rows == size:
                yield RecordBatch.join(pending, 0)
                pending, rows = [], 0
    if rows:
        yield RecordBatch.join(pending, 0)


def _restore_task(
    engine: Engine,
    name: str,
    upserts: Iterator[RecordBatch],
    *,
    skip: int,
    in_flight: int,
    tally: _Tally,
    meter: _Meter,
    context: ActionContext,
) -> None:
    """One part task: upsert with up to ``in_flight`` requests; advance the checkpoint
    over the contiguous prefix of acknowledged batches only."""
    acknowledged: dict[int, int] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix=f"upsert-{name}") as pool:
        running: dict[Future[None], tuple[int, int]] = {}
        for index, batch in enumerate(upserts):
            if index < skip:
                continue
            while len(running) >= in_flight and failure is None:
                failure = _collect(running, acknowledged, tally, name, meter)
            if failure is not None or context.cancel.is_set():
                break
            running[pool.submit(engine.upsert, name, batch)] = (index, len(batch))
        while running:  # every upsert still in flight is waited for, even after a failure
            latest = _collect(running, acknowledged, tally, name, meter)
            failure = failure or latest
    if failure is not None:
        done = tally.per_collection.get(name, 0)
        raise DrconsoleError(
            f"restore of {name} stopped after {done} records "
            f"({tally.batches} batches acknowledged): {failure}",
            "retry the step: it continues with the part it stopped in, after its last "
            "acknowledged batch",
        )
    if context.cancel.is_set():
        raise DrconsoleError(
            f"restore cancelled in {name} after {tally.batches} acknowledged batches"
        )


def _collect(
    running: dict[Future[None], tuple[int, int]],
    acknowledged: dict[int, int],
    tally: _Tally,
    name: str,
    meter: _Meter,
) -> BaseException | None:
    """Wait for at least one upsert; returns the first failure among those finished."""
    finished, _ = wait(running, return_when=FIRST_COMPLETED)
    failure = None
    for future in finished:
        index, rows = running.pop(future)
        error = future.exception()
        if error is not None:
            failure = failure or error
            continue
        acknowledged[index] = rows
    advanced = False
    while tally.batches in acknowledged:
        rows = acknowledged.pop(tally.batches)
        tally.batches += 1
        tally.records += rows
        tally.per_collection[name] = tally.per_collection.get(name, 0) + rows
        advanced = True
    if advanced:
        meter.report(tally, name)
    return failure


class _Meter:
    """Records done, rate and ETA for the progress callback (and the checkpoint)."""

    def __init__(self, progress: ProgressCallback, total: int, already: int) -> None:
        self.progress = progress
        self.total = total
        self.already = already
        self.started = time.monotonic()
        self._done = already

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return 0.0 if self.elapsed <= 0 else (self._done - self.already) / self.elapsed

    def report(self, tally: _Tally, where: str) -> None:
        self._done = tally.records
        rate = self.rate
        eta = (self.total - tally.records) / rate if rate > 0 else None
        self.progress(
            Progress(
                tally.records,
                self.total,
                "records",
                f"{where}: {rate:.0f} records/s, ETA {format_duration(eta)}",
                checkpoint=tally.checkpoint(),
                data={"rate": round(rate, 1), "eta_s": None if eta is None else round(eta, 1)},
            )
        )
