"""The one place that wires the graph service's dependencies."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy import Engine, create_engine

from platograph import ontology
from platograph.stream import StreamConsumer
from services.graph.settings import GraphSettings


@dataclass
class Graph:
    settings: GraphSettings
    engine: Engine
    #: Single-statement reads (the view): autocommit spares the BEGIN and ROLLBACK round trips.
    autocommit: Engine
    consumer: StreamConsumer
    ontology: ontology.Ontology

    def close(self) -> None:
        """Release database and Redis connections."""
        self.engine.dispose()
        self.consumer.client.close()


def bootstrap(settings: GraphSettings | None = None) -> Graph:
    """Real adapters built from settings."""
    settings = settings or GraphSettings()
    # No pre-ping: it costs a round trip per checkout on the hottest read. A connection Postgres dropped
    # fails one request (a 503, see the app's handler) and SQLAlchemy then invalidates the pool.
    # The pool holds as many connections as the gateway keeps open to us (16), so none is opened and
    # closed per request: overflow connections are discarded on return.
    engine = create_engine(settings.database_url, pool_size=20, max_overflow=20, pool_recycle=1800)
    consumer = StreamConsumer(
        redis.Redis.from_url(settings.redis_url),
        stream=settings.stream,
        group=settings.group,
        consumer=settings.consumer,
        dead_letter_stream=settings.dead_letter_stream,
    )
    return Graph(
        settings=settings,
        engine=engine,
        autocommit=engine.execution_options(isolation_level="AUTOCOMMIT"),
        consumer=consumer,
        ontology=ontology.load(settings.ontology),
    )
