"""``drconsole engines``: the installed engine adapters, what each can do, and which
server versions the test suite runs it against."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from drconsole.commands.output import print_json, stdout
from drconsole.engines.adapter import Capability, EngineAdapter
from drconsole.engines.registry import GROUP, discovered


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    engines = subparsers.add_parser(
        "engines", help="the installed engine adapters and their capabilities"
    )
    engines.add_argument("--json", action="store_true")
    engines.set_defaults(handler=engines_command)


def describe(adapter: EngineAdapter) -> dict[str, Any]:
    return {
        "name": adapter.name,
        "title": adapter.title,
        "capabilities": sorted(adapter.capabilities),
        "lacks": sorted(set(Capability) - adapter.capabilities),
        "filter_operators": sorted(adapter.filter_operators),
        "distances": adapter.distances,
        "key_types": list(adapter.key_types),
        "options": {option.name: option.help for option in adapter.options},
        "sandbox": adapter.sandbox_entry is not None,
        "in_process": adapter.in_process,
        "tested_against": adapter.tested_against,
    }


def engines_command(args: argparse.Namespace) -> int:
    adapters, broken = discovered()
    if args.json:
        print_json(
            {
                "engines": [describe(adapter) for adapter in adapters.values()],
                "broken": broken,
            }
        )
        return 1 if broken else 0
    table = Table(title=f"engine adapters (entry point group {GROUP})")
    for column in ("engine", "can", "cannot", "target options", "sandbox", "tested against"):
        table.add_column(column, overflow="fold")
    for adapter in adapters.values():
        facts = describe(adapter)
        table.add_row(
            f"{adapter.name}\n[dim]{escape(adapter.title)}[/]",
            ", ".join(facts["capabilities"])
            + f"\n[dim]distances {', '.join(adapter.distances)}; keys "
            + f"{', '.join(adapter.key_types)}[/]",
            ", ".join(facts["lacks"]),
            ", ".join(facts["options"]) or "-",
            "in-process" if adapter.in_process else ("yes" if facts["sandbox"] else "no"),
            escape(adapter.tested_against),
        )
    stdout.print(table)
    for name, why in broken.items():
        stdout.print(f"[red]✗ {escape(name)}[/]: could not be loaded: {escape(why)}")
    return 1 if broken else 0
