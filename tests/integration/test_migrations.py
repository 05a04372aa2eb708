"""Each service migrates its own tables, with its own version table, and one step migrates them all."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from ops import migrate
from platograph.settings import sqlalchemy_url
from services.access.adapters import migrations as access_migrations
from services.graph.adapters import migrations as graph_migrations
from services.webhooks.adapters import migrations as webhook_migrations
from tests import servers

pytestmark = pytest.mark.integration


def versions(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            table: conn.execute(text(f"SELECT version_num FROM {table}")).scalar_one()
            for table in (
                graph_migrations.VERSION_TABLE,
                webhook_migrations.VERSION_TABLE,
                access_migrations.VERSION_TABLE,
            )
        }


def test_each_service_records_its_own_version_and_a_repeat_changes_nothing(
    backend: servers.Servers, engine: Engine
) -> None:
    before = versions(engine)
    assert before == {"alembic_version": "0011", "alembic_version_webhooks": "0006", "alembic_version_access": "0002"}
    migrate.upgrade_all(backend.database_url)
    assert versions(engine) == before
    tables = set(inspect(engine).get_table_names())
    assert {"journal", "entities", "edges", "candidates", "projection_tracking"} <= tables
    assert {"webhook_subscriptions", "webhook_deliveries", "webhook_attempts"} <= tables


def test_a_database_whose_webhook_tables_came_from_the_graph_is_only_stamped(
    backend: servers.Servers, engine: Engine
) -> None:
    """Before each service had its own migrations, the graph's revision 0003 made the webhook tables: such a
    database has them and no webhooks version; upgrading keeps its rows and records the version."""
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {webhook_migrations.VERSION_TABLE}"))
        for column in ("owner", "created_by", "changed_by"):  # as the graph's 0003 made it
            conn.execute(text(f"ALTER TABLE webhook_subscriptions DROP COLUMN {column}"))
        conn.execute(text("ALTER TABLE webhook_deliveries DROP COLUMN replay_id"))
        conn.execute(text("DROP INDEX ix_webhook_deliveries_pending_due"))
        for op in ("insert", "update", "delete", "truncate"):  # the webhooks' 0006: maintained counts
            conn.execute(text(f"DROP TRIGGER count_deliveries_{op} ON webhook_deliveries"))
            conn.execute(text(f"DROP FUNCTION count_deliveries_{op}()"))
        conn.execute(text("DROP TABLE webhook_delivery_counts"))
        conn.execute(
            text(
                "INSERT INTO webhook_subscriptions (id, url, event_types, description, state, state_reason, secret)"
                " VALUES ('wh_old', 'http://example.org/', '[]', '', 'active', '', 's')"
            )
        )
    migrate.upgrade_all(backend.database_url)
    assert versions(engine)["alembic_version_webhooks"] == "0006"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM webhook_subscriptions")).scalars().all() == ["wh_old"]


def test_three_concurrent_migrations_of_a_fresh_database_all_succeed() -> None:
    """Several replicas starting at once each run `platograph migrate`: an advisory lock makes them take turns,
    so none trips over another's CREATE TABLE."""
    with servers.external() as fresh:
        env = os.environ | {"DATABASE_URL": fresh.database_url, "REDIS_URL": fresh.redis_url}
        runs = [subprocess.Popen([sys.executable, "-m", "ops.cli", "migrate"], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)]  # fmt: skip
        outputs = [(run.wait(120), run.communicate()[0]) for run in runs]
        assert all(code == 0 for code, _ in outputs), outputs
        engine = create_engine(sqlalchemy_url(fresh.database_url))
        try:
            assert versions(engine)["alembic_version"] == "0011"
        finally:
            engine.dispose()
