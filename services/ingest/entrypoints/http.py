"""Ingest's HTTP API: translate requests into validated payloads and hand them to the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from redis.exceptions import RedisError

from platograph.api.ingest import EdgeIn, EntityIn
from platograph.contracts import Actor
from platograph.internal import ACTOR_HEADER, protect
from platograph.observability import fastapi_telemetry, instrument
from platograph.runtime import tune_gc
from services.ingest.bootstrap import Ingest, bootstrap
from services.ingest.domain.validation import (
    InvalidInput,
    error,
    parse_json,
    validate_edges,
    validate_entities,
    validate_ndjson,
)
from services.ingest.service_layer import writes

router = APIRouter(prefix="/v1", tags=["ingest"])
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=300)]
ActorHeader = Annotated[str | None, Header(alias=ACTOR_HEADER, max_length=1000, description="Who writes (the gateway "
                                           "sets it from the API key)")]  # fmt: skip


def get_ingest(request: Request) -> Ingest:
    return request.app.state.ingest  # type: ignore[no-any-return]


IngestDep = Annotated[Ingest, Depends(get_ingest)]


def _body_schema(model: type[EntityIn] | type[EdgeIn]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    schema = {"oneOf": [ref, {"type": "array", "items": ref}]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _media_type(request: Request, accepted: tuple[str, ...]) -> None:
    """Refuse (415) a body in another content type: what a cross-site form sends (text/plain) included."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in accepted:
        msg = f"the body must be {' or '.join(accepted)}, not {media or 'untyped'}"
        raise InvalidInput([error(["header", "content-type"], msg, "unsupported_media_type")], 415)


async def _read_body(request: Request, limit: int, accepted: tuple[str, ...] = ("application/json",)) -> bytes:
    _media_type(request, accepted)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidInput([error(["body"], f"body is over the limit of {limit} bytes", "too_long")], 413)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/entities", status_code=202, openapi_extra=_body_schema(EntityIn))
async def post_entities(
    request: Request, ingest: IngestDep, key: IdemKey = None, actor: ActorHeader = None
) -> dict[str, Any]:
    """Create or replace one entity or a batch; answers with ids, event ids and a position token."""
    body = await _read_body(request, ingest.settings.max_body_bytes)
    payloads, _ = validate_entities(parse_json(body), ingest.ontology, ingest.settings.max_batch)
    return await _accept(ingest, payloads, key, body, actor)


@router.post("/edges", status_code=202, openapi_extra=_body_schema(EdgeIn))
async def post_edges(
    request: Request, ingest: IngestDep, key: IdemKey = None, actor: ActorHeader = None
) -> dict[str, Any]:
    """Add one typed edge or a batch; endpoints that do not exist yet are kept waiting, not dropped."""
    body = await _read_body(request, ingest.settings.max_body_bytes)
    payloads, _ = validate_edges(parse_json(body), ingest.ontology, ingest.settings.max_batch)
    return await _accept(ingest, payloads, key, body, actor)


@router.post(
    "/import",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def post_import(
    request: Request, ingest: IngestDep, key: IdemKey = None, actor: ActorHeader = None
) -> dict[str, Any]:
    """Import NDJSON lines ``{"kind": "entity"|"edge", ...}``; all lines are checked before any is appended."""
    media = ("application/x-ndjson", "application/json")
    body = await _read_body(request, ingest.settings.max_import_bytes, media)
    payloads = validate_ndjson(body.splitlines(), ingest.ontology, ingest.settings.max_import_lines)
    return await _accept(ingest, payloads, key, body, actor, full=False)


def _actor(raw: str | None) -> Actor | None:
    if raw is None:
        return None
    try:
        return Actor.model_validate_json(raw)
    except ValidationError as exc:
        msg = 'not an actor: {"id": ..., "name": ...}'
        raise InvalidInput([error(["header", ACTOR_HEADER], msg, "value_error")]) from exc


async def _accept(
    ingest: Ingest, payloads: Any, key: str | None, body: bytes, actor: str | None, full: bool = True
) -> dict[str, Any]:
    return await writes.accept(
        payloads,
        log=ingest.log,
        key=key,
        body_hash=writes.request_hash(body),
        events_per_entry=ingest.settings.events_per_entry,
        ttl_s=ingest.settings.idempotency_ttl_s,
        full=full,
        actor=_actor(actor),
    )


def create_app(ingest: Ingest | None = None) -> FastAPI:
    """The ingest ASGI app."""
    wired = ingest or bootstrap()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tune_gc()
        yield
        await wired.log.aclose()

    app = FastAPI(title="Platograph ingest", telemetry=fastapi_telemetry(), lifespan=lifespan)
    app.state.ingest = wired
    app.include_router(router)
    instrument(app, "ingest", body_limits=wired.settings.body_limits, readiness={"redis": wired.log.ping})
    protect(app, "ingest")

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"detail": exc.errors}, status_code=exc.status_code)

    @app.exception_handler(RedisError)
    async def _redis_down(_: Request, exc: RedisError) -> JSONResponse:
        body = {"detail": [error(["server"], f"event log unavailable: {exc}", "unavailable")]}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    return app
