"""The projector against real Redis and Postgres: redelivery, several consumers, crashes, poison."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy import Engine, text

from platograph.consuming import set_aside
from platograph.contracts import (
    ENTRY_FIELD,
    CandidateAccepted,
    CandidateProposed,
    CandidateRejected,
    CandidateUnrejected,
    CandidateWithdrawn,
    EdgeAdded,
    EdgeRemoved,
    EntityMerged,
    EntityRetracted,
    EntityUnmerged,
    EntityUpserted,
    Frozen,
)
from platograph.trimming import trim
from services.graph.adapters import projection_store, queries
from services.graph.service_layer import projecting
from tests.helpers import append, consumer, count, drain, snapshot

pytestmark = pytest.mark.integration


def sample_history(rng: random.Random, n: int = 300) -> list[Frozen]:
    """A random mix of every event the graph projects over a few ids: upserts, retractions, merges and
    unmerges, edge adds and removes, and candidates proposed, withdrawn, accepted, rejected and unrejected."""
    ids = [f"concept:c{i}" for i in range(15)]
    events: list[Frozen] = []
    for _ in range(n):
        roll = rng.random()
        a, b = sorted(rng.sample(ids, 2))
        if roll < 0.3:
            events.append(EntityUpserted(id=a, type="concept", name=f"{a}-{rng.randint(0, 9)}"))
        elif roll < 0.35:
            events.append(EntityRetracted(id=a))
        elif roll < 0.4:
            merge = EntityMerged(id=a, into=b) if rng.random() < 0.6 else EntityUnmerged(id=a, into=b)
            events.append(merge)
        elif roll < 0.6:
            events.append(EdgeAdded(source=a, target=b, type="refines", description=str(rng.randint(0, 9))))
        elif roll < 0.68:
            events.append(EdgeRemoved(source=a, target=b, type="refines"))
        elif roll < 0.82:
            events.append(
                CandidateProposed(
                    a=a,
                    b=b,
                    score=round(rng.uniform(0.5, 1), 3),
                    model="m",
                    kind=rng.choice(["link", "duplicate"]),
                    reason=str(rng.randint(0, 9)),
                )
            )
        elif roll < 0.87:
            events.append(CandidateWithdrawn(a=a, b=b, reason=str(rng.randint(0, 9))))
        elif roll < 0.92:
            events.append(CandidateAccepted(a=a, b=b, edge_type="refines", source=a, target=b, by="ada"))
        elif roll < 0.97:
            events.append(CandidateRejected(a=a, b=b, by="bob", reason=str(rng.randint(0, 9))))
        else:
            events.append(CandidateUnrejected(a=a, b=b, by="bob"))
    return events  # fmt: skip


def push(redis_client: redis.Redis, stream: str, events: list[Frozen], per_entry: int = 7) -> None:
    for i in range(0, len(events), per_entry):
        append(redis_client, stream, *events[i : i + per_entry])


def test_events_become_journal_read_model_and_tracking(engine: Engine, redis_client: redis.Redis, stream: str) -> None:
    c = consumer(redis_client, stream)
    last, _ = append(
        redis_client,
        stream,
        EntityUpserted(id="paper:p", type="paper", name="P", attributes={"year": 2024}),
        EntityUpserted(id="quote:q", type="quote", name="Q"),
        EdgeAdded(source="paper:p", target="quote:q", type="introduces"),
    )
    assert not c.reached(last)
    drain(c, engine)
    assert c.reached(last)
    assert count(engine, "SELECT count(*) FROM journal") == 3
    assert count(engine, "SELECT count(*) FROM entities WHERE version = 1") == 2
    assert count(engine, "SELECT count(*) FROM edges WHERE NOT removed") == 1
    assert (
        count(engine, f"SELECT events FROM projection_tracking WHERE consumer = 'c1' AND last_stream_id = '{last}'")
        == 3
    )


def test_redelivery_changes_nothing(engine: Engine, redis_client: redis.Redis, stream: str) -> None:
    c = consumer(redis_client, stream)
    push(redis_client, stream, sample_history(random.Random(1), 60))
    entries = c.read_new(1000, block_ms=10)
    events = [e for evs in projecting.decode(entries, c, projecting.BatchResult()).values() for e in evs]
    # A crash after commit and before XACK: the same entries arrive again.
    projection_store.project(engine, events, "c1", entries[-1][0])
    before = snapshot(engine)
    result = projecting.handle(c.own_pending(1000), engine=engine, consumer=c)
    assert result.entries == len(entries) and result.new_events == 0
    assert snapshot(engine) == before
    assert count(engine, "SELECT count(*) FROM journal") == 60


@pytest.mark.parametrize("seed", range(12))
def test_several_consumers_in_any_order_equal_a_rebuild(
    engine: Engine, redis_client: redis.Redis, stream: str, seed: int
) -> None:
    rng = random.Random(seed)
    push(redis_client, stream, sample_history(rng))
    consumers = [consumer(redis_client, stream, f"c{i}") for i in range(3)]
    batches = []
    while True:
        c = rng.choice(consumers)
        entries = c.read_new(rng.randint(1, 6), block_ms=10)
        if not entries:
            break
        batches.append((c, entries))
    rng.shuffle(batches)  # commits land in an order unrelated to the stream's
    for c, entries in batches:
        projecting.handle(entries, engine=engine, consumer=c)
    live = snapshot(engine)
    assert live["entities"] and live["edges"] and live["candidates"]
    assert projection_store.rebuild(engine) == 300
    assert snapshot(engine) == live


def test_a_dead_consumers_pending_entries_are_reclaimed(engine: Engine, redis_client: redis.Redis, stream: str) -> None:
    dead, alive = consumer(redis_client, stream, "dead"), consumer(redis_client, stream, "alive")
    last, _ = append(redis_client, stream, EntityUpserted(id="concept:a", type="concept", name="A"))
    assert len(dead.read_new(10, block_ms=10)) == 1  # delivered, then the consumer dies
    assert alive.read_new(10, block_ms=10) == []
    reclaimed = alive.reclaim(min_idle_ms=0, count=10)
    assert [entry_id for entry_id, _ in reclaimed] == [last]
    projecting.handle(reclaimed, engine=engine, consumer=alive)
    assert alive.reached(last)
    assert count(engine, "SELECT count(*) FROM entities") == 1


def test_poison_goes_to_the_dead_letter_stream_and_the_rest_flows(
    engine: Engine, redis_client: redis.Redis, stream: str
) -> None:
    c = consumer(redis_client, stream)
    redis_client.xadd(stream, {"garbage": "1"})
    good, envelopes = append(
        redis_client,
        stream,
        EntityUpserted(id="concept:a", type="concept", name="A"),
        EntityUpserted(id="concept:b", type="concept", name="B"),
    )
    # Re-send the same events with the second one's contract broken.
    raw = [e.model_dump(mode="json") for e in envelopes]
    raw[1]["payload"].pop("name")
    redis_client.xadd(stream, {ENTRY_FIELD: orjson.dumps(raw)})
    drain(c, engine)
    dead = redis_client.xrange(f"{stream}:dead")
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert len(dead) == 2
    assert "undecodable entry" in reasons[0] and "breaks its contract" in reasons[1]
    assert count(engine, "SELECT count(*) FROM entities") == 2
    # The re-sent concept:a carries the same event id, so the journal dedupes it.
    assert count(engine, "SELECT version FROM entities WHERE id = 'concept:a'") == 1
    assert c.reached(good)
    assert redis_client.xpending(stream, "graph")["pending"] == 0


def test_text_postgres_cannot_store_is_dead_lettered_not_a_crash(
    engine: Engine, redis_client: redis.Redis, stream: str
) -> None:
    # Ingest refuses such text now, but entries appended before (or by another producer) must not stop
    # the projection: Postgres rejects NUL inside COPY, which raises psycopg's own errors.
    c = consumer(redis_client, stream)
    append(redis_client, stream, EntityUpserted(id="concept:nul", type="concept", name="a\x00b"))
    good, _ = append(redis_client, stream, EntityUpserted(id="concept:ok", type="concept", name="OK"))
    drain(c, engine)
    dead = redis_client.xrange(f"{stream}:dead")
    assert len(dead) == 1 and "rejected by Postgres" in dead[0][1][b"reason"].decode()
    assert count(engine, "SELECT count(*) FROM entities WHERE id = 'concept:ok'") == 1
    assert c.reached(good)
    assert redis_client.xpending(stream, "graph")["pending"] == 0


def test_entries_that_keep_killing_consumers_are_dead_lettered(
    engine: Engine, redis_client: redis.Redis, stream: str
) -> None:
    c = consumer(redis_client, stream)
    append(redis_client, stream, EntityUpserted(id="concept:a", type="concept", name="A"))
    c.read_new(10, block_ms=10)
    for _ in range(3):  # each reclaim counts as a delivery
        c.reclaim(min_idle_ms=0, count=10)
    kept = set_aside(c, c.reclaim(min_idle_ms=0, count=10), max_deliveries=3, last_error=None)
    assert kept == []
    assert redis_client.xlen(f"{stream}:dead") == 1
    assert redis_client.xpending(stream, "graph")["pending"] == 0


def test_rebuild_gives_exactly_the_live_state(engine: Engine, redis_client: redis.Redis, stream: str) -> None:
    c = consumer(redis_client, stream)
    push(redis_client, stream, sample_history(random.Random(3), 500), per_entry=11)
    drain(c, engine, batch=3)
    live = snapshot(engine)
    assert projection_store.rebuild(engine) == 500
    assert snapshot(engine) == live


def test_trimming_keeps_what_any_group_still_needs(engine: Engine, redis_client: redis.Redis, stream: str) -> None:
    graph_consumer = consumer(redis_client, stream)
    slow = consumer(redis_client, stream, name="s1", group="similarity")
    ids = [append(redis_client, stream, EntityUpserted(id=f"concept:t{i}", type="concept", name="T"))[0]
           for i in range(5)]  # fmt: skip
    assert trim(redis_client, stream) == 0  # neither group has read anything
    drain(graph_consumer, engine)
    assert trim(redis_client, stream) == 0  # the similarity group has not
    slow.read_new(3, block_ms=10)  # delivered 3, acked 1: the 2nd is still pending
    slow.ack([ids[0]])
    assert trim(redis_client, stream) == 1
    assert [e.decode() for e, _ in redis_client.xrange(stream)] == ids[1:]
    slow.ack(ids[1:3])
    slow.ack([e for e, _ in slow.read_new(10, block_ms=10)])
    assert trim(redis_client, stream) == 4 and redis_client.xlen(stream) == 0
    assert count(engine, "SELECT count(*) FROM journal") == 5  # the journal still has every event


def counted(engine: Engine) -> dict[str, Any]:
    """What /v1/stats would count with count(*)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT type, count(*), count(*) FILTER (WHERE status = 'active') FROM entities "
                                 "WHERE version > 0 GROUP BY type")).all()  # fmt: skip
        return {
            "entities": {str(t): int(n) for t, n, _ in rows},
            "active_entities": sum(int(a) for _, _, a in rows),
            "edges": int(conn.execute(text("SELECT count(*) FROM edges WHERE NOT removed")).scalar_one()),
            "journal_events": int(conn.execute(text("SELECT count(*) FROM journal")).scalar_one()),
        }


def maintained(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        found = queries.stats(conn)
    return {k: found[k] for k in ("entities", "active_entities", "edges", "journal_events")}


def test_the_status_counters_are_maintained_through_changes_folds_and_a_rebuild(
    engine: Engine, redis_client: redis.Redis, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = consumer(redis_client, stream)
    history = sample_history(random.Random(5), 400)
    push(redis_client, stream, history[:200])
    drain(c, engine, batch=4)
    assert maintained(engine) == counted(engine) and counted(engine)["journal_events"] == 200
    monkeypatch.setattr(queries, "FOLD_AFTER", 3)  # the next read folds the deltas into one row per key
    assert maintained(engine) == counted(engine)
    assert count(engine, "SELECT count(*) FROM stat_deltas") <= 2 * 15 + 2  # folded
    push(redis_client, stream, history[200:])
    drain(c, engine, batch=7)
    assert maintained(engine) == counted(engine)
    assert projection_store.rebuild(engine) == 400  # TRUNCATE resets the keys; the replay counts again
    assert maintained(engine) == counted(engine)
