"""API keys (admin): made, listed and revoked by the access service, which keeps only their hashes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from gateway.adapters.upstream import call, passthrough, relay
from gateway.authorization import scope
from gateway.deps import ServicesDep
from gateway.routers.params import Cursor
from platograph.api.access import KeyIn, KeyMade, KeyPage, KeyView
from platograph.urls import segment

router = APIRouter(prefix="/v1/keys", tags=["access"], dependencies=scope("admin"))


@router.post("", status_code=201, response_model=KeyMade)
async def create_key(body: KeyIn, services: ServicesDep) -> Response:
    """Make a key with scopes (read, write, review, webhooks, admin); the key itself is in this reply only."""
    response = await call(services.access, "access", "POST", "/v1/keys", content=body.model_dump_json(),
                          headers={"content-type": "application/json"})  # fmt: skip
    return relay(response)


@router.get("", response_model=KeyPage)
async def list_keys(
    request: Request,
    services: ServicesDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """Keys in id order: name, owner, scopes, when made and revoked (never the key itself)."""
    return await passthrough(services.access, "access", "/v1/keys", request)


@router.post("/{id}/revoke", response_model=KeyView, responses={404: {"description": "No such key"}})
async def revoke_key(id: Annotated[str, Path(max_length=100)], services: ServicesDep) -> Response:
    """Revoke a key: every gateway refuses it within 5 seconds."""
    return relay(await call(services.access, "access", "POST", f"/v1/keys/{segment(id)}/revoke"))
