"""The graph's RQ jobs (top-level functions, JSON payloads)."""

from __future__ import annotations

from platograph.database import make_engine
from platograph.redis_clients import sync_redis
from platograph.settings import CoreSettings, DatabaseSettings
from services.graph.adapters import queries
from services.graph.adapters.projection_store import rebuild
from services.graph.adapters.view_changes import Announcer

# A rebuild replays about 10,000 events a second on 2 cores (bench/README.md); a job gets twenty times
# that, and never less than a quarter of an hour: RQ's default (180 s) ended rebuilds of big journals.
SECONDS_PER_EVENT = 0.002
LEAST_TIMEOUT_S = 900


def rebuild_timeout_s(journal_events: int) -> int:
    """The time limit of a background rebuild of a journal of this many events."""
    return max(LEAST_TIMEOUT_S, int(journal_events * SECONDS_PER_EVENT))


def journal_size() -> int:
    """Events in the journal (the maintained counter: no count of the table)."""
    settings = DatabaseSettings()
    engine = make_engine(settings.database_url, prepared_statements=settings.db_prepared_statements)
    try:
        with engine.connect() as conn:
            return queries.counters(conn).get("journal", 0)
    finally:
        engine.dispose()


def rebuild_read_model() -> int:
    """Job: recreate the graph read model from the journal; returns events replayed. The gateways are then
    told that every view changed."""
    settings, core = DatabaseSettings(), CoreSettings()
    engine = make_engine(settings.database_url, prepared_statements=settings.db_prepared_statements)
    client = sync_redis(core.redis_url)
    try:
        replayed = rebuild(engine)
        Announcer(engine, client, core.stream).everything()
        return replayed
    finally:
        engine.dispose()
        client.close()
