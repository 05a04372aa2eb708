"""RQ jobs (top-level functions, JSON payloads) and the worker process that runs them."""

from __future__ import annotations

import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer
from sqlalchemy import create_engine

from platograph.settings import CoreSettings, DatabaseSettings

QUEUE = "platograph"


def rebuild_read_model() -> int:
    """Job: recreate the graph read model from the journal; returns events replayed."""
    from services.graph.adapters.projection_store import rebuild

    engine = create_engine(DatabaseSettings().database_url)
    try:
        return rebuild(engine)
    finally:
        engine.dispose()


def queue(connection: redis.Redis) -> Queue:
    return Queue(QUEUE, connection=connection, serializer=JSONSerializer)


def work() -> None:
    """Run an RQ worker on the platograph queue until stopped."""
    connection = redis.Redis.from_url(CoreSettings().redis_url)
    Worker([queue(connection)], connection=connection, serializer=JSONSerializer).work(with_scheduler=True)
