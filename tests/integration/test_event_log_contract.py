"""One contract for the event log port: the in-memory fake and the Redis adapter both pass it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from platograph.contracts import EntityUpserted, decode_entry, new_envelope
from platograph.positions import parse_entry_id
from platograph.redis_clients import async_redis
from services.ingest.adapters.event_log import EventLog, RedisEventLog
from tests.fakes import FakeEventLog
from tests.servers import Servers

pytestmark = pytest.mark.integration
Scenario = Callable[[EventLog], Awaitable[Any]]


def envelopes(n: int) -> list[Any]:
    return [new_envelope(EntityUpserted(id=f"concept:c{i}", type="concept", name="c"), producer="t") for i in range(n)]


@pytest.fixture(params=["fake", "redis"])
def run(request: pytest.FixtureRequest, backend: Servers, stream: str) -> Callable[[Scenario], Any]:
    """Run a scenario against one implementation, built and closed inside the scenario's event loop."""

    def runner(scenario: Scenario) -> Any:
        async def go() -> Any:
            if request.param == "fake":
                return await scenario(FakeEventLog())
            client = async_redis(backend.redis_url)
            try:
                return await scenario(RedisEventLog(client, stream))
            finally:
                await client.aclose()

        return asyncio.run(go())

    return runner


def test_append_returns_one_increasing_position_per_entry(run: Callable[[Scenario], Any]) -> None:
    async def scenario(log: EventLog) -> list[str]:
        return await log.append([envelopes(2), envelopes(1), envelopes(3)])

    ids = run(scenario)
    assert len(ids) == 3 and len(set(ids)) == 3
    assert [parse_entry_id(i) for i in ids] == sorted(parse_entry_id(i) for i in ids)


def test_a_reachable_log_answers_a_ping(run: Callable[[Scenario], Any]) -> None:
    async def scenario(log: EventLog) -> None:
        await log.ping()

    assert run(scenario) is None


def test_remembered_replies_are_recalled(run: Callable[[Scenario], Any]) -> None:
    async def scenario(log: EventLog) -> tuple[Any, Any]:
        before = await log.recall("k")
        await log.remember("k", {"reply": {"a": 1}, "request_hash": "h"}, 60)
        return before, await log.recall("k")

    assert run(scenario) == (None, {"reply": {"a": 1}, "request_hash": "h"})


def test_redis_entries_hold_the_envelopes(backend: Servers, stream: str, redis_client: redis.Redis) -> None:
    sent = envelopes(3)

    async def go() -> list[str]:
        client = async_redis(backend.redis_url)
        try:
            return await RedisEventLog(client, stream).append([sent])
        finally:
            await client.aclose()

    (entry_id,) = asyncio.run(go())
    ((got_id, fields),) = redis_client.xrange(stream)
    assert got_id.decode() == entry_id
    assert [e["event_id"] for e in decode_entry(fields)] == [str(e.event_id) for e in sent]
