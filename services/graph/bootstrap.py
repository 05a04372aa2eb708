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
    consumer: StreamConsumer
    ontology: ontology.Ontology

    def close(self) -> None:
        """Release database and Redis connections."""
        self.engine.dispose()
        self.consumer.client.close()


def bootstrap(settings: GraphSettings | None = None) -> Graph:
    """Real adapters built from settings."""
    settings = settings or GraphSettings()
    engine = create_engine(settings.database_url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    consumer = StreamConsumer(
        redis.Redis.from_url(settings.redis_url),
        stream=settings.stream,
        group=settings.group,
        consumer=settings.consumer,
        dead_letter_stream=settings.dead_letter_stream,
    )
    return Graph(settings=settings, engine=engine, consumer=consumer, ontology=ontology.load(settings.ontology))
