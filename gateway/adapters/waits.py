"""A cap on the requests of one gateway waiting for the projection (read-your-writes) at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from platograph.waiting import TooManyWaiters


class WaitSlots:
    """Past `limit` concurrent waits a request is refused at once instead of queueing: each wait holds a
    connection of its own pool for up to the longest `wait_ms`, and no more than the pool has may wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.used >= self.limit:
            raise TooManyWaiters(f"{self.used} requests already wait for the projection on this gateway")
        self.used += 1
        try:
            yield
        finally:
            self.used -= 1
