"""A consumer group created after the stream was trimmed reads what it missed back from the journal."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from platograph.consuming import consume
from platograph.contracts import ENTRY_FIELD, EntityUpserted
from platograph.graph_api import journal_entries
from platograph.stream import Entry, StreamConsumer
from platograph.trimming import trim
from services.graph.bootstrap import bootstrap
from services.graph.entrypoints.http import create_app
from services.graph.settings import GraphSettings
from tests.helpers import append, consumer, drain
from tests.integration.test_projector import push, sample_history

pytestmark = pytest.mark.integration


@pytest.fixture
def graph_api(env: dict[str, str]) -> Iterator[TestClient]:
    graph = bootstrap(GraphSettings())
    try:
        with TestClient(create_app(graph)) as client:
            yield client
    finally:
        graph.close()


class Recorder:
    """A group's handler: records each entry's id and event ids, acks, and stops at a given entry."""

    def __init__(self, c: StreamConsumer, stop_at: str, fail_after_pages: int | None = None) -> None:
        self.c, self.stop_at, self.fail_after_pages = c, stop_at, fail_after_pages
        self.seen: list[tuple[str, list[str]]] = []
        self.pages = 0
        self.stop = threading.Event()

    def __call__(self, entries: list[Entry]) -> int:
        if self.fail_after_pages is not None and self.pages == self.fail_after_pages:
            raise RuntimeError("crash in the middle of the catch-up")
        self.pages += 1
        for entry_id, fields in entries:
            self.seen.append((entry_id, [e["event_id"] for e in orjson.loads(fields[ENTRY_FIELD])]))
            if entry_id == self.stop_at:
                self.stop.set()
        self.c.ack([e for e, _ in entries])
        return len(entries)

    def run(self, api: TestClient, page_size: int) -> None:
        consume(self.c, self, self.stop, batch=10, block_ms=20, claim_idle_ms=60_000, transient=lambda exc: False,
                catch_up=lambda until, after: journal_entries(api, until, after, page_size=page_size))  # fmt: skip


def test_a_late_group_reads_the_trimmed_entries_back_in_order_then_the_stream(
    engine: Engine, redis_client: redis.Redis, stream: str, graph_api: TestClient
) -> None:
    graph = consumer(redis_client, stream)
    early = consumer(redis_client, stream, group="early")
    push(redis_client, stream, sample_history(random.Random(5), 200), per_entry=7)
    expected = [(e.decode(), [v["event_id"] for v in orjson.loads(f[ENTRY_FIELD])])
                for e, f in redis_client.xrange(stream)]  # fmt: skip
    drain(graph, engine)
    early.ack([e for e, _ in early.read_new(1000, block_ms=10)])
    assert trim(redis_client, stream) == len(expected) and redis_client.xlen(stream) == 0
    after_trim = [append(redis_client, stream, EntityUpserted(id=f"concept:n{i}", type="concept", name="N"))
                  for i in range(3)]  # fmt: skip
    expected += [(entry_id, [str(e.event_id) for e in envelopes]) for entry_id, envelopes in after_trim]

    late = Recorder(StreamConsumer(redis_client, stream=stream, group="late", consumer="l1",
                                   dead_letter_stream=f"{stream}:dead"), stop_at=after_trim[-1][0])  # fmt: skip
    late.run(graph_api, page_size=50)
    assert late.seen == expected  # every entry once, in stream order, the trimmed ones with the same events
    assert late.pages > 2  # it paged

    # A group that was there before the trim has nothing to read back.
    before = Recorder(early, stop_at=after_trim[-1][0])
    before.run(graph_api, page_size=50)
    assert before.seen == expected[-3:]


def test_a_catch_up_that_crashes_resumes_after_the_last_page_it_finished(
    engine: Engine, redis_client: redis.Redis, stream: str, graph_api: TestClient
) -> None:
    graph = consumer(redis_client, stream)
    push(redis_client, stream, sample_history(random.Random(6), 120), per_entry=3)
    expected = [e.decode() for e, _ in redis_client.xrange(stream)]
    drain(graph, engine)
    trim(redis_client, stream)
    last, _ = append(redis_client, stream, EntityUpserted(id="concept:last", type="concept", name="Last"))

    def late(fail_after_pages: int | None) -> Recorder:
        c = StreamConsumer(redis_client, stream=stream, group="late", consumer="l1", dead_letter_stream="x")
        return Recorder(c, stop_at=last, fail_after_pages=fail_after_pages)

    first = late(fail_after_pages=3)
    with pytest.raises(RuntimeError):
        first.run(graph_api, page_size=20)
    second = late(fail_after_pages=None)
    second.run(graph_api, page_size=20)
    ids = [e for e, _ in first.seen + second.seen]
    assert ids == [*expected, last]  # nothing twice, nothing missed: the crash fell between pages


def test_a_group_behind_the_cap_reads_what_the_trim_took_back_from_the_journal_and_misses_nothing(
    engine: Engine, redis_client: redis.Redis, stream: str, graph_api: TestClient
) -> None:
    """Issue 23's check: a consumer stopped while 10x the cap is written misses nothing once started, the
    stream stays within the cap, and what the journal's writer has not projected is never trimmed."""
    cap = 10
    graph = consumer(redis_client, stream)
    slow = StreamConsumer(redis_client, stream=stream, group="slow", consumer="s1", dead_letter_stream="x")
    slow.ensure_group()
    push(redis_client, stream, sample_history(random.Random(7), 20), per_entry=4)
    early = slow.read_new(5, block_ms=10)  # read before it stopped: three acked, two left pending
    slow.ack([e for e, _ in early[:3]])
    push(redis_client, stream, sample_history(random.Random(8), 400), per_entry=4)  # 10x the cap and more
    everything = [e.decode() for e, _ in redis_client.xrange(stream)]
    assert len(everything) >= 10 * cap

    assert trim(redis_client, stream, keep="graph", maxlen=cap) == 0  # the projector has read nothing yet
    drain(graph, engine)
    trim(redis_client, stream, keep="graph", maxlen=cap)
    assert redis_client.xlen(stream) == cap  # bounded by the cap, though "slow" needs far more

    last, _ = append(redis_client, stream, EntityUpserted(id="concept:after", type="concept", name="After"))
    expected = sorted([e for e, _ in early[3:]] + everything[5:] + [last])
    recorder = Recorder(slow, stop_at="none")
    thread = threading.Thread(target=recorder.run, args=(graph_api, 25))
    thread.start()
    try:
        deadline = time.monotonic() + 30  # the second pending entry comes back with the next reclaim scan
        while sorted({e for e, _ in recorder.seen}) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        recorder.stop.set()
        thread.join(10)
    seen = [e for e, _ in recorder.seen]
    assert sorted(seen) == expected  # each once, none missed
    assert redis_client.xpending(stream, "slow")["pending"] == 0
