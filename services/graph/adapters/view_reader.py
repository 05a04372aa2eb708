"""The neighborhood view read over an asyncio psycopg pool in autocommit.

The view is the hottest read: on the event loop it needs no worker-thread hop, no ORM and no BEGIN/ROLLBACK
round trips (measured with the compacted statement: the graph's CPU per view fell from 0.67 to 0.41-0.47 ms,
see bench/README.md). The pool
belongs to the event loop that opens it: the app's lifespan opens it under uvicorn, and an in-process test
that serves the app without a lifespan opens it on the loop that serves the requests.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from platograph.database import psycopg_options
from platograph.ontology import Ontology
from platograph.settings import libpq_url
from services.graph.adapters.neighborhood_sql import Related, statement_and_params

#: How long a request waits for a free connection before it answers 503.
CHECKOUT_TIMEOUT_S = 2.0


class ViewReader:
    """Reads neighborhood documents; `open` on the serving event loop before the first read."""

    def __init__(self, database_url: str, ontology: Ontology, size: int, prepared_statements: bool = True) -> None:
        self.ontology = ontology
        self.pool = AsyncConnectionPool(
            libpq_url(database_url),
            min_size=2,
            max_size=size,
            kwargs={"autocommit": True, **psycopg_options(prepared_statements)},
            timeout=CHECKOUT_TIMEOUT_S,
            open=False,
            name="graph-views",
        )

    async def open(self) -> None:
        # Not waiting: a database that is down at start-up makes requests 503, not the service fail to start.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def neighborhood(
        self, entity_id: str, *, limit: int, group: str | None, cursor: str | None, related: Related | None
    ) -> bytes | None:
        """The neighborhood document as JSON bytes, or None when the entity does not exist."""
        sql, fallback, params = statement_and_params(
            self.ontology, entity_id, limit=limit, group=group, cursor=cursor, related=related
        )
        async with self.pool.connection() as conn:
            row = await (await conn.execute(sql.encode(), params)).fetchone()
            if row is not None and not row[0] and fallback is not None:  # merges move edges: MERGED
                row = await (await conn.execute(fallback.encode(), params)).fetchone()
        return None if row is None else str(row[1]).encode()
