"""owners: a subscription belongs to the owner of the API key that made it (none for older ones: admin only)

Revision ID: 0002
Revises: 0001
"""
from alembic import op

from platograph.migrating import concurrently
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_subscriptions", sa.Column("owner", sa.Text(), nullable=True))
    concurrently("ix_webhook_subscriptions_owner", "ON webhook_subscriptions (owner, id)")


def downgrade() -> None:
    op.drop_index("ix_webhook_subscriptions_owner", table_name="webhook_subscriptions")
    op.drop_column("webhook_subscriptions", "owner")
