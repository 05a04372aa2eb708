"""Views and entity reads go to a streaming replica (DATABASE_READ_URL); read-your-writes (`after=`) waits
until the replica has replayed what the position needs. Replay is paused on the replica to show both."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

from ops import migrate
from platograph.contracts import EntityUpserted, new_envelope
from platograph.database import make_engine
from platograph.ontology import load as load_ontology
from platograph.redis_clients import sync_redis
from services.graph.adapters import projection_store
from services.graph.adapters.view_reader import ViewReader
from services.graph.bootstrap import bootstrap
from services.graph.domain.projection import PositionedEvent
from services.graph.entrypoints.http import create_app
from services.graph.settings import GraphSettings
from tests import servers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[str, str]]:
    with servers.replicated() as (primary, replica):
        migrate.upgrade_all(primary)
        yield primary, replica


def project_entity(primary: str, entity_id: str) -> None:
    engine = make_engine(primary)
    try:
        envelope = new_envelope(EntityUpserted(id=entity_id, type="concept", name=entity_id), producer="test",
                                at=datetime.now(UTC))  # fmt: skip
        position = int(datetime.now(UTC).timestamp() * 1000)
        projection_store.project(engine, [PositionedEvent(position, f"{position}-0", envelope)], "test", "1-0")
    finally:
        engine.dispose()


def replay(replica: str, paused: bool) -> None:
    with psycopg.connect(replica, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


def test_views_read_the_replica_and_wait_for_its_replay(replicated: tuple[str, str]) -> None:
    primary, replica = replicated

    async def scenario() -> None:
        reader = ViewReader(primary, load_ontology(), size=4, read_urls=[replica])
        await reader.open()
        try:
            first, second = f"concept:first-{uuid.uuid4().hex[:8]}", f"concept:second-{uuid.uuid4().hex[:8]}"
            project_entity(primary, first)
            assert await reader.replicas_reached(10)
            assert await reader.neighborhood(first, limit=5, group=None, cursor=None, related=None) is not None
            replay(replica, paused=True)
            try:
                project_entity(primary, second)
                assert not await reader.replicas_reached(0.3)
                # committed on the primary, not on the replica the view reads
                assert await reader.neighborhood(second, limit=5, group=None, cursor=None, related=None) is None
            finally:
                replay(replica, paused=False)
            assert await reader.replicas_reached(10)
            assert await reader.neighborhood(second, limit=5, group=None, cursor=None, related=None) is not None
        finally:
            await reader.close()

    asyncio.run(scenario())


def test_after_a_position_the_graph_answers_reached_only_once_the_replica_has_it(
    replicated: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, replica = replicated
    stream = f"{{test-{uuid.uuid4().hex}}}:events"
    monkeypatch.setenv("REDIS_URL", servers.EXTERNAL_REDIS)
    monkeypatch.setenv("DATABASE_URL", primary)
    monkeypatch.setenv("DATABASE_READ_URL", replica)
    monkeypatch.setenv("PLATOGRAPH_STREAM", stream)
    graph = bootstrap(GraphSettings())
    redis_client = sync_redis(servers.EXTERNAL_REDIS)
    try:
        graph.consumer.ensure_group()
        position = redis_client.xadd(stream, {"x": "1"}).decode()
        redis_client.xreadgroup("graph", "test", {stream: ">"}, count=1)
        with TestClient(create_app(graph)) as client:
            entity_id = f"concept:late-{uuid.uuid4().hex[:8]}"
            replay(replica, paused=True)
            try:
                project_entity(primary, entity_id)
                redis_client.xack(stream, "graph", position)  # the projector is done, on the primary
                wait = {"position": position, "wait_ms": 300}
                assert client.get("/v1/projection", params=wait).json()["reached"] is False
                assert client.get(f"/v1/entities/{entity_id}").status_code == 404  # read from the replica
            finally:
                replay(replica, paused=False)
            assert client.get("/v1/projection", params=wait | {"wait_ms": 10_000}).json()["reached"] is True
            assert client.get(f"/v1/entities/{entity_id}").status_code == 200
            assert client.get(f"/v1/entities/{entity_id}/neighborhood").status_code == 200
    finally:
        redis_client.delete(stream)
        redis_client.close()
        graph.close()
