"""Regenerate screenshots/*.svg from the real console on a seeded knowledge base.

Starts a throwaway Chroma server, seeds two collections, takes a full and an incremental
snapshot into a local catalog, then drives the console: the catalog, a run in the middle
of restore_data, a failed gate with the override dialog, and the timeline.

    python scripts/screenshots.py [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import textwrap
from pathlib import Path

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.auth import CatalogKey
from drconsole.catalog.local import LocalStore
from drconsole.corpus import CorpusSpec, batches, records
from drconsole.engines.chroma import ChromaEngine
from drconsole.sandbox import ChromaServer
from drconsole.schema import CollectionSchema
from drconsole.tui.app import make_app
from drconsole.tui.modals import ReasonModal
from drconsole.tui.run_screen import RunScreen

SIZE = (130, 38)


def prepare(folder: Path, server: ChromaServer) -> Path:
    production = ChromaEngine(server.url, database="production")
    production.ensure_namespace()
    for name, spec in (
        ("help_articles", CorpusSpec("help", 6000, seed=1)),
        ("support_tickets", CorpusSpec("ticket", 2000, seed=2)),
    ):
        production.create_collection(
            name, CollectionSchema(384, "cosine"), {"embedding_model": "all-MiniLM-L6-v2"}
        )
        for batch in batches(spec, 2000):
            production.upsert(name, batch)
    catalog = folder / "catalog"
    catalog.mkdir()
    request = SnapshotRequest(
        engine=production,
        store=LocalStore(catalog),
        key=CatalogKey.from_reference(f"file:{folder / 'catalog.key'}", create=True),
        name="kb",
        collections=["help_articles", "support_tickets"],
        tenant_field="tenant_id",
        acl_field="acl_groups",
        ingest_checkpoint={"kafka:kb-updates": "offset 88123"},
    )
    create_snapshot(request)
    production.upsert(
        "help_articles", records(CorpusSpec("help", 6200, seed=1, version=1), 5900, 6200)
    )
    request.incremental = True
    create_snapshot(request)
    runbook = folder / "kb-restore.yaml"
    runbook.write_text(
        textwrap.dedent(f"""
        schema: drconsole/runbook/v1
        id: kb-restore
        title: Restore the support knowledge base
        owner: search-sre
        objectives: {{rto: 30m, rpo: 4h}}
        catalog: {{url: catalog, key: "file:catalog.key"}}
        target: {{engine: chroma, url: "{server.url}", database: restored}}
        source: {{engine: chroma, database: production}}
        collections: [help_articles, support_tickets]
        permissions: {{tenant_field: tenant_id, acl_field: acl_groups}}
        steps:
          - id: declare
            title: Declare the drill and freeze ingestion
            kind: manual
            instructions: |
              Scale the **ingestion workers** to zero, then confirm.
              Ingestion resumes later from `{{{{ snapshot.ingest_checkpoint }}}}`.
          - id: verify
            title: Verify the chain
            action: verify_chain
            with: {{depth: full}}
            gate: true
          - {{id: schema, title: Restore collections, action: restore_schema}}
          - id: data
            title: Restore records
            action: restore_data
            with: {{batch: 100, in_flight: 1}}
          - {{id: counts, title: Check counts and schema, action: check_counts, gate: true}}
          - id: permissions
            title: Check tenant isolation
            action: check_permissions
            gate: true
            marks: service_restored
          - id: resume
            title: Resume ingestion
            kind: manual
            instructions: "Resume from the checkpoint."
    """)
    )
    return runbook


async def shoot(folder: Path, runbook: Path, server: ChromaServer, out: Path) -> None:
    app = make_app(runs_dir=folder / "runs", runbook=runbook)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.save_screenshot(str(out / "catalog.svg"))
        app.start_run("drill", None)
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("c")
        for _ in ("verify", "schema"):
            await pilot.press("x")
            await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("x")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        while (
            app.runner is not None
            and (app.runner.state.steps["data"].checkpoint or {}).get("records", 0) < 3000
        ):
            await asyncio.sleep(0.1)
        await pilot.pause()
        app.save_screenshot(str(out / "run-restoring.svg"))
        await app.workers.wait_for_complete()
        await pilot.pause()
        target = ChromaEngine(server.url, database="restored")
        target.delete("support_tickets", ["ticket-000007", "ticket-000100", "ticket-001500"])
        await pilot.press("x")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, ReasonModal)
        await pilot.press(*"3 tickets were deleted by the customer during the drill")
        app.save_screenshot(str(out / "gate-override.svg"))
        await pilot.press("enter")
        await pilot.press("x")
        await app.workers.wait_for_complete()
        await pilot.press("c", "f")
        await pilot.pause()
        app.show_timeline()
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.save_screenshot(str(out / "timeline.svg"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "screenshots"
    )
    args = parser.parse_args()
    args.out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="drconsole-screens-") as name:
        folder = Path(name)
        server = ChromaServer(folder / "chroma")
        server.start()
        try:
            runbook = prepare(folder, server)
            asyncio.run(shoot(folder, runbook, server, args.out))
        finally:
            server.stop()
    print(f"screenshots written to {args.out}")


if __name__ == "__main__":
    main()
