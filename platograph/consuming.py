"""The loop that runs a member of a consumer group: read, handle, ack; wait out servers that are away; set
aside an entry that fails every time, so that it does not hold its group back.

Reads come in this order: what a trim took before the group existed (`catch_up`), this member's own
pending entries (after a restart), entries reclaimed from members gone quiet, then new ones.

Failures:
- an error `transient` recognises (a server away) is retried with backoff on the same entries, in this
  process, so an outage does not count as deliveries of the entries in hand;
- any other error from a read of several entries makes the loop handle them one at a time: those that
  pass are acked, and the one that fails is left at the head of the pending entries. The error then ends
  `consume`; its caller starts it again (`platograph.background.keep_running`), or the process restarts;
- the first pending read after a start takes one entry, so only the entry that failed is delivered again
  and only its delivery count grows, not those of the entries queued behind it;
- an entry delivered more than `max_deliveries` times without an ack failed (or killed its reader) every
  time: it is dead-lettered, with the last error seen here, and acked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

import httpx
from redis.exceptions import ConnectionError as RedisConnectionError
from tenacity import before_sleep_log, retry, retry_if_exception, wait_exponential

from platograph.retiring import retire_idle
from platograph.stream import Entry, StreamConsumer, previous_id

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

RETIRE_EVERY_S = 600.0  # how often a member looks for members to retire (consume's `retire_idle_s`)
AWAY = frozenset({502, 503, 504})  # a service answering that it, or what is behind it, is away


def server_away(exc: BaseException) -> bool:
    """Redis or a service unreachable, or a service answering 502/503/504: waited out. A 500 or a 4xx is a
    bug met by the entries in hand, not an outage, so it counts towards setting them aside."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in AWAY
    return isinstance(exc, RedisConnectionError | httpx.TransportError)


CatchUp = Callable[[str, str | None], Iterable[list[Entry]]]
"""Entries up to the first argument, after the second, from the journal (platograph.graph_api)."""


def read_back(consumer: StreamConsumer, handle: Callable[[list[Entry]], int], catch_up: CatchUp,
              stop: threading.Event) -> None:  # fmt: skip
    """Hand a new group what a trim took before it existed, page by page, resuming after a restart.
    Consumers are idempotent, so a page handled twice (a crash before its mark) changes nothing."""
    gap = consumer.missed()
    if gap is None:
        return
    until, after = gap
    log.info("group %s was created after a trim: reading entries up to %s back from the journal", consumer.group,
             until)  # fmt: skip
    read = 0
    for page in catch_up(until, after):
        if stop.is_set():
            return
        handle(page)  # its acks of entries the group never had are no-ops
        consumer.caught_up_to(page[-1][0])
        read += len(page)
    consumer.caught_up()
    log.info("group %s read %d entries back from the journal", consumer.group, read)


def read_back_trimmed(consumer: StreamConsumer, handle: Callable[[list[Entry]], int], catch_up: CatchUp) -> str | None:
    """Hand a group that fell behind the stream's cap (platograph.trimming) what the trim took from it, from
    the journal: its pending entries found deleted, then the entries trimmed after the last one it was
    given; then move the group past them. Returns that last entry, for `trimmed_meanwhile`."""
    while consumer.deleted_pending:
        entry_id = consumer.deleted_pending[0]
        for page in catch_up(entry_id, previous_id(entry_id)):
            handle(page)
        consumer.ack([entry_id])  # off the pending list even if the journal has nothing under it
        consumer.deleted_pending.pop(0)
    since = consumer.delivered()
    gap = consumer.trimmed_unread(since)
    if gap is None:
        return since
    after, until = gap
    log.warning("group %s fell behind the stream's cap: reading entries after %s up to %s back from the journal",
                consumer.group, after, until)  # fmt: skip
    for page in catch_up(until, after):
        handle(page)
    consumer.skip_to(until)
    return until


def trimmed_meanwhile(consumer: StreamConsumer, since: str | None, catch_up: CatchUp) -> list[Entry]:
    """What a trim that ran between `read_back_trimmed` and the next read took after `since`, from the
    journal (a read after such a trim would skip it): handled before the entries that read returned."""
    gap = consumer.trimmed_unread(since)
    return [] if gap is None else [entry for page in catch_up(gap[1], gap[0]) for entry in page]


def backoff(
    stop: threading.Event, retry_on: Callable[[BaseException], bool]
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A tenacity decorator that retries while `retry_on(exc)` (a server away), with exponential backoff and
    a warning each time, until the call passes or `stop` is set (then the last error is raised)."""
    return retry(
        retry=retry_if_exception(retry_on),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=lambda _state: stop.is_set(),
        reraise=True,
        before_sleep=before_sleep_log(log, logging.WARNING),
    )


def set_aside(
    consumer: StreamConsumer, entries: list[Entry], max_deliveries: int, last_error: str | None
) -> list[Entry]:
    """Dead-letter (and ack) the entries delivered more than `max_deliveries` times; return the others."""
    counts = consumer.deliveries([entry_id for entry_id, _ in entries])
    keep: list[Entry] = []
    for entry_id, fields in entries:
        delivered = counts.get(entry_id, 0)
        if delivered <= max_deliveries:
            keep.append((entry_id, fields))
            continue
        reason = f"delivered {delivered} times without an ack (PLATOGRAPH_MAX_DELIVERIES={max_deliveries})"
        recorded = consumer.last_failure(entry_id)  # kept in Redis: also after the process that failed died
        if recorded or last_error:
            reason += f"; the last error: {recorded or last_error}"
        consumer.dead_letter(entry_id, fields, reason)
        consumer.ack([entry_id])
        consumer.forget_failure(entry_id)
        log.error("group %s: dead-lettered entry %s: %s", consumer.group, entry_id, reason)
    return keep


def consume(
    consumer: StreamConsumer,
    handle: Callable[[list[Entry]], int],
    stop: threading.Event,
    *,
    batch: int,
    block_ms: int,
    claim_idle_ms: int,
    transient: Callable[[BaseException], bool],
    max_deliveries: int | None = None,
    last_error: Callable[[], str | None] = lambda: None,
    catch_up: CatchUp | None = None,
    retire_idle_s: float | None = None,
) -> None:
    """Run a group member until stopped (see the module's docstring). `handle` acks what it processed;
    with `max_deliveries` None, nothing is set aside. With `retire_idle_s`, every RETIRE_EVERY_S it deletes
    the group's members idle for longer with nothing pending (platograph.retiring)."""
    retrying = backoff(stop, transient)
    head = True  # the first pending read after a start takes one entry
    retired_at = time.monotonic()

    def retire() -> None:
        nonlocal retired_at
        if retire_idle_s is None or time.monotonic() - retired_at < RETIRE_EVERY_S:
            return
        retired_at = time.monotonic()
        try:
            gone = retire_idle(consumer.client, consumer.stream, consumer.group, keep=consumer.consumer,
                               idle_ms=int(retire_idle_s * 1000))  # fmt: skip
        except Exception as exc:  # housekeeping: a failure here must not stop consuming
            if transient(exc):
                raise
            log.warning("group %s: retiring idle members failed: %r", consumer.group, exc)
            return
        if gone:
            log.info("group %s: retired %d member(s) idle for over %ss: %s", consumer.group, len(gone),
                     retire_idle_s, ", ".join(gone))  # fmt: skip

    def settle(entries: list[Entry]) -> list[Entry]:
        nonlocal head
        head = False
        return entries if max_deliveries is None else set_aside(consumer, entries, max_deliveries, last_error())

    @retrying
    def read(own: bool) -> tuple[list[Entry], bool]:
        """The next entries to handle, and whether they were this member's own pending ones."""
        count = 1 if head else batch
        if own and (entries := consumer.own_pending(count)):
            return settle(entries), True
        if entries := consumer.reclaim(claim_idle_ms, count):
            return settle(entries), False
        if catch_up is None:
            return consumer.read_new(batch, block_ms), False
        since = read_back_trimmed(consumer, handle, catch_up)  # before a read could move the group past it
        if entries := consumer.read_new(batch, block_ms):
            entries = trimmed_meanwhile(consumer, since, catch_up) + entries
        return entries, False

    def handled(entries: list[Entry]) -> None:
        try:
            handle(entries)
        except Exception as exc:
            if len(entries) == 1 and not transient(exc):  # its dead letter will say why
                consumer.note_failure(entries[0][0], f"{type(exc).__name__}: {exc}")
            raise

    @retrying
    def run(entries: list[Entry]) -> None:
        try:
            handled(entries)
            return
        except Exception as exc:
            if transient(exc) or len(entries) == 1:
                raise
            log.warning("group %s: a read of %d entries failed (%s: %s); handling them one at a time",
                        consumer.group, len(entries), type(exc).__name__, exc)  # fmt: skip
        for entry in entries:
            handled([entry])  # the one that fails raises, and stays pending with those behind it

    consumer.ensure_group()
    try:
        if catch_up is not None:
            retrying(read_back)(consumer, handle, catch_up, stop)
        own = True
        while not stop.is_set():
            entries, own = read(own)
            if entries:
                run(entries)
            retrying(retire)()
    except Exception as exc:
        if transient(exc) and stop.is_set():  # asked to stop while a server was away: nothing was acked
            return
        raise
