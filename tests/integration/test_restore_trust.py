"""Which snapshot a restore may use, end to end on a real Chroma server: the newest
restorable one of the runbook's own source, authenticated, and `fallback: false` meaning
what it says. The shared catalog lives on real S3 (SeaweedFS)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import BUCKET

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.layout import manifest_key
from drconsole.catalog.s3 import S3Store
from drconsole.corpus import CorpusSpec, records
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.incident.record import read_record
from drconsole.sandbox import SeaweedS3
from drconsole.timefmt import format_utc

from chroma_restore import restore_runbook, run_drill, seed, snapshot
from helpers import catalog_key, run_cli, write_runbook

pytestmark = pytest.mark.integration


def _verify_step(runs: Path) -> dict:
    events = read_record(next(runs.glob("*.jsonl"))).events
    return next(e.data for e in events if e.type == "step.finished" and e.step_id == "verify")


@pytest.fixture
def chain(source_engine: ChromaEngine, tmp_path: Path) -> tuple[Path, str, str]:
    """A signed full and incremental whose newest manifest was then damaged."""
    catalog = tmp_path / "catalog"
    seed(source_engine, "kb_articles", CorpusSpec("kb", 300))
    full = snapshot(source_engine, catalog, ["kb_articles"])
    source_engine.upsert("kb_articles", records(CorpusSpec("kb", 320, version=1), 300, 320))
    newest = snapshot(source_engine, catalog, ["kb_articles"], incremental=True)
    (catalog / manifest_key(newest.id)).write_text('{"format": "drconsole-snapshot/1"}')
    return catalog, full.id, newest.id


def test_fallback_false_fails_on_an_invalid_newest_manifest(
    chain: tuple[Path, str, str], chroma_target: dict[str, str], tmp_path: Path
) -> None:
    catalog, _, newest = chain
    runs = tmp_path / "strict-runs"
    result = run_drill(restore_runbook(tmp_path, catalog, chroma_target, ["kb_articles"]), runs)
    assert result.exit_code == 4, "the lenient default falls back, and says so"
    strict = run_drill(
        restore_runbook(
            tmp_path, catalog, chroma_target, ["kb_articles"], fallback=False, name="strict.yaml"
        ),
        runs,
    )
    assert strict.exit_code != 0
    assert f"newest snapshot {newest} is not restorable: invalid manifest" in strict.message


def test_fallback_true_names_what_it_passed_over_in_the_result_and_the_report(
    chain: tuple[Path, str, str], chroma_target: dict[str, str], tmp_path: Path
) -> None:
    catalog, full, newest = chain
    runs = tmp_path / "runs"
    runbook = restore_runbook(tmp_path, catalog, chroma_target, ["kb_articles"])
    report = tmp_path / "drill.md"
    drill = run_cli(
        "drill", str(runbook), "--yes", "--runs-dir", str(runs), "--report", str(report)
    )
    assert drill.returncode == 4, drill.stderr
    assert " records; " in drill.stderr and "  data: " in drill.stderr, "progress lines"
    verify = _verify_step(runs)
    assert verify["details"]["snapshot_id"] == full
    assert verify["details"]["skipped"][0]["snapshot_id"] == newest
    assert "FELL BACK past 1 newer snapshot:" in verify["summary"]
    text = report.read_text()
    assert "**Fell back** past 1 newer snapshot," in text
    assert f"`{newest}`: invalid manifest" in text
    assert "signed with the catalog key" in text


def test_an_unsigned_catalog_restores_only_when_the_runbook_allows_it(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    seed(source_engine, "kb_articles", CorpusSpec("kb", 200))
    legacy = snapshot(source_engine, catalog, ["kb_articles"], signed=False)
    catalog_key(tmp_path)  # the runbook's key exists, but never signed this snapshot
    refused = run_drill(
        restore_runbook(tmp_path, catalog, chroma_target, ["kb_articles"], name="keyed.yaml"),
        tmp_path / "runs-keyed",
    )
    assert refused.exit_code != 0 and "not signed (no manifest.mac)" in refused.message
    neither = run_drill(
        restore_runbook(
            tmp_path,
            catalog,
            chroma_target,
            ["kb_articles"],
            name="plain.yaml",
            catalog_options="region: here",
        ),
        tmp_path / "runs-plain",
    )
    assert neither.exit_code != 0 and "allow_unsigned: true" in neither.message
    runs = tmp_path / "runs-allowed"
    allowed = run_drill(
        restore_runbook(
            tmp_path,
            catalog,
            chroma_target,
            ["kb_articles"],
            name="allowed.yaml",
            catalog_options="allow_unsigned: true",
        ),
        runs,
    )
    assert allowed.exit_code == 0, allowed.message
    verify = _verify_step(runs)
    assert verify["details"]["snapshot_id"] == legacy.id and verify["details"]["signed"] is False
    assert "NOT AUTHENTICATED (unsigned, or no key to check it" in verify["summary"]


def test_a_shared_catalog_restores_only_the_runbooks_source(
    chroma: ChromaServer,
    seaweed: SeaweedS3,
    s3_credentials: str,
    chroma_target: dict[str, str],
    tmp_path: Path,
) -> None:
    """Two namespaces back up into one S3 catalog under the same collection name;
    default_tenant's snapshot is the newer one. A runbook for acme restores acme's; one
    that cannot say whose data it restores is refused, naming both."""
    prefix = f"shared-{tmp_path.name}"
    acme = ChromaEngine(chroma.url, tenant="acme", database=f"kb_prod_{tmp_path.name[-6:]}")
    other = ChromaEngine(chroma.url, database=f"other_{tmp_path.name[-6:]}")
    for engine, count in ((acme, 150), (other, 90)):
        engine.ensure_namespace()
        seed(engine, "help_articles", CorpusSpec("help", count))
        store = S3Store(BUCKET, prefix, endpoint=seaweed.endpoint, credentials=s3_credentials)
        create_snapshot(
            SnapshotRequest(
                engine=engine,
                store=store,
                collections=["help_articles"],
                name="kb",
                key=catalog_key(tmp_path),
            )
        )
    catalog = (
        f'url: "s3://{BUCKET}/{prefix}", endpoint: "{seaweed.endpoint}", '
        f'credentials: "{s3_credentials}", key: "file:catalog.key"'
    )

    def runbook(name: str, target: str, source: str) -> Path:
        return write_runbook(
            tmp_path,
            f"""
            schema: drconsole/runbook/v1
            id: shared
            title: Restore from a shared catalog
            objectives: {{rto: 1h}}
            catalog: {{{catalog}}}
            target: {target}
            {source}
            collections: [help_articles]
            steps:
              - {{id: verify, action: verify_chain, gate: true}}
              - {{id: schema, action: restore_schema, needs: [verify]}}
              - {{id: data, action: restore_data, needs: [schema]}}
              - {{id: counts, action: check_counts, gate: true, marks: service_restored}}
            """,
            name=name,
        )

    where = f'url: "{chroma_target["url"]}", database: {chroma_target["database"]}'
    ours = runbook(
        "acme.yaml",
        f"{{engine: chroma, {where}}}",
        f"source: {{engine: chroma, tenant: acme, database: {acme.database}}}",
    )
    result = run_drill(ours, tmp_path / "runs-acme")
    assert result.exit_code == 0, result.message
    target = ChromaEngine(chroma_target["url"], database=chroma_target["database"])
    assert target.count("help_articles") == 150, "acme's data, not the newer other one"
    nosuch = runbook(
        "nosuch.yaml",
        f"{{engine: chroma, {where}}}",
        "source: {engine: chroma, tenant: acme, database: nosuch}",
    )
    refused = run_drill(nosuch, tmp_path / "runs-nosuch")
    assert refused.exit_code != 0
    assert "no snapshot in" in refused.message and "is of this runbook's source" in refused.message
    assert f"chroma acme/{acme.database} (1 snapshot)" in refused.message
    listing = json.loads(run_cli("catalog", "list", str(ours), "--json").stdout)
    assert {s["source"]["namespace"]["tenant"] for s in listing["snapshots"]} == {
        "acme",
        "default_tenant",
    }
    table = run_cli("catalog", "list", str(ours)).stdout
    assert "source" in table.splitlines()[2], "the table has a source column"
    assert table.count(" acme/") == 1 and table.count(" default_tenant/") == 1
    for engine in (acme, other):
        engine.close()
    target.close()


def test_a_source_that_cannot_be_told_apart_is_refused(
    chroma: ChromaServer, source_engine: ChromaEngine, tmp_path: Path
) -> None:
    """A sandbox target says nothing about whose data to restore; with two sources of the
    same collections in the catalog, verify_chain refuses to guess."""
    catalog = tmp_path / "catalog"
    second = ChromaEngine(chroma.url, database=f"{source_engine.database}_b")
    second.ensure_namespace()
    for engine in (source_engine, second):
        seed(engine, "kb_articles", CorpusSpec("kb", 50))
        snapshot(engine, catalog, ["kb_articles"])
    runbook = write_runbook(
        tmp_path,
        f"""
        schema: drconsole/runbook/v1
        id: guess
        title: Which one?
        objectives: {{rto: 1h}}
        catalog: {{url: {catalog}, key: "file:catalog.key"}}
        target: {{sandbox: chroma}}
        collections: [kb_articles]
        steps:
          - {{id: verify, action: verify_chain, gate: true, marks: service_restored}}
        """,
    )
    result = run_drill(runbook, tmp_path / "runs")
    assert result.exit_code != 0
    assert "holds snapshots of several sources" in result.message
    assert f"default_tenant/{source_engine.database}" in result.message
    assert f"default_tenant/{second.database}" in result.message
    second.close()


def test_an_incident_restores_from_before_the_impact_unless_told_why_not(
    source_engine: ChromaEngine, chroma_target: dict[str, str], tmp_path: Path
) -> None:
    """The newest snapshot was taken after the impact started (it may hold the damage):
    an incident restores the one before; restoring the later one needs a written reason,
    and then the RPO is negative, shown as a warning and never as met."""
    catalog = tmp_path / "catalog"
    seed(source_engine, "kb_articles", CorpusSpec("kb", 100))
    before = snapshot(source_engine, catalog, ["kb_articles"])
    impact = before.recovery_point + (datetime.now(UTC) - before.recovery_point) / 2
    time.sleep(0.05)
    after = snapshot(source_engine, catalog, ["kb_articles"], incremental=True)
    assert before.recovery_point < impact < after.recovery_point
    flags = ("--mode", "incident", "--impact-start", format_utc(impact), "--yes", "--json")
    runbook = restore_runbook(tmp_path, catalog, chroma_target, ["kb_articles"])
    runs = tmp_path / "runs"
    first = run_cli("drill", str(runbook), *flags, "--runs-dir", str(runs))
    assert first.returncode == 0, first.stderr
    verify = _verify_step(runs)
    assert verify["details"]["snapshot_id"] == before.id
    assert "the newest at or before the impact start" in verify["summary"]
    elsewhere = {**chroma_target, "database": f"{chroma_target['database']}_b"}
    told = restore_runbook(tmp_path, catalog, elsewhere, ["kb_articles"], name="told.yaml")
    told.write_text(
        told.read_text().replace(
            "fallback: true}", 'fallback: true, after_impact_reason: "the damage came later"}'
        )
    )
    later_runs = tmp_path / "runs-later"
    second = run_cli("drill", str(told), *flags, "--runs-dir", str(later_runs))
    assert second.returncode == 4, second.stdout[-2000:]
    shown = json.loads(second.stdout)
    assert shown["rpo_s"] < 0 and shown["rpo_met"] is False
    assert shown["status_label"] == "succeeded with a NEGATIVE RPO"
    assert "NEGATIVE RPO" in shown["rpo_warning"]
    assert _verify_step(later_runs)["details"]["snapshot_id"] == after.id
