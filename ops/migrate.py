"""Every service's migrations, in one step (`platograph migrate`, and `platograph up` before it starts)."""

from __future__ import annotations

from services.access.adapters import migrations as access_migrations
from services.graph.adapters import migrations as graph_migrations
from services.webhooks.adapters import migrations as webhook_migrations


def upgrade_all(database_url: str) -> None:
    """Bring each service's tables to their newest schema (safe to repeat)."""
    graph_migrations.upgrade(database_url)
    webhook_migrations.upgrade(database_url)
    access_migrations.upgrade(database_url)
