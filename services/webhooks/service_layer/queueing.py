"""Queueing the delivery and wake jobs (RQ, JSON arguments): their names, ids and options."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from rq import Retry

from services.webhooks.bootstrap import Webhooks

BATCH = 50
#: The RQ jobs that send a batch and that wake a backed-off endpoint, named (the entry point imports this
#: module, not the other way round).
DELIVER = "services.webhooks.entrypoints.jobs.deliver"
WAKE = "services.webhooks.entrypoints.jobs.wake"
ANY_ATTEMPT = 1_000_000  # a job a person asked for sends whatever attempt a delivery is at
NAMESPACE = uuid.UUID("0c8f1d8e-4a4b-4f5e-9d7e-3f1c2b6a9e21")


def job_id(delivery_ids: Sequence[uuid.UUID], attempt: int) -> str:
    """The same batch at the same attempt gets the same job id (a dispatcher that repeats itself)."""
    return f"wh-{uuid.uuid5(NAMESPACE, ','.join(sorted(map(str, delivery_ids))))}-{attempt}"


def enqueue(
    wh: Webhooks, delivery_ids: Sequence[uuid.UUID], attempt: int, endpoint: str, *, delay: float = 0.0,
    tag: str = "",
) -> None:  # fmt: skip
    """Queue one job for a batch of one endpoint's deliveries (after `delay` s, through RQ's scheduler)."""
    ids = [str(i) for i in delivery_ids]
    options: dict[str, Any] = {
        "job_id": job_id(delivery_ids, attempt) + tag,
        # A batch stops taking new sends after one HTTP timeout, so two bound it; the job's own limit
        # only catches a stuck worker.
        "job_timeout": int(2 * wh.settings.webhook_timeout_s) + 5,
        "retry": Retry(max=3, interval=[2, 10, 60]),
        "result_ttl": 600,
        "failure_ttl": 7 * 24 * 3600,
        "description": f"webhook deliveries ({len(ids)}) attempt {attempt + 1}",
    }
    if delay > 0:
        wh.queue.enqueue_in(timedelta(seconds=delay), DELIVER, ids, attempt, endpoint, **options)
    else:
        wh.queue.enqueue(DELIVER, ids, attempt, endpoint, **options)
