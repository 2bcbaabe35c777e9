"""The installed engine adapters, found through the ``drconsole.engines`` entry point
group: drconsole's own (Chroma, the in-process reference) and any a third-party package
declares in its ``pyproject.toml``::

    [project.entry-points."drconsole.engines"]
    myengine = "my_package.drconsole_adapter:ADAPTER"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from drconsole.engines.adapter import EngineAdapter
from drconsole.errors import UsageError

GROUP = "drconsole.engines"


@cache
def discovered() -> tuple[dict[str, EngineAdapter], dict[str, str]]:
    """The adapters by name, and the entry points that could not be loaded with why
    (listed by ``drconsole engines``, never a traceback at start-up)."""
    adapters: dict[str, EngineAdapter] = {}
    broken: dict[str, str] = {}
    for point in sorted(entry_points(group=GROUP), key=lambda point: point.name):
        try:
            adapter = point.load()
        except Exception as error:  # noqa: BLE001 (a third party's import may raise anything)
            broken[point.name] = f"{point.value}: {type(error).__name__}: {error}"
            continue
        if not isinstance(adapter, EngineAdapter) or adapter.name != point.name:
            broken[point.name] = f"{point.value} is not an EngineAdapter named {point.name!r}"
            continue
        adapters[point.name] = adapter
    return adapters, broken


def adapters() -> dict[str, EngineAdapter]:
    return discovered()[0]


def engine_names() -> tuple[str, ...]:
    return tuple(adapters())


def engine_adapter(name: str) -> EngineAdapter:
    """The adapter of an engine, or a UsageError listing the installed ones."""
    found, broken = discovered()
    if name in found:
        return found[name]
    if name in broken:
        raise UsageError(
            f"the {name} engine adapter could not be loaded ({broken[name]})",
            "reinstall the package that provides it; `drconsole engines` lists the adapters",
        )
    raise UsageError(
        f"unknown engine {name!r}",
        f"use one of {', '.join(found)} (`drconsole engines` lists them)",
    )
