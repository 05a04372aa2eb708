"""delivery counters: deliveries per subscription and status, maintained as rows change instead of counted

Statement-level triggers with transition tables add one delta row per (subscription, status) and
statement, so concurrent workers never queue on one hot row; reads sum them and fold them into one row
per key now and then (adapters/store.py).

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DELTAS = """
  INSERT INTO webhook_delivery_counts (subscription_id, status, delta)
  SELECT subscription_id, status, sign * count(*) FROM {rows} GROUP BY subscription_id, status;
"""


def upgrade() -> None:
    # Locked up front, so the triggers and the count below see the same rows (writers wait for the count,
    # a scan of webhook_deliveries).
    op.execute("LOCK TABLE webhook_deliveries IN SHARE ROW EXCLUSIVE MODE")
    op.execute("""CREATE TABLE webhook_delivery_counts (
                    subscription_id text NOT NULL, status text NOT NULL, delta bigint NOT NULL)""")
    op.execute("CREATE INDEX ix_webhook_delivery_counts_sub ON webhook_delivery_counts (subscription_id)")
    for op_name, parts in (("insert", [("new_rows", 1)]), ("update", [("old_rows", -1), ("new_rows", 1)]),
                           ("delete", [("old_rows", -1)])):
        statements = "\n".join(DELTAS.replace("sign", str(sign)).format(rows=rows) for rows, sign in parts)
        op.execute(f"""CREATE FUNCTION count_deliveries_{op_name}() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN {statements} RETURN NULL; END $$""")
        tables = " ".join(f"{'OLD' if rows == 'old_rows' else 'NEW'} TABLE AS {rows}" for rows, _ in parts)
        op.execute(f"""CREATE TRIGGER count_deliveries_{op_name} AFTER {op_name.upper()} ON webhook_deliveries
                       REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION count_deliveries_{op_name}()""")
    op.execute("""CREATE FUNCTION count_deliveries_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN DELETE FROM webhook_delivery_counts; RETURN NULL; END $$""")
    op.execute("""CREATE TRIGGER count_deliveries_truncate AFTER TRUNCATE ON webhook_deliveries
                  FOR EACH STATEMENT EXECUTE FUNCTION count_deliveries_truncate()""")
    # What is there already, counted once (in the same transaction as the triggers: nothing slips between).
    op.execute("""INSERT INTO webhook_delivery_counts (subscription_id, status, delta)
                  SELECT subscription_id, status, count(*) FROM webhook_deliveries GROUP BY subscription_id, status""")


def downgrade() -> None:
    for op_name in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS count_deliveries_{op_name} ON webhook_deliveries")
        op.execute(f"DROP FUNCTION IF EXISTS count_deliveries_{op_name}()")
    op.execute("DROP TABLE webhook_delivery_counts")
