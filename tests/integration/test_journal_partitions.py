"""The journal is partitioned by position, a month a partition (migration 0009): events land in their
month's partition, an event id stays unique across partitions, months ahead are made by the projector, and
a journal from before the migration becomes its first partition, every row kept."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, text

from ops import migrate
from platograph import migrating
from platograph.contracts import EntityUpserted, new_envelope
from platograph.database import make_engine
from platograph.positions import event_position
from services.graph.adapters import migrations as graph_migrations
from services.graph.adapters import partitions, projection_store
from services.graph.domain.projection import PositionedEvent
from tests import servers

pytestmark = pytest.mark.integration


def at(ms: int, payload: EntityUpserted, event_id: uuid.UUID | None = None) -> PositionedEvent:
    envelope = new_envelope(payload, producer="test")
    if event_id is not None:
        envelope = envelope.model_copy(update={"event_id": event_id})
    return PositionedEvent(event_position(f"{ms}-0", 0), f"{ms}-0", envelope)


def month_ms(year: int, month: int, day: int = 2) -> int:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)


def where(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tableoid::regclass::text, count(*) FROM journal GROUP BY 1"))
        return {name: int(n) for name, n in rows}


def test_events_land_in_their_months_partition_and_an_id_stays_unique_across_them(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        partitions.ensure(conn)  # what the projector does at start and every hour
        have = partitions.existing(conn)
        kind = conn.execute(text("SELECT partstrat FROM pg_partitioned_table "
                                 "WHERE partrelid = 'journal'::regclass")).scalar_one()  # fmt: skip
    assert kind == "r"
    assert {"journal_0", "journal_default", partitions.name(now.year, now.month + 2)} <= have
    in_two_months = at(month_ms(now.year, now.month + 2), EntityUpserted(id="claim:later", type="claim", name="L"))
    far = at(month_ms(now.year + 3, now.month), EntityUpserted(id="claim:far", type="claim", name="F"))
    assert projection_store.project(engine, [in_two_months, far], "test", far.stream_id) == 2
    assert where(engine) == {partitions.name(now.year, now.month + 2): 1, "journal_default": 1}
    # The same event delivered again at another position (a later month's entry) is not journaled twice.
    again = at(month_ms(now.year, now.month + 1), EntityUpserted(id="claim:later", type="claim", name="L"),
               event_id=in_two_months.envelope.event_id)  # fmt: skip
    assert projection_store.project(engine, [again], "test", again.stream_id) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM journal")).scalar_one() == 2
        counted = conn.execute(text("SELECT coalesce(sum(delta), 0) FROM stat_deltas WHERE key = 'journal'"))
        assert counted.scalar_one() == 2  # the row counters moved to the partitioned table


def test_partitions_are_made_ahead_and_months_already_covered_are_left(engine: Engine) -> None:
    now = datetime.now(UTC)
    later = datetime(now.year + 1, now.month, 15, tzinfo=UTC)
    with engine.begin() as conn:
        made = partitions.ensure(conn, later, ahead=1)
        assert made == [partitions.name(later.year, later.month), partitions.name(later.year, later.month + 1)]
        assert partitions.ensure(conn, later, ahead=1) == []  # made once
        assert partitions.ensure(conn, datetime(2000, 1, 1, tzinfo=UTC), ahead=0) == []  # inside journal_0
    with engine.begin() as conn:  # the test database is shared: the months made for the test go again
        for table in made:
            conn.execute(text(f"DROP TABLE {table}"))


def test_a_journal_from_before_the_migration_becomes_its_first_partition() -> None:
    with servers.external() as fresh:
        config = migrating.config(graph_migrations.SCRIPTS, fresh.database_url, graph_migrations.VERSION_TABLE)
        command.upgrade(config, "0008")
        engine = make_engine(fresh.database_url)
        try:
            with engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO journal (event_id, position, stream_id, type, schema_version, occurred_at, "
                    "producer, payload) SELECT gen_random_uuid(), g::numeric * 10^12, g || '-0', 'entity.upserted', "
                    "1, now(), 'test', '{}' FROM generate_series(1700000000000, 1700000000999) g"))  # fmt: skip
                before = conn.execute(text("SELECT sum(position), count(*) FROM journal")).one()
            migrate.upgrade_all(fresh.database_url)
            assert where(engine) == {"journal_0": 1000}
            with engine.connect() as conn:
                after = conn.execute(text("SELECT sum(position), count(*) FROM journal")).one()
                ids = conn.execute(text("SELECT count(*) FROM journal_ids j JOIN journal USING (event_id, position)"))
                assert tuple(after) == tuple(before) and ids.scalar_one() == 1000
                counted = conn.execute(text("SELECT sum(delta) FROM stat_deltas WHERE key = 'journal'")).scalar_one()
                assert counted == 1000
            command.downgrade(config, "0008")  # and back: one table again, every row kept
            with engine.connect() as conn:
                assert tuple(conn.execute(text("SELECT sum(position), count(*) FROM journal")).one()) == tuple(before)
                kind = conn.execute(text("SELECT count(*) FROM pg_partitioned_table")).scalar_one()
                assert kind == 0
        finally:
            engine.dispose()
