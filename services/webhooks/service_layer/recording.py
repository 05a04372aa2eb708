"""Recording deliveries: for the events subscriptions want, one delivery row per (endpoint, event), keyed so
that an event seen twice makes one row, then the first attempts queued."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson

from platograph.contracts import Envelope
from platograph.graph_api import wait_for_projection
from services.webhooks.adapters import store
from services.webhooks.bootstrap import Webhooks
from services.webhooks.domain import messages
from services.webhooks.service_layer import delivery

log = logging.getLogger(__name__)
NAMESPACE = uuid.UUID("5b0a4a43-55d2-4c4f-9a43-8b0f5e4b7f10")


def delivery_id(subscription_id: str, event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{subscription_id}:{event_id}")


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
        types = [payload["a_type"], payload["b_type"]] if event.type == "threshold.changed" else []
        wanted = [s for s in subscriptions if messages.matches(event.type, entity_ids, score, s, types)]
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
