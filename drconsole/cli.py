"""The ``drconsole`` command: parses arguments, builds objects, calls the core.

A user mistake or an environment problem is printed in one or two lines (message, then
hint) with a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback

from drconsole import __version__
from drconsole.commands import (
    catalog_cmd,
    demo_cmd,
    drill_cmd,
    engines_cmd,
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
EXIT_INPUT = 2
EXIT_BUG = 70


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
    engines_cmd.add_parsers(subparsers)
    tui_cmd.add_parsers(subparsers)
    demo_cmd.add_parsers(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    for number, argument in enumerate(sys.argv[1:] if argv is None else argv, start=1):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            print(f"error: argument {number} is not valid UTF-8", file=sys.stderr)
            return EXIT_INPUT
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
    except OSError as error:
        name = str(error.filename or "")
        where = f"{name[:40]}…{name[-20:]}: " if len(name) > 80 else f"{name}: " if name else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_INPUT
    except (RecursionError, MemoryError) as error:
        what = "nests too deeply" if isinstance(error, RecursionError) else "is too large"
        print(f"error: the input {what} to be read", file=sys.stderr)
        return EXIT_INPUT
    except Exception as error:  # noqa: BLE001 - the last net: a bug, said in one line
        return _report_bug(error)


def _report_bug(error: Exception) -> int:
    """One line for the user, the traceback in a private file for the report."""
    fd, path = tempfile.mkstemp(prefix="drconsole-crash-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as log:
        log.write("".join(traceback.format_exception(error)))
    print(
        f"error: drconsole hit a bug ({type(error).__name__}); nothing more was done. "
        f"Details: {path}",
        file=sys.stderr,
    )
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
