"""The similarity consumer: a thread in the process that owns the index, reading its own group.

Before asking the graph which pairs are already linked, it waits (briefly) for the graph projection
to reach the entry, so an edge that precedes an entity in the stream is known when the entity's
candidates are chosen. A pair that slips through is withdrawn when its edge event is read.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from pydantic import ValidationError

from platograph.background import keep_running
from platograph.consuming import backoff, consume, server_away
from platograph.contracts import Envelope, decode_entry
from platograph.graph_api import journal_entries, wait_for_projection
from platograph.stream import Entry
from services.similarity.adapters import graph_reads
from services.similarity.bootstrap import Similarity
from services.similarity.domain.candidates import PRODUCER
from services.similarity.service_layer import candidates, indexing, learning

log = logging.getLogger(__name__)


def wait_for_graph(sim: Similarity, entry_id: str) -> None:
    if not wait_for_projection(sim.graph, entry_id):
        log.warning("graph projection has not reached %s; proposing with what it knows", entry_id)


EMBED_AHEAD = 2_000  # events whose texts are embedded in one call (a few entries of the ingest's 500)

Raw = tuple[str, list[Any]]  # a stream entry's id and its decoded (not yet validated) envelopes
Valid = tuple[str, list[Envelope]]


def handle(sim: Similarity, entries: list[Entry]) -> int:
    """Index, propose, publish, then ack; returns the entries handled."""
    published = 0
    decoded: list[Raw] = []
    for entry_id, fields in entries:
        try:
            raws = decode_entry(fields)
        except ValueError as exc:
            # The graph projector dead-letters malformed entries; here they are just skipped.
            log.warning("skipping entry %s: %s", entry_id, exc)
            continue
        if all(isinstance(raw, dict) and raw.get("producer") == PRODUCER for raw in raws):
            continue  # our own candidate events (about ten an entity in a large corpus): not validated
        decoded.append((entry_id, raws))

    def prepare(group: list[Raw]) -> tuple[list[Valid], indexing.Embedded]:
        valid = _validated(group)
        return valid, indexing.embed_ahead(sim, [envelopes for _, envelopes in valid])

    # Groups are validated and embedded on other threads while earlier ones are indexed and checked, so
    # the encoder keeps the cores busy during our Python work. Two groups are in the encoder's queue at
    # once: its threads go on to the next group's batches while a group's last batch finishes and the
    # next group is tokenized.
    decided: set[str] = set()  # type pairs people decided on in this read: learned once, after it
    last = ""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="embed-ahead") as ahead:
        for group, known in ahead.map(prepare, _groups(decoded)):
            for entry_id, envelopes in group:
                wait_for_graph(sim, entry_id)
                events = candidates.handle_entry(sim, entry_id, envelopes, known)
                candidates.publish(sim, events)
                decided |= learning.touched(sim, envelopes)
                published += len(events)
                last = entry_id
    if decided:  # then the candidates follow each moved threshold, in the background
        published += learning.learn_after(sim, decided, last)
    sim.consumer.ack([entry_id for entry_id, _ in entries])
    log.info("%d entries, %d candidate events", len(entries), published)
    return len(entries)


def _validated(group: list[Raw]) -> list[Valid]:
    out: list[Valid] = []
    for entry_id, raws in group:
        try:
            out.append((entry_id, [Envelope.model_validate(raw) for raw in raws]))
        except ValidationError as exc:
            log.warning("skipping entry %s: %s", entry_id, exc)
    return out


def _groups(entries: list[Raw]) -> list[list[Raw]]:
    """Consecutive entries, about EMBED_AHEAD events a group; the last entry of a read is a group of its
    own, because the encoder has nothing to do while the last group is handled (until the next read)."""
    groups: list[list[Raw]] = [[]]
    size = 0
    for n, entry in enumerate(entries):
        last = n == len(entries) - 1 and n > 0
        if groups[-1] and (last or size + len(entry[1]) > EMBED_AHEAD):
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += len(entry[1])
    return [group for group in groups if group]


def replay(sim: Similarity, entry_id: str, events: list[tuple[int, Any]]) -> dict[str, int]:
    """Handle a dead-lettered entry again (platograph.dead_letters). Upserted entities are read from the graph
    as they are now, so a replay cannot put an older text back in the index: one retracted or merged since
    leaves it, one the graph does not know is skipped."""
    envelopes = [_as_now(sim, Envelope.model_validate(raw)) for _, raw in events]
    published = candidates.handle_entry(sim, entry_id, [e for e in envelopes if e is not None])
    candidates.publish(sim, published)
    return {"candidate_events": len(published)}


def _as_now(sim: Similarity, envelope: Envelope) -> Envelope | None:
    if envelope.type != "entity.upserted" or envelope.producer == PRODUCER:
        return envelope
    now = graph_reads.entity(sim.graph, str(envelope.payload.get("id")))
    return None if now is None else envelope.model_copy(update={"payload": now.model_dump(mode="json")})


def rebuild_if_lost(sim: Similarity) -> bool:
    """Read everything again when the index is empty but the group has put entities in an index before (a
    mark any replica sets after its first write, and at each start that finds the index filled): the index
    was lost (its directory deleted, a new Qdrant server, another model configured without a re-embed),
    and the index is a projection of the stream, so replaying the stream rebuilds it. Returns whether it
    rewound. An entry that comes to the same candidates as before appends events with the ids they had
    (the journal keeps one copy); pairs a typed edge or a person's rejection has excluded since are not
    proposed again.

    Replicas share the group: one that has read entries but not yet written its first ones does not make
    an index look lost to another starting meanwhile, since the mark comes after a write. The first
    replica to take the lock rewinds and leaves a mark of that (for REWOUND_S); the others, finding the
    index still empty but that mark there, do not rewind again. A replica that finds the index filled
    takes the mark away, so a later loss is rebuilt too."""
    served = sim.served()
    with sim.store.rewind_lock():
        with sim.index_lock:
            empty = served.index.count() == 0
        if not empty:
            sim.store.forget_rewind(served.model.key)
            sim.store.mark_indexed()
            return False
        if not sim.store.has_indexed() or sim.store.rewound(served.model.key):
            return False
        response = sim.graph.get("/v1/stats")
        response.raise_for_status()
        active = response.json()["active_entities"]
        if not active:
            return False  # nothing is to be indexed: an empty index is right
        log.warning("the index %s is empty but the graph has %d active entities: reading the stream again to "
                    "rebuild it", served.model.key, active)  # fmt: skip
        sim.consumer.rewind()
        sim.store.mark_rewound(served.model.key)
        return True


def run(sim: Similarity, stop: threading.Event) -> None:
    """Consume until stopped; an unexpected error (not a server away, which is waited out) starts the loop
    again after a pause, and its unacked entries are handled first (keep_running). An entry that fails
    every time is dead-lettered after PLATOGRAPH_MAX_DELIVERIES deliveries (platograph.consuming)."""
    started = False

    def body(stop: threading.Event) -> None:
        # A lost index is looked for once, at start-up, not on each restart after an error: an index still
        # empty because the first entries failed is not lost, and rewinding would deliver them again.
        nonlocal started
        if not started:
            if not _check_index(sim, stop):
                return
            sim.embedder.embed(["warm-up"])  # load the model now, not on the first event (about a second)
            started = True
        _consume(sim, stop)

    keep_running(sim.loop, body, stop, sim.settings.restart_pause_s)


def _check_index(sim: Similarity, stop: threading.Event) -> bool:
    """rebuild_if_lost, waiting for the graph (at start-up it may not answer yet, or answer 503); False when
    stopped meanwhile."""

    def unavailable(exc: BaseException) -> bool:  # any 5xx here: the graph may still be starting
        return server_away(exc) or (isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500)

    try:
        backoff(stop, unavailable)(rebuild_if_lost)(sim)
    except Exception as exc:
        if unavailable(exc) and stop.is_set():
            return False
        raise
    return True


def _consume(sim: Similarity, stop: threading.Event) -> None:
    settings = sim.settings
    consume(
        sim.consumer,
        lambda entries: handle(sim, entries),
        stop,
        batch=settings.similarity_batch_size,
        block_ms=500,
        claim_idle_ms=30_000,
        transient=server_away,
        max_deliveries=settings.max_deliveries,
        last_error=lambda: sim.loop.last_error,
        catch_up=lambda until, after: journal_entries(sim.graph, until, after),
        retire_idle_s=settings.consumer_retire_s or None,
    )
