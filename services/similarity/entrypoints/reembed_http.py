"""Re-embedding endpoints of the similarity service (the gateway forwards the public ones)."""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from platograph.api.similarity import Start
from platograph.internal import ACTOR_HEADER, actor_label
from services.similarity.adapters.index import Indexed
from services.similarity.bootstrap import Similarity
from services.similarity.entrypoints.deps import SimDep
from services.similarity.service_layer import reembed, reembed_diff

router = APIRouter(prefix="/v1/reembed", tags=["re-embedding"])


class BatchItem(BaseModel):
    id: str
    type: str
    name: str = ""
    description: str = ""
    text: str = ""


class Batch(BaseModel):
    items: list[BatchItem] = Field(max_length=10_000)
    # Binary, not a JSON list of floats: for a batch of 256 that was 2 MB and ~40 ms of encoding in the
    # worker plus the parse here, a few per cent of the job on the cores the encoder needs.
    vectors: str = Field(description="base64 of the vectors as little-endian float32, row after row")


def _rows(body: Batch) -> np.ndarray:
    """The batch's vectors, one row per item; 422 naming `vectors` if they are not that."""

    def refuse(msg: str) -> HTTPException:
        return HTTPException(422, detail=[{"loc": ["body", "vectors"], "msg": msg, "type": "value_error"}])

    try:
        raw = base64.b64decode(body.vectors, validate=True)
    except ValueError as exc:  # binascii.Error, or text that is not even ASCII
        raise refuse(f"not base64: {exc}") from exc
    rows = len(body.items)
    if rows == 0:  # every entity of the range was retracted: the batch still counts
        if raw:
            raise refuse("vectors for no items")
        return np.zeros((0, 0), dtype=np.float32)
    if len(raw) % (4 * rows):
        raise refuse(f"{len(raw)} bytes do not make {rows} rows of float32")
    vectors = np.frombuffer(raw, dtype="<f4").reshape(rows, -1)
    if not np.isfinite(vectors).all():
        raise refuse("not every value is a finite number")
    return vectors


async def reembed_error(_: Request, exc: Exception) -> JSONResponse:
    """A refused re-embedding step (registered on the app): its status, and a detail naming the field."""
    if not isinstance(exc, reembed.ReembedError):
        raise exc
    return JSONResponse({"detail": [{"loc": exc.loc, "msg": exc.msg, "type": "reembed"}]}, status_code=exc.status)


# Who asks (the actor the gateway authenticated, as JSON); absent for an internal caller.
ActorName = Annotated[str, Header(alias=ACTOR_HEADER, max_length=1000)]


def progress(sim: Similarity, job_id: str) -> dict[str, Any]:
    job = sim.store.job(job_id)
    if job is None:
        raise HTTPException(404, detail=[{"loc": ["path", "job"], "msg": f"no re-embed {job_id}", "type": "not_found"}])
    elapsed = max(1e-6, (job.get("finished_at") or time.time()) - job["started_at"])
    rate = job["done"] / elapsed
    left = max(0, job["total"] - job["done"])
    return job | {"rate": round(rate, 1), "eta_s": round(left / rate, 1) if rate > 0 and left else 0.0}


@router.post("", status_code=202)
async def start(body: Start, sim: SimDep, actor: ActorName = "") -> dict[str, Any]:
    """Start re-embedding every entity with another model, in the background (RQ workers). The current
    model keeps answering; new and changed entities go to both; at the end the alias switches."""
    job_id = await run_in_threadpool(reembed.start, sim, body.model, body.review, actor_label(actor) or "")
    return progress(sim, job_id)


@router.get("/current")
def current(sim: SimDep) -> dict[str, Any]:
    job_id = sim.store.current()
    return {"job": progress(sim, job_id) if job_id else None, "alias": sim.store.alias()}


@router.get("/{job}")
def get(job: str, sim: SimDep) -> dict[str, Any]:
    """Status (running, ready, done, failed, …), counts, rate, ETA and, once computed, the candidate diff."""
    return progress(sim, job)


@router.post("/{job}/batches/{n}")
def batch(job: str, n: int, body: Batch, sim: SimDep) -> dict[str, Any]:
    """A worker's vectors for one batch (internal)."""
    items = [Indexed(id=i.id, type=i.type, name=i.name, description=i.description, text=i.text) for i in body.items]
    counted = reembed.accept_batch(sim, job, n, items, _rows(body))
    return {"counted": counted}


@router.post("/{job}/diff/{n}")
def diff_shard(job: str, n: int, sim: SimDep) -> dict[str, Any]:
    """Stage what the new model proposes for the entities of range `n` (internal: an RQ job of the
    coordinator's calls it once every batch is in)."""
    try:
        return {"pairs": reembed_diff.shard(sim, job, n)}
    except reembed_diff.DiffError as exc:
        raise HTTPException(exc.status, detail=[{"loc": ["path", "n"], "msg": exc.msg, "type": "reembed"}]) from exc


@router.delete("/{job}/diff")
def drop_diff(job: str, sim: SimDep) -> dict[str, Any]:
    """Forget the pairs the job's diff staged (internal: the coordinator calls it when the diff failed)."""
    progress(sim, job)  # 404 for a job that does not exist
    reembed_diff.drop(sim, job)
    return {"job": job}


@router.post("/{job}/finish")
def finish(job: str, sim: SimDep) -> dict[str, Any]:
    """All batches are in (internal, the coordinator calls it): compute the candidate diff, then switch
    unless the job waits for review."""
    reembed.finish(sim, job)
    return progress(sim, job)


@router.post("/{job}/approve")
def approve(job: str, sim: SimDep, actor: ActorName = "") -> dict[str, Any]:
    """Switch to the new model after reviewing the diff."""
    found = progress(sim, job)
    if found["status"] != "ready":
        raise HTTPException(409, detail=[{"loc": ["path", "job"], "msg": f"re-embed {job} is {found['status']}",
                                          "type": "reembed"}])  # fmt: skip
    sim.store.note(job, "approved_by", actor_label(actor) or "")
    reembed.flip(sim, job)
    return progress(sim, job)


@router.delete("/previous")
def drop_previous(sim: SimDep) -> dict[str, str | None]:
    """Delete the collection kept for a rollback."""
    return reembed.drop_previous(sim)


@router.post("/{job}/cancel")
def cancel(job: str, sim: SimDep, actor: ActorName = "") -> dict[str, Any]:
    """Stop a job before it switches; the new collection is dropped and the old model goes on answering."""
    reembed.cancel(sim, job)
    sim.store.note(job, "cancelled_by", actor_label(actor) or "")
    return progress(sim, job)


@router.post("/rollback")
def rollback(sim: SimDep) -> dict[str, str]:
    """Switch back to the model that answered before the last switch (its collection was kept)."""
    return reembed.rollback(sim)
