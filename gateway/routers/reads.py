"""Reads: entities, lists and the neighborhood view, assembled from graph and similarity."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import RedirectResponse

from gateway.deps import ServicesDep, SettingsDep
from gateway.upstream import call, passthrough, raise_for_client_error, relay
from platograph.api.graph import EdgePage, EntityPage, EntityView, NeighborhoodView, ProjectionState
from platograph.api.similarity import ComparePairs
from platograph.urls import segment

router = APIRouter(prefix="/v1", tags=["read"])
After = Annotated[
    str | None,
    Query(description="A `position` token from a write: wait until the view includes that write."),
]
Types = Annotated[list[str] | None, Query(description="Only these entity types (repeatable)")]
MERGED = b'"merged_into":"'
# A merge can be undone: browsers must not keep its (permanent) redirect for good.
UNDOABLE = {"Cache-Control": "no-store"}
RELATED_LIMIT = 20  # related-by-similarity items in a view
NOT_FOUND = {
    404: {"description": "No entity with this id"},
    503: {"description": "A service is unavailable, or `after` was not reached in time"},
}


async def wait_for(services: ServicesDep, settings: SettingsDep, after: str | None) -> None:
    """Block until the projection has reached `after`; 503 with Retry-After if it does not in time."""
    if after is None:
        return
    response = await call(
        services.graph,
        "graph",
        "GET",
        "/v1/projection",
        params={"position": after, "wait_ms": settings.read_your_writes_wait_ms},
    )
    if response.status_code == 422:
        raise HTTPException(
            422, detail=[{"loc": ["query", "after"], "msg": "not a position token", "type": "value_error"}]
        )
    raise_for_client_error(response)
    if not response.json()["reached"]:
        raise HTTPException(
            503,
            headers={"Retry-After": "1"},
            detail=[
                {
                    "loc": ["query", "after"],
                    "msg": "the projection has not reached this position yet",
                    "type": "not_reached",
                }
            ],
        )


@router.get("/entities", response_model=EntityPage)
async def list_entities(
    services: ServicesDep,
    type: str | None = None,
    q: str | None = Query(None, max_length=200),
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> Any:
    """Entities in id order; filter by `type` and by `q` in name or text; follow `next_cursor` for more."""
    params = {k: v for k, v in {"type": type, "q": q, "cursor": cursor, "limit": limit}.items() if v is not None}
    response = await call(services.graph, "graph", "GET", "/v1/entities", params=params)
    raise_for_client_error(response)
    return response.json()


@router.get(
    "/entities/{id:path}/neighborhood",
    response_model=NeighborhoodView,
    responses=NOT_FOUND,  # type: ignore[arg-type]
)
async def neighborhood(
    id: str,
    services: ServicesDep,
    settings: SettingsDep,
    after: After = None,
    limit: int = Query(50, ge=1, le=500, description="Neighbors per group"),
    group: str | None = Query(None, description="Page through one group only"),
    cursor: str | None = Query(None, description="A group's `next_cursor` (with `group`)"),
    min_score: float | None = Query(None, ge=-1, le=1, description="Similarity threshold (default: the model's)"),
) -> Response:
    """The entity, its source paper, typed neighbors by type (ranked by edge count) and related-by-similarity:
    the candidates proposed with it (above their type pair's threshold, no typed edge, not rejected), best
    first; with a `min_score` below what candidates are proposed at, a live search instead."""
    await wait_for(services, settings, after)
    requested = settings.similarity_threshold if min_score is None else min_score
    known = await services.thresholds.get(services.similarity)
    asked: dict[str, str | int | None] = {"limit": limit, "group": group, "cursor": cursor}
    params: dict[str, str | int | float] = {k: v for k, v in asked.items() if v is not None}
    if requested is None or (known is not None and requested >= known.ceiling):
        # One call: the graph reads the candidates it has projected (the view's hot path).
        if requested is None:  # every proposed candidate (each above its pair's threshold), the default reported
            at_least, reported = (known.floor, known.threshold) if known else (None, None)
        else:
            at_least = reported = requested
        related = {"related_limit": RELATED_LIMIT, "related_min_score": at_least, "related_threshold": reported}
        params |= {k: v for k, v in related.items() if v is not None}
        response = await call(services.graph, "graph", "GET", f"/v1/entities/{segment(id)}/neighborhood", params=params)
        raise_for_client_error(response)
        return _redirect_if_merged(response.content) or Response(
            splice(response.content, {"warnings": b"[]"}), media_type="application/json"
        )
    graph_call = call(services.graph, "graph", "GET", f"/v1/entities/{segment(id)}/neighborhood", params=params)
    similar_call = call(services.similarity, "similarity", "GET", f"/v1/entities/{segment(id)}/similar",
                        params={"min_score": requested, "limit": RELATED_LIMIT})  # fmt: skip
    graph_response, similar = await asyncio.gather(graph_call, similar_call, return_exceptions=True)
    if isinstance(graph_response, BaseException):
        raise graph_response
    raise_for_client_error(graph_response)
    redirect = _redirect_if_merged(graph_response.content)
    if redirect is not None:
        return redirect
    warnings: list[str] = []
    if isinstance(similar, BaseException) or similar.status_code != 200:
        warnings.append("similarity service unavailable: related_by_similarity is empty")
        related_json = orjson.dumps({"threshold": requested, "count": 0, "items": []})
    else:
        related_json = similar.content
    members = {"related_by_similarity": related_json, "warnings": orjson.dumps(warnings)}
    return Response(splice(graph_response.content, members), media_type="application/json")


def _redirect_if_merged(view: bytes) -> Response | None:
    """A merged entity's view moves to its survivor (parsed only then: this is the hottest read)."""
    if MERGED in view:
        into = orjson.loads(view)["entity"].get("merged_into")
        if into:
            return RedirectResponse(f"/v1/entities/{segment(into)}/neighborhood", status_code=301, headers=UNDOABLE)
    return None


def splice(view: bytes, members: dict[str, bytes]) -> bytes:
    """Add members to the graph's JSON object without parsing it: this is the hottest read, and the
    services answer in our own view shapes (tests validate the result against NeighborhoodView)."""
    view = view.rstrip()
    if not view.endswith(b"}"):
        raise ValueError("the graph service did not answer with a JSON object")
    extra = b"".join(b',"' + name.encode() + b'":' + value for name, value in members.items())
    return view[:-1] + extra + b"}"


@router.get("/entities/{id:path}/similar", tags=["similarity"], responses=NOT_FOUND)  # type: ignore[arg-type]
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


@router.get("/entities/{id:path}", response_model=EntityView, responses=NOT_FOUND)  # type: ignore[arg-type]
async def get_entity(id: str, services: ServicesDep, settings: SettingsDep, after: After = None) -> Any:
    """One entity with its attributes, version and times. A merged entity's id answers with a permanent
    redirect to the entity it was merged into."""
    await wait_for(services, settings, after)
    response = await call(services.graph, "graph", "GET", f"/v1/entities/{segment(id)}")
    raise_for_client_error(response)
    entity = response.json()
    if entity.get("merged_into"):
        return RedirectResponse(f"/v1/entities/{segment(entity['merged_into'])}", status_code=301, headers=UNDOABLE)
    return entity


@router.get("/edges", response_model=EdgePage)
async def dangling_edges(
    services: ServicesDep, dangling: bool = True, cursor: str | None = None, limit: int = Query(100, ge=1, le=500)
) -> Any:
    """Edges still waiting for an endpoint to exist (`dangling=true`)."""
    params: dict[str, Any] = {"dangling": dangling, "limit": limit}
    if cursor:
        params["cursor"] = cursor
    response = await call(services.graph, "graph", "GET", "/v1/edges", params=params)
    raise_for_client_error(response)
    return response.json()


@router.get("/projection", response_model=ProjectionState, tags=["operations"])
async def projection(services: ServicesDep, position: str, wait_ms: int = Query(0, ge=0, le=30_000)) -> Any:
    """Whether every write up to `position` is visible in reads (waits up to `wait_ms`)."""
    response = await call(
        services.graph, "graph", "GET", "/v1/projection", params={"position": position, "wait_ms": wait_ms}
    )
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
async def candidates(
    request: Request,
    services: ServicesDep,
    status: str = Query("proposed", pattern="^(proposed|withdrawn|accepted|rejected)$"),
    kind: str | None = Query(None, pattern="^(link|duplicate)$"),
    min_score: float = Query(-1.0, ge=-1, le=1),
    max_score: float = Query(1.0, ge=-1, le=1),
    entity: str | None = None,
    type_pair: str | None = Query(None, description="Two entity types joined by `|`, e.g. `claim|paper`"),
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> Response:
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


@router.get("/status", tags=["operations"])
async def status(services: ServicesDep) -> dict[str, Any]:
    """Health of every service and the projector's progress."""
    out: dict[str, Any] = {"services": {}}
    for name in ("ingest", "graph", "similarity", "webhooks"):
        client = getattr(services, name)
        try:
            response = await client.get("/healthz")
            out["services"][name] = "ok" if response.status_code == 200 else f"HTTP {response.status_code}"
        except Exception as exc:  # noqa: BLE001 - any failure is reported as that service's state
            out["services"][name] = f"unreachable: {exc.__class__.__name__}"
    places = (("graph", "graph", "/v1/stats"), ("similarity", "similarity", "/v1/stats"),
              ("webhooks", "webhooks", "/v1/stats"), ("reembed", "similarity", "/v1/reembed/current"))  # fmt: skip
    for name, service, path in places:
        try:
            stats = await getattr(services, service).get(path)
            out[name] = stats.json() if stats.status_code == 200 else None
        except Exception:  # noqa: BLE001 - reported above as unreachable
            out[name] = None
    return out
