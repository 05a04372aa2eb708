"""Re-embedding, the similarity service's side: it owns the collections, so it plans a job, takes the
vectors workers computed, writes new and changed entities to both models while the job runs, works out
what the new model changes for users, and switches the alias (or back, for a rollback).

The workers (embedding batches) and the coordinator (queueing them, finishing the job) run elsewhere
(services.similarity.entrypoints.reembed_jobs) and reach this process over HTTP.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import numpy as np

from platograph.contracts import ModelSwitched, new_envelopes
from platograph.graph_api import pages
from services.similarity.adapters.index import Indexed
from services.similarity.bootstrap import Served, Similarity
from services.similarity.domain.candidates import PRODUCER
from services.similarity.domain.models import REGISTRY, ModelSpec
from services.similarity.service_layer import candidates, follow, reembed_diff, replicas
from services.similarity.service_layer.replicas import serve_model

log = logging.getLogger(__name__)
SAMPLE = 10


class ReembedError(ValueError):
    def __init__(self, status: int, loc: list[str], msg: str) -> None:
        super().__init__(msg)
        self.status, self.loc, self.msg = status, loc, msg


def plan(sim: Similarity, model: ModelSpec) -> list[dict[str, Any]]:
    """Batches by id ranges (keyset pages of the graph's entity list): `after` (exclusive), `last`, `count`."""
    batches: list[dict[str, Any]] = []
    after = ""
    size = sim.settings.reembed_batch_size or model.reembed_batch
    for page in pages(sim.graph, "/v1/entities", {"limit": size}):
        if page:
            batches.append({"after": after, "last": page[-1]["id"], "count": len(page)})
            after = page[-1]["id"]
    return batches


def set_alias(sim: Similarity, active: str, previous: str | None, why: str) -> None:
    """Switch the alias readers use (Redis), and say so in the journal (model.switched), which outlives
    Redis: a service that finds the alias gone takes it back from there (bootstrap.active_model)."""
    sim.store.set_alias(active, previous)
    candidates.publish(sim, new_envelopes([ModelSwitched(active=active, previous=previous, why=why)],
                                          producer=PRODUCER))  # fmt: skip


@replicas.changing
def start(sim: Similarity, model_name: str, review: bool, by: str = "") -> str:
    model = REGISTRY.get(model_name)
    if model is None:
        raise ReembedError(422, ["body", "model"], f"unknown model {model_name!r}; known: {', '.join(REGISTRY)}")
    if not model.installed:
        raise ReembedError(422, ["body", "model"], f"{model_name} is registered but its package is not installed")
    if model.name == sim.model.name:
        raise ReembedError(409, ["body", "model"], f"{model_name} is already the active model")
    running = sim.store.current()
    if running:
        raise ReembedError(409, ["body", "model"], f"re-embed {running} is still running")
    stale = serve_model(sim, model)  # a build starts empty: drop what an earlier one left
    stale.index.drop()
    if sim.store.alias().get("previous") == model.name:  # that was the rollback's collection: no rollback now
        set_alias(sim, sim.model.name, None, f"{model.name} rebuilt: no rollback to it")
    target = Served(model, stale.embedder, sim.opener(model))
    job_id = sim.store.create(model.name, sim.model.name, review, plan(sim, model), started_by=by)
    with sim.lock:
        sim.target = target
    log.info("re-embed %s: %s → %s", job_id, sim.model.name, model.name)
    return job_id


def restore(sim: Similarity) -> int:
    """Put the journal's re-embed records back into a Redis that lost them (they are appended with each
    change of status). A job the journal says was running or waiting for review cannot go on, since its
    batches' progress went with Redis: it ends failed, saying why, and can be started again. Returns the
    records put back."""
    try:
        response = sim.graph.get("/v1/reembed-jobs")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("re-embed records not checked against the journal (the graph did not answer: %s)", exc)
        return 0
    restored = 0
    for record in response.json()["items"]:
        if sim.store.has(record["id"]):
            continue
        sim.store.restore(record)
        restored += 1
        if record["status"] in ("running", "ready"):
            sim.store.finish(record["id"], "failed", error="its progress was lost with Redis's data (the journal "
                                                            "kept this record); start it again")  # fmt: skip
    if restored:
        log.warning("%d re-embed records restored from the journal", restored)
    return restored


@replicas.changing
def resume(sim: Similarity) -> None:
    """After a restart: put back job records Redis lost, keep writing to the target of an unfinished job,
    and let the candidates follow a switch that a crash interrupted."""
    restore(sim)
    follow.resume(sim)
    job_id = sim.store.current()
    job = sim.store.job(job_id) if job_id else None
    if job is None or job_id is None or job["status"] not in ("running", "ready") or not REGISTRY.get(job["model"]):
        return
    if sim.store.alias().get("active") == job["model"]:
        # The crash came after the switch and before the job was marked done: the switch stands (the
        # candidates follow it, as follow.resume saw to), only the record is missing.
        sim.store.finish(job_id, "done", note="completed after a restart interrupted the switch")
        log.info("re-embed %s: the switch to %s had happened; marked done", job_id, job["model"])
        return
    with sim.lock:
        sim.target = serve_model(sim, REGISTRY[job["model"]])


def accept_batch(sim: Similarity, job_id: str, n: int, items: list[Indexed], vectors: np.ndarray) -> bool:
    """Write a worker's batch into the target collection (deterministic point ids: a redone batch
    replaces its points) and count it once."""
    job = sim.store.job(job_id)
    if job is None or job["status"] != "running":
        raise ReembedError(409, ["path", "job"], f"re-embed {job_id} is not running")
    target = replicas.target_of(sim, job["model"])
    if target is None:
        raise ReembedError(409, ["path", "job"], f"re-embed {job_id} has no open target collection here")
    if len(items) and vectors.shape[1] != target.model.dimension:
        msg = f"rows of {vectors.shape[1]} values, where {target.model.name} makes {target.model.dimension}"
        raise ReembedError(422, ["body", "vectors"], msg)
    # An entity the consumer wrote meanwhile is newer than what this batch read: keep the consumer's. Read
    # under the lock the consumer writes and marks under, so no change lands between the check and the write.
    with sim.store.fresh_lock(job_id), sim.index_lock:
        fresh = sim.store.fresh(job_id, [i.id for i in items])
        kept = [(i, v) for i, v in zip(items, vectors, strict=True) if i.id not in fresh]
        if kept:
            target.index.upsert([i for i, _ in kept], np.asarray([v for _, v in kept], dtype=np.float32))
    return sim.store.mark_done(job_id, n, len(items))


@replicas.changing
def flip(sim: Similarity, job_id: str) -> None:
    """Switch the alias to the job's model; the old collection stays for a rollback."""
    with sim.index_lock, sim.lock:
        target = sim.target
        if target is None:
            raise ReembedError(409, ["path", "job"], f"re-embed {job_id} has no target to switch to")
        sim.store.follow_candidates(job_id)
        target.index.activate()
        old = sim.switch(target)
        if sim.previous is not None and sim.previous.model.name != old.model.name:
            sim.previous.index.close()
        sim.previous, sim.target = old, None
        set_alias(sim, target.model.name, old.model.name, f"re-embed {job_id}")
    sim.store.finish(job_id, "done")
    follow.start(sim, job_id)
    log.info("re-embed %s: %s now answers (%s kept for a rollback)", job_id, target.model.name, old.model.name)


@replicas.changing
def rollback(sim: Similarity) -> dict[str, str]:
    if sim.store.current():
        raise ReembedError(409, ["body"], f"re-embed {sim.store.current()} is running; wait for it to finish")
    previous_name = sim.store.alias().get("previous")
    if not previous_name or previous_name not in REGISTRY:
        raise ReembedError(409, ["body"], "there is no previous model to return to")
    back = serve_model(sim, REGISTRY[previous_name])
    tag = f"rollback-{int(time.time() * 1000)}"
    with sim.index_lock, sim.lock:
        sim.store.follow_candidates(tag)
        back.index.activate()
        old = sim.switch(back)
        sim.previous = old
        set_alias(sim, back.model.name, old.model.name, "rollback")
    follow.start(sim, tag)
    return {"active": back.model.name, "previous": old.model.name}


@replicas.changing
def finish(sim: Similarity, job_id: str) -> None:
    """Every batch is in: work out the diff, then switch, or wait for a person to approve."""
    job = sim.store.job(job_id)
    if job is None or job["status"] != "running":
        raise ReembedError(409, ["path", "job"], f"re-embed {job_id} is not running")
    if job["failed_batches"] or job["done_batches"] != job["batches"]:
        # Switching now would answer from an incomplete collection, and withdraw every candidate it misses.
        msg = (f"re-embed {job_id} has {job['done_batches']} of {job['batches']} batches done and "
               f"{len(job['failed_batches'])} failed: it cannot switch to an incomplete collection")  # fmt: skip
        raise ReembedError(409, ["path", "job"], msg)
    with sim.lock:
        target = sim.target
    if target is None:
        raise ReembedError(409, ["path", "job"], f"re-embed {job_id} has no open target collection here")
    try:
        found = reembed_diff.compute(sim, job_id, sim.served().model.key, target.model.key)
    except reembed_diff.DiffError as exc:
        raise ReembedError(exc.status, ["path", "job"], exc.msg) from exc
    sim.store.update(job_id, diff=found)
    reembed_diff.drop(sim, job_id)
    if job["review"]:
        sim.store.update(job_id, status="ready")
    else:
        flip(sim, job_id)


@replicas.changing
def cancel(sim: Similarity, job_id: str) -> None:
    """Stop a job that has not switched: its workers find it cancelled, its collection is dropped."""
    job = sim.store.job(job_id)
    if job is None or job["status"] not in ("running", "ready"):
        raise ReembedError(409, ["path", "job"], f"re-embed {job_id} is not running or waiting for review")
    sim.store.finish(job_id, "cancelled")
    reembed_diff.drop(sim, job_id)
    with sim.lock:
        target, sim.target = sim.target, None
    if target is not None:
        with sim.index_lock:
            target.index.drop()


@replicas.changing
def drop_previous(sim: Similarity) -> dict[str, str | None]:
    """Delete the collection kept for a rollback (there is no rollback after this)."""
    if sim.store.current():
        raise ReembedError(409, ["body"], f"re-embed {sim.store.current()} is running; wait for it to finish")
    name = sim.store.alias().get("previous")
    if not name or name not in REGISTRY:
        raise ReembedError(409, ["body"], "no previous collection is kept")
    serve_model(sim, REGISTRY[name]).index.drop()
    with sim.lock:
        set_alias(sim, sim.model.name, None, f"{name} dropped")
    return {"active": sim.model.name, "dropped": name}
