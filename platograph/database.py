"""Engines and pools on PostgreSQL, made one way.

psycopg prepares a statement on a connection once it has run it five times. Behind PgBouncer in
transaction mode (Debian's 1.18; 1.21+ can track them) the next transaction may get another server
connection, where that prepared statement does not exist: with `PLATOGRAPH_DB_PREPARED_STATEMENTS=false`
nothing is prepared.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, text

from platograph.settings import sqlalchemy_url


def psycopg_options(prepared_statements: bool) -> dict[str, Any]:
    """Connection options for psycopg itself (a pool's `kwargs`, an engine's `connect_args`)."""
    return {} if prepared_statements else {"prepare_threshold": None}


def make_engine(url: str, *, prepared_statements: bool = True, **options: Any) -> Engine:
    return create_engine(sqlalchemy_url(url), connect_args=psycopg_options(prepared_statements), **options)


def ping_database(engine: Engine) -> None:
    """Raise unless the database answers a query (a readiness check)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
