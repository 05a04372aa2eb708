"""Finished neighborhood views kept in the gateway's memory, dropped when the graph announces they changed.

A view is kept under the graph request that made it and found under the same one (the same entity, page
and thresholds). The graph announces, after each commit, whose views the commit changed
(platograph.view_changes); `follow` reads those announcements and drops the views kept for them.

Staleness is ruled out by order, not by time: an announcement comes after its commit, so a view read from
the graph after the announcement arrived is current, and one read before it is dropped by it, unless the
view was not kept yet when it arrived. `generation` counts announcements received (and restarts of the
follower): a view is kept only if none of those that arrived while it was being read names its entity (the
last RECENT are remembered; a read that outlasted them is not kept). Nothing is kept while the follower
is not following (before its first read, after an error, after falling behind): an announcement may have
been missed. `ttl_s` bounds how long a view is kept whatever happens (a direct write to the database).

Written here rather than taken from cachetools: the index from entities to their kept views, which the
announcements are applied through, must follow every eviction, and an eviction hook is what it lacks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from platograph import view_changes
from platograph.contracts import ViewsChanged

log = logging.getLogger(__name__)
LOOKUPS = Counter("platograph_view_cache_lookups_total", "Neighborhood views asked of the cache", ["result"])
KEPT_BYTES = Gauge("platograph_view_cache_bytes", "Bytes of neighborhood views kept")
# Why kept views went: their entity announced ("announced"), everything announced ("everything"), the follower
# (re)starting, when announcements may have been missed ("restarted"), the byte budget ("evicted"), their time
# ("expired"). Beside the lookups, what an operator sizes the cache by.
DROPPED = Counter("platograph_view_cache_dropped_total", "Neighborhood views dropped from the cache", ["why"])
BATCH = 500  # announcements read at once; a full batch means the follower is behind: it starts over
BLOCK_MS = 1000
RETRY_S = 1.0
OVERHEAD = 200  # bytes an entry costs beyond its view and key (the entry, the index), roughly
# Announcements remembered for the views being read meanwhile: at 1,000 a second, a read of up to a second.
RECENT = 1000


@dataclass
class _Kept:
    view: bytes
    entity: str
    expires: float

    def size(self, key: str) -> int:
        return len(self.view) + len(key) + OVERHEAD


class ViewCache:
    """Views by request, least recently used first out, within `max_bytes`."""

    def __init__(self, max_bytes: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes, self.ttl_s, self.clock = max_bytes, ttl_s, clock
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._by_entity: dict[str, set[str]] = {}
        self.bytes = 0
        self.generation = 0
        self.following = False
        self._recent: deque[tuple[int, frozenset[str]]] = deque(maxlen=RECENT)
        self._everything_at = 0  # the generation of the last announcement that dropped everything

    def ticket(self) -> int | None:
        """Taken before reading a view from the graph: what `keep` needs; None while nothing may be kept."""
        return self.generation if self.following and self.max_bytes > 0 else None

    def get(self, key: str) -> bytes | None:
        kept = self._kept.get(key)
        if kept is None:
            LOOKUPS.labels("miss").inc()
            return None
        if kept.expires <= self.clock():
            self._drop(key, "expired")
            LOOKUPS.labels("expired").inc()
            return None
        self._kept.move_to_end(key)
        LOOKUPS.labels("hit").inc()
        return kept.view

    def keep(self, ticket: int | None, entity: str, key: str, view: bytes) -> bool:
        """Keep a view read with `ticket`, unless an announcement that arrived since names its entity (or the view
        is too big)."""
        if ticket is None or (ticket != self.generation and self._changed_since(ticket, entity)):
            return False
        kept = _Kept(view, entity, self.clock() + self.ttl_s)
        if kept.size(key) > self.max_bytes // 8:
            return False
        self._drop(key)
        self._kept[key] = kept
        self._by_entity.setdefault(entity, set()).add(key)
        self.bytes += kept.size(key)
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._kept)), "evicted")
        KEPT_BYTES.set(self.bytes)
        return True

    def _changed_since(self, ticket: int, entity: str) -> bool:
        if self._everything_at > ticket or not self._recent or self._recent[0][0] > ticket + 1:
            return True  # everything changed, or not every announcement since the ticket is remembered
        for generation, ids in reversed(self._recent):
            if generation <= ticket:
                return False
            if entity in ids:
                return True
        return False

    def changed(self, message: ViewsChanged) -> None:
        """Apply an announcement: drop the views of the entities it names, or all of them."""
        if message.everything:
            self._forget("everything")
            return
        self.generation += 1
        self._recent.append((self.generation, frozenset(message.ids)))
        for entity in message.ids:
            for key in list(self._by_entity.get(entity, ())):
                self._drop(key, "announced")
        KEPT_BYTES.set(self.bytes)

    def stop_following(self) -> None:
        self._forget("restarted")
        self.following = False

    def start_following(self) -> None:
        self._forget("restarted")
        self.following = True

    def _forget(self, why: str) -> None:
        """Everything kept, and every ticket taken, from before: announcements may have been missed."""
        self.generation += 1
        self._everything_at = self.generation
        self.clear(why)

    def clear(self, why: str) -> None:
        if self._kept:
            DROPPED.labels(why).inc(len(self._kept))
        self._kept.clear()
        self._by_entity.clear()
        self.bytes = 0
        KEPT_BYTES.set(0)

    def __len__(self) -> int:
        return len(self._kept)

    def _drop(self, key: str, why: str | None = None) -> None:
        kept = self._kept.pop(key, None)
        if kept is None:
            return
        if why is not None:
            DROPPED.labels(why).inc()
        self.bytes -= kept.size(key)
        keys = self._by_entity.get(kept.entity)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_entity[kept.entity]


async def follow(cache: ViewCache, client: Any, stream: str, stop: asyncio.Event) -> None:
    """Read the graph's announcements into `cache` until `stop` is set; on an error, stop keeping views, wait
    and start over from the newest announcement. (A flag, not only cancelling: redis-py may turn a
    cancellation during a blocked read into a connection error, which the loop would outlive.)"""
    key = view_changes.key(stream)
    while not stop.is_set():
        try:
            newest = await client.xrevrange(key, count=1)
            last = newest[0][0] if newest else b"0-0"
            # From here on every announcement is read: a view read from now can be kept.
            cache.start_following()
            while not stop.is_set():
                reply = await client.xread({key: last}, count=BATCH, block=BLOCK_MS)
                entries = [entry for _stream, batch in reply or [] for entry in batch]
                for entry_id, fields in entries:
                    cache.changed(view_changes.read(fields))
                    last = entry_id
                if len(entries) >= BATCH:  # behind: what was trimmed meanwhile is unknown
                    log.warning("view announcements came faster than read: starting over with no views kept")
                    cache.stop_following()
                    break
        except asyncio.CancelledError:
            cache.stop_following()
            raise
        except Exception as exc:  # noqa: BLE001 - whatever failed, no view may be kept until following again
            cache.stop_following()
            if stop.is_set():
                break
            log.warning("view announcements unreadable (%s: %s): no views kept; again in %g s",
                        exc.__class__.__name__, exc, RETRY_S)  # fmt: skip
            await asyncio.sleep(RETRY_S)
    cache.stop_following()
