"""Alembic environment: the URL comes from DATABASE_URL via the graph settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from platograph.settings import DatabaseSettings
from services.graph.adapters import tables  # noqa: F401  (registers the tables on the metadata)

config = context.config
url = config.get_main_option("sqlalchemy.url") or DatabaseSettings().database_url  # type: ignore[call-arg]


def run() -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=SQLModel.metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
