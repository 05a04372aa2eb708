"""staged pairs: what a new model would propose, written by the similarity service's diff shards

Scratch rows, not a projection of the journal: a re-embed's diff shards stage the pairs the new model
proposes here (a pair found from both of its sides is one row), and the diff is then counted in SQL
against the candidates users see, so no process holds a corpus's pairs in memory. Rows are dropped when
the job ends; a lost table only means the shards run again.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE UNLOGGED TABLE staged_pairs (
                    tag text NOT NULL, a text NOT NULL, b text NOT NULL, score real NOT NULL,
                    PRIMARY KEY (tag, a, b))""")


def downgrade() -> None:
    op.execute("DROP TABLE staged_pairs")
