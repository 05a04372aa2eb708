"""actors: who caused each event (the API key's id and name), kept in the journal

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column with no default: a catalog change, no rewrite of the journal.
    op.add_column("journal", sa.Column("actor", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("journal", "actor")
