"""candidates

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
    op.create_table(
        "candidates",
        sa.Column("a", sa.Text(), nullable=False),
        sa.Column("b", sa.Text(), nullable=False),
        sa.Column("a_type", sa.Text(), nullable=False),
        sa.Column("b_type", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("suggested_edge", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=False),
        sa.Column("position", sa.Numeric(precision=30, scale=0), nullable=False),
        sa.Column("state_position", sa.Numeric(precision=30, scale=0), nullable=False),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("decision_position", sa.Numeric(precision=30, scale=0), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("a", "b"),
    )
    op.create_index("ix_candidates_status_score", "candidates", ["status", "score"], unique=False)
    op.create_index("ix_candidates_b", "candidates", ["b"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_candidates_b", table_name="candidates")
    op.drop_index("ix_candidates_status_score", table_name="candidates")
    op.drop_table("candidates")
