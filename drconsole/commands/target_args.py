"""The CLI flags that name a live database, derived from the installed adapters' target
options (``--engine``, ``--url``, ``--token`` and each adapter's own, e.g. ``--tenant``)."""

from __future__ import annotations

import argparse
from typing import Any

from drconsole.engines.registry import adapters, engine_adapter
from drconsole.errors import UsageError


def add_target_arguments(parser: argparse.ArgumentParser, *, url_required: bool = True) -> None:
    installed = adapters()
    parser.add_argument(
        "--engine",
        choices=list(installed),
        help="the database's engine (default: the one whose servers the url's scheme names: "
        + ", ".join(
            f"{scheme}:// {adapter.name}"
            for adapter in installed.values()
            if not adapter.in_process
            for scheme in adapter.url_schemes[:1]
        )
        + ")",
    )
    examples = [adapter.url_example for adapter in installed.values() if adapter.url_example]
    parser.add_argument(
        "--url",
        required=url_required,
        help=f"the database, e.g. {examples[0]}" if examples else None,
    )
    parser.add_argument(
        "--token", metavar="REF", help="keyring:SERVICE/NAME or env:VAR of the API token"
    )
    helps: dict[str, list[str]] = {}
    for adapter in installed.values():
        for option in adapter.options:
            default = f" (default: {option.default})" if option.default else ""
            helps.setdefault(option.name, []).append(f"{adapter.name}: {option.help}{default}")
    for name, lines in helps.items():
        parser.add_argument(_flag(name), dest=name, help="; ".join(lines))


def target_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The target the flags describe; a flag the chosen engine has no use for is refused."""
    if not args.engine and not args.url:
        raise UsageError("--engine or --url is required", "name the database's engine")
    adapter = engine_adapter(args.engine or _engine_of(args.url))
    own = {option.name for option in adapter.options}
    others = {
        option.name
        for other in adapters().values()
        for option in other.options
        if option.name not in own and getattr(args, option.name, None) is not None
    }
    if others:
        flags = ", ".join(_flag(name) for name in sorted(others))
        verb = "does" if len(others) == 1 else "do"
        raise UsageError(
            f"{flags} {verb} not apply to the {adapter.name} engine",
            f"its options: {', '.join(_flag(name) for name in sorted(own)) or 'none'}",
        )
    return {
        "engine": adapter.name,
        "url": args.url,
        "token": args.token,
        **{name: getattr(args, name) for name in own},
    }


def _flag(option: str) -> str:
    """``--data-dir`` for the option ``data_dir``."""
    return "--" + option.replace("_", "-")


def _engine_of(url: str) -> str:
    """The engine a URL's scheme names, when exactly one adapter claims it."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    claimed = [adapter.name for adapter in adapters().values() if scheme in adapter.url_schemes]
    if len(claimed) != 1:
        raise UsageError(
            f"--engine is required: the url {url!r} does not name one engine"
            + (f" (claimed by {', '.join(claimed)})" if claimed else ""),
            "`drconsole engines` lists the installed ones",
        )
    return claimed[0]


def snapshot_name(target: dict[str, Any]) -> str:
    """The name a snapshot id gets by default: the innermost namespace option set to
    something else than its default (e.g. Chroma's database), else the engine's name."""
    adapter = engine_adapter(target["engine"])
    for option in reversed(adapter.options):
        value = target.get(option.name)
        if option.namespace and value and value != option.default:
            return str(value)
    return adapter.name
