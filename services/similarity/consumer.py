"""The similarity consumer: a thread in the process that owns the index, reading its own group.

Before asking the graph which pairs are already linked, it waits (briefly) for the graph projection
to reach the entry, so an edge that precedes an entity in the stream is known when the entity's
candidates are chosen. A pair that slips through is withdrawn when its edge event is read.
"""

from __future__ import annotations

import logging
import threading

import httpx
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from tenacity import before_sleep_log, retry, retry_if_exception_type, wait_exponential

from platograph.contracts import Envelope, decode_entry
from platograph.stream import Entry
from services.similarity import service
from services.similarity.bootstrap import Similarity

log = logging.getLogger(__name__)
GRAPH_WAIT_MS = 5000


def wait_for_graph(sim: Similarity, entry_id: str) -> None:
    response = sim.graph.get("/v1/projection", params={"position": entry_id, "wait_ms": GRAPH_WAIT_MS})
    if response.status_code == 200 and not response.json()["reached"]:
        log.warning("graph projection has not reached %s; proposing with what it knows", entry_id)


def handle(sim: Similarity, entries: list[Entry]) -> int:
    """Index, propose, publish, then ack; returns the candidate events published."""
    published = 0
    for entry_id, fields in entries:
        try:
            envelopes = [Envelope.model_validate(raw) for raw in decode_entry(fields)]
        except (ValueError, ValidationError) as exc:
            # The graph projector dead-letters malformed entries; here they are just skipped.
            log.warning("skipping entry %s: %s", entry_id, exc)
            continue
        if all(e.producer == service.PRODUCER for e in envelopes):
            continue
        wait_for_graph(sim, entry_id)
        events = service.handle_entry(sim, entry_id, envelopes)
        service.publish(sim, events)
        published += len(events)
    sim.consumer.ack([entry_id for entry_id, _ in entries])
    return published


def run(sim: Similarity, stop: threading.Event) -> None:
    """Consume until stopped: own pending entries first, then reclaimed and new ones."""
    consumer, batch = sim.consumer, sim.settings.similarity_batch_size
    consumer.ensure_group()

    @retry(
        retry=retry_if_exception_type((RedisConnectionError, httpx.TransportError)),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=lambda _state: stop.is_set(),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    def step(first: bool) -> int:
        entries = consumer.own_pending(batch) if first else []
        if not entries:
            entries = consumer.reclaim(30_000, batch)
        if not entries:
            entries = consumer.read_new(batch, 500)
        handle(sim, entries)
        return len(entries)

    first = True
    while not stop.is_set():
        try:
            handled = step(first)
        except (RedisConnectionError, httpx.TransportError):
            if stop.is_set():
                break
            raise
        first = first and handled > 0
