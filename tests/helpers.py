"""Shared test helpers: building events, draining a stream, snapshotting the read model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import redis
from sqlalchemy import Engine, text

from platograph.contracts import Envelope, Frozen, encode_entry, new_envelope
from platograph.stream import StreamConsumer
from services.graph.service_layer import projecting


def consumer(client: redis.Redis, stream: str, name: str = "c1", group: str = "graph") -> StreamConsumer:
    c = StreamConsumer(client, stream=stream, group=group, consumer=name, dead_letter_stream=f"{stream}:dead")
    c.ensure_group()
    return c


def append(client: redis.Redis, stream: str, *payloads: Frozen) -> tuple[str, list[Envelope]]:
    envelopes = [new_envelope(p, producer="test") for p in payloads]
    entry_id = client.xadd(stream, encode_entry(envelopes))  # type: ignore[arg-type]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id), envelopes


def drain(c: StreamConsumer, engine: Engine, batch: int = 1000) -> int:
    """Project everything new on the stream; returns entries handled."""
    total = 0
    while True:
        entries = c.read_new(batch, block_ms=10)
        if not entries:
            return total
        total += projecting.handle(entries, engine=engine, consumer=c).entries


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the read model, in a stable order (recorded_at and the like excluded)."""
    with engine.connect() as conn:
        return {
            "entities": [tuple(r) for r in conn.execute(text("SELECT * FROM entities ORDER BY id"))],
            "edges": [tuple(r) for r in conn.execute(text("SELECT * FROM edges ORDER BY source, type, target"))],
            "candidates": [tuple(r) for r in conn.execute(text("SELECT * FROM candidates ORDER BY a, b"))],
        }


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    """The first truthy value `check` returns, polling every 0.1 s; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return value


Fault = Callable[[httpx.Request], httpx.Response | None]


class FaultyGraph(httpx.BaseTransport):
    """A transport in front of a client of the graph: `fault` may answer a request itself (a 500, a 400)
    instead of the graph; every other request goes through."""

    def __init__(self, inner: httpx.Client, fault: Fault) -> None:
        self.inner, self.fault = inner, fault

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.fault(request)
        if answer is not None:
            return answer
        content = request.read()
        response = self.inner.request(request.method, str(request.url), content=content, headers=dict(request.headers))
        return httpx.Response(response.status_code, headers=response.headers, content=response.content)


class FailingEmbedder:
    """An embedder that raises while `fails(texts)` holds (a bug some entity meets), else the real one."""

    def __init__(self, inner: Any, fails: Callable[[list[str]], bool]) -> None:
        self.inner, self.fails = inner, fails

    def embed(self, texts: list[str]) -> Any:
        if self.fails(texts):
            raise RuntimeError("a bug this entity meets")
        return self.inner.embed(texts)

    def embed_query(self, texts: list[str]) -> Any:
        return self.inner.embed_query(texts)


class FailingQueue:
    """An RQ queue whose enqueue raises while `fails()` holds; everything else is the real queue's."""

    def __init__(self, inner: Any, fails: Callable[[], bool], error: Exception) -> None:
        self.inner, self.fails, self.error = inner, fails, error

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        if self.fails():
            raise self.error
        return self.inner.enqueue(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
