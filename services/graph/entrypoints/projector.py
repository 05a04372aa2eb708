"""The projector process: a loop over the stream that stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from platograph.consuming import consume
from platograph.runtime import tune_gc
from platograph.stream import Entry
from platograph.trimming import trim
from services.graph.adapters import partitions, projection_store
from services.graph.bootstrap import Graph, bootstrap
from services.graph.service_layer import projecting

log = logging.getLogger(__name__)
PARTITIONS_EVERY_S = 3600.0  # how often the journal's partitions for the months ahead are looked for


def run(graph: Graph | None = None, stop: threading.Event | None = None) -> None:
    """Project until stopped."""
    graph = graph or bootstrap()
    settings, consumer = graph.settings, graph.consumer
    tune_gc()
    log.info("projector %s reading %s as group %s", settings.consumer, settings.stream, settings.group)

    last_trim = [time.monotonic()]
    last_partitioning = [-PARTITIONS_EVERY_S]

    def handle(entries: list[Entry]) -> int:
        if time.monotonic() - last_partitioning[0] > PARTITIONS_EVERY_S:
            last_partitioning[0] = time.monotonic()
            with graph.engine.begin() as conn:
                if made := partitions.ensure(conn):
                    log.info("made journal partitions %s", ", ".join(made))
        result = projecting.handle(entries, engine=graph.engine, consumer=consumer, project=graph.project,
                                   announce=graph.announce)  # fmt: skip
        if result.dead_lettered:
            log.warning("dead-lettered %d item(s)", result.dead_lettered)
        if settings.trim_every_s and time.monotonic() - last_trim[0] > settings.trim_every_s:
            last_trim[0] = time.monotonic()
            removed = trim(consumer.client, settings.stream, keep=settings.group, maxlen=settings.stream_maxlen)
            log.info("trimmed %d stream entries (done with, or past the cap of %s)", removed, settings.stream_maxlen)
            if settings.consumer_retire_s:
                keep = [settings.consumer, projecting.REPLAY_CONSUMER]
                if gone := projection_store.forget_idle(graph.engine, settings.consumer_retire_s, keep):
                    log.info("forgot the tracking rows of idle projectors %s", ", ".join(gone))
        return result.entries

    consume(
        consumer,
        handle,
        stop or threading.Event(),
        batch=settings.batch_size,
        block_ms=settings.block_ms,
        claim_idle_ms=settings.claim_idle_ms,
        transient=lambda exc: isinstance(exc, OperationalError | RedisConnectionError),
        max_deliveries=settings.max_deliveries,
        retire_idle_s=settings.consumer_retire_s or None,
    )


def main() -> None:
    """Entry point of `platograph projector`."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    run(stop=stop)
