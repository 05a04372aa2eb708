"""The access API (internal; the gateway forwards /v1/keys to it and asks it who a key speaks for)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request

from platograph.api.access import KeyIn, KeyMade, KeyPage, KeyView, Principal
from platograph.database import ping_database
from platograph.internal import protect
from platograph.observability import fastapi_telemetry, in_thread, instrument
from platograph.outages import answer_outages
from services.access.bootstrap import Access, bootstrap
from services.access.service_layer import keys

router = APIRouter(prefix="/v1", tags=["access"])


def get_access(request: Request) -> Access:
    return request.app.state.access  # type: ignore[no-any-return]


AccessDep = Annotated[Access, Depends(get_access)]


def _not_found(loc: list[str], msg: str) -> HTTPException:
    return HTTPException(404, detail=[{"loc": loc, "msg": msg, "type": "not_found"}])


@router.post("/keys", status_code=201, response_model=KeyMade)
def create_key(body: KeyIn, access: AccessDep) -> KeyMade:
    """Make a key with scopes; the reply carries the key itself, this once."""
    return keys.create(access.engine, body)


@router.get("/keys", response_model=KeyPage)
def list_keys(access: AccessDep, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> KeyPage:
    """Keys in id order, with their scopes and whether they were revoked (never the key itself)."""
    try:
        return keys.page(access.engine, cursor, limit)
    except (ValueError, TypeError, IndexError) as exc:
        raise HTTPException(422, detail=[{"loc": ["query", "cursor"], "msg": "cursor is not valid",
                                          "type": "value_error"}]) from exc  # fmt: skip


@router.post("/keys/{id}/revoke", response_model=KeyView)
def revoke_key(id: Annotated[str, Path(max_length=100)], access: AccessDep) -> KeyView:
    """Revoke a key: it stops working within seconds on every gateway."""
    revoked = keys.revoke(access.engine, id)
    if revoked is None:
        raise _not_found(["path", "id"], f"no key {id!r}")
    return revoked


@router.get("/principals/{key_hash}", response_model=Principal)
def principal(key_hash: Annotated[str, Path(pattern="^[0-9a-f]{64}$")], access: AccessDep) -> Principal:
    """Who a key speaks for, by the SHA-256 of the key; 404 for an unknown or revoked one."""
    found = keys.recognise(access.engine, key_hash)
    if found is None:
        raise _not_found(["path", "key_hash"], "no such key, or it was revoked")
    return found


def create_app(access: Access | None = None) -> FastAPI:
    """The access ASGI app."""
    wired = access or bootstrap()
    app = FastAPI(title="Platograph access", telemetry=fastapi_telemetry())
    app.state.access = wired
    app.include_router(router)
    instrument(app, "access", readiness={"postgres": in_thread(partial(ping_database, wired.engine))})
    protect(app, "access")

    answer_outages(app)
    return app
