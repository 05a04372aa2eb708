"""A circuit breaker per endpoint, in Redis (shared by every webhook worker).

An endpoint that refuses connections, times out or answers 5xx/429 is backed off as a whole: its breaker
opens for a pause that doubles with each failed probe (up to a cap), its batches wait without sending,
and once the pause is over one job probes it. A success closes the breaker and the queue flows again.

While it is open, a batch that comes due is parked: pushed onto the endpoint's list and its job ends. One
wake job per pause probes with a parked batch and, once the endpoint answers, releases the list. So a dead
endpoint with 50,000 deliveries waiting costs one job per pause, not one per batch. The list is a cache of
what Postgres knows: rows stay `pending`, so if it is lost (Redis emptied) the stuck sweep queues them.
"""

from __future__ import annotations

import json
import time
import uuid

import redis

TRIP = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local pause = math.min(tonumber(ARGV[2]), tonumber(ARGV[3]) * 2 ^ (failures - 1))
local open_until = tonumber(ARGV[1]) + pause
redis.call('HSET', KEYS[1], 'open_until', tostring(open_until))
redis.call('EXPIRE', KEYS[1], math.ceil(2 * tonumber(ARGV[2]) + pause))
redis.call('DEL', KEYS[2])
return tostring(open_until)
"""


# Park only while the breaker is open, in one step: a batch parked just after a probe's success closed the
# breaker and released the list would wait for nobody (the endpoint answers: no wake job comes).
PARK = """
if redis.call('HEXISTS', KEYS[1], 'open_until') == 0 then return -1 end
for i = 2, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
return redis.call('LLEN', KEYS[2])
"""


RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class Breaker:
    def __init__(self, client: redis.Redis, prefix: str, *, first_pause_s: float, longest_pause_s: float) -> None:
        self.client, self.prefix = client, prefix
        self.first_pause_s, self.longest_pause_s = first_pause_s, longest_pause_s

    def _keys(self, endpoint: str) -> tuple[str, str]:
        return f"{self.prefix}:breaker:{endpoint}", f"{self.prefix}:probe:{endpoint}"

    def _parked_key(self, endpoint: str) -> str:
        return f"{self.prefix}:parked:{endpoint}"

    def open_until(self, endpoint: str) -> float | None:
        """When the endpoint may be tried again; None while its breaker is closed."""
        raw = self.client.hget(self._keys(endpoint)[0], "open_until")
        return None if raw is None else float(raw)

    def probe(self, endpoint: str, hold_s: float) -> str | None:
        """Take the one attempt allowed once the pause is over (held for `hold_s` at most, so a prober that
        died frees it). Returns the token that releases it; None while another job holds it."""
        expires = time.time() + hold_s
        token = f"{expires:.3f}:{uuid.uuid4().hex}"
        taken = self.client.set(self._keys(endpoint)[1], token, nx=True, px=max(1, int(hold_s * 1000)))
        return token if taken else None

    def probe_held_until(self, endpoint: str) -> float | None:
        """When the probe another job holds expires at the latest; None while nobody holds it."""
        raw = self.client.get(self._keys(endpoint)[1])
        return None if raw is None else float(raw.decode().partition(":")[0])  # type: ignore[union-attr]

    def release_probe(self, endpoint: str, token: str) -> None:
        """The prober is done; only its own probe is released (after a trip, the next pause's may be taken)."""
        self.client.eval(RELEASE, 1, self._keys(endpoint)[1], token)

    def trip(self, endpoint: str) -> float:
        """The endpoint failed: open (or keep open, for twice as long) its breaker. Returns until when."""
        breaker, probe = self._keys(endpoint)
        raw = self.client.eval(TRIP, 2, breaker, probe, time.time(), self.longest_pause_s, self.first_pause_s)
        return float(raw.decode() if isinstance(raw, bytes) else raw)

    def close(self, endpoint: str) -> None:
        """The endpoint answered: its batches flow again."""
        self.client.delete(*self._keys(endpoint))

    def park(self, endpoint: str, batches: list[tuple[list[uuid.UUID], int]]) -> int | None:
        """Hold (delivery ids, attempt) batches until the endpoint answers again, if its breaker is still
        open. Returns the batches parked; None when the breaker has closed meanwhile (send them now)."""
        items = [json.dumps([[str(i) for i in ids], attempt]) for ids, attempt in batches]
        # The list outlives the longest pause; lost or expired, the rows are still pending for the sweep.
        ttl = int(2 * self.longest_pause_s) + 3600
        parked = int(self.client.eval(PARK, 2, self._keys(endpoint)[0], self._parked_key(endpoint), ttl, *items))
        return None if parked < 0 else parked

    def unpark(self, endpoint: str, count: int) -> list[tuple[list[uuid.UUID], int]]:
        """Take up to `count` parked batches, oldest first."""
        raw: list[bytes] = self.client.lpop(self._parked_key(endpoint), count) or []  # type: ignore[assignment]
        batches = [json.loads(item) for item in raw]
        return [([uuid.UUID(i) for i in ids], int(attempt)) for ids, attempt in batches]

    def parked(self, endpoint: str) -> int:
        return int(self.client.llen(self._parked_key(endpoint)))
