"""What every service exposes for operators (/healthz, Prometheus metrics at /metrics), and the input guard
every service shares."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platograph.body_limit import BodyLimit, BodyLimits
from platograph.text_guard import TextGuard

REQUESTS = Counter("platograph_http_requests_total", "HTTP requests", ["service", "route", "status"])
LATENCY = Histogram(
    "platograph_http_request_seconds",
    "HTTP request latency",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


log = logging.getLogger(__name__)

# A readiness check: it raises (or hangs past READY_TIMEOUT_S) when a dependency cannot serve.
Check = Callable[[], Awaitable[object]]
READY_TIMEOUT_S = 2.0


def in_thread(check: Callable[[], object]) -> Check:
    """A blocking check (a sync Redis ping, a SQLAlchemy connect) run off the event loop."""

    async def run() -> object:
        return await asyncio.to_thread(check)

    return run


async def _passes(name: str, check: Check) -> bool:
    try:
        await asyncio.wait_for(check(), READY_TIMEOUT_S)
    except Exception as exc:  # any failure means not ready; the reason goes to the log, not the answer
        log.warning("readiness: %s failed: %r", name, exc)
        return False
    return True


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    opentelemetry: bool = Field(False, validation_alias="PLATOGRAPH_OPENTELEMETRY")


def fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's native OpenTelemetry: off unless PLATOGRAPH_OPENTELEMETRY=true. Even with no provider
    configured it asks OpenTelemetry's globals (and os.environ) on every request: about 4% of the gateway's
    samples in a py-spy profile under load. Our request metrics are Prometheus's (/metrics)."""
    wanted = TelemetrySettings().opentelemetry  # a value that is not a boolean fails here, naming the variable
    return {} if wanted else {"tracing": False, "metrics": False, "logs": False}


class MetricsMiddleware:
    """Request count and latency labelled by route template, as plain ASGI (no per-request task)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            LATENCY.labels(self.service, template).observe(time.perf_counter() - started)
            REQUESTS.labels(self.service, template, str(status)).inc()


def instrument(
    app: FastAPI,
    service: str,
    metrics_dependencies: Sequence[Any] = (),
    body_limits: BodyLimits | None = None,
    relayed: Collection[str] = (),
    readiness: Mapping[str, Check] | None = None,
) -> None:
    """Add /healthz (alive: the process answers), /readyz (ready: each of `readiness`, the servers this
    process needs, answers within READY_TIMEOUT_S), /metrics (behind `metrics_dependencies`), request
    metrics, the body limit, and the guard against text Postgres cannot store (not on `relayed` paths,
    whose body this service streams on to one that checks it)."""
    checks = dict(readiness or {})
    app.add_middleware(TextGuard, skip=frozenset(relayed))
    app.add_middleware(BodyLimit, limits=body_limits or BodyLimits())  # before the guard, which buffers
    app.add_middleware(MetricsMiddleware, service=service)  # added last, so outermost: it counts 413s and 422s

    @app.get("/healthz", tags=["operations"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["operations"], include_in_schema=False)
    async def readyz() -> JSONResponse:
        # Names only: a public gateway must not tell a stranger its servers' addresses or errors.
        passed = await asyncio.gather(*(_passes(name, check) for name, check in checks.items()))
        failing = [name for name, ok in zip(checks, passed, strict=True) if not ok]
        body = {"status": "not ready" if failing else "ready", "service": service, "failing": failing}
        return JSONResponse(body, status_code=503 if failing else 200, headers={"Cache-Control": "no-store"})

    @app.get("/metrics", tags=["operations"], include_in_schema=False, dependencies=list(metrics_dependencies))
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
