"""Alembic environment of the graph's tables (journal, read model, tracking)."""

from __future__ import annotations

from sqlmodel import SQLModel

from platograph.migrating import run_environment
from services.graph.adapters import tables  # noqa: F401  (registers the tables on the metadata)

run_environment(SQLModel.metadata)
