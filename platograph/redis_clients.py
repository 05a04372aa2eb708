"""Every Redis client of the project, made here from a URL: a standalone server (`redis://`, `rediss://`,
`unix://`) or a Redis/Valkey Cluster (`redis+cluster://host:port`, `rediss+cluster://`; any node will do,
the client discovers the rest).

On a cluster, commands and scripts that touch several keys need them in one slot: every key the project
derives from the stream name starts with it, and the settings require that name to carry a hash tag
(`{platograph}:events`), so all of them share the stream's slot. RQ does not take cluster clients: its
queues use `RQ_REDIS_URL`, a standalone server.

asyncio: redis-py's pools fail a command past their connections ("Too many connections") instead of
waiting, so a burst of concurrent requests would turn into errors. Standalone, a blocking pool makes a
command wait for a free connection; on a cluster (a pool per node), a semaphore does the same for commands,
and pipelines get the connections above it.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
CONNECTIONS = 64  # per process: a command holds one for a round trip
CHECKOUT_TIMEOUT_S = 5.0  # longer than that without a free connection is an outage (503)


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def _node_url(url: str) -> str:
    return url.replace("+cluster://", "://", 1)


def sync_redis(url: str) -> redis.Redis:
    """A blocking client. A cluster client is typed as Redis: it takes the commands this project sends."""
    if is_cluster(url):
        return cast(redis.Redis, RedisCluster.from_url(_node_url(url)))
    return redis.Redis.from_url(url)


class _WaitingCluster(AsyncRedisCluster):
    """An asyncio cluster client whose commands wait (up to CHECKOUT_TIMEOUT_S) for one of `commands`
    slots instead of failing when every connection is busy."""

    def __init__(self, *args: Any, commands: int = CONNECTIONS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(commands)  # binds to the loop on first use

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            await asyncio.wait_for(self._slots.acquire(), CHECKOUT_TIMEOUT_S)
        except TimeoutError as exc:
            raise redis.ConnectionError(f"no free connection to the cluster in {CHECKOUT_TIMEOUT_S:g} s") from exc
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._slots.release()


def async_redis(url: str, connections: int = CONNECTIONS) -> aioredis.Redis:
    """An asyncio client; closing it closes its pool."""
    if is_cluster(url):
        client = _WaitingCluster.from_url(_node_url(url), max_connections=2 * connections, commands=connections)
        return cast(aioredis.Redis, client)
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=connections, timeout=CHECKOUT_TIMEOUT_S)
    return aioredis.Redis.from_pool(pool)
