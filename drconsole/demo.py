"""``drconsole demo``: the whole job on this machine, with no outside services.

1. A sandbox Chroma (or PostgreSQL with pgvector) plays production: two collections
   (tables) of a seeded knowledge base.
2. A golden set is captured from the healthy system.
3. A full snapshot goes into a catalog (a local folder, or a sandbox S3 bucket); the data
   changes (adds, updates, deletes) and two incrementals follow.
4. Disaster: the collections are deleted from production.
5. The console opens on the demo runbook; with ``headless`` the same walk runs as a drill
   and its summary and report are printed.
Every server it starts is stopped on exit, also after Ctrl-C or an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.local import LocalStore
from drconsole.catalog.s3 import S3Store
from drconsole.catalog.store import ObjectStore
from drconsole.corpus import CorpusSpec, batches, records
from drconsole.demo_production import CHROMA_RUNBOOK, Production, start_production
from drconsole.drill import DrillOptions, DrillResult, drive
from drconsole.errors import DrconsoleError, UsageError
from drconsole.golden import capture, save_golden
from drconsole.incident.report import markdown_report
from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner
from drconsole.sandbox import serve_s3, stop_all

SIZES = {"small": (2000, 1000), "medium": (20000, 8000)}
BUCKET = "demo-backups"
COLLECTIONS = ("help_articles", "support_tickets")
KEY_FILE = "catalog.key"
LOCAL_CATALOG = 'catalog: {url: catalog, key: "file:catalog.key"}'


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path
    headless: bool = False
    size: str = "small"
    s3: bool = False
    engine: str = "chroma"


def demo_runbook_source() -> Path:
    """The shipped ``runbooks/demo.yaml`` (inside the package when installed from a wheel)."""
    for candidate in (
        Path(__file__).parent / "runbooks" / "demo.yaml",
        Path(__file__).resolve().parents[1] / "runbooks" / "demo.yaml",
    ):
        if candidate.is_file():
            return candidate
    raise DrconsoleError(
        "the demo runbook runbooks/demo.yaml is missing from this installation",
        "reinstall drconsole",
    )


def run_demo(
    options: DemoOptions, say: Callable[[str], None], open_console: Callable[[Path, Path], None]
) -> int:
    """Set the stage, then walk it (headless drill) or open the console; returns the exit code."""
    workdir = options.workdir
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"{workdir} is a file, not a folder", "give a new folder as --workdir")
    if workdir.is_dir() and any(workdir.iterdir()):
        again = workdir / "demo.yaml"
        raise UsageError(
            f"{workdir} is not empty; the demo sets its stage in a new folder",
            "give another --workdir"
            + (f"; to walk this demo again: drconsole drill {again}" if again.exists() else ""),
        )
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        runbook = _stage(options, say)
        if not options.headless:
            say(
                "opening the console on the demo runbook: press r on the newest snapshot to restore"
            )
            open_console(runbook, workdir / "runs")
            return 0
        result = _walk(runbook, workdir / "runs", say)
        return result.exit_code
    finally:
        stop_all()


def _stage(options: DemoOptions, say: Callable[[str], None]) -> Path:
    workdir = options.workdir
    help_count, ticket_count = SIZES[options.size]
    say(f"starting a sandbox {options.engine} as production in {workdir / 'production'}")
    production = start_production(options.engine, workdir / "production")
    specs = {
        "help_articles": CorpusSpec("help", help_count, seed=1),
        "support_tickets": CorpusSpec("ticket", ticket_count, seed=2),
    }
    for name, spec in specs.items():
        say(f"seeding {name}: {spec.count} records, 384-d vectors clustered by topic, 4 tenants")
        production.create(name, spec)
        for batch in batches(spec, 1000):
            production.engine.upsert(name, production.shaped(batch))
    store, catalog_section = _catalog(options, say)
    request = SnapshotRequest(
        engine=production.engine,
        store=store,
        key=CatalogKey.from_reference(f"file:{workdir / KEY_FILE}", create=True),
        collections=list(COLLECTIONS),
        name="kb",
        tenant_field="tenant_id",
        acl_field="acl_groups",
        ingest_checkpoint={"kafka:kb-updates": "offset 10000"},
    )
    say("taking a full snapshot")
    create_snapshot(request)
    request.incremental = True
    for number, offset in ((1, 10400), (2, 10900)):
        _change(production, specs, number)
        if number == 2:
            say("capturing golden queries from the healthy system (kept with the next snapshot)")
            golden = capture(
                production.engine, "help_articles", queries=30, k=10, filter_field="tenant_id"
            )
            (workdir / "golden").mkdir(exist_ok=True)
            request.golden = save_golden(golden, workdir / "golden" / "kb.json")
        say(f"data changed (adds, updates, deletes); taking incremental #{number}")
        request.ingest_checkpoint = {"kafka:kb-updates": f"offset {offset}"}
        create_snapshot(request)
    say("DISASTER: the collections are deleted from production")
    for name in COLLECTIONS:
        production.engine.delete_collection(name)
    production.engine.close()
    production.server.discard()  # what the disaster left of it is not needed again
    runbook = workdir / "demo.yaml"
    text = demo_runbook_source().read_text(encoding="utf-8").replace(LOCAL_CATALOG, catalog_section)
    for key, line in production.runbook.items():
        if CHROMA_RUNBOOK[key] not in text:
            raise DrconsoleError(
                f"the demo runbook has no line {CHROMA_RUNBOOK[key]!r} to make {key!r} of",
                "reinstall drconsole",
            )
        text = text.replace(CHROMA_RUNBOOK[key], line)
    runbook.write_text(text, encoding="utf-8")
    load_runbook(runbook)
    return runbook


def _catalog(options: DemoOptions, say: Callable[[str], None]) -> tuple[ObjectStore, str]:
    """The catalog's store and the runbook line naming it: a folder, or a bucket in a
    sandbox S3 that the runbook serves again from its folder whenever it is used."""
    if not options.s3:
        (options.workdir / "catalog").mkdir(exist_ok=True)
        return LocalStore(options.workdir / "catalog"), LOCAL_CATALOG
    say("starting a sandbox S3 (SeaweedFS) for the catalog")
    (options.workdir / "s3" / "data").mkdir(parents=True, exist_ok=True)
    server = serve_s3(options.workdir / "s3")
    server.create_bucket(BUCKET)
    store = S3Store(BUCKET, "kb", endpoint=server.endpoint, keys=server.keys)
    return store, (
        f'catalog: {{sandbox: s3, folder: s3, url: "s3://{BUCKET}/kb", key: "file:{KEY_FILE}"}}'
    )


def _change(production: Production, specs: dict[str, CorpusSpec], number: int) -> None:
    """Adds, updates and deletes between snapshots, like a live system."""
    engine = production.engine
    for name, spec in specs.items():
        grown = CorpusSpec(spec.prefix, spec.count + 100 * number, seed=spec.seed, version=number)
        added = records(grown, spec.count + 100 * (number - 1), spec.count + 100 * number)
        engine.upsert(name, production.shaped(added))
        engine.upsert(name, production.shaped(records(grown, 50 * number, 50 * number + 40)))
        engine.delete(
            name, [f"{spec.prefix}-{n:06d}" for n in range(500 + 10 * number, 505 + 10 * number)]
        )


def _walk(runbook: Path, runs: Path, say: Callable[[str], None]) -> DrillResult:
    say("walking the demo runbook as a drill (headless)")
    store = RunStore(runs)
    runner = Runner.start(load_runbook(runbook), "drill", store)
    try:
        result = drive(runner, DrillOptions())
    finally:
        runner.close()
    report = runs.parent / "report.md"
    report.write_text(
        markdown_report(result.metrics, store.read(runner.run_id).events), encoding="utf-8"
    )
    say(f"{result.message}; report written to {report}")
    return result
