"""Where the gateway's decisions are claimed and appended: Redis, beside the stream, one Lua script each,
so that checking the stored state and appending the event are one step (two people deciding at once cannot
both win, and a crash cannot leave a claim without its events).

Redis holds them as a cache of Postgres, where the graph projects every decision and merge from the
journal: each script first checks a marker that says the cache is whole, and when Redis lost it (a new
empty server, a FLUSHALL) the gateway rebuilds it from the graph before anyone decides again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from platograph.contracts import ENTRY_FIELD, Envelope, encode_entry
from platograph.stream import reply_text

LOADED = "if redis.call('EXISTS', KEYS[#KEYS]) == 0 then return {-1, 'not_loaded', ''} end\n"
CLAIM_AND_APPEND = (
    LOADED
    + """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return {1, redis.call('XADD', KEYS[2], '*', ARGV[3], ARGV[2])}
end
return {0, redis.call('GET', KEYS[1])}
"""
)
RELEASE_REJECTION = (
    LOADED
    + """
local current = redis.call('GET', KEYS[1])
if not current then return {0, ''} end
if cjson.decode(current)['decision'] ~= 'rejected' then return {0, current} end
redis.call('DEL', KEYS[1])
return {1, redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[1])}
"""
)
MERGE = (
    LOADED
    + """
local current = redis.call('GET', KEYS[1])
if current then return {0, 'already', current} end
local target = redis.call('GET', KEYS[2])
if target then return {0, 'into_merged', target} end
if redis.call('SCARD', KEYS[3]) > 0 then
  return {0, 'has_members', table.concat(redis.call('SMEMBERS', KEYS[3]), ', ')}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[2])
return {1, redis.call('XADD', KEYS[5], '*', ARGV[3], ARGV[4])}
"""
)
UNMERGE = (
    LOADED
    + """
local current = redis.call('GET', KEYS[1])
if not current then return {0, 'not_merged', ''} end
if current ~= ARGV[1] then return {0, 'moved', current} end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return {1, redis.call('XADD', KEYS[3], '*', ARGV[3], ARGV[4])}
"""
)


@dataclass(frozen=True)
class Outcome:
    """A script's answer: `won` with the appended entry's id as `value`; else why not (`reason`) and what
    stood in the way (`value`: the earlier decision, the survivor, the members)."""

    won: bool
    value: str
    reason: str = ""

    def decision(self) -> dict[str, str] | None:
        """The pair's stored decision when a decision script lost (`{"decision", "by"}`), else None."""
        return None if self.won or not self.value else dict(orjson.loads(self.value))


ReviewState = Callable[[str | None], Awaitable[dict[str, Any]]]  # a page of the graph's /v1/review-state
LOAD_LOCK_S = 120


class NotLoaded(Exception):
    """The cache could not be rebuilt in time (another gateway is at it, or the graph is away)."""


@dataclass(frozen=True)
class DecisionLog:
    redis: Any  # redis.asyncio.Redis
    stream: str
    source: ReviewState | None = None  # where the cache is rebuilt from (None: it is never missing, as in tests)

    @property
    def _marker(self) -> str:
        return f"{self.stream}:review-state:loaded"

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> list[Any]:
        """Run a script behind the marker; rebuild the cache first when Redis lost it."""
        for _ in range(2):
            reply = list(await self.redis.eval(script, len(keys) + 1, *keys, self._marker, *args))
            if reply[0] != -1:
                return reply
            await self.load()
        raise NotLoaded("the decision cache is being rebuilt; retry")

    async def load(self) -> None:
        """Rebuild the cache from Postgres (through the graph) unless it is whole; one gateway at a time.
        Existing keys are kept (SET NX): a decision already in Redis is at least as new as the projection."""
        if self.source is None:
            await self.redis.set(self._marker, "1")
            return
        lock = f"{self.stream}:review-state:loading"
        if not await self.redis.set(lock, "1", nx=True, ex=LOAD_LOCK_S):
            for _ in range(LOAD_LOCK_S * 10):  # another gateway loads: wait for its marker
                if await self.redis.exists(self._marker):
                    return
                await asyncio.sleep(0.1)
            raise NotLoaded("another gateway has been rebuilding the decision cache for too long")
        try:
            if await self.redis.exists(self._marker):
                return
            cursor: str | None = None
            while True:
                page = await self.source(cursor)
                async with self.redis.pipeline(transaction=False) as pipe:
                    for a, b, decision, by in page["decisions"]:
                        pipe.set(self._decision_key(a, b), orjson.dumps({"decision": decision, "by": by}), nx=True)
                    for entity_id, into in page["merges"]:
                        merged_key, _ = self._merge_keys(entity_id)
                        pipe.set(merged_key, into, nx=True)
                        pipe.sadd(self._merge_keys(into)[1], entity_id)
                    await pipe.execute()
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            await self.redis.set(self._marker, "1")
        finally:
            await self.redis.delete(lock)

    def _decision_key(self, a: str, b: str) -> str:
        return f"{self.stream}:decision:{a}|{b}"

    def _merge_keys(self, entity_id: str) -> tuple[str, str]:
        return f"{self.stream}:merged:{entity_id}", f"{self.stream}:absorbed:{entity_id}"

    async def claim(self, a: str, b: str, decision: str, by: str, envelopes: Sequence[Envelope]) -> Outcome:
        """The first decision on a pair, appended with its events; else the earlier decision (JSON)."""
        claim = orjson.dumps({"decision": decision, "by": by})
        entry = encode_entry(list(envelopes))[ENTRY_FIELD]
        won, value = await self._run(
            CLAIM_AND_APPEND, [self._decision_key(a, b), self.stream], [claim, entry, ENTRY_FIELD]
        )
        return Outcome(bool(won), reply_text(value))

    async def release_rejection(self, a: str, b: str, envelopes: Sequence[Envelope]) -> Outcome:
        """Take back a rejection, appending its events; else the pair's current decision (JSON, or '')."""
        entry = encode_entry(list(envelopes))[ENTRY_FIELD]
        won, value = await self._run(RELEASE_REJECTION, [self._decision_key(a, b), self.stream], [entry, ENTRY_FIELD])
        return Outcome(bool(won), reply_text(value))

    async def merge(self, entity_id: str, into: str, envelopes: Sequence[Envelope]) -> Outcome:
        """Record a merge unless it would chain, appending its events."""
        merged_key, members_key = self._merge_keys(entity_id)
        into_key, into_members = self._merge_keys(into)
        entry = encode_entry(list(envelopes))[ENTRY_FIELD]
        keys = [merged_key, into_key, members_key, into_members, self.stream]
        won, *rest = await self._run(MERGE, keys, [into, entity_id, ENTRY_FIELD, entry])
        if won:
            return Outcome(True, reply_text(rest[0]))
        return Outcome(False, reply_text(rest[1]), reply_text(rest[0]))

    async def unmerge(self, entity_id: str, into: str, envelopes: Sequence[Envelope]) -> Outcome:
        """Undo a merge that still stands, appending its events."""
        merged_key, _ = self._merge_keys(entity_id)
        _, into_members = self._merge_keys(into)
        entry = encode_entry(list(envelopes))[ENTRY_FIELD]
        won, *rest = await self._run(
            UNMERGE, [merged_key, into_members, self.stream], [into, entity_id, ENTRY_FIELD, entry]
        )
        return Outcome(bool(won), reply_text(rest[0] if won else rest[1]), "" if won else reply_text(rest[0]))
