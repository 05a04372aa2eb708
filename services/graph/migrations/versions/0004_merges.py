"""merges (and when review decisions were made): merged_into and its own register; status becomes derived from base_status and merged_into

Online: the columns come with constant defaults (a catalog change, no rewrite); the few entities whose
base status is not 'active' are set in batches of their own transactions; the index is built
CONCURRENTLY.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

from platograph.migrating import concurrently, in_steps

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE entities ADD COLUMN IF NOT EXISTS base_status text NOT NULL DEFAULT 'active'")
    op.add_column("entities", sa.Column("merged_into", sa.Text(), nullable=True), if_not_exists=True)
    op.add_column("entities", sa.Column("merge_position", sa.Numeric(30, 0), server_default="0", nullable=False),
                  if_not_exists=True)
    op.add_column("candidates", sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
                  if_not_exists=True)
    in_steps(["UPDATE entities SET base_status = status WHERE status <> base_status "
              "AND (CAST(:lo AS text) IS NULL OR id >= :lo) AND (CAST(:hi AS text) IS NULL OR id < :hi)"],
             "SELECT id FROM entities WHERE status <> 'active'", 5000)
    concurrently("ix_entities_merged_into", "ON entities (merged_into) WHERE merged_into IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_entities_merged_into", table_name="entities")
    op.drop_column("candidates", "decided_at")
    op.drop_column("entities", "merge_position")
    op.drop_column("entities", "merged_into")
    op.drop_column("entities", "base_status")
