"""The ``drconsole`` command: parses arguments, builds objects, calls the core.

A user mistake or an environment problem is printed in one or two lines (message, then
hint) with a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from drconsole import __version__
from drconsole.commands import (
    catalog_cmd,
    demo_cmd,
    drill_cmd,
    golden_cmd,
    runbook_cmd,
    runs_cmd,
    secrets_cmd,
    snapshot_cmd,
    tui_cmd,
)
from drconsole.commands.output import print_error
from drconsole.errors import DrconsoleError
from drconsole.sandbox import install_exit_handlers

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drconsole",
        description="Restore vector databases after a disaster, and drill it.",
    )
    parser.add_argument("--version", action="version", version=f"drconsole {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    runbook_cmd.add_parsers(subparsers)
    runs_cmd.add_parsers(subparsers)
    drill_cmd.add_parsers(subparsers)
    catalog_cmd.add_parsers(subparsers)
    secrets_cmd.add_parsers(subparsers)
    snapshot_cmd.add_parsers(subparsers)
    golden_cmd.add_parsers(subparsers)
    tui_cmd.add_parsers(subparsers)
    demo_cmd.add_parsers(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    install_exit_handlers()
    handler = getattr(args, "handler", None)
    if handler is None:
        if not sys.stdout.isatty():
            parser.print_help()
            return 0
        args = parser.parse_args(["tui"])
        handler = args.handler
    try:
        return handler(args)
    except DrconsoleError as error:
        print_error(error)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
