"""The Redis side of ingest: appending stream entries atomically and remembering idempotent replies."""

from __future__ import annotations

from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

from platograph.contracts import Envelope, encode_entry


class EventLog(Protocol):
    async def append(self, entries: list[list[Envelope]]) -> list[str]:
        """Append every entry or none; return their stream ids."""
        ...

    async def recall(self, key: str) -> dict[str, Any] | None:
        """The stored reply for an idempotency key, if any."""
        ...

    async def remember(self, key: str, reply: dict[str, Any], ttl_s: int) -> None:
        """Store the reply for an idempotency key."""
        ...

    async def ping(self) -> None:
        """Raise unless the log answers (the readiness check)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class RedisEventLog:
    """Appends with MULTI/EXEC so a request's entries land together or not at all."""

    def __init__(self, client: aioredis.Redis, stream: str) -> None:
        self._client = client
        self._stream = stream

    async def append(self, entries: list[list[Envelope]]) -> list[str]:
        async with self._client.pipeline(transaction=True) as pipe:
            for envelopes in entries:
                pipe.xadd(self._stream, encode_entry(envelopes))  # type: ignore[arg-type]  # redis-py's dict is invariant
            ids = await pipe.execute()
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def recall(self, key: str) -> dict[str, Any] | None:
        raw = await self._client.get(f"{self._stream}:idem:{key}")
        return None if raw is None else dict(orjson.loads(raw))

    async def remember(self, key: str, reply: dict[str, Any], ttl_s: int) -> None:
        await self._client.set(f"{self._stream}:idem:{key}", orjson.dumps(reply), ex=ttl_s)

    async def ping(self) -> None:
        await self._client.ping()

    async def aclose(self) -> None:
        await self._client.aclose()
