"""Learned thresholds and the direct-edge decisions they come from, in Redis (durable with AOF); every
change of a threshold is journaled too (`threshold.changed`), so a Redis that lost them gets the thresholds
back from the journal (service_layer/learning.restore).

Accepted and rejected candidates are the graph's (its candidates table); what Redis keeps here is the cosine
of each typed edge a person added directly between two indexed entities, the latest LABELS_KEPT per type
pair and model."""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis

LABELS_KEPT = 5000


class ThresholdStore:
    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client, self.prefix = client, f"{stream}:similarity"

    def _learned_key(self, model: str) -> str:
        return f"{self.prefix}:thresholds:{model}"

    def records(self, model: str) -> dict[str, dict[str, Any]]:
        """Per type pair (`a|b`): the last evaluation (threshold, learned, decisions, …, since)."""
        raw = self.client.hgetall(self._learned_key(model))
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}  # type: ignore[union-attr]

    def record(self, model: str, pair: str) -> dict[str, Any] | None:
        raw = self.client.hget(self._learned_key(model), pair)
        return None if raw is None else dict(orjson.loads(raw))

    def save(self, model: str, pair: str, record: dict[str, Any]) -> None:
        self.client.hset(self._learned_key(model), pair, orjson.dumps(record))

    def pending_follow(self, tag: str, record: dict[str, Any]) -> None:
        """A candidates pass to run after a threshold change (cleared by `followed` once it ran)."""
        self.client.hset(f"{self.prefix}:threshold-follows", tag, orjson.dumps(record | {"at": time.time()}))

    def followed(self, tag: str) -> None:
        self.client.hdel(f"{self.prefix}:threshold-follows", tag)

    def pending_follows(self) -> list[tuple[str, dict[str, Any]]]:
        """The passes not yet run, oldest first."""
        raw = self.client.hgetall(f"{self.prefix}:threshold-follows")
        found = [(k.decode(), orjson.loads(v)) for k, v in raw.items()]  # type: ignore[union-attr]
        return sorted(found, key=lambda item: item[1]["at"])

    def add_label(self, model: str, pair: str, score: float, label: bool) -> None:
        key = f"{self.prefix}:labels:{model}:{pair}"
        with self.client.pipeline() as pipe:
            pipe.lpush(key, orjson.dumps([round(score, 6), label]))
            pipe.ltrim(key, 0, LABELS_KEPT - 1)
            pipe.execute()

    def labels(self, model: str, pair: str) -> list[tuple[float, bool]]:
        raw = self.client.lrange(f"{self.prefix}:labels:{model}:{pair}", 0, -1)
        return [(float(s), bool(label)) for s, label in (orjson.loads(item) for item in raw)]
