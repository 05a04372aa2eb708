"""Indexing: what the active model (and a running re-embed's target) embeds for an entity, and keeping
the vector index in step with the entities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np

from platograph.contracts import EntityUpserted, Envelope
from services.similarity.adapters.index import Indexed
from services.similarity.bootstrap import Served, Similarity
from services.similarity.domain.candidates import PRODUCER


def texts_to_embed(served: Served, entity: EntityUpserted) -> list[str]:
    """What a model embeds for an entity: its composed text, then its parts (if any)."""
    data = entity.model_dump()
    return [served.model.text_of(data), *served.model.parts_of(data)]


@dataclass(frozen=True)
class Embedded:
    """Vectors embedded ahead (text -> vector), with the model that made them."""

    model: str
    vectors: dict[str, np.ndarray]


def embed_ahead(sim: Similarity, entries: Sequence[Sequence[Envelope]]) -> Embedded:
    """Embed the texts of several entries' upserts in one call (text -> vector): the encoder runs faster on
    longer length-sorted runs (measured here: 339 texts/s in calls of 500, 357 of 1,000, 369 of 2,500)."""
    served = sim.served()
    texts: dict[str, None] = {}
    for envelopes in entries:
        for envelope in envelopes:
            if envelope.type == "entity.upserted" and envelope.producer != PRODUCER:
                entity = EntityUpserted.model_validate(envelope.payload)
                if entity.status == "active":
                    texts.update(dict.fromkeys(texts_to_embed(served, entity)))
    if not texts:
        return Embedded(served.model.key, {})
    return Embedded(served.model.key, dict(zip(texts, served.embedder.embed(list(texts)), strict=True)))


def index_entities(
    sim: Similarity, entities: Sequence[EntityUpserted], known: Embedded | None = None
) -> list[tuple[Indexed, np.ndarray]]:
    """Embed (unless `known` has the text, from the model that answers) and upsert active entities, drop
    the others; returns what was indexed with its vector."""
    with sim.lock:
        served, target = sim.served(), sim.target
    # Vectors another replica's switch made stale since they were embedded ahead are not used.
    reuse = known.vectors if known is not None and known.model == served.model.key else {}
    live = [e for e in entities if e.status == "active"]
    inactive = [e.id for e in entities if e.status != "active"]
    composed = [texts_to_embed(served, e) for e in live]
    active = [Indexed(id=e.id, type=e.type, name=e.name, description=e.description, text=c[0])
              for e, c in zip(live, composed, strict=True)]  # fmt: skip
    # One embedding call for whole texts and sentences together: batches stay full and sorted by length.
    parts = [c[1:] for c in composed]
    texts = [i.text for i in active] + [p for ps in parts for p in ps]
    embedded = _embedded(served, texts, reuse)
    vectors, rest = embedded[: len(active)], embedded[len(active) :]
    offsets = np.cumsum([0] + [len(ps) for ps in parts])
    part_vectors = [rest[offsets[i] : offsets[i + 1]] for i in range(len(parts))]
    with sim.index_lock:
        served.index.upsert(active, vectors.astype(np.float32), part_vectors)
        served.index.delete(inactive)
    if active and not sim.indexed_once:  # after the write: an index this mark names was never empty for good
        sim.store.mark_indexed()
        sim.indexed_once = True
    if target is not None:  # a re-embed is running: the new model's collection gets the change too
        items = [Indexed(i.id, i.type, i.name, i.description, target.model.text_of(e.model_dump()))
                 for i, e in zip(active, live, strict=True)]  # fmt: skip
        new_vectors = target.embedder.embed([i.text for i in items]) if items else vectors[:0]
        with fresh_writes(sim), sim.index_lock:  # written and marked as one: a batch checks the marks
            target.index.upsert(items, new_vectors.astype(np.float32))
            target.index.delete(inactive)
            mark_fresh(sim, [i.id for i in items] + inactive)
    return [(item, vectors[i]) for i, item in enumerate(active)]


def _embedded(served: Served, texts: list[str], known: Mapping[str, np.ndarray]) -> np.ndarray:
    missing = list(dict.fromkeys(t for t in texts if t not in known))
    fresh = dict(zip(missing, served.embedder.embed(missing), strict=True)) if missing else {}
    if not texts:
        return np.zeros((0, served.model.dimension), dtype=np.float32)
    return np.stack([known[t] if t in known else fresh[t] for t in texts])


def delete_everywhere(sim: Similarity, entity_id: str) -> None:
    with sim.lock:
        served, target = sim.served(), sim.target
    with sim.index_lock:
        served.index.delete([entity_id])
    if target is not None:
        with fresh_writes(sim), sim.index_lock:
            target.index.delete([entity_id])
            mark_fresh(sim, [entity_id])


def fresh_writes(sim: Similarity) -> AbstractContextManager[object]:
    """Held while the consumer writes to a re-embed's collection and marks what it wrote, and while a batch
    checks the marks and writes (reembed.accept_batch): a Redis lock, since the batch may reach another
    replica than the consumer that writes. No job running: nothing to hold."""
    job_id = sim.store.current()
    return nullcontext() if job_id is None else sim.store.fresh_lock(job_id)


def mark_fresh(sim: Similarity, entity_ids: list[str]) -> None:
    """Tell the running re-embed these entities are already current in its collection."""
    job_id = sim.store.current()
    if job_id:
        sim.store.mark_fresh(job_id, entity_ids)
