"""The dispatcher: a consumer group on the event log that turns events into deliveries (the outbox).

Deliveries are recorded (once each: ids are derived from subscription and event) and their first jobs
queued before the entry is acked, so a crash anywhere in between only repeats work: the entry comes
back, the rows exist, and only jobs not yet queued are queued.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from platograph.api.webhooks import EVENT_TYPES
from platograph.background import keep_running
from platograph.consuming import consume, server_away
from platograph.contracts import Envelope, decode_entry
from platograph.graph_api import journal_entries
from platograph.stream import Entry
from services.webhooks.adapters import store
from services.webhooks.bootstrap import Webhooks
from services.webhooks.service_layer import recording, sweeping

log = logging.getLogger(__name__)


def handle(wh: Webhooks, entries: list[Entry], stop: threading.Event | None = None) -> int:
    with wh.engine.begin() as conn:
        subscriptions = store.live_subscriptions(conn)
    if subscriptions:  # with none, nothing is decoded: a bulk load carries ~10 candidate events an entity
        queued = recording.record(wh, _events(entries), subscriptions)
        log.info("%d deliveries queued", queued)
    wh.consumer.ack([entry_id for entry_id, _ in entries])
    if subscriptions:
        hold_back(wh, stop=stop)
    return len(entries)


def hold_back(wh: Webhooks, poll_s: float = 0.02, stop: threading.Event | None = None) -> float:
    """While the workers are behind (more jobs waiting than webhook_queue_high), wait up to webhook_hold_s
    before the next read, or until asked to stop; returns the seconds waited."""
    s = wh.settings
    started = time.monotonic()
    stop = stop or threading.Event()
    try:
        while wh.queue.count > s.webhook_queue_high and time.monotonic() - started < s.webhook_hold_s:
            if stop.wait(poll_s):
                break
    except RedisError:  # the entries are recorded and acked: the next read meets the outage and waits it out
        pass
    return time.monotonic() - started


def _events(entries: list[Entry]) -> list[tuple[str, Envelope]]:
    """The entries' events that subscriptions can ask for."""
    events: list[tuple[str, Envelope]] = []
    for entry_id, fields in entries:
        try:
            envelopes = [Envelope.model_validate(raw) for raw in decode_entry(fields)]
        except (ValueError, ValidationError) as exc:  # the graph projector dead-letters these
            log.warning("skipping entry %s: %s", entry_id, exc)
            continue
        events.extend((entry_id, e) for e in envelopes if e.type in EVENT_TYPES)
    return events


def replay(wh: Webhooks, entry_id: str, events: list[tuple[int, Any]]) -> dict[str, int]:
    """Turn a dead-lettered entry's events into deliveries again (platograph.dead_letters); deliveries are
    keyed by subscription and event, so none goes out twice."""
    with wh.engine.begin() as conn:
        subscriptions = store.live_subscriptions(conn)
    envelopes = [(entry_id, Envelope.model_validate(raw)) for _, raw in events]
    wanted = [(i, e) for i, e in envelopes if e.type in EVENT_TYPES]
    return {"deliveries_queued": recording.record(wh, wanted, subscriptions) if subscriptions else 0}


def run(wh: Webhooks, stop: threading.Event) -> None:
    """Consume until stopped; an unexpected error starts the loop again after a pause (keep_running). The
    sweeper runs beside it."""

    def body(stop: threading.Event) -> None:
        consume(
            wh.consumer,
            lambda entries: handle(wh, entries, stop),
            stop,
            batch=wh.settings.webhook_batch_size,
            block_ms=500,
            claim_idle_ms=30_000,
            transient=lambda exc: server_away(exc) or isinstance(exc, OperationalError),
            max_deliveries=wh.settings.max_deliveries,
            last_error=lambda: wh.loop.last_error,
            catch_up=lambda until, after: journal_entries(wh.graph, until, after),
            retire_idle_s=wh.settings.consumer_retire_s or None,
        )

    sweeper = threading.Thread(target=sweeping.run, args=(wh, stop), name="webhook-sweeper", daemon=True)
    sweeper.start()
    keep_running(wh.loop, body, stop, wh.settings.restart_pause_s)
    sweeper.join(5)
