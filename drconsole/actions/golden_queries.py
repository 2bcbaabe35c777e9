"""``golden_queries``: does search answer as it did before the disaster?

Runs the golden set on the target: recall@k per query and overall, rank overlap with the
expected order, latency p50/p95. The gate fails below ``min_recall`` or above
``max_p95_ms``. ``mode: exact`` also finds the exact neighbours by brute force over the
restored vectors, so a low recall can be told apart: lost or changed data (exact search
misses too) or an index answering worse than exact search.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from drconsole.actions.base import (
    FAILED,
    SUCCEEDED,
    ActionContext,
    Finding,
    Outcome,
    ProgressCallback,
    ResultTable,
)
from drconsole.actions.golden_source import load_run_golden
from drconsole.actions.sources import open_catalog, open_target, selected_chain, target_adapter
from drconsole.catalog.catalog import CatalogView
from drconsole.catalog.store import ObjectStore
from drconsole.engines.base import Engine
from drconsole.errors import DrconsoleError
from drconsole.golden import GoldenQuery, GoldenSet, rank_overlap, recall_at_k
from drconsole.model.filters import Filter, evaluate
from drconsole.model.schema import SEARCH_PARAMS
from drconsole.wording import plural

EXACT_PAGE = 2000  # records per page of the brute-force scan
EPSILON = 1e-9  # recall is an average of fractions: 10 x 0.9 averages to 0.8999999999999998


@dataclass
class QueryReport:
    query: GoldenQuery
    returned: list[str]
    latency_ms: float
    recall: float
    overlap: float
    exact_recall: float | None = None


class _Clock:
    """Time spent waiting on the server, kept apart from our own computation."""

    def __init__(self) -> None:
        self.server_s = 0.0

    def call(self, function: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            self.server_s += time.perf_counter() - started


def run_golden_queries(context: ActionContext, progress: ProgressCallback) -> Outcome:
    started = time.perf_counter()
    params = context.params
    store, view = open_catalog(context)
    golden = load_run_golden(context, store, view)
    if golden is None or not golden.queries:
        raise DrconsoleError(
            "no golden set: the runbook names none and the snapshot carries none",
            "capture one with `drconsole golden capture` and set `golden:` in the runbook",
        )
    adapter = target_adapter(context)
    if unrunnable := golden.unrunnable(adapter.filter_operators):
        raise DrconsoleError(
            f"{plural(len(unrunnable), 'golden query', 'golden queries')} "
            f"{'uses' if len(unrunnable) == 1 else 'use'} filter operators the {adapter.title} "
            f"engine cannot run: {', '.join(unrunnable[:5])}",
            "capture the golden set again against this engine, or drop those queries",
        )
    k_override = params.get("k")
    clock = _Clock()
    search = _snapshot_search(context, store, view)
    engine = open_target(context)
    try:
        reports = [
            _run(engine, query, int(k_override or query.k), clock, search.get(query.collection))
            for query in golden.queries
        ]
        if params.get("mode") == "exact":
            _exact(engine, golden, reports, clock)
    finally:
        engine.close()
    return _outcome(context, reports, clock, started)


def _snapshot_search(
    context: ActionContext, store: ObjectStore, view: CatalogView
) -> dict[str, dict[str, int | float]]:
    """The search parameters (``ef_search``, ``probes``) of each collection's index in
    the run's snapshot: the golden queries search as the source did (an engine that keeps
    them per session, like PostgreSQL, would otherwise use the target's defaults)."""
    if not context.snapshot:
        return {}
    manifest = selected_chain(context, store, view)[-1]
    return {
        entry.name: {k: v for k, v in entry.schema.index.params.items() if k in SEARCH_PARAMS}
        for entry in manifest.collections
        if entry.schema.vectors and entry.schema.index is not None
    }


def _run(
    engine: Engine,
    query: GoldenQuery,
    k: int,
    clock: _Clock,
    search: dict[str, int | float] | None,
) -> QueryReport:
    begun = time.perf_counter()
    result = clock.call(
        engine.query, query.collection, query.vector[None, :], k, query.filter_tree, search or None
    )[0]
    latency = (time.perf_counter() - begun) * 1000
    return QueryReport(
        query,
        result.ids,
        latency,
        recall_at_k(result.ids, query.expected, k),
        rank_overlap(result.ids, query.expected, k),
    )


def _exact(engine: Engine, golden: GoldenSet, reports: list[QueryReport], clock: _Clock) -> None:
    """Brute-force neighbours over the restored vectors, collection by collection and page
    by page: one matrix product per page for all queries, each distinct filter evaluated
    once per page, the running top-k of every query kept together, so memory stays at
    one page whatever the collection's size."""
    for collection in sorted({q.collection for q in golden.queries}):
        info = clock.call(engine.get_collection, collection)
        distance = info.schema.distance if info else "l2"
        mine = [report for report in reports if report.query.collection == collection]
        queries = np.stack([report.query.vector for report in mine]).astype(np.float32)
        wanted = [len(report.returned) or report.query.k for report in mine]
        # Grouped by their JSON text, not by tree: a tree holding True equals one holding 1.
        by_filter: dict[str, tuple[Filter, list[int]]] = {}
        for column, report in enumerate(mine):
            if (tree := report.query.filter_tree) is not None:
                key = json.dumps(report.query.filter, sort_keys=True)
                by_filter.setdefault(key, (tree, []))[1].append(column)
        best = RunningTopK(len(mine), max(wanted))
        pages = iter(engine.scan(collection, EXACT_PAGE))
        while (page := clock.call(next, pages, None)) is not None:
            scores = _distances(page.vectors, queries, distance)
            for where, columns in by_filter.values():
                allowed = np.fromiter(
                    (evaluate(where, m) for m in page.metadatas), dtype=bool, count=len(page.ids)
                )
                scores[np.ix_(~allowed, columns)] = np.inf
            best.offer(scores, page.ids)
        if not best.seen:
            continue
        for column, (report, k) in enumerate(zip(mine, wanted, strict=True)):
            report.exact_recall = recall_at_k(best.ids(column, k), report.query.expected, k)


class RunningTopK:
    """For each of several queries (columns), the k smallest scores offered so far (of
    records tied at the k-th place, any may be kept, as in any nearest-neighbour search)."""

    def __init__(self, queries: int, k: int) -> None:
        self.k = k
        self.seen = 0
        self.scores = np.empty((0, queries), np.float64)
        self.positions = np.empty((0, queries), np.int64)
        self.names: dict[int, str] = {}

    def offer(self, scores: np.ndarray, ids: list[str]) -> None:
        """One page: ``scores`` is [records, queries], ``ids`` names its rows."""
        count = len(ids)
        k = min(self.k, count)
        if k < count:
            nearest = np.argpartition(scores, k - 1, axis=0)[:k]
        else:
            nearest = np.broadcast_to(np.arange(count)[:, None], scores.shape)
        merged_scores = np.concatenate([self.scores, np.take_along_axis(scores, nearest, 0)])
        merged_positions = np.concatenate([self.positions, nearest + self.seen])
        keep = np.argsort(merged_scores, axis=0)[: self.k]
        self.scores = np.take_along_axis(merged_scores, keep, 0)
        self.positions = np.take_along_axis(merged_positions, keep, 0)
        self.names.update((int(row) + self.seen, ids[row]) for row in np.unique(nearest))
        live = set(self.positions.ravel().tolist())
        self.names = {position: name for position, name in self.names.items() if position in live}
        self.seen += count

    def ids(self, column: int, k: int) -> list[str]:
        """The ``k`` nearest of one query, nearest first; filtered-out records never."""
        pairs = zip(self.positions[:k, column], self.scores[:k, column], strict=True)
        return [self.names[int(position)] for position, score in pairs if np.isfinite(score)]


def _distances(matrix: np.ndarray, queries: np.ndarray, distance: str) -> np.ndarray:
    """[records, queries] distances as the engine defines them (smaller is nearer)."""
    dots = matrix @ queries.T
    if distance == "cosine":
        record_norms = np.linalg.norm(matrix, axis=1)[:, None]
        query_norms = np.linalg.norm(queries, axis=1)[None, :]
        return 1.0 - dots / np.maximum(record_norms * query_norms, 1e-30)
    if distance == "ip":
        return 1.0 - dots
    if distance == "l2":
        return (
            (matrix * matrix).sum(axis=1)[:, None]
            - 2 * dots
            + (queries * queries).sum(axis=1)[None, :]
        )
    raise DrconsoleError(
        f"exact golden answers are computed for cosine, l2 and ip distances, not {distance}",
        "capture the golden set from the healthy system (`drconsole golden capture`) instead",
    )


def _outcome(
    context: ActionContext, reports: list[QueryReport], clock: _Clock, started: float
) -> Outcome:
    params = context.params
    min_recall = float(params.get("min_recall", 0.95))
    max_p95 = params.get("max_p95_ms")
    recalls = np.array([r.recall for r in reports])
    latencies = np.array([r.latency_ms for r in reports])
    overall = float(recalls.mean())
    p50, p95 = (float(v) for v in np.percentile(latencies, [50, 95]))
    overlap = float(np.mean([r.overlap for r in reports]))
    exact = [r.exact_recall for r in reports if r.exact_recall is not None]
    exact_overall = float(np.mean(exact)) if exact else None
    compute_s = time.perf_counter() - started - clock.server_s
    recording = time.perf_counter()
    for report in reports:
        missing = [
            i for i in report.query.expected[: len(report.returned)] if i not in report.returned
        ]
        context.report_finding(
            Finding(
                "golden_recall",
                report.recall + EPSILON >= min_recall,
                f"{report.query.collection}:{report.query.id}",
                min_recall,
                round(report.recall, 4),
                {
                    "missing_ids": missing,
                    "returned": report.returned,
                    "expected": report.query.expected,
                    "latency_ms": round(report.latency_ms, 3),
                    "rank_overlap": round(report.overlap, 4),
                    "exact_recall": report.exact_recall,
                    "filter": report.query.filter,
                },
            )
        )
    record_s = time.perf_counter() - recording
    problems = []
    if overall + EPSILON < min_recall:
        problems.append(f"recall@k {overall:.3f} is below {min_recall}")
    if max_p95 is not None and p95 > float(max_p95):
        problems.append(f"p95 latency {p95:.1f} ms is above {float(max_p95):g} ms")
    diagnosis = _diagnosis(overall, exact_overall, min_recall)
    details = {
        "queries": len(reports),
        "recall": round(overall, 4),
        "rank_overlap": round(overlap, 4),
        "p50_ms": round(p50, 3),
        "p95_ms": round(p95, 3),
        "exact_recall": exact_overall,
        "min_recall": min_recall,
        "max_p95_ms": max_p95,
        "diagnosis": diagnosis,
        "timing": {
            "server_s": round(clock.server_s, 4),
            "compute_s": round(compute_s, 4),
            "record_s": round(record_s, 4),
        },
        "per_query": [
            {
                "id": r.query.id,
                "collection": r.query.collection,
                "recall": r.recall,
                "rank_overlap": r.overlap,
                "latency_ms": r.latency_ms,
                "exact_recall": r.exact_recall,
            }
            for r in reports
        ],
    }
    worst = sorted(reports, key=lambda r: (r.recall, -r.latency_ms))[:10]
    tables = [
        ResultTable(
            "golden queries",
            ("queries", "recall@k", "rank overlap", "p50 ms", "p95 ms", "exact recall"),
            (
                (
                    str(len(reports)),
                    f"{overall:.3f}",
                    f"{overlap:.3f}",
                    f"{p50:.1f}",
                    f"{p95:.1f}",
                    "-" if exact_overall is None else f"{exact_overall:.3f}",
                ),
            ),
        ),
        ResultTable(
            "lowest recall",
            ("query", "collection", "recall", "latency ms"),
            tuple(
                (r.query.id, r.query.collection, f"{r.recall:.2f}", f"{r.latency_ms:.1f}")
                for r in worst
            ),
        ),
    ]
    summary = (
        f"recall@k {overall:.3f} (min {min_recall}), rank overlap {overlap:.3f}, "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(reports)} queries"
    )
    if diagnosis:
        summary += f"; {diagnosis}"
    if problems:
        return Outcome(FAILED, "; ".join(problems) + f" ({summary})", details, tables)
    return Outcome(SUCCEEDED, summary, details, tables)


def _diagnosis(recall: float, exact: float | None, minimum: float) -> str:
    if exact is None or recall + EPSILON >= minimum:
        return ""
    if exact + EPSILON < minimum:
        return (
            f"exact search finds only {exact:.3f} of the expected ids too: data was lost or changed"
        )
    return (
        f"exact search finds {exact:.3f}: the data is there, "
        "the index answers worse than exact search"
    )
