"""pending deliveries by when they are due: the sweep finds rows whose job was lost without reading the rest

Revision ID: 0005
Revises: 0004
"""
from alembic import op

from platograph.migrating import concurrently

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Built CONCURRENTLY: deliveries go on being written meanwhile.
    concurrently("ix_webhook_deliveries_pending_due",
                 "ON webhook_deliveries (COALESCE(next_attempt_at, updated_at)) WHERE status = 'pending'")


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_pending_due", table_name="webhook_deliveries")
