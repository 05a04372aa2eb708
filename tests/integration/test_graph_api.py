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
            # The view reads over its asyncio pool; the other reads over SQLAlchemy's.
            for path in ("/v1/entities/concept:a/neighborhood", "/v1/entities/concept:a"):
                response = client.get(path)
                assert response.status_code == 503 and response.headers["retry-after"] == "1", path
                assert response.json()["detail"][0]["loc"] == ["server"]
                assert "database unavailable" in response.json()["detail"][0]["msg"]
    finally:
        graph.close()
