"""Delivery jobs (RQ, JSON arguments). A job sends a batch of one endpoint's deliveries, in order, over one
connection; a failure schedules that delivery's next attempt with RQ's scheduler and sends the rest of the
batch after the same pause (the endpoint is failing), so one job costs RQ's overhead once per batch.

Each job locks its delivery rows, so two jobs never send one delivery at once; a row whose attempts went
past the job's is left alone (a newer job owns it). Next attempts are queued before the rows are updated,
so a crash in between repeats an attempt instead of losing one. RQ's own retry (a few quick tries) covers
a job whose worker died mid-batch or hit an error. Each successful send is marked in Redis at once, so a
batch cut short before its rows were recorded (a killed worker, the database away) is not sent again:
the next job records the marked ones as delivered and sends only the rest.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rq.job import Job
from sqlalchemy import Connection

from services.webhooks.adapters import sender, store
from services.webhooks.adapters.marks import SentMarks
from services.webhooks.bootstrap import Webhooks
from services.webhooks.domain import messages, safety
from services.webhooks.service_layer import backoff
from services.webhooks.service_layer.queueing import ANY_ATTEMPT, BATCH, enqueue, job_id

SENT_MARK_S = 24 * 3600  # a mark outlives a batch cut short before recording it only until the next job
ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], 3600)
  return 1
end
return 0
"""


def enqueue_first(wh: Webhooks, unsent: Sequence[tuple[uuid.UUID, str]]) -> int:
    """First attempts for (delivery, subscription) pairs, batched per endpoint; a batch whose job exists
    already is not queued again (safe to call again after a crash). Returns the jobs queued."""
    by_endpoint: dict[str, list[uuid.UUID]] = {}
    for delivery_id, subscription_id in unsent:
        by_endpoint.setdefault(subscription_id, []).append(delivery_id)
    queued = 0
    for endpoint, ids in by_endpoint.items():
        batches = [ids[start : start + BATCH] for start in range(0, len(ids), BATCH)]
        if wh.breaker.open_until(endpoint) is not None:  # backed off: parked at once, no job to wake
            backoff.park(wh, endpoint, [(batch, 0) for batch in batches])
            continue
        for batch in batches:
            if not Job.exists(job_id(batch, 0), connection=wh.redis):
                enqueue(wh, batch, 0, endpoint)
                queued += 1
    return queued


def enqueue_again(wh: Webhooks, endpoint: str, delivery_ids: Sequence[uuid.UUID], tag: str = "") -> None:
    """Send one endpoint's deliveries (set back to pending) again now, in batches (a replay passes its own
    tag, so the same replay queues the same jobs)."""
    tag = tag or f"-again-{uuid.uuid4().hex[:8]}"
    if delivery_ids:  # a person asked for them again: the marks of earlier sends must not hold them back
        wh.redis.delete(*[_sent_key(wh, i) for i in delivery_ids])
    for start in range(0, len(delivery_ids), BATCH):
        enqueue(wh, delivery_ids[start : start + BATCH], ANY_ATTEMPT, endpoint, tag=tag)


BUSY = "endpoint busy; deferred"


def attempt_batch(wh: Webhooks, delivery_ids: list[uuid.UUID], attempt: int, subscription: str | None = None) -> str:
    probe: str | None = None
    if subscription is not None:
        wait, probe = backoff.gate(wh, subscription)
        if wait:  # wait without touching the rows (no attempt)
            parked = backoff.park(wh, subscription, [(delivery_ids, attempt)])
            return f"endpoint backed off; parked ({parked} batches wait)"
    try:
        result = _claim_and_send(wh, delivery_ids, attempt)
    except BaseException:  # RQ's time limit too: the probe is not held on for a job that is gone
        if subscription is not None and probe is not None:
            with contextlib.suppress(Exception):  # Redis away, say: the job's own error is the one to report
                backoff.probed(wh, subscription, probe, handed_on=False)
        raise
    if subscription is not None and probe is not None:
        backoff.probed(wh, subscription, probe, handed_on=result == BUSY)
    return result


def _claim_and_send(wh: Webhooks, delivery_ids: list[uuid.UUID], attempt: int) -> str:
    with wh.engine.begin() as conn:
        rows = [r for r in store.claim(conn, delivery_ids) if r["status"] == "pending" and r["attempts"] <= attempt]
        if not rows:
            return "nothing to send"
        endpoint = rows[0]
        if endpoint["state"] == "paused":
            return "endpoint paused"
        if endpoint["state"] == "disabled":
            store.set_deliveries(conn, [r["id"] for r in rows], {"status": "failed",
                                                                 "status_reason": "endpoint disabled"})  # fmt: skip
            return "endpoint disabled"
        slot = str(uuid.uuid4())
        if not _acquire(wh, endpoint["subscription_id"], slot):
            enqueue(wh, [r["id"] for r in rows], attempt, endpoint["subscription_id"], delay=wh.rng.uniform(0.5, 1.5),
                    tag=f"-wait-{slot[:8]}")  # fmt: skip
            return BUSY
        try:
            result = _send_batch(wh, conn, rows)
        finally:
            wh.redis.zrem(_busy_key(wh, endpoint["subscription_id"]), slot)
    # Committed: the rows say what was delivered, so the marks that stood in for them can go (one call a
    # batch; left to expire, they would pile up in Redis at the delivery rate).
    wh.redis.delete(*[_sent_key(wh, r["id"]) for r in rows])
    return result


def _send_batch(wh: Webhooks, conn: Connection, rows: list[dict[str, Any]]) -> str:
    s = wh.settings
    started = time.monotonic()
    endpoint = rows[0]  # one endpoint per batch: its address is checked and its secrets opened once
    marks = wh.redis.mget([_sent_key(wh, r["id"]) for r in rows])
    before = [r for r, mark in zip(rows, marks, strict=True) if mark is not None]
    if before:  # sent by a job that died before it could record them (a worker killed, the database away)
        store.mark_delivered(conn, [(r["id"], r["attempts"], datetime.now(UTC)) for r in before])
        rows = [r for r, mark in zip(rows, marks, strict=True) if mark is None]
        if not rows:
            return f"{len(before)} already delivered"
    try:
        target: safety.Target | None = safety.resolve(endpoint["url"], s.webhook_allowlist, ports=s.webhook_ports)
        refused = ""
    except safety.UnsafeEndpoint as exc:
        target, refused = None, f"refused: {exc}"
    secrets = _secrets(wh, endpoint, datetime.now(UTC))
    if target is None:
        sent = [(rows[0], sender.Outcome(None, 0.0, refused, ""), datetime.now(UTC))]
    else:
        sent = sender.run(lambda kept: _attempts(wh, kept, rows, target, secrets, started))
    store.record_attempts(conn, [
        {"delivery_id": row["id"], "attempted_at": at, "status_code": o.status_code, "latency_ms": o.latency_ms,
         "error": o.error, "response": o.response, "details": {"attempt": row["attempts"] + 1}}
        for row, o, at in sent
    ])  # fmt: skip
    delivered = [(row, at) for row, o, at in sent if o.ok]
    last_row, last, at = sent[-1]
    sub = endpoint["subscription_id"]
    if delivered or (target is not None and not _unreachable(last)):  # it answers (a 4xx refuses one delivery)
        wh.breaker.close(sub)
        if wh.breaker.parked(sub):  # this was the probe that got through: the parked batches go now
            backoff.schedule_wake(wh, sub)
    if delivered:
        store.mark_delivered(conn, [(row["id"], row["attempts"] + 1, at) for row, at in delivered])
        if endpoint["failing_since"] is not None:
            store.update_subscription(conn, sub, {"failing_since": None})
    if not last.ok and target is not None and _unreachable(last):
        wh.breaker.trip(sub)  # down as a whole: its other batches wait instead of trying one each
    rest = [row["id"] for row in rows[len(sent) :]]
    if last.ok:
        if rest:  # out of time: the rest go in a new job now
            enqueue(wh, rest, max(r["attempts"] for r in rows), sub, tag=f"-more-{uuid.uuid4().hex[:8]}")
        return f"{len(delivered)} delivered"
    pause = _failed(wh, conn, last_row, last, at)
    if rest and wh.breaker.open_until(sub) is not None:  # down as a whole: the rest wait for its wake
        backoff.park(wh, sub, [(rest, max(r["attempts"] for r in rows))])
    elif rest:  # the endpoint refused this one: the rest wait as long as the failed one
        enqueue(wh, rest, max(r["attempts"] for r in rows), sub, delay=pause or 0.0,
                tag=f"-rest-{uuid.uuid4().hex[:8]}")  # fmt: skip
    return f"{len(delivered)} delivered, 1 failed, {len(rest)} postponed"


async def _attempts(
    wh: Webhooks, kept: sender.Kept, rows: list[dict[str, Any]], target: safety.Target, secrets: list[str],
    started: float,
) -> list[tuple[dict[str, Any], sender.Outcome, datetime]]:  # fmt: skip
    """Send the batch in order over one connection until one fails or the batch's time is up."""
    s = wh.settings
    sent: list[tuple[dict[str, Any], sender.Outcome, datetime]] = []
    client, warm = await kept.session((rows[0]["subscription_id"], target))
    with SentMarks(wh.redis, SENT_MARK_S) as marks:
        for row in rows:
            now = datetime.now(UTC)
            headers = sender.signature_headers(str(row["event_id"]), row["body"], secrets, now)
            outcome = await sender.send(client, row["url"], target, row["body"], headers, warm=warm,
                                        cap=s.webhook_response_cap, excerpt=s.webhook_excerpt,
                                        deadline_s=s.webhook_timeout_s)  # fmt: skip
            warm = False  # only the first request can find the kept connection closed by the endpoint
            sent.append((row, outcome, now))
            if outcome.ok:  # before the row is marked: a crash from here on must not send it again
                marks.mark(_sent_key(wh, row["id"]))
            if not outcome.ok or time.monotonic() - started > s.webhook_timeout_s:
                break
    return sent


def _secrets(wh: Webhooks, endpoint: dict[str, Any], now: datetime) -> list[str]:
    """The secrets that sign: the current one, and during a rotation's grace period the previous one."""
    secrets = [wh.box.open(endpoint["secret"])]
    if endpoint["previous_secret"] and endpoint["previous_secret_until"] and endpoint["previous_secret_until"] > now:
        secrets.append(wh.box.open(endpoint["previous_secret"]))
    return secrets


def _failed(
    wh: Webhooks, conn: Connection, row: dict[str, Any], outcome: sender.Outcome, now: datetime
) -> float | None:
    """Settle a failed attempt; returns the pause before the next one (None: no next one)."""
    s, delivery_id, subscription = wh.settings, row["id"], row["subscription_id"]
    attempts = row["attempts"] + 1
    code = outcome.status_code
    if code == 410:
        reason = f"endpoint answered 410 Gone at {now.isoformat()}; disabled"
        store.set_deliveries(conn, [delivery_id], {"status": "failed", "status_reason": reason, "attempts": attempts})
        store.update_subscription(conn, subscription, {"state": "disabled", "state_reason": reason})
        return None
    why = f"HTTP {code}" if code is not None else outcome.error
    failing_since = row["failing_since"] or now
    if row["failing_since"] is None:
        store.update_subscription(conn, subscription, {"failing_since": now})
    if now - failing_since > timedelta(seconds=s.webhook_disable_after_s):
        reason = f"no successful delivery since {failing_since.isoformat()}; disabled (last: {why})"
        store.update_subscription(conn, subscription, {"state": "disabled", "state_reason": reason})
        store.set_deliveries(conn, [delivery_id], {"status": "failed", "status_reason": reason, "attempts": attempts})
        return None
    delay = messages.retry_delay(attempts, s.webhook_retry_schedule, s.webhook_jitter, wh.rng)
    if delay is None:
        reason = f"gave up after {attempts} attempts (last: {why})"
        store.set_deliveries(conn, [delivery_id], {"status": "failed", "status_reason": reason, "attempts": attempts,
                                                   "next_attempt_at": None})  # fmt: skip
        return None
    enqueue(wh, [delivery_id], attempts, subscription, delay=delay)
    store.set_deliveries(conn, [delivery_id], {"status_reason": why, "attempts": attempts,
                                               "next_attempt_at": now + timedelta(seconds=delay)})  # fmt: skip
    return delay


def _sent_key(wh: Webhooks, delivery_id: uuid.UUID) -> str:
    return f"{wh.settings.webhook_queue}:sent:{delivery_id}"


def _unreachable(outcome: sender.Outcome) -> bool:
    """Down rather than refusing this one delivery: no answer, a server error, or "slow down"."""
    code = outcome.status_code
    return code is None or code >= 500 or code == 429


def _busy_key(wh: Webhooks, subscription_id: str) -> str:
    return f"{wh.settings.webhook_queue}:busy:{subscription_id}"


def _acquire(wh: Webhooks, subscription_id: str, slot: str) -> bool:
    """A slot among the endpoint's concurrent jobs; a slot a dead worker held expires by itself."""
    now = datetime.now(UTC).timestamp()
    expires = now + 2 * wh.settings.webhook_timeout_s + 5  # the job's own time limit
    limit = wh.settings.webhook_endpoint_concurrency
    return bool(wh.redis.eval(ACQUIRE, 1, _busy_key(wh, subscription_id), now, expires, limit, slot))
