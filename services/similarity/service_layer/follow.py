"""After the answering model changes (a re-embed's switch, or a rollback), the candidates follow it.

Candidates are events, projected by the graph; the switch itself changes only which collection answers.
So, in the background, every entity's candidates are proposed again from the new model (a re-proposal
updates the pair's score, kind and model), and pairs still proposed by another model that the new one does
not propose are withdrawn. Pairs the consumer proposes meanwhile already carry the new model, so they are
never withdrawn here. A Redis marker, set before the switch and cleared after the last event is appended,
makes this survive a crash: the next start does it again (event ids are derived from the content, so a
redone pass adds nothing twice to the journal). One replica runs the pass at a time (a Redis lock it keeps
extending); the others leave it to that one.

Every pair state the pass sets names as its cause the position the graph had projected through when the
pass began: an edge added up to there is known to the pass, which does not propose its pair; one added
after withdraws the pair with a later cause, which wins in the graph whatever the order the two events
arrive in.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

import httpx
import numpy as np
from redis.exceptions import LockError, RedisError
from redis.lock import Lock
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from platograph.contracts import CandidateWithdrawn, Frozen, new_envelopes
from platograph.graph_api import entity_ids, pages, projected_through
from services.similarity.adapters import graph_reads
from services.similarity.bootstrap import Similarity
from services.similarity.domain.candidates import PRODUCER
from services.similarity.service_layer import candidates

log = logging.getLogger(__name__)
NAMESPACE = uuid.UUID("0d3c7f6e-5b1a-4f7e-8a0c-2f6b9e4d1c37")
CHUNK = 1000


def follow(sim: Similarity, tag: str, beat: Callable[[], object] = lambda: None) -> dict[str, int]:
    """Propose every entity's candidates from the active model; withdraw other models' leftovers. Entities
    are taken a thousand at a time and events appended as they come, so memory holds pair names only.
    `beat` is called between chunks (the pass's lock is extended there)."""
    served = sim.served()
    model = served.model.key
    cause = projected_through(sim.graph)
    ids = entity_ids(sim.graph)
    seen: set[tuple[str, str]] = set()
    pending: list[Frozen] = []

    def append(flush: bool = False) -> None:
        if pending and (flush or len(pending) >= CHUNK):
            pending[:] = [p.model_copy(update={"cause": cause}) for p in pending]
            event_ids = [uuid.uuid5(NAMESPACE, f"{tag}|{model}|{p.model_dump_json()}") for p in pending]
            candidates.publish(sim, new_envelopes(pending, producer=PRODUCER, event_ids=event_ids))
            pending.clear()

    for start_at in range(0, len(ids), 1000):
        beat()
        chunk = ids[start_at : start_at + 1000]
        blocked = graph_reads.linked(sim.graph, chunk)
        indexed = []
        for entity_id in chunk:
            with sim.index_lock:
                found = served.index.lookup(entity_id)
            if found is not None:  # else retracted or merged: not indexed
                indexed.append((found[0], np.asarray(found[1], dtype=np.float32)))
        exclude = [blocked.get(item.id, set()) for item, _ in indexed]
        for candidate in candidates.candidates_for(sim, indexed, exclude):
            if (candidate.a, candidate.b) not in seen:
                seen.add((candidate.a, candidate.b))
                pending.append(candidate)
            append()
    stale = sorted(
        (c["a"]["id"], c["b"]["id"])
        for page in pages(sim.graph, "/v1/candidates", {"status": "proposed", "limit": 500})
        for c in page
        if c["model"] != model and (c["a"]["id"], c["b"]["id"]) not in seen
    )
    reason = f"not proposed by {model}, which now answers"
    for a, b in stale:
        pending.append(CandidateWithdrawn(a=a, b=b, reason=reason))
        append()
    append(flush=True)
    return {"proposed": len(seen), "withdrawn": len(stale)}


def start(sim: Similarity, tag: str) -> threading.Thread:
    """Run `follow` in the background; the marker (set by the caller before switching) is cleared when done."""

    # The graph may be starting too (a restart of everything): retry what a server being away explains.
    patient = retry(
        retry=retry_if_exception_type((httpx.TransportError, httpx.HTTPStatusError, RedisError)),
        wait=wait_exponential(multiplier=0.5, max=30),
        stop=stop_after_delay(3600),
        reraise=True,
    )

    def run() -> None:
        lock = sim.store.follow_lock()
        if not lock.acquire(blocking=False):
            log.info("candidates follow %s on another replica", tag)
            return
        try:
            counts = patient(follow)(sim, tag, lock.reacquire)
        except Exception:
            log.exception("candidates did not follow the model switch (%s); the next start tries again", tag)
            return
        finally:
            _release(lock)
        sim.store.candidates_followed(tag, counts)
        log.info("candidates follow %s (%s): %s", sim.model.key, tag, counts)

    thread = threading.Thread(target=run, name="candidates-follow", daemon=True)
    thread.start()
    return thread


def _release(lock: Lock) -> None:
    try:
        lock.release()
    except LockError:  # expired meanwhile (a pause longer than its timeout): nothing to release
        pass


def resume(sim: Similarity) -> None:
    """After a restart: finish a pass a crash interrupted."""
    tag = sim.store.candidates_to_follow()
    if tag:
        start(sim, tag)
