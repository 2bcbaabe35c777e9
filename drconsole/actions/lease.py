"""Leases at the target: two runs never restore into the same collection at once.

Before restore_schema writes, the run takes a lease on each collection it restores: a
marker collection ``drconsole.lease.NAME`` created in the target (creation by name is
atomic: of two runs racing, one gets it) whose metadata names the run, its host and pid,
and when the lease ends. A second run is refused, naming the first. The same run resumed
takes its own lease back; a lease past its end (its run died) may be taken over; a
finished run releases its leases. restore_data checks the lease is still its own before
it writes.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from drconsole.engines.base import SCOPE, Engine
from drconsole.errors import DrconsoleError
from drconsole.model.schema import CollectionSchema
from drconsole.timefmt import format_utc, parse_utc, utc_now

PREFIX = "drconsole.lease."
LEASE = timedelta(hours=24)


def lease_name(collection: str) -> str:
    """The marker beside the collection (in its scope, when its name has one)."""
    scope, separator, name = collection.rpartition(SCOPE)
    return f"{scope}{separator}{PREFIX}{name}"


def take_leases(engine: Engine, collections: list[str], run_id: str) -> None:
    """Take (or renew) this run's lease on every collection, or raise naming the run
    that holds one; a refusal takes nothing."""
    taken = []
    try:
        for name in collections:
            _take(engine, name, run_id)
            taken.append(name)
    except DrconsoleError:
        for name in taken:
            _release(engine, name, run_id)
        raise


def check_leases(engine: Engine, collections: list[str], run_id: str) -> None:
    """Raise unless this run still holds the lease on every collection."""
    for name in collections:
        holder = _holder(engine, name)
        if holder is None or holder.get("run_id") != run_id:
            raise DrconsoleError(
                f"this run no longer holds the lease on {name} in the target"
                + (f": run {holder.get('run_id')} holds it" if holder else ""),
                "nothing was written; run restore_schema again to take the lease",
            )


def release_leases(engine: Engine, collections: list[str], run_id: str) -> None:
    for name in collections:
        _release(engine, name, run_id)


def _take(engine: Engine, name: str, run_id: str) -> None:
    metadata = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "until": format_utc(utc_now() + LEASE),
    }
    for _ in range(2):
        if engine.try_create_collection(lease_name(name), _MARKER, metadata) is not None:
            return
        holder = _holder(engine, name) or {}
        if holder.get("run_id") == run_id or _ended(holder):
            engine.delete_collection(lease_name(name))
            continue
        raise DrconsoleError(
            f"collection {name} in the target is being restored by run {holder.get('run_id')} "
            f"(pid {holder.get('pid')} on {holder.get('host')}, lease until "
            f"{holder.get('until')}); nothing was written",
            "wait for that run to finish, or restore into another target",
        )
    raise DrconsoleError(f"could not take the lease on {name}: another run keeps taking it")


def _release(engine: Engine, name: str, run_id: str) -> None:
    holder = _holder(engine, name)
    if holder is not None and holder.get("run_id") == run_id:
        engine.delete_collection(lease_name(name))


def _holder(engine: Engine, name: str) -> dict[str, object] | None:
    info = engine.get_collection(lease_name(name))
    return None if info is None else dict(info.metadata)


def _ended(holder: dict[str, object]) -> bool:
    try:
        until: datetime = parse_utc(str(holder.get("until")))
    except ValueError:
        return False
    return until < utc_now()


_MARKER = CollectionSchema.dense(0, "l2")
