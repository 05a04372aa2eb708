"""The dispatcher: a consumer group on the event log that turns events into deliveries (the outbox).

Deliveries are recorded (once each: ids are derived from subscription and event) and their first jobs
queued before the entry is acked, so a crash anywhere in between only repeats work: the entry comes
back, the rows exist, and only jobs not yet queued are queued.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from platograph.api.webhooks import EVENT_TYPES
from platograph.background import keep_running
from platograph.consuming import consume, server_away
from platograph.contracts import Envelope, decode_entry
from platograph.graph_api import journal_entries, wait_for_projection
from platograph.stream import Entry
from services.webhooks.adapters import store
from services.webhooks.bootstrap import Webhooks
from services.webhooks.domain import messages
from services.webhooks.service_layer import delivery

log = logging.getLogger(__name__)
NAMESPACE = uuid.UUID("5b0a4a43-55d2-4c4f-9a43-8b0f5e4b7f10")


def delivery_id(subscription_id: str, event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{subscription_id}:{event_id}")


def handle(wh: Webhooks, entries: list[Entry]) -> int:
    with wh.engine.begin() as conn:
        subscriptions = store.live_subscriptions(conn)
    if subscriptions:  # with none, nothing is decoded: a bulk load carries ~10 candidate events an entity
        queued = record(wh, _events(entries), subscriptions)
        log.info("%d deliveries queued", queued)
    wh.consumer.ack([entry_id for entry_id, _ in entries])
    return len(entries)


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
    return {"deliveries_queued": record(wh, wanted, subscriptions) if subscriptions else 0}


def record(wh: Webhooks, events: list[tuple[str, Envelope]], subscriptions: list[dict[str, Any]]) -> int:
    """Deliveries for the events the subscriptions want; returns how many first attempts were queued."""
    if not events:
        return 0
    _wait_for_graph(wh, events[-1][0])
    ids = sorted({i for _, e in events for i in messages.entity_ids(e.type, e.payload)})
    pairs = sorted({(e.payload["a"], e.payload["b"]) for _, e in events if e.type.startswith("candidate.")})
    response = wh.graph.post("/v1/briefs", json={"ids": ids, "pairs": pairs})
    response.raise_for_status()
    known = response.json()
    rows: list[dict[str, Any]] = []
    for entry_id, event in events:
        payload = event.payload
        score = payload.get("score")
        if score is None and event.type.startswith("candidate."):
            score = known["scores"].get(f"{payload['a']}|{payload['b']}")
        entity_ids = messages.entity_ids(event.type, payload)
        wanted = [s for s in subscriptions if messages.matches(event.type, entity_ids, score, s)]
        if not wanted:
            continue
        body = orjson.dumps(messages.body(event.type, event.occurred_at, payload, known["entities"], score)).decode()
        for subscription in wanted:
            rows.append({"id": delivery_id(subscription["id"], event.event_id), "subscription_id": subscription["id"],
                         "event_id": event.event_id, "event_type": event.type, "stream_id": entry_id, "body": body,
                         "status": "pending"})  # fmt: skip
    if not rows:
        return 0
    with wh.engine.begin() as conn:
        store.insert_deliveries(conn, rows)
        unsent = store.unsent(conn, [r["id"] for r in rows])
    return delivery.enqueue_first(wh, unsent)


def _wait_for_graph(wh: Webhooks, entry_id: str) -> None:
    """Names come from the graph's read model: let it reach the entry first (briefly)."""
    if not wait_for_projection(wh.graph, entry_id):
        log.warning("graph projection has not reached %s; names may be missing", entry_id)


def run(wh: Webhooks, stop: threading.Event) -> None:
    """Consume until stopped; an unexpected error starts the loop again after a pause (keep_running)."""

    def body(stop: threading.Event) -> None:
        consume(
            wh.consumer,
            lambda entries: handle(wh, entries),
            stop,
            batch=wh.settings.webhook_batch_size,
            block_ms=500,
            claim_idle_ms=30_000,
            transient=lambda exc: server_away(exc) or isinstance(exc, OperationalError),
            max_deliveries=wh.settings.max_deliveries,
            last_error=lambda: wh.loop.last_error,
            catch_up=lambda until, after: journal_entries(wh.graph, until, after),
        )

    keep_running(wh.loop, body, stop, wh.settings.restart_pause_s)
