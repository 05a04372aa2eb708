"""merges (and when review decisions were made): merged_into and its own register; status becomes derived from base_status and merged_into

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
    op.add_column("entities", sa.Column("base_status", sa.Text(), nullable=True))
    op.execute("UPDATE entities SET base_status = status")
    op.alter_column("entities", "base_status", nullable=False, server_default="active")
    op.add_column("entities", sa.Column("merged_into", sa.Text(), nullable=True))
    op.add_column("entities", sa.Column("merge_position", sa.Numeric(30, 0), server_default="0", nullable=False))
    op.add_column("candidates", sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_entities_merged_into", "entities", ["merged_into"],
                    postgresql_where=sa.text("merged_into IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_entities_merged_into", table_name="entities")
    op.drop_column("candidates", "decided_at")
    op.drop_column("entities", "merge_position")
    op.drop_column("entities", "merged_into")
    op.drop_column("entities", "base_status")
