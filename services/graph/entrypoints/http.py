"""The graph service's HTTP API (internal: the gateway is the public entry point)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from redis.exceptions import ResponseError
from sqlalchemy import Connection

from platograph.api.graph import (
    AuditPage,
    AuditQuery,
    CandidateQuery,
    EdgePage,
    EntityPage,
    EntityView,
    Neighborhood,
    ProjectionState,
)
from platograph.database import ping_database
from platograph.dead_letters import Owner, replay_router
from platograph.internal import protect
from platograph.observability import fastapi_telemetry, in_thread, instrument
from platograph.ontology import OntologyError
from platograph.outages import answer_outages
from platograph.positions import parse_entry_id
from platograph.redis_clients import async_redis
from platograph.runtime import tune_gc
from platograph.waiting import ProjectionWait, TooManyWaiters
from services.graph.adapters import candidate_queries, journal_queries, queries
from services.graph.adapters.neighborhood_sql import Related
from services.graph.adapters.view_reader import ViewReader
from services.graph.bootstrap import Graph, bootstrap
from services.graph.entrypoints import pairs_http
from services.graph.service_layer import projecting

router = APIRouter(prefix="/v1", tags=["graph"])


async def get_graph(request: Request) -> Graph:
    return request.app.state.graph  # type: ignore[no-any-return]


async def get_views(request: Request) -> ViewReader:
    return request.app.state.views  # type: ignore[no-any-return]


def get_conn(graph: Annotated[Graph, Depends(get_graph)]) -> Iterator[Connection]:
    with graph.engine.connect() as conn:
        yield conn


def get_read_conn(graph: Annotated[Graph, Depends(get_graph)]) -> Iterator[Connection]:
    """A connection to the next read replica (the primary without them): for reads that may lag."""
    with graph.read_engine().connect() as conn:
        yield conn


async def get_waits(request: Request) -> AsyncIterator[ProjectionWait]:
    waits = getattr(request.app.state, "waits", None)
    if waits is not None:
        yield waits
        return
    # Served without its lifespan (an in-process client whose every request runs on a loop of its own):
    # a client for this request only, since an asyncio client cannot move between loops.
    graph: Graph = request.app.state.graph
    client = async_redis(graph.settings.redis_url, connections=2)
    try:
        yield ProjectionWait(client, stream=graph.settings.stream, group=graph.settings.group,
                             limit=graph.settings.projection_waiters)  # fmt: skip
    finally:
        await client.aclose()


GraphDep = Annotated[Graph, Depends(get_graph)]
WaitsDep = Annotated[ProjectionWait, Depends(get_waits)]
ViewsDep = Annotated[ViewReader, Depends(get_views)]
ConnDep = Annotated[Connection, Depends(get_conn)]
ReadConnDep = Annotated[Connection, Depends(get_read_conn)]
Limit = Annotated[int, Query(ge=1, le=500)]


def _bad_cursor(exc: ValueError, field: str = "cursor") -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["query", field], "msg": str(exc), "type": "value_error"}])


def _not_found(entity_id: str) -> HTTPException:
    return HTTPException(404, detail=[{"loc": ["path", "id"], "msg": f"no entity {entity_id!r}", "type": "not_found"}])


def _entity_or_404(conn: Connection, entity_id: str) -> EntityView:
    entity = queries.get_entity(conn, entity_id)
    if entity is None:
        raise _not_found(entity_id)
    return entity


@router.get("/entities", response_model=EntityPage)
def list_entities(
    conn: ReadConnDep,
    graph: GraphDep,
    type: str | None = None,
    q: str | None = Query(None, max_length=200),
    cursor: str | None = None,
    limit: Limit = 50,
) -> EntityPage:
    """Entities in id order, filtered by type and by text in name or text."""
    if type is not None and type not in graph.ontology.entity_types:
        raise HTTPException(
            422, detail=[{"loc": ["query", "type"], "msg": f"unknown entity type {type!r}", "type": "ontology"}]
        )
    try:
        return queries.list_entities(conn, entity_type=type, q=q, cursor=cursor, limit=limit)
    except ValueError as exc:
        raise _bad_cursor(exc) from exc


NO_STORE = {"Cache-Control": "no-store"}


@router.get("/entities/{id:path}/neighborhood", response_model=Neighborhood)
async def neighborhood(
    id: str,
    request: Request,
    limit: Limit = 50,
    group: str | None = None,
    cursor: str | None = None,
    related_limit: int | None = Query(None, ge=1, le=200, description="Also `related_by_similarity`: this many"),
    related_min_score: float | None = Query(None, ge=-1, le=1, description="Only related pairs scoring this much"),
    related_threshold: float | None = Query(None, ge=-1, le=1, description="The threshold the view reports"),
) -> Response:
    """The entity, its source paper and its typed neighbors grouped by type; with `related_limit`, also the
    candidates proposed with it (related by similarity)."""
    # The hottest route: the graph and the view reader from the app's state, not as dependencies (FastAPI
    # solves each dependency's parameters on every request).
    graph: Graph = request.app.state.graph
    views: ViewReader = request.app.state.views
    if group is not None and group not in graph.ontology.entity_types:
        raise HTTPException(
            422, detail=[{"loc": ["query", "group"], "msg": f"unknown entity type {group!r}", "type": "ontology"}]
        )

    related = None if related_limit is None else Related(related_limit, related_min_score, related_threshold)
    try:
        view = await views.neighborhood(id, limit=limit, group=group, cursor=cursor, related=related)
    except ValueError as exc:
        raise _bad_cursor(exc) from exc
    if view is None:
        raise _not_found(id)
    # A replica replays the primary's commits a little after the projector announces them (platograph.
    # view_changes): a view read there may predate a change already announced, so it is not to be kept.
    return Response(view, media_type="application/json", headers=NO_STORE if views.replicas else None)


@router.get("/entities/{id:path}", response_model=EntityView)
def get_entity(id: str, conn: ReadConnDep) -> EntityView:
    """One entity."""
    return _entity_or_404(conn, id)


@router.get("/edges", response_model=EdgePage)
def dangling_edges(conn: ConnDep, dangling: bool = True, cursor: str | None = None, limit: Limit = 100) -> EdgePage:
    """Edges waiting for an endpoint that does not exist yet."""
    if not dangling:
        raise HTTPException(
            422,
            detail=[{"loc": ["query", "dangling"], "msg": "only dangling=true is supported", "type": "value_error"}],
        )
    try:
        return queries.dangling_edges(conn, cursor=cursor, limit=limit)
    except ValueError as exc:
        raise _bad_cursor(exc) from exc


@router.get("/projection/through")
async def projection_through(waits: WaitsDep) -> dict[str, str | None]:
    """The last position up to which the projector has applied every entry (null before its first read):
    what a reader of the projection knows everything up to (the similarity service's follow pass names it
    as the cause of what it proposes)."""
    return {"position": await waits.through()}


@router.get("/projection", response_model=ProjectionState, responses={429: {}})
async def projection(
    waits: WaitsDep, views: ViewsDep, position: str, wait_ms: int = Query(0, ge=0, le=30_000)
) -> ProjectionState:
    """Whether the projection has applied everything up to a write's position token (waits up to wait_ms,
    on the event loop: a wait holds no thread, and past the cap of waiters one is refused with 429)."""
    try:
        parse_entry_id(position)
    except ValueError as exc:
        raise _bad_cursor(exc, "position") from exc
    if not await waits.issued(position):
        msg = "no write has been given this position (yet): pass a `position` a write returned"
        raise HTTPException(422, detail=[{"loc": ["query", "position"], "msg": msg, "type": "not_issued"}])
    deadline = time.monotonic() + wait_ms / 1000
    try:
        reached = await waits.wait(position, wait_ms / 1000)
    except TooManyWaiters as exc:
        detail = [{"loc": ["query", "wait_ms"], "msg": f"{exc}: retry later", "type": "too_many_waiters"}]
        raise HTTPException(429, headers={"Retry-After": "1"}, detail=detail) from exc
    # Projected on the primary: the views read replicas, which must have replayed it too.
    reached = reached and await views.replicas_reached(max(0.0, deadline - time.monotonic()))
    return ProjectionState(position=position, reached=reached)


@router.get("/journal")
def journal(
    conn: ConnDep,
    until: str = Query(description="The last stream entry to include"),
    after: str | None = Query(None, description="Page on after this entry (a page's `next_after`)"),
    limit: int = Query(1000, ge=1, le=10_000, description="About this many events a page (entries are whole)"),
) -> Response:
    """The journal as stream entries, in stream order: how a consumer group created after the stream was
    trimmed reads what it missed (see platograph.stream.catch_up)."""
    for name, value in (("until", until), ("after", after)):
        try:
            if value is not None:
                parse_entry_id(value)
        except ValueError as exc:
            raise _bad_cursor(exc, name) from exc
    page = journal_queries.entries(conn, after=after, until=until, limit=limit)
    return Response(orjson.dumps(page), media_type="application/json")


@router.get("/audit", response_model=AuditPage)
def audit(conn: ConnDep, query: Annotated[AuditQuery, Query()]) -> dict[str, Any]:
    """The journal as an audit log, newest first: each event with who caused it (the API key's id and name)."""
    try:
        return journal_queries.audit(conn, actor=query.actor, type=query.type, since=query.since, cursor=query.cursor,
                                     limit=query.limit)  # fmt: skip
    except (ValueError, TypeError) as exc:
        raise _bad_cursor(ValueError("cursor is not valid")) from exc


class LinkedQuery(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=5000)


@router.post("/linked")
def linked(body: LinkedQuery, conn: ConnDep) -> dict[str, dict[str, list[str]]]:
    """For each id, the ids it has a live typed edge with, and the ids a person rejected as its candidates."""
    return candidate_queries.linked(conn, body.ids)


class BriefQuery(BaseModel):
    ids: list[str] = Field(default_factory=list, max_length=5000)
    pairs: list[tuple[str, str]] = Field(default_factory=list, max_length=5000)


@router.post("/briefs")
def briefs(body: BriefQuery, conn: ConnDep) -> dict[str, Any]:
    """Id, type, name and status of entities, and the scores of candidate pairs (`a|b`, a < b)."""
    return candidate_queries.briefs(conn, body.ids, body.pairs)


@router.get("/merge-preview")
def merge_preview(conn: ConnDep, id: str, into: str) -> dict[str, Any]:
    """What merging `id` into `into` would move: each live edge with its fate, and candidates withdrawn."""
    return candidate_queries.merge_preview(conn, id, into)


@router.get("/candidates")
def list_candidates(conn: ConnDep, graph: GraphDep, query: Annotated[CandidateQuery, Query()]) -> dict[str, Any]:
    """Candidate pairs, best score first, filtered by status, kind, score range, entity or type pair."""
    pair = None
    if query.type_pair is not None:
        left, sep, right = query.type_pair.partition("|")
        if not sep or left not in graph.ontology.entity_types or right not in graph.ontology.entity_types:
            msg = "type_pair must be two entity types joined by '|', e.g. claim|paper"
            raise HTTPException(422, detail=[{"loc": ["query", "type_pair"], "msg": msg, "type": "value_error"}])
        pair = (left, right)
    if query.entity is not None:
        try:
            graph.ontology.type_of(query.entity, "entity")
        except OntologyError as exc:
            raise HTTPException(
                422, detail=[{"loc": ["query", "entity"], "msg": exc.message, "type": "ontology"}]
            ) from exc
    try:
        return candidate_queries.list_candidates(
            conn, status=query.status, kind=query.kind, min_score=query.min_score, max_score=query.max_score,
            entity=query.entity, type_pair=pair, cursor=query.cursor, limit=query.limit,
        )  # fmt: skip
    except (ValueError, TypeError, IndexError) as exc:
        raise _bad_cursor(ValueError("cursor is not valid")) from exc


@router.get("/model-alias")
def model_alias(conn: ConnDep) -> dict[str, Any]:
    """The model the similarity service last switched to (from the journal), for one that lost its alias."""
    found = journal_queries.model_alias(conn)
    if found is None:
        raise HTTPException(404, detail=[{"loc": ["server"], "msg": "no model switch was ever recorded",
                                          "type": "not_found"}])  # fmt: skip
    return found


@router.get("/learned-thresholds")
def learned_thresholds(conn: ConnDep, model: str = Query(min_length=1, max_length=200)) -> dict[str, Any]:
    """Each type pair's last learned threshold for a model as the journal keeps it (the similarity service
    restores a Redis that lost them from here)."""
    return {"items": journal_queries.learned_thresholds(conn, model)}


@router.get("/reembed-jobs")
def reembed_jobs(conn: ConnDep) -> dict[str, Any]:
    """Every re-embed job's record as the journal keeps it (the similarity service restores a Redis that
    lost them from here)."""
    return {"items": journal_queries.reembed_jobs(conn)}


@router.get("/review-state")
def review_state(conn: ConnDep, cursor: str | None = None, limit: Limit = 500) -> dict[str, Any]:
    """Standing decisions and merges, paged (the gateway rebuilds its decision log from them)."""
    try:
        return candidate_queries.review_state(conn, cursor, limit)
    except (ValueError, TypeError) as exc:
        raise _bad_cursor(ValueError("cursor is not valid")) from exc


@router.get("/candidates/pair")
def candidate_pair(conn: ConnDep, a: str, b: str) -> dict[str, Any]:
    """One candidate by its pair (either order), whatever its status."""
    found = candidate_queries.get_pair(conn, a, b)
    if found is None:
        raise HTTPException(404, detail=[{"loc": ["query", "b"], "msg": f"no candidate for {a} and {b}",
                                           "type": "not_found"}])  # fmt: skip
    return found


@router.get("/dead-letters")
def dead_letters(
    graph: GraphDep,
    cursor: str | None = Query(None, description="A page's `next_cursor`"),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    """What the consumer groups set aside, oldest first: each record's group, stream entry, reason (undecodable,
    breaks its contract, rejected by Postgres, delivered too often) and the raw entry or event."""
    if cursor is not None:
        try:
            parse_entry_id(cursor)
        except ValueError as exc:
            raise _bad_cursor(exc) from exc
    items = graph.consumer.dead_letters(cursor, limit)
    total = int(graph.consumer.client.xlen(graph.settings.dead_letter_stream))
    return {"total": total, "items": items, "next_cursor": items[-1]["id"] if len(items) == limit else None}


@router.get("/stats")
def stats(conn: ConnDep, graph: GraphDep) -> dict[str, Any]:
    """Read-model counts, projector progress, stream length and dead letters."""
    client, settings = graph.consumer.client, graph.settings
    out = queries.stats(conn)
    out["stream_length"] = int(client.xlen(settings.stream))
    out["dead_letters"] = int(client.xlen(settings.dead_letter_stream))
    out["pending"], out["lag"] = None, None
    try:
        groups = client.xinfo_groups(settings.stream)
    except ResponseError:  # no stream yet: nothing was ever written
        groups = []
    for group in groups:
        if group["name"] in (settings.group.encode(), settings.group):
            out["pending"] = int(group["pending"])
            out["lag"] = None if group.get("lag") is None else int(group["lag"])
    return out


def create_app(graph: Graph | None = None) -> FastAPI:
    """The graph ASGI app."""
    graph = graph or bootstrap()
    views = graph.view_reader()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await views.open()
        client = async_redis(graph.settings.redis_url)
        app.state.waits = ProjectionWait(client, stream=graph.settings.stream, group=graph.settings.group,
                                         limit=graph.settings.projection_waiters)  # fmt: skip
        tune_gc()
        yield
        await client.aclose()
        await views.close()

    app = FastAPI(title="Platograph graph", telemetry=fastapi_telemetry(), lifespan=lifespan)
    app.state.graph, app.state.views = graph, views
    app.include_router(router)
    app.include_router(pairs_http.router)
    replay = partial(projecting.replay, graph.engine, project=graph.project, announce=graph.announce)
    app.include_router(replay_router(Owner(graph.consumer, replay)))
    client = graph.consumer.client
    instrument(
        app,
        "graph",
        readiness={"redis": in_thread(client.ping), "postgres": in_thread(partial(ping_database, graph.engine))},
    )
    protect(app, "graph")

    answer_outages(app)
    return app
