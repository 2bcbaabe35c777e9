"""Declared parameters of an action: what a runbook step may put under ``with``.

Each parameter converts and checks a plain YAML value, so the runbook loader can report a
bad ``with`` value at load time, with its line, instead of failing mid-incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drconsole.sampling import sample_percent
from drconsole.secrets import is_reference, looks_secret_name
from drconsole.timefmt import parse_duration, parse_utc

KINDS = (
    "int",
    "float",
    "str",
    "bool",
    "duration",
    "str_list",
    "str_map",
    "choice",
    "depth",
    "timestamp",
    "content",
)


@dataclass(frozen=True)
class Param:
    """One ``with`` key: its kind, whether it is required, its default and limits."""

    name: str
    kind: str
    help: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def convert(self, value: Any) -> Any:
        """The checked value; raises ValueError with a message meant for the runbook author."""
        converted = _CONVERTERS[self.kind](self, value)
        if self.minimum is not None and converted < self.minimum:
            raise ValueError(f"must be at least {self.minimum:g}, not {_number(converted)}")
        if self.maximum is not None and converted > self.maximum:
            raise ValueError(f"must be at most {self.maximum:g}, not {_number(converted)}")
        return converted


def _number(value: float) -> str:
    """A number for a message, kept short (a 400-digit integer is not echoed whole)."""
    text = str(value)
    return text if len(text) <= 20 else text[:17] + "..."


def _int(param: Param, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, not {value!r}")
    return value


def _float(param: Param, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, not {value!r}")
    return float(value)


def _str(param: Param, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty string, not {value!r}")
    return value


def _bool(param: Param, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


def _duration(param: Param, value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError(f"must be a duration like 90s or 15m, not {value!r}")
    return parse_duration(value)


def _str_list(param: Param, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of strings")
    if not all(
        isinstance(item, str | int | float) and not isinstance(item, bool) for item in value
    ):
        raise ValueError("must be a list of strings")
    return [str(item) for item in value]


def _str_map(param: Param, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of names to strings")
    result: dict[str, str] = {}
    for key, item in value.items():
        if looks_secret_name(key) and not (isinstance(item, str) and is_reference(item)):
            example = f"env:{key}" if key.isidentifier() else "env:VARIABLE"
            raise ValueError(
                f"{key!r} looks like a secret: write a reference such as "
                f"keyring:SERVICE/NAME or {example}, not the value"
            )
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ValueError(f"{key!r} must be a string, not {_kind_of(item)}")
        result[key] = str(item)
    return result


def _choice(param: Param, value: Any) -> str:
    if value not in param.choices:
        raise ValueError(f"must be one of {', '.join(param.choices)}, not {value!r}")
    return value


def _depth(param: Param, value: Any) -> str:
    """A verification depth: manifest, sizes, full, or sample:N% with 0 < N <= 100."""
    if value in ("manifest", "sizes", "full") or sample_percent(value) is not None:
        return value
    raise ValueError(f"must be manifest, sizes, full or sample:N% (0 < N <= 100), not {value!r}")


def _content(param: Param, value: Any) -> str:
    """How much of the restored data to compare with the snapshot: full or sample:N%."""
    if value == "full" or sample_percent(value) is not None:
        return value
    raise ValueError(f"must be full or sample:N% (0 < N <= 100), not {value!r}")


def _kind_of(value: Any) -> str:
    return {dict: "a mapping", list: "a list", bool: "true/false"}.get(
        type(value), "an empty value"
    )


def _timestamp(param: Param, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a timestamp like 2026-11-22T10:15:00Z, not {_kind_of(value)}")
    parse_utc(value)
    return value


_CONVERTERS = {
    "timestamp": _timestamp,
    "int": _int,
    "float": _float,
    "str": _str,
    "bool": _bool,
    "duration": _duration,
    "str_list": _str_list,
    "str_map": _str_map,
    "choice": _choice,
    "depth": _depth,
    "content": _content,
}
