"""replays: the replay request that last set a delivery back to pending, so repeating that request (its
Idempotency-Key) re-sends nothing a second time

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_deliveries", sa.Column("replay_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "replay_id")
