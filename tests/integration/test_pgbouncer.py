"""Behind PgBouncer in transaction mode, with prepared statements off, statements that repeat across
connections never meet another connection's prepared statement (the setting the services read:
PLATOGRAPH_DB_PREPARED_STATEMENTS). On the other backends the same load simply runs."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from platograph.database import make_engine, psycopg_options
from platograph.settings import libpq_url
from tests.servers import Servers

pytestmark = pytest.mark.integration


def errors_from(backend: Servers, prepared: bool) -> int:
    """Statements run 60 times over 8 connections held at once (so the pooler deals them out)."""
    engine = make_engine(backend.database_url, prepared_statements=prepared, pool_size=8)
    errors = 0
    try:
        connections = [engine.connect() for _ in range(8)]
        for i in range(60):
            try:
                connections[i % 8].execute(text("SELECT CAST(:n AS int) + 1"), {"n": i}).scalar_one()
                connections[i % 8].commit()
            except Exception:  # noqa: BLE001 - counting what the pooler answers
                connections[i % 8].rollback()
                errors += 1
        for connection in connections:
            connection.close()
    finally:
        engine.dispose()
    return errors


def test_repeated_statements_pass_through_the_pooler(backend: Servers) -> None:
    assert errors_from(backend, prepared=backend.prepared_statements) == 0
    if backend.kind == "pgbouncer":  # the control: with psycopg preparing, the same load breaks
        assert errors_from(backend, prepared=True) > 0


def test_the_view_pool_passes_too(backend: Servers) -> None:
    from psycopg_pool import AsyncConnectionPool

    async def run() -> None:
        options = {"autocommit": True, **psycopg_options(backend.prepared_statements)}
        async with AsyncConnectionPool(libpq_url(backend.database_url), min_size=4, max_size=4, kwargs=options) as pool:

            async def one(n: int) -> int:
                async with pool.connection() as conn:
                    row = await (await conn.execute("SELECT %s::int + 1", (n,))).fetchone()
                    return int(row[0]) if row else -1

            assert await asyncio.gather(*(one(n) for n in range(80))) == [n + 1 for n in range(80)]

    asyncio.run(run())
