"""journal partitions: the journal becomes a table partitioned by position range, a partition a month

What the journal held becomes its first partition, `journal_0`, attached for every position up to the
start of next month (its rows are not copied: a CHECK constraint, validated beforehand without holding
writes, proves the range, so the attach does not scan). Event ids must stay unique across partitions,
which a partitioned table's own unique index cannot say (it must include the position): `journal_ids`
holds them: a trigger copies the ids of what is written from the migration's first step on, batches copy
what was there before, and after the swap every insert puts them there first
(projection_store.INSERT_JOURNAL). The swap itself is one short
transaction. The row counters of 0007 move to the parent
table, where inserts now land. Months ahead get their partitions here and from the projector, every trim
turn (services/graph/adapters/partitions.py); `journal_default` takes any position none covers.

Revision ID: 0009
Revises: 0008
"""
from datetime import UTC, datetime

from alembic import op
from sqlalchemy import text

from platograph.migrating import in_steps
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
    if op.get_bind().execute(text("SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'journal'::regclass")).first():
        return  # a run interrupted after its swap: done
    op.execute("CREATE TABLE IF NOT EXISTS journal_ids (event_id uuid PRIMARY KEY, position numeric(30, 0) NOT NULL)")
    op.execute("""CREATE OR REPLACE FUNCTION journal_ids_capture() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                  INSERT INTO journal_ids (event_id, position) SELECT event_id, position FROM new_rows
                  ON CONFLICT DO NOTHING; RETURN NULL; END $$""")
    op.execute("CREATE OR REPLACE TRIGGER journal_ids_capture AFTER INSERT ON journal REFERENCING NEW TABLE AS "
               "new_rows FOR EACH STATEMENT EXECUTE FUNCTION journal_ids_capture()")  # fmt: skip
    op.execute("ALTER TABLE journal DROP CONSTRAINT IF EXISTS journal_0_range")
    op.execute(f"ALTER TABLE journal ADD CONSTRAINT journal_0_range CHECK (position < {bound}) NOT VALID")
    # Outside the schema transaction: the check is validated (writes go on), the ids copied in batches.
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE journal VALIDATE CONSTRAINT journal_0_range")
    in_steps(["INSERT INTO journal_ids (event_id, position) SELECT event_id, position FROM journal "
              "WHERE (CAST(:lo AS numeric) IS NULL OR position >= CAST(:lo AS numeric)) "
              "AND (CAST(:hi AS numeric) IS NULL OR position < CAST(:hi AS numeric)) ON CONFLICT DO NOTHING"],
             "SELECT position FROM journal", 50_000)
    # The swap, in this migration's own (short) transaction: the journal becomes the first partition of a
    # partitioned journal.
    op.execute("LOCK TABLE journal IN ACCESS EXCLUSIVE MODE")
    op.execute("DROP TRIGGER journal_ids_capture ON journal")
    op.execute("DROP FUNCTION journal_ids_capture()")
    op.execute("ALTER TABLE journal RENAME TO journal_0")
    op.execute("ALTER INDEX journal_pkey RENAME TO journal_0_pkey")
    op.execute("ALTER INDEX journal_position_key RENAME TO journal_0_position_key")
    op.execute("ALTER INDEX ix_journal_type RENAME TO ix_journal_0_type")
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
