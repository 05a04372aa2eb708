"""Queries: entities close to an entity, entities for free text, and text pairs scored as candidates are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.similarity.adapters import graph_reads
from services.similarity.adapters.index import Hit
from services.similarity.bootstrap import Similarity
from services.similarity.domain.candidates import classify


def similar(
    sim: Similarity,
    entity_id: str,
    *,
    limit: int,
    min_score: float,
    types: list[str] | None,
    include_linked: bool,
    hybrid: bool = False,
) -> list[Hit] | None:
    """Entities closest to one entity, best first (by cosine, or dense + BM25 fused); None if not indexed."""
    index = sim.served().index  # the same collection for the lookup and the search, even across a switch
    with sim.index_lock:
        found = index.lookup(entity_id)
    if found is None:
        return None
    stored, vector = found
    exclude = {entity_id}
    if not include_linked:
        exclude |= graph_reads.linked(sim.graph, [entity_id]).get(entity_id, set())
    with sim.index_lock:
        return index.search(vector, limit=limit, min_score=min_score, exclude=sorted(exclude), types=types,
                                text=stored.text if hybrid else None)  # fmt: skip


def search(
    sim: Similarity, q: str, *, limit: int, min_score: float | None, types: list[str] | None, hybrid: bool = True
) -> list[Hit]:
    """Entities ranked for free text: dense + BM25 fused by default (words matter in a search box)."""
    served = sim.served()  # the query is embedded by the model whose collection it searches
    vector = served.embedder.embed_query([q])[0]
    with sim.index_lock:
        return served.index.search(vector.tolist(), limit=limit, min_score=min_score, types=types,
                                text=q if hybrid else None)  # fmt: skip


def compare(sim: Similarity, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Score text pairs as candidates are scored, with the duplicate verdict."""
    texts = [t for p in pairs for t in p]
    vectors = sim.embedder.embed(texts)
    out = []
    for i, (a, b) in enumerate(pairs):
        score = float(vectors[2 * i] @ vectors[2 * i + 1])
        verdict = classify(a, b, score, sim.settings.duplicate_threshold)
        out.append({"score": round(score, 6), "kind": verdict.kind, "reason": verdict.reason})
    return out
