"""journal partitions: the journal becomes a table partitioned by position range, a partition a month

What the journal held becomes its first partition, `journal_0`, attached for every position up to the
start of next month (its rows are not copied: a CHECK constraint proves the range, so the attach does not
scan again). Event ids must stay unique across partitions, which a partitioned table's own unique index
cannot say (it must include the position): `journal_ids` holds them, filled from the journal here and
first in every insert (projection_store.INSERT_JOURNAL). The row counters of 0007 move to the parent
table, where inserts now land. Months ahead get their partitions here and from the projector, every trim
turn (services/graph/adapters/partitions.py); `journal_default` takes any position none covers.

Revision ID: 0009
Revises: 0008
"""
from datetime import UTC, datetime

from alembic import op

from services.graph.adapters import partitions

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = """event_id uuid NOT NULL, position numeric(30, 0) NOT NULL, stream_id text NOT NULL, type text NOT NULL,
    schema_version integer NOT NULL, occurred_at timestamptz NOT NULL, producer text NOT NULL,
    payload jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(), actor jsonb"""
COUNTERS = ("insert", "update", "delete", "truncate")
TRANSITIONS = {"insert": "REFERENCING NEW TABLE AS new_rows", "update": "REFERENCING OLD TABLE AS old_rows "
               "NEW TABLE AS new_rows", "delete": "REFERENCING OLD TABLE AS old_rows", "truncate": ""}  # fmt: skip


def _counters(table: str, drop_from: str | None) -> None:
    """The 0007 row counters on `table` (taken off `drop_from` first)."""
    for name in COUNTERS:
        if drop_from:
            op.execute(f"DROP TRIGGER count_journal_{name} ON {drop_from}")
        op.execute(f"CREATE TRIGGER count_journal_{name} AFTER {name.upper()} ON {table} {TRANSITIONS[name]} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION count_journal_{name}()")  # fmt: skip


def upgrade() -> None:
    now = datetime.now(UTC)
    bound = partitions.month_start(now.year, now.month + 1)
    op.execute("CREATE TABLE journal_ids (event_id uuid PRIMARY KEY, position numeric(30, 0) NOT NULL)")
    op.execute("INSERT INTO journal_ids (event_id, position) SELECT event_id, position FROM journal")
    op.execute("ALTER TABLE journal RENAME TO journal_0")
    op.execute("ALTER INDEX journal_pkey RENAME TO journal_0_pkey")
    op.execute("ALTER INDEX journal_position_key RENAME TO journal_0_position_key")
    op.execute("ALTER INDEX ix_journal_type RENAME TO ix_journal_0_type")
    op.execute(f"ALTER TABLE journal_0 ADD CONSTRAINT journal_0_range CHECK (position < {bound})")
    op.execute(f"CREATE TABLE journal ({COLUMNS}) PARTITION BY RANGE (position)")
    op.execute(f"ALTER TABLE journal ATTACH PARTITION journal_0 FOR VALUES FROM (MINVALUE) TO ({bound})")
    op.execute("ALTER TABLE journal_0 DROP CONSTRAINT journal_0_range")  # the partition bound says it now
    op.execute("CREATE TABLE journal_default PARTITION OF journal DEFAULT")
    # Built on the parent, these take over journal_0's equivalent indexes instead of building new ones.
    op.execute("ALTER TABLE journal ADD CONSTRAINT journal_position_key UNIQUE (position)")
    op.execute("CREATE INDEX ix_journal_type ON journal (type)")
    _counters("journal", drop_from="journal_0")
    partitions.ensure(op.get_bind(), now)


def downgrade() -> None:
    op.execute("CREATE TABLE journal_flat (LIKE journal INCLUDING DEFAULTS)")
    op.execute("INSERT INTO journal_flat SELECT * FROM journal")
    op.execute("DROP TABLE journal")  # its partitions and their triggers with it
    op.execute("ALTER TABLE journal_flat RENAME TO journal")
    op.execute("ALTER TABLE journal ADD CONSTRAINT journal_pkey PRIMARY KEY (event_id)")
    op.execute("ALTER TABLE journal ADD CONSTRAINT journal_position_key UNIQUE (position)")
    op.execute("CREATE INDEX ix_journal_type ON journal (type)")
    _counters("journal", drop_from=None)
    op.execute("DROP TABLE journal_ids")
