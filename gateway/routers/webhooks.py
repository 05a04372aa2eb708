"""Webhook subscriptions and their delivery log: forwarded to the webhook service (which owns them).

Bodies are validated here too, so the public OpenAPI documents them and errors name the field.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response

from gateway.adapters.upstream import call, relay
from gateway.authorization import PrincipalDep, scope
from gateway.deps import ServicesDep
from gateway.routers.params import Cursor
from platograph.api.webhooks import Replay, Rotation, SubscriptionIn, SubscriptionPatch
from platograph.internal import OWNER_HEADER, actor_headers
from platograph.urls import segment

IdemKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=200, description="A retried create makes one subscription")
]
ReplayKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="A repeated replay re-sends nothing a second time"),
]
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], dependencies=scope("webhooks"))
ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such webhook"},
                                           422: {"description": "Invalid field: `detail[].loc` names it"}}  # fmt: skip


async def _forward(
    services: ServicesDep, caller: PrincipalDep, method: str, path: str, *, key: str | None = None, **kwargs: Any
) -> Response:
    """Forward to the webhooks service as the caller's owner: it sees only that owner's subscriptions (an
    admin's call carries no owner, and sees them all)."""
    headers = actor_headers(caller.actor())
    if not caller.allows_all():
        headers[OWNER_HEADER] = caller.owner
    if "content" in kwargs:
        headers["content-type"] = "application/json"
    if key is not None:
        headers["Idempotency-Key"] = key
    return relay(await call(services.webhooks, "webhooks", method, f"/v1/webhooks{path}", headers=headers, **kwargs))


@router.post("", status_code=201, responses=ERRORS)
async def create(body: SubscriptionIn, services: ServicesDep, caller: PrincipalDep, key: IdemKey = None) -> Response:
    """Register an endpoint for events (default `candidate.proposed`). The reply carries the signing
    `secret` (`whsec_…`) this once. Deliveries follow the Standard Webhooks specification."""
    return await _forward(services, caller, "POST", "", content=body.model_dump_json(), key=key)


@router.get("")
async def list_all(
    services: ServicesDep, caller: PrincipalDep, cursor: Cursor = None, limit: int = Query(50, ge=1, le=500)
) -> Response:
    """Your subscriptions in id order (an admin's key lists every owner's)."""
    params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
    return await _forward(services, caller, "GET", "", params=params)


@router.get("/{id}", responses=ERRORS)
async def get(id: str, services: ServicesDep, caller: PrincipalDep) -> Response:
    return await _forward(services, caller, "GET", f"/{segment(id)}")


@router.patch("/{id}", responses=ERRORS)
async def update(id: str, body: SubscriptionPatch, services: ServicesDep, caller: PrincipalDep) -> Response:
    """Change url, event types, filter or description."""
    content = body.model_dump_json(exclude_unset=True)
    return await _forward(services, caller, "PATCH", f"/{segment(id)}", content=content)


@router.delete("/{id}", status_code=204, responses=ERRORS)
async def delete(id: str, services: ServicesDep, caller: PrincipalDep) -> Response:
    return await _forward(services, caller, "DELETE", f"/{segment(id)}")


@router.post("/{id}/pause", responses=ERRORS)
async def pause(id: str, services: ServicesDep, caller: PrincipalDep) -> Response:
    """Stop sending; deliveries are still recorded and go out on resume."""
    return await _forward(services, caller, "POST", f"/{segment(id)}/pause")


@router.post("/{id}/resume", responses=ERRORS)
async def resume(id: str, services: ServicesDep, caller: PrincipalDep) -> Response:
    """Send again, pending deliveries first; also re-enables an endpoint the system disabled."""
    return await _forward(services, caller, "POST", f"/{segment(id)}/resume")


@router.post("/{id}/rotate-secret", responses=ERRORS)
async def rotate(id: str, services: ServicesDep, caller: PrincipalDep, body: Rotation | None = None) -> Response:
    """A new secret (shown once); the old one still signs, beside it, for the grace period."""
    content = (body or Rotation()).model_dump_json(exclude_unset=True)
    return await _forward(services, caller, "POST", f"/{segment(id)}/rotate-secret", content=content)


@router.get("/{id}/deliveries", responses=ERRORS)
async def deliveries(
    id: str,
    services: ServicesDep,
    caller: PrincipalDep,
    status: Literal["pending", "delivered", "failed"] | None = None,
    cursor: Cursor = None,
    limit: int = Query(50, ge=1, le=500),
) -> Response:
    """The delivery log, newest first: every attempt with time, status, latency and the reply's first bytes."""
    params = {k: v for k, v in {"status": status, "cursor": cursor, "limit": limit}.items() if v is not None}
    return await _forward(services, caller, "GET", f"/{segment(id)}/deliveries", params=params)


@router.get("/{id}/deliveries/{delivery_id}", responses=ERRORS)
async def get_delivery(id: str, delivery_id: uuid.UUID, services: ServicesDep, caller: PrincipalDep) -> Response:
    return await _forward(services, caller, "GET", f"/{segment(id)}/deliveries/{delivery_id}")


@router.post("/{id}/deliveries/{delivery_id}/retry", status_code=202, responses=ERRORS)
async def retry(id: str, delivery_id: uuid.UUID, services: ServicesDep, caller: PrincipalDep) -> Response:
    """Send one delivery again, whatever its status."""
    return await _forward(services, caller, "POST", f"/{segment(id)}/deliveries/{delivery_id}/retry")


@router.post("/{id}/replay", status_code=202, responses=ERRORS)
async def replay(id: str, body: Replay, services: ServicesDep, caller: PrincipalDep, key: ReplayKey = None) -> Response:
    """Re-send every delivery since a time (or only the failed ones)."""
    return await _forward(services, caller, "POST", f"/{segment(id)}/replay", content=body.model_dump_json(), key=key)
