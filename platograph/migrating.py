"""Alembic, once for every service: each service keeps its own scripts and its own version table, so it
owns its tables and their history; `platograph migrate` runs every service's in turn."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, text

from platograph.settings import DatabaseSettings, sqlalchemy_url

LOCK = "platograph:migrations"


def config(scripts: Path, database_url: str, version_table: str) -> Config:
    """The Alembic configuration of one service's scripts against one database."""
    out = Config()
    out.set_main_option("script_location", str(scripts))
    out.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    out.set_main_option("version_table", version_table)
    return out


def upgrade(scripts: Path, database_url: str, version_table: str) -> None:
    """Apply every pending migration of one service (safe to run repeatedly)."""
    command.upgrade(config(scripts, database_url, version_table), "head")


def run_environment(metadata: MetaData) -> None:
    """The body of a service's Alembic `env.py`: migrate online, recording in the service's version table."""
    cfg = context.config
    url = cfg.get_main_option("sqlalchemy.url") or DatabaseSettings().database_url
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            compare_type=True,
            version_table=cfg.get_main_option("version_table") or "alembic_version",
        )
        with context.begin_transaction():
            # Replicas that start together each migrate: they take turns, and each reads the version table
            # only once it holds the lock, so the later ones find the work done. Released at commit.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": LOCK})
            context.run_migrations()
    engine.dispose()
