"""``drconsole tui`` (and ``drconsole`` alone): open the console."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from drconsole.commands.output import require_terminal
from drconsole.commands.runs_cmd import add_runs_dir
from drconsole.errors import UsageError
from drconsole.incident.store import default_runs_dir

ENV_RUNBOOK = "DRCONSOLE_RUNBOOK"
ENV_CATALOG = "DRCONSOLE_CATALOG"


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    tui = subparsers.add_parser("tui", help="open the console")
    add_options(tui)
    tui.set_defaults(handler=tui_command)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runbook", type=Path, help=f"runbook file (or ${ENV_RUNBOOK}, or the last used)"
    )
    parser.add_argument(
        "--catalog", help=f"catalog URL (or ${ENV_CATALOG}, the runbook's, or the last used)"
    )
    parser.add_argument("--endpoint", help="S3-compatible endpoint of the catalog")
    parser.add_argument(
        "--credentials", metavar="REF", help="S3 credentials reference of the catalog"
    )
    parser.add_argument(
        "--target", metavar="URL", help="restore into this database instead of the runbook's"
    )
    parser.add_argument("--resume", metavar="RUN", help="reopen this run")
    parser.add_argument("--timeline", action="store_true", help="open on the timeline of past runs")
    add_runs_dir(parser)


def tui_command(args: argparse.Namespace) -> int:
    require_terminal("the console", "`drconsole drill RUNBOOK` to walk a runbook headless")
    remembered = _last_used()
    runbook = args.runbook or _env_path(ENV_RUNBOOK) or _existing(remembered.get("runbook"))
    catalog = (
        args.catalog
        or os.environ.get(ENV_CATALOG)
        or (None if args.runbook else remembered.get("catalog"))
    )
    options = {"endpoint": args.endpoint, "credentials": args.credentials}
    if catalog and catalog == remembered.get("catalog") and not any(options.values()):
        options = dict(remembered.get("catalog_options") or {})
    if runbook is not None and not runbook.is_file():
        raise UsageError(f"{runbook}: no such runbook")
    from drconsole.tui.app import make_app, run_console

    app = make_app(
        runs_dir=args.runs_dir or default_runs_dir(),
        catalog=catalog,
        catalog_options=options,
        runbook=runbook.resolve() if runbook else None,
        target={"url": args.target} if args.target else None,
        resume=args.resume,
        start="timeline" if args.timeline else "catalog",
    )
    _remember(
        {
            "runbook": str(runbook.resolve()) if runbook else None,
            "catalog": catalog,
            "catalog_options": {k: v for k, v in options.items() if v},
        }
    )
    try:
        run_console(app)
    finally:
        app.close_run()
    return 0


def _config_path() -> Path:
    import platformdirs

    return platformdirs.user_config_path("drconsole") / "last.json"


def _last_used() -> dict[str, Any]:
    try:
        value = json.loads(_config_path().read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _remember(choice: dict[str, Any]) -> None:
    path = _config_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(choice, indent=1))
    except OSError:
        return


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _existing(value: object) -> Path | None:
    return Path(str(value)) if value and Path(str(value)).is_file() else None
