"""Alembic environment of the access service's table (API keys)."""

from __future__ import annotations

from sqlmodel import SQLModel

from platograph.migrating import run_environment
from services.access.adapters import tables  # noqa: F401  (registers the table on the metadata)

run_environment(SQLModel.metadata)
