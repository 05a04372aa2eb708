"""Alembic, once for every service: each service keeps its own scripts and its own version table, so it
owns its tables and their history; `platograph migrate` runs every service's in turn.

Migrations are online: each commits on its own (transaction_per_migration), and what would hold a table
for long runs outside the schema transaction, in steps of its own (`concurrently`, `in_steps`): indexes
built CONCURRENTLY, backfills in short batches. Replicas that start together take turns on a session
advisory lock held by a connection of its own outside any transaction (an open transaction there would
make CREATE INDEX CONCURRENTLY wait for it), while the migrations commit as they go. A session lock does not
hold through PgBouncer in transaction mode: run `platograph migrate` against PostgreSQL itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, text

from platograph.settings import DatabaseSettings, sqlalchemy_url

LOCK = "platograph:migrations"
LOCK_POLL_S = 0.2


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
    with engine.connect() as holder, engine.connect() as connection:
        # Replicas that start together each migrate: they take turns, and each reads the version table
        # only once it holds the lock, so the later ones find the work done.
        holder = holder.execution_options(isolation_level="AUTOCOMMIT")
        # Polled, not waited for: a statement waiting on the lock holds a snapshot, which the holder's
        # CREATE INDEX CONCURRENTLY would wait for in turn.
        while not holder.execute(text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": LOCK}).scalar_one():
            time.sleep(LOCK_POLL_S)
        context.configure(
            connection=connection,
            target_metadata=metadata,
            compare_type=True,
            version_table=cfg.get_main_option("version_table") or "alembic_version",
            transaction_per_migration=True,
        )
        try:
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": LOCK})
    engine.dispose()


def concurrently(name: str, definition: str) -> None:
    """CREATE INDEX CONCURRENTLY `name` `definition` (what follows the name), outside the migration's
    transaction; an invalid one a crash left behind is dropped first. Writes go on while it builds."""
    from alembic import op

    with op.get_context().autocommit_block():
        bind = op.get_bind()
        invalid = bind.execute(text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:n)"),
                               {"n": name}).scalar()  # fmt: skip
        if invalid:
            bind.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
        bind.execute(text(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {definition}"))


def in_steps(step: list[str], keys: str, every: int, retries: int = 20) -> int:
    """Run the statements of `step` once per range of keys, each time in a transaction of its own outside
    the migration's (which is committed first), so the locks a step takes are held for that step only.
    The ranges hold about `every` of the values `keys` (a one-column query) gives; `:lo` and `:hi` bound a
    range in `step` (NULL for an open end). A step that meets a lock timeout or a deadlock is tried again.
    Returns the steps run."""
    from alembic import op
    from sqlalchemy.exc import DBAPIError

    with op.get_context().autocommit_block():
        bind = op.get_bind()
        every_nth = f"SELECT k FROM (SELECT k, row_number() OVER (ORDER BY k) AS r FROM ({keys}) q(k)) s "
        bounds = bind.execute(text(every_nth + "WHERE r % :every = 0 ORDER BY k"), {"every": every}).scalars().all()
        ends: list[Any] = [None, *(str(b) for b in bounds), None]
        for lo, hi in zip(ends, ends[1:], strict=False):
            for attempt in range(retries):
                bind.execute(text("BEGIN"))
                try:
                    for statement in step:
                        bind.execute(text(statement), {"lo": lo, "hi": hi} if ":lo" in statement else {})
                    bind.execute(text("COMMIT"))
                    break
                except DBAPIError as exc:  # 55P03 lock_not_available, 40P01 deadlock: another turn
                    bind.execute(text("ROLLBACK"))
                    if getattr(exc.orig, "sqlstate", None) not in ("55P03", "40P01") or attempt == retries - 1:
                        raise
    return len(ends) - 1
