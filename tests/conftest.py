"""Fixtures: every integration and end-to-end test runs against external and embedded servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine, text

from ops import migrate
from platograph.settings import sqlalchemy_url
from tests import servers


@pytest.fixture(scope="session", params=["external", "embedded"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Servers]:
    """Real Redis + Postgres, migrated: the machine's servers, then the embedded ones."""
    if request.param == "external":
        context = servers.external()
    else:
        context = servers.embedded(tmp_path_factory.mktemp("embedded"))
    with context as found:
        migrate.upgrade_all(found.database_url)
        yield found


@pytest.fixture
def engine(backend: servers.Servers) -> Iterator[Engine]:
    """An engine on a database whose read model and journal start empty."""
    eng = create_engine(sqlalchemy_url(backend.database_url))
    with eng.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE journal, entities, edges, candidates, projection_tracking, webhook_subscriptions,"
                " webhook_deliveries, webhook_attempts"
            )
        )
    yield eng
    eng.dispose()


@pytest.fixture
def redis_client(backend: servers.Servers) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(backend.redis_url)
    yield client
    client.close()


@pytest.fixture
def stream() -> str:
    """A stream name no other test uses, so tests share a Redis without flushing it."""
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def env(backend: servers.Servers, stream: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for settings classes and child processes."""
    values = {"REDIS_URL": backend.redis_url, "DATABASE_URL": backend.database_url, "PLATOGRAPH_STREAM": stream}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


SEED_FILE = Path(__file__).resolve().parent.parent / "seeds" / "platonic-representation.ndjson"
