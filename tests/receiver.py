"""A real webhook receiver on 127.0.0.1 for tests: records every request and answers from a script."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float = field(default_factory=time.time)  # when it arrived
    peer: int = 0  # the sender's port: one port, one connection


@dataclass
class Receiver:
    url: str
    # Called with the number of requests so far (1-based); returns (status, seconds to wait first).
    script: Callable[[int], tuple[int, float]] = lambda n: (200, 0.0)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def wait(self, count: int, timeout: float = 30.0, accepted: bool = False) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                got = [r for r in self.requests if not accepted or 200 <= r.status < 300]
            if len(got) >= count:
                return got
            assert time.monotonic() < deadline, f"receiver got {len(got)} of {count} requests in {timeout}s"
            time.sleep(0.05)


@contextmanager
def receiver(
    script: Callable[[int], tuple[int, float]] | None = None, path: str = "/hook", idle_close: float | None = None
) -> Iterator[Receiver]:
    """`idle_close`: keep connections alive (HTTP/1.1), closing one after that many idle seconds; by default
    every answer closes its connection (HTTP/1.0)."""
    state = Receiver(url="")
    if script is not None:
        state.script = script

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0" if idle_close is None else "HTTP/1.1"
        timeout = idle_close

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with state.lock:
                n = len(state.requests) + 1
                status, delay = state.script(n)
                headers = {k.lower(): v for k, v in self.headers.items()}
                state.requests.append(Received(headers, body, status, peer=self.client_address[1]))
            time.sleep(delay)
            reply = b"ok" if status < 300 else b"nope"
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("location", "http://127.0.0.1:9/elsewhere")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
