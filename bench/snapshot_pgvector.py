"""A snapshot of a 100,000 x 384-d PostgreSQL table with fields (drconsole's snapshot
create: one REPEATABLE READ transaction, binary COPY out, records checked and hashed,
format-2 parts written) against a bare ``COPY (SELECT ...) TO STDOUT (FORMAT BINARY)``
of the same table into a file by a minimal psycopg script, on the same server in the
same run. Alternating rounds; medians and spread. Goal: <= 1.3x the bare COPY's time.

    python bench/snapshot_pgvector.py [--records 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pgvector_common import connect, create_source, ratio_line, rows, start

from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.local import LocalStore
from drconsole.engines import open_engine

COLUMNS = "id, embedding, title, n, score, tenant_id, created"


def bare_round(connection, out: Path) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    with connection.transaction(), out.open("wb") as file:
        connection.execute("set transaction isolation level repeatable read")
        query = f"copy (select {COLUMNS} from src.items) to stdout (format binary)"
        with connection.cursor().copy(query) as copy:
            for block in copy:
                file.write(block)
    return time.perf_counter() - started


def drconsole_round(server, folder: Path) -> float:  # type: ignore[no-untyped-def]
    engine = open_engine(
        {"engine": "pgvector", "url": server.url, "schema": "src", "token": server.token_reference}
    )
    folder.mkdir(parents=True)
    started = time.perf_counter()
    create_snapshot(
        SnapshotRequest(
            engine=engine, store=LocalStore(folder), collections=["items"], name="bench"
        )
    )
    took = time.perf_counter() - started
    engine.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        server = start(folder)
        try:
            connection = connect(server)
            create_source(connection, "src", rows(args.records), index=False)
            ours, bare = [], []
            for number in range(args.rounds):
                bare.append(bare_round(connection, folder / f"bare{number}.copy"))
                ours.append(drconsole_round(server, folder / f"catalog{number}"))
                print(f"round {number + 1}: bare COPY {bare[-1]:.2f} s, drconsole {ours[-1]:.2f} s")
            connection.close()
        finally:
            server.discard()
    print(ratio_line(f"snapshot of {args.records:,} x 384", ours, bare, "goal <= 1.3x"))


if __name__ == "__main__":
    main()
