"""Reading the event stream as a member of a Redis consumer group.

The stream is trimmed once every group is done with its entries (the graph journal keeps every event). A
group created after a trim starts at the first entry left, so it first reads back what it missed from the
journal (`catch_up`): for a consumer, a trimmed stream then reads the same as a whole one. The loop that
runs a group member is `platograph.consuming`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from redis.exceptions import ResponseError

from platograph.settings import CoreSettings

Entry = tuple[str, dict[bytes, bytes]]


def _decoded(entries: Any, deleted: list[str] | None = None) -> list[Entry]:
    """Entries as (id, fields); those deleted while pending (a capped stream trimmed them) go to `deleted`."""
    out: list[Entry] = []
    for raw_id, fields in entries or []:
        entry_id = reply_text(raw_id)
        if not fields:  # nil, or an empty map as redis-py parses it: deleted while pending
            if deleted is not None and entry_id not in deleted:
                deleted.append(entry_id)
            continue
        out.append((entry_id, fields))
    return out


class StreamConsumer:
    """One consumer in a group: read new entries, reclaim a dead consumer's, ack, dead-letter."""

    def __init__(self, client: redis.Redis, *, stream: str, group: str, consumer: str, dead_letter_stream: str) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.dead_letter_stream = dead_letter_stream
        # Pending entries found deleted (the stream's cap trimmed them before this group acked them): the
        # consuming loop reads them back from the journal (platograph.consuming.read_back_trimmed).
        self.deleted_pending: list[str] = []

    @classmethod
    def member(cls, client: redis.Redis, settings: CoreSettings, *, group: str, consumer: str) -> StreamConsumer:
        """A member of a group on the configured stream, setting aside to its dead-letter stream (each
        service's bootstrap wires its group this way)."""
        return cls(client, stream=settings.stream, group=group, consumer=consumer,
                   dead_letter_stream=settings.dead_letter_stream)  # fmt: skip

    def ensure_group(self) -> None:
        """Create the group at the start of the stream unless it exists."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @property
    def catch_up_key(self) -> str:
        return f"{self.stream}:catch-up:{self.group}"

    def missed(self) -> tuple[str, str | None] | None:
        """The entries this group missed because the stream was trimmed before it was created, as (last
        missed entry, last one read back so far); None when there is nothing (left) to read back."""
        state = {reply_text(k): reply_text(v) for k, v in self.client.hgetall(self.catch_up_key).items()}
        if not state:
            # Decided once per group. Until a group reads, trimming keeps everything it has not read, so
            # what was trimmed when we look here is exactly what the group missed.
            until = self._trimmed_before_reading()
            state = {"until": until or "", "after": "", "done": "" if until else "1"}
            fields: dict[Any, Any] = dict(state)  # redis-py's mapping type is invariant in its keys
            self.client.hset(self.catch_up_key, mapping=fields)
        if state.get("done"):
            return None
        return state["until"], state["after"] or None

    def caught_up_to(self, entry_id: str) -> None:
        self.client.hset(self.catch_up_key, "after", entry_id)

    def caught_up(self) -> None:
        self.client.hset(self.catch_up_key, "done", "1")

    def _trimmed_before_reading(self) -> str | None:
        group = next((g for g in self.client.xinfo_groups(self.stream) if reply_text(g["name"]) == self.group), None)
        if group is None or reply_text(group["last-delivered-id"]) != "0-0":
            return None  # a group that has read was there before the trim (or has its own catch-up state)
        info = self.client.xinfo_stream(self.stream)
        if int(info["entries-added"]) == int(info["length"]):
            return None  # nothing was trimmed
        return _trimmed_through(info)

    def own_pending(self, count: int) -> list[Entry]:
        """Entries delivered to this consumer name before and never acked (after a restart)."""
        reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=count)
        return _decoded(_entries(reply), self.deleted_pending)

    def read_new(self, count: int, block_ms: int) -> list[Entry]:
        reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms)
        return _decoded(_entries(reply))

    def reclaim(self, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries other consumers left pending for longer than min_idle_ms."""
        reply = self.client.xautoclaim(self.stream, self.group, self.consumer, min_idle_ms, "0-0", count=count)
        # Redis takes deleted entries off the pending list as it claims and names them third.
        for raw_id in reply[2] if len(reply) > 2 else []:
            if (entry_id := reply_text(raw_id)) not in self.deleted_pending:
                self.deleted_pending.append(entry_id)
        return _decoded(reply[1], self.deleted_pending)

    def deliveries(self, entry_ids: list[str]) -> dict[str, int]:
        """How many times each pending entry has been delivered."""
        pipe = self.client.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
        return {entry_id: int(rows[0]["times_delivered"])
                for entry_id, rows in zip(entry_ids, pipe.execute(), strict=True) if rows}  # fmt: skip

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

    def dead_letters(self, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Dead-lettered records, oldest first, after the record `after` (exclusive): what was set aside,
        by which group, and why."""
        rows = self.client.xrange(self.dead_letter_stream, min=f"({after}" if after else "-", count=limit)
        return [_dead_letter(raw_id, fields) for raw_id, fields in rows or []]

    def dead_letter_record(self, record_id: str) -> dict[str, Any] | None:
        """One dead-lettered record by its id, as `dead_letters` lists it; None if there is none."""
        rows = self.client.xrange(self.dead_letter_stream, min=record_id, max=record_id, count=1)
        return _dead_letter(*rows[0]) if rows else None

    def backlog(self) -> dict[str, int | None]:
        """Entries of this group delivered but not acked (pending), and not yet delivered (lag)."""
        try:
            groups = self.client.xinfo_groups(self.stream)
        except ResponseError:  # no stream yet
            return {"pending": 0, "lag": 0}
        for group in groups:
            if reply_text(group["name"]) == self.group:
                lag = group.get("lag")
                return {"pending": int(group["pending"]), "lag": None if lag is None else int(lag)}
        return {"pending": None, "lag": None}

    def _group_info(self) -> dict[Any, Any] | None:
        """This group's XINFO GROUPS row; None when the stream or the group does not exist."""
        try:
            groups = self.client.xinfo_groups(self.stream)
        except ResponseError:
            return None
        return next((g for g in groups if reply_text(g["name"]) == self.group), None)

    def delivered(self) -> str | None:
        """The last entry this group was given (for a new group that read back a trim, the last one read
        back); None when the group does not exist or is new and has not decided its catch-up yet."""
        group = self._group_info()
        if group is None:
            return None
        delivered = reply_text(group["last-delivered-id"])
        if delivered == "0-0":  # a new group: what it missed before it read is `missed`'s, up to its `until`
            state = {reply_text(k): reply_text(v) for k, v in self.client.hgetall(self.catch_up_key).items()}
            return (state.get("until") or "0-0") if state.get("done") else None
        return delivered

    def trimmed_unread(self, since: str | None) -> tuple[str, str] | None:
        """(since, the last id before the first entry left) when a capped stream may have trimmed entries
        after `since` (the last one this group was given) that it had not read; None when it cannot have.
        XTRIM records no "max deleted" id, so this goes by ids: right after an ordinary trim it can also
        answer for a gap that held no entry (the journal then returns nothing)."""
        if since is None:
            return None
        try:
            info = self.client.xinfo_stream(self.stream)
        except ResponseError:
            return None
        if int(info["entries-added"]) == int(info["length"]):
            return None  # nothing was ever trimmed
        boundary = _trimmed_through(info)
        return (since, boundary) if _id_tuple(boundary) > _id_tuple(since) else None

    def skip_to(self, entry_id: str) -> None:
        """Move the group past entries it read back from the journal instead (never backwards)."""
        group = self._group_info()
        if group is not None and _id_tuple(reply_text(group["last-delivered-id"])) < _id_tuple(entry_id):
            self.client.xgroup_setid(self.stream, self.group, entry_id)

    def has_read(self) -> bool:
        """Whether this group has been delivered any entry."""
        group = self._group_info()
        return group is not None and reply_text(group["last-delivered-id"]) != "0-0"

    def rewind(self) -> None:
        """Deliver everything to this group again: the stream from its start, and through catch-up what a
        trim took from it (the state of an earlier catch-up is forgotten, so that it is decided anew). In this
        order: a crash between the two leaves a group that has read, so the next start rewinds again."""
        self.client.delete(self.catch_up_key)
        self.client.xgroup_setid(self.stream, self.group, "0", entries_read=0)

    @property
    def _failures_key(self) -> str:
        return f"{self.stream}:failures:{self.group}"

    def note_failure(self, entry_id: str, error: str) -> None:
        """Keep why handling an entry failed, for its dead letter: the process may die before it is set aside."""
        with self.client.pipeline() as pipe:
            pipe.hset(self._failures_key, entry_id, error[:500])
            pipe.expire(self._failures_key, 7 * 24 * 3600)
            pipe.execute()

    def last_failure(self, entry_id: str) -> str | None:
        raw = self.client.hget(self._failures_key, entry_id)
        return None if raw is None else reply_text(raw)

    def forget_failure(self, entry_id: str) -> None:
        self.client.hdel(self._failures_key, entry_id)

    def last_issued(self) -> str | None:
        """The last entry id the stream gave out; None when nothing was ever written."""
        try:
            return reply_text(self.client.xinfo_stream(self.stream)["last-generated-id"])
        except ResponseError:  # no stream yet
            return None

    def issued(self, entry_id: str) -> bool:
        """Whether the stream has given out this entry id (or a later one): a position no write was given
        can never be reached, so waiting for it would only hold a connection."""
        last = self.last_issued()
        return last is not None and _id_tuple(entry_id) <= _id_tuple(last)

    def reached(self, entry_id: str) -> bool:
        """Whether every entry up to entry_id has been processed and acked by this group."""
        group = self._group_info()
        if group is None or _id_tuple(reply_text(group["last-delivered-id"])) < _id_tuple(entry_id):
            return False
        return not self.client.xpending_range(self.stream, self.group, min="-", max=entry_id, count=1)


def _dead_letter(raw_id: Any, fields: Any) -> dict[str, Any]:
    text = {reply_text(k): reply_text(v) for k, v in (fields or {}).items()}
    record_id = reply_text(raw_id)
    at = datetime.fromtimestamp(_id_tuple(record_id)[0] / 1000, UTC)
    index = int(text["index"]) if text.get("index") else None
    return {"id": record_id, "at": at.isoformat(), "group": text.get("group", ""),
            "entry_id": text.get("entry_id", ""), "index": index, "reason": text.get("reason", ""),
            "raw": orjson.loads(text.get("raw", "null"))}  # fmt: skip


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


def reply_text(value: Any) -> str:
    """A string from a Redis reply (bytes, or already text)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _trimmed_through(info: dict[Any, Any]) -> str:
    """From XINFO STREAM of a trimmed stream: the last id a trim may have taken (the one before the first
    entry left, or the last one issued when none is left)."""
    if int(info["length"]) == 0:
        return reply_text(info["last-generated-id"])
    return previous_id(reply_text(info["first-entry"][0]))


def previous_id(entry_id: str) -> str:
    """The last id that can come before entry_id."""
    ms, seq = _id_tuple(entry_id)
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-9999999"  # the journal takes 7 digits of sequence


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
