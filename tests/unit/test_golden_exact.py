"""The exact search's running top-k, page by page, equals one sort over everything."""

from __future__ import annotations

import numpy as np
import pytest

from drconsole.actions import golden_queries
from drconsole.actions.golden_queries import RunningTopK
from drconsole.errors import DrconsoleError


@pytest.mark.parametrize("seed", range(50))
def test_running_top_k_equals_a_global_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    total, queries = int(rng.integers(1, 400)), int(rng.integers(1, 8))
    scores = rng.random((total, queries))
    scores[rng.random((total, queries)) < 0.3] = np.inf  # filtered out for that query
    if seed % 2:
        scores[rng.random((total, queries)) < 0.1] = 0.5  # ties (duplicate vectors)
    ids = [f"r{n}" for n in range(total)]
    wanted = [int(rng.integers(1, 40)) for _ in range(queries)]
    top = RunningTopK(queries, max(wanted))
    start = 0
    while start < total:
        size = int(rng.integers(1, 60))
        top.offer(scores[start : start + size], ids[start : start + size])
        start += size
    assert top.seen == total
    for column, k in enumerate(wanted):
        found = top.ids(column, k)
        order = np.argsort(scores[:, column], kind="stable")[:k]
        expected = [ids[i] for i in order if np.isfinite(scores[i, column])]
        assert len(set(found)) == len(found) == len(expected), f"query {column}, k={k}"
        found_scores = [scores[int(name[1:]), column] for name in found]
        assert found_scores == scores[order, column][: len(found)].tolist(), "the k nearest"
        if not seed % 2:
            assert found == expected, "without ties, the very same ids in the same order"


def test_exact_mode_keeps_a_true_filter_apart_from_a_1_filter() -> None:
    """True and 1 are different values to a filter (strings, booleans and numbers never
    equal one another), though Python calls them equal: each query keeps its own."""
    from drconsole.actions.golden_queries import QueryReport, _Clock, _exact
    from drconsole.engines.memory.engine import MemoryEngine, forget
    from drconsole.golden import GoldenQuery, GoldenSet
    from drconsole.model.schema import CollectionSchema
    from drconsole.records import RecordBatch

    forget("memory://exact")
    engine = MemoryEngine("memory://exact")
    engine.ensure_namespace()
    engine.create_collection("kb", CollectionSchema.dense(2, "l2"))
    vectors = np.array([[0, 0], [1, 1]], np.float32)
    engine.upsert(
        "kb",
        RecordBatch(
            ["flag-true", "flag-1"], vectors, [None] * 2, [{"f": True}, {"f": 1}], [None] * 2
        ),
    )
    queries = [
        GoldenQuery("t", "kb", np.zeros(2, np.float32), 1, ["flag-true"], {"f": True}),
        GoldenQuery("one", "kb", np.zeros(2, np.float32), 1, ["flag-1"], {"f": 1}),
    ]
    reports = [QueryReport(query, [], 0.0, 0.0, 0.0) for query in queries]
    _exact(engine, GoldenSet(queries), reports, _Clock())
    assert [report.exact_recall for report in reports] == [1.0, 1.0]


@pytest.mark.parametrize("distance", ["l1", "hamming"])
def test_exact_mode_refuses_a_distance_it_cannot_compute(distance: str) -> None:
    """Measuring an l1 or hamming collection as l2 would pass or fail recall on the wrong
    neighbours: exact mode says it cannot, instead."""
    matrix = np.eye(3, dtype=np.float32)
    with pytest.raises(DrconsoleError, match=f"not {distance}"):
        golden_queries._distances(matrix, matrix, distance)
    assert golden_queries._distances(matrix, matrix, "l2").shape == (3, 3)
