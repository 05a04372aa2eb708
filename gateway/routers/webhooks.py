"""Webhook subscriptions and their delivery log: forwarded to the webhook service (which owns them).

Bodies are validated here too, so the public OpenAPI documents them and errors name the field.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Query, Response

from gateway.adapters.upstream import call, relay
from gateway.authorization import scope
from gateway.deps import ServicesDep
from platograph.api.webhooks import Replay, Rotation, SubscriptionIn, SubscriptionPatch
from platograph.urls import segment

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], dependencies=scope("webhooks"))
ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such webhook"},
                                           422: {"description": "Invalid field: `detail[].loc` names it"}}  # fmt: skip


async def _forward(services: ServicesDep, method: str, path: str, **kwargs: Any) -> Response:
    if "content" in kwargs:
        kwargs["headers"] = {"content-type": "application/json"}
    return relay(await call(services.webhooks, "webhooks", method, f"/v1/webhooks{path}", **kwargs))


@router.post("", status_code=201, responses=ERRORS)
async def create(body: SubscriptionIn, services: ServicesDep) -> Response:
    """Register an endpoint for events (default `candidate.proposed`). The reply carries the signing
    `secret` (`whsec_…`) this once. Deliveries follow the Standard Webhooks specification."""
    return await _forward(services, "POST", "", content=body.model_dump_json())


@router.get("")
async def list_all(services: ServicesDep, cursor: str | None = None, limit: int = Query(50, ge=1, le=500)) -> Response:
    params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
    return await _forward(services, "GET", "", params=params)


@router.get("/{id}", responses=ERRORS)
async def get(id: str, services: ServicesDep) -> Response:
    return await _forward(services, "GET", f"/{segment(id)}")


@router.patch("/{id}", responses=ERRORS)
async def update(id: str, body: SubscriptionPatch, services: ServicesDep) -> Response:
    """Change url, event types, filter or description."""
    return await _forward(services, "PATCH", f"/{segment(id)}", content=body.model_dump_json(exclude_unset=True))


@router.delete("/{id}", status_code=204, responses=ERRORS)
async def delete(id: str, services: ServicesDep) -> Response:
    return await _forward(services, "DELETE", f"/{segment(id)}")


@router.post("/{id}/pause", responses=ERRORS)
async def pause(id: str, services: ServicesDep) -> Response:
    """Stop sending; deliveries are still recorded and go out on resume."""
    return await _forward(services, "POST", f"/{segment(id)}/pause")


@router.post("/{id}/resume", responses=ERRORS)
async def resume(id: str, services: ServicesDep) -> Response:
    """Send again, pending deliveries first; also re-enables an endpoint the system disabled."""
    return await _forward(services, "POST", f"/{segment(id)}/resume")


@router.post("/{id}/rotate-secret", responses=ERRORS)
async def rotate(id: str, services: ServicesDep, body: Rotation | None = None) -> Response:
    """A new secret (shown once); the old one still signs, beside it, for the grace period."""
    content = (body or Rotation()).model_dump_json(exclude_unset=True)
    return await _forward(services, "POST", f"/{segment(id)}/rotate-secret", content=content)


@router.get("/{id}/deliveries", responses=ERRORS)
async def deliveries(
    id: str,
    services: ServicesDep,
    status: Literal["pending", "delivered", "failed"] | None = None,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> Response:
    """The delivery log, newest first: every attempt with time, status, latency and the reply's first bytes."""
    params = {k: v for k, v in {"status": status, "cursor": cursor, "limit": limit}.items() if v is not None}
    return await _forward(services, "GET", f"/{segment(id)}/deliveries", params=params)


@router.get("/{id}/deliveries/{delivery_id}", responses=ERRORS)
async def get_delivery(id: str, delivery_id: uuid.UUID, services: ServicesDep) -> Response:
    return await _forward(services, "GET", f"/{segment(id)}/deliveries/{delivery_id}")


@router.post("/{id}/deliveries/{delivery_id}/retry", status_code=202, responses=ERRORS)
async def retry(id: str, delivery_id: uuid.UUID, services: ServicesDep) -> Response:
    """Send one delivery again, whatever its status."""
    return await _forward(services, "POST", f"/{segment(id)}/deliveries/{delivery_id}/retry")


@router.post("/{id}/replay", status_code=202, responses=ERRORS)
async def replay(id: str, body: Replay, services: ServicesDep) -> Response:
    """Re-send every delivery since a time (or only the failed ones)."""
    return await _forward(services, "POST", f"/{segment(id)}/replay", content=body.model_dump_json())
