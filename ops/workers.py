"""The RQ worker and scheduler processes, and the general queue (jobs themselves live in each service's
entrypoints)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import redis
from rq import Queue, SimpleWorker, Worker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from platograph.redis_clients import sync_redis
from platograph.settings import CoreSettings

QUEUE = "platograph"


def queue(connection: redis.Redis) -> Queue:
    return Queue(QUEUE, connection=connection, serializer=JSONSerializer)


class QuickStop:
    """RQ's pubsub thread (commands such as kill-horse) waits up to 60 s for a message, and redis-py 8's
    `stop()` joins it without a limit: a worker asked to stop could take a minute. One second instead."""

    def subscribe(self: Any) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=1, daemon=True, exception_handler=self._pubsub_exception_handler
        )


class GeneralWorker(QuickStop, Worker):
    """RQ's forking worker, stopping promptly."""


class DeliveryWorker(QuickStop, SimpleWorker):
    """A worker that runs jobs in its own process. Nothing refreshes a job's heartbeat while it runs here,
    so its started entry lives for the job's timeout plus a margin; RQ's default margin (60 s) would let
    a job whose worker was killed wait a minute before its retry, this one lets it wait 10 s."""

    def get_heartbeat_ttl(self, job: Any) -> int:
        return int(job.timeout or 180) + 10


def work(
    queue_name: str = QUEUE, *, simple: bool = False, maintenance_s: int = 600, preload: Sequence[str] = ()
) -> None:
    """Run an RQ worker on one queue until stopped. A simple worker runs jobs in
    its own process instead of forking one per job: cheap jobs (webhook deliveries) keep their pools.
    `preload`: jobs modules imported (and their `warm()` run) before the first job, which would otherwise
    pay for them: a webhook worker's first job spent about a second importing its world."""
    load(preload)
    connection = sync_redis(CoreSettings().rq_url)
    worker_class = DeliveryWorker if simple else GeneralWorker
    worker = worker_class(
        [Queue(queue_name, connection=connection, serializer=JSONSerializer)],
        connection=connection,
        serializer=JSONSerializer,
        maintenance_interval=maintenance_s,
        # An idle worker blocks on the queue for worker_ttl - 15 s and only looks after the registries
        # (requeueing jobs of dead workers) between blocks; this makes it look every maintenance_s.
        worker_ttl=maintenance_s + 15,
    )
    # The scheduler runs as its own supervised process (`schedule`): a worker's scheduler is a forked
    # child that a kill -9 of the worker would orphan.
    worker.work(with_scheduler=False, logging_level="WARNING" if simple else "INFO")


def load(modules: Sequence[str]) -> None:
    """Import jobs modules and run the `warm()` of those that have one."""
    for name in modules:
        warm = getattr(importlib.import_module(name), "warm", None)
        if callable(warm):
            warm()


def schedule(queue_names: list[str]) -> None:
    """Run RQ's scheduler (delayed jobs and retries) for these queues in this process until stopped."""
    connection = sync_redis(CoreSettings().rq_url)
    scheduler = RQScheduler(queue_names, connection=connection, serializer=JSONSerializer, logging_level="WARNING")
    scheduler.work()  # type: ignore[no-untyped-call]
