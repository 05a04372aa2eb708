"""The graph service's own failure answers."""

import asyncio
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from platograph.ontology import load as load_ontology
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


def test_parked_read_your_writes_waits_hold_no_thread_and_past_the_cap_get_429(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 requests wait for a position the projector has not reached: a plain read still answers at once
    (the waits are on the event loop, not on the thread pool the other reads use), the 201st wait is refused
    with 429 and Retry-After, and once the position is reached every wait answers `reached`."""
    monkeypatch.setenv("PLATOGRAPH_PROJECTION_WAITERS", "200")
    graph = bootstrap(GraphSettings())
    graph.consumer.ensure_group()
    position = graph.consumer.client.xadd(graph.settings.stream, {"x": "1"}).decode()  # issued, never projected
    app = create_app(graph)

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://graph") as client:
                wait = {"position": position, "wait_ms": 30_000}
                parked = [asyncio.create_task(client.get("/v1/projection", params=wait)) for _ in range(200)]
                while app.state.waits.waiting < 200:
                    assert not any(task.done() for task in parked), [t.result().text for t in parked if t.done()][:1]
                    await asyncio.sleep(0.01)
                plain = await asyncio.wait_for(client.get("/v1/entities", params={"limit": 1}), timeout=10)
                assert plain.status_code == 200
                over = await client.get("/v1/projection", params=wait)
                assert over.status_code == 429 and over.headers["retry-after"] == "1", over.text
                assert over.json()["detail"][0]["type"] == "too_many_waiters"
                stream, group = graph.settings.stream, graph.settings.group
                graph.consumer.client.xreadgroup(group, "test", {stream: ">"}, count=1)
                graph.consumer.client.xack(stream, group, position)
                answers = await asyncio.wait_for(asyncio.gather(*parked), timeout=10)
                assert {(a.status_code, a.json().get("reached")) for a in answers} == {(200, True)}, answers[0].text

    try:
        asyncio.run(scenario())
    finally:
        graph.close()


def test_name_search_reads_the_trigram_indexes_not_every_text(env: dict[str, str], engine: Any) -> None:
    with engine.begin() as conn:  # 20,000 entities with texts, one of which mentions the term
        conn.execute(
            text("""
            INSERT INTO entities (id, type, name, text, description, attributes, status, version, position,
                                  status_position, updated_at)
            SELECT 'claim:c' || n, 'claim', 'Claim ' || n, repeat('Networks converge on shared statistics. ', 20)
                   || CASE WHEN n = 777 THEN 'superposition' ELSE '' END, '', '{}', 'active', 1, n, n, now()
              FROM generate_series(1, 20000) AS n""")
        )
        # The rows sit in the GIN pending lists until (auto)vacuum merges them, and the planner prices a long
        # pending list above a scan of the table; merge them as autovacuum would on a live database.
        conn.execute(text("SELECT gin_clean_pending_list('ix_entities_name_trgm'::regclass), "
                          "gin_clean_pending_list('ix_entities_text_trgm'::regclass)"))  # fmt: skip
        conn.execute(text("ANALYZE entities"))
        plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT id FROM entities WHERE version > 0 AND id > '' AND (name ILIKE :q OR text ILIKE :q) "
            "ORDER BY id LIMIT 51"), {"q": "%superposition%"}).scalars())  # fmt: skip
    assert "ix_entities_name_trgm" in plan and "ix_entities_text_trgm" in plan, plan


def test_a_view_after_the_database_dropped_the_pools_connections_answers(
    backend: Any, engine: Any, env: dict[str, str]
) -> None:
    """A restart of PostgreSQL leaves the view pool's idle connections dead: the next views still answer
    (the pool is checked and the read repeated), not one 503 per dead connection."""
    from services.graph.adapters.view_reader import ViewReader
    from tests.integration.test_read_replica import project_entity

    if backend.kind == "pgbouncer":
        pytest.skip("PgBouncer keeps the client's connection when a server connection goes")
    project_entity(backend.database_url, "concept:survivor")

    async def scenario() -> None:
        reader = ViewReader(backend.database_url, load_ontology(), size=4)
        await reader.open()
        try:
            views = [reader.neighborhood("concept:survivor", limit=5, group=None, cursor=None, related=None)
                     for _ in range(4)]  # fmt: skip
            assert all(await asyncio.gather(*views))  # the pool holds several connections now
            with engine.connect() as conn:
                killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                           "WHERE application_name = 'graph-views'")).scalar()  # fmt: skip
            assert killed >= 2
            for _ in range(4):
                assert await reader.neighborhood("concept:survivor", limit=5, group=None, cursor=None, related=None)
        finally:
            await reader.close()

    asyncio.run(scenario())
