"""Reading the event stream as a member of a Redis consumer group."""

from __future__ import annotations

from typing import Any

import orjson
import redis
from redis.exceptions import ResponseError

Entry = tuple[str, dict[bytes, bytes]]


def _decoded(entries: Any) -> list[Entry]:
    out: list[Entry] = []
    for entry_id, fields in entries or []:
        if fields is None:  # deleted while pending
            continue
        out.append((entry_id.decode() if isinstance(entry_id, bytes) else entry_id, fields))
    return out


class StreamConsumer:
    """One consumer in a group: read new entries, reclaim a dead consumer's, ack, dead-letter."""

    def __init__(self, client: redis.Redis, *, stream: str, group: str, consumer: str, dead_letter_stream: str) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.dead_letter_stream = dead_letter_stream

    def ensure_group(self) -> None:
        """Create the group at the start of the stream unless it exists."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def own_pending(self, count: int) -> list[Entry]:
        """Entries delivered to this consumer name before and never acked (after a restart)."""
        return _decoded(_entries(self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=count)))

    def read_new(self, count: int, block_ms: int) -> list[Entry]:
        reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms)
        return _decoded(_entries(reply))

    def reclaim(self, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries other consumers left pending for longer than min_idle_ms."""
        reply = self.client.xautoclaim(self.stream, self.group, self.consumer, min_idle_ms, "0-0", count=count)
        return _decoded(reply[1])

    def deliveries(self, entry_ids: list[str]) -> dict[str, int]:
        """How many times each pending entry has been delivered."""
        out: dict[str, int] = {}
        for entry_id in entry_ids:
            rows = self.client.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
            if rows:
                out[entry_id] = int(rows[0]["times_delivered"])
        return out

    def ack(self, entry_ids: list[str]) -> None:
        if entry_ids:
            self.client.xack(self.stream, self.group, *entry_ids)

    def dead_letter(self, entry_id: str, raw: Any, reason: str, index: int | None = None) -> None:
        """Record an event (or whole entry) that cannot be projected, with the reason."""
        fields = {
            "entry_id": entry_id,
            "index": "" if index is None else str(index),
            "group": self.group,
            "reason": reason[:2000],
            "raw": orjson.dumps(_jsonable(raw), default=str),
        }
        self.client.xadd(self.dead_letter_stream, fields)  # type: ignore[arg-type]

    def backlog(self) -> dict[str, int | None]:
        """Entries of this group delivered but not acked (pending), and not yet delivered (lag)."""
        try:
            groups = self.client.xinfo_groups(self.stream)
        except ResponseError:  # no stream yet
            return {"pending": 0, "lag": 0}
        for group in groups:
            if _text(group["name"]) == self.group:
                lag = group.get("lag")
                return {"pending": int(group["pending"]), "lag": None if lag is None else int(lag)}
        return {"pending": None, "lag": None}

    def reached(self, entry_id: str) -> bool:
        """Whether every entry up to entry_id has been processed and acked by this group."""
        try:
            groups = self.client.xinfo_groups(self.stream)
        except ResponseError:
            return False
        group = next((g for g in groups if _text(g["name"]) == self.group), None)
        if group is None or _id_tuple(_text(group["last-delivered-id"])) < _id_tuple(entry_id):
            return False
        return not self.client.xpending_range(self.stream, self.group, min="-", max=entry_id, count=1)


def _entries(reply: Any) -> Any:
    """The entries of the one stream in an XREADGROUP reply (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return next(iter(reply.values()))
    return reply[0][1]


def _jsonable(value: Any) -> Any:
    """Raw stream fields (bytes keys and values) in a form JSON can hold."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(_jsonable(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
