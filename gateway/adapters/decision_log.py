"""Where the gateway's decisions are claimed and appended: Redis, beside the stream, one Lua script each,
so that checking the stored state and appending the event are one step (two people deciding at once cannot
both win, and a crash cannot leave a claim without its events)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from platograph.contracts import ENTRY_FIELD, Envelope, encode_entry
from platograph.stream import reply_text

CLAIM_AND_APPEND = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return {1, redis.call('XADD', KEYS[2], '*', ARGV[3], ARGV[2])}
end
return {0, redis.call('GET', KEYS[1])}
"""
RELEASE_REJECTION = """
local current = redis.call('GET', KEYS[1])
if not current then return {0, ''} end
if cjson.decode(current)['decision'] ~= 'rejected' then return {0, current} end
redis.call('DEL', KEYS[1])
return {1, redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[1])}
"""
MERGE = """
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
UNMERGE = """
local current = redis.call('GET', KEYS[1])
if not current then return {0, 'not_merged', ''} end
if current ~= ARGV[1] then return {0, 'moved', current} end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return {1, redis.call('XADD', KEYS[3], '*', ARGV[3], ARGV[4])}
"""


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


@dataclass(frozen=True)
class DecisionLog:
    redis: Any  # redis.asyncio.Redis
    stream: str

    def _decision_key(self, a: str, b: str) -> str:
        return f"{self.stream}:decision:{a}|{b}"

    def _merge_keys(self, entity_id: str) -> tuple[str, str]:
        return f"{self.stream}:merged:{entity_id}", f"{self.stream}:absorbed:{entity_id}"

    async def claim(self, a: str, b: str, decision: str, by: str, envelopes: Sequence[Envelope]) -> Outcome:
        """The first decision on a pair, appended with its events; else the earlier decision (JSON)."""
        claim = orjson.dumps({"decision": decision, "by": by})
        entry = encode_entry(list(envelopes))[ENTRY_FIELD]
        won, value = await self.redis.eval(CLAIM_AND_APPEND, 2, self._decision_key(a, b), self.stream, claim, entry,
                                           ENTRY_FIELD)  # fmt: skip
        return Outcome(bool(won), reply_text(value))

    async def release_rejection(self, a: str, b: str, envelopes: Sequence[Envelope]) -> Outcome:
        """Take back a rejection, appending its events; else the pair's current decision (JSON, or '')."""
        entry = encode_entry(list(envelopes))[ENTRY_FIELD]
        won, value = await self.redis.eval(RELEASE_REJECTION, 2, self._decision_key(a, b), self.stream, entry,
                                           ENTRY_FIELD)  # fmt: skip
        return Outcome(bool(won), reply_text(value))

    async def merge(self, entity_id: str, into: str, envelopes: Sequence[Envelope]) -> Outcome:
        """Record a merge unless it would chain, appending its events."""
        merged_key, members_key = self._merge_keys(entity_id)
        into_key, into_members = self._merge_keys(into)
        entry = encode_entry(list(envelopes))[ENTRY_FIELD]
        won, *rest = await self.redis.eval(MERGE, 5, merged_key, into_key, members_key, into_members, self.stream,
                                           into, entity_id, ENTRY_FIELD, entry)  # fmt: skip
        if won:
            return Outcome(True, reply_text(rest[0]))
        return Outcome(False, reply_text(rest[1]), reply_text(rest[0]))

    async def unmerge(self, entity_id: str, into: str, envelopes: Sequence[Envelope]) -> Outcome:
        """Undo a merge that still stands, appending its events."""
        merged_key, _ = self._merge_keys(entity_id)
        _, into_members = self._merge_keys(into)
        entry = encode_entry(list(envelopes))[ENTRY_FIELD]
        won, *rest = await self.redis.eval(UNMERGE, 3, merged_key, into_members, self.stream, into, entity_id,
                                           ENTRY_FIELD, entry)  # fmt: skip
        return Outcome(bool(won), reply_text(rest[0] if won else rest[1]), "" if won else reply_text(rest[0]))
