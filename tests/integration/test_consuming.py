"""A group member's loop on a real Redis: an entry that fails every time is set aside and the group moves
on in order; an outage is waited out without counting deliveries."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from platograph.background import LoopState, keep_running
from platograph.consuming import consume
from platograph.contracts import EntityUpserted
from platograph.stream import Entry, StreamConsumer
from tests.helpers import append, consumer, eventually

pytestmark = pytest.mark.integration


def transient(exc: BaseException) -> bool:
    return isinstance(exc, RedisConnectionError)


class Handler:
    """Acks what it handles; raises `error()` for the entries in `fail`, each time it is handed one."""

    def __init__(self, c: StreamConsumer, fail: set[str], error: Callable[[], Exception]) -> None:
        self.c, self.fail, self.error = c, fail, error
        self.calls: list[list[str]] = []
        self.handled: list[str] = []

    def __call__(self, entries: list[Entry]) -> int:
        ids = [entry_id for entry_id, _ in entries]
        self.calls.append(ids)
        if self.fail & set(ids):
            raise self.error()
        self.handled += ids
        self.c.ack(ids)
        return len(ids)


def test_an_entry_that_fails_every_time_is_dead_lettered_and_the_group_moves_on_in_order(
    redis_client: redis.Redis, stream: str
) -> None:
    c = consumer(redis_client, stream, group="similarity")
    ids = [append(redis_client, stream, EntityUpserted(id=f"concept:e{i}", type="concept", name="E"))[0]
           for i in range(8)]  # fmt: skip
    poison = ids[3]
    handler = Handler(c, {poison}, lambda: ValueError("cannot embed this"))
    state, stop = LoopState("test-consuming"), threading.Event()

    def body(stop: threading.Event) -> None:
        # max_deliveries=2 fails this test if the entries behind the poison are read again with it on each
        # restart: they would reach 3 deliveries and be dead-lettered too.
        consume(c, handler, stop, batch=20, block_ms=20, claim_idle_ms=60_000, transient=transient,
                max_deliveries=2, last_error=lambda: state.last_error)  # fmt: skip

    thread = threading.Thread(target=keep_running, args=(state, body, stop, 0.01), daemon=True)
    thread.start()
    try:
        eventually(lambda: len(handler.handled) == 7)
    finally:
        stop.set()
        thread.join(10)
    assert handler.handled == [i for i in ids if i != poison]  # each once, in stream order
    assert handler.calls[0] == ids  # one read of all eight, then one at a time after it failed
    # Delivered three times: in the first read, then alone after each of two restarts; the third delivery
    # is over max_deliveries, so it is set aside before it is handled.
    assert [call for call in handler.calls if call == [poison]] == [[poison]] * 2
    dead = c.dead_letters(None, 10)
    assert [(d["entry_id"], d["group"]) for d in dead] == [(poison, "similarity")]
    assert "delivered 3 times without an ack" in dead[0]["reason"]
    assert "ValueError: cannot embed this" in dead[0]["reason"]
    assert redis_client.xpending(stream, "similarity")["pending"] == 0
    assert state.failures == 2


def test_a_server_away_is_waited_out_on_the_entries_in_hand_without_counting_deliveries(
    redis_client: redis.Redis, stream: str
) -> None:
    c = consumer(redis_client, stream, group="webhooks")
    entry_id, _ = append(redis_client, stream, EntityUpserted(id="concept:x", type="concept", name="X"))
    outage = [4]
    counts: list[int] = []

    def handle(entries: list[Entry]) -> int:
        counts.append(c.deliveries([entry_id])[entry_id])
        if outage[0]:
            outage[0] -= 1
            raise RedisConnectionError("graph away")
        c.ack([entry_id])
        stop.set()
        return 1

    stop = threading.Event()
    # claim_idle_ms=0: were the failed entry left pending and read again, each read would count.
    consume(c, handle, stop, batch=10, block_ms=20, claim_idle_ms=0, transient=transient, max_deliveries=1)
    assert counts == [1] * 5
    assert c.dead_letters(None, 10) == []
    assert redis_client.xpending(stream, "webhooks")["pending"] == 0
