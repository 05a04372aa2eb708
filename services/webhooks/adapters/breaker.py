"""A circuit breaker per endpoint, in Redis (shared by every webhook worker).

An endpoint that refuses connections, times out or answers 5xx/429 is backed off as a whole: its breaker
opens for a pause that doubles with each failed probe (up to a cap), its batches wait without sending,
and once the pause is over one job probes it. A success closes the breaker and the queue flows again.
Waiting batches cost one Redis call and one scheduled job each per pause, not an attempt each.
"""

from __future__ import annotations

import time

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


class Breaker:
    def __init__(self, client: redis.Redis, prefix: str, *, first_pause_s: float, longest_pause_s: float) -> None:
        self.client, self.prefix = client, prefix
        self.first_pause_s, self.longest_pause_s = first_pause_s, longest_pause_s

    def _keys(self, endpoint: str) -> tuple[str, str]:
        return f"{self.prefix}:breaker:{endpoint}", f"{self.prefix}:probe:{endpoint}"

    def open_until(self, endpoint: str) -> float | None:
        """When the endpoint may be tried again; None while its breaker is closed."""
        raw = self.client.hget(self._keys(endpoint)[0], "open_until")
        return None if raw is None else float(raw)

    def probe(self, endpoint: str, hold_s: float) -> bool:
        """Take the one attempt allowed once the pause is over (held for `hold_s` at most)."""
        return bool(self.client.set(self._keys(endpoint)[1], "1", nx=True, ex=max(1, int(hold_s))))

    def trip(self, endpoint: str) -> float:
        """The endpoint failed: open (or keep open, for twice as long) its breaker. Returns until when."""
        breaker, probe = self._keys(endpoint)
        raw = self.client.eval(TRIP, 2, breaker, probe, time.time(), self.longest_pause_s, self.first_pause_s)
        return float(raw.decode() if isinstance(raw, bytes) else raw)

    def close(self, endpoint: str) -> None:
        """The endpoint answered: its batches flow again."""
        self.client.delete(*self._keys(endpoint))
