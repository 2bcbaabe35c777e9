"""Counts in plain English: "1 snapshot", "3 snapshots", never "3 snapshot(s)"."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is one (``many``
    when the plural is not the noun with an s)."""
    if count == 1:
        return f"1 {noun}"
    if many is None:
        many = (
            noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"
        )
    return f"{count:,} {many}"
