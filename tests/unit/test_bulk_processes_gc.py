"""The processes a bulk load runs through (ingest, the projectors) collect garbage as the view services do:
a batch of thousands of events builds objects that live until it is written, and CPython's default of a
collection every 700 allocations walked them over and over (about a quarter of those processes' CPU in a
profile of `bench/core.py`'s load)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from services.graph.entrypoints import projector
from services.ingest.entrypoints import http as ingest_http


def test_the_projector_tunes_the_collector_before_it_consumes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(projector, "tune_gc", lambda: calls.append("tune_gc"))
    monkeypatch.setattr(projector, "consume", lambda *args, **kwargs: calls.append("consume"))
    settings = SimpleNamespace(consumer="c", stream="s", group="g", batch_size=1, block_ms=1, claim_idle_ms=1,
                               max_deliveries=1, consumer_retire_s=0)  # fmt: skip
    graph: Any = SimpleNamespace(settings=settings, consumer=object())
    projector.run(graph, threading.Event())
    assert calls == ["tune_gc", "consume"]


def test_ingest_tunes_the_collector_once_started(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(ingest_http, "tune_gc", lambda: calls.append("tune_gc"))

    async def aclose() -> None:
        calls.append("closed")

    async def ping() -> bool:
        return True

    log = SimpleNamespace(aclose=aclose, ping=ping)
    wired: Any = SimpleNamespace(log=log, settings=SimpleNamespace(body_limits=None))
    app = ingest_http.create_app(wired)

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            calls.append("serving")

    asyncio.run(start_and_stop())
    assert calls == ["tune_gc", "serving", "closed"]
