"""Dead letters: what the consumer groups set aside (listed by the graph, which shares the stream), and
their replay by the service whose group set each aside."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, HTTPException, Query, Request, Response

from gateway.adapters.upstream import call, passthrough, relay
from gateway.authorization import scope
from gateway.deps import ServicesDep
from platograph.dead_letters import OTHER_GROUP, RecordId
from platograph.positions import POSITION_PATTERN

router = APIRouter(prefix="/v1/dead-letters", tags=["operations"], dependencies=scope("admin"))


@router.get("")
async def dead_letters(
    request: Request,
    services: ServicesDep,
    cursor: str | None = Query(
        None, pattern=POSITION_PATTERN, description="A page's `next_cursor` (a stream position)"
    ),
    limit: int = Query(50, ge=1, le=500),
) -> Response:
    """Stream entries the consumer groups set aside, oldest first, with the reason and the raw entry or event
    (`dead_letters` in `/v1/status` counts them)."""
    return await passthrough(services.graph, "graph", "/v1/dead-letters", request)


@router.post("/{record_id}/replay", responses={404: {}, 409: {}})
async def replay(record_id: RecordId, services: ServicesDep) -> Response:
    """Handle a dead-lettered entry again, once its cause is fixed, in the group that set it aside (graph,
    similarity or webhooks), at its own stream position so that it cannot win over later writes; the record
    is then deleted. 409 `failed_again` with the error when it fails again (the record stays)."""
    for name, client in (("graph", services.graph), ("similarity", services.similarity),
                         ("webhooks", services.webhooks)):  # fmt: skip
        response = await call(client, name, "POST", f"/v1/dead-letters/{record_id}/replay")
        if response.status_code != 409 or _type(response) != OTHER_GROUP:
            return relay(response)
    raise HTTPException(409, detail=[{"loc": ["path", "record_id"], "type": "no_owner",
                                      "msg": "no service here runs the group that set this record aside"}])  # fmt: skip


def _type(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["detail"][0]["type"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
