"""Redis clients on asyncio, made one way: a pool that makes a request wait for a free connection.

redis-py's asyncio pool holds at most 100 connections and, past them, fails the command ("Too many
connections") instead of waiting: a burst of concurrent requests would turn into errors.
"""

from __future__ import annotations

import redis.asyncio as aioredis

CONNECTIONS = 64  # per process: a command holds one for a round trip
CHECKOUT_TIMEOUT_S = 5.0  # longer than that without a free connection is an outage (503)


def async_redis(url: str, connections: int = CONNECTIONS) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=connections, timeout=CHECKOUT_TIMEOUT_S)
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool
