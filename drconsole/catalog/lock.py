"""The catalog lock: ``snapshot create`` holds it shared and ``catalog prune`` exclusive,
so a prune never deletes the parent an incremental is being built on, nor a snapshot
being written (restic and pgBackRest lock their repositories the same way).

A lock is an object under ``locks/``, written create-only, that carries its holder and
a lease. The holder renews the lease while it works; a lock whose lease ran out is
ignored (its holder died without releasing it). After writing its own lock, a taker
lists the others: an exclusive taker backs off if any other lock is live, a shared one
if a live exclusive lock exists. Two takers that race both see each other and both back
off; neither proceeds alongside the other.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from drconsole.catalog.store import MissingObject, ObjectStore
from drconsole.errors import StoreError
from drconsole.timefmt import compact_utc_ms, format_utc, parse_utc, utc_now

LOCKS = "locks/"
LEASE_S = 600.0
RENEW_EVERY_S = 120.0


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, read from its object."""

    key: str
    operation: str
    exclusive: bool
    host: str
    pid: int
    expires_at: datetime | None

    def describe(self) -> str:
        kind = "exclusively" if self.exclusive else "shared"
        until = format_utc(self.expires_at) if self.expires_at else "an unreadable time"
        return (
            f"{self.operation} (pid {self.pid} on {self.host}) holds it {kind}, lease until {until}"
        )


@dataclass
class CatalogLock:
    """A lock this process holds; renewed on a thread until released."""

    store: ObjectStore
    key: str
    body: dict[str, Any]
    lease_s: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _renewer: threading.Thread | None = None

    def _write(self) -> None:
        self.body["expires_at"] = format_utc(utc_now() + timedelta(seconds=self.lease_s))
        with self.store.writer(self.key) as handle:
            handle.write(json.dumps(self.body).encode())

    def _renew(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self._write()
            except StoreError:
                continue

    def still_held(self) -> None:
        """Raise unless our lock is still there and its lease has not run out (checked
        before a write that must not race a prune, such as a snapshot's manifest)."""
        holder = _read(self.store, self.key)
        if holder is None or holder.expires_at is None or holder.expires_at <= utc_now():
            raise StoreError(
                f"the catalog lock {self.key} in {self.store.url} was lost (removed, or its "
                "lease ran out while this process was stalled); nothing more was written",
                "run the command again",
            )

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        self.store.delete([self.key])

    def __enter__(self) -> CatalogLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_catalog(
    store: ObjectStore,
    operation: str,
    *,
    exclusive: bool,
    lease_s: float = LEASE_S,
    renew_every_s: float = RENEW_EVERY_S,
) -> CatalogLock:
    """Take the catalog lock for ``operation``, or raise StoreError naming who holds it."""
    kind = "exclusive" if exclusive else "shared"
    key = f"{LOCKS}{kind}-{compact_utc_ms(utc_now())}-{secrets.token_hex(4)}.json"
    body: dict[str, Any] = {
        "operation": operation,
        "exclusive": exclusive,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "expires_at": format_utc(utc_now() + timedelta(seconds=lease_s)),
    }
    store.create(key, json.dumps(body).encode())
    now = utc_now()
    conflicts = [
        holder
        for holder in live_holders(store, now)
        if holder.key != key and (exclusive or holder.exclusive)
    ]
    if conflicts:
        store.delete([key])
        raise StoreError(
            f"the catalog {store.url} is locked: {conflicts[0].describe()}",
            f"wait for it to finish; if its holder is gone, the lock expires with its lease "
            f"(or remove {conflicts[0].key} once you are sure nothing uses it)",
        )
    lock = CatalogLock(store, key, body, lease_s)
    lock._renewer = threading.Thread(
        target=lock._renew, args=(renew_every_s,), daemon=True, name="catalog-lock"
    )
    lock._renewer.start()
    return lock


def live_holders(store: ObjectStore, now: datetime) -> list[Holder]:
    """Every lock whose lease has not run out; an unreadable lock counts as live (we
    cannot tell it is not)."""
    holders = []
    for info in store.list(LOCKS):
        holder = _read(store, info.key)
        if holder is not None and (holder.expires_at is None or holder.expires_at > now):
            holders.append(holder)
    return holders


def _read(store: ObjectStore, key: str) -> Holder | None:
    try:
        raw = json.loads(store.read(key))
    except MissingObject:
        return None
    except (ValueError, UnicodeDecodeError):
        raw = None
    if not isinstance(raw, dict):
        return Holder(key, "an unreadable lock", True, "?", 0, None)
    try:
        expires = parse_utc(str(raw.get("expires_at")))
    except ValueError:
        expires = None
    return Holder(
        key,
        str(raw.get("operation", "?")),
        bool(raw.get("exclusive", True)),
        str(raw.get("host", "?")),
        int(raw["pid"]) if isinstance(raw.get("pid"), int) else 0,
        expires,
    )
