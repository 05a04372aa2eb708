"""name search: trigram indexes on entity names and texts, so `?q=` reads the index, not every text

pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it. The indexes are built
CONCURRENTLY: writes to entities go on meanwhile.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

from platograph.migrating import concurrently

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    concurrently("ix_entities_name_trgm", "ON entities USING gin (name gin_trgm_ops)")
    concurrently("ix_entities_text_trgm", "ON entities USING gin (text gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_entities_text_trgm")
    op.execute("DROP INDEX IF EXISTS ix_entities_name_trgm")
