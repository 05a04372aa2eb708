"""The projector process: a loop over the stream that stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError
from tenacity import before_sleep_log, retry, retry_if_exception_type, wait_exponential

from services.graph import projector
from services.graph.bootstrap import Graph, bootstrap

log = logging.getLogger(__name__)


def run(graph: Graph | None = None, stop: threading.Event | None = None) -> None:
    """Project until stopped: first this consumer's own pending entries, then reclaimed and new ones."""
    graph = graph or bootstrap()
    stop = stop or threading.Event()
    settings, consumer = graph.settings, graph.consumer
    consumer.ensure_group()
    log.info("projector %s reading %s as group %s", settings.consumer, settings.stream, settings.group)

    @retry(
        retry=retry_if_exception_type((OperationalError, RedisConnectionError)),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=lambda _state: stop.is_set(),
        reraise=True,
        before_sleep=before_sleep_log(log, logging.WARNING),
    )
    def step(first: bool) -> int:
        entries = consumer.own_pending(settings.batch_size) if first else []
        if not entries:
            claimed = consumer.reclaim(settings.claim_idle_ms, settings.batch_size)
            entries = projector.drop_overdelivered(claimed, consumer, settings.max_deliveries)
        if not entries:
            entries = consumer.read_new(settings.batch_size, settings.block_ms)
        result = projector.handle(entries, engine=graph.engine, consumer=consumer)
        if result.dead_lettered:
            log.warning("dead-lettered %d item(s)", result.dead_lettered)
        return result.entries

    first = True
    while not stop.is_set():
        try:
            handled = step(first)
        except (OperationalError, RedisConnectionError):
            if stop.is_set():  # asked to stop while a server was unreachable: nothing was acked
                break
            raise
        first = first and handled > 0


def main() -> None:
    """Entry point of `platograph projector`."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    run(stop=stop)
