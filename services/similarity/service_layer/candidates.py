"""Candidates: the events one stream entry leads to (proposals for entities close in meaning with no typed
edge, withdrawals when an edge joins a pair or an entity leaves), dispatched by event type.

Candidate events get ids derived from the stream entry that caused them, so a redelivered entry
re-appends the same events and the graph journal keeps one copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from platograph.contracts import (
    PAYLOADS,
    CandidateProposed,
    CandidateWithdrawn,
    EdgeAdded,
    EntityMerged,
    EntityRetracted,
    EntityUnmerged,
    EntityUpserted,
    Envelope,
    Frozen,
    encode_entry,
    new_envelopes,
)
from platograph.stream import reply_text
from services.similarity.adapters import graph_reads
from services.similarity.adapters.index import Hit, Indexed
from services.similarity.bootstrap import Similarity
from services.similarity.domain.candidates import PRODUCER, classify, pair, suggest_edge, threshold_for
from services.similarity.service_layer.indexing import Embedded, delete_everywhere, index_entities

EVENT_NAMESPACE = uuid.UUID("a4f1e9a2-5c0b-4d7e-8e63-1b2c3d4e5f60")


SEARCH_BATCH = 64  # candidate searches per index call: long enough to share the scoring, short for the lock


def candidates_for(
    sim: Similarity, entities: Sequence[tuple[Indexed, np.ndarray]], exclude: Sequence[set[str]]
) -> list[CandidateProposed]:
    """Proposals for entities (each with its vector and the ids it must not pair with): neighbors above
    their type pair's threshold with no typed edge."""
    served = sim.served()
    per_pair = sim.pair_thresholds()
    floor = min([sim.threshold, *per_pair.values()])
    out: list[CandidateProposed] = []
    for start in range(0, len(entities), SEARCH_BATCH):
        chunk = entities[start : start + SEARCH_BATCH]
        vectors = np.stack([vector for _, vector in chunk]).astype(np.float32)
        excluded = [sorted(exclude[start + k] | {item.id}) for k, (item, _) in enumerate(chunk)]
        with sim.index_lock:
            found = served.index.search_many(vectors, limit=sim.settings.candidates_per_entity, min_score=floor,
                                             exclude=excluded)  # fmt: skip
        for (item, _), hits in zip(chunk, found, strict=True):
            out += _proposals(sim, served.model.key, item, hits, per_pair)
    return out


def _proposals(
    sim: Similarity, model: str, entity: Indexed, hits: list[Hit], per_pair: dict[str, float]
) -> list[CandidateProposed]:
    out = []
    for hit in hits:
        other = hit.entity
        if hit.score < threshold_for(entity.type, other.type, sim.threshold, per_pair):
            continue
        out.append(proposal(sim, model, entity, hit))
    return out


def proposal(sim: Similarity, model: str, entity: Indexed, hit: Hit) -> CandidateProposed:
    """The candidate a hit makes with an entity: its kind and reason, and the edge it would become."""
    other = hit.entity
    verdict = classify(entity.text, other.text, hit.score, sim.settings.duplicate_threshold)
    a, b = pair(entity.id, other.id)
    type_a, type_b = a.partition(":")[0], b.partition(":")[0]
    return CandidateProposed(
        a=a,
        b=b,
        score=round(hit.score, 6),
        kind=verdict.kind,
        model=model,
        reason=verdict.reason,
        suggested_edge=suggest_edge(sim.ontology, type_a, type_b, verdict.opposite),
    )


def withdraw_all(sim: Similarity, entity_id: str, reason: str) -> list[Frozen]:
    """Withdrawals of every pair currently proposed with an entity."""
    return [CandidateWithdrawn(a=a, b=b, reason=reason) for a, b in graph_reads.proposed_with(sim.graph, entity_id)]


@dataclass
class EntryWork:
    """What one stream entry asks for, gathered event by event: entities to (re)index, candidate events
    to append, and pairs a typed edge joined in this entry."""

    upserts: dict[str, EntityUpserted] = field(default_factory=dict)
    payloads: list[Frozen] = field(default_factory=list)
    edges: set[tuple[str, str]] = field(default_factory=set)


Handler = Callable[[Similarity, EntryWork, Any], None]


def _upserted(sim: Similarity, work: EntryWork, entity: EntityUpserted) -> None:
    work.upserts[entity.id] = entity


def _gone(sim: Similarity, work: EntryWork, entity_id: str, reason: str) -> None:
    work.upserts.pop(entity_id, None)
    delete_everywhere(sim, entity_id)
    work.payloads += withdraw_all(sim, entity_id, reason)


def _retracted(sim: Similarity, work: EntryWork, retracted: EntityRetracted) -> None:
    _gone(sim, work, retracted.id, f"{retracted.id} was retracted")


def _merged(sim: Similarity, work: EntryWork, merged: EntityMerged) -> None:
    _gone(sim, work, merged.id, f"{merged.id} was merged into {merged.into}")


def _unmerged(sim: Similarity, work: EntryWork, unmerged: EntityUnmerged) -> None:
    """Back on its own: index it again from the graph's record."""
    restored = graph_reads.entity(sim.graph, unmerged.id)
    if restored is not None:
        work.upserts[restored.id] = restored


def _edge_added(sim: Similarity, work: EntryWork, edge: EdgeAdded) -> None:
    a, b = pair(edge.source, edge.target)
    work.edges.add((a, b))
    work.payloads.append(CandidateWithdrawn(a=a, b=b, reason=f"typed edge added: {edge.type}"))


#: What each event type does to the index and the candidates; other events (and our own) are not read.
HANDLERS: dict[type[Frozen], Handler] = {
    EntityUpserted: _upserted,
    EntityRetracted: _retracted,
    EntityMerged: _merged,
    EntityUnmerged: _unmerged,
    EdgeAdded: _edge_added,
}


def handle_entry(
    sim: Similarity, entry_id: str, envelopes: list[Envelope], known: Embedded | None = None
) -> list[Envelope]:
    """The candidate events one stream entry leads to (indexing happens on the way; `known` holds vectors
    already embedded, by text). Each carries the entry as its `cause`: the graph orders a pair's proposals
    and withdrawals by cause, so whichever replica appends first, the later cause wins."""
    work = EntryWork()
    for envelope in envelopes:
        cls = PAYLOADS.get(envelope.type)
        handler = None if envelope.producer == PRODUCER or cls is None else HANDLERS.get(cls)
        if handler is not None:
            handler(sim, work, cls.model_validate(envelope.payload))  # type: ignore[union-attr]
    for entity in work.upserts.values():
        if entity.status != "active":  # retracted or merged through an upsert: its candidates go too
            work.payloads += withdraw_all(sim, entity.id, f"{entity.id} is {entity.status}")
    if work.upserts:
        fresh = index_entities(sim, list(work.upserts.values()), known)
        blocked = graph_reads.linked(sim.graph, [item.id for item, _ in fresh])
        exclude = [
            blocked.get(item.id, set()) | {b if a == item.id else a for a, b in work.edges if item.id in (a, b)}
            for item, _ in fresh
        ]
        work.payloads += candidates_for(sim, fresh, exclude)
    payloads = [p.model_copy(update={"cause": entry_id}) for p in work.payloads]
    ids = [uuid.uuid5(EVENT_NAMESPACE, f"{entry_id}|{i}|{p.model_dump_json()}") for i, p in enumerate(payloads)]
    return new_envelopes(payloads, producer=PRODUCER, event_ids=ids) if payloads else []


def publish(sim: Similarity, envelopes: list[Envelope]) -> str | None:
    """Append candidate events as one stream entry; returns its id."""
    if not envelopes:
        return None
    entry = sim.consumer.client.xadd(sim.settings.stream, encode_entry(envelopes))  # type: ignore[arg-type]
    return reply_text(entry)
