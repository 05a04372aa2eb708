"""Bring the graph's tables to their newest Alembic revision."""

from __future__ import annotations

from pathlib import Path

from platograph import migrating

SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"
#: Alembic's default name: databases migrated before each service had its own scripts keep their history.
VERSION_TABLE = "alembic_version"


def upgrade(database_url: str) -> None:
    """Apply every pending migration of the graph (safe to run repeatedly and from several processes)."""
    migrating.upgrade(SCRIPTS, database_url, VERSION_TABLE)
