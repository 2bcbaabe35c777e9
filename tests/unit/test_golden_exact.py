"""The exact search's running top-k, page by page, equals one sort over everything."""

from __future__ import annotations

import numpy as np
import pytest

from drconsole.actions.golden_queries import RunningTopK


@pytest.mark.parametrize("seed", range(20))
def test_running_top_k_equals_a_global_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    total = int(rng.integers(1, 400))
    scores = rng.random(total)
    scores[rng.random(total) < 0.3] = np.inf  # filtered out
    ids = [f"r{n}" for n in range(total)]
    k = int(rng.integers(1, 40))
    top = RunningTopK(k)
    start = 0
    while start < total:
        size = int(rng.integers(1, 60))
        top.offer(scores[start : start + size], ids[start : start + size], start)
        start += size
    expected = [ids[i] for i in np.argsort(scores, kind="stable")[:k] if np.isfinite(scores[i])]
    assert top.ids() == expected
