"""Golden query sets (``drconsole-golden/1``): queries and the ids a healthy system
returned for them, captured before a disaster and replayed after a restore.

File format (JSON)::

    {"format": "drconsole-golden/1", "created_at": "...", "source": {...},
     "vectors": "kb.golden.npy",               # optional: float32 [queries, dimension]
     "queries": [{"id": "q0001", "collection": "help_articles", "k": 10,
                  "vector": [...] | "vector_row": 0,
                  "filter": {"tenant_id": "acme"} | null, "tenant": "acme" | null,
                  "expected": ["help-000042", ...]}]}

Vectors are inline for small sets, else in a ``.npy`` beside the JSON (``vector_row``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drconsole.engines.base import Engine
from drconsole.errors import DrconsoleError
from drconsole.model.filters import Compare, Filter, check_filter, operators, parse_where
from drconsole.timefmt import format_utc, utc_now

FORMAT = "drconsole-golden/1"
MAX_GOLDEN_BYTES = 256 * 1024 * 1024
INLINE_LIMIT = 20_000
PERTURBATION = 0.05
FILTERED_PER_VALUE = 3


@dataclass
class GoldenQuery:
    id: str
    collection: str
    vector: np.ndarray
    k: int
    expected: list[str]
    filter: dict[str, Any] | None = None
    """In the ``where`` syntax, as the golden file keeps it."""
    tenant: str | None = None

    @property
    def filter_tree(self) -> Filter | None:
        return None if self.filter is None else parse_where(self.filter)


@dataclass
class GoldenSet:
    queries: list[GoldenQuery]
    source: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    def unrunnable(self, runs: frozenset[str]) -> list[str]:
        """The queries whose filter uses an operator outside ``runs`` (what the target
        engine can run), each with the operators it lacks."""
        found = []
        for query in self.queries:
            tree = query.filter_tree
            missing = sorted(operators(tree) - runs) if tree is not None else []
            if missing:
                found.append(f"{query.id} ({', '.join(missing)})")
        return found


class GoldenError(DrconsoleError):
    """A golden set that cannot be read."""


def recall_at_k(returned: list[str], expected: list[str], k: int) -> float:
    """Share of the expected top-k that the answer's top-k contains (1.0 for none expected)."""
    wanted = expected[:k]
    if not wanted:
        return 1.0
    return len(set(returned[:k]) & set(wanted)) / len(wanted)


def rank_overlap(returned: list[str], expected: list[str], k: int) -> float:
    """Average overlap of the top-i prefixes for i = 1..k: 1.0 for the same ids in the same
    order, lower as the order drifts even when the set is the same."""
    depth = min(k, len(expected))
    if depth == 0:
        return 1.0
    return sum(len(set(returned[:i]) & set(expected[:i])) / i for i in range(1, depth + 1)) / depth


def load_golden(path: Path) -> GoldenSet:
    try:
        if path.stat().st_size > MAX_GOLDEN_BYTES:
            raise GoldenError(
                f"{path}: the golden set is larger than {MAX_GOLDEN_BYTES // 2**20} MiB; refused"
            )
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoldenError(
            f"{path}: no such golden set", "capture one with `drconsole golden capture`"
        ) from None
    except (OSError, ValueError) as error:
        raise GoldenError(f"{path}: cannot read the golden set ({error})") from None
    except RecursionError:
        raise GoldenError(f"{path}: the golden set nests too deeply to be one") from None
    return parse_golden(raw, str(path), folder=path.parent)


def parse_golden(
    raw: Any, where: str, *, folder: Path | None = None, vectors: np.ndarray | None = None
) -> GoldenSet:
    """A golden set from decoded JSON. Its .npy vectors are given as ``vectors``, or
    loaded from ``folder``."""
    if (
        not isinstance(raw, dict)
        or raw.get("format") != FORMAT
        or not isinstance(raw.get("queries"), list)
    ):
        raise GoldenError(f"{where}: not a {FORMAT} file")
    if vectors is None and raw.get("vectors"):
        if folder is None or not isinstance(raw["vectors"], str) or "/" in raw["vectors"]:
            raise GoldenError(f"{where}: its vectors file {raw['vectors']!r} cannot be found")
        vectors = _load_npy(folder / raw["vectors"], where)
    queries = [_query(item, n, vectors, where) for n, item in enumerate(raw["queries"])]
    source = raw.get("source") or {}
    if not isinstance(source, dict):
        raise GoldenError(f"{where}: its source must be an object")
    return GoldenSet(queries, dict(source), str(raw.get("created_at", "")))


def _query(item: Any, number: int, vectors: np.ndarray | None, where: str) -> GoldenQuery:
    at = f"{where}: query #{number + 1}"
    if not isinstance(item, dict):
        raise GoldenError(f"{at} is not an object")
    try:
        if "vector" in item:
            vector = np.asarray(item["vector"], dtype=np.float32)
        elif vectors is not None:
            vector = vectors[int(item["vector_row"])]
        else:
            raise GoldenError(f"{at} has no vector and the file names no vectors .npy")
        query = GoldenQuery(
            id=str(item["id"]),
            collection=str(item["collection"]),
            vector=vector,
            k=int(item["k"]),
            expected=[str(i) for i in item["expected"]],
            filter=item.get("filter"),
            tenant=item.get("tenant"),
        )
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise GoldenError(f"{at} is malformed ({type(error).__name__}: {error})") from None
    if vector.ndim != 1 or not len(vector):
        raise GoldenError(f"{at}: the vector must be a non-empty list of numbers")
    if query.filter is not None and (problems := check_filter(query.filter)):
        raise GoldenError(f"{at}: {problems[0]}")
    return query


def _load_npy(path: Path, where: str) -> np.ndarray:
    """The vectors file, its header checked against its size before anything is read (a
    header may claim terabytes)."""
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = read_header(handle)
            offset = handle.tell()
        size = path.stat().st_size
        claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if dtype.hasobject or claimed != size - offset:
            raise ValueError(
                f"its header claims {claimed} bytes of data, the file has {size - offset}"
            )
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, SyntaxError) as error:
        raise GoldenError(f"{where}: cannot read its vectors {path} ({error})") from None
    if vectors.ndim != 2:
        raise GoldenError(f"{where}: {path} must hold a [queries, dimension] array")
    return vectors.astype(np.float32, copy=False)


def save_golden(golden: GoldenSet, path: Path) -> list[Path]:
    """Write the set (vectors inline when small, else in ``<path>.npy``); returns the files."""
    dimension = len(golden.queries[0].vector) if golden.queries else 0
    inline = len(golden.queries) * dimension <= INLINE_LIMIT
    queries = []
    for row, query in enumerate(golden.queries):
        item: dict[str, Any] = {"id": query.id, "collection": query.collection, "k": query.k}
        if inline:
            item["vector"] = query.vector.astype(np.float32).tolist()
        else:
            item["vector_row"] = row
        item.update(filter=query.filter, tenant=query.tenant, expected=query.expected)
        queries.append(item)
    raw: dict[str, Any] = {
        "format": FORMAT,
        "created_at": golden.created_at,
        "source": golden.source,
    }
    files = [path]
    if not inline:
        npy = path.with_name(path.name + ".npy")
        np.save(npy, np.stack([q.vector for q in golden.queries]).astype("<f4"), allow_pickle=False)
        raw["vectors"] = npy.name
        files.append(npy)
    raw["queries"] = queries
    path.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    return files


def capture(
    engine: Engine,
    collection: str,
    *,
    queries: int,
    k: int,
    filter_field: str | None = None,
    query_vectors: np.ndarray | None = None,
    seed: int = 0,
) -> GoldenSet:
    """Ask the healthy system now and keep its answers. Without ``query_vectors`` the
    queries are records of the collection itself, slightly perturbed (seeded); with a
    filter field, a few of them are also asked per value of that field."""
    rng = np.random.default_rng(seed)
    values: set[Any] = set()
    if query_vectors is None:
        query_vectors, values = _sample_vectors(engine, collection, queries, filter_field, rng)
    elif filter_field:
        values = {
            meta.get(filter_field)
            for _, metas in engine.scan_metadata(collection)
            for meta in metas
            if meta
        }
    plan: list[tuple[np.ndarray, dict[str, Any] | None, str | None]] = [
        (v, None, None) for v in query_vectors
    ]
    for value in sorted(
        v for v in values if isinstance(v, str | int | float) and not isinstance(v, bool)
    ):
        plan += [(v, {filter_field: value}, str(value)) for v in query_vectors[:FILTERED_PER_VALUE]]
    found: list[GoldenQuery] = []
    for number, (vector, where, tenant) in enumerate(plan, start=1):
        tree = None if where is None else Compare(str(filter_field), "eq", where[filter_field])
        result = engine.query(collection, vector[None, :], k, tree)[0]
        found.append(
            GoldenQuery(f"q{number:04d}", collection, vector, k, result.ids, where, tenant)
        )
    return GoldenSet(
        found, {**engine.info().to_json(), "collection": collection}, format_utc(utc_now())
    )


def _sample_vectors(
    engine: Engine, collection: str, count: int, filter_field: str | None, rng: np.random.Generator
) -> tuple[np.ndarray, set[Any]]:
    """A seeded reservoir sample of the collection's vectors, perturbed a little (kept unit
    length when the collection's vectors are), and the values seen in ``filter_field``."""
    picked: list[np.ndarray] = []
    values: set[Any] = set()
    seen = 0
    unit = True
    for batch in engine.scan(collection, 1000):
        if filter_field:
            values |= {meta.get(filter_field) for meta in batch.metadatas if meta}
        norms = np.linalg.norm(batch.vectors, axis=1)
        unit = unit and bool(np.all(np.abs(norms - 1) < 1e-3))
        for vector in batch.vectors:
            seen += 1
            if len(picked) < count:
                picked.append(vector.copy())
            elif (slot := int(rng.integers(0, seen))) < count:
                picked[slot] = vector.copy()
    if not picked:
        raise GoldenError(
            f"collection {collection} is empty: nothing to draw queries from",
            "give --query-vectors FILE.npy, or capture once the collection has data",
        )
    vectors = np.stack(picked)
    scale = np.linalg.norm(vectors, axis=1, keepdims=True) / np.sqrt(vectors.shape[1])
    vectors = vectors + rng.standard_normal(vectors.shape).astype(np.float32) * PERTURBATION * scale
    if unit:
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), values
