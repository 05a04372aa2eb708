"""How the gateway answers errors: refusals of its own decisions, HTTP errors (a 405 naming every method
its path takes), and a page asked for without a session."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from gateway.authorization import SignInFirst
from gateway.domain.refusals import Refused


async def refused(_request: Request, exc: Exception) -> JSONResponse:
    """A decision the rules refuse, as the error shape every route answers with (the field in `loc`)."""
    if not isinstance(exc, Refused):
        raise exc
    return JSONResponse({"detail": exc.detail()}, status_code=exc.status)


def _methods(routes: list[Any], path: str) -> set[str]:
    """Every method some route serves at `path` (routers included in others are walked too)."""
    out: set[str] = set()
    for route in routes:
        if isinstance(route, APIRoute | Route) and route.path_regex.match(path) and route.methods:
            out |= route.methods
        elif getattr(route, "original_router", None) is not None:
            out |= _methods(route.original_router.routes, path)
    return out


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer to an HTTP error, but a 405 names every method the path takes in `Allow` (Starlette
    names only the first route's, and GET and POST of one path live in different routers here)."""
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    if exc.status_code == 405:
        allowed = sorted(_methods(request.app.routes, request.url.path) - {"HEAD"})
        detail = [{"loc": ["method"], "msg": f"{request.method} is not allowed here; allowed: {', '.join(allowed)}",
                   "type": "method_not_allowed"}]  # fmt: skip
        return JSONResponse({"detail": detail}, status_code=405, headers={"Allow": ", ".join(allowed)})
    return await http_exception_handler(request, exc)


async def too_many_waiters(_request: Request, exc: Exception) -> JSONResponse:
    """More requests of this gateway wait for the projection than it allows: retry shortly."""
    detail = [{"loc": ["query", "after"], "msg": f"{exc}: retry later", "type": "too_many_waiters"}]
    return JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": "1"})


async def not_loaded(_request: Request, exc: Exception) -> JSONResponse:
    """The decision cache is being rebuilt from Postgres after Redis lost it: retry shortly."""
    detail = [{"loc": ["server"], "msg": str(exc), "type": "unavailable"}]
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "2"})


async def sign_in_first(_request: Request, exc: Exception) -> Response:
    """A page without a session: to the sign-in page, and back afterwards."""
    if not isinstance(exc, SignInFirst):
        raise exc
    return RedirectResponse(exc.location, status_code=303)
