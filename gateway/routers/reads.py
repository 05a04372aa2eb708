"""Reads: entities, lists and the neighborhood view, assembled from graph and similarity."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from gateway import assembly
from gateway.adapters.upstream import call, passthrough, raise_for_client_error, relay
from gateway.authorization import scope
from gateway.deps import ServicesDep, SettingsDep
from gateway.routers.params import After, Cursor, Position, Types
from platograph.api.graph import CandidateQuery, EdgePage, EntityPage, EntityView, NeighborhoodView, ProjectionState
from platograph.api.similarity import ComparePairs
from platograph.urls import segment

router = APIRouter(prefix="/v1", tags=["read"], dependencies=scope("read"))
NOT_FOUND = {
    404: {"description": "No entity with this id"},
    503: {"description": "A service is unavailable, or `after` was not reached in time"},
}


@router.get("/entities", response_model=EntityPage)
async def list_entities(
    services: ServicesDep,
    type: str | None = None,
    q: str | None = Query(None, max_length=200),
    cursor: Cursor = None,
    limit: int = Query(50, ge=1, le=500),
) -> Any:
    """Entities in id order; filter by `type` and by `q` in name or text; follow `next_cursor` for more."""
    params = {k: v for k, v in {"type": type, "q": q, "cursor": cursor, "limit": limit}.items() if v is not None}
    response = await call(services.graph, "graph", "GET", "/v1/entities", params=params)
    raise_for_client_error(response)
    return response.json()


@router.get(
    "/entities/{id}/neighborhood",
    response_model=NeighborhoodView,
    responses=NOT_FOUND,  # type: ignore[arg-type]
)
async def neighborhood(
    id: str,
    request: Request,
    after: After = None,
    limit: int = Query(50, ge=1, le=500, description="Neighbors per group"),
    group: str | None = Query(None, description="Page through one group only"),
    cursor: Cursor = None,
    min_score: float | None = Query(None, ge=-1, le=1, description="Similarity threshold (default: the model's)"),
) -> Response:
    """The entity, its source paper, typed neighbors by type (ranked by edge count) and related-by-similarity:
    the candidates proposed with it (above their type pair's threshold, no typed edge, not rejected), best
    first; with a `min_score` below what candidates are proposed at, a live search instead."""
    # The hottest route: services and settings from the app's state (see gateway.deps).
    state = request.app.state
    return await assembly.neighborhood(state.services, state.settings, id, after=after, limit=limit, group=group,
                                       cursor=cursor, min_score=min_score)  # fmt: skip


@router.get("/entities/{id}/similar", tags=["similarity"], responses=NOT_FOUND)  # type: ignore[arg-type]
async def similar(
    id: str,
    request: Request,
    services: ServicesDep,
    limit: int = Query(20, ge=1, le=200),
    min_score: float | None = Query(None, ge=-1, le=1, description="Default: the model's threshold"),
    type: Types = None,
    include_linked: bool = Query(False, description="Also list entities that already have a typed edge"),
    mode: str = Query("dense", pattern="^(dense|hybrid)$", description="Rank by cosine, or cosine fused with BM25"),
) -> Response:
    """Entities close in embedding space to this one, best first, with their scores (any `limit`, `min_score`)."""
    return await passthrough(services.similarity, "similarity", f"/v1/entities/{segment(id)}/similar", request)


@router.get("/entities/{id}", response_model=EntityView, responses=NOT_FOUND)  # type: ignore[arg-type]
async def get_entity(id: str, services: ServicesDep, settings: SettingsDep, after: After = None) -> Any:
    """One entity with its attributes, version and times. A merged entity's id answers with a permanent
    redirect to the entity it was merged into."""
    await assembly.wait_for(services, settings, after)
    response = await call(services.graph, "graph", "GET", f"/v1/entities/{segment(id)}")
    raise_for_client_error(response)
    entity = response.json()
    if entity.get("merged_into"):
        survivor = segment(entity["merged_into"])
        return RedirectResponse(f"/v1/entities/{survivor}", status_code=301, headers=assembly.UNDOABLE)
    return entity


@router.get("/edges", response_model=EdgePage)
async def dangling_edges(
    services: ServicesDep,
    dangling: bool = Query(
        True, description="Only edges waiting for an endpoint (the only list kept)", json_schema_extra={"enum": [True]}
    ),  # fmt: skip
    cursor: Cursor = None,
    limit: int = Query(100, ge=1, le=500),
) -> Any:
    """Edges still waiting for an endpoint to exist (`dangling=true`)."""
    params: dict[str, Any] = {"dangling": dangling, "limit": limit}
    if cursor:
        params["cursor"] = cursor
    response = await call(services.graph, "graph", "GET", "/v1/edges", params=params)
    raise_for_client_error(response)
    return response.json()


@router.get("/projection", response_model=ProjectionState, tags=["operations"])
async def projection(services: ServicesDep, position: Position, wait_ms: int = Query(0, ge=0, le=30_000)) -> Any:
    """Whether every write up to `position` is visible in reads (waits up to `wait_ms`)."""
    with services.waiting.slot():
        response = await call(services.graph_waits, "graph", "GET", "/v1/projection",
                              params={"position": position, "wait_ms": wait_ms})  # fmt: skip
    raise_for_client_error(response)
    return response.json()


@router.get("/search", tags=["similarity"])
async def search(
    request: Request,
    services: ServicesDep,
    q: str = Query(min_length=1, max_length=2000),
    limit: int = Query(20, ge=1, le=200),
    min_score: float | None = Query(None, ge=-1, le=1),
    type: Types = None,
    mode: str = Query("hybrid", pattern="^(dense|hybrid)$", description="Cosine fused with BM25, or cosine only"),
) -> Response:
    """Entities ranked for free text by meaning and words (the same embedding as candidates). With
    `mode=hybrid` the order is the fusion score of cosine and BM25, given as each item's `fused`, while
    `score` stays the cosine, so scores need not fall monotonically down the list; `min_score` applies to
    the cosine."""
    return await passthrough(services.similarity, "similarity", "/v1/search", request)


@router.get("/candidates", tags=["similarity"])
async def candidates(request: Request, services: ServicesDep, query: Annotated[CandidateQuery, Query()]) -> Response:
    """Candidate edges and duplicates, best score first; each says why (score, evidence) and what edge it suggests."""
    return await passthrough(services.graph, "graph", "/v1/candidates", request)


@router.post("/compare", tags=["similarity"])
async def compare(body: ComparePairs, services: ServicesDep) -> Response:
    """Score text pairs with the active model: `{"pairs": [[a, b], ...]}` → cosine, and duplicate or link with why."""
    response = await call(services.similarity, "similarity", "POST", "/v1/compare", content=body.model_dump_json(),
                          headers={"content-type": "application/json"})  # fmt: skip
    return relay(response)


@router.get("/models", tags=["similarity"])
async def models(request: Request, services: ServicesDep) -> Response:
    """Registered embedding models and which one is active."""
    return await passthrough(services.similarity, "similarity", "/v1/models", request)


@router.get("/thresholds", tags=["similarity"])
async def thresholds(request: Request, services: ServicesDep) -> Response:
    """The cosine thresholds candidates are proposed at, per type pair: configured, learned from people's
    decisions (accepted and rejected candidates, typed edges added directly: the lowest cosine keeping the
    target precision, once a type pair has enough decisions) or the model's default; with the decisions
    used, precision and recall at the threshold, and since when it holds. Each change is a
    `threshold.changed` event in the journal (`GET /v1/audit?type=threshold.changed`)."""
    return await passthrough(services.similarity, "similarity", "/v1/thresholds", request)


@router.get("/status", tags=["operations"])
async def status(services: ServicesDep) -> dict[str, Any]:
    """Health of every service and the projector's progress."""
    return await assembly.status(services)
