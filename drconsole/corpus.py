"""A synthetic, seeded knowledge base: what the demo, drills and tests load into a
database. Vectors cluster by topic (unit length, 384-d by default) so nearest-neighbour
results mean something; metadata carries tenants, ACL groups, languages, statuses, dates
and products, the fields real applications filter on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from drconsole.records import RecordBatch

TOPICS = (
    ("billing", "invoice refund charge payment plan card receipt"),
    ("login", "password reset sso account locked two-factor session"),
    ("search", "query ranking relevance filter index results latency"),
    ("export", "csv download report schedule archive bulk data"),
    ("api", "token rate limit endpoint webhook sdk pagination"),
    ("mobile", "ios android app notification offline sync crash"),
    ("security", "audit permission role encryption breach policy"),
    ("onboarding", "setup invite workspace import tutorial trial"),
)
TENANTS = ("acme", "globex", "initech", "umbrella")
ACL_GROUPS = ("support", "sales", "engineering", "admins")
LANGUAGES = ("en", "de", "fr")
STATUSES = ("published", "draft", "archived")
PRODUCTS = ("console", "mobile", "api")


@dataclass(frozen=True)
class CorpusSpec:
    """Which records to make: ``prefix`` names ids, ``seed`` fixes everything; with
    ``unit=False`` vectors get lengths from 0.3 to 3 (so cosine and l2 rank differently)."""

    prefix: str
    count: int
    dimension: int = 384
    seed: int = 0
    version: int = 0
    spread: float = 0.35
    unit: bool = True


def topic_centers(dimension: int, seed: int = 7) -> np.ndarray:
    """One unit vector per topic, the same for every collection of a corpus."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((len(TOPICS), dimension)).astype(np.float32)
    return centers / np.linalg.norm(centers, axis=1, keepdims=True)


def records(spec: CorpusSpec, start: int = 0, stop: int | None = None) -> RecordBatch:
    """Records ``start`` to ``stop`` of the corpus (each one depends only on its number,
    the seed and the version, so any slice can be regenerated)."""
    stop = spec.count if stop is None else stop
    numbers = np.arange(start, stop)
    centers = topic_centers(spec.dimension)
    rng = np.random.default_rng([spec.seed, spec.version, start])
    topics = numbers % len(TOPICS)
    noise = rng.standard_normal((len(numbers), spec.dimension)).astype(np.float32) * spec.spread
    vectors = centers[topics] + noise / np.sqrt(spec.dimension) * 4
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    if not spec.unit:
        vectors *= rng.uniform(0.3, 3.0, size=(len(numbers), 1)).astype(np.float32)
    ids, documents, metadatas = [], [], []
    for number, topic in zip(numbers.tolist(), topics.tolist(), strict=True):
        name, words = TOPICS[topic]
        picked = words.split()
        ids.append(f"{spec.prefix}-{number:06d}")
        documents.append(
            f"{name.title()} article {number} (rev {spec.version}): how to handle "
            f"{picked[number % len(picked)]} and {picked[(number * 3 + 1) % len(picked)]} issues."
        )
        metadatas.append(
            {
                "tenant_id": TENANTS[(number // 2) % len(TENANTS)],
                "acl_groups": sorted(
                    {
                        ACL_GROUPS[number % len(ACL_GROUPS)],
                        ACL_GROUPS[(number // 4) % len(ACL_GROUPS)],
                    }
                ),
                "lang": LANGUAGES[(number // 3) % len(LANGUAGES)],
                "status": STATUSES[(number // 5) % len(STATUSES)],
                "product": PRODUCTS[(number // 7) % len(PRODUCTS)],
                "topic": name,
                "updated_at": f"2026-{1 + number % 11:02d}-{1 + number % 27:02d}",
                "revision": spec.version,
                "updated_day": (number % 11) * 31 + number % 27,
            }
        )
    return RecordBatch(
        ids,
        np.ascontiguousarray(vectors, dtype=np.float32),
        documents,
        metadatas,
        [None] * len(ids),
    )


def batches(spec: CorpusSpec, size: int = 1000) -> Iterator[RecordBatch]:
    for start in range(0, spec.count, size):
        yield records(spec, start, min(spec.count, start + size))
