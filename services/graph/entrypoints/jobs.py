"""The graph's RQ jobs (top-level functions, JSON payloads)."""

from __future__ import annotations

from sqlalchemy import create_engine

from platograph.settings import DatabaseSettings
from services.graph.adapters.projection_store import rebuild


def rebuild_read_model() -> int:
    """Job: recreate the graph read model from the journal; returns events replayed."""
    engine = create_engine(DatabaseSettings().database_url)
    try:
        return rebuild(engine)
    finally:
        engine.dispose()
