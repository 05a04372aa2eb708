"""The webhooks service's RQ jobs (top-level functions, JSON payloads)."""

from __future__ import annotations

import uuid

from services.webhooks.bootstrap import worker_context
from services.webhooks.service_layer import waking
from services.webhooks.service_layer.delivery import attempt_batch


def deliver(delivery_ids: list[str], attempt: int, endpoint: str | None = None) -> str:
    """RQ job: one attempt at each delivery of a batch (all to `endpoint`; jobs queued before the breaker
    came carry none)."""
    return attempt_batch(worker_context(), [uuid.UUID(i) for i in delivery_ids], attempt, endpoint)


def wake(endpoint: str) -> str:
    """RQ job: probe a backed-off endpoint with one parked batch, and release the rest once it answers."""
    return waking.wake(worker_context(), endpoint)


def warm() -> None:
    """Build the worker's wiring before its first job (platograph worker --preload)."""
    worker_context()
