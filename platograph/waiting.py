"""Read-your-writes without a thread: whether a consumer group has processed a stream position, asked of
Redis on an asyncio client, and a bounded number of requests waiting for it.

A waiting request holds no worker thread and no database connection, only its socket; past `limit`
waiters a request is refused at once (`TooManyWaiters`, answered 429 with Retry-After) instead of queueing
behind them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from platograph.positions import parse_entry_id
from platograph.stream import previous_id, reply_text

FIRST_POLL_S, LAST_POLL_S = 0.005, 0.05  # polls back off: a position is usually reached within milliseconds


class TooManyWaiters(Exception):
    """More requests wait for the projection than this process allows."""


class ProjectionWait:
    """Waits of one process for one consumer group of one stream."""

    def __init__(self, client: aioredis.Redis, *, stream: str, group: str, limit: int) -> None:
        self.client, self.stream, self.group, self.limit = client, stream, group, limit
        self.waiting = 0

    async def issued(self, entry_id: str) -> bool:
        """Whether the stream has given out this position (or a later one): one no write was given can
        never be reached."""
        try:
            info: dict[Any, Any] = await self.client.xinfo_stream(self.stream)
        except ResponseError:  # no stream yet: nothing was ever written
            return False
        return parse_entry_id(entry_id) <= parse_entry_id(reply_text(info["last-generated-id"]))

    async def through(self) -> str | None:
        """The last position up to which the group has processed and acked every entry; None before its
        first read."""
        try:
            groups = await self.client.xinfo_groups(self.stream)
        except ResponseError:
            return None
        group = next((g for g in groups if reply_text(g["name"]) == self.group), None)
        if group is None or reply_text(group["last-delivered-id"]) == "0-0":
            return None
        pending: dict[Any, Any] = await self.client.xpending(self.stream, self.group)
        if pending["pending"]:
            return previous_id(reply_text(pending["min"]))
        return reply_text(group["last-delivered-id"])

    async def reached(self, entry_id: str) -> bool:
        """Whether every entry up to entry_id has been processed and acked by the group."""
        try:
            groups = await self.client.xinfo_groups(self.stream)
        except ResponseError:
            return False
        group = next((g for g in groups if reply_text(g["name"]) == self.group), None)
        if group is None or parse_entry_id(reply_text(group["last-delivered-id"])) < parse_entry_id(entry_id):
            return False
        return not await self.client.xpending_range(self.stream, self.group, min="-", max=entry_id, count=1)

    async def wait(self, entry_id: str, timeout_s: float) -> bool:
        """Whether the group reaches entry_id within timeout_s; TooManyWaiters past the limit."""
        if await self.reached(entry_id):
            return True
        if timeout_s <= 0:
            return False
        if self.waiting >= self.limit:
            raise TooManyWaiters(f"{self.waiting} requests already wait for the projection")
        self.waiting += 1
        try:
            deadline, pause = time.monotonic() + timeout_s, FIRST_POLL_S
            while True:
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                if await self.reached(entry_id):
                    return True
                if time.monotonic() >= deadline:
                    return False
                pause = min(pause * 2, LAST_POLL_S)
        finally:
            self.waiting -= 1
