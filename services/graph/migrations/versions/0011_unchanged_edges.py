"""unchanged edges: an update of edges that changes no edge's keys leaves adjacency alone at once

An edge added again (the same source, type and target, later in the stream) updates its row: its position
and description move, nothing adjacency holds. 0008's update trigger found that out by computing the keys
the statement added and removed, five times over both transition tables (about 14 µs of Postgres time an
updated edge, and half the edge events of a bulk load with hubs are repeats). An edge's keys follow from
its source, type, target and whether it is removed, and an update's old and new rows are the same number of
distinct rows (the primary key): when the new rows hold no (source, type, target, removed) the old ones do
not, no key changed, and one set difference of the narrow rows says so.

Revision ID: 0011
Revises: 0010
"""
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from types import ModuleType

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UNCHANGED = """
  IF NOT EXISTS (SELECT source, type, target, removed FROM new_rows
                 EXCEPT SELECT source, type, target, removed FROM old_rows) THEN
    RETURN NULL;
  END IF;
"""


def _adjacency() -> ModuleType:
    """0008, whose update trigger this keeps and puts back (a revision's file name is not a module name)."""
    spec = spec_from_file_location("adjacency_0008", Path(__file__).with_name("0008_adjacency.py"))
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    adjacency = _adjacency()
    adjacency._function("adjacency_edges_update", UNCHANGED + adjacency.UPDATE_BODY)


def downgrade() -> None:
    adjacency = _adjacency()
    adjacency._function("adjacency_edges_update", adjacency.UPDATE_BODY)
