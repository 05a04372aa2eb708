"""The one place that wires the graph service's dependencies."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Engine

from platograph import ontology
from platograph.database import make_engine
from platograph.redis_clients import sync_redis
from platograph.stream import StreamConsumer
from services.graph.adapters import projection_store
from services.graph.adapters.view_changes import Announcer
from services.graph.adapters.view_reader import ViewReader
from services.graph.settings import GraphSettings

#: Each pool (the view's, SQLAlchemy's for the other reads) holds more connections than the gateway keeps
#: open to us (16), so no request opens and closes a connection of its own.
CONNECTIONS = 20


@dataclass
class Graph:
    settings: GraphSettings
    engine: Engine
    consumer: StreamConsumer
    ontology: ontology.Ontology
    # Where the projector writes (a test passes one that fails, to see the dead-letter path).
    project: projection_store.Project = field(default=projection_store.project)
    # Tells the gateways whose neighborhood views a projected batch changed (None: nobody is told).
    announce: Announcer | None = None
    # The replicas entity reads go to, in turn (DATABASE_READ_URL); empty: the primary's engine.
    read_engines: list[Engine] = field(default_factory=list)
    _turn: Iterator[int] = field(default_factory=itertools.count)

    def read_engine(self) -> Engine:
        return self.read_engines[next(self._turn) % len(self.read_engines)] if self.read_engines else self.engine

    def view_reader(self) -> ViewReader:
        """A reader for the neighborhood view, for one app: its pool is opened on the loop that serves it."""
        return ViewReader(self.settings.database_url, self.ontology, size=CONNECTIONS,
                          prepared_statements=self.settings.db_prepared_statements,
                          read_urls=self.settings.database_read_urls)  # fmt: skip

    def close(self) -> None:
        """Release database and Redis connections."""
        self.engine.dispose()
        for replica in self.read_engines:
            replica.dispose()
        self.consumer.client.close()


def bootstrap(settings: GraphSettings | None = None) -> Graph:
    """Real adapters built from settings."""
    settings = settings or GraphSettings()
    # The other reads and the projector. No pre-ping: it costs a round trip per checkout. A connection
    # Postgres dropped fails one request (a 503, see the app's handler) and SQLAlchemy then invalidates
    # the pool.
    engine = make_engine(settings.database_url, prepared_statements=settings.db_prepared_statements,
                         pool_size=CONNECTIONS, max_overflow=20, pool_recycle=1800)  # fmt: skip
    consumer = StreamConsumer.member(
        sync_redis(settings.redis_url), settings, group=settings.group, consumer=settings.consumer
    )
    replicas = [make_engine(url, prepared_statements=settings.db_prepared_statements, pool_size=CONNECTIONS,
                            max_overflow=20, pool_recycle=1800) for url in settings.database_read_urls]  # fmt: skip
    return Graph(
        settings=settings,
        engine=engine,
        read_engines=replicas,
        consumer=consumer,
        announce=Announcer(engine, consumer.client, settings.stream),
        ontology=ontology.load(settings.ontology),
    )
