"""Re-embedding outside the similarity process: batch jobs on RQ workers, and the coordinator.

A batch job reads its id range from the graph, embeds it with the new model and sends the vectors to the
similarity service, which owns the collections. The coordinator keeps one RQ job queued per unfinished
batch (RQ's retry support retries a failed one; one that fails for good is reported and the rest go on)
and, once every batch is in, asks the similarity service to finish the job. All state is in Redis, so
any of these processes can die and be restarted: at most the batches in flight are redone.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

import httpx
import numpy as np
import redis
from pydantic import Field
from rq import Queue, Retry
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from platograph import internal
from platograph.graph_api import entity_pages_between
from platograph.redis_clients import sync_redis
from platograph.settings import CoreSettings
from services.similarity.adapters.embedder import Embedder, load_embedder
from services.similarity.adapters.reembed_store import ReembedStore
from services.similarity.domain.models import REGISTRY

log = logging.getLogger(__name__)


class ReembedSettings(CoreSettings):
    graph_url: str = "http://127.0.0.1:8002"
    similarity_url: str = "http://127.0.0.1:8003"
    reembed_queue: str = "platograph-reembed"
    reembed_batch_timeout_s: int = Field(300, ge=5, le=3600)  # one batch's job; a dead worker's is retried after
    reembed_poll_s: float = Field(1.0, gt=0, le=60)


@cache
def _context() -> tuple[ReembedSettings, ReembedStore, httpx.Client, httpx.Client]:
    settings = ReembedSettings()
    store = ReembedStore(sync_redis(settings.redis_url), settings.stream)
    auth = internal.headers(settings.internal_token)
    graph = httpx.Client(base_url=settings.graph_url, timeout=60, headers=auth)
    similarity = httpx.Client(base_url=settings.similarity_url, timeout=120, headers=auth)
    return settings, store, graph, similarity


@cache
def _embedder(model_name: str) -> Embedder:
    model = REGISTRY[model_name]
    return load_embedder(model.runtime, model.max_tokens, threads=1)  # parallel across workers instead


def _entities(graph: httpx.Client, after: str, last: str) -> list[dict[str, Any]]:
    """Active entities with after < id <= last, in id order."""
    return [e for page in entity_pages_between(graph, after, last) for e in page]


def embed_batch(job_id: str, n: int) -> int:
    """RQ job: embed one batch with the job's model and hand it to the similarity service."""
    _, store, graph, similarity = _context()
    job = store.job(job_id)
    if job is None or job["status"] != "running":
        return 0
    spec = store.batch(job_id, n)
    model = REGISTRY[job["model"]]
    entities = _entities(graph, spec["after"], spec["last"])
    texts = [model.text_of(e) for e in entities]
    vectors = np.asarray(_embedder(model.name).embed(texts) if texts else [], dtype="<f4")
    items = [{"id": e["id"], "type": e["type"], "name": e["name"], "description": e["description"], "text": t}
             for e, t in zip(entities, texts, strict=True)]  # fmt: skip
    body = {"items": items, "vectors": base64.b64encode(vectors.tobytes()).decode()}
    response = similarity.post(f"/v1/reembed/{job_id}/batches/{n}", json=body)
    response.raise_for_status()
    return len(items)


def diff_shard(job_id: str, n: int) -> int:
    """RQ job: have the similarity service stage the new model's pairs for one id range (the diff)."""
    _, store, _, similarity = _context()
    job = store.job(job_id)
    if job is None or job["status"] != "running":
        return 0
    response = similarity.post(f"/v1/reembed/{job_id}/diff/{n}", timeout=None)
    response.raise_for_status()
    return int(response.json()["pairs"])


def job_id_of(job_id: str, n: int, phase: str = "") -> str:
    return f"reembed-{job_id}-{phase}{n}"


def tick(settings: ReembedSettings, store: ReembedStore, queue: Queue, similarity: httpx.Client) -> str | None:
    """One look at the current job: queue what is missing, report what failed for good, finish when done.
    Returns the job's status (None when no job runs)."""
    job_id = store.current()
    job = store.job(job_id) if job_id else None
    if job is None or job_id is None or job["status"] != "running":
        return None if job is None else str(job["status"])
    pending = store.pending_batches(job_id, job["batches"])
    if not pending and job["failed_batches"]:  # retried by RQ and failed for good: never switch to a part
        failed = job["failed_batches"]
        which = ", ".join(sorted(failed, key=int))
        error = f"{len(failed)} of {job['batches']} batches failed after their retries (batches {which})"
        log.error("re-embed %s: %s", job_id, error)
        store.finish(job_id, "failed", error=error)
        return "failed"
    if pending:
        for n, error in _queue(settings, queue, embed_batch, job_id, pending, "", "batch"):
            store.mark_failed(job_id, n, error)  # RQ's retries are spent: reported, the rest go on
        return "running"
    # Every batch is in: the diff, a shard an id range, then the switch (or the wait for a review).
    shards = store.pending_diff(job_id, job["batches"])
    if shards:
        failed_shards = _queue(settings, queue, diff_shard, job_id, shards, "diff-", "diff of range")
        if failed_shards:
            n, error = failed_shards[0]
            store.finish(job_id, "failed", error=f"the diff of range {n} failed after its retries: {error}"[:500])
            try:  # the ranges staged so far are of no use now
                similarity.delete(f"/v1/reembed/{job_id}/diff").raise_for_status()
            except httpx.HTTPError as exc:
                log.warning("staged pairs of failed re-embed %s not dropped: %s", job_id, exc)
            return "failed"
        return "diffing"
    response = similarity.post(f"/v1/reembed/{job_id}/finish", timeout=None)
    if response.status_code >= 400:
        log.error("finishing re-embed %s failed: %s", job_id, response.text)
        store.finish(job_id, "failed", error=response.text[:500])
    return "finishing"


def _queue(
    settings: ReembedSettings,
    queue: Queue,
    work: Callable[[str, int], int],
    job_id: str,
    ranges: list[int],
    phase: str,
    what: str,
) -> list[tuple[int, str]]:
    """Queue an RQ job for each range that has none; returns the ranges whose job failed after its retries
    (with the error), which are not queued again."""
    failed = set(FailedJobRegistry(queue=queue).get_job_ids())
    with queue.connection.pipeline() as pipe:
        for n in ranges:
            pipe.exists(Job.key_for(job_id_of(job_id, n, phase)))
        exists = pipe.execute()
    out = []
    for n, present in zip(ranges, exists, strict=True):
        rq_id = job_id_of(job_id, n, phase)
        if rq_id in failed:
            fetched = Job.fetch(rq_id, connection=queue.connection, serializer=JSONSerializer)
            result = fetched.latest_result()
            out.append((n, (result.exc_string if result is not None else None) or "failed"))
        elif not present:
            queue.enqueue(work, job_id, n, job_id=rq_id, retry=Retry(max=3, interval=[5, 30, 120]),
                          job_timeout=settings.reembed_batch_timeout_s, result_ttl=3600, failure_ttl=7 * 24 * 3600,
                          description=f"re-embed {job_id} {what} {n}")  # fmt: skip
    return out


def coordinate(stop: threading.Event | None = None) -> None:
    """Run the coordinator until stopped (one is enough; a second only repeats idempotent work)."""
    settings, store, _, similarity = _context()
    queue = Queue(settings.reembed_queue, connection=sync_redis(settings.rq_url), serializer=JSONSerializer)
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            tick(settings, store, queue, similarity)
        except (httpx.HTTPError, redis.RedisError) as exc:
            log.warning("re-embed coordinator: %s", exc)
        stop.wait(settings.reembed_poll_s)
