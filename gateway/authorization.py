"""Who may call what: every public route declares the scope it needs (`authorize(scope)`), and a request
proves it with `Authorization: Bearer <key>`. Missing or unknown key: 401 with `WWW-Authenticate`; a key
without the scope: 403 naming it. With PLATOGRAPH_PUBLIC_READS=true, `read` routes answer without a key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.deps import ServicesDep, SettingsDep
from platograph.api.access import SCOPES, Principal, Scope
from platograph.contracts import Actor

bearer = HTTPBearer(auto_error=False, scheme_name="apiKey",
                    description="An API key (`plg_...`): `platograph keys create`, or the admin key `platograph up` "
                                "prints")  # fmt: skip
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
CHALLENGE = 'Bearer realm="platograph"'


def _unauthorized(msg: str, challenge: str) -> HTTPException:
    return HTTPException(401, headers={"WWW-Authenticate": challenge},
                         detail=[{"loc": ["header", "authorization"], "msg": msg, "type": "unauthorized"}])  # fmt: skip


def authorize(scope: Scope) -> Callable[..., Awaitable[Principal | None]]:
    """A dependency that lets a request through when its key has `scope` (admin has every scope); the
    principal is kept on `request.state.principal` (None for an open read)."""

    async def check(request: Request, services: ServicesDep, settings: SettingsDep, credentials: Credentials) -> (
        Principal | None
    ):  # fmt: skip
        if credentials is None:
            if scope == "read" and settings.public_reads:
                client = request.client.host if request.client else "unknown"
                await _within_budget(request, f"ip:{client}:read", settings.rate_read)
                request.state.principal = None
                return None
            raise _unauthorized("an API key is required: Authorization: Bearer <key>", CHALLENGE)
        principal = await services.principals.get(services.access, credentials.credentials)
        if principal is None:
            raise _unauthorized("unknown or revoked API key", CHALLENGE + ', error="invalid_token"')
        if not principal.allows(scope):
            msg = f"this key lacks the scope {scope!r} ({SCOPES[scope]}); it has {', '.join(principal.scopes)}"
            raise HTTPException(403, detail=[{"loc": ["header", "authorization"], "msg": msg, "type": "forbidden"}])
        if scope == "read":
            await _within_budget(request, f"{principal.id}:read", principal.read_rate or settings.rate_read)
        else:
            await _within_budget(request, f"{principal.id}:write", principal.write_rate or settings.rate_write)
        request.state.principal = principal
        return principal

    check.scope = scope  # type: ignore[attr-defined]  # read by the test that every route declares one
    return check


async def _within_budget(request: Request, who: str, budget: str) -> None:
    """Spend one request of a budget; 429 with Retry-After when it is spent."""
    wait = await request.app.state.rate_limits.take(who, budget)
    if wait is not None:
        msg = f"the budget of requests ({budget}) is spent; retry after {wait:.0f} s"
        detail = [{"loc": ["header", "authorization"], "msg": msg, "type": "rate_limited"}]
        raise HTTPException(429, headers={"Retry-After": str(round(wait))}, detail=detail)


def actor_of(request: Request) -> Actor | None:
    """The actor to record on the events a request causes: its key, or None for an open read."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return None if principal is None else Actor(id=principal.id, name=principal.name)


async def _actor(request: Request) -> Actor:
    actor = actor_of(request)
    if actor is None:  # only on a route whose scope is not read: never without a key
        raise _unauthorized("an API key is required: Authorization: Bearer <key>", CHALLENGE)
    return actor


#: The actor of a route that changes something (its router's scope has let a key through).
ActorDep = Annotated[Actor, Depends(_actor)]


async def _principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise _unauthorized("an API key is required: Authorization: Bearer <key>", CHALLENGE)
    return principal


#: The key of a route whose scope is not `read` (so there always is one).
PrincipalDep = Annotated[Principal, Depends(_principal)]


def scope(name: Scope) -> list[Any]:
    """Router-level dependencies for `name` (what every public router is built with)."""
    return [Depends(authorize(name))]
