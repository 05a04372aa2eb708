"""A request's entries land on the stream together or not at all: an append that fails part-way leaves
nothing behind (MULTI/EXEC; a plain pipeline would leave the entries before the failure)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from platograph.contracts import EntityUpserted, new_envelope
from platograph.redis_clients import async_redis
from services.ingest.adapters.event_log import RedisEventLog

pytestmark = pytest.mark.integration


class FailingSecond:
    """A pipeline whose second XADD is one Redis refuses (a wrong number of arguments): the failure
    happens on the server, after the first XADD was sent."""

    def __init__(self, pipe: Any, stream: str) -> None:
        self._pipe, self._stream, self._calls = pipe, stream, 0

    def xadd(self, *args: Any, **kwargs: Any) -> Any:
        self._calls += 1
        if self._calls == 2:
            return self._pipe.execute_command("XADD", self._stream)
        return self._pipe.xadd(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)

    async def __aenter__(self) -> FailingSecond:
        await self._pipe.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._pipe.__aexit__(*exc)


class Client:
    def __init__(self, client: aioredis.Redis, stream: str) -> None:
        self._client, self._stream = client, stream

    def pipeline(self, **kwargs: Any) -> FailingSecond:
        return FailingSecond(self._client.pipeline(**kwargs), self._stream)


def test_an_append_that_fails_part_way_appends_nothing(env: dict[str, str], redis_client: redis.Redis) -> None:
    stream = env["PLATOGRAPH_STREAM"]
    entries = [[new_envelope(EntityUpserted(id=f"concept:c{n}", type="concept", name=f"C{n}"), producer="test")]
               for n in range(3)]  # fmt: skip

    async def append() -> None:
        client = async_redis(env["REDIS_URL"])
        try:
            await RedisEventLog(Client(client, stream), stream).append(entries)  # type: ignore[arg-type]
        finally:
            await client.aclose()

    with pytest.raises(redis.RedisError):
        asyncio.run(append())
    assert redis_client.xlen(stream) == 0  # not the first entry alone
