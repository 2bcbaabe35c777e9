"""The core never imports Textual: each module outside drconsole/tui/ is imported alone
in a fresh interpreter and must leave ``textual`` out of ``sys.modules``."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import drconsole

CORE_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(drconsole.__path__, prefix="drconsole.")
    if not info.name.startswith("drconsole.tui")
)

PROBE = (
    "import importlib, sys; importlib.import_module(sys.argv[1]); print('textual' in sys.modules)"
)


def test_the_core_has_modules_to_check() -> None:
    assert {"drconsole.runner", "drconsole.cli", "drconsole.incident.record"} <= set(CORE_MODULES)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_textual(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", f"{module} imports textual"
