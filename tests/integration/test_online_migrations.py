"""Every graph and webhooks migration runs while a writer and a reader run, and neither waits a second: from a database
at 0001 holding 100,000 entities, 300,000 edges and 300,000 journal events, each revision in turn, with a
writer adding an entity, an edge and a journal event a transaction and a reader looking entities and edges
up. The online backfills are also checked: the adjacency equals a computation from scratch, every
journal event id is in journal_ids, the retracted entities kept their base status."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from platograph import migrating
from platograph.database import make_engine
from services.graph.adapters import migrations as graph_migrations
from services.webhooks.adapters import migrations as webhook_migrations
from tests import servers
from tests.integration.test_hub_views import assert_adjacency_is_recomputed

pytestmark = pytest.mark.integration
ENTITIES, EDGES, EVENTS = 100_000, 300_000, 300_000
LIMIT_S = 1.0


def seed(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO entities (id, type, name, text, description, attributes, status, version, position, "
            "status_position, created_at, updated_at) SELECT 'claim:s' || g, 'claim', 'Seed ' || g, "
            "md5(g::text) || ' ' || md5((g * 7)::text), '', '{}', CASE WHEN g % 50 = 0 THEN 'retracted' "
            "ELSE 'active' END, 1, g, g, now(), now() FROM generate_series(1, :n) g"), {"n": ENTITIES})  # fmt: skip
        conn.execute(text(
            "INSERT INTO edges (source, type, target, description, removed, position, created_at) "
            "SELECT 'claim:s' || (g % :n + 1), 'supports', 'claim:s' || ((g::bigint * 7919) % :n + 1), '', "
            "g % 97 = 0, g, now() FROM generate_series(1, :m) g ON CONFLICT DO NOTHING"),
            {"n": ENTITIES, "m": EDGES})  # fmt: skip
        conn.execute(text(
            "INSERT INTO journal (event_id, position, stream_id, type, schema_version, occurred_at, producer, "
            "payload) SELECT gen_random_uuid(), (1700000000000 + g)::numeric * 1000000000000, "
            "(1700000000000 + g) || '-0', 'entity.upserted', 1, now(), 'seed', '{}' "
            "FROM generate_series(1, :k) g"), {"k": EVENTS})  # fmt: skip


@contextmanager
def running(write: Callable[[int], None], read: Callable[[random.Random], None]) -> Iterator[dict[str, list[float]]]:
    """`write(n)` and `read(rng)` called over and over on two threads for the duration; yields how long
    each call took (seconds), under "write" and "read". An error in either fails the test."""
    stop = threading.Event()
    latencies: dict[str, list[float]] = {"write": [], "read": []}
    errors: list[BaseException] = []

    def repeat(name: str, call: Callable[[int], None], pause: float) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            began = time.monotonic()
            try:
                call(n)
            except BaseException as exc:  # noqa: BLE001  (reported by the test)
                errors.append(exc)
                return
            latencies[name].append(time.monotonic() - began)
            time.sleep(pause)

    rng = random.Random(1)
    threads = [threading.Thread(target=repeat, args=("write", write, 0.01), daemon=True),
               threading.Thread(target=repeat, args=("read", lambda _: read(rng), 0.005), daemon=True)]  # fmt: skip
    for thread in threads:
        thread.start()
    try:
        yield latencies
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors


def load(engine: Engine) -> AbstractContextManager[dict[str, list[float]]]:
    """A writer taking the tables in the order the projector does (journal, entities, edges) and a reader
    of entities and edges."""

    def write(n: int) -> None:
        position = int(time.time() * 1000) * 10**12 + n
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO journal (event_id, position, stream_id, type, schema_version, occurred_at, producer, "
                "payload) VALUES (:e, :p, :s, 'entity.upserted', 1, now(), 'writer', '{}') ON CONFLICT DO NOTHING"),
                {"e": uuid.uuid4(), "p": position, "s": f"{position}-0"})  # fmt: skip
            conn.execute(text(
                "INSERT INTO entities (id, type, name, text, description, attributes, status, version, position, "
                "status_position, created_at, updated_at) VALUES (:id, 'claim', :id, 'w', '', '{}', 'active', 1, "
                ":p, :p, now(), now()) ON CONFLICT (id) DO UPDATE SET name = excluded.name"),
                {"id": f"claim:w{n}", "p": position})  # fmt: skip
            conn.execute(text(
                "INSERT INTO edges (source, type, target, description, removed, position, created_at) "
                "VALUES (:s, 'supports', :t, '', false, :p, now()) ON CONFLICT DO NOTHING"),
                {"s": f"claim:w{n}", "t": f"claim:s{n % ENTITIES + 1}", "p": position})  # fmt: skip

    def read(rng: random.Random) -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM edges WHERE source = :x"),
                         {"x": f"claim:s{rng.randrange(1, ENTITIES)}"}).scalar_one()  # fmt: skip
            conn.execute(text("SELECT name FROM entities WHERE id = :x"),
                         {"x": f"claim:s{rng.randrange(1, ENTITIES)}"}).first()  # fmt: skip

    return running(write, read)


def upgrade_under(
    config: Config, revisions: list[str], load: Callable[[], AbstractContextManager[dict[str, list[float]]]]
) -> dict[str, datetime]:
    """Upgrade one revision at a time, each under the load; fails when a write or a read waited LIMIT_S.
    Returns when each revision started."""
    worst: dict[str, tuple[float, float, float]] = {}
    started: dict[str, datetime] = {}
    for revision in revisions:
        with load() as latencies:
            time.sleep(0.2)  # both are running
            began, started[revision] = time.monotonic(), datetime.now(UTC)
            command.upgrade(config, revision)
            took = time.monotonic() - began
            time.sleep(0.2)
        assert latencies["write"] and latencies["read"], revision
        worst[revision] = (round(took, 2), max(latencies["write"]), max(latencies["read"]))
    print("worst (revision: seconds it ran, worst write, worst read):", worst)
    assert not {r: w for r, w in worst.items() if max(w[1:]) >= LIMIT_S}, worst
    return started


def test_each_migration_runs_while_a_writer_and_a_reader_wait_under_a_second() -> None:
    with servers.external() as fresh:
        config = migrating.config(graph_migrations.SCRIPTS, fresh.database_url, graph_migrations.VERSION_TABLE)
        command.upgrade(config, "0001")
        engine = make_engine(fresh.database_url)
        try:
            seed(engine)
            started = upgrade_under(config, [f"{n:04d}" for n in range(2, 10)], lambda: load(engine))
            # What the online steps filled, with writes landing between them, is what it should be. (The
            # writer writes the journal as code from before 0009 did, without journal_ids: what it wrote
            # while the swap held the journal, and after, is not the migration's to copy; every event
            # written before 0009 started is.)
            assert_adjacency_is_recomputed(engine)
            with engine.connect() as conn:
                missing = conn.execute(text(
                    "SELECT count(*) FROM journal j WHERE NOT EXISTS (SELECT 1 FROM journal_ids i "
                    "WHERE i.event_id = j.event_id) AND j.recorded_at < :started"),
                    {"started": started["0009"]}).scalar_one()  # fmt: skip
                retracted = conn.execute(text(
                    "SELECT count(*) FROM entities WHERE id LIKE 'claim:s%' AND base_status = 'retracted'"
                )).scalar_one()  # fmt: skip
            assert missing == 0 and retracted == ENTITIES // 50
        finally:
            engine.dispose()


DELIVERIES = 300_000


def delivering(engine: Engine) -> AbstractContextManager[dict[str, list[float]]]:
    """A webhook worker's writes (a new delivery, one set delivered) and the delivery log's reads."""

    def write(_: int) -> None:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO webhook_deliveries (id, subscription_id, event_id, event_type, stream_id, body, status) "
                "VALUES (:id, 'sub', :e, 'candidate.proposed', '1-0', '{}', 'pending')"),
                {"id": uuid.uuid4(), "e": uuid.uuid4()})  # fmt: skip
            conn.execute(text(
                "UPDATE webhook_deliveries SET status = 'delivered', updated_at = now() WHERE id = "
                "(SELECT id FROM webhook_deliveries WHERE status = 'pending' LIMIT 1)"))  # fmt: skip

    def read(_: random.Random) -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT id, status FROM webhook_deliveries WHERE subscription_id = 'sub' "
                              "ORDER BY created_at DESC LIMIT 20")).all()  # fmt: skip

    return running(write, read)


def test_each_webhooks_migration_runs_while_deliveries_are_written_and_read() -> None:
    with servers.external() as fresh:
        config = migrating.config(webhook_migrations.SCRIPTS, fresh.database_url, webhook_migrations.VERSION_TABLE)
        command.upgrade(config, "0001")
        engine = make_engine(fresh.database_url)
        try:
            with engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO webhook_subscriptions (id, url, event_types, description, state, state_reason, "
                    "secret) VALUES ('sub', 'https://example.org/hook', '[]', '', 'active', '', 's')"))  # fmt: skip
                conn.execute(text(
                    "INSERT INTO webhook_deliveries (id, subscription_id, event_id, event_type, stream_id, body, "
                    "status) SELECT gen_random_uuid(), 'sub', gen_random_uuid(), 'candidate.proposed', g || '-0', "
                    "'{}', CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'delivered' END FROM generate_series(1, :n) g"),
                    {"n": DELIVERIES})  # fmt: skip
            upgrade_under(config, [f"{n:04d}" for n in range(2, 7)], lambda: delivering(engine))
            with engine.connect() as conn:
                counted = conn.execute(text("SELECT sum(delta) FROM webhook_delivery_counts")).scalar_one()
                rows = conn.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar_one()
            assert counted == rows  # the counts the triggers keep start from the right number
        finally:
            engine.dispose()
