"""webhooks: moved to the webhooks service's own migrations (services/webhooks/migrations); kept as a
step so that databases stamped 0003 or 0004 keep their history

Revision ID: 0003
Revises: 0002
"""

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
