"""Durations (``90s``, ``15m``, ``1h30m``) and UTC timestamps, parsed and printed one way."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``15m``, ``2h``, ``1h30m`` or ``250ms``.

    Raises ValueError with a readable message for anything else (a bare number is refused
    because ``30`` could mean seconds or minutes).
    """
    compact = text.strip().replace(" ", "")
    if compact == "0":
        return 0.0
    if not compact:
        raise ValueError("an empty duration")
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(compact):
        raise ValueError(
            f"{text!r} is not a duration: write a number with a unit, like 90s, 15m, 2h or 1h30m"
        )
    return total


def format_duration(seconds: float | None) -> str:
    """A short human duration: ``42s``, ``12m 05s``, ``2h 03m``, ``3d 04h`` from two days
    on (an age of "1982h" says nothing at a glance); ``-`` when unknown."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    whole = round(abs(seconds))
    if abs(seconds) < 10 and abs(seconds) != whole:
        return f"{sign}{abs(seconds):.1f}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 48:
        days, hours = divmod(hours, 24)
        return f"{sign}{days}d {hours:02d}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``: ``2026-11-22T10:15:00.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.astimezone(UTC).microsecond // 1000:03d}Z"
    )


def parse_utc(text: str) -> datetime:
    """A timezone-aware datetime from ISO 8601; a time without an offset is refused.

    Raises ValueError naming the text when it is not a full timestamp with a zone.
    """
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a timestamp: use ISO 8601 with a zone, like 2026-11-22T10:15:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z for UTC, like 2026-11-22T10:15:00Z")
    return moment.astimezone(UTC)


MOMENT_FORMS = "now, a local time (15:55), a time ago (10m ago) or ISO 8601 (2026-11-22T15:55Z)"
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_moment(text: str, now: datetime) -> datetime:
    """When something happened, as people say it: ``now``, ``15:55`` (today, this
    machine's local time), ``10m ago`` / ``1h30m ago``, or ISO 8601 with a zone. A moment
    after ``now`` is refused. Raises ValueError saying what is accepted."""
    candidate = text.strip().lower()
    if candidate in ("", "now"):
        return now
    if candidate.endswith(" ago"):
        try:
            moment = now - timedelta(seconds=parse_duration(candidate[: -len(" ago")]))
        except ValueError:
            raise ValueError(f"{text!r}: write {MOMENT_FORMS}") from None
    elif match := _CLOCK.match(candidate):
        hours, minutes = int(match.group(1)), int(match.group(2))
        if hours > 23 or minutes > 59:
            raise ValueError(f"{text!r} is not a time of day")
        local = now.astimezone()
        moment = local.replace(hour=hours, minute=minutes, second=0, microsecond=0).astimezone(UTC)
    else:
        try:
            moment = parse_utc(text)
        except ValueError:
            raise ValueError(f"{text!r}: write {MOMENT_FORMS}") from None
    if moment > now:
        raise ValueError(f"{text!r} is in the future ({format_utc(moment)})")
    return moment


def compact_utc(moment: datetime) -> str:
    """A timestamp usable in ids and file names: ``20261122T101500Z``."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def compact_utc_ms(moment: datetime) -> str:
    """``compact_utc`` to the millisecond: ``20261122T101500123Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y%m%dT%H%M%S") + f"{utc.microsecond // 1000:03d}Z"


_COMPACT = re.compile(r"^(\d{8}T\d{6})(\d{3})?Z")


def parse_compact_utc(text: str) -> datetime | None:
    """The time at the start of an id made with ``compact_utc`` or ``compact_utc_ms``;
    None when it has none."""
    match = _COMPACT.match(text)
    if match is None:
        return None
    try:
        moment = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.replace(microsecond=int(match.group(2) or 0) * 1000)
