"""who: the key that made a subscription, and the one that last changed it (patch, pause, resume, rotate)

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_subscriptions", sa.Column("created_by", sa.Text(), nullable=True))
    op.add_column("webhook_subscriptions", sa.Column("changed_by", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_subscriptions", "changed_by")
    op.drop_column("webhook_subscriptions", "created_by")
