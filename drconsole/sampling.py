"""``sample:N%``: the one spelling of "a share of it" that verification depths and the
content check accept."""

from __future__ import annotations

from typing import Any


def sample_percent(value: Any) -> float | None:
    """N of ``sample:N%`` when 0 < N <= 100, else None."""
    if not isinstance(value, str) or not value.startswith("sample:") or not value.endswith("%"):
        return None
    try:
        percent = float(value[len("sample:") : -1])
    except ValueError:
        return None
    return percent if 0 < percent <= 100 else None
