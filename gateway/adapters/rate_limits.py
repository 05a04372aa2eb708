"""Budgets of requests per API key (the `limits` library: moving windows kept in Redis, so every gateway
replica draws on the same budget).

A busy key does not cost a Redis round trip per request: a gateway takes a few of its requests at once
(a lease) and spends them locally for up to LEASE_S. The lease doubles while the key keeps using it up,
to at most LEASE_SHARE of the budget, and falls back to one request at a time when a bigger one does not
fit, so the 429 comes at the budget exactly. The cost: requests leased and not used within LEASE_S count
as spent, at most LEASE_SHARE of the budget per gateway process and second (60 of 6,000 a minute). A
budget under 1 / LEASE_SHARE requests is always taken one at a time. One request of a key takes the next
lease while the key's other requests wait for it, so a burst does not lease once per request."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from platograph.redis_clients import is_cluster

log = logging.getLogger(__name__)
LEASE_S = 1.0
LEASE_SHARE = 0.01
MAX_LEASES = 10_000  # keys leased at once, per gateway process (the least recently used go first)


@dataclass
class Lease:
    left: int  # requests taken from Redis and not spent yet
    size: int  # how many the last take asked for
    until: float  # time.monotonic() after which what is left is dropped


@lru_cache(maxsize=256)
def _budget(budget: str) -> RateLimitItem:
    return parse(budget)


class RateLimits:
    def __init__(self, redis_url: str, prefix: str, client: Any) -> None:
        storage: RedisStorage | RedisClusterStorage
        if is_cluster(redis_url):  # `async+redis+cluster://`: the library's cluster storage, its own clients
            storage = RedisClusterStorage(f"async+{redis_url}", implementation="redispy", key_prefix=f"{prefix}:rate")
        else:  # on the gateway's own client's pool: one set of connections, closed with that client
            storage = RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix=f"{prefix}:rate",
                                   connection_pool=client.connection_pool)  # fmt: skip
        self._limiter = MovingWindowRateLimiter(storage)
        self._leases: OrderedDict[tuple[str, str], Lease] = OrderedDict()
        self._refills: dict[tuple[str, str], asyncio.Future[tuple[bool, float | None]]] = {}

    async def take(self, who: str, budget: str) -> float | None:
        """Spend one request of `who`'s budget (`"600/minute"`); None when it was there, else the seconds
        until one is free again. A Redis that does not answer lets the request through (the write itself
        will fail, and a read should not)."""
        key = (who, budget)
        while True:
            now = time.monotonic()
            lease = self._leases.get(key)
            if lease is not None and lease.left > 0 and now < lease.until:
                lease.left -= 1
                return None
            refill = self._refills.get(key)
            if refill is None:
                break
            # Another request of this key is taking the next lease: spend from it rather than take one
            # each (a burst of concurrent requests would each lease, and what they did not use is spent).
            # Refused, or let through because Redis does not answer, they are too, without asking again
            # one after the other. Shielded: a request cancelled here must not cancel the refill.
            leased, wait = await asyncio.shield(refill)
            if not leased:
                return wait
        refill = self._refills[key] = asyncio.get_running_loop().create_future()
        outcome: tuple[bool, float | None] = (True, None)  # cancelled: the waiters look again
        try:
            outcome = await self._refill(key, lease, now)
            return outcome[1]
        finally:
            del self._refills[key]
            refill.set_result(outcome)

    async def _refill(self, key: tuple[str, str], lease: Lease | None, now: float) -> tuple[bool, float | None]:
        """Take the key's next lease: (True, None); or (False, the seconds to wait) when the budget is spent,
        (False, None) when Redis does not answer."""
        who, budget = key
        item = _budget(budget)
        most = max(1, int(item.amount * LEASE_SHARE))
        # Used up while it held: the key is busy, so the next lease doubles; otherwise one at a time.
        size = min(most, 2 * lease.size) if lease is not None and now < lease.until else 1
        try:
            for asked in dict.fromkeys((size, 1)):  # the bigger lease, then a single request if it did not fit
                if await self._limiter.hit(item, who, cost=asked):
                    self._leases[key] = Lease(asked - 1, asked, now + min(LEASE_S, item.get_expiry()))
                    self._leases.move_to_end(key)
                    while len(self._leases) > MAX_LEASES:
                        self._leases.popitem(last=False)
                    return True, None
            stats = await self._limiter.get_window_stats(item, who)
        except (RedisError, OSError) as exc:
            log.warning("rate limits unavailable (%s): letting the request through", exc)
            return False, None
        return False, max(1.0, stats.reset_time - time.time())
