"""Waking a backed-off endpoint (the wake job that backoff.schedule_wake queues): once its breaker's pause is
over, one parked batch probes it; if the endpoint answers, every parked batch is queued again (the
endpoint's concurrency limit paces them); if not, the breaker's longer pause gets its own wake job."""

from __future__ import annotations

import time

from services.webhooks.bootstrap import Webhooks
from services.webhooks.service_layer.backoff import schedule_wake
from services.webhooks.service_layer.delivery import attempt_batch
from services.webhooks.service_layer.queueing import enqueue

RELEASE_CHUNK = 500  # parked batches taken from Redis per call


def wake(wh: Webhooks, endpoint: str) -> str:
    until = wh.breaker.open_until(endpoint)
    result = ""
    if until is not None:
        if until > time.time():  # woken early: a failed probe made the pause longer meanwhile
            schedule_wake(wh, endpoint)
            return "not due yet"
        probe = wh.breaker.unpark(endpoint, 1)
        if not probe:
            return "nothing parked"
        ids, attempt = probe[0]
        result = attempt_batch(wh, ids, attempt, endpoint) + "; "
        # Still down, or another job probing, or this probe sent nothing: attempt_batch has scheduled the
        # next wake already (through park, or when it released the probe).
        if wh.breaker.open_until(endpoint) is not None:
            return f"{result}still backed off"
    return f"{result}released {release(wh, endpoint)} parked batches"


def release(wh: Webhooks, endpoint: str) -> int:
    """Queue every parked batch of an endpoint that answers again."""
    released, tag = 0, f"-woken-{int(time.time())}"
    while batches := wh.breaker.unpark(endpoint, RELEASE_CHUNK):
        for ids, attempt in batches:
            enqueue(wh, ids, attempt, endpoint, tag=tag)
        released += len(batches)
    return released
