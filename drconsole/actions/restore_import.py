"""``restore_data`` through the target's server-side bulk import (``Capability.BULK_LOAD``):
the chain's final state is staged as files where the server reads them, each file
imported by the server, and the imports polled to completion with progress.

Chosen per collection by the step's ``method``: ``insert`` (batched upserts), ``import``
(refused, saying why, where the target cannot import), or ``auto`` (the default: import
when the target can and the collection holds at least ``import_from`` records, inserts
otherwise). An import never replaces a record with the same key, so a collection is
imported into only when it is empty at the start, and every step is checkpointed: a file
once staged is named in the checkpoint before its import is submitted, its import task
once submitted is named too, and a resumed run polls that task (or finds the task a crash
left unnamed among the target's imports by the file's path) instead of importing twice.
A failed import is submitted again from its staged file on the next attempt.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from drconsole.actions.base import ActionContext
from drconsole.catalog.plan import PartTask, RestorePlan
from drconsole.engines.adapter import Capability, EngineAdapter
from drconsole.engines.base import Engine
from drconsole.errors import DrconsoleError
from drconsole.model.schema import TenancyMode
from drconsole.records import RecordBatch

IMPORT_FROM = 50_000
FILE_ROWS = 500_000
POLL_S = 0.5


class ImportTally(Protocol):
    """What of ``restore_data``'s tally an import moves on."""

    imports: dict[str, list[dict[str, Any]]]
    records: int
    per_collection: dict[str, int]

    def checkpoint(self) -> dict[str, Any]: ...


def chooses_import(
    context: ActionContext, adapter: EngineAdapter, engine: Engine, plan: RestorePlan, name: str
) -> bool:
    """Whether ``name`` is restored by import (see the module's note)."""
    method = str(context.params.get("method", "auto"))
    if method == "insert":
        return False
    refusal = _refusal(adapter, engine, plan, name)
    if method == "import" and refusal:
        raise DrconsoleError(
            f"restore_data cannot import {name}: {refusal}",
            "configure the target for imports, or restore with `method: insert`",
        )
    threshold = int(context.params.get("import_from", IMPORT_FROM))
    return refusal is None and (method == "import" or plan.final_count(name) >= threshold)


def _refusal(adapter: EngineAdapter, engine: Engine, plan: RestorePlan, name: str) -> str | None:
    if not adapter.can(Capability.BULK_LOAD):
        return f"the {adapter.title} engine has no server-side import"
    entry = plan.target.collection(name)
    if entry is not None and entry.schema.tenancy.mode == TenancyMode.PARTITION:
        return "its tenants are partitions (an import fills one partition a file)"
    return engine.import_refusal()  # type: ignore[attr-defined,no-any-return]


def import_collection(
    engine: Engine,
    plan: RestorePlan,
    name: str,
    *,
    context: ActionContext,
    tally: ImportTally,
    report: Any,
) -> None:
    """Stage, import and await every part of ``name``; ``report(text)`` says where it is
    (and checkpoints the tally)."""
    bulk: Any = engine
    entries = tally.imports.setdefault(name, [])
    if not entries and bulk.holds_records(name):
        raise DrconsoleError(
            f"collection {name} in the target is not empty: an import would keep both "
            "copies of every record it already has",
            "restore it again with on_exists: replace, or with `method: insert`",
        )
    tasks = plan.tasks(name)
    file_rows = int(context.params.get("import_file_rows", FILE_ROWS))
    for entry in entries:
        if not entry.get("done"):
            how = "taken up" if _submit(bulk, name, entry, adopt=True) else "submitted again"
            report(
                f"{name}: import of {entry['key']} {how} after the resume (task {entry['task']})"
            )
    start = entries[-1]["tasks"][1] + 1 if entries else 0
    while start < len(tasks):
        end = _last_task(tasks, start, file_rows)
        key = f"{context.run_id}/{name}/tasks-{start:05d}-{end:05d}.parquet"
        report(f"{name}: staging tasks {start}-{end} as {key}")
        rows = bulk.stage_records(name, key, _batches(plan, tasks[start : end + 1]))
        entry = {"key": key, "tasks": [start, end], "rows": rows, "task": None, "done": False}
        entries.append(entry)
        report(f"{name}: staged {rows:,} records in {key}")
        _submit(bulk, name, entry, adopt=False)
        report(f"{name}: import task {entry['task']} submitted for {key}")
        start = end + 1
    _await(bulk, name, entries, context=context, tally=tally, report=report)


def _last_task(tasks: list[PartTask], start: int, file_rows: int) -> int:
    """The last task of the file starting at ``start``: as many as fit ``file_rows``
    (by their rows before deletes), at least one."""
    rows, end = 0, start
    while end < len(tasks):
        rows += tasks[end].rows
        if rows >= file_rows:
            break
        end += 1
    return min(end, len(tasks) - 1)


def _batches(plan: RestorePlan, tasks: list[PartTask]) -> Iterator[RecordBatch]:
    for task in tasks:
        yield from plan.task_batches(task)


def _submit(bulk: Any, name: str, entry: dict[str, Any], *, adopt: bool) -> bool:
    """Submit the file's import, unless one was submitted already and has not failed;
    whether an earlier one was taken up."""
    if adopt:
        task = entry.get("task") or bulk.find_import(name, entry["key"])
        if task is not None and bulk.import_state(task).state != "Failed":
            entry["task"] = task
            return True
    entry["task"] = bulk.start_import(name, entry["key"])
    return False


def _await(
    bulk: Any,
    name: str,
    entries: list[dict[str, Any]],
    *,
    context: ActionContext,
    tally: ImportTally,
    report: Any,
) -> None:
    """Poll every import of ``name`` until all completed; a failed one stops the step."""
    while True:
        pending = [entry for entry in entries if not entry["done"]]
        if not pending:
            return
        running = []
        for entry in pending:
            state = bulk.import_state(entry["task"])
            if not state.finished:
                running.append(f"{entry['key'].rsplit('/', 1)[-1]} {state.percent}%")
                continue
            if not state.completed:
                raise DrconsoleError(
                    f"the import of {entry['key']} into {name} failed (task {entry['task']}, "
                    f"{state.state}): {state.reason or 'no reason given'}",
                    "retry the step: the staged file is imported again",
                )
            entry["done"] = True
            tally.records += entry["rows"]
            tally.per_collection[name] = tally.per_collection.get(name, 0) + entry["rows"]
            bulk.imported(name, entry["rows"])
            bulk.unstage(entry["key"])
            report(f"{name}: imported {entry['key']} ({entry['rows']:,} records)")
        if running:
            report(f"{name}: importing {', '.join(running)}")
        if context.cancel.is_set():
            raise DrconsoleError(f"restore cancelled while {name} was imported")
        time.sleep(POLL_S)
