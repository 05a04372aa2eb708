"""The similarity consumer: a thread in the process that owns the index, reading its own group.

Before asking the graph which pairs are already linked, it waits (briefly) for the graph projection
to reach the entry, so an edge that precedes an entity in the stream is known when the entity's
candidates are chosen. A pair that slips through is withdrawn when its edge event is read.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError

from platograph.contracts import Envelope, decode_entry
from platograph.graph_api import journal_entries, wait_for_projection
from platograph.stream import Entry, consume
from services.similarity import service
from services.similarity.bootstrap import Similarity

log = logging.getLogger(__name__)


def wait_for_graph(sim: Similarity, entry_id: str) -> None:
    if not wait_for_projection(sim.graph, entry_id):
        log.warning("graph projection has not reached %s; proposing with what it knows", entry_id)


EMBED_AHEAD = 2_000  # events whose texts are embedded in one call (a few entries of the ingest's 500)


def handle(sim: Similarity, entries: list[Entry]) -> int:
    """Index, propose, publish, then ack; returns the entries handled."""
    published = 0
    decoded: list[tuple[str, list[Envelope]]] = []
    for entry_id, fields in entries:
        try:
            raws = decode_entry(fields)
            if all(isinstance(raw, dict) and raw.get("producer") == service.PRODUCER for raw in raws):
                continue  # our own candidate events (about ten an entity in a large corpus): not validated
            envelopes = [Envelope.model_validate(raw) for raw in raws]
        except (ValueError, ValidationError) as exc:
            # The graph projector dead-letters malformed entries; here they are just skipped.
            log.warning("skipping entry %s: %s", entry_id, exc)
            continue
        decoded.append((entry_id, envelopes))
    groups = _groups(decoded)
    # Groups are embedded on other threads while earlier ones are indexed and checked, so the encoder
    # keeps the cores busy during our Python work (which otherwise leaves one core idle ~6% of the time).
    # Two groups are in the encoder's queue at once: its threads go on to the next group's batches while
    # the last batch of a group finishes and the next group is tokenized.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="embed-ahead") as ahead:
        embedded = ahead.map(lambda group: service.embed_ahead(sim, [e for _, e in group]), groups)
        for group, known in zip(groups, embedded, strict=True):
            for entry_id, envelopes in group:
                wait_for_graph(sim, entry_id)
                events = service.handle_entry(sim, entry_id, envelopes, known)
                service.publish(sim, events)
                published += len(events)
    sim.consumer.ack([entry_id for entry_id, _ in entries])
    log.info("%d entries, %d candidate events", len(entries), published)
    return len(entries)


def _groups(entries: list[tuple[str, list[Envelope]]]) -> list[list[tuple[str, list[Envelope]]]]:
    """Consecutive entries, about EMBED_AHEAD events a group."""
    groups: list[list[tuple[str, list[Envelope]]]] = [[]]
    size = 0
    for entry in entries:
        if groups[-1] and size + len(entry[1]) > EMBED_AHEAD:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += len(entry[1])
    return [group for group in groups if group]


def run(sim: Similarity, stop: threading.Event) -> None:
    """Consume until stopped."""
    settings = sim.settings
    sim.embedder.embed(["warm-up"])  # load the model now, not on the first event (about a second)
    consume(
        sim.consumer,
        lambda entries: handle(sim, entries),
        stop,
        batch=settings.similarity_batch_size,
        block_ms=500,
        claim_idle_ms=30_000,
        transient=(RedisConnectionError, httpx.TransportError),
        catch_up=lambda until, after: journal_entries(sim.graph, until, after),
    )
