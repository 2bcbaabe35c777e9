"""``drconsole secrets set|delete NAME``: credentials in the keyring, never on argv."""

from __future__ import annotations

import argparse
import getpass
import sys

from drconsole.commands.output import stdout
from drconsole.errors import SecretError
from drconsole.secrets import delete_secret, reference_for, store_secret


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    secrets = subparsers.add_parser("secrets", help="store credentials in the keyring")
    commands = secrets.add_subparsers(dest="secrets_command", required=True)
    setter = commands.add_parser(
        "set",
        help="store a secret (hidden prompt, or stdin when piped)",
        description="For S3 catalogs store ACCESS_KEY_ID:SECRET_ACCESS_KEY.",
    )
    setter.add_argument(
        "name", metavar="NAME", help="NAME or SERVICE/NAME (service defaults to drconsole)"
    )
    setter.set_defaults(handler=set_command)
    deleter = commands.add_parser("delete", help="remove a secret")
    deleter.add_argument("name", metavar="NAME")
    deleter.set_defaults(handler=delete_command)


def set_command(args: argparse.Namespace) -> int:
    reference = reference_for(args.name)
    if sys.stdin.isatty():
        value = getpass.getpass(f"value for {reference} (hidden): ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise SecretError("no value given; nothing stored")
    store_secret(reference, value)
    stdout.print(f"stored; refer to it as {reference}")
    return 0


def delete_command(args: argparse.Namespace) -> int:
    reference = reference_for(args.name)
    delete_secret(reference)
    stdout.print(f"deleted {reference}")
    return 0
