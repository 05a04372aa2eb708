"""A busy key's requests are taken from Redis a lease at a time, and its budget still ends exactly."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.adapters import rate_limits
from gateway.adapters.rate_limits import RateLimits
from platograph.redis_clients import async_redis
from tests import servers


class Counted(RateLimits):
    """The adapter with its Redis round trips counted (the limiter's hits and window reads)."""

    def __init__(self, url: str, stream: str, client: object) -> None:
        super().__init__(url, stream, client)
        self.hits: list[int] = []
        hit = self._limiter.hit

        async def counted(item, *who, cost=1):  # type: ignore[no-untyped-def]
            self.hits.append(cost)
            return await hit(item, *who, cost=cost)

        self._limiter.hit = counted  # type: ignore[method-assign]


def run(backend: servers.Servers, stream: str, body):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        client = async_redis(backend.redis_url)
        try:
            return await body(Counted(backend.redis_url, stream, client))
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_a_busy_key_takes_leases_and_its_budget_ends_exactly(backend: servers.Servers, stream: str) -> None:
    who = f"key-{uuid.uuid4().hex}:read"

    async def body(limits: Counted) -> tuple[list[float | None], list[int]]:
        return [await limits.take(who, "1000/minute") for _ in range(1001)], limits.hits

    answers, hits = run(backend, stream, body)
    assert answers[:1000] == [None] * 1000  # every request of the budget, not one more
    assert answers[1000] is not None and 1 <= answers[1000] <= 60
    # Leases double up to 1% of the budget (10), so about 100 round trips, not 1,000; the last ones
    # (when 10 no longer fit) are single requests.
    assert hits[:4] == [1, 2, 4, 8] and max(hits) == 10
    assert len(hits) < 130


def test_a_small_budget_is_taken_one_request_at_a_time(backend: servers.Servers, stream: str) -> None:
    who = f"key-{uuid.uuid4().hex}:read"

    async def body(limits: Counted) -> tuple[list[float | None], list[int]]:
        return [await limits.take(who, "50/minute") for _ in range(51)], limits.hits

    answers, hits = run(backend, stream, body)
    assert answers[:50] == [None] * 50 and answers[50] is not None
    assert set(hits) == {1}


def test_a_lease_not_used_in_time_is_dropped(
    backend: servers.Servers, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a key leased and did not spend within LEASE_S is not spent later: another gateway may have
    been refused meanwhile, and an idle key starts again from one request."""
    monkeypatch.setattr(rate_limits, "LEASE_S", 0.2)
    who = f"key-{uuid.uuid4().hex}:read"

    async def body(limits: Counted) -> list[int]:
        for _ in range(8):  # leases of 1, 2, 4 and 8: the last one has 7 requests left
            await limits.take(who, "10000/minute")
        await asyncio.sleep(0.3)
        await limits.take(who, "10000/minute")
        return limits.hits

    assert run(backend, stream, body) == [1, 2, 4, 8, 1]


def test_a_burst_of_concurrent_requests_takes_one_lease_at_a_time(backend: servers.Servers, stream: str) -> None:
    """When a busy key's lease runs out under a burst, one request takes the next lease and the others
    spend from it: the key is not charged a lease per waiting request."""
    who = f"key-{uuid.uuid4().hex}:read"
    budget = "10000/minute"  # leases of up to 100

    async def body(limits: Counted) -> tuple[list[float | None], int, int]:
        for _ in range(127):  # leases of 1, 2, ..., 64: the lease is at its doubling's end
            await limits.take(who, budget)
        burst = await asyncio.gather(*(limits.take(who, budget) for _ in range(300)))
        stats = await limits._limiter.get_window_stats(rate_limits._budget(budget), who)
        return list(burst), 10000 - stats.remaining, len(limits.hits)

    burst, charged, round_trips = run(backend, stream, body)
    assert burst == [None] * 300
    assert 427 <= charged < 427 + 100  # what was served, and at most one lease's unspent rest
    assert round_trips <= 7 + 4


def test_a_burst_over_the_budget_is_refused_past_it(backend: servers.Servers, stream: str) -> None:
    who = f"key-{uuid.uuid4().hex}:read"

    async def body(limits: Counted) -> list[float | None]:
        return list(await asyncio.gather(*(limits.take(who, "20/minute") for _ in range(30))))

    answers = run(backend, stream, body)
    assert answers.count(None) == 20
    assert all(wait is not None and 1 <= wait <= 60 for wait in answers if wait is not None)


def test_a_request_cancelled_while_it_waits_for_a_lease_leaves_the_others_alone(
    backend: servers.Servers, stream: str
) -> None:
    who = f"key-{uuid.uuid4().hex}:read"

    async def body(limits: Counted) -> list[float | None]:
        gate = asyncio.Event()
        hit = limits._limiter.hit

        async def gated(item, *who, cost=1):  # type: ignore[no-untyped-def]
            await gate.wait()
            return await hit(item, *who, cost=cost)

        limits._limiter.hit = gated  # type: ignore[method-assign]
        first, waiting, other = (asyncio.create_task(limits.take(who, "10000/minute")) for _ in range(3))
        await asyncio.sleep(0.05)  # the first is taking a lease, the two others wait for it
        waiting.cancel()
        await asyncio.sleep(0)
        gate.set()
        return [await first, await other]

    assert run(backend, stream, body) == [None, None]


def test_while_redis_does_not_answer_a_burst_is_let_through_after_one_try(
    backend: servers.Servers, stream: str
) -> None:
    """The requests waiting for a key's lease are let through with the one that tried Redis, instead of
    each trying it after the other (a burst would queue behind timeouts)."""
    who = f"key-{uuid.uuid4().hex}:read"

    async def body(limits: Counted) -> tuple[list[float | None], list[int]]:
        async def away(item, *who, cost=1):  # type: ignore[no-untyped-def]
            limits.hits.append(cost)
            await asyncio.sleep(0.05)
            raise RedisConnectionError("gone")

        limits._limiter.hit = away  # type: ignore[method-assign]
        return list(await asyncio.gather(*(limits.take(who, "10000/minute") for _ in range(20)))), limits.hits

    answers, hits = run(backend, stream, body)
    assert answers == [None] * 20
    assert hits == [1]
