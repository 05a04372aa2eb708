"""The graph service's own failure answers."""

import pytest
from fastapi.testclient import TestClient

from services.graph.bootstrap import bootstrap
from services.graph.entrypoints.http import create_app
from services.graph.settings import GraphSettings

pytestmark = pytest.mark.integration


def test_database_down_is_503_with_retry_after(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    graph = bootstrap(GraphSettings())
    try:
        with TestClient(create_app(graph)) as client:
            response = client.get("/v1/entities/concept:a/neighborhood")
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert response.json()["detail"][0]["loc"] == ["server"]
    finally:
        graph.close()
