"""The one place that wires ingest's dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from platograph import ontology
from platograph.redis_clients import async_redis
from services.ingest.adapters.event_log import EventLog, RedisEventLog
from services.ingest.settings import IngestSettings


@dataclass
class Ingest:
    settings: IngestSettings
    ontology: ontology.Ontology
    log: EventLog


def bootstrap(settings: IngestSettings | None = None, log: EventLog | None = None) -> Ingest:
    """Real adapters unless fakes are passed in."""
    settings = settings or IngestSettings()
    if log is None:
        log = RedisEventLog(async_redis(settings.redis_url), settings.stream)
    return Ingest(settings=settings, ontology=ontology.load(settings.ontology), log=log)
