"""Merging duplicates, and undoing it. The gateway owns these decisions, like review decisions: the rules
are gateway.domain.decisions, the check-and-append step gateway.adapters.decision_log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from gateway import assembly
from gateway.adapters.upstream import call, raise_for_client_error
from gateway.authorization import ActorDep, scope
from gateway.deps import DecisionLogDep, ServicesDep, SettingsDep
from gateway.domain import decisions
from gateway.routers.params import After, EntityId
from platograph.api.review import Merge, Unmerge
from platograph.contracts import EntityMerged, EntityUnmerged, new_envelopes

router = APIRouter(prefix="/v1/entities", tags=["review"], dependencies=scope("review"))


@router.post("/{id}/merge", status_code=202, responses={404: {}, 409: {}, 422: {}})
async def merge(
    id: EntityId,
    body: Merge,
    services: ServicesDep,
    settings: SettingsDep,
    log: DecisionLogDep,
    actor: ActorDep,
    dry_run: bool = Query(False, description="Only show what would move"),
    after: After = None,
) -> dict[str, Any]:
    """Merge a duplicate into the entity that stays: its edges show on the survivor (no duplicate edges,
    no self-loops), its candidates are withdrawn, and its id redirects (301) to the survivor."""
    await assembly.wait_for(services, settings, after)
    decisions.check_not_itself(id, body.into)
    entity = await assembly.entity(services, id, ["path", "id"])
    survivor = await assembly.entity(services, body.into, ["body", "into"])
    decisions.check_mergeable(entity, survivor)
    preview = await call(services.graph, "graph", "GET", "/v1/merge-preview", params={"id": id, "into": body.into})
    raise_for_client_error(preview)
    if dry_run:
        return {"dry_run": True, "id": id, "into": body.into} | dict(preview.json())
    merged = EntityMerged(id=id, into=body.into, by=actor.name, note=body.by)
    envelopes = new_envelopes([merged], producer=decisions.PRODUCER, actor=actor)
    outcome = await log.merge(id, body.into, envelopes)
    if not outcome.won:
        raise decisions.merge_refused(outcome.reason, id, body.into, outcome.value)
    return {"status": "merged", "id": id, "into": body.into, "position": outcome.value,
            "event_ids": [str(e.event_id) for e in envelopes]} | dict(preview.json())  # fmt: skip


@router.post("/{id}/unmerge", status_code=202, responses={404: {}, 409: {}})
async def unmerge(
    id: EntityId,
    body: Unmerge,
    services: ServicesDep,
    settings: SettingsDep,
    log: DecisionLogDep,
    actor: ActorDep,
    after: After = None,
) -> dict[str, Any]:
    """Undo a merge: both entities and their own edges come back exactly (a compensating event)."""
    await assembly.wait_for(services, settings, after)
    into = decisions.merged_into(await assembly.entity(services, id, ["path", "id"]))
    unmerged = EntityUnmerged(id=id, into=into, by=actor.name, note=body.by)
    envelopes = new_envelopes([unmerged], producer=decisions.PRODUCER, actor=actor)
    outcome = await log.unmerge(id, into, envelopes)
    if not outcome.won:
        raise decisions.no_longer_merged(id)
    return {"status": "unmerged", "id": id, "into": into, "position": outcome.value,
            "event_ids": [str(e.event_id) for e in envelopes]}  # fmt: skip
