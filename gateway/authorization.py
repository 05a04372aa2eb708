"""Who may call what: every public route declares the scope it needs (`authorize(scope)`), and a request
proves it with `Authorization: Bearer <key>`, or, from the pages, with the session cookie that signing in
with a key gives (a state-changing request from a page must also carry the session's CSRF token). Missing
or unknown key: 401 with `WWW-Authenticate` (pages: to the sign-in page); a key without the scope: 403
naming it; over the key's budget: 429 with `Retry-After`. With PLATOGRAPH_PUBLIC_READS=true, `read` routes
answer without a key."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.adapters.clients import Services
from gateway.settings import GatewaySettings
from platograph.api.access import SCOPES, Principal, Scope
from platograph.contracts import Actor

bearer = HTTPBearer(auto_error=False, scheme_name="apiKey",
                    description="An API key (`plg_...`): `platograph keys create`, or the admin key `platograph up` "
                                "prints")  # fmt: skip
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
CHALLENGE = 'Bearer realm="platograph"'
COOKIE = "plg_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE = {"GET", "HEAD", "OPTIONS"}


class SignInFirst(Exception):
    """A page asked for without a session: the person is sent to sign in, then back."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.location = f"/sign-in?next={quote(path, safe='/')}"


def _unauthorized(msg: str = "an API key is required: Authorization: Bearer <key>", challenge: str = CHALLENGE) -> (
    HTTPException
):  # fmt: skip
    return HTTPException(401, headers={"WWW-Authenticate": challenge},
                         detail=[{"loc": ["header", "authorization"], "msg": msg, "type": "unauthorized"}])  # fmt: skip


async def _from_session(request: Request, services: Services) -> Principal | None:
    """The principal of the request's page session, if any; a state-changing request must carry its CSRF
    token (a cookie alone is what a cross-site request would have)."""
    session_id = request.cookies.get(COOKIE)
    session = await request.app.state.sessions.get(session_id) if session_id else None
    if session is None:
        return None
    if request.method not in SAFE and not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), session.csrf):
        msg = "a request from the page must carry its CSRF token"
        raise HTTPException(403, detail=[{"loc": ["header", CSRF_HEADER], "msg": msg, "type": "csrf"}])
    request.state.csrf = session.csrf
    principal: Principal | None = await services.principals.by_hash(services.access, session.key_hash)
    return principal


async def _within_budget(request: Request, who: str, budget: str) -> None:
    """Spend one request of a budget; 429 with Retry-After when it is spent."""
    wait = await request.app.state.rate_limits.take(who, budget)
    if wait is not None:
        msg = f"the budget of requests ({budget}) is spent; retry after {wait:.0f} s"
        detail = [{"loc": ["header", "authorization"], "msg": msg, "type": "rate_limited"}]
        raise HTTPException(429, headers={"Retry-After": str(round(wait))}, detail=detail)


def authorize(scope: Scope) -> Callable[..., Awaitable[Principal | None]]:
    """A dependency that lets a request through when its key has `scope` (admin has every scope); the
    principal is kept on `request.state.principal` (None for an open read)."""

    async def check(request: Request, credentials: Credentials) -> Principal | None:
        # The app's services and settings from its state, not as dependencies: FastAPI solves each
        # dependency's own parameters on every request (a cached one too), and this runs on every request.
        services: Services = request.app.state.services
        settings: GatewaySettings = request.app.state.settings
        if credentials is not None:
            principal = await services.principals.get(services.access, credentials.credentials)
            if principal is None:
                raise _unauthorized("unknown or revoked API key", CHALLENGE + ', error="invalid_token"')
        else:
            principal = await _from_session(request, services)
        if principal is None:
            if scope == "read" and settings.public_reads:
                client = request.client.host if request.client else "unknown"
                await _within_budget(request, f"ip:{client}:read", settings.rate_read)
                request.state.principal = None
                return None
            raise _unauthorized()
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


def authorize_page(scope: Scope) -> Callable[..., Awaitable[Principal | None]]:
    """`authorize` for the pages: a person without a session is sent to sign in instead of a 401."""
    inner = authorize(scope)

    async def check(request: Request, credentials: Credentials) -> Principal | None:
        try:
            return await inner(request, credentials)
        except HTTPException as exc:
            if exc.status_code == 401:
                path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                raise SignInFirst(path) from exc
            raise

    check.scope = scope  # type: ignore[attr-defined]
    return check


def actor_of(request: Request) -> Actor | None:
    """The actor to record on the events a request causes: its key, or None for an open read."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return None if principal is None else principal.actor()


async def _principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # only on a route whose scope is not read: never without a key
        raise _unauthorized()
    return principal


#: The key of a route whose scope is not `read` (so there always is one).
PrincipalDep = Annotated[Principal, Depends(_principal)]


async def _actor(principal: PrincipalDep) -> Actor:
    return principal.actor()


#: The actor of a route that changes something.
ActorDep = Annotated[Actor, Depends(_actor)]


def scope(name: Scope) -> list[Any]:
    """Router-level dependencies for `name` (what every public router is built with)."""
    return [Depends(authorize(name))]


def page_scope(name: Scope) -> list[Any]:
    """Router-level dependencies of the pages for `name`."""
    return [Depends(authorize_page(name))]
