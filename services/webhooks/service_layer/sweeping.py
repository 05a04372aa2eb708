"""Deliveries left pending with no job to send them (a worker killed after RQ's own retries, a queue
lost with its Redis) are found by age and queued again, so none stays pending for good."""

from __future__ import annotations

import logging
import threading
import uuid

from rq.job import Job

from services.webhooks.adapters import store
from services.webhooks.bootstrap import Webhooks
from services.webhooks.service_layer.queueing import ANY_ATTEMPT, BATCH, enqueue, job_id

log = logging.getLogger(__name__)
SWEEP_LIMIT = 10_000  # rows a sweep looks at; the next sweep takes the rest


def sweep(wh: Webhooks) -> int:
    """Queue a job for each batch of stuck deliveries (not one already queued by an earlier sweep, and not
    an endpoint its breaker holds back). Returns the deliveries queued."""
    with wh.engine.connect() as conn:
        found = store.stuck(conn, wh.settings.webhook_stuck_after_s, SWEEP_LIMIT)
    by_endpoint: dict[str, list[uuid.UUID]] = {}
    for delivery_id, subscription in found:
        by_endpoint.setdefault(subscription, []).append(delivery_id)
    queued = 0
    for subscription, ids in by_endpoint.items():
        if wh.breaker.open_until(subscription) is not None:
            continue  # waiting on purpose
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            if not Job.exists(job_id(batch, ANY_ATTEMPT) + "-swept", connection=wh.redis):
                enqueue(wh, batch, ANY_ATTEMPT, subscription, tag="-swept")
                queued += len(batch)
    if queued:
        log.warning("%d pending deliveries had no job; queued again", queued)
    return queued


def run(wh: Webhooks, stop: threading.Event) -> None:
    """Sweep every `webhook_sweep_every_s` until stopped."""
    while not stop.wait(wh.settings.webhook_sweep_every_s):
        try:
            sweep(wh)
        except Exception:  # the next sweep tries again
            log.exception("sweeping stuck deliveries failed")
