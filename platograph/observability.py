"""What every service exposes for operators (/healthz, Prometheus metrics at /metrics), and the input guard
every service shares."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from typing import Any

from fastapi import FastAPI, Response
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


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    opentelemetry: bool = Field(False, validation_alias="PLATOGRAPH_OPENTELEMETRY")


def fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's native OpenTelemetry: off unless PLATOGRAPH_OPENTELEMETRY=true. Even with no provider
    configured it asks OpenTelemetry's globals (and os.environ) on every request: about 4% of the gateway's
    samples in a py-spy profile under load. Our request metrics are Prometheus's (/metrics)."""
    wanted = TelemetrySettings().opentelemetry  # a value that is not a boolean fails here, naming the variable
    return {} if wanted else {"tracing": False, "metrics": False, "logs": False}


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
) -> None:
    """Add /healthz, /metrics (behind `metrics_dependencies`), request metrics, the body limit, and the guard
    against text Postgres cannot store (not on `relayed` paths, whose body this service streams on to one
    that checks it)."""
    app.add_middleware(TextGuard, skip=frozenset(relayed))
    app.add_middleware(BodyLimit, limits=body_limits or BodyLimits())  # before the guard, which buffers
    app.add_middleware(MetricsMiddleware, service=service)  # added last, so outermost: it counts 413s and 422s

    @app.get("/healthz", tags=["operations"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/metrics", tags=["operations"], include_in_schema=False, dependencies=list(metrics_dependencies))
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
