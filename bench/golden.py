"""``golden_queries`` with 200 queries, k=10, against 50,000 records of 384-d: the time
drconsole spends computing (recall, rank overlap, exact brute force) against the time it
waits on the server, as the action itself records them. Goal: drconsole's share < 10%.

    python bench/golden.py [--records 50000] [--queries 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
from pathlib import Path

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.local import LocalStore
from drconsole.corpus import CorpusSpec, batches
from drconsole.drill import DrillOptions, drive
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.golden import capture, save_golden
from drconsole.incident.record import read_record
from drconsole.incident.store import RunStore
from drconsole.model.schema import CollectionSchema
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        server = ChromaServer(folder / "chroma")
        server.start()
        try:
            engine = ChromaEngine(server.url)
            engine.create_collection("kb_articles", CollectionSchema.dense(384, "cosine"), {})
            for batch in batches(CorpusSpec("kb", args.records), 2500):
                engine.upsert("kb_articles", batch)
            golden = capture(engine, "kb_articles", queries=args.queries, k=10)
            save_golden(golden, folder / "kb.golden.json")
            (folder / "catalog").mkdir()
            create_snapshot(
                SnapshotRequest(
                    engine=engine,
                    store=LocalStore(folder / "catalog"),
                    collections=["kb_articles"],
                    name="kb",
                )
            )
            (folder / "runbook.yaml").write_text(
                textwrap.dedent(f"""
                schema: drconsole/runbook/v1
                id: golden-bench
                title: golden bench
                objectives: {{rto: 1h}}
                catalog: {{url: {folder / "catalog"}, allow_unsigned: true}}
                target: {{engine: chroma, url: "{server.url}"}}
                golden: kb.golden.json
                steps:
                  - {{id: verify, action: verify_chain, with: {{depth: manifest}}}}
                  - id: golden
                    action: golden_queries
                    with: {{mode: exact, min_recall: 0.5}}
                    marks: service_restored
            """)
            )
            shares, servers, computes = [], [], []
            for number in range(args.rounds):
                runner = Runner.start(
                    load_runbook(folder / "runbook.yaml"), "drill", RunStore(folder / "runs")
                )
                try:
                    result = drive(runner, DrillOptions(yes=True))
                finally:
                    runner.close()
                assert result.exit_code == 0, result.message
                events = read_record(runner.record_path).events
                details = next(
                    e.data["details"]
                    for e in events
                    if e.type == "step.finished" and e.step_id == "golden"
                )
                timing = details["timing"]
                share = timing["compute_s"] / (timing["compute_s"] + timing["server_s"])
                shares.append(share)
                servers.append(timing["server_s"])
                computes.append(timing["compute_s"])
                print(
                    f"round {number + 1}: server {timing['server_s']:.2f}s, "
                    f"drconsole {timing['compute_s']:.3f}s, share {100 * share:.1f}% "
                    f"(+ {timing['record_s']:.2f}s writing check results to the record) "
                    f"(recall {details['recall']:.3f}, exact {details['exact_recall']:.3f})"
                )
        finally:
            server.stop()
    print(
        f"median: waiting on the server {statistics.median(servers):.2f}s, "
        f"drconsole's own work {statistics.median(computes):.3f}s"
    )
    print(f"drconsole's share: {100 * statistics.median(shares):.1f}% (goal < 10%)")


if __name__ == "__main__":
    main()
