"""After the answering model changes (a re-embed's switch, or a rollback), the candidates follow it.

Candidates are events, projected by the graph; the switch itself changes only which collection answers.
So, in the background, every entity's candidates are proposed again from the new model (a re-proposal
updates the pair's score, kind and model), and pairs still proposed by another model that the new one does
not propose are withdrawn. Pairs the consumer proposes meanwhile already carry the new model, so they are
never withdrawn here. A Redis marker, set before the switch and cleared after the last event is appended,
makes this survive a crash: the next start goes on from the last page done (a pair's event id is derived
from the pass and the pair, so what is redone adds nothing twice to the journal). One replica runs the pass
at a time (a Redis lock it keeps extending); the others leave it to that one.

The pass holds a page of entities at a time, never the corpus's ids or pairs: a pair found from both its
sides, on two pages, is appended twice with one event id (the journal and the webhooks keep the first),
and the withdrawals come last, once the graph has projected every proposal, from the pairs it still lists
as proposed by another model.

Every pair state the pass sets names as its cause the position the graph had projected through when its
page began: an edge added up to there is known to the pass, which does not propose its pair; one added
after withdraws the pair with a later cause, which wins in the graph whatever the order the two events
arrive in.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

import httpx
import numpy as np
from redis.exceptions import LockError, RedisError
from redis.lock import Lock
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from platograph.contracts import CandidateProposed, CandidateWithdrawn, new_envelopes
from platograph.graph_api import entity_pages_between, projected_through
from services.similarity.adapters import graph_reads
from services.similarity.bootstrap import Similarity
from services.similarity.domain.candidates import PRODUCER
from services.similarity.service_layer import candidates

log = logging.getLogger(__name__)
NAMESPACE = uuid.UUID("0d3c7f6e-5b1a-4f7e-8a0c-2f6b9e4d1c37")
CHUNK = 500  # entities a page (the graph's largest), and withdrawals a page
PROJECTION_WAIT_S = 600


def _publish(
    sim: Similarity, tag: str, model: str, cause: str | None, payloads: list[CandidateProposed | CandidateWithdrawn]
) -> str | None:
    events = [p.model_copy(update={"cause": cause}) for p in payloads]
    # One id for a pair's proposal in this pass, whichever side (page) found it.
    ids = [uuid.uuid5(NAMESPACE, f"{tag}|{model}|{type(p).__name__}|{p.a}|{p.b}") for p in events]
    return candidates.publish(sim, new_envelopes(events, producer=PRODUCER, event_ids=ids))


def propose(sim: Similarity, tag: str, beat: Callable[[], object]) -> bool:
    """Propose every entity's candidates from the active model, a page of entities at a time, from where a
    crashed pass stopped. Returns whether it appended anything."""
    served = sim.served()
    model = served.model.key
    appended = False
    for page in entity_pages_between(sim.graph, sim.store.follow_cursor(tag) or "", None, page_size=CHUNK):
        beat()
        cause = projected_through(sim.graph)
        ids = [e["id"] for e in page]
        blocked = graph_reads.linked(sim.graph, ids)
        indexed = []
        for entity_id in ids:
            with sim.index_lock:
                found = served.index.lookup(entity_id)
            if found is not None:  # else retracted or merged since: not indexed
                indexed.append((found[0], np.asarray(found[1], dtype=np.float32)))
        exclude = [blocked.get(item.id, set()) for item, _ in indexed]
        # Both sides of a pair on this page: one event.
        proposals = {(c.a, c.b): c for c in candidates.candidates_for(sim, indexed, exclude)}
        appended = _publish(sim, tag, model, cause, list(proposals.values())) is not None or appended
        sim.store.follow_progress(tag, ids[-1])
    return appended


def withdraw(sim: Similarity, tag: str, beat: Callable[[], object]) -> int:
    """Withdraw what the graph still lists as proposed by another model (call once it has projected every
    proposal of the pass). Returns how many."""
    model = sim.served().model.key
    reason = f"not proposed by {model}, which now answers"
    withdrawn, after = 0, None
    while True:
        beat()
        cause = projected_through(sim.graph)
        params: dict[str, str | int] = {"status": "proposed", "model_not": model, "limit": CHUNK}
        if after:
            params["after"] = after
        response = sim.graph.get("/v1/candidate-pairs", params=params)
        response.raise_for_status()
        page = response.json()
        payloads: list[CandidateProposed | CandidateWithdrawn] = [
            CandidateWithdrawn(a=a, b=b, reason=reason) for a, b in page["items"]
        ]
        _publish(sim, tag, model, cause, payloads)
        withdrawn += len(payloads)
        if not (after := page["next_after"]):
            return withdrawn


def _projected(sim: Similarity, position: str) -> bool:
    """Whether the graph has projected through `position` (waiting up to 5 s); a busy graph (429) has not:
    withdrawing before the proposals are projected would withdraw pairs the pass just proposed."""
    response = sim.graph.get("/v1/projection", params={"position": position, "wait_ms": 5000})
    return response.status_code == 200 and bool(response.json()["reached"])


def follow(sim: Similarity, tag: str, beat: Callable[[], object] = lambda: None) -> dict[str, int]:
    """Propose every entity's candidates from the active model; withdraw other models' leftovers. `beat`
    is called between pages (the pass's lock is extended there)."""
    resumed = sim.store.follow_cursor(tag) is not None
    position = None
    if propose(sim, tag, beat) or resumed:
        # Everything appended so far, not only this run's last append: a pass resumed after a crash may
        # have proposed its pairs before it, and they must be projected before anything is withdrawn.
        position = sim.consumer.last_issued()
    deadline = time.monotonic() + PROJECTION_WAIT_S
    while position is not None and not _projected(sim, position):
        beat()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the graph did not project the proposals through {position}")
    withdrawn = withdraw(sim, tag, beat)
    params = {"status": "proposed", "model": sim.served().model.key}
    response = sim.graph.get("/v1/candidate-pairs/count", params=params)
    response.raise_for_status()
    return {"proposed": int(response.json()["count"]), "withdrawn": withdrawn}


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
