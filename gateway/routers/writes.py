"""Writes: forwarded to the ingest service unchanged (it owns validation and the event log)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from gateway.adapters.upstream import call, relay
from gateway.authorization import actor_of, scope
from gateway.deps import ServicesDep
from platograph.api.ingest import EdgeIn, EntityIn
from platograph.internal import actor_headers

router = APIRouter(prefix="/v1", tags=["write"], dependencies=scope("write"))
IdemKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="Makes a retried request a no-op."),
]

ACCEPTED = {
    202: {
        "description": "Accepted: ids, event ids and a `position` token to pass as `after=` when reading",
        "content": {
            "application/json": {
                "example": {
                    "entity_count": 1,
                    "edge_count": 0,
                    "event_count": 1,
                    "entities": ["concept:platonic-representation"],
                    "edges": [],
                    "event_ids": ["4a6f..."],
                    "position": "1764259200000-0",
                    "replayed": False,
                }
            }
        },
    },
    400: {"description": "Malformed JSON (`loc` names the body or NDJSON line)"},
    413: {"description": "Batch or body over the limit"},
    422: {"description": "Invalid field: `detail[].loc` names it"},
}


def _schema(model: type[EntityIn] | type[EdgeIn]) -> dict[str, object]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [schema, {"type": "array", "items": schema, "minItems": 1, "maxItems": 1000}]}
                }
            },
        }
    }


def _headers(request: Request, key: str | None) -> dict[str, str]:
    """What ingest gets besides the body: the content type, who is writing, and the idempotency key in that
    writer's own namespace (two keys that pick the same Idempotency-Key do not see each other's replies)."""
    actor = actor_of(request)
    headers = {"content-type": request.headers.get("content-type", "application/json")}
    if actor is not None:
        headers |= actor_headers(actor)
    if key is not None:
        headers["Idempotency-Key"] = key if actor is None else f"{actor.id}:{key}"
    return headers


@router.post("/entities", status_code=202, responses=ACCEPTED, openapi_extra=_schema(EntityIn))  # type: ignore[arg-type]
async def post_entities(request: Request, services: ServicesDep, key: IdemKey = None) -> Response:
    """Create or replace one entity or a batch (≤1000); ids are `<type>:<slug>`."""
    return relay(
        await call(
            services.ingest,
            "ingest",
            "POST",
            "/v1/entities",
            content=await request.body(),
            headers=_headers(request, key),
        )
    )


@router.post("/edges", status_code=202, responses=ACCEPTED, openapi_extra=_schema(EdgeIn))  # type: ignore[arg-type]
async def post_edges(request: Request, services: ServicesDep, key: IdemKey = None) -> Response:
    """Add one typed edge or a batch; an edge whose endpoint does not exist yet is kept and shown once it does."""
    return relay(
        await call(
            services.ingest, "ingest", "POST", "/v1/edges", content=await request.body(), headers=_headers(request, key)
        )
    )


@router.post(
    "/import",
    status_code=202,
    responses=ACCEPTED,  # type: ignore[arg-type]
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def post_import(request: Request, services: ServicesDep, key: IdemKey = None) -> Response:
    """Import NDJSON, one `{"kind": "entity"|"edge", ...}` per line; every line is checked before any is applied."""
    return relay(
        await call(
            services.ingest, "ingest", "POST", "/v1/import", content=request.stream(), headers=_headers(request, key)
        )
    )
