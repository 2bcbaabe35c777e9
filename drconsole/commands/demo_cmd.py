"""``drconsole demo``: see drconsole do its whole job on this machine, in minutes."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.markup import escape

from drconsole.commands.output import require_terminal, stderr, stdout
from drconsole.commands.runs_cmd import print_metrics
from drconsole.demo import SIZES, DemoOptions, run_demo
from drconsole.demo_production import ENGINES
from drconsole.incident.store import RunStore


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="the whole job on a local sandbox: back up, lose, restore, prove"
    )
    demo.add_argument(
        "--workdir", type=Path, help="where the demo keeps its servers, catalog and runs"
    )
    demo.add_argument(
        "--headless", action="store_true", help="walk the runbook as a drill, print the report"
    )
    demo.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="small",
        help="records seeded: "
        + "; ".join(f"{name} {a:,} articles and {b:,} tickets" for name, (a, b) in SIZES.items()),
    )
    demo.add_argument("--s3", action="store_true", help="keep the catalog in a sandbox S3 bucket")
    demo.add_argument(
        "--engine",
        choices=ENGINES,
        default="chroma",
        help="the production database to back up and restore (pgvector: PostgreSQL 18 with "
        "pgvector, from the pgvector extra)",
    )
    demo.set_defaults(handler=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    if not args.headless:
        require_terminal("the interactive demo", "`drconsole demo --headless`")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="drconsole-demo-"))
    started = time.monotonic()

    def say(text: str) -> None:
        stderr.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim]  {escape(text)}")

    def open_console(runbook: Path, runs: Path) -> None:
        from drconsole.tui.app import make_app, run_console

        app = make_app(runs_dir=runs, runbook=runbook)
        try:
            run_console(app)
        finally:
            app.close_run()

    say(f"demo folder: {workdir}")
    code = run_demo(
        DemoOptions(workdir, args.headless, args.size, args.s3, args.engine), say, open_console
    )
    if args.headless:
        runs = RunStore(workdir / "runs")
        print_metrics(runs.metrics(runs.run_ids()[-1]))
        stdout.print(
            (workdir / "report.md").read_text(encoding="utf-8"), markup=False, highlight=False
        )
    runs_dir = workdir / "runs"
    say(
        f"done in {time.monotonic() - started:.0f}s; runs are in {runs_dir} "
        f"(`drconsole runs list --runs-dir {runs_dir}`); walk it again with "
        f"`drconsole tui --runbook {workdir / 'demo.yaml'} --runs-dir {runs_dir}`"
    )
    return code
