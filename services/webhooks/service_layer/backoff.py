"""Backing off an endpoint that is down (its breaker, adapters/breaker.py): which job may send (`gate`),
holding batches while it is open (`park`), and making sure parked batches always have a wake job coming
(`schedule_wake`; waking.py runs it): at the pause's end, behind a probe another job holds, or now."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from rq.job import Job, JobStatus

from services.webhooks.bootstrap import Webhooks
from services.webhooks.service_layer.queueing import NAMESPACE, WAKE, enqueue

PENDING = {JobStatus.CREATED, JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}  # still to run


def gate(wh: Webhooks, endpoint: str) -> tuple[bool, str | None]:
    """Whether a batch for endpoint must wait (be parked): its breaker is open, and its pause is not over
    or another job is probing it. Not waiting, and the pause over: this job is the probe (its token)."""
    until = wh.breaker.open_until(endpoint)
    if until is None:
        return False, None
    if until > time.time():
        return True, None
    probe = wh.breaker.probe(endpoint, 2 * wh.settings.webhook_timeout_s + 5)
    return probe is None, probe


def probed(wh: Webhooks, endpoint: str, probe: str, *, handed_on: bool) -> None:
    """The job that held the endpoint's probe is done, whatever happened. The probe is released at once:
    left to expire, it would hold every later batch for the job's time limit (a probe deferred behind a
    busy slot). While the breaker is still open, the parked batches get a wake (the next pause's, if the
    probe failed), since a probe that sent nothing (its rows sent meanwhile, the endpoint paused or
    refused) would otherwise leave them to the stuck sweep, 15 minutes on; not for a deferred batch,
    whose next job probes in its turn. A probe that got through has scheduled their release already."""
    wh.breaker.release_probe(endpoint, probe)
    if not handed_on and wh.breaker.open_until(endpoint) is not None and wh.breaker.parked(endpoint):
        schedule_wake(wh, endpoint)


def park(wh: Webhooks, endpoint: str, batches: Sequence[tuple[Sequence[uuid.UUID], int]]) -> int:
    """Hold (delivery ids, attempt) batches while the endpoint's breaker is open (service_layer/waking.py
    releases them). Returns the batches parked."""
    parked = wh.breaker.park(endpoint, [(list(ids), attempt) for ids, attempt in batches])
    if parked is None:  # a probe's success closed the breaker since the caller looked: send them now
        for ids, attempt in batches:
            enqueue(wh, list(ids), attempt, endpoint, tag=f"-unparked-{uuid.uuid4().hex[:8]}")
        return 0
    schedule_wake(wh, endpoint)
    return parked


def schedule_wake(wh: Webhooks, endpoint: str) -> None:
    """One wake job for the parked batches, when the next probe may go: at the pause's end; while another
    job holds the probe of a pause that is over, when that probe expires (its holder releases it and
    schedules a wake when done; this one covers a holder that died); now if the breaker is closed or the
    pause is over with nobody probing.

    Callers asking for one moment share its wake while that wake is still to run (its id names the moment,
    to the millisecond). Once it has run, or while it runs, a new one gets an id of its own: otherwise a
    wake job asking for the next wake of its own moment would find itself (finished jobs are kept) and
    schedule nothing, leaving the parked batches to the stuck sweep."""
    now = time.time()
    until = wh.breaker.open_until(endpoint)
    held = wh.breaker.probe_held_until(endpoint) if until is not None and until <= now else None
    when = until if until is not None and until > now else held
    moment = f"{int(when * 1000)}" if when is not None else "now"
    # RQ's job ids are global in its Redis: the queue's name keeps another deployment's apart.
    wake_id = f"wh-wake-{uuid.uuid5(NAMESPACE, wh.settings.webhook_queue + '|' + endpoint)}-{moment}"
    raw = wh.redis.hget(Job.key_for(wake_id), "status")
    status = raw.decode() if isinstance(raw, bytes) else raw
    if status in PENDING:
        return
    if status is not None:
        wake_id += f"-{uuid.uuid4().hex[:8]}"
    at = datetime.fromtimestamp((when or now) + wh.rng.uniform(0.0, 1.0), UTC)
    wh.queue.enqueue_at(at, WAKE, endpoint, job_id=wake_id, result_ttl=600, failure_ttl=7 * 24 * 3600,
                        description=f"wake backed-off endpoint {endpoint}")  # fmt: skip
