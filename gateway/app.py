"""The gateway ASGI app: the only public entry point."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import errors
from gateway import openapi as document
from gateway.adapters import clients
from gateway.adapters.decision_log import DecisionLog, NotLoaded, ReviewState
from gateway.adapters.rate_limits import RateLimits
from gateway.adapters.sessions import Sessions
from gateway.adapters.upstream import call, raise_for_client_error
from gateway.adapters.view_cache import follow
from gateway.authorization import SignInFirst, scope
from gateway.domain.refusals import Refused
from gateway.routers import (
    audit,
    dead_letters,
    home,
    keys,
    merges,
    pages,
    reads,
    reembed,
    review,
    session,
    webhooks,
    writes,
)
from gateway.security import ContentTypes, SecurityHeaders
from gateway.settings import GatewaySettings
from gateway.templating import templates
from platograph import ontology
from platograph.observability import fastapi_telemetry, instrument
from platograph.redis_clients import async_redis
from platograph.runtime import tune_gc
from platograph.waiting import TooManyWaiters

STATIC = Path(__file__).resolve().parent / "static"
DESCRIPTION = """
Platograph's public API. Writes are accepted asynchronously (202) and return a `position` token;
pass it as `after=` to a read to see your own write. Errors name the offending field in `detail[].loc`.
"""

# Answers any JSON operation can give, documented on each (the routes add their own 404, 409, 413).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": 'Malformed JSON body: `detail[].loc` is `["body"]`'},
    422: {"description": "Invalid input: `detail[].loc` names the field, query parameter or path"},
    503: {"description": "A service behind the gateway is unavailable: retry after `Retry-After` seconds"},
    401: {"description": "No API key, or an unknown or revoked one (`WWW-Authenticate` says so)"},
    403: {"description": "The key lacks the scope this operation needs (`detail[].msg` names it)"},
    415: {"description": "A body in a content type this operation does not take"},
    429: {"description": "The key's budget of requests is spent: retry after `Retry-After` seconds"},
}


# The order the documentation shows the operations in.
TAGS = [
    {"name": "write", "description": "Entities and edges, one at a time or as an NDJSON import (202 and a `position`)"},
    {"name": "read", "description": "Entities, lists and the neighborhood view"},
    {"name": "similarity", "description": "Related by meaning: similar entities, search, candidates, models"},
    {"name": "review", "description": "Accepting and rejecting candidates, merging and unmerging entities"},
    {"name": "webhooks", "description": "Subscriptions announcing new candidates to integrators"},
    {"name": "re-embedding", "description": "Moving the corpus to another embedding model"},
    {"name": "operations", "description": "Status, the projection, dead letters, the audit trail"},
    {"name": "access", "description": "API keys and their scopes"},
]


def review_state(services: clients.Services) -> ReviewState:
    """Pages of the graph's standing decisions and merges, which the decision log is rebuilt from."""

    async def page(cursor: str | None) -> dict[str, Any]:
        response = await call(services.graph, "graph", "GET", "/v1/review-state",
                              params={"cursor": cursor} if cursor else {})  # fmt: skip
        raise_for_client_error(response)
        return dict(response.json())

    return page


def create_app(
    settings: GatewaySettings | None = None, transports: dict[str, httpx.AsyncBaseTransport] | None = None
) -> FastAPI:
    """Build the gateway; `transports` lets tests run the services in-process."""
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = clients.build(settings, transports)
        app.state.redis = async_redis(settings.redis_url)
        app.state.decisions = DecisionLog(app.state.redis, settings.stream, source=review_state(app.state.services))
        app.state.rate_limits = RateLimits(settings.redis_url, settings.stream, app.state.redis)
        app.state.sessions = Sessions(app.state.redis, settings.stream)
        following, stop = None, asyncio.Event()
        if settings.view_cache_mb:
            following = asyncio.create_task(follow(app.state.services.views, app.state.redis, settings.stream, stop))
        tune_gc()
        yield
        if following is not None:
            stop.set()
            following.cancel()
            # Within a blocked read's time (BLOCK_MS), whatever the client made of the cancellation.
            await asyncio.wait({following}, timeout=2.0)
        await app.state.services.aclose()
        await app.state.redis.aclose()

    app = FastAPI(
        title="Platograph",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=fastapi_telemetry(),
        openapi_tags=TAGS,
        docs_url=None,  # served below from installed files, without inline script
        redoc_url=None,
    )
    app.state.settings = settings
    app.add_exception_handler(Refused, errors.refused)
    app.add_exception_handler(StarletteHTTPException, errors.http_error)
    app.add_exception_handler(SignInFirst, errors.sign_in_first)
    app.add_exception_handler(TooManyWaiters, errors.too_many_waiters)
    app.add_exception_handler(NotLoaded, errors.not_loaded)
    # Reads first: a request is matched against the routers in order, and views are most of the traffic.
    for api in (reads, writes, merges, review, webhooks, reembed, dead_letters, keys, audit):
        app.include_router(api.router, responses=ERRORS)
    app.include_router(home.router)
    app.include_router(pages.router)
    app.include_router(session.router)
    app.include_router(session.signed_in)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Response:
        return templates.TemplateResponse(request, "docs.html", {})

    # An import is streamed on to ingest, which checks its text: the gateway does not hold it too.
    instrument(app, "gateway", scope("admin"), body_limits=settings.body_limits, relayed=("/v1/import",),
               readiness={"redis": lambda: app.state.redis.ping()})  # fmt: skip
    document.install(app, ontology.load(settings.ontology))
    app.add_middleware(ContentTypes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(SecurityHeaders)  # outermost: every answer, refusals included
    return app
