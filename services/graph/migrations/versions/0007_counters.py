"""counters: the numbers /v1/stats shows, maintained as the read model changes instead of counted

Statement-level triggers with transition tables add one row of deltas per key and statement (no hot row
that concurrent projectors would queue on); /v1/stats sums them, and folds them into one row per key now
and then. TRUNCATE (a rebuild) resets its table's keys.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ENTITY_KEYS = """
  INSERT INTO stat_deltas (key, delta)
  SELECT k, sign * count(*) FROM (
    SELECT 'entities:' || type AS k FROM {rows} WHERE version > 0
    UNION ALL SELECT 'active:' || type FROM {rows} WHERE version > 0 AND status = 'active'
  ) AS keys GROUP BY k;
"""


def upgrade() -> None:
    # Locked up front in the order projectors take them (journal, entities, edges): taken one trigger at a
    # time, a projector holding one while it waits for another would deadlock with this.
    op.execute("LOCK TABLE journal, entities, edges IN SHARE ROW EXCLUSIVE MODE")
    op.execute("CREATE TABLE stat_deltas (key text NOT NULL, delta bigint NOT NULL)")
    op.execute("CREATE INDEX ix_stat_deltas_key ON stat_deltas (key)")
    for table, body in (
        ("entities", ENTITY_KEYS),
        ("edges", "INSERT INTO stat_deltas (key, delta) SELECT 'edges', sign * count(*) FROM {rows} "
                  "WHERE NOT removed HAVING count(*) > 0;"),
        ("journal", "INSERT INTO stat_deltas (key, delta) SELECT 'journal', sign * count(*) FROM {rows} "
                    "HAVING count(*) > 0;"),
    ):
        for op_name, parts in (("insert", [("new_rows", 1)]), ("update", [("old_rows", -1), ("new_rows", 1)]),
                               ("delete", [("old_rows", -1)])):
            statements = "\n".join(body.replace("sign", str(sign)).format(rows=rows) for rows, sign in parts)
            op.execute(f"""CREATE FUNCTION count_{table}_{op_name}() RETURNS trigger LANGUAGE plpgsql AS $$
                           BEGIN {statements} RETURN NULL; END $$""")
            tables = " ".join(f"{'OLD' if rows == 'old_rows' else 'NEW'} TABLE AS {rows}" for rows, _ in parts)
            op.execute(f"""CREATE TRIGGER count_{table}_{op_name} AFTER {op_name.upper()} ON {table}
                           REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION count_{table}_{op_name}()""")
        prefixes = "ARRAY['entities:%', 'active:%']" if table == "entities" else f"ARRAY['{table}']"
        op.execute(f"""CREATE FUNCTION count_{table}_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN DELETE FROM stat_deltas WHERE key LIKE ANY ({prefixes}); RETURN NULL; END $$""")
        op.execute(f"""CREATE TRIGGER count_{table}_truncate AFTER TRUNCATE ON {table}
                       FOR EACH STATEMENT EXECUTE FUNCTION count_{table}_truncate()""")
    # What is there already, counted once.
    op.execute("""INSERT INTO stat_deltas (key, delta)
                  SELECT 'entities:' || type, count(*) FROM entities WHERE version > 0 GROUP BY type
                  UNION ALL SELECT 'active:' || type, count(*) FROM entities
                             WHERE version > 0 AND status = 'active' GROUP BY type
                  UNION ALL SELECT 'edges', count(*) FROM edges WHERE NOT removed
                  UNION ALL SELECT 'journal', count(*) FROM journal""")


def downgrade() -> None:
    for table in ("entities", "edges", "journal"):
        for op_name in ("insert", "update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS count_{table}_{op_name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS count_{table}_{op_name}()")
    op.execute("DROP TABLE stat_deltas")
