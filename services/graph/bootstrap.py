"""The one place that wires the graph service's dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from platograph import ontology
from platograph.database import make_engine
from platograph.redis_clients import sync_redis
from platograph.stream import StreamConsumer
from services.graph.adapters import projection_store
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

    def view_reader(self) -> ViewReader:
        """A reader for the neighborhood view, for one app: its pool is opened on the loop that serves it."""
        return ViewReader(self.settings.database_url, self.ontology, size=CONNECTIONS,
                          prepared_statements=self.settings.db_prepared_statements)  # fmt: skip

    def close(self) -> None:
        """Release database and Redis connections."""
        self.engine.dispose()
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
    return Graph(
        settings=settings,
        engine=engine,
        consumer=consumer,
        ontology=ontology.load(settings.ontology),
    )
