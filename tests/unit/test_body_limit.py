"""Bodies are limited while they arrive: a huge one is refused after at most the limit is read, by every
service (the gateway, which streams an import on, included)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI, Request

from platograph.body_limit import MIB, BodyLimits
from platograph.observability import instrument

CHUNK = 64 * 1024


class Upload:
    """A client sending `size` bytes in chunks, counting what the server pulled."""

    def __init__(self, size: int) -> None:
        self.size, self.pulled = size, 0

    async def receive(self) -> dict[str, Any]:
        step = min(CHUNK, self.size - self.pulled)
        self.pulled += step
        return {"type": "http.request", "body": b"x" * step, "more_body": self.pulled < self.size}


def app_reading_its_body(relay: bool = False) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/entities")
    async def entities(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    @app.post("/v1/import")
    async def imports(request: Request) -> dict[str, int]:
        if relay:  # as the gateway streams an import on to ingest: through an HTTP client
            upstream = FastAPI()

            @upstream.post("/v1/import")
            async def sink(inner: Request) -> dict[str, int]:
                return {"read": sum([len(c) async for c in inner.stream()])}

            transport = httpx.ASGITransport(app=upstream)
            async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
                return dict((await client.post("/v1/import", content=request.stream())).json())
        return {"read": sum([len(c) async for c in request.stream()])}

    instrument(app, "test", body_limits=BodyLimits(1 * MIB, {"/v1/import": 2 * MIB}),
               relayed=("/v1/import",) if relay else ())  # fmt: skip
    return app


def call(app: FastAPI, path: str, upload: Upload, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"content-type", b"application/json"), *headers], "http_version": "1.1",
             "scheme": "http", "server": ("test", 80), "client": ("test", 1), "root_path": ""}  # fmt: skip
    asyncio.run(app(scope, upload.receive, send))  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read() -> None:
    upload = Upload(1024 * MIB)
    status, body = call(app_reading_its_body(), "/v1/entities", upload, [(b"content-length", str(1024 * MIB).encode())])
    assert status == 413 and b"over the limit of 1048576 bytes" in body and upload.pulled == 0


def test_a_chunked_gigabyte_is_refused_once_it_passes_the_limit_on_every_path() -> None:
    for relay in (False, True):
        for path, limit in (("/v1/entities", 1 * MIB), ("/v1/import", 2 * MIB)):
            upload = Upload(1024 * MIB)
            status, body = call(app_reading_its_body(relay), path, upload, [])
            assert status == 413, (relay, path, body)
            assert b'"loc":["body"]' in body and b"too_long" in body
            assert upload.pulled <= limit + CHUNK, (relay, path, upload.pulled)  # a gigabyte was never read


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    for relay in (False, True):
        for path in ("/v1/entities", "/v1/import"):
            status, body = call(app_reading_its_body(relay), path, Upload(MIB - 10), [])
            assert (status, body) == (200, b'{"read":1048566}'), (relay, path)
