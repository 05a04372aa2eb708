"""The one place that wires the webhook service's dependencies."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache

import httpx
import redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import Engine

from platograph import internal
from platograph.background import LoopState
from platograph.database import make_engine
from platograph.redis_clients import sync_redis
from platograph.stream import StreamConsumer
from services.webhooks.adapters.breaker import Breaker
from services.webhooks.adapters.secrets import SecretBox
from services.webhooks.settings import WebhookSettings


@dataclass
class Webhooks:
    settings: WebhookSettings
    engine: Engine
    redis: redis.Redis
    queue: Queue
    box: SecretBox
    graph: httpx.Client
    consumer: StreamConsumer
    breaker: Breaker
    rng: random.Random = field(default_factory=random.Random)
    loop: LoopState = field(default_factory=lambda: LoopState("webhook-dispatcher"))

    def close(self) -> None:
        self.engine.dispose()
        self.graph.close()
        self.redis.close()


def bootstrap(settings: WebhookSettings | None = None, graph: httpx.Client | None = None) -> Webhooks:
    settings = settings or WebhookSettings()
    # RQ's server holds the queue and what delivery jobs share (breakers, slots, sent marks); the event
    # stream may be on a cluster.
    connection = sync_redis(settings.rq_url)
    return Webhooks(
        settings=settings,
        engine=make_engine(
            settings.database_url,
            prepared_statements=settings.db_prepared_statements,
            pool_size=5,
            max_overflow=10,
            pool_recycle=1800,
        ),  # fmt: skip
        redis=connection,
        queue=Queue(settings.webhook_queue, connection=connection, serializer=JSONSerializer),
        box=SecretBox(settings.webhook_key),
        graph=graph
        or httpx.Client(base_url=settings.graph_url, timeout=30, headers=internal.headers(settings.internal_token)),
        consumer=StreamConsumer.member(
            sync_redis(settings.redis_url), settings, group=settings.webhook_group, consumer=settings.webhook_consumer
        ),
        breaker=Breaker(
            connection,
            settings.webhook_queue,
            first_pause_s=settings.webhook_breaker_first_s,
            longest_pause_s=settings.webhook_breaker_longest_s,
        ),  # fmt: skip
    )


@cache
def worker_context() -> Webhooks:
    """The wiring a delivery job uses: built once per worker process."""
    return bootstrap()
