"""pending deliveries by when they are due: the sweep finds rows whose job was lost without reading the rest

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_pending_due", "webhook_deliveries",
        [sa.text("COALESCE(next_attempt_at, updated_at)")], postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_pending_due", table_name="webhook_deliveries")
