"""Members that are gone leave their group: idle past the limit with nothing pending, never before their
pending entries are claimed; the projector forgets their tracking rows."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text

from platograph import consuming
from platograph.consuming import consume
from platograph.retiring import retire_idle
from platograph.stream import Entry, StreamConsumer
from services.graph.adapters import projection_store

pytestmark = pytest.mark.integration


def members(client: redis.Redis, stream: str) -> dict[str, int]:
    return {m["name"].decode() if isinstance(m["name"], bytes) else m["name"]: int(m["pending"])
            for m in client.xinfo_consumers(stream, "g")}  # fmt: skip


def test_idle_members_with_nothing_pending_are_retired_the_others_stay(redis_client: redis.Redis, stream: str) -> None:
    ids = [redis_client.xadd(stream, {"n": str(n)}) for n in range(4)]
    redis_client.xgroup_create(stream, "g", id="0")
    redis_client.xreadgroup("g", "gone-with-work", {stream: ">"}, count=2)  # reads 2, acks 1: one pending
    redis_client.xack(stream, "g", ids[0])
    redis_client.xreadgroup("g", "gone-clean", {stream: ">"}, count=2)
    redis_client.xack(stream, "g", *ids[2:])
    redis_client.xgroup_createconsumer(stream, "g", "me")  # idle, pending 0: never retires itself
    time.sleep(0.3)
    assert retire_idle(redis_client, stream, "g", keep="me", idle_ms=10_000) == []  # not idle long enough
    assert retire_idle(redis_client, stream, "g", keep="me", idle_ms=100) == ["gone-clean"]
    assert members(redis_client, stream) == {"gone-with-work": 1, "me": 0}
    # once a live member has claimed its entry, the other goes too
    redis_client.xautoclaim(stream, "g", "me", min_idle_time=0, start_id="0-0")
    time.sleep(0.2)
    assert retire_idle(redis_client, stream, "g", keep="me", idle_ms=100) == ["gone-with-work"]
    assert members(redis_client, stream) == {"me": 1}


def test_the_consuming_loop_retires_members(
    redis_client: redis.Redis, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consuming, "RETIRE_EVERY_S", 0.0)
    redis_client.xadd(stream, {"n": "1"})
    redis_client.xgroup_create(stream, "g", id="$")
    redis_client.xgroup_createconsumer(stream, "g", "yesterdays-pod")  # nothing pending
    member = StreamConsumer(redis_client, stream=stream, group="g", consumer="todays-pod",
                            dead_letter_stream=f"{stream}:dead")  # fmt: skip
    stop = threading.Event()

    def handle(entries: list[Entry]) -> int:
        member.ack([e[0] for e in entries])
        return len(entries)

    thread = threading.Thread(
        target=consume,
        args=(member, handle, stop),
        kwargs={
            "batch": 10,
            "block_ms": 50,
            "claim_idle_ms": 60_000,
            "transient": lambda _: False,
            "retire_idle_s": 0.2,
        },  # fmt: skip
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while "yesterdays-pod" in members(redis_client, stream) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(members(redis_client, stream)) == {"todays-pod"}
    finally:
        stop.set()
        thread.join(timeout=10)


def test_tracking_rows_of_idle_projectors_are_forgotten(engine: Engine) -> None:
    with engine.begin() as conn:
        for name, age_s in (("projector-old", 90_000), ("projector-live", 5), ("dead-letter-replay", 90_000)):
            conn.execute(
                text("INSERT INTO projection_tracking (consumer, last_stream_id, events, updated_at) "
                     "VALUES (:c, '1-0', 1, now() - make_interval(secs => :s))"),
                {"c": name, "s": age_s},
            )  # fmt: skip
    assert projection_store.forget_idle(engine, 86_400, keep=["dead-letter-replay"]) == ["projector-old"]
    with engine.connect() as conn:
        left: Any = conn.execute(text("SELECT consumer FROM projection_tracking ORDER BY 1")).scalars().all()
    assert left == ["dead-letter-replay", "projector-live"]
