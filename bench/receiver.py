"""Webhook receivers for the benchmarks. `started()`: one in a process of its own (uvicorn, httptools,
uvloop) that answers every POST 204 and remembers when each (path, webhook-id) first arrived, so the
receiver is not what a throughput bench measures (`GET /_log?after=N` returns the records from the N-th on,
`GET /_count` how many). `receiver(log)`: a thread in the bench's own process, for benches that send it
a few requests a second and want every receipt counted (duplicates included).

Usage: python bench/receiver.py PORT
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

records: list[tuple[str, str, float]] = []  # (path, webhook-id, arrived at)
seen: set[tuple[str, str]] = set()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # the body is read and dropped
        message = await receive()
        more = message.get("more_body", False)
    path = scope["path"]
    if scope["method"] == "POST":
        at = time.time()
        key = next((v.decode() for k, v in scope["headers"] if k == b"webhook-id"), "")
        if (path, key) not in seen:
            seen.add((path, key))
            records.append((path, key, at))
        await send({"type": "http.response.start", "status": 204, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/_count":
        body = str(len(records)).encode()
    else:
        after = int(parse_qs(scope["query_string"].decode()).get("after", ["0"])[0])
        body = orjson.dumps(records[after:])
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})


class Remote:
    """The parent's handle on a receiver process."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=30)

    def count(self) -> int:
        return int(self.http.get("/_count").text)

    def records(self, after: int = 0) -> list[tuple[str, str, float]]:
        return [tuple(r) for r in self.http.get("/_log", params={"after": after}).json()]  # type: ignore[misc]

    def wait_for(self, total: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < total and time.monotonic() < deadline:
            time.sleep(0.05)


@contextmanager
def started() -> Iterator[Remote]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(Path(__file__)), str(port)])
    remote = Remote(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                remote.count()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield remote
    finally:
        remote.http.close()
        process.terminate()
        process.wait(10)


class Log:
    """When each (endpoint, webhook-id) first arrived, and how many times each webhook-id arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: dict[tuple[str, str], float] = {}
        self.receipts: dict[str, int] = {}

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@contextmanager
def receiver(log: Log) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            at = time.time()
            key = self.headers.get("webhook-id", "")
            with log.lock:
                log.received.setdefault((self.path, key), at)
                log.receipts[key] = log.receipts.get(key, 0) + 1
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def wait_for(log: Log, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while log.count() < total and time.monotonic() < deadline:
        time.sleep(0.02)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop", log_level="warning",
                access_log=False, lifespan="off")  # fmt: skip
