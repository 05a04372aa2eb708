"""rates: a key may carry its own request budgets (reads, and everything else)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("read_rate", sa.Text(), nullable=True))
    op.add_column("api_keys", sa.Column("write_rate", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("api_keys", "write_rate")
    op.drop_column("api_keys", "read_rate")
