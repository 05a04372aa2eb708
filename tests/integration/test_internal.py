"""The internal services answer only callers holding the internal token: every route of every service."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from platograph.internal import HEADER
from services.access.entrypoints import http as access_http
from services.graph.entrypoints import http as graph_http
from services.ingest.entrypoints import http as ingest_http
from services.similarity.entrypoints import http as similarity_http
from services.webhooks.entrypoints import http as webhooks_http
from tests.integration.test_access import api_routes

pytestmark = pytest.mark.integration
TOKEN = "internal-token-for-the-test-" + "x" * 16


@pytest.fixture
def apps(env: dict[str, str], engine: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, FastAPI]:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("PLATOGRAPH_INTERNAL_TOKEN", TOKEN)
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("PLATOGRAPH_INDEX_DIR", str(tmp_path / "index"))
    return {
        "ingest": ingest_http.create_app(),
        "graph": graph_http.create_app(),
        "similarity": similarity_http.create_app(consume=False),
        "webhooks": webhooks_http.create_app(dispatch=False),
        "access": access_http.create_app(),
    }


def test_every_route_of_every_internal_service_wants_the_internal_token(apps: dict[str, FastAPI]) -> None:
    for name, app in apps.items():
        with TestClient(app) as client:
            routes = list(api_routes(app.routes))
            assert routes, name
            for route in routes:
                path = re.sub(r"\{[^}]+\}", "concept:x", route.path)
                for method in sorted(route.methods - {"HEAD"}):
                    refused = client.request(method, path)
                    assert refused.status_code == 401, (name, method, path, refused.status_code)
                    assert refused.json()["detail"][0]["loc"] == ["header", HEADER]
                    wrong = client.request(method, path, headers={HEADER: TOKEN[:-1] + "y"})
                    assert wrong.status_code == 401, (name, method, path)
            assert client.get("/healthz").status_code == 401
            assert client.get("/healthz", headers={HEADER: TOKEN}).status_code == 200, name
            assert client.get("/readyz").status_code == 401
            ready = client.get("/readyz", headers={HEADER: TOKEN})
            assert (ready.status_code, ready.json()["failing"]) == (200, []), (name, ready.text)
