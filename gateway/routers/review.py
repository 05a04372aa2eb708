"""Review decisions on candidates: accept as a typed edge, reject, take a rejection back. The gateway owns
these events; the rules are gateway.domain.decisions, the claim-and-append step gateway.adapters.decision_log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway import assembly
from gateway.authorization import ActorDep, scope
from gateway.deps import DecisionLogDep, ServicesDep, SettingsDep
from gateway.domain import decisions
from gateway.routers.params import EntityId
from platograph import ontology
from platograph.api.review import Accept, Reject
from platograph.contracts import (
    Actor,
    CandidateRejected,
    CandidateUnrejected,
    EdgeAdded,
    Envelope,
    Frozen,
    new_envelopes,
)

router = APIRouter(prefix="/v1/candidates", tags=["review"], dependencies=scope("review"))


def _reply(status: str, position: str, envelopes: list[Envelope]) -> dict[str, Any]:
    return {"status": status, "position": position, "event_ids": [str(e.event_id) for e in envelopes]}


async def _decide(
    log: DecisionLogDep, a: str, b: str, decision: str, actor: Actor, payloads: list[Frozen]
) -> dict[str, Any]:
    envelopes = new_envelopes(payloads, producer=decisions.PRODUCER, actor=actor)
    outcome = await log.claim(a, b, decision, actor.name, envelopes)
    if not outcome.won:
        raise decisions.already_decided(outcome.decision() or {})
    return _reply(decision, outcome.value, envelopes)


@router.post("/{a}/{b}/accept", status_code=202, responses={404: {}, 409: {}, 422: {}})
async def accept(
    a: EntityId,
    b: EntityId,
    body: Accept,
    services: ServicesDep,
    settings: SettingsDep,
    log: DecisionLogDep,
    actor: ActorDep,
) -> dict[str, Any]:
    """Turn a proposed candidate into a typed edge; the pair then leaves "related by similarity"."""
    a, b = decisions.ordered(a, b)
    candidate = await assembly.candidate(services, a, b)
    payloads = decisions.acceptance(ontology.load(settings.ontology), a, b, body, candidate, actor.name)
    reply = await _decide(log, a, b, "accepted", actor, payloads)
    edge = next(p for p in payloads if isinstance(p, EdgeAdded))
    return reply | {"edge": {"source": edge.source, "type": edge.type, "target": edge.target}}


@router.post("/{a}/{b}/reject", status_code=202, responses={404: {}, 409: {}})
async def reject(
    a: EntityId, b: EntityId, body: Reject, services: ServicesDep, log: DecisionLogDep, actor: ActorDep
) -> dict[str, Any]:
    """Reject a candidate: the pair is never proposed again, whatever the model."""
    a, b = decisions.ordered(a, b)
    await assembly.candidate(services, a, b)
    rejected = CandidateRejected(a=a, b=b, by=actor.name, note=body.by, reason=body.reason)
    return await _decide(log, a, b, "rejected", actor, [rejected])


@router.post("/{a}/{b}/unreject", status_code=202, responses={404: {}, 409: {}})
async def unreject(
    a: EntityId, b: EntityId, body: Reject, services: ServicesDep, log: DecisionLogDep, actor: ActorDep
) -> dict[str, Any]:
    """Take a rejection back: the pair may be proposed again (and decided again)."""
    a, b = decisions.ordered(a, b)
    await assembly.candidate(services, a, b)
    unrejected = CandidateUnrejected(a=a, b=b, by=actor.name, note=body.by)
    envelopes = new_envelopes([unrejected], producer=decisions.PRODUCER, actor=actor)
    outcome = await log.release_rejection(a, b, envelopes)
    if not outcome.won:
        raise decisions.not_rejected(outcome.decision())
    return _reply("unrejected", outcome.value, envelopes)
