"""A service whose Redis is away answers 503 with Retry-After (the gateway passes it on), not a 500."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from services.webhooks.bootstrap import bootstrap
from services.webhooks.entrypoints import http as webhooks_http
from tests.ports import free_port

pytestmark = pytest.mark.integration


def test_the_webhooks_service_answers_503_while_redis_is_away(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_KEY", Fernet.generate_key().decode())
    away = f"redis://127.0.0.1:{free_port()}/0"  # a port nothing listens on
    monkeypatch.setenv("REDIS_URL", away)
    monkeypatch.setenv("RQ_REDIS_URL", away)
    hooks = bootstrap()
    try:
        with TestClient(webhooks_http.create_app(hooks, dispatch=False)) as api:
            response = api.get("/v1/stats")
    finally:
        hooks.close()
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["detail"][0]["msg"].startswith("event log unavailable")
