"""The vector-index port, what its two adapters share, and the adapters' contract (tests/integration).

- `QdrantClientIndex` (qdrant_client_index.py): qdrant-client, against a Qdrant server (QDRANT_URL) or
  its local mode. One collection per model version (`entities__<model>-v<version>`); readers go through
  the alias `entities`.
- `EdgeIndex` (edge_index.py): qdrant-edge, Qdrant's Rust engine in-process (HNSW, payload filters) in a
  directory per model version. It has no aliases: the directory name plays the collection's part. One
  process opens it.

Point ids are uuid5 of the entity id, so a retried upsert overwrites instead of adding. Each point holds
three vectors: `dense` (the whole text), `parts` (one vector per sentence of a long text, compared by
MaxSim: the best sentence) and `bm25` (sparse BM25 of the text, IDF applied inside Qdrant). A search is
dense by default; given `text`, it is hybrid: dense, best-sentence and BM25 candidates fused by score
(DBSF), while each hit still reports its whole-text cosine.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
POINT_NAMESPACE = uuid.UUID("3b8f0c52-6a1e-4c3e-9f57-0d3f5c2b7a41")
ALIAS = "entities"
DENSE, PARTS, SPARSE = "dense", "parts", "bm25"
LAYOUT = "l2"  # bump when the vectors a point holds change: a new collection / directory is created
FUSION_DEPTH = 200  # candidates each side contributes before fusion (SciFact: 100 → 200 lifts recall@5)


def point_id(entity_id: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, entity_id))


@lru_cache(maxsize=1)
def _bm25() -> Any:
    import qdrant_edge as q

    return q.Bm25(q.Bm25Config(language="english"))


def sparse_document(text: str) -> tuple[list[int], list[float]]:
    """BM25 term weights of a stored text (qdrant-edge's tokenizer; IDF is applied by the index)."""
    vector = _bm25().embed_document(text or " ")
    return list(vector.indices), list(vector.values)


def sparse_query(text: str) -> tuple[list[int], list[float]]:
    vector = _bm25().embed_query(text or " ")
    return list(vector.indices), list(vector.values)


def cosines(query: Sequence[float], points: Iterable[Any]) -> Iterator[tuple[dict[str, Any], float, float]]:
    """(payload, cosine to `query`, fused score) of each fused point, read as they are asked for: a hybrid
    answer is fetched `FUSION_DEPTH` deep, and converting every point's vector and payload to Python cost
    more than the query (5.4 ms against 2.5 at 10,000 points)."""
    q = np.asarray(query, dtype=np.float32)
    for p in points:
        vector = p.vector[DENSE] if isinstance(p.vector, dict) else p.vector
        yield p.payload or {}, float(np.dot(q, np.asarray(vector, dtype=np.float32))), float(p.score)


@dataclass(frozen=True)
class Indexed:
    """What the index keeps beside a vector, so a result can be shown without another lookup."""

    id: str
    type: str
    name: str
    description: str = ""
    text: str = ""  # the text that was embedded: the duplicate check reads it

    def payload(self) -> dict[str, Any]:
        return {"entity_id": self.id, "type": self.type, "name": self.name, "description": self.description,
                "text": self.text}  # fmt: skip

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Indexed:
        return cls(
            id=payload["entity_id"],
            type=payload["type"],
            name=payload.get("name", ""),
            description=payload.get("description", ""),
            text=payload.get("text", ""),
        )


@dataclass(frozen=True)
class Hit:
    entity: Indexed
    score: float  # cosine, whatever ranked the hit
    fused: float | None = None  # hybrid search: the fusion score (DBSF) the hits are ordered by


class VectorIndex(Protocol):
    def upsert(self, items: Sequence[Indexed], vectors: Vectors, parts: Sequence[Vectors] | None = None) -> None:
        """Insert or replace one point per item: row i of vectors is item i's; parts[i] its sentences'
        vectors (default: the whole-text vector alone)."""
        ...

    def delete(self, entity_ids: Sequence[str]) -> None: ...

    def lookup(self, entity_id: str) -> tuple[Indexed, list[float]] | None:
        """What is stored for an entity (payload and dense vector), or None."""
        ...

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        types: Sequence[str] | None = None,
        text: str | None = None,
    ) -> list[Hit]:
        """Nearest entities, best first: by cosine, or with `text` by dense + BM25 fusion. `min_score` is
        always on the cosine."""
        ...

    def search_many(
        self, vectors: Vectors, *, limit: int, min_score: float | None, exclude: Sequence[Sequence[str]]
    ) -> list[list[Hit]]:
        """What `search(row, limit=, min_score=, exclude=exclude[i])` answers for each row, as one batch."""
        ...

    def count(self) -> int: ...

    def activate(self) -> None:
        """Make this collection the one the readers' alias names (a no-op where the alias is ours alone)."""
        ...

    def drop(self) -> None:
        """Close and delete the collection (a cancelled or replaced build)."""
        ...

    def close(self) -> None: ...


def point_parts(dense: list[float], parts: Sequence[Vectors] | None, i: int) -> list[list[float]]:
    """The sentence vectors of item i; a text of one sentence is its own only part."""
    if parts is None or len(parts[i]) == 0:
        return [dense]
    return [row.tolist() for row in parts[i]]


def fused(ranked: Iterable[tuple[dict[str, Any], float, float]], limit: int, min_score: float | None) -> list[Hit]:
    """Fused order kept, with its score; cosine reported and thresholded. Rows: (payload, cosine, fused), read
    only until `limit` pass."""
    hits: list[Hit] = []
    for payload, cosine, fused_score in ranked:
        if len(hits) == limit:
            break
        if min_score is None or cosine >= min_score:
            hits.append(Hit(Indexed.from_payload(payload), cosine, fused_score))
    return hits


OVERFETCH = 64  # rows excluding more than this many ids are searched one by one, with a filter


BatchRun = Callable[[list[list[float]], int], list[list[Hit]]]  # (rows, depth) -> hits of each row


def batched(
    index: VectorIndex,
    run: BatchRun,
    vectors: Vectors,
    limit: int,
    min_score: float | None,
    exclude: Sequence[Sequence[str]],
) -> list[list[Hit]]:
    """Rows that exclude few ids share one unfiltered batch (the index scores same-shaped queries
    together: about 2.5 times cheaper per row than one filtered search each) that asks for enough extra
    hits to drop the excluded ones afterwards; the rest go one by one. `run(rows, depth)` answers the batch."""
    small = [i for i, ex in enumerate(exclude) if len(ex) <= OVERFETCH]
    out: list[list[Hit]] = [[] for _ in range(len(vectors))]
    if small:
        depth = limit + max(len(exclude[i]) for i in small)
        for i, hits in zip(small, run([vectors[i].tolist() for i in small], depth), strict=True):
            dropped = set(exclude[i])
            out[i] = [h for h in hits if h.entity.id not in dropped][:limit]
    for i, ex in enumerate(exclude):
        if len(ex) > OVERFETCH:
            out[i] = index.search(vectors[i].tolist(), limit=limit, min_score=min_score, exclude=ex)
    return out
