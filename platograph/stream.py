"""Reading the event stream as a member of a Redis consumer group."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson
import redis
from redis.exceptions import ResponseError
from tenacity import before_sleep_log, retry, retry_if_exception_type, wait_exponential

log = logging.getLogger(__name__)

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


def safe_trim_point(client: redis.Redis, stream: str) -> str | None:
    """The oldest entry some consumer group may still need (its oldest pending entry, or what follows
    its last delivered one); None when the stream has no group yet. Everything before it can go: the
    graph journal keeps every event."""
    try:
        groups = client.xinfo_groups(stream)
    except ResponseError:
        return None
    points: list[tuple[int, int]] = []
    for group in groups:
        name = _text(group["name"])
        summary = client.xpending(stream, name)
        if summary["pending"]:
            points.append(_id_tuple(_text(summary["min"])))
        else:
            ms, seq = _id_tuple(_text(group["last-delivered-id"]))
            points.append((ms, seq + 1))
    if not points:
        return None
    ms, seq = min(points)
    return f"{ms}-{seq}"


def trim(client: redis.Redis, stream: str) -> int:
    """Drop entries every group is done with; returns how many were removed."""
    point = safe_trim_point(client, stream)
    return 0 if point is None else int(client.xtrim(stream, minid=point, approximate=False))


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


def consume(
    consumer: StreamConsumer,
    handle: Callable[[list[Entry]], int],
    stop: threading.Event,
    *,
    batch: int,
    block_ms: int,
    claim_idle_ms: int,
    transient: tuple[type[BaseException], ...],
    triage: Callable[[list[Entry]], list[Entry]] | None = None,
) -> None:
    """Run a group member until stopped: its own pending entries first (after a restart), then entries
    reclaimed from dead members (`triage` may dead-letter some), then new ones. `handle` acks what it
    processed. Transient errors (servers away) are retried with backoff until they pass or stop is set."""

    @retry(
        retry=retry_if_exception_type(transient),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=lambda _state: stop.is_set(),
        reraise=True,
        before_sleep=before_sleep_log(log, logging.WARNING),
    )
    def step(first: bool) -> int:
        entries = consumer.own_pending(batch) if first else []
        if not entries:
            entries = consumer.reclaim(claim_idle_ms, batch)
            entries = triage(entries) if triage and entries else entries
        if not entries:
            entries = consumer.read_new(batch, block_ms)
        return handle(entries) if entries else 0

    consumer.ensure_group()
    first = True
    while not stop.is_set():
        try:
            handled = step(first)
        except transient:
            if stop.is_set():  # asked to stop while a server was unreachable: nothing was acked
                break
            raise
        first = first and handled > 0
