"""Budgets of requests per API key (the `limits` library: moving windows kept in Redis, so every gateway
replica draws on the same budget)."""

from __future__ import annotations

import logging
import time
from typing import Any

from limits import parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from platograph.redis_clients import is_cluster

log = logging.getLogger(__name__)


class RateLimits:
    def __init__(self, redis_url: str, prefix: str, client: Any) -> None:
        storage: RedisStorage | RedisClusterStorage
        if is_cluster(redis_url):  # `async+redis+cluster://`: the library's cluster storage, its own clients
            storage = RedisClusterStorage(f"async+{redis_url}", implementation="redispy", key_prefix=f"{prefix}:rate")
        else:  # on the gateway's own client's pool: one set of connections, closed with that client
            storage = RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix=f"{prefix}:rate",
                                   connection_pool=client.connection_pool)  # fmt: skip
        self._limiter = MovingWindowRateLimiter(storage)

    async def take(self, who: str, budget: str) -> float | None:
        """Spend one request of `who`'s budget (`"600/minute"`); None when it was there, else the seconds
        until one is free again. A Redis that does not answer lets the request through (the write itself
        will fail, and a read should not)."""
        item = parse(budget)
        try:
            if await self._limiter.hit(item, who):
                return None
            stats = await self._limiter.get_window_stats(item, who)
        except (RedisError, OSError) as exc:
            log.warning("rate limits unavailable (%s): letting the request through", exc)
            return None
        return max(1.0, stats.reset_time - time.time())
