"""What the steps of one run share: the catalog opened once, and the truth of each
collection of the selected chain gathered once (``actions.truth``), so that a drill reads
its backup to restore it, to check its counts and content, and never again to check its
permissions.

A run's steps execute one at a time, but the console runs them on worker threads, so
everything here is behind a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the truth needs numpy; a run's first steps may not
    from drconsole.actions.truth import Truth, TruthSpec


class RunShared:
    """Held by the runner for the life of one run (a resumed run starts a new one)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._catalog: Any = None
        self._truths: dict[tuple[tuple[str, ...], str], tuple[TruthSpec, Truth]] = {}

    def catalog(self, open_catalog: Callable[[], Any], *, fresh: bool = False) -> Any:
        """The run's catalog (store and view), opened by the first step that asks (and
        again whenever a step asks for it ``fresh``, forgetting what was gathered from
        the catalog as it was)."""
        with self._lock:
            if self._catalog is None or fresh:
                self._catalog = open_catalog()
                self._truths.clear()
            return self._catalog

    def keep_truth(self, chain: list[str], collection: str, spec: TruthSpec, truth: Truth) -> None:
        """Keep the truth a step gathered, for the steps after it."""
        with self._lock:
            self._truths[(tuple(chain), collection)] = (spec, truth)

    def kept_truth(self, chain: list[str], collection: str, spec: TruthSpec) -> Truth | None:
        """A truth of this collection of this chain that an earlier step gathered and
        that gathers at least ``spec``; None when there is none."""
        with self._lock:
            kept = self._truths.get((tuple(chain), collection))
            return kept[1] if kept is not None and kept[0].covers(spec) else None
