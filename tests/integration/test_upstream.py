"""The gateway's real upstream clients (httpx over aiohttp's pool) against a real socket: answers pass
through unchanged, and a service that is down becomes a 503 naming it, never a 500."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import weakref
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.adapters.clients import build
from gateway.adapters.upstream import UpstreamUnavailable, call, relay
from gateway.settings import GatewaySettings


class Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        body = b'{"path":"' + self.path.encode() + b'"}'
        self.send_response(418)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "7")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_answer_passes_through_and_a_service_that_is_down_is_a_503(
    server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # required by the settings, never opened here
    port = server.server_address[1]
    settings = GatewaySettings(graph_url=f"http://127.0.0.1:{port}", similarity_url=f"http://127.0.0.1:{free_port()}")

    async def scenario() -> None:
        services = build(settings)
        try:
            answers = await asyncio.gather(*(call(services.graph, "graph", "GET", f"/v1/x/{i}") for i in range(40)))
            for i, answer in enumerate(answers):
                relayed = relay(answer)
                assert (relayed.status_code, relayed.body) == (418, b'{"path":"/v1/x/' + str(i).encode() + b'"}')
                assert relayed.headers["retry-after"] == "7"
            with pytest.raises(UpstreamUnavailable) as down:
                await call(services.similarity, "similarity", "GET", "/v1/thresholds")
            assert down.value.status_code == 503
            assert down.value.detail[0]["loc"] == ["server", "similarity"]
        finally:
            await services.aclose()

    asyncio.run(scenario())


def test_an_answer_is_freed_without_the_cyclic_collector(
    server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx leaves each response in a cycle with its stream; left to the collector, the gateway's young
    generation filled with tens of thousands of them and each collection paused it for 16-44 ms."""
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    settings = GatewaySettings(graph_url=f"http://127.0.0.1:{server.server_address[1]}")

    async def scenario() -> weakref.ref[object]:
        services = build(settings)
        try:
            answer = await call(services.graph, "graph", "GET", "/v1/x/1")
            assert answer.json() == {"path": "/v1/x/1"}  # still readable once released
            freed = weakref.ref(answer)
            del answer
            return freed
        finally:
            await services.aclose()

    gc.disable()
    try:
        freed = asyncio.run(scenario())
        assert freed() is None
    finally:
        gc.enable()
