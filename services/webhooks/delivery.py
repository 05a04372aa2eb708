"""Delivery jobs (RQ, JSON arguments): one attempt each; a failure schedules the next with the scheduler.

Each attempt locks its delivery row, so two jobs for one delivery never both send; the next attempt is
enqueued before the row is updated, so a crash in between repeats an attempt instead of losing one.
RQ's own retry (a few quick tries) covers a job whose worker died mid-attempt or hit an error.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from rq import Retry
from rq.job import Job

from services.webhooks.adapters import sender, store
from services.webhooks.bootstrap import Webhooks, worker_context
from services.webhooks.domain import messages, safety

ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], 3600)
  return 1
end
return 0
"""


def job_id(delivery_id: uuid.UUID, attempt: int) -> str:
    return f"wh-{delivery_id}-{attempt}"


def enqueue(wh: Webhooks, delivery_id: uuid.UUID, attempt: int, *, delay: float = 0.0, tag: str = "") -> None:
    """Queue one attempt (after `delay` seconds, through RQ's scheduler)."""
    options: dict[str, Any] = {
        "job_id": job_id(delivery_id, attempt) + tag,
        # The attempt is bounded by the HTTP timeout; the job's own limit only catches a stuck worker.
        "job_timeout": int(wh.settings.webhook_timeout_s) + 5,
        "retry": Retry(max=3, interval=[2, 10, 60]),
        "result_ttl": 600,
        "failure_ttl": 7 * 24 * 3600,
        "description": f"webhook delivery {delivery_id} attempt {attempt + 1}",
    }
    if delay > 0:
        wh.queue.enqueue_in(timedelta(seconds=delay), deliver, str(delivery_id), attempt, **options)
    else:
        wh.queue.enqueue(deliver, str(delivery_id), attempt, **options)


def enqueue_first(wh: Webhooks, delivery_ids: list[uuid.UUID]) -> int:
    """First attempts for deliveries that have none queued yet (safe to call again after a crash)."""
    queued = 0
    for delivery_id in delivery_ids:
        if not Job.exists(job_id(delivery_id, 0), connection=wh.redis):
            enqueue(wh, delivery_id, 0)
            queued += 1
    return queued


def deliver(delivery_id: str, attempt: int) -> str:
    """RQ job: one attempt at a delivery."""
    return attempt_delivery(worker_context(), uuid.UUID(delivery_id), attempt)


def attempt_delivery(wh: Webhooks, delivery_id: uuid.UUID, attempt: int) -> str:
    with wh.engine.begin() as conn:
        row = store.claim(conn, delivery_id)
        if row is None:
            return "busy or gone"
        if row["status"] != "pending" or row["state"] == "paused":
            return f"{row['status']}, endpoint {row['state']}"
        if row["state"] == "disabled":
            store.set_delivery(conn, delivery_id, {"status": "failed", "status_reason": "endpoint disabled"})
            return "endpoint disabled"
        slot = str(uuid.uuid4())
        if not _acquire(wh, row["subscription_id"], slot):
            enqueue(wh, delivery_id, attempt, delay=wh.rng.uniform(0.5, 1.5), tag=f"-wait-{slot[:8]}")
            return "endpoint busy; deferred"
        now = datetime.now(UTC)
        try:
            outcome = _send(wh, row, now)
        finally:
            wh.redis.zrem(_busy_key(wh, row["subscription_id"]), slot)
        attempt_row = {"delivery_id": delivery_id, "attempted_at": now, "status_code": outcome.status_code,
                       "latency_ms": outcome.latency_ms, "error": outcome.error, "response": outcome.response,
                       "details": {"attempt": row["attempts"] + 1}}  # fmt: skip
        store.record_attempt(conn, attempt_row)
        return _settle(wh, conn, row, outcome, now)


def _send(wh: Webhooks, row: dict[str, Any], now: datetime) -> sender.Outcome:
    s = wh.settings
    try:
        target = safety.resolve(row["url"], s.webhook_allowlist)
    except safety.UnsafeEndpoint as exc:
        return sender.Outcome(None, 0.0, f"refused: {exc}", "")
    secrets = [wh.box.open(row["secret"])]
    if row["previous_secret"] and row["previous_secret_until"] and row["previous_secret_until"] > now:
        secrets.append(wh.box.open(row["previous_secret"]))
    headers = sender.signature_headers(str(row["event_id"]), row["body"], secrets, now)
    return sender.send(wh.http, row["url"], target, row["body"], headers, cap=s.webhook_response_cap,
                       excerpt=s.webhook_excerpt)  # fmt: skip


def _settle(wh: Webhooks, conn: Any, row: dict[str, Any], outcome: sender.Outcome, now: datetime) -> str:
    s, delivery_id, subscription = wh.settings, row["id"], row["subscription_id"]
    attempts = row["attempts"] + 1
    code = outcome.status_code
    if code is not None and 200 <= code < 300:
        done = {"status": "delivered", "status_reason": f"HTTP {code}", "attempts": attempts, "delivered_at": now,
                "next_attempt_at": None}  # fmt: skip
        store.set_delivery(conn, delivery_id, done)
        if row["failing_since"] is not None:
            store.update_subscription(conn, subscription, {"failing_since": None})
        return "delivered"
    if code == 410:
        reason = f"endpoint answered 410 Gone at {now.isoformat()}; disabled"
        store.set_delivery(conn, delivery_id, {"status": "failed", "status_reason": reason, "attempts": attempts})
        store.update_subscription(conn, subscription, {"state": "disabled", "state_reason": reason})
        return "gone"
    why = f"HTTP {code}" if code is not None else outcome.error
    failing_since = row["failing_since"] or now
    if row["failing_since"] is None:
        store.update_subscription(conn, subscription, {"failing_since": now})
    if now - failing_since > timedelta(seconds=s.webhook_disable_after_s):
        reason = f"no successful delivery since {failing_since.isoformat()}; disabled (last: {why})"
        store.update_subscription(conn, subscription, {"state": "disabled", "state_reason": reason})
        store.set_delivery(conn, delivery_id, {"status": "failed", "status_reason": reason, "attempts": attempts})
        return "endpoint disabled"
    delay = messages.retry_delay(attempts, s.webhook_retry_schedule, s.webhook_jitter, wh.rng)
    if delay is None:
        reason = f"gave up after {attempts} attempts (last: {why})"
        store.set_delivery(conn, delivery_id, {"status": "failed", "status_reason": reason, "attempts": attempts,
                                               "next_attempt_at": None})  # fmt: skip
        return "failed"
    enqueue(wh, delivery_id, attempts, delay=delay)
    store.set_delivery(conn, delivery_id, {"status_reason": why, "attempts": attempts,
                                           "next_attempt_at": now + timedelta(seconds=delay)})  # fmt: skip
    return f"retry in {delay:.1f}s"


def _busy_key(wh: Webhooks, subscription_id: str) -> str:
    return f"{wh.settings.webhook_queue}:busy:{subscription_id}"


def _acquire(wh: Webhooks, subscription_id: str, slot: str) -> bool:
    """A slot among the endpoint's concurrent deliveries; a slot a dead worker held expires by itself."""
    now = datetime.now(UTC).timestamp()
    expires = now + wh.settings.webhook_timeout_s + 30
    limit = wh.settings.webhook_endpoint_concurrency
    return bool(wh.redis.eval(ACQUIRE, 1, _busy_key(wh, subscription_id), now, expires, limit, slot))
