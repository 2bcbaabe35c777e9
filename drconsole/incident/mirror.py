"""Copies of run records in the catalog (``<catalog>/runs/<run-id>.jsonl`` and its head),
so the team's timeline survives the laptop a run was walked on, and the copy is a second
anchor: a local record cut back to fewer lines than its copy was rolled back.

The runner copies the record after every step and when the run finishes. ``fetch_runs``
brings every copy into a folder that ``RunStore`` reads like its own.
"""

from __future__ import annotations

from pathlib import Path

from drconsole.catalog.store import MissingObject, ObjectStore
from drconsole.durable import open_private, private_folder
from drconsole.errors import RecordError
from drconsole.incident.anchor import head_path
from drconsole.incident.record import RecordRead
from drconsole.wording import plural

RUNS = "runs/"


def mirror_record(store: ObjectStore, record: Path) -> None:
    """Upload the record and its head anchor (the record last: a reader that finds a
    record finds its head)."""
    head = head_path(record)
    if head.exists():
        with store.writer(f"{RUNS}{head.name}") as out:
            out.write(head.read_bytes())
    with store.writer(f"{RUNS}{record.name}") as out:
        out.write(record.read_bytes())


def fetch_runs(store: ObjectStore, folder: Path) -> int:
    """Download every run record of the catalog (with its head) into ``folder``; the
    number of records."""
    private_folder(folder)
    count = 0
    for info in store.list(RUNS):
        name = info.key[len(RUNS) :]
        if "/" in name or not name.endswith((".jsonl", ".head")):
            continue
        fd = open_private(folder / name, append=False)
        with open(fd, "wb", closefd=True) as out:
            out.write(store.read(info.key))
        count += name.endswith(".jsonl")
    return count


def compare_with_copy(store: ObjectStore, read: RecordRead) -> str | None:
    """Why the local record disagrees with its catalog copy (None when the copy is a
    prefix of it, or there is no copy). A copy with lines the local record lacks means
    the local record was cut back."""
    try:
        copy = store.read(f"{RUNS}{read.path.name}")
    except MissingObject:
        return None
    try:
        local = read.path.read_bytes()
    except OSError as error:
        raise RecordError(f"{read.path}: cannot read it ({error.strerror})") from None
    if local.startswith(copy):
        return None
    if copy.startswith(local):
        lines = copy.count(b"\n") - local.count(b"\n")
        return (
            f"the catalog's copy has {plural(lines, 'line')} more than this record: this record "
            "was cut back (rolled back)"
        )
    return "this record and the catalog's copy differ: one of them was changed"
