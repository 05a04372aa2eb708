"""Re-embedding with another model: forwarded to the similarity service, which owns the collections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette.convertors import Convertor, register_url_convertor

from gateway.adapters.upstream import call, relay
from gateway.authorization import ActorDep, scope
from gateway.deps import ServicesDep
from platograph.api.similarity import Start
from platograph.internal import actor_headers
from platograph.urls import segment

JOB_ID = "[0-9a-f]{12}"


class JobId(Convertor[str]):
    """A job id in a path: `/v1/reembed/rollback` and `/v1/reembed/previous` are not jobs, so `Allow`
    names only the methods those paths really take."""

    regex = JOB_ID

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("job", JobId())
Job = Annotated[str, Path(pattern=f"^{JOB_ID}$", description="A job's id, as `POST /v1/reembed` answered it")]
router = APIRouter(prefix="/v1/reembed", tags=["re-embedding"], dependencies=scope("admin"))


@router.post("", status_code=202, responses={409: {}, 422: {}})
async def start(body: Start, services: ServicesDep, actor: ActorDep) -> Response:
    """Re-embed every entity with another model in the background (RQ workers, as many as run). The current
    model answers meanwhile, new and changed entities are written to both, and at the end the alias
    switches (or, with `review`, the job waits at `ready` with its candidate diff for `approve`)."""
    return relay(await call(services.similarity, "similarity", "POST", "/v1/reembed", json=body.model_dump(),
                            headers=actor_headers(actor)))  # fmt: skip


@router.get("/current")
async def current(services: ServicesDep) -> Response:
    """The running job, if any, and the alias (active model, and the one kept for a rollback)."""
    return relay(await call(services.similarity, "similarity", "GET", "/v1/reembed/current"))


@router.get("/{job:job}", responses={404: {}})
async def get(job: Job, services: ServicesDep) -> Response:
    """`status` (running, ready, done, failed), `done`/`total`, `rate`, `eta_s`, failed batches, and the
    candidate diff (gained, lost, re-scored, by type pair, with samples) once computed."""
    return relay(await call(services.similarity, "similarity", "GET", f"/v1/reembed/{segment(job)}"))


@router.post("/{job:job}/approve", responses={404: {}, 409: {}})
async def approve(job: Job, services: ServicesDep, actor: ActorDep) -> Response:
    """Switch to the new model after reviewing the diff."""
    path = f"/v1/reembed/{segment(job)}/approve"
    return relay(await call(services.similarity, "similarity", "POST", path, headers=actor_headers(actor)))


@router.post("/rollback", responses={409: {}})
async def rollback(services: ServicesDep) -> Response:
    """Switch back to the model that answered before (its collection is kept)."""
    return relay(await call(services.similarity, "similarity", "POST", "/v1/reembed/rollback"))


@router.post("/{job:job}/cancel", responses={404: {}, 409: {}})
async def cancel(job: Job, services: ServicesDep, actor: ActorDep) -> Response:
    """Stop a job before it switches; its collection is dropped."""
    path = f"/v1/reembed/{segment(job)}/cancel"
    return relay(await call(services.similarity, "similarity", "POST", path, headers=actor_headers(actor)))


@router.delete("/previous", responses={409: {}})
async def drop_previous(services: ServicesDep) -> Response:
    """Delete the collection kept for a rollback."""
    return relay(await call(services.similarity, "similarity", "DELETE", "/v1/reembed/previous"))
