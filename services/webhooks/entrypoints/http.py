"""The webhook API (internal; the gateway forwards /v1/webhooks to it). The dispatcher runs here as a thread."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from sqlalchemy import Connection

from platograph.api.webhooks import Replay, Rotation, SubscriptionIn, SubscriptionPatch
from platograph.background import thread_lifespan
from platograph.database import ping_database
from platograph.dead_letters import Owner, replay_router
from platograph.internal import ACTOR_HEADER, OWNER_HEADER, actor_label, protect
from platograph.observability import fastapi_telemetry, in_thread, instrument
from platograph.outages import answer_outages
from services.webhooks.adapters import store
from services.webhooks.bootstrap import Webhooks, bootstrap
from services.webhooks.domain import safety
from services.webhooks.entrypoints import dispatcher
from services.webhooks.service_layer import delivery, queueing, subscriptions

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Limit = Annotated[int, Query(ge=1, le=500)]
# Whose subscriptions the caller may touch: the gateway sends its key's owner (none for an admin: all).
Caller = Annotated[str | None, Header(alias=OWNER_HEADER, max_length=200)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
# Who asks (the actor the gateway authenticated), recorded as created_by / changed_by.
Who = Annotated[str | None, Header(alias=ACTOR_HEADER, max_length=1000)]


def get_wh(request: Request) -> Webhooks:
    return request.app.state.wh  # type: ignore[no-any-return]


WhDep = Annotated[Webhooks, Depends(get_wh)]


def get_conn(wh: WhDep) -> Iterator[Connection]:
    with wh.engine.begin() as conn:
        yield conn


ConnDep = Annotated[Connection, Depends(get_conn)]


def _error(status: int, loc: list[str], msg: str, kind: str) -> HTTPException:
    return HTTPException(status, detail=[{"loc": loc, "msg": msg, "type": kind}])


def _view(row: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in row.items() if k not in ("entity_types", "min_score", "secret", "previous_secret")}
    return view | {"filter": {"entity_types": row["entity_types"], "min_score": row["min_score"]}}


def _existing(conn: Connection, subscription_id: str, owner: str | None) -> dict[str, Any]:
    """The subscription, if the caller's owner has it (another owner's answers 404, as a missing one)."""
    row = store.get_subscription(conn, subscription_id, owner=owner)
    if row is None:
        raise _error(404, ["path", "id"], f"no webhook {subscription_id!r}", "not_found")
    return row


def _check_url(wh: Webhooks, url: str) -> None:
    try:
        subscriptions.check_url(wh, url)
    except safety.UnsafeEndpoint as exc:
        raise _error(422, ["body", "url"], str(exc), "unsafe_url") from exc


@router.post("", status_code=201)
def create(
    body: SubscriptionIn, wh: WhDep, conn: ConnDep, owner: Caller = None, key: IdemKey = None, who: Who = None
) -> dict[str, Any]:
    """Register an endpoint. The reply carries its signing `secret`: this is the only time it is shown."""
    try:
        subscription_id, secret, replayed = subscriptions.create(wh, conn, body, owner, key, actor_label(who))
    except safety.UnsafeEndpoint as exc:
        raise _error(422, ["body", "url"], str(exc), "unsafe_url") from exc
    return _view(_existing(conn, subscription_id, owner)) | {"secret": secret, "replayed": replayed}


@router.get("")
def list_all(conn: ConnDep, cursor: str | None = None, limit: Limit = 50, owner: Caller = None) -> dict[str, Any]:
    try:
        page = store.list_subscriptions(conn, cursor, limit, owner)
    except ValueError as exc:
        raise _error(422, ["query", "cursor"], str(exc), "value_error") from exc
    return page | {"items": [_view(r) for r in page["items"]]}


@router.get("/{id}")
def get(id: str, conn: ConnDep, owner: Caller = None) -> dict[str, Any]:
    """A subscription with its delivery counts by status."""
    return _view(_existing(conn, id, owner)) | {"deliveries": store.delivery_counts(conn, id)}


@router.patch("/{id}")
def update(
    id: str, body: SubscriptionPatch, wh: WhDep, conn: ConnDep, owner: Caller = None, who: Who = None
) -> dict[str, Any]:
    _existing(conn, id, owner)
    values: dict[str, Any] = {}
    if body.url is not None:
        _check_url(wh, str(body.url))
        values["url"] = str(body.url)
    if body.event_types is not None:
        values["event_types"] = body.event_types
    if body.filter is not None:
        values |= {"entity_types": body.filter.entity_types, "min_score": body.filter.min_score}
    if body.description is not None:
        values["description"] = body.description
    if values:
        store.update_subscription(conn, id, values | {"changed_by": actor_label(who)})
    return _view(_existing(conn, id, owner))


@router.delete("/{id}", status_code=204)
def delete(id: str, conn: ConnDep, owner: Caller = None) -> Response:
    _existing(conn, id, owner)
    if not store.delete_subscription(conn, id):
        raise _error(404, ["path", "id"], f"no webhook {id!r}", "not_found")
    return Response(status_code=204)


@router.post("/{id}/pause")
def pause(id: str, conn: ConnDep, owner: Caller = None, who: Who = None) -> dict[str, Any]:
    """Stop sending; deliveries keep being recorded and go out on resume."""
    _existing(conn, id, owner)
    store.update_subscription(conn, id, {"state": "paused", "state_reason": "paused by a person",
                                         "changed_by": actor_label(who)})  # fmt: skip
    return _view(_existing(conn, id, owner))


@router.post("/{id}/resume")
def resume(id: str, wh: WhDep, owner: Caller = None, who: Who = None) -> dict[str, Any]:
    """Send again (also re-enables a disabled endpoint); what is pending goes out now."""
    with wh.engine.begin() as conn:
        _existing(conn, id, owner)
        store.update_subscription(conn, id, {"state": "active", "state_reason": "", "failing_since": None,
                                             "changed_by": actor_label(who)})  # fmt: skip
        pending = store.pending_of(conn, id)
    wh.breaker.close(id)  # a person says it is back: try it now
    delivery.enqueue_again(wh, id, pending)
    with wh.engine.connect() as conn:
        return _view(_existing(conn, id, owner)) | {"requeued": len(pending)}


@router.post("/{id}/rotate-secret")
def rotate(
    id: str, wh: WhDep, conn: ConnDep, body: Rotation | None = None, owner: Caller = None, who: Who = None
) -> dict[str, Any]:
    """A new signing secret (shown once); the old one keeps signing too until the grace period ends."""
    rotated = subscriptions.rotate(wh, conn, id, None if body is None else body.grace_s, owner, actor_label(who))
    if rotated is None:
        raise _error(404, ["path", "id"], f"no webhook {id!r}", "not_found")
    return rotated


@router.get("/{id}/deliveries")
def deliveries(
    id: str,
    conn: ConnDep,
    status: Literal["pending", "delivered", "failed"] | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
    owner: Caller = None,
) -> dict[str, Any]:
    """Deliveries newest first, each with every attempt (time, status, latency, first bytes of the reply)."""
    _existing(conn, id, owner)
    try:
        return store.list_deliveries(conn, id, status, cursor, limit)
    except (ValueError, IndexError) as exc:
        raise _error(422, ["query", "cursor"], "cursor is not valid", "value_error") from exc


@router.get("/{id}/deliveries/{delivery_id}")
def get_delivery(id: str, delivery_id: uuid.UUID, conn: ConnDep, owner: Caller = None) -> dict[str, Any]:
    _existing(conn, id, owner)
    found = store.get_delivery(conn, id, delivery_id)
    if found is None:
        raise _error(404, ["path", "delivery_id"], f"no delivery {delivery_id} for webhook {id!r}", "not_found")
    return found


@router.post("/{id}/deliveries/{delivery_id}/retry", status_code=202)
def retry(id: str, delivery_id: uuid.UUID, wh: WhDep, owner: Caller = None) -> dict[str, Any]:
    """Send one delivery again (whatever its status), with a fresh retry schedule."""
    with wh.engine.begin() as conn:
        _existing(conn, id, owner)
        reopened = store.reopen(conn, id, delivery_id=delivery_id)
    if not reopened:
        raise _error(404, ["path", "delivery_id"], f"no delivery {delivery_id} for webhook {id!r}", "not_found")
    wh.breaker.close(id)  # a person asks for it now: no pause from earlier failures
    delivery.enqueue_again(wh, id, reopened)
    return {"requeued": 1}


@router.post("/{id}/replay", status_code=202)
def replay(id: str, body: Replay, wh: WhDep, owner: Caller = None, key: IdemKey = None) -> dict[str, Any]:
    """Re-send everything since a time (same `webhook-id`s, so receivers can drop what they have). A
    request repeated with its Idempotency-Key re-sends nothing more: each delivery goes once per replay."""
    replay_id = f"{id}:{key}" if key else uuid.uuid4().hex
    with wh.engine.begin() as conn:
        _existing(conn, id, owner)
        reopened = store.reopen(conn, id, since=body.since, only_failed=body.only_failed, replay_id=replay_id)
    wh.breaker.close(id)
    delivery.enqueue_again(wh, id, reopened, tag=f"-replay-{uuid.uuid5(queueing.NAMESPACE, replay_id).hex[:12]}")
    return {"requeued": len(reopened), "replay_id": replay_id}


stats_router = APIRouter(prefix="/v1", tags=["webhooks"])


@stats_router.get("/stats")
def stats(wh: WhDep, conn: ConnDep) -> dict[str, Any]:
    """Subscriptions by state, deliveries by status, jobs waiting, and the dispatcher's backlog."""
    return store.stats(conn) | {
        "queued_jobs": wh.queue.count,
        "scheduled_jobs": wh.queue.scheduled_job_registry.count,
        "dispatcher": wh.consumer.backlog() | wh.loop.report(),
    }


def create_app(wh: Webhooks | None = None, dispatch: bool | None = None) -> FastAPI:
    """The webhook ASGI app; it runs the dispatcher unless told not to."""
    wired = wh or bootstrap()
    run_dispatcher = wired.settings.dispatch if dispatch is None else dispatch

    lifespan = thread_lifespan(lambda stop: dispatcher.run(wired, stop), name="webhook-dispatcher",
                               enabled=run_dispatcher, close=wired.close if wh is None else None)  # fmt: skip
    app = FastAPI(title="Platograph webhooks", telemetry=fastapi_telemetry(), lifespan=lifespan)
    app.state.wh = wired
    app.include_router(router)
    app.include_router(stats_router)
    app.include_router(replay_router(Owner(wired.consumer, partial(dispatcher.replay, wired))))
    ready = {"redis": in_thread(wired.redis.ping), "postgres": in_thread(partial(ping_database, wired.engine))}
    instrument(app, "webhooks", readiness=ready)
    protect(app, "webhooks")
    answer_outages(app)
    return app
