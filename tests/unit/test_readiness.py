"""/readyz answers 503 naming each server that fails or hangs, and 200 when all answer."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from platograph import observability
from platograph.observability import in_thread, instrument


async def _answers() -> None:
    return None


async def _refuses() -> None:
    raise ConnectionRefusedError("127.0.0.1:1 secret-host refused")


async def _hangs() -> None:
    await asyncio.sleep(60)


def _blocks() -> None:
    time.sleep(1)  # past the timeout; the loop waits for the thread when it closes


def _app(**checks: observability.Check) -> TestClient:
    app = FastAPI()
    instrument(app, "test", readiness=checks)
    return TestClient(app)


def test_ready_when_every_server_answers() -> None:
    with _app(redis=_answers, postgres=in_thread(lambda: None)) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "service": "test", "failing": []}


def test_not_ready_names_the_failing_servers_and_nothing_about_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "READY_TIMEOUT_S", 0.2)
    with _app(redis=_refuses, postgres=_hangs, index=in_thread(_blocks), model=_answers) as client:
        started = time.monotonic()
        answer = client.get("/readyz")
        took = time.monotonic() - started
        alive = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["failing"] == ["redis", "postgres", "index"]
    assert "secret-host" not in answer.text
    assert took < 2, "a hanging server must not hold the probe past the timeout"
    assert alive.status_code == 200, "liveness does not depend on the servers"
