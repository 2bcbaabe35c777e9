"""Restoring a 100,000 x 384-d PostgreSQL table with fields end to end (drconsole's
restore as a drill: verify, schema, data with the HNSW index built after it) against a
minimal psycopg script that does the least a restore can: CREATE TABLE, COPY FROM STDIN
(FORMAT BINARY) of the same rows from memory, CREATE INDEX with the same settings
(maintenance_work_mem 256MB, 2 parallel workers). Same server, same run, alternating
rounds; medians and spread. Goal: <= 1.3x the bare script's time.

With ``--pg-dump`` it also times ``pg_dump -Fc`` of the source table and ``pg_restore`` of
that dump (once: the dump alone took 111 s for 100k rows here) and reports the ratio.

    python bench/restore_pgvector.py [--records 100000] [--rounds 3] [--pg-dump]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pgvector_common import (
    BUILD,
    COLUMNS,
    INDEX,
    connect,
    copy_in,
    create_source,
    ratio_line,
    rows,
    start,
)

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.local import LocalStore
from drconsole.drill import DrillOptions, drive
from drconsole.engines import open_engine
from drconsole.incident.record import read_record
from drconsole.incident.store import RunStore
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner


def bare_round(connection, schema: str, data) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    connection.execute(f"create schema {schema}")
    connection.execute(f"create table {schema}.items ({COLUMNS})")
    copy_in(connection, f"{schema}.items", data)
    for setting in BUILD:
        connection.execute(setting)
    connection.execute(f"create index on {schema}.items {INDEX}")
    connection.execute(f"analyze {schema}.items")
    return time.perf_counter() - started


def drconsole_round(server, folder: Path, schema: str) -> float:  # type: ignore[no-untyped-def]
    runbook = folder / f"{schema}.yaml"
    runbook.write_text(
        textwrap.dedent(f"""
        schema: drconsole/runbook/v1
        id: bench
        title: bench
        objectives: {{rto: 1h}}
        catalog: {{url: {folder / "catalog"}, allow_unsigned: true}}
        source: {{engine: pgvector, schema: src}}
        target: {{engine: pgvector, url: "{server.url}", schema: {schema},
                  token: "{server.token_reference}"}}
        steps:
          - {{id: verify, action: verify_chain, with: {{depth: manifest}}}}
          - {{id: schema, action: restore_schema}}
          - {{id: data, action: restore_data, marks: service_restored}}
    """)
    )
    runner = Runner.start(load_runbook(runbook), "drill", RunStore(folder / "runs"))
    try:
        result = drive(runner, DrillOptions(yes=True))
    finally:
        runner.close()
    assert result.exit_code == 0, result.message
    events = read_record(runner.record_path).events
    return sum(
        e.data["duration_s"]
        for e in events
        if e.type == "step.finished" and e.step_id in ("schema", "data")
    )


def pg_dump_round(server, folder: Path) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(dump, restore) seconds of pg_dump -Fc and pg_restore of the source table."""
    passfile = folder / "pgpass"
    passfile.write_text(f"127.0.0.1:{server.port}:*:drconsole:{server.password}\n")
    passfile.chmod(0o600)
    env = {"PATH": os.environ.get("PATH", ""), "PGPASSFILE": str(passfile)}
    where = ["-h", "127.0.0.1", "-p", str(server.port), "-U", "drconsole", "-d", "postgres"]
    bin_dir = server.install / "bin"
    dump = folder / "items.dump"
    started = time.perf_counter()
    subprocess.run(
        [bin_dir / "pg_dump", *where, "-Fc", "-t", "src.items", "-f", dump], env=env, check=True
    )
    dumped = time.perf_counter() - started
    connection = connect(server)
    connection.execute("create database dumped")
    connection.close()
    with server.connect("dumped") as target:
        target.execute("create extension vector")
        target.execute("create schema src")
    started = time.perf_counter()
    subprocess.run(
        [bin_dir / "pg_restore", *where[:-2], "-d", "dumped", "--no-owner", dump],
        env=env,
        check=True,
    )
    return dumped, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-dump", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        server = start(folder)
        try:
            connection = connect(server)
            data = rows(args.records)
            create_source(connection, "src", data)
            engine = open_engine(
                {
                    "engine": "pgvector",
                    "url": server.url,
                    "schema": "src",
                    "token": server.token_reference,
                }
            )
            (folder / "catalog").mkdir()
            create_snapshot(
                SnapshotRequest(
                    engine=engine,
                    store=LocalStore(folder / "catalog"),
                    collections=["items"],
                    name="bench",
                )
            )
            engine.close()
            ours, bare = [], []
            for number in range(args.rounds):
                bare.append(bare_round(connection, f"bare{number}", data))
                ours.append(drconsole_round(server, folder, f"ours{number}"))
                print(f"round {number + 1}: bare {bare[-1]:.2f} s, drconsole {ours[-1]:.2f} s")
            connection.close()
            print(ratio_line(f"restore of {args.records:,} x 384", ours, bare, "goal <= 1.3x"))
            if args.pg_dump:
                dumped, restored = pg_dump_round(server, folder)
                median = sorted(ours)[len(ours) // 2]
                print(
                    f"pg_dump -Fc {dumped:.1f} s, pg_restore {restored:.1f} s; "
                    f"drconsole restore / pg_restore: {median / restored:.2f}x"
                )
        finally:
            server.discard()


if __name__ == "__main__":
    main()
