"""``drconsole drill``: walk a runbook headless, or resume a run from its record."""

from __future__ import annotations

import argparse
import time

from rich.markup import escape

from drconsole.actions.base import Progress, ProgressCallback
from drconsole.commands.output import print_json, stderr, write_output
from drconsole.commands.runs_cmd import add_runs_dir, print_metrics, store_from
from drconsole.drill import DrillOptions, drive
from drconsole.engines.registry import adapters, engine_adapter
from drconsole.errors import UsageError
from drconsole.incident.describe import describe
from drconsole.incident.events import Event
from drconsole.incident.report import markdown_report
from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runbook.model import MODES, Runbook
from drconsole.runner import Runner
from drconsole.timefmt import parse_moment, utc_now

PROGRESS_EVERY_S = 5.0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    drill = subparsers.add_parser(
        "drill",
        help="walk a runbook headless (cron, CI), or resume a run",
        description="Exit codes: 0 every gate passed and the RTO target was met; 1 a gate "
        "failed or the RTO was missed; 2 invalid input; 3 stopped at a step that needs a person.",
    )
    drill.add_argument("runbook", nargs="?", metavar="RUNBOOK", help="runbook file")
    drill.add_argument("--mode", choices=MODES, default="drill")
    drill.add_argument(
        "--yes",
        action="store_true",
        help="confirm manual and destructive steps (recorded as automatic)",
    )
    drill.add_argument("--json", action="store_true", help="print the run's metrics as JSON")
    drill.add_argument(
        "--impact-start",
        metavar="TIME",
        help="incident mode: when impact began: a local time (15:55), a time ago (10m ago) "
        "or ISO 8601; default now",
    )
    drill.add_argument("--resume", metavar="RUN", help="continue this run from its record")
    drill.add_argument(
        "--sandbox",
        action="store_true",
        help="restore into a throwaway local server of the runbook's engine instead of its target",
    )
    drill.add_argument("--report", metavar="FILE.md", help="also write the Markdown report here")
    choice = drill.add_mutually_exclusive_group()
    choice.add_argument(
        "--rerun-interrupted",
        action="store_true",
        help="with --resume: run the interrupted step again",
    )
    choice.add_argument(
        "--mark-interrupted-done",
        action="store_true",
        help="with --resume: the interrupted step's work is complete",
    )
    add_runs_dir(drill)
    drill.set_defaults(handler=drill_command)


def drill_command(args: argparse.Namespace) -> int:
    store = store_from(args)
    options = DrillOptions(
        yes=args.yes,
        rerun_interrupted=args.rerun_interrupted,
        mark_interrupted_done=args.mark_interrupted_done,
    )
    runner = _open_runner(args, store)
    if not args.json:
        stderr.print(f"run {runner.run_id} ({runner.mode}), record {runner.record_path}")
        runner.subscribe(_print_event)
    try:
        result = drive(runner, options, progress_lines)
        if args.report:
            write_output(
                markdown_report(result.metrics, store.read(runner.run_id).events), args.report
            )
    finally:
        runner.close()
    if args.json:
        print_json(result.metrics.to_json())
    else:
        print_metrics(result.metrics)
        stderr.print(escape(result.message))
    return result.exit_code


def progress_lines(step_id: str, every_s: float = PROGRESS_EVERY_S) -> ProgressCallback:
    """A long step says how far it is, a line every few seconds on stderr (a terminal,
    a cron mail or a CI log alike): done of total, rate and ETA."""
    last = [0.0]

    def report(progress: Progress) -> None:
        now = time.monotonic()
        if now - last[0] < every_s or not progress.message:
            return
        last[0] = now
        total = f" of {progress.total:.0f}" if progress.total else ""
        stderr.print(
            f"  {step_id}: {progress.done:.0f}{total} {progress.unit}; {escape(progress.message)}",
            highlight=False,
        )

    return report


def _open_runner(args: argparse.Namespace, store: RunStore) -> Runner:
    if args.resume:
        if args.runbook:
            raise UsageError(
                "give either RUNBOOK or --resume RUN, not both",
                "the runbook of a resumed run is found from its record",
            )
        return Runner.resume(store, args.resume)
    if not args.runbook:
        raise UsageError("drill needs a RUNBOOK file, or --resume RUN")
    if args.rerun_interrupted or args.mark_interrupted_done:
        raise UsageError("--rerun-interrupted and --mark-interrupted-done go with --resume RUN")
    impact_start = None
    if args.impact_start:
        if args.mode != "incident":
            raise UsageError("--impact-start applies to --mode incident")
        try:
            impact_start = parse_moment(args.impact_start, utc_now())
        except ValueError as error:
            raise UsageError(f"--impact-start: {error}") from None
    runbook = load_runbook(args.runbook)
    target = {"sandbox": sandbox_engine(runbook)} if args.sandbox else None
    return Runner.start(runbook, args.mode, store, impact_start=impact_start, target=target)


def sandbox_engine(runbook: Runbook) -> str:
    """The engine whose sandbox server a drill restores into: the runbook's target or
    source engine, else the only installed engine that has one."""
    if engine := runbook.target.get("engine") or runbook.source.get("engine"):
        if not engine_adapter(str(engine)).sandbox_entry:
            raise UsageError(
                f"--sandbox: the runbook's engine, {engine}, has no sandbox server to start",
                "drop --sandbox, or use a runbook of an engine that has one "
                "(`drconsole engines` lists them)",
            )
        return str(engine)
    servers = [adapter.name for adapter in adapters().values() if adapter.sandbox_entry]
    if len(servers) == 1:
        return servers[0]
    raise UsageError(
        "--sandbox: the runbook names no engine to start a sandbox of",
        "set target.engine or source.engine in the runbook",
    )


def _print_event(event: Event) -> None:
    line = describe(event)
    if line is not None:
        stderr.print(f"{event.time:%H:%M:%S}  {escape(line)}")
