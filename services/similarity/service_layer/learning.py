"""Thresholds learned from decisions: after an entry holding a decision (a candidate accepted, rejected or
taken back, or a typed edge added directly), the type pairs it touched are learned again from every
decision on them (domain/thresholds.py); a threshold that moves is appended as `threshold.changed`, and
the candidates follow it in the background: a raised threshold withdraws the proposed pairs below it, a
lowered one proposes the pairs that now reach it (a search from each entity of one type among the other).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

import httpx
import numpy as np

from platograph.contracts import (
    CandidateAccepted,
    CandidateProposed,
    CandidateRejected,
    CandidateUnrejected,
    CandidateWithdrawn,
    EdgeAdded,
    Envelope,
    Frozen,
    ThresholdChanged,
    new_envelopes,
    parse_payload,
)
from platograph.graph_api import pages, wait_for_projection
from services.similarity.adapters import graph_reads
from services.similarity.bootstrap import Similarity
from services.similarity.domain.candidates import PRODUCER, SUGGESTION_ORDER, pair
from services.similarity.domain.thresholds import STEP, learn, pair_key
from services.similarity.service_layer import candidates

log = logging.getLogger(__name__)
NAMESPACE = uuid.UUID("5e0d1c9a-7b2f-4e31-9a8d-3c6f1b2e4d70")
CHUNK = 1000
PROJECTION_WAIT_S = 300.0  # a pass that waits longer for the graph gives up (logged; the next change redoes it)
# Edge types that say two entities belong together as a candidate would: a person adding one directly made
# the decision a candidate asks for. Structural edges (extracted_from, introduces, …) say nothing of it.
JUDGED_EDGES = frozenset((*SUGGESTION_ORDER, "contradicts"))


def type_of(entity_id: str) -> str:
    return entity_id.partition(":")[0]


def observe_edge(sim: Similarity, source: str, target: str) -> str | None:
    """A typed edge a person added directly: its pair's cosine is a positive decision. Returns the type
    pair, or None when either end is not indexed."""
    served = sim.served()
    with sim.index_lock:
        ends = [served.index.lookup(source), served.index.lookup(target)]
    if ends[0] is None or ends[1] is None:
        return None
    score = float(np.dot(np.asarray(ends[0][1], dtype=np.float32), np.asarray(ends[1][1], dtype=np.float32)))
    key = pair_key(ends[0][0].type, ends[1][0].type)
    sim.thresholds.add_label(served.model.key, key, score, True)
    return key


def decisions(sim: Similarity, key: str, model: str) -> list[tuple[float, bool]]:
    """Every decision on a type pair for a model: candidates accepted and rejected (the graph's), and the
    typed edges added directly (kept here)."""
    labeled = sim.thresholds.labels(model, key)
    for status, label in (("accepted", True), ("rejected", False)):
        for page in pages(sim.graph, "/v1/candidates", {"status": status, "type_pair": key, "limit": 500}):
            labeled += [(float(c["score"]), label) for c in page if c["model"] == model]
    return labeled


def relearn(sim: Similarity, key: str) -> tuple[ThresholdChanged | None, dict[str, Any]]:
    """Learn a type pair's threshold again: the change, if it moved (none for a configured pair), and the
    record to keep (saved by the caller once the change is appended: see `learn_after`)."""
    model = sim.served().model.key
    result = learn(decisions(sim, key, model), sim.threshold, sim.settings.threshold_target_precision,
                   sim.settings.threshold_min_decisions)  # fmt: skip
    before = sim.thresholds.record(model, key)
    previous = float(before["threshold"]) if before else sim.threshold
    moved = abs(result.threshold - previous) >= STEP / 2
    since = time.time() if moved or before is None else before["since"]
    record = result.as_dict() | {"since": since}
    configured = key in {pair_key(*k.split("|", 1)) for k in sim.settings.thresholds}
    if not moved or configured:
        return None, record
    a_type, b_type = key.split("|")
    change = ThresholdChanged(
        a_type=a_type,
        b_type=b_type,
        model=model,
        threshold=result.threshold,
        previous=previous,
        learned=result.learned,
        decisions=result.decisions,
        positives=result.positives,
        negatives=result.negatives,
        precision=result.precision,
        recall=result.recall,
        target_precision=sim.settings.threshold_target_precision,
    )
    return change, record


def follow(sim: Similarity, change: ThresholdChanged, tag: str, cause: str) -> dict[str, int]:
    """Make the proposed candidates of the type pair match its new threshold. What it appends names as its
    cause the entry the change was appended in, once the graph has projected that far (so every edge and
    decision before it is known here), and so wins over what earlier entries caused."""
    deadline = time.monotonic() + PROJECTION_WAIT_S
    while not wait_for_projection(sim.graph, cause):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the graph has not projected {cause} in {PROJECTION_WAIT_S:.0f} s")
    key = pair_key(change.a_type, change.b_type)
    pending: list[Frozen] = []
    counts = {"proposed": 0, "withdrawn": 0}

    def append(flush: bool = False) -> None:
        if pending and (flush or len(pending) >= CHUNK):
            payloads = [p.model_copy(update={"cause": cause}) for p in pending]
            ids = [uuid.uuid5(NAMESPACE, f"{tag}|{p.model_dump_json()}") for p in payloads]
            candidates.publish(sim, new_envelopes(payloads, producer=PRODUCER, event_ids=ids))
            pending.clear()

    if change.threshold > change.previous:
        reason = f"below the threshold learned for {key}: {change.threshold}"
        below = {"status": "proposed", "type_pair": key, "max_score": change.threshold, "limit": 500}
        for page in pages(sim.graph, "/v1/candidates", below):
            for c in page:
                if c["score"] < change.threshold and c["model"] == change.model:
                    pending.append(CandidateWithdrawn(a=c["a"]["id"], b=c["b"]["id"], reason=reason))
                    counts["withdrawn"] += 1
                    append()
    else:
        for found in _reaching(sim, change):
            pending.append(found)
            counts["proposed"] += 1
            append()
    append(flush=True)
    return counts


def _reaching(sim: Similarity, change: ThresholdChanged) -> Iterable[CandidateProposed]:
    """Pairs of the type pair whose cosine is at or above the new threshold and below the old one, with no
    typed edge or rejection between them: a search from each entity of one type among the other type."""
    served = sim.served()
    seen: set[tuple[str, str]] = set()
    for page in pages(sim.graph, "/v1/entities", {"type": change.a_type, "limit": 500}):
        ids = [e["id"] for e in page if e["status"] == "active"]
        blocked = graph_reads.linked(sim.graph, ids)
        for entity_id in ids:
            with sim.index_lock:
                found = served.index.lookup(entity_id)
                if found is None:
                    continue
                hits = served.index.search(found[1], limit=sim.settings.candidates_per_entity,
                                           min_score=change.threshold, types=[change.b_type],
                                           exclude=sorted(blocked.get(entity_id, set()) | {entity_id}))  # fmt: skip
            for hit in hits:
                pair_ids = tuple(sorted((entity_id, hit.entity.id)))
                if hit.score < change.previous and pair_ids not in seen:
                    seen.add(pair_ids)
                    yield candidates.proposal(sim, served.model.key, found[0], hit)


def touched(sim: Similarity, envelopes: list[Envelope]) -> set[str]:
    """The type pairs the decisions in one stream entry are about (none when learning is off); the cosine
    of each typed edge added directly is kept as a decision on the way."""
    if not sim.settings.learn_thresholds:
        return set()
    decided: set[str] = set()
    accepted: set[tuple[str, str]] = set()
    direct: list[tuple[str, str]] = []
    for envelope in envelopes:
        payload = None if envelope.producer == PRODUCER else parse_payload(envelope)
        if isinstance(payload, CandidateAccepted | CandidateRejected | CandidateUnrejected):
            decided.add(pair_key(type_of(payload.a), type_of(payload.b)))
            if isinstance(payload, CandidateAccepted):
                accepted.add(pair(payload.a, payload.b))
        elif isinstance(payload, EdgeAdded) and payload.type in JUDGED_EDGES:
            direct.append((payload.source, payload.target))
    for source, target in direct:
        if pair(source, target) not in accepted and (key := observe_edge(sim, source, target)) is not None:
            decided.add(key)
    return decided


def learn_after(sim: Similarity, keys: set[str], entry_id: str) -> int:
    """Learn these type pairs again after a read of decisions (each once, however many decisions it held)
    and append what moved; returns how many moved. In this order, so a crash anywhere redoes what is
    missing when the read is delivered again: the `threshold.changed` events are appended (their ids come
    from the entry that closed the read: a redone read appends the same ones, which the journal keeps
    once), each candidates pass is marked pending in Redis, the thresholds are saved (a redone read finds
    them moved only until then), and the passes run (`resume` runs those a crash interrupted)."""
    learned = {key: relearn(sim, key) for key in sorted(keys)}
    changes = [change for change, _ in learned.values() if change is not None]
    envelopes = new_envelopes(changes, producer=PRODUCER, event_ids=[
        uuid.uuid5(NAMESPACE, f"{entry_id}|{c.model_dump_json()}") for c in changes]) if changes else []  # fmt: skip
    cause = candidates.publish(sim, envelopes) or entry_id
    for envelope in envelopes:
        sim.thresholds.pending_follow(str(envelope.event_id), {"change": envelope.payload, "cause": cause})
    model = sim.served().model.key
    for key, (change, record) in learned.items():
        sim.thresholds.save(model, key, record)
        if change is not None and change.learned:
            sim.learned[key] = change.threshold
        elif change is not None:
            sim.learned.pop(key, None)
    for envelope in envelopes:
        apply(sim, ThresholdChanged.model_validate(envelope.payload), str(envelope.event_id), cause)
    return len(changes)


def apply(sim: Similarity, change: ThresholdChanged, tag: str, cause: str) -> Future[None]:
    """Run `follow` in the background (a type pair's pass can search every entity of one type), one pass
    after another in the order the changes came."""

    def run() -> None:
        try:
            counts = follow(sim, change, tag, cause)
        except (httpx.HTTPError, OSError, TimeoutError):
            log.exception("candidates did not follow the threshold of %s|%s (the next start tries again)",
                          change.a_type, change.b_type)  # fmt: skip
            return
        sim.thresholds.followed(tag)
        log.info("candidates follow the threshold %s of %s|%s: %s", change.threshold, change.a_type,
                 change.b_type, counts)  # fmt: skip

    return sim.follower.submit(run)


def resume(sim: Similarity) -> int:
    """After a restart: run again the candidates passes a crash or an outage left unfinished, in order."""
    pending = sim.thresholds.pending_follows()
    for tag, record in pending:
        apply(sim, ThresholdChanged.model_validate(record["change"]), tag, record["cause"])
    return len(pending)


def refresh(sim: Similarity) -> None:
    """Take the learned thresholds of the answering model from Redis (another replica may have moved one)."""
    model = sim.served().model.key
    records = sim.thresholds.records(model)
    sim.learned = {key: float(r["threshold"]) for key, r in records.items() if r.get("learned")}


def restore(sim: Similarity) -> int:
    """Put the journal's learned thresholds back into a Redis that lost them; returns how many."""
    model = sim.served().model.key
    if sim.thresholds.records(model):
        return 0
    try:
        response = sim.graph.get("/v1/learned-thresholds", params={"model": model})
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("learned thresholds not checked against the journal (the graph did not answer: %s)", exc)
        return 0
    items: list[dict[str, Any]] = response.json()["items"]
    for item in items:
        record = {k: item[k] for k in ("threshold", "learned", "decisions", "positives", "negatives", "precision",
                                       "recall")} | {"since": item["since"]}  # fmt: skip
        sim.thresholds.save(model, pair_key(item["a_type"], item["b_type"]), record)
    refresh(sim)
    return len(items)
