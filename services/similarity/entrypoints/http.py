"""Placeholder similarity API: the seam the gateway calls. It ranks nothing until embeddings exist.

The similarity issue replaces the body of `similar` with a Qdrant-backed ranking; the contract
(threshold, count, items) stays.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Query

from platograph.observability import instrument
from platograph.views import RelatedBySimilarity

router = APIRouter(prefix="/v1", tags=["similarity"])
DEFAULT_THRESHOLD = 0.65


@router.get("/entities/{id:path}/similar", response_model=RelatedBySimilarity)
def similar(
    id: str, min_score: float = Query(DEFAULT_THRESHOLD, ge=-1, le=1), limit: int = Query(20, ge=1, le=200)
) -> RelatedBySimilarity:
    """Entities close in embedding space with no typed edge (none yet: no embedder runs)."""
    return RelatedBySimilarity(threshold=min_score, count=0, items=[])


def create_app() -> FastAPI:
    """The similarity ASGI app."""
    app = FastAPI(title="Platograph similarity (placeholder)")
    app.include_router(router)
    instrument(app, "similarity")
    return app
