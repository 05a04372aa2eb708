"""The audit log (admin): who did what, read from the graph's journal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from gateway.adapters.upstream import passthrough
from gateway.authorization import scope
from gateway.deps import ServicesDep
from platograph.api.graph import AuditPage, AuditQuery

router = APIRouter(prefix="/v1/audit", tags=["operations"], dependencies=scope("admin"))


@router.get("", response_model=AuditPage)
async def audit(request: Request, services: ServicesDep, query: Annotated[AuditQuery, Query()]) -> Response:
    """Every event newest first with its actor (the key's id and name); filter by `actor` (id or name), `type`
    and `since`; follow `next_cursor` for more."""
    return await passthrough(services.graph, "graph", "/v1/audit", request)
