"""The neighborhood view read over asyncio psycopg pools in autocommit, from the primary or its replicas.

The view is the hottest read: on the event loop it needs no worker-thread hop, no ORM and no BEGIN/ROLLBACK
round trips (measured with the compacted statement: the graph's CPU per view fell from 0.67 to 0.41-0.47 ms,
see bench/README.md). The pools belong to the event loop that opens them: the app's lifespan opens them
under uvicorn, and an in-process test that serves the app without a lifespan opens them on the loop that
serves the requests.

With read replicas (DATABASE_READ_URL), each view goes to the next replica. A replica replays the primary's
write-ahead log a little behind it: `replicas_reached` waits until every replica has replayed what the
primary had written when it was asked (its current WAL position), which is how read-your-writes
(`after=<position>`) holds on a replica once the projector has committed the position on the primary.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from platograph.database import psycopg_options
from platograph.ontology import Ontology
from platograph.settings import libpq_url
from platograph.splicing import splice
from services.graph.adapters import evidence_sql
from services.graph.adapters.neighborhood_sql import Related, statement_and_params

#: How long a request waits for a free connection before it answers 503.
CHECKOUT_TIMEOUT_S = 2.0
FIRST_POLL_S, LAST_POLL_S = 0.002, 0.05  # a replica is usually milliseconds behind
EVIDENCE_LISTED = 20  # entities listed on each side of an evidence meter (all are counted)


class ViewReader:
    """Reads neighborhood documents; `open` on the serving event loop before the first read."""

    def __init__(
        self,
        database_url: str,
        ontology: Ontology,
        size: int,
        prepared_statements: bool = True,
        read_urls: list[str] | None = None,
    ) -> None:
        self.ontology = ontology

        def pool(url: str, name: str, max_size: int) -> AsyncConnectionPool:
            return AsyncConnectionPool(libpq_url(url), min_size=min(2, max_size), max_size=max_size,
                                       kwargs={"autocommit": True, "application_name": name,
                                               **psycopg_options(prepared_statements)},
                                       timeout=CHECKOUT_TIMEOUT_S, open=False, name=name)  # fmt: skip

        self.replicas = [pool(url, f"graph-views-replica-{n}", size) for n, url in enumerate(read_urls or [])]
        # Without replicas the views read the primary; with them, the primary answers only WAL positions.
        self.primary = pool(database_url, "graph-views", size if not self.replicas else 2)
        self._next = itertools.cycle(self.replicas or [self.primary])

    @property
    def pools(self) -> list[AsyncConnectionPool]:
        return [self.primary, *self.replicas]

    async def open(self) -> None:
        # Not waiting: a database that is down at start-up makes requests 503, not the service fail to start.
        for pool in self.pools:
            await pool.open(wait=False)

    async def close(self) -> None:
        for pool in self.pools:
            await pool.close()

    async def neighborhood(
        self, entity_id: str, *, limit: int, group: str | None, cursor: str | None, related: Related | None
    ) -> bytes | None:
        """The neighborhood document as JSON bytes, or None when the entity does not exist."""
        sql, fallback, params = statement_and_params(
            self.ontology, entity_id, limit=limit, group=group, cursor=cursor, related=related
        )
        pool = next(self._next)
        try:
            return await self._read(pool, entity_id, sql, fallback, params)
        except psycopg.OperationalError:
            # A restart of the server leaves the pool's idle connections dead, and each would fail one
            # request: test them all (the pool drops the dead), then read again; a server still away fails.
            await pool.check()
            return await self._read(pool, entity_id, sql, fallback, params)

    async def _read(
        self, pool: AsyncConnectionPool, entity_id: str, sql: str, fallback: str | None, params: dict[str, Any]
    ) -> bytes | None:
        async with pool.connection() as conn:
            row = await (await conn.execute(sql.encode(), params)).fetchone()
            if row is not None and not row[0] and fallback is not None:  # merges move edges: MERGED
                row = await (await conn.execute(fallback.encode(), params)).fetchone()
            if row is None:
                return None
            document = str(row[1]).encode()
            if entity_id.partition(":")[0] in evidence_sql.EVIDENCE_TYPES:
                meter = await (
                    await conn.execute(evidence_sql.SQL.encode(), {"id": entity_id, "limit": EVIDENCE_LISTED})
                ).fetchone()
                document = splice(document, {"evidence": str(meter[0]).encode() if meter else b"null"})
        return document

    async def replicas_reached(self, timeout_s: float) -> bool:
        """Whether every replica replays, within timeout_s, all the primary has written so far (True at once
        without replicas)."""
        if not self.replicas:
            return True
        async with self.primary.connection() as conn:
            row = await (await conn.execute("SELECT pg_current_wal_lsn()::text")).fetchone()
        target = row[0] if row else None
        deadline, pause = time.monotonic() + timeout_s, FIRST_POLL_S
        waiting = list(self.replicas)
        while True:
            for replica in list(waiting):
                async with replica.connection() as conn:
                    done = await (
                        await conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
                    ).fetchone()
                if done and done[0]:
                    waiting.remove(replica)
            if not waiting:
                return True
            if time.monotonic() + pause > deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_POLL_S)
