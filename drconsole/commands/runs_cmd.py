"""``drconsole runs list|show|verify|export``: past runs, from their records."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from drconsole.catalog.open import open_runbook_catalog, open_store
from drconsole.catalog.store import ObjectStore
from drconsole.commands.output import print_json, stderr, stdout, write_output
from drconsole.incident.metrics import RunMetrics
from drconsole.incident.mirror import compare_with_copy, fetch_runs
from drconsole.incident.record import RecordRead
from drconsole.incident.report import markdown_report
from drconsole.incident.store import RunStore, default_runs_dir
from drconsole.runbook.loader import load_runbook
from drconsole.timefmt import format_duration, format_utc
from drconsole.wording import plural

EXIT_BROKEN = 1


def add_runs_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="folder of run records (default: $DRCONSOLE_RUNS_DIR or the user data folder)",
    )


def store_from(args: argparse.Namespace) -> RunStore:
    return RunStore(args.runs_dir or default_runs_dir())


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    runs = subparsers.add_parser("runs", help="past drills and incidents")
    commands = runs.add_subparsers(dest="runs_command", required=True)
    listing = commands.add_parser("list", help="every run, oldest first")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument(
        "--catalog",
        metavar="URL|RUNBOOK",
        help="the runs copied into this catalog (every machine's), instead of this machine's",
    )
    listing.set_defaults(handler=list_command)
    show = commands.add_parser("show", help="metrics and per-step durations of one run")
    show.add_argument("run", metavar="RUN", help="run id, a unique prefix of it, or latest")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=show_command)
    verify = commands.add_parser("verify", help="check a record's hash chain")
    verify.add_argument("run", metavar="RUN")
    verify.add_argument(
        "--catalog",
        metavar="URL|RUNBOOK",
        help="also compare the record with its copy in this catalog (catches a rollback)",
    )
    verify.set_defaults(handler=verify_command)
    abandon = commands.add_parser(
        "abandon", help="end an unfinished run with a reason (it stops waiting for anyone)"
    )
    abandon.add_argument("run", metavar="RUN")
    abandon.add_argument("--reason", required=True, help="why, in a sentence (recorded)")
    abandon.set_defaults(handler=abandon_command)
    export = commands.add_parser("export", help="a run as a Markdown report or JSON")
    export.add_argument("run", metavar="RUN")
    export.add_argument("--format", choices=("md", "json"), default="md")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(handler=export_command)
    for parser in (listing, show, verify, abandon, export):
        add_runs_dir(parser)


def _catalog_store(reference: str) -> ObjectStore:
    """A catalog named by URL, or the catalog a runbook file names."""
    if reference.endswith((".yaml", ".yml")) and Path(reference).is_file():
        return open_runbook_catalog(load_runbook(Path(reference)))
    return open_store(reference)


def list_command(args: argparse.Namespace) -> int:
    if args.catalog:
        with tempfile.TemporaryDirectory(prefix="drconsole-runs-") as folder:
            fetch_runs(_catalog_store(args.catalog), Path(folder))
            return _list(RunStore(Path(folder)), args, f"the catalog {args.catalog}")
    return _list(store_from(args), args, None)


def _list(store: RunStore, args: argparse.Namespace, where: str | None) -> int:
    runs, unreadable = store.all_metrics()
    for message in unreadable:
        stderr.print(f"warning: {escape(message)}")
    if args.json:
        print_json([run.summary_json() for run in runs])
        return 0
    if not runs:
        stdout.print(f"no runs in {where or store.folder}")
        return 0
    table = Table()
    for column in ("run", "runbook", "mode", "started (UTC)", "status", "RTO", "target", "met"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.run_id,
            run.runbook_id,
            run.mode,
            format_utc(run.started_at) if run.started_at else "-",
            _status(run),
            format_duration(run.rto_s),
            format_duration(run.rto_target_s),
            _met(run.rto_met),
        )
    stdout.print(table)
    return 0


def show_command(args: argparse.Namespace) -> int:
    store = store_from(args)
    metrics = store.metrics(store.resolve(args.run))
    if args.json:
        print_json(metrics.to_json())
        return 0
    print_metrics(metrics)
    return 0


def print_metrics(metrics: RunMetrics) -> None:
    """The human form of a run's metrics (used by `runs show` and `drill`)."""
    stdout.print(f"[bold]{metrics.run_id}[/bold]  {escape(metrics.runbook_title)}")
    stdout.print(f"mode {metrics.mode}, status {_status(metrics)}, record {metrics.integrity}")
    stdout.print(
        f"RTO {format_duration(metrics.rto_s)} (target {format_duration(metrics.rto_target_s)}, "
        f"met: {_met(metrics.rto_met)})   RPO {format_duration(metrics.rpo_s)} "
        f"(target {format_duration(metrics.rpo_target_s)}, met: {_met(metrics.rpo_met)})"
    )
    stdout.print(
        f"waiting for people {format_duration(metrics.waiting_s)}, "
        f"{plural(len(metrics.overrides), 'override')}, {plural(len(metrics.skipped), 'skip')}"
    )
    table = Table()
    for column in ("step", "phase", "status", "attempts", "duration"):
        table.add_column(column)
    for step in metrics.steps:
        table.add_row(
            step.id, step.phase, step.status, str(step.attempts), format_duration(step.duration_s)
        )
    stdout.print(table)
    for item in metrics.overrides:
        stdout.print(f"override {item['step_id']} by {item['actor']}: {escape(item['reason'])}")
    for item in metrics.skipped:
        stdout.print(f"skip {item['step_id']} by {item['actor']}: {escape(item['reason'])}")


def verify_command(args: argparse.Namespace) -> int:
    """Exit 0 when the chain is intact, 1 naming the first bad line."""
    store = store_from(args)
    run_id = store.resolve(args.run)
    read = store.read(run_id)
    if read.problem is not None:
        stdout.print(f"{read.path}: BROKEN at {read.problem}")
        return EXIT_BROKEN
    if args.catalog and (problem := compare_with_copy(_catalog_store(args.catalog), read)):
        stdout.print(f"{read.path}: BROKEN: {problem}")
        return EXIT_BROKEN
    stdout.print(f"{read.path}: {len(read.events)} events")
    for line in proofs(read, checked_copy=bool(args.catalog)):
        stdout.print(f"  {line}")
    return 0 if read.integrity == "ok" else EXIT_BROKEN


def proofs(read: RecordRead, *, checked_copy: bool = False) -> list[str]:
    """What reading the record proved, and what it did not."""
    lines = ["chained: every line is in order and unchanged since the one after it was written"]
    if read.authenticated:
        lines.append(
            "authenticated: every line carries a MAC made with the record key; nobody "
            "without the key edited, added or re-chained a line"
        )
    if read.anchored:
        lines.append(
            "anchored: the record ends where its head anchor says; no line was cut from the end"
        )
    lines += [f"NOT proven: {item}" for item in read.unproven]
    if checked_copy:
        lines.append("matches its copy in the catalog: it was not rolled back behind the last copy")
    else:
        lines.append(
            "not checked: that the record and its head were not both rolled back to older "
            "copies of themselves; --catalog compares them with the catalog's copy"
        )
    return lines


def abandon_command(args: argparse.Namespace) -> int:
    from drconsole.runner import Runner

    run_id = Runner.abandon_run(store_from(args), args.run, args.reason)
    stdout.print(f"run {run_id} abandoned: {escape(args.reason)}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    store = store_from(args)
    run_id = store.resolve(args.run)
    metrics = store.metrics(run_id)
    events = store.read(run_id).events
    if args.format == "md":
        text = markdown_report(metrics, events)
    else:
        record_lines = store.record_path(run_id).read_text(encoding="utf-8").splitlines()
        raw_events = [json.loads(line) for line in record_lines[: len(events)]]
        text = json.dumps({"metrics": metrics.to_json(), "events": raw_events}, indent=2) + "\n"
    write_output(text, args.output)
    return 0


def _status(metrics: RunMetrics) -> str:
    if metrics.integrity == "ok":
        return metrics.status_label
    return f"{metrics.status_label} (record {metrics.integrity.split(':', 1)[0]})"


def _met(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "NO")
