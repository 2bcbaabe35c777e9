"""``drconsole runbook validate|show``."""

from __future__ import annotations

import argparse
import sys

from rich.markup import escape
from rich.table import Table

from drconsole.commands.output import stdout
from drconsole.errors import RunbookError
from drconsole.runbook.loader import load_runbook
from drconsole.runbook.model import MODES
from drconsole.timefmt import format_duration

EXIT_INVALID = 2


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    runbook = subparsers.add_parser("runbook", help="check and show runbooks")
    commands = runbook.add_subparsers(dest="runbook_command", required=True)
    validate = commands.add_parser("validate", help="check runbooks without running them")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(handler=validate_command)
    show = commands.add_parser("show", help="the steps in execution order, per mode")
    show.add_argument("file", metavar="FILE")
    show.add_argument("--mode", choices=MODES, help="only this mode")
    show.set_defaults(handler=show_command)


def validate_command(args: argparse.Namespace) -> int:
    """Exit 0 when every file is valid, 2 otherwise; one line per problem on stderr."""
    invalid = 0
    for file in args.files:
        try:
            runbook = load_runbook(file)
        except RunbookError as error:
            invalid += 1
            for line in error.problems:
                print(line, file=sys.stderr)
            continue
        counts = ", ".join(f"{mode}: {len(runbook.plan(mode))} steps" for mode in MODES)
        stdout.print(f"{file}: ok ({counts})")
    return EXIT_INVALID if invalid else 0


def show_command(args: argparse.Namespace) -> int:
    runbook = load_runbook(args.file)
    owner = escape(runbook.owner or "-")
    stdout.print(f"[bold]{escape(runbook.title)}[/bold]  ({runbook.id}, owner {owner})")
    stdout.print(
        f"objectives: RTO {format_duration(runbook.rto_s)}, RPO {format_duration(runbook.rpo_s)}"
    )
    for mode in (args.mode,) if args.mode else MODES:
        table = Table(title=f"{mode} mode", title_justify="left")
        for column in ("#", "step", "phase", "does", "needs", "flags", "marks"):
            table.add_column(column)
        for number, step in enumerate(runbook.plan(mode), start=1):
            does = step.action if step.kind == "action" else step.kind
            flags = [
                name
                for name, on in (
                    ("gate", step.gate),
                    ("destructive", step.destructive),
                    ("auto-confirm", step.auto_confirm_in_drill),
                )
                if on
            ]
            if step.timeout_s:
                flags.append(f"timeout {format_duration(step.timeout_s)}")
            if step.retries.max:
                flags.append(f"retries {step.retries.max}")
            table.add_row(
                str(number),
                f"{step.id}\n[dim]{escape(step.title)}[/dim]",
                step.phase,
                does,
                ", ".join(step.needs),
                ", ".join(flags),
                ", ".join(step.marks),
            )
        stdout.print(table)
    return 0
