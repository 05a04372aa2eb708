"""Re-embedding endpoints of the similarity service (the gateway forwards the public ones)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.similarity import reembed
from services.similarity.adapters.index import Indexed
from services.similarity.bootstrap import Similarity
from services.similarity.domain.reembed import Start

router = APIRouter(prefix="/v1/reembed", tags=["re-embedding"])


class Batch(BaseModel):
    items: list[dict[str, str]] = Field(max_length=10_000)
    vectors: list[list[float]] = Field(max_length=10_000)


def _sim(request: Request) -> Similarity:
    return request.app.state.sim  # type: ignore[no-any-return]


def _fail(exc: reembed.ReembedError) -> HTTPException:
    return HTTPException(exc.status, detail=[{"loc": exc.loc, "msg": exc.msg, "type": "reembed"}])


def progress(sim: Similarity, job_id: str) -> dict[str, Any]:
    job = sim.store.job(job_id)
    if job is None:
        raise HTTPException(404, detail=[{"loc": ["path", "job"], "msg": f"no re-embed {job_id}", "type": "not_found"}])
    elapsed = max(1e-6, (job.get("finished_at") or time.time()) - job["started_at"])
    rate = job["done"] / elapsed
    left = max(0, job["total"] - job["done"])
    return job | {"rate": round(rate, 1), "eta_s": round(left / rate, 1) if rate > 0 and left else 0.0}


@router.post("", status_code=202)
async def start(body: Start, request: Request) -> dict[str, Any]:
    """Start re-embedding every entity with another model, in the background (RQ workers). The current
    model keeps answering; new and changed entities go to both; at the end the alias switches."""
    sim = _sim(request)
    try:
        job_id = await run_in_threadpool(reembed.start, sim, body.model, body.review)
    except reembed.ReembedError as exc:
        raise _fail(exc) from exc
    return progress(sim, job_id)


@router.get("/current")
def current(request: Request) -> dict[str, Any]:
    sim = _sim(request)
    job_id = sim.store.current()
    return {"job": progress(sim, job_id) if job_id else None, "alias": sim.store.alias()}


@router.get("/{job}")
def get(job: str, request: Request) -> dict[str, Any]:
    """Status (running, ready, done, failed, …), counts, rate, ETA and, once computed, the candidate diff."""
    return progress(_sim(request), job)


@router.post("/{job}/batches/{n}")
def batch(job: str, n: int, body: Batch, request: Request) -> dict[str, Any]:
    """A worker's vectors for one batch (internal)."""
    items = [Indexed(id=i["id"], type=i["type"], name=i.get("name", ""), description=i.get("description", ""),
                     text=i.get("text", "")) for i in body.items]  # fmt: skip
    if len(items) != len(body.vectors):
        raise HTTPException(422, detail=[{"loc": ["body", "vectors"], "msg": "one vector per item",
                                          "type": "value_error"}])  # fmt: skip
    try:
        counted = reembed.accept_batch(_sim(request), job, n, items, body.vectors)
    except reembed.ReembedError as exc:
        raise _fail(exc) from exc
    return {"counted": counted}


@router.post("/{job}/finish")
def finish(job: str, request: Request) -> dict[str, Any]:
    """All batches are in (internal, the coordinator calls it): compute the candidate diff, then switch
    unless the job waits for review."""
    sim = _sim(request)
    try:
        reembed.finish(sim, job)
    except reembed.ReembedError as exc:
        raise _fail(exc) from exc
    return progress(sim, job)


@router.post("/{job}/approve")
def approve(job: str, request: Request) -> dict[str, Any]:
    """Switch to the new model after reviewing the diff."""
    sim = _sim(request)
    found = progress(sim, job)
    if found["status"] != "ready":
        raise HTTPException(409, detail=[{"loc": ["path", "job"], "msg": f"re-embed {job} is {found['status']}",
                                          "type": "reembed"}])  # fmt: skip
    try:
        reembed.flip(sim, job)
    except reembed.ReembedError as exc:
        raise _fail(exc) from exc
    return progress(sim, job)


@router.delete("/previous")
def drop_previous(request: Request) -> dict[str, str | None]:
    """Delete the collection kept for a rollback."""
    try:
        return reembed.drop_previous(_sim(request))
    except reembed.ReembedError as exc:
        raise _fail(exc) from exc


@router.post("/{job}/cancel")
def cancel(job: str, request: Request) -> dict[str, Any]:
    """Stop a job before it switches; the new collection is dropped and the old model goes on answering."""
    sim = _sim(request)
    try:
        reembed.cancel(sim, job)
    except reembed.ReembedError as exc:
        raise _fail(exc) from exc
    return progress(sim, job)


@router.post("/rollback")
def rollback(request: Request) -> dict[str, str]:
    """Switch back to the model that answered before the last switch (its collection was kept)."""
    try:
        return reembed.rollback(_sim(request))
    except reembed.ReembedError as exc:
        raise _fail(exc) from exc
