"""Bring the access service's table to its newest Alembic revision."""

from __future__ import annotations

from pathlib import Path

from platograph import migrating

SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"
VERSION_TABLE = "alembic_version_access"


def upgrade(database_url: str) -> None:
    """Apply every pending migration of the access service (safe to run repeatedly)."""
    migrating.upgrade(SCRIPTS, database_url, VERSION_TABLE)
