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
from platograph.cursors import encode_cursor
from platograph.graph_api import pages
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
    """Active entities with after < id <= last, in id order (pages until past `last`)."""
    out: list[dict[str, Any]] = []
    for page in pages(graph, "/v1/entities", {"limit": 500} | ({"cursor": encode_cursor(after)} if after else {})):
        for entity in page:
            if entity["id"] > last:
                return out
            if entity["status"] == "active":
                out.append(entity)
    return out


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


def job_id_of(job_id: str, n: int) -> str:
    return f"reembed-{job_id}-{n}"


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
    if not pending:
        response = similarity.post(f"/v1/reembed/{job_id}/finish", timeout=None)
        if response.status_code >= 400:
            log.error("finishing re-embed %s failed: %s", job_id, response.text)
            store.finish(job_id, "failed", error=response.text[:500])
        return "finishing"
    failed = set(FailedJobRegistry(queue=queue).get_job_ids())
    with queue.connection.pipeline() as pipe:
        for n in pending:
            pipe.exists(Job.key_for(job_id_of(job_id, n)))
        exists = pipe.execute()
    for n, present in zip(pending, exists, strict=True):
        rq_id = job_id_of(job_id, n)
        if rq_id in failed:  # RQ's retries are spent: report it, go on with the rest
            fetched = Job.fetch(rq_id, connection=queue.connection, serializer=JSONSerializer)
            result = fetched.latest_result()
            store.mark_failed(job_id, n, (result.exc_string if result is not None else None) or "failed")
        elif not present:
            queue.enqueue(embed_batch, job_id, n, job_id=rq_id, retry=Retry(max=3, interval=[5, 30, 120]),
                          job_timeout=settings.reembed_batch_timeout_s, result_ttl=3600, failure_ttl=7 * 24 * 3600,
                          description=f"re-embed {job_id} batch {n}")  # fmt: skip
    return "running"


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
