"""Bring a database's schema to the newest Alembic revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from platograph.settings import sqlalchemy_url

SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Apply every pending migration (safe to run repeatedly and from several processes)."""
    command.upgrade(alembic_config(database_url), "head")
