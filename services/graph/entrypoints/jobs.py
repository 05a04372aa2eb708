"""The graph's RQ jobs (top-level functions, JSON payloads)."""

from __future__ import annotations

from platograph.database import make_engine
from platograph.settings import DatabaseSettings
from services.graph.adapters.projection_store import rebuild


def rebuild_read_model() -> int:
    """Job: recreate the graph read model from the journal; returns events replayed."""
    settings = DatabaseSettings()
    engine = make_engine(settings.database_url, prepared_statements=settings.db_prepared_statements)
    try:
        return rebuild(engine)
    finally:
        engine.dispose()
